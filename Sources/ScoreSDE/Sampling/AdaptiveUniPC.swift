import Foundation

/// UniPC with error control: the multistep predictor–corrector of ``UniPC`` (Zhao et al. 2023,
/// Alg. 1–2, B(h) = bh2, data prediction) on a grid it chooses itself, one step at a time, in the
/// half log-SNR `λ`. The corrector needs the model at the predicted point anyway, so the difference
/// between the corrected (order `k + 1`) and the predicted (order `k`) state is a local error
/// estimate at no extra NFE — Milne's device for predictor–corrector pairs (Hairer, Nørsett &
/// Wanner, *Solving ODEs I*, §III.7). A step is accepted when the mixed RMS norm
///
///     ‖(x_corr − x_pred) / (atol + rtol · max(|x|, |x_corr|))‖₂ / √(batch · D) ≤ 1
///
/// (over the whole batch, as scipy's RK45 measures it; ``ErrorNorm/worstRow`` takes the largest
/// per-row norm instead), keeping the corrected state (local
/// extrapolation); either way the next step is `h · clamp(θ · err^{−1/(k+1)}, 0.2, 2)` (no growth
/// right after a rejection) — the shared ``StepSizeController``'s rule (``controller``). The
/// variable-step UniPC updates use the actual λ-spacings of the history, so no restart is needed
/// after a change of step size. A rejected attempt costs its one NFE.
///
/// Order: the predictor uses `min(order, accepted steps + 1)` data predictions, the accepted state
/// is order `k + 1`; NFE: 1 at `T` plus 1 per attempted step. Supports any ``ForwardSDE``.
///
/// With the default tolerances (5e-4) it reaches map RMSE ≤ 1e-3 against the exact probability-flow
/// map in 43–47 NFE on the ring and gmm64 (VP, T = 1 → 1e-3), where scipy's RK45 needs 74 and 68.
///
///     let sampler = try AdaptiveUniPC(sde: sde, score: score, eps: 1e-3, tolerance: 1e-3)
///     let run = try sampler.decode(latents)        // run.scoreEvaluations, run.rejectedSteps
///
/// ``AdaptiveUniPCIntegrator`` runs the same solve one attempt at a time and reports each as a ``StepEvent``.
public struct AdaptiveUniPC<SDE: ForwardSDE, Score: ScoreModel>: Sendable {
    public var sde: SDE
    public var score: Score
    /// The end time (the reference's sampling eps); the solve ends there, with no denoising step.
    public var eps: Double
    /// Highest predictor order, 1…3 (the accepted state is one order higher).
    public var order: Int
    public var absoluteTolerance: Double
    public var relativeTolerance: Double
    /// First step in λ (nil: 1/32 of the λ-range).
    public var initialStep: Double?
    /// Safety factor θ of the step-size update (0.7: with 0.9 the controller lags the error's growth
    /// into the mode-selection range and rejects 6–12 steps a run; `scoresde-bench fast-adaptive`).
    public var safety: Double
    /// Largest factor a step may grow by (2: multistep histories stay well-conditioned).
    public var maximumGrowth: Double
    /// An error after this many score evaluations.
    public var maximumEvaluations: Int
    /// Rows per score-model call (memory only; never changes results).
    public var batchSize: Int?
    /// How the local errors of a batch are combined.
    public var norm: ErrorNorm

    /// How ``AdaptiveUniPC`` combines the local errors of a batch.
    public enum ErrorNorm: String, Sendable, CaseIterable {
        /// The RMS over every number of the batch (scipy's norm; what map RMSE measures). A few
        /// samples near a mode boundary can still take too long a step and change mode (measured:
        /// one 3-D mixture of six, map RMSE 2e-3–5e-2 at 5e-4).
        case batch
        /// The largest RMS over one row: every sample's local error is controlled (about 1.4× the
        /// NFE of `batch` for the same tolerance; map RMSE ≤ 1.8e-3 on all six benchmark mixtures at 2e-3).
        case worstRow
    }

    /// - Throws: `invalidArgument` unless `1 ≤ order ≤ 3`, the tolerances are positive and finite,
    ///   `eps` is in `(0, T)`, `θ` in (0, 1] and the initial step (if any) positive.
    public init(sde: SDE, score: Score, eps: Double, order: Int = 3, absoluteTolerance: Double = 5e-4,
                relativeTolerance: Double = 5e-4, initialStep: Double? = nil, safety: Double = 0.7, maximumGrowth: Double = 2,
                maximumEvaluations: Int = 10_000, batchSize: Int? = nil, norm: ErrorNorm = .batch) throws {
        try requireParameter((1 ... 3).contains(order), name: "order", value: order, requirement: "1, 2 or 3", advice: "adaptive UniPC has predictor orders 1, 2 and 3")
        try requireParameter(absoluteTolerance.isFinite && absoluteTolerance > 0, name: "absoluteTolerance", value: absoluteTolerance, requirement: "finite and > 0")
        try requireParameter(relativeTolerance.isFinite && relativeTolerance > 0, name: "relativeTolerance", value: relativeTolerance, requirement: "finite and > 0")
        try requireParameter(eps.isFinite && eps > 0 && eps < sde.T, name: "eps", value: eps, requirement: "in (0, T = \(sde.T))")
        try requireParameter(safety > 0 && safety <= 1, name: "safety", value: safety, requirement: "in (0, 1] (the safety factor)")
        try requireParameter(maximumGrowth.isFinite && maximumGrowth > 1, name: "maximumGrowth", value: maximumGrowth, requirement: "finite and > 1 (the largest step growth)")
        if let h = initialStep { try requireParameter(h.isFinite && h > 0, name: "initialStep", value: h, requirement: "finite and > 0 (or nil to choose it)") }
        try requireParameter(maximumEvaluations >= 2, name: "maximumEvaluations", value: maximumEvaluations, requirement: ">= 2")
        self.sde = sde; self.score = score; self.eps = eps; self.order = order
        self.absoluteTolerance = absoluteTolerance; self.relativeTolerance = relativeTolerance
        self.initialStep = initialStep; self.safety = safety; self.maximumGrowth = maximumGrowth; self.maximumEvaluations = maximumEvaluations
        self.batchSize = batchSize; self.norm = norm
    }

    /// The step-size controller these settings make: the mixed RMS norm with scale
    /// `atol + rtol · max(|x|, |x_corr|)` over the batch or its worst row, θ = ``safety``,
    /// `r = 1/(k + 1)`, factors in `[0.2, maximumGrowth]`, no growth right after a rejection.
    public var controller: StepSizeController {
        StepSizeController(uncheckedAbsoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance, toleranceScale: .sum,
                           norm: norm == .batch ? .batch : .worstRow, safety: safety, exponent: nil,
                           minimumFactor: 0.2, maximumFactor: maximumGrowth, errorFloor: 1e-10, holdAfterRejection: true)
    }

    /// Both tolerances set to `tolerance`.
    public init(sde: SDE, score: Score, eps: Double, tolerance: Double, order: Int = 3) throws {
        try self.init(sde: sde, score: score, eps: eps, order: order, absoluteTolerance: tolerance, relativeTolerance: tolerance)
    }

    /// Draws `count` prior samples and decodes them.
    public func sample(count: Int, rowShape: [Int]? = nil, using rng: inout RandomSource) throws -> AdaptiveUniPCResult {
        guard count > 0 else { throw ScoreSDEError.invalid("count", count, must: "> 0") }
        guard let shape = rowShape ?? score.rowShape else {
            throw ScoreSDEError.invalidArgument("the score model accepts any shape: pass rowShape")
        }
        return try decode(sde.samplePrior(rowShape: shape, count: count, using: &rng))
    }

    /// Solves the probability flow from `latents` at `T` down to `eps`: ``AdaptiveUniPCIntegrator``
    /// stepped to the end.
    public func decode(_ latents: Tensor) throws -> AdaptiveUniPCResult {
        var run = try AdaptiveUniPCIntegrator(solver: self, latents: latents)
        return try run.solve()
    }

    /// The mixed RMS norm of `corrected − predicted` over the whole batch (``ErrorNorm/batch``) or
    /// the largest per-row RMS norm (``ErrorNorm/worstRow``), as `controller` measures it.
    func errorNorm(_ x: Tensor, _ predicted: Tensor, _ corrected: Tensor, _ controller: StepSizeController) -> Double {
        let d = Swift.max(1, x.rowSize), rows = x.count / d
        var sum = 0.0, worst = 0.0
        x.values.withUnsafeBufferPointer { xp in
            predicted.values.withUnsafeBufferPointer { pp in
                corrected.values.withUnsafeBufferPointer { cp in
                    for r in 0 ..< rows {
                        var row = 0.0
                        for i in r * d ..< (r + 1) * d { row += controller.scaledSquare(error: cp[i] - pp[i], xp[i], cp[i]) }
                        sum += row; worst = Swift.max(worst, row)
                    }
                }
            }
        }
        return controller.batchNorm(total: sum, worstRow: worst, values: x.count, rowSize: d)
    }
}

/// ``AdaptiveUniPC`` one attempt at a time, in the shape of ``ReverseIntegrator``: `init` →
/// ``step()`` … → ``result()``.
///
///     var run = try AdaptiveUniPCIntegrator(solver: sampler, latents: z)
///     while let e = try run.step() { print(e.t, e.next, e.acceptedSteps, e.scoreEvaluations) }
///     let out = try run.result()
///
/// Each ``step()`` is one attempt of the loop: predict to the next time, one batched model call
/// there, correct, then the controller accepts or rejects (``StepSizeController``). It reports
/// ``ReverseMove/attempt(index:t:next:accepted:rejected:)`` with `t` the current time, `next` the
/// time attempted and accepted/rejected 1 and 0 or 0 and 1; the batch shares one time, so
/// ``StepEvent/rowTimes`` is nil and ``StepEvent/mean`` is the data prediction at the current
/// time. NFE: the first step also evaluates the model at `T` (2 NFE), every other step 1.
/// ``AdaptiveUniPC/decode(_:)`` is this loop: same bytes.
public struct AdaptiveUniPCIntegrator<SDE: ForwardSDE, Score: ScoreModel>: SteppedSolve {
    public let solver: AdaptiveUniPC<SDE, Score>
    /// The reverse process of every model call: it counts NFE and model passes.
    public let reverse: ReverseSDE<SDE, Score>
    /// The current state and time.
    public private(set) var state: Tensor
    public private(set) var time: Double
    /// The next step, in the half log-SNR λ.
    public private(set) var stepSize: Double
    public private(set) var acceptedSteps = 0, rejectedSteps = 0
    /// The accepted times so far, from `T`.
    public private(set) var times: [Double]
    private let unipc: UniPC
    private let controller: StepSizeController
    private let lambdaEnd: Double, span: Double
    private var lambda: Double
    private var justRejected = false
    /// Data predictions at the accepted times, newest first, and their λ.
    private var predictions: [Tensor] = [], lambdas: [Double] = []
    /// Batch-sized buffers reused by every attempt: the predicted and corrected states, and data
    /// predictions that left the history or belonged to a rejected attempt.
    private var predicted: Tensor, corrected: Tensor
    private var spare: [Tensor] = []

    /// Sets up a solve of the probability flow from `latents` at `T` down to `eps`.
    public init(solver: AdaptiveUniPC<SDE, Score>, latents: Tensor) throws {
        guard latents.storage.allSatisfy({ $0.isFinite }) else { throw ScoreSDEError.nonFinite("the latents contain NaN or Inf") }
        let sde = solver.sde
        self.solver = solver
        self.reverse = ReverseSDE(sde: sde, score: solver.score, batchSize: solver.batchSize)
        self.unipc = try UniPC(order: solver.order)
        self.controller = solver.controller
        let lambdaStart = sde.halfLogSNR(at: sde.T)
        self.lambdaEnd = sde.halfLogSNR(at: solver.eps)
        self.span = lambdaEnd - lambdaStart
        self.stepSize = solver.initialStep ?? span / 32
        self.state = latents; self.time = sde.T; self.lambda = lambdaStart
        self.times = [sde.T]
        self.predicted = Tensor(zeros: latents.shape); self.corrected = Tensor(zeros: latents.shape)
    }

    /// True when the solve has reached `eps`.
    public var isFinished: Bool { !(time > solver.eps) }

    /// Makes the next attempt; returns its event, or nil when the solve is complete.
    public mutating func step() throws -> StepEvent? {
        let sde = solver.sde, eps = solver.eps, order = solver.order
        guard time > eps else { return nil }
        if predictions.isEmpty { predictions.append(try model(state, time)); lambdas.append(lambda) }
        let t = time, h = stepSize
        let k = min(order, predictions.count)
        let last = lambda + h >= lambdaEnd - 1e-12 * Swift.abs(span)
        let next = last ? eps : sde.time(atHalfLogSNR: lambda + h, in: eps, t)
        guard next < t else {
            throw ScoreSDEError.integrator(IntegratorFailure(reason: .stepSizeUnderflow, time: t, stepSize: h,
                advice: "adaptive UniPC's log-SNR step no longer moves the time; loosen relativeTolerance/absoluteTolerance"))
        }
        unipc.update(into: &predicted, from: state, models: predictions, lambdas: lambdas, sde: sde, from: t, to: next, order: k,
                     modelAtEnd: nil)
        let x0 = try model(predicted, next)
        unipc.update(into: &corrected, from: state, models: predictions, lambdas: lambdas, sde: sde, from: t, to: next, order: k,
                     modelAtEnd: x0)
        let err = solver.errorNorm(state, predicted, corrected, controller)
        guard err.isFinite else {
            throw ScoreSDEError.integrator(IntegratorFailure(reason: .nonFiniteRightHandSide, time: t, stepSize: h,
                advice: "the score model returned NaN or Inf (check the model and the latents)"))
        }
        // No growth right after a rejection (Hairer, Nørsett & Wanner, §II.4): the controller's.
        let (ok, factor) = controller.decide(error: err, order: k, afterRejection: justRejected)
        if ok {
            swap(&state, &corrected); time = next; lambda = sde.halfLogSNR(at: next)
            predictions.insert(x0, at: 0); lambdas.insert(lambda, at: 0)
            if predictions.count > order { spare.append(predictions.removeLast()); lambdas.removeLast() }
            acceptedSteps += 1; times.append(time)
            stepSize *= factor; justRejected = false
        } else {
            rejectedSteps += 1
            spare.append(x0)
            stepSize *= factor; justRejected = true
        }
        let index = acceptedSteps + rejectedSteps - 1
        return StepEvent(index: index, total: 0, t: t, next: next,
                         move: .attempt(index: index, t: t, next: next, accepted: ok ? 1 : 0, rejected: ok ? 0 : 1),
                         scoreEvaluations: reverse.scoreEvaluations, modelPasses: reverse.modelPasses, state: state,
                         mean: predictions[0], rowTimes: nil)
    }

    /// The states at `eps` (throws if the solve is not finished).
    public func result() throws -> AdaptiveUniPCResult {
        guard isFinished else {
            throw ScoreSDEError.invalidArgument("adaptive UniPC is at t = \(time), not yet at eps = \(solver.eps); call step() until it returns nil")
        }
        return AdaptiveUniPCResult(states: state, scoreEvaluations: reverse.scoreEvaluations, modelPasses: reverse.modelPasses,
                                   acceptedSteps: acceptedSteps, rejectedSteps: rejectedSteps, times: times)
    }

    /// The data prediction at `(y, time)` (one batched model call), into a spare buffer.
    private mutating func model(_ y: Tensor, _ time: Double) throws -> Tensor {
        guard reverse.scoreEvaluations < solver.maximumEvaluations else {
            throw ScoreSDEError.integrator(IntegratorFailure(reason: .maxStepsExceeded, time: time, stepSize: stepSize,
                advice: "adaptive UniPC used \(solver.maximumEvaluations) score evaluations without reaching eps = \(solver.eps); loosen relativeTolerance/absoluteTolerance"))
        }
        let (m, s) = solver.sde.noiseLevel(at: time)
        var x0 = spare.popLast() ?? Tensor(zeros: y.shape)
        dataPrediction(y, score: try reverse.score(y, at: time), m: m, std: s, into: &x0)
        return x0
    }
}

/// What ``AdaptiveUniPC`` returns.
public struct AdaptiveUniPCResult: Sendable {
    /// The states at `eps`.
    public let states: Tensor
    /// Batched score evaluations (NFE): 1 + accepted + rejected steps.
    public let scoreEvaluations: Int
    /// Model passes (≥ NFE for guided scores).
    public let modelPasses: Int
    public let acceptedSteps: Int
    public let rejectedSteps: Int
    /// The accepted times, from `T` down to `eps`: the grid the controller chose.
    public let times: [Double]
}

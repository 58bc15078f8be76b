import Foundation

/// The "Gotta Go Fast" adaptive reverse-SDE solver (Jolicoeur-Martineau et al. 2021, "Gotta Go Fast
/// When Generating Data with Score-Based Models", Algorithm 1; the official `AdaptivePredictor`):
/// each sample has its own step size `h`. A step from `t` draws `z` and computes the
/// Euler–Maruyama increment and the improved-Euler (stochastic Heun) increment with the same `z`,
///
///     K1 = −h f̃(x, t) + g(t) √h z,     K2 = −h f̃(x + K1, t − h) + g(t − h) √h z,
///
/// (`f̃ = f − g² s`, the reverse drift), `x' = x + K1`, `x'' = x + ½ (K1 + K2)`, and the local
/// error `E = ½ (K2 − K1)`. It is accepted when the mixed norm
/// `‖E / δ‖₂ / √D ≤ 1`, `δ = max(ε_abs, ε_rel · max(|x'|, |x'_prev|))` (element-wise; `x'_prev` the
/// previous accepted `x'`), and then `x ← x''` (extrapolation: the higher-order value is kept) and
/// `t ← t − h`. Either way `h ← min(t − eps, h · θ ‖E/δ‖^{−r})` (θ = 0.9, r = 0.9, `h₀` = 0.01 as in
/// the paper); the norm, the decision and the factor are the shared ``StepSizeController``'s
/// (``controller``: per-sample norm, ``StepSizeController/ToleranceScale/max``, unclamped). The
/// paper's code draws new noise after a rejected step; that biases the samples
/// (``AdaptiveSDERejectedNoise/redraw``), so by default the rejected increment is kept and split with the
/// Brownian bridge (``AdaptiveSDERejectedNoise/brownianBridge``; each row's ``BrownianPath``). The run ends
/// at `eps`; each attempt costs its sample 2 score evaluations.
///
/// Every sample keeps its own time, step size, accept/reject decisions and Brownian path, but the
/// rows are advanced together: each round, every row that has not reached `eps` attempts one step,
/// and the scores of all those rows — each at its own time — come from **one** batched model call
/// per stage (``ScoreModel/score(_:at:into:)-(_,[Double],_)``; at most ``batchSize`` rows per model
/// call). Rows stop as they reach `eps`. ``AdaptiveSDEResult/scoreEvaluations`` counts those
/// batched calls (NFE, as for every sampler: 2 per round, + 1 for Tweedie denoising), which is also
/// the largest per-sample count — the paper's count;
/// ``AdaptiveSDEResult/perSampleEvaluations`` holds each sample's own evaluations. Row `r`'s `k`-th
/// attempt reads draw `k` of a source derived from the caller's (one draw of it), row
/// `rowOffset + r`: same seed, same noise whatever the thread count or batch size.
/// ``AdaptiveSDEIntegrator`` runs the same solve one round at a time and reports each as a ``StepEvent``.
///
/// Supports: any ``ForwardSDE`` (VE, VP, sub-VP, cosine VP).
public struct AdaptiveSDESampler<SDE: ForwardSDE, Score: ScoreModel>: Sendable {
    public var sde: SDE
    public var score: Score
    /// The end time (the reference's sampling eps).
    public var eps: Double
    /// `ε_abs`, `ε_rel` of the error control (the paper: 0.0078 and 0.05 for images in [−1, 1]).
    public var absoluteTolerance: Double
    public var relativeTolerance: Double
    /// Safety factor θ, exponent r, initial step h₀.
    public var safety: Double
    public var exponent: Double
    public var initialStep: Double
    /// `.none` (the state at `eps`) or `.tweedie` (`E[x₀ | x_eps]`, one more NFE per sample).
    public var denoising: FinalDenoising
    /// A sample that has not reached `eps` after this many attempts is an error.
    public var maximumAttempts: Int
    /// What a rejected step does with its noise.
    public var rejectedNoise: RejectedNoise
    /// Rows per model call (memory only; a batched call over more active rows is split).
    public var batchSize: Int?

    /// What a rejected step does with its noise (``AdaptiveSDERejectedNoise``).
    public typealias RejectedNoise = AdaptiveSDERejectedNoise

    /// The step-size controller these settings make: per-sample decisions, the RMS norm with scale
    /// `max(ε_abs, ε_rel · max(|x'|, |x'_prev|))`, `h ← θ h ‖E/δ‖^{−r}` unclamped (the paper's
    /// Algorithm 1; the solver caps the step at the time left).
    public var controller: StepSizeController {
        StepSizeController(uncheckedAbsoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance, toleranceScale: .max,
                           norm: .perSample, safety: safety, exponent: exponent, minimumFactor: 0, maximumFactor: .infinity,
                           errorFloor: 0, holdAfterRejection: false)
    }

    /// - Throws: `invalidArgument` for tolerances that are not positive, `eps` outside `(0, T)`,
    ///   θ outside (0, 1], r ≤ 0, h₀ ≤ 0, or `.lastPredictorMean` denoising.
    public init(sde: SDE, score: Score, eps: Double, absoluteTolerance: Double = 0.0078, relativeTolerance: Double = 0.05,
                safety: Double = 0.9, exponent: Double = 0.9, initialStep: Double = 0.01,
                denoising: FinalDenoising = .none, maximumAttempts: Int = 100_000, rejectedNoise: RejectedNoise = .brownianBridge,
                batchSize: Int? = nil) throws {
        try requireParameter(eps.isFinite && eps > 0 && eps < sde.T, name: "eps", value: eps, requirement: "in (0, T = \(sde.T))", advice: "the reference uses 1e-3 for VP/sub-VP and 1e-5 for VE")
        try requireParameter(absoluteTolerance.isFinite && absoluteTolerance > 0, name: "absoluteTolerance", value: absoluteTolerance, requirement: "finite and > 0 (the absolute tolerance)", advice: "the paper uses 0.0078 for images in [-1, 1]")
        try requireParameter(relativeTolerance.isFinite && relativeTolerance >= 0, name: "relativeTolerance", value: relativeTolerance, requirement: "finite and >= 0 (the relative tolerance)", advice: "the paper uses 0.05")
        try requireParameter(safety.isFinite && safety > 0 && safety <= 1, name: "safety", value: safety, requirement: "in (0, 1]", advice: "the paper uses 0.9")
        try requireParameter(exponent.isFinite && exponent > 0, name: "exponent", value: exponent, requirement: "finite and > 0 (the step-size exponent)", advice: "the paper uses 0.9")
        try requireParameter(initialStep.isFinite && initialStep > 0, name: "initialStep", value: initialStep, requirement: "finite and > 0", advice: "the paper uses 0.01")
        try requireParameter(denoising != .lastPredictorMean, name: "denoising", value: denoising, requirement: "none or tweedie", advice: "the adaptive SDE solver has no last predictor mean")
        try requireParameter(maximumAttempts >= 1, name: "maximumAttempts", value: maximumAttempts, requirement: ">= 1")
        if let b = batchSize { try requireParameter(b >= 1, name: "batchSize", value: b, requirement: ">= 1 (or nil for one batch)") }
        self.sde = sde; self.score = score; self.eps = eps
        self.absoluteTolerance = absoluteTolerance; self.relativeTolerance = relativeTolerance
        self.safety = safety; self.exponent = exponent; self.initialStep = initialStep
        self.denoising = denoising; self.maximumAttempts = maximumAttempts; self.rejectedNoise = rejectedNoise
        self.batchSize = batchSize
    }

    /// Draws `count` samples of shape `rowShape` (default: the model's) from the prior (one draw of
    /// `rng`), then solves (one more). All rows run in this process (not split across MPI ranks).
    public func sample(count: Int, rowShape: [Int]? = nil, using rng: inout RandomSource) throws -> AdaptiveSDEResult {
        guard count > 0 else { throw ScoreSDEError.invalid("count", count, must: "> 0") }
        guard let shape = rowShape ?? score.rowShape else {
            throw ScoreSDEError.invalidArgument("the score model accepts any shape: pass rowShape")
        }
        let x = sde.samplePrior(rowShape: shape, count: count, using: &rng)
        return try sample(from: x, using: &rng)
    }

    /// Solves from `start` (rows at `T`) down to `eps` (one draw of `rng`): ``AdaptiveSDEIntegrator``
    /// stepped to the end.
    public func sample(from start: Tensor, using rng: inout RandomSource) throws -> AdaptiveSDEResult {
        var run = try AdaptiveSDEIntegrator(solver: self, start: start, using: &rng)
        return try run.solve()
    }

    /// `K = −h f̃(y, t) + g(t) ΔW` of row `row` (`f̃ = f − g² s`, the reverse drift) into `k`, in
    /// the arithmetic order of the tensor operations `(a y − g² s)·(−h) + g ΔW`.
    @inline(__always)
    func drift(_ y: Tensor, _ s: Tensor, row i: Int, d: Int, at time: Double, step: Double, dW: Tensor,
               into k: UnsafeMutablePointer<Double>) {
        let a = sde.driftCoefficient(at: time), g = sde.diffusion(at: time)
        for j in 0 ..< d {
            let o = i * d + j
            var f = y.values[o] * a
            f += -g * g * s.values[o]
            f *= -step
            f += g * dW.values[o]
            k[j] = f
        }
    }

    /// ``drift(_:_:row:d:at:step:dW:into:)`` into row `row` of `k`.
    func drift(_ y: Tensor, _ s: Tensor, row i: Int, d: Int, at time: Double, step: Double, dW: Tensor, into k: inout Tensor) {
        k.values.withUnsafeMutableBufferPointer { kp in drift(y, s, row: i, d: d, at: time, step: step, dW: dW, into: kp.baseAddress! + i * d) }
    }
}

/// ``AdaptiveSDESampler`` one round of attempts at a time, in the shape of ``ReverseIntegrator``:
/// `init` → ``step()`` … → ``result()``.
///
///     var run = try AdaptiveSDEIntegrator(solver: sampler, start: x, using: &rng)
///     while let e = try run.step() { print(e.t, e.next, e.acceptedSteps, e.rejectedSteps, e.scoreEvaluations) }
///     let out = try run.result()
///
/// Each ``step()`` is one round of ``AdaptiveSDESampler/sample(from:using:)``'s loop: every row
/// that has not reached `eps` attempts one step, each at its own time and step size, with two
/// batched model calls (2 NFE); then, with Tweedie denoising, one last step evaluates the model at
/// `eps` (1 NFE). The rows' times differ, so a round reports them as
/// ``ReverseMove/attempt(index:t:next:accepted:rejected:)`` with `t` and `next` the latest time of
/// any row before and after the round (the run ends when it reaches `eps`), the numbers of rows
/// that accepted and rejected their attempt, and every row's time after the round in
/// ``StepEvent/rowTimes`` (rows that have finished at `eps`). `sample` is this loop: same bytes.
public struct AdaptiveSDEIntegrator<SDE: ForwardSDE, Score: ScoreModel>: SteppedSolve {
    public let solver: AdaptiveSDESampler<SDE, Score>
    /// The reverse process of every model call: it counts NFE and model passes.
    public let reverse: ReverseSDE<SDE, Score>
    /// The current state, every row at its own time.
    public private(set) var state: Tensor
    /// Each row's current time, next step size, attempts, score evaluations and rejections.
    public private(set) var times: [Double], stepSizes: [Double]
    public private(set) var attempts: [UInt64]
    public private(set) var evaluations: [Int], rejections: [Int]
    /// Each row's Brownian path (``BrownianPath``; nothing is kept with ``AdaptiveSDERejectedNoise/redraw``).
    public private(set) var paths: [BrownianPath]
    /// Rounds made so far (the Tweedie step not included).
    public private(set) var rounds = 0
    private let controller: StepSizeController
    private let tolerance: Double
    /// Each row's previous accepted Euler–Maruyama value (the start at first).
    private var xPrev: Tensor
    /// Buffers of the active rows, reused by every round (rows beyond the active count unused).
    private var xa: Tensor, xEM: Tensor, s1: Tensor, s2: Tensor, dW: Tensor, k1: Tensor
    private var k2: [Double]
    private var active: [Int]
    private var denoised = false

    /// Sets up a run from `start` (rows at `T`), reserving one draw of `rng` for its noise.
    public init(solver: AdaptiveSDESampler<SDE, Score>, start: Tensor, using rng: inout RandomSource) throws {
        try solver.score.validate(start)
        try start.checkFinite("the initial state")
        let n = start.rows, d = start.rowSize, sde = solver.sde
        let base = rng.nextDraw()
        let noise = rng.derived(0x6767_6661_7374 ^ base), bridge = rng.derived(0x6272_6964_6765 ^ base)   // "ggfast", "bridge"
        self.solver = solver
        self.reverse = ReverseSDE(sde: sde, score: solver.score, batchSize: solver.batchSize)
        self.controller = solver.controller
        self.tolerance = 1e-12 * max(1, sde.T)
        self.state = start
        self.xPrev = start
        self.times = [Double](repeating: sde.T, count: n)
        self.stepSizes = [Double](repeating: min(solver.initialStep, sde.T - solver.eps), count: n)
        self.attempts = [UInt64](repeating: 0, count: n)
        self.evaluations = [Int](repeating: 0, count: n)
        self.rejections = [Int](repeating: 0, count: n)
        self.paths = (0 ..< n).map { BrownianPath(dimension: d, noise: noise, bridge: bridge, stream: $0) }
        xa = Tensor(zeros: start.shape); xEM = Tensor(zeros: start.shape); s1 = Tensor(zeros: start.shape); s2 = Tensor(zeros: start.shape)
        dW = Tensor(zeros: start.shape); k1 = Tensor(zeros: start.shape)
        k2 = [Double](repeating: 0, count: d)
        active = Array(0 ..< n)
    }

    /// True when every row has reached `eps` (and been denoised, with Tweedie denoising).
    public var isFinished: Bool {
        times.allSatisfy { $0 - solver.eps <= tolerance } && (solver.denoising != .tweedie || denoised)
    }

    /// Makes the next round of attempts (or the Tweedie step); returns its event, or nil when the
    /// run is complete.
    public mutating func step() throws -> StepEvent? {
        let end = solver.eps, sde = solver.sde
        do {
            let now = times, tolerance = self.tolerance   // read by the filter; released before the times change
            active.removeAll { now[$0] - end <= tolerance }
        }
        if active.isEmpty {
            guard solver.denoising == .tweedie, !denoised else { return nil }
            let n = state.rows
            let (m, s) = sde.marginal(at: end)
            var sc = Tensor(zeros: state.shape)
            try reverse.score(state, at: [Double](repeating: end, count: n), into: &sc)
            state.add(sc, scaledBy: s * s)
            state.scale(by: 1 / m)
            for r in 0 ..< n { evaluations[r] += 1 }
            denoised = true
            return event(.denoise(at: end), index: rounds, t: end, next: end)
        }
        let n = state.rows, d = state.rowSize, m = active.count
        if let r = active.first(where: { Int(attempts[$0]) >= solver.maximumAttempts }) {
            throw ScoreSDEError.invalidArgument("the adaptive SDE solver took \(solver.maximumAttempts) attempts on sample \(r) and is still at t = \(times[r]); raise the tolerances")
        }
        var latest = -Double.infinity   // the latest row's time before the round
        for r in active { latest = max(latest, times[r]) }
        let shape = [m] + state.rowShape
        xa.resizeRows(shape); xEM.resizeRows(shape); dW.resizeRows(shape); k1.resizeRows(shape); s1.resizeRows(shape); s2.resizeRows(shape)
        // This round's step and Brownian increment of every active row; its state gathered.
        var step = [Double](repeating: 0, count: m), next = [Double](repeating: 0, count: m)
        do {
            let active = self.active, attempts = self.attempts, h = self.stepSizes   // read by the gather; released before the counts change
            state.values.withUnsafeBufferPointer { xp in
                xa.values.withUnsafeMutableBufferPointer { ap in
                    dW.values.withUnsafeMutableBufferPointer { wp in
                        step.withUnsafeMutableBufferPointer { sp in
                            paths.withUnsafeMutableBufferPointer { pp in
                                let xb = xp.baseAddress!, ab = ap.baseAddress!, wb = wp.baseAddress!, sb = sp.baseAddress!, pb = pp.baseAddress!
                                Parallel.forEachChunk(m, grain: max(1, 4096 / max(d, 1))) { range in
                                    for i in range {
                                        let r = active[i]
                                        (ab + i * d).update(from: xb + r * d, count: d)
                                        sb[i] = pb[r].increment(over: h[r], attempt: attempts[r], into: wb + i * d)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for i in 0 ..< m { next[i] = max(times[active[i]] - step[i], end) }
        // K1 = −h f̃(x, t) + g(t) ΔW at every row's own time: one batched call.
        try reverse.score(xa, at: active.map { times[$0] }, rows: m == n ? nil : active, into: &s1)
        for i in 0 ..< m {
            let r = active[i], time = times[r]
            solver.drift(xa, s1, row: i, d: d, at: time, step: step[i], dW: dW, into: &k1)
            for j in i * d ..< (i + 1) * d { xEM.values[j] = xa.values[j] + k1.values[j] }
        }
        // K2 = −h f̃(x + K1, t − h) + g(t − h) ΔW: the second batched call.
        try reverse.score(xEM, at: next, rows: m == n ? nil : active, into: &s2)
        var accepts = 0, rejects = 0
        // Read-only for the rest of the round: the K2 closure captures these, not self.
        let method = solver, euler = xEM, scores = s2, noise = dW
        for i in 0 ..< m {
            let r = active[i]
            k2.withUnsafeMutableBufferPointer { kp in
                method.drift(euler, scores, row: i, d: d, at: next[i], step: step[i], dW: noise, into: kp.baseAddress!)
            }
            evaluations[r] += 2
            attempts[r] += 1
            // Mixed norm of E = ½ (K2 − K1) against δ = max(ε_abs, ε_rel max(|x'|, |x'_prev|)).
            var q = 0.0
            for j in 0 ..< d {
                q += controller.scaledSquare(error: 0.5 * (k2[j] - k1.values[i * d + j]), xEM.values[i * d + j], xPrev.values[r * d + j])
            }
            let norm = controller.rowNorm(sumOfSquares: q, rowSize: d)
            guard norm.isFinite else {
                throw ScoreSDEError.invalidArgument("the adaptive SDE solver's error estimate is not finite at t = \(times[r]) on sample \(r) (the score returned non-finite values?)")
            }
            let (accepted, factor) = controller.decide(error: norm)
            if accepted {
                for j in 0 ..< d { state.values[r * d + j] += 0.5 * (k1.values[i * d + j] + k2[j]) }
                for j in 0 ..< d { xPrev.values[r * d + j] = xEM.values[i * d + j] }
                times[r] = next[i]
                accepts += 1
            } else {
                rejections[r] += 1
                rejects += 1
                if solver.rejectedNoise == .brownianBridge {
                    noise.values.withUnsafeBufferPointer { wp in
                        paths[r].reject(step: step[i], increment: UnsafeBufferPointer(rebasing: wp[i * d ..< (i + 1) * d]))
                    }
                }
            }
            var hr = min(max(times[r] - end, 0), step[i] * factor)   // an error of 0: factor +∞, the rest of the way
            if times[r] - hr < end + tolerance { hr = times[r] - end }
            stepSizes[r] = hr
        }
        rounds += 1
        let after = times.max()!   // the finished rows' times too (within 1e-12 T of eps)
        return event(.attempt(index: rounds - 1, t: latest, next: after, accepted: accepts, rejected: rejects), index: rounds - 1, t: latest, next: after)
    }

    /// The samples after the last step (throws if the run is not finished or diverged).
    public func result() throws -> AdaptiveSDEResult {
        guard isFinished else {
            throw ScoreSDEError.invalidArgument("the adaptive SDE solver has made \(rounds) rounds and not every row has reached eps = \(solver.eps); call step() until it returns nil")
        }
        try state.checkFinite("the samples (the adaptive SDE solver diverged: try smaller tolerances)")
        return AdaptiveSDEResult(samples: state, scoreEvaluations: reverse.scoreEvaluations, modelPasses: reverse.modelPasses,
                                 perSampleEvaluations: evaluations, perSampleRejections: rejections)
    }

    private func event(_ move: ReverseMove, index: Int, t: Double, next: Double) -> StepEvent {
        StepEvent(index: index, total: 0, t: t, next: next, move: move,
                  scoreEvaluations: reverse.scoreEvaluations, modelPasses: reverse.modelPasses, state: state, mean: state,
                  rowTimes: times)
    }
}

/// Samples of ``AdaptiveSDESampler`` and what they cost.
public struct AdaptiveSDEResult: Sendable {
    public let samples: Tensor
    /// NFE: batched score calls (each covers every active row, each row at its own time) — 2 per
    /// round of attempts, + 1 for Tweedie denoising. The same meaning as every sampler's NFE; it
    /// equals the largest per-sample count (the paper's count, a batch run in lock-step).
    public let scoreEvaluations: Int
    /// Model passes (≥ NFE for guided scores).
    public let modelPasses: Int
    /// Each sample's own score evaluations (2 per attempted step, + 1 for Tweedie denoising): not
    /// NFE, which counts batched calls.
    public let perSampleEvaluations: [Int]
    /// Rejected steps of each sample.
    public let perSampleRejections: [Int]
    /// The mean of ``perSampleEvaluations``.
    public var meanEvaluations: Double { Double(perSampleEvaluations.reduce(0, +)) / Double(max(perSampleEvaluations.count, 1)) }
    /// The largest of ``perSampleEvaluations`` (equal to ``scoreEvaluations``).
    public var maximumPerSampleEvaluations: Int { perSampleEvaluations.max() ?? 0 }
}

/// The noise of a rejected step.
public enum AdaptiveSDERejectedNoise: String, Sendable, CaseIterable {
    /// Keep the Brownian increment and split it with the Brownian bridge for the smaller step
    /// (rejection sampling with memory, Rackauckas & Nie 2017): the path does not depend on the
    /// rejections. The default: redrawing biases the samples (see ``redraw``).
    case brownianBridge
    /// Draw new noise, as the paper's code does. Acceptance then favours noise that cancels the
    /// score's pull, which widens every mode: measured on a 4-mode 2-D mixture, per-mode variance
    /// 1.4–1.8× the true one, growing as the tolerances tighten (`scoresde-bench fast-stochastic`).
    case redraw
}

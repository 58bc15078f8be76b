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
/// `t ← t − h`. Either way `h ← min(t − eps, θ h ‖E/δ‖^{−r})` (θ = 0.9, r = 0.9, `h₀` = 0.01 as in
/// the paper). The paper's code draws new noise after a rejected step; that biases the samples
/// (``RejectedNoise/redraw``), so by default the rejected increment is kept and split with the
/// Brownian bridge (``RejectedNoise/brownianBridge``). The run ends at `eps`; each step costs 2 NFE.
///
/// Every sample is solved on its own (rows in parallel, the model called on one row at a time:
/// ``ScoreModel`` takes one time per call). ``AdaptiveSDEResult/scoreEvaluations`` is the largest
/// per-sample count — what a batch run in lock-step costs, the paper's count — and
/// ``AdaptiveSDEResult/meanEvaluations`` the mean. Row `r`'s `k`-th attempt reads draw `k` of a
/// source derived from the caller's (one draw of it), row `rowOffset + r`: same seed, same bytes
/// whatever the thread count.
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

    /// The noise of a rejected step.
    public enum RejectedNoise: String, Sendable, CaseIterable {
        /// Keep the Brownian increment and split it with the Brownian bridge for the smaller step
        /// (rejection sampling with memory, Rackauckas & Nie 2017): the path does not depend on the
        /// rejections. The default: redrawing biases the samples (see ``redraw``).
        case brownianBridge
        /// Draw new noise, as the paper's code does. Acceptance then favours noise that cancels the
        /// score's pull, which widens every mode: measured on a 4-mode 2-D mixture, per-mode variance
        /// 1.4–1.8× the true one, growing as the tolerances tighten (`scoresde-bench fast-stochastic`).
        case redraw
    }

    /// - Throws: `invalidArgument` for tolerances that are not positive, `eps` outside `(0, T)`,
    ///   θ outside (0, 1], r ≤ 0, h₀ ≤ 0, or `.lastPredictorMean` denoising.
    public init(sde: SDE, score: Score, eps: Double, absoluteTolerance: Double = 0.0078, relativeTolerance: Double = 0.05,
                safety: Double = 0.9, exponent: Double = 0.9, initialStep: Double = 0.01,
                denoising: FinalDenoising = .none, maximumAttempts: Int = 100_000, rejectedNoise: RejectedNoise = .brownianBridge) throws {
        try requireParameter(eps.isFinite && eps > 0 && eps < sde.T, "eps must be in (0, T = \(sde.T)) (got \(eps)); the reference uses 1e-3 for VP/sub-VP and 1e-5 for VE")
        try requireParameter(absoluteTolerance.isFinite && absoluteTolerance > 0, "the absolute tolerance must be a finite number > 0 (got \(absoluteTolerance)); the paper uses 0.0078 for images in [-1, 1]")
        try requireParameter(relativeTolerance.isFinite && relativeTolerance >= 0, "the relative tolerance must be a finite number >= 0 (got \(relativeTolerance)); the paper uses 0.05")
        try requireParameter(safety.isFinite && safety > 0 && safety <= 1, "the safety factor must be in (0, 1] (got \(safety)); the paper uses 0.9")
        try requireParameter(exponent.isFinite && exponent > 0, "the step-size exponent must be > 0 (got \(exponent)); the paper uses 0.9")
        try requireParameter(initialStep.isFinite && initialStep > 0, "the initial step must be > 0 (got \(initialStep)); the paper uses 0.01")
        try requireParameter(denoising != .lastPredictorMean, "the adaptive SDE solver's final denoising is none or tweedie (it has no last predictor mean)")
        try requireParameter(maximumAttempts >= 1, "maximumAttempts must be >= 1 (got \(maximumAttempts))")
        self.sde = sde; self.score = score; self.eps = eps
        self.absoluteTolerance = absoluteTolerance; self.relativeTolerance = relativeTolerance
        self.safety = safety; self.exponent = exponent; self.initialStep = initialStep
        self.denoising = denoising; self.maximumAttempts = maximumAttempts; self.rejectedNoise = rejectedNoise
    }

    /// Draws `count` samples of shape `rowShape` (default: the model's) from the prior (one draw of
    /// `rng`), then solves (one more). All rows run in this process (not split across MPI ranks).
    public func sample(count: Int, rowShape: [Int]? = nil, using rng: inout RandomSource) throws -> AdaptiveSDEResult {
        guard count > 0 else { throw ScoreSDEError.invalidArgument("count must be > 0 (got \(count))") }
        guard let shape = rowShape ?? score.rowShape else {
            throw ScoreSDEError.invalidArgument("the score model accepts any shape: pass rowShape")
        }
        let x = sde.samplePrior(rowShape: shape, count: count, using: &rng)
        return try sample(from: x, using: &rng)
    }

    /// Solves from `start` (rows at `T`) down to `eps`.
    public func sample(from start: Tensor, using rng: inout RandomSource) throws -> AdaptiveSDEResult {
        try score.validate(start)
        try start.checkFinite("the initial state")
        let n = start.rows, d = start.rowSize
        let base = rng.nextDraw()
        let noise = rng.derived(0x6767_6661_7374 ^ base), bridge = rng.derived(0x6272_6964_6765 ^ base)   // "ggfast", "bridge"
        var out = start
        var evaluations = [Int](repeating: 0, count: n), rejections = [Int](repeating: 0, count: n)
        var failure: ScoreSDEError?
        let lock = NSLock()
        let rowShape = [1] + start.rowShape
        out.values.withUnsafeMutableBufferPointer { op in
            evaluations.withUnsafeMutableBufferPointer { ep in
                rejections.withUnsafeMutableBufferPointer { rp in
                    let ob = op.baseAddress!, eb = ep.baseAddress!, rb = rp.baseAddress!
                    Parallel.forEachChunk(n, grain: 1) { range in
                        for r in range {
                            do {
                                var row = Tensor(uncheckedShape: rowShape, storage: Array(UnsafeBufferPointer(start: ob + r * d, count: d)))
                                let (e, j) = try solveRow(&row, row: r, noise: noise, bridge: bridge)
                                for k in 0 ..< d { ob[r * d + k] = row.values[k] }
                                eb[r] = e; rb[r] = j
                            } catch {
                                lock.lock()
                                if failure == nil { failure = (error as? ScoreSDEError) ?? .invalidArgument("row \(r): \(error)") }
                                lock.unlock()
                            }
                        }
                    }
                }
            }
        }
        if let failure { throw failure }
        try out.checkFinite("the samples (the adaptive SDE solver diverged: try smaller tolerances)")
        return AdaptiveSDEResult(samples: out, perSampleEvaluations: evaluations, perSampleRejections: rejections)
    }

    /// One sample from `T` to `eps`; returns its NFE and rejected steps.
    func solveRow(_ x: inout Tensor, row: Int, noise: RandomSource, bridge: RandomSource) throws -> (Int, Int) {
        let d = x.rowSize, end = eps
        var t = sde.T, h = min(initialStep, t - end)
        var xPrev = x          // the previous accepted Euler–Maruyama value (the start at first)
        var z = Tensor(zeros: x.shape)
        var nfe = 0, rejected = 0, attempt: UInt64 = 0
        func reverseDrift(_ y: Tensor, _ s: Tensor, _ time: Double) -> Tensor {
            let a = sde.driftCoefficient(at: time), g = sde.diffusion(at: time)
            var f = y.scaled(by: a)
            f.add(s, scaledBy: -g * g)
            return f
        }
        // Future Brownian increments (interval, ΔW), the next one last: a rejected step's increment is
        // kept and split with the Brownian bridge (RSwM, Rackauckas & Nie 2017) unless `.redraw`.
        var stack: [(dt: Double, dW: Tensor)] = []
        var xi = Tensor(zeros: x.shape)
        while t - end > 1e-12 * max(1, sde.T) {
            guard Int(attempt) < maximumAttempts else {
                throw ScoreSDEError.invalidArgument("the adaptive SDE solver took \(maximumAttempts) attempts on sample \(row) and is still at t = \(t); raise the tolerances")
            }
            var step = h
            var dW: Tensor
            if rejectedNoise == .brownianBridge, let top = stack.last {
                if step >= top.dt * (1 - 1e-12) {
                    step = top.dt; dW = top.dW; stack.removeLast()
                } else {   // W(step) | W(top.dt) = top.dW: mean (step/dt) ΔW, variance step (dt − step)/dt
                    xi.values.withUnsafeMutableBufferPointer { zp in bridge.normals(draw: attempt, rows: row ..< row + 1, rowSize: d, into: zp.baseAddress!) }
                    dW = top.dW.scaled(by: step / top.dt)
                    dW.add(xi, scaledBy: (step * (top.dt - step) / top.dt).squareRoot())
                    stack[stack.count - 1] = (top.dt - step, top.dW.adding(dW, scaledBy: -1))
                }
            } else {
                z.values.withUnsafeMutableBufferPointer { zp in noise.normals(draw: attempt, rows: row ..< row + 1, rowSize: d, into: zp.baseAddress!) }
                dW = z.scaled(by: step.squareRoot())
            }
            attempt += 1
            let s1 = try score.score(x, at: t)
            var k1 = reverseDrift(x, s1, t).scaled(by: -step)
            k1.add(dW, scaledBy: sde.diffusion(at: t))
            let xEM = x.adding(k1)
            let tn = max(t - step, end)
            let s2 = try score.score(xEM, at: tn)
            var k2 = reverseDrift(xEM, s2, tn).scaled(by: -step)
            k2.add(dW, scaledBy: sde.diffusion(at: tn))
            nfe += 2
            // Mixed norm of E = ½ (K2 − K1) against δ = max(ε_abs, ε_rel max(|x'|, |x'_prev|)).
            var q = 0.0
            for j in 0 ..< d {
                let e = 0.5 * (k2.values[j] - k1.values[j])
                let delta = max(absoluteTolerance, relativeTolerance * max(abs(xEM.values[j]), abs(xPrev.values[j])))
                q += (e / delta) * (e / delta)
            }
            let norm = (q / Double(d)).squareRoot()
            guard norm.isFinite else {
                throw ScoreSDEError.invalidArgument("the adaptive SDE solver's error estimate is not finite at t = \(t) on sample \(row) (the score returned non-finite values?)")
            }
            if norm <= 1 {
                for j in 0 ..< d { x.values[j] += 0.5 * (k1.values[j] + k2.values[j]) }
                xPrev = xEM
                t = tn
            } else {
                rejected += 1
                if rejectedNoise == .brownianBridge { stack.append((step, dW)) }
            }
            h = norm == 0 ? t - end : min(max(t - end, 0), safety * step * Foundation.pow(norm, -exponent))
            if t - h < end + 1e-12 * max(1, sde.T) { h = t - end }
        }
        if denoising == .tweedie {
            let (m, s) = sde.marginal(at: end)
            let sc = try score.score(x, at: end)
            x.add(sc, scaledBy: s * s)
            x.scale(by: 1 / m)
            nfe += 1
        }
        return (nfe, rejected)
    }
}

/// Samples of ``AdaptiveSDESampler`` and what they cost per sample.
public struct AdaptiveSDEResult: Sendable {
    public let samples: Tensor
    /// NFE of each sample (2 per attempted step, + 1 for Tweedie denoising).
    public let perSampleEvaluations: [Int]
    /// Rejected steps of each sample.
    public let perSampleRejections: [Int]
    /// The largest per-sample NFE: what the samples cost run as one batch in lock-step (the paper's count).
    public var scoreEvaluations: Int { perSampleEvaluations.max() ?? 0 }
    /// The mean per-sample NFE.
    public var meanEvaluations: Double { Double(perSampleEvaluations.reduce(0, +)) / Double(max(perSampleEvaluations.count, 1)) }
}

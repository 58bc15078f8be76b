/// What a sampler returns after the last step.
public enum FinalDenoising: String, Sendable, CaseIterable {
    /// The noise-free mean of the last predictor step (score_sde's `denoise=True`; no extra NFE).
    case lastPredictorMean
    /// Tweedie's formula `E[x₀ | x_t] = (x + std(t)² s(x, t)) / meanScale(t)` at the last step's
    /// start (`eps`) in place of the last predictor step (Song et al. 2021, App. G); same NFE.
    case tweedie
    /// The last noisy iterate.
    case none
}

/// Order of the two updates within a step.
public enum PCOrder: String, Sendable, CaseIterable {
    /// Corrector, then predictor (score_sde's code; the last predictor mean is the denoised output).
    case correctorFirst
    /// Predictor, then corrector (the paper's Algorithm 1); no correction after the last step,
    /// which ends at t = 0.
    case predictorFirst
}

/// Progress of a sampler, reported after each step.
public struct StepEvent: Sendable {
    public let index: Int, total: Int
    public let t: Double, next: Double
    public let scoreEvaluations: Int
}

/// Samples and what they cost.
public struct SamplingResult: Sendable {
    public let samples: Tensor
    /// Batched score evaluations (NFE), including any denoising evaluation.
    public let scoreEvaluations: Int
    public let steps: Int
}

/// Predictor–corrector sampler (Song et al. 2021, Algorithm 1): from the prior at `T`, for each
/// interval of the grid, one predictor step and the corrector's steps.
///
///     let sde = try VESDE()
///     let sampler = PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde),
///                             grid: try .uniform(steps: 1000, from: sde.T, to: 1e-5),
///                             predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
///     var rng = RandomSource(seed: 42)
///     let run = try sampler.sample(count: 4096, using: &rng)
///     print(run.samples.shape, run.scoreEvaluations)        // [4096, 2] 2000
///
/// The whole population evolves together; `batchSize` only bounds the rows per score-model call.
/// Same seed, same samples, whatever the thread count or batch size.
public struct PCSampler<SDE: ForwardSDE, Score: ScoreModel, P: Predictor, C: Corrector> {
    public var sde: SDE
    public var score: Score
    public var grid: TimeGrid
    public var predictor: P
    public var corrector: C
    public var order: PCOrder
    public var denoising: FinalDenoising
    public var batchSize: Int?

    public init(sde: SDE, score: Score, grid: TimeGrid, predictor: P, corrector: C,
                order: PCOrder = .correctorFirst, denoising: FinalDenoising = .lastPredictorMean, batchSize: Int? = nil) {
        self.sde = sde; self.score = score; self.grid = grid; self.predictor = predictor; self.corrector = corrector
        self.order = order; self.denoising = denoising; self.batchSize = batchSize
    }

    /// Draws `count` samples of shape `rowShape` (default: the model's) starting from the prior.
    public func sample(count: Int, rowShape: [Int]? = nil, using rng: inout RandomSource,
                       onStep: ((StepEvent) -> Void)? = nil) throws -> SamplingResult {
        guard count > 0 else { throw ScoreSDEError.invalidArgument("count must be > 0 (got \(count))") }
        guard let shape = rowShape ?? score.rowShape else {
            throw ScoreSDEError.invalidArgument("the score model accepts any shape: pass rowShape")
        }
        if let b = batchSize, b < 1 { throw ScoreSDEError.invalidArgument("batch size must be >= 1 (got \(b))") }
        let x = sde.samplePrior(rowShape: shape, count: count, using: &rng)
        return try sample(from: x, using: &rng, onStep: onStep)
    }

    /// Runs the sampler from a given state at `grid.times[0]` (e.g. a prior sample of your own).
    public func sample(from start: Tensor, using rng: inout RandomSource,
                       onStep: ((StepEvent) -> Void)? = nil) throws -> SamplingResult {
        try score.validate(start)
        try start.checkFinite("the initial state")
        let reverse = ReverseSDE(sde: sde, score: score, batchSize: batchSize)
        var x = start
        var mean = x
        let intervals = grid.intervals
        if denoising == .tweedie, grid.times[grid.steps - 1] <= 0 {
            throw ScoreSDEError.invalidArgument("Tweedie denoising needs the last step to start at a time > 0")
        }
        var out: Tensor?
        for (i, (t, next)) in intervals.enumerated() {
            let last = i == intervals.count - 1
            switch order {
            case .correctorFirst:
                try corrector.correct(&x, at: t, along: reverse, using: &rng)
                if last && denoising == .tweedie {
                    out = try tweedie(x, at: t, along: reverse)
                } else {
                    mean = try predictor.step(&x, from: t, to: next, along: reverse, using: &rng)
                }
            case .predictorFirst:
                if last && denoising == .tweedie {
                    out = try tweedie(x, at: t, along: reverse)
                } else {
                    mean = try predictor.step(&x, from: t, to: next, along: reverse, using: &rng)
                    // The paper's order corrects at every noise level; there is none at t = 0.
                    if next > 0 { try corrector.correct(&x, at: next, along: reverse, using: &rng) }
                }
            }
            onStep?(StepEvent(index: i, total: intervals.count, t: t, next: next, scoreEvaluations: reverse.scoreEvaluations))
        }
        switch denoising {
        case .lastPredictorMean: out = mean   // no corrector follows the last step in either order
        case .none: out = x
        case .tweedie: break
        }
        guard let out else { preconditionFailure("PCSampler: no output") }
        try out.checkFinite("the samples (the sampler diverged: try more steps, a smaller snr, or another predictor)")
        return SamplingResult(samples: out, scoreEvaluations: reverse.scoreEvaluations, steps: intervals.count)
    }

    /// `(x + std(t)² s(x, t)) / meanScale(t)`.
    private func tweedie(_ x: Tensor, at t: Double, along reverse: ReverseSDE<SDE, Score>) throws -> Tensor {
        let (m, s) = sde.marginal(at: t)
        var y = x
        y.add(try reverse.score(x, at: t), scaledBy: s * s)
        y.scale(by: 1 / m)
        return y
    }
}

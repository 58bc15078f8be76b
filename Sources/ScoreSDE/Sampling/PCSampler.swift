/// What a sampler returns after the last step.
public enum FinalDenoising: String, Sendable, CaseIterable {
    /// The noise-free mean of the last predictor step (score_sde's `denoise=True`; no extra NFE).
    case lastPredictorMean
    /// Tweedie's formula at the final time, `(x + std² s(x)) / meanScale` (one extra NFE, counted).
    case tweedie
    /// The last noisy iterate.
    case none
}

/// Order of the two updates within a step.
public enum PCOrder: String, Sendable, CaseIterable {
    /// Corrector, then predictor (score_sde's code; the last predictor mean is the denoised output).
    case correctorFirst
    /// Predictor, then corrector (the paper's Algorithm 1).
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
        for (i, (t, next)) in intervals.enumerated() {
            switch order {
            case .correctorFirst:
                try corrector.correct(&x, at: t, along: reverse, using: &rng)
                mean = try predictor.step(&x, from: t, to: next, along: reverse, using: &rng)
            case .predictorFirst:
                mean = try predictor.step(&x, from: t, to: next, along: reverse, using: &rng)
                try corrector.correct(&x, at: next, along: reverse, using: &rng)
            }
            onStep?(StepEvent(index: i, total: intervals.count, t: t, next: next, scoreEvaluations: reverse.scoreEvaluations))
        }
        var out: Tensor
        switch denoising {
        case .lastPredictorMean: out = order == .correctorFirst ? mean : x
        case .none: out = x
        case .tweedie:
            let tEnd = grid.times[grid.steps]
            let (m, s) = sde.marginal(at: tEnd)
            out = x
            out.add(try reverse.score(x, at: tEnd), scaledBy: s * s)
            out.scale(by: 1 / m)
        }
        try out.checkFinite("the samples (the sampler diverged: try more steps, a smaller snr, or another predictor)")
        return SamplingResult(samples: out, scoreEvaluations: reverse.scoreEvaluations, steps: intervals.count)
    }
}

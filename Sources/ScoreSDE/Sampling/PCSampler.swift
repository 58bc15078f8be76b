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
///
/// **Inverse problems.** A `constraint` (``SamplingConstraint``: ``Inpainting``, ``Colorization``,
/// ``LinearMeasurementConstraint`` or your own) is applied to the whole population once at the
/// start and after every corrector and predictor update, as score_sde's inpainter and colorizer
/// wrap both updates. `resampling` (``Resampling``, RePaint: Lugmayr et al. 2022) runs blocks of
/// `jumpLength` intervals `count` times, carrying the state back from the block's end to its start
/// with the forward kernel between runs, so the constrained coordinates get `count − 1` extra
/// chances to harmonise with the rest; NFE grows `count`-fold.
public struct PCSampler<SDE: ForwardSDE, Score: ScoreModel, P: Predictor, C: Corrector> {
    public var sde: SDE
    public var score: Score
    public var grid: TimeGrid
    public var predictor: P
    public var corrector: C
    public var order: PCOrder
    public var denoising: FinalDenoising
    public var batchSize: Int?
    /// Applied after every update (nil: unconditional sampling).
    public var constraint: (any SamplingConstraint)?
    /// RePaint's resampling schedule (`.none`: each interval once).
    public var resampling: Resampling

    public init(sde: SDE, score: Score, grid: TimeGrid, predictor: P, corrector: C,
                order: PCOrder = .correctorFirst, denoising: FinalDenoising = .lastPredictorMean, batchSize: Int? = nil,
                constraint: (any SamplingConstraint)? = nil, resampling: Resampling = .none) {
        self.sde = sde; self.score = score; self.grid = grid; self.predictor = predictor; self.corrector = corrector
        self.order = order; self.denoising = denoising; self.batchSize = batchSize
        self.constraint = constraint; self.resampling = resampling
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
        try resampling.validate()
        let reverse = ReverseSDE(sde: sde, score: score, batchSize: batchSize)
        // Correctors target p_t(x | y): a constraint may add a closed-form likelihood term to the
        // score they see (noisy measurements); predictors and Tweedie use the plain score.
        let correcting = ConditionedReverseProcess(base: reverse, constraint: constraint)
        var x = start
        var mean = x
        let intervals = grid.intervals
        if denoising == .tweedie, grid.times[grid.steps - 1] <= 0 {
            throw ScoreSDEError.invalidArgument("Tweedie denoising needs the last step to start at a time > 0")
        }
        let steps = intervals.count
        /// Applies the constraint (if any) after an update.
        func constrain(_ phase: ConstraintPhase, time: Double, updateTime: Double, step: Int, mean m: inout Tensor) throws {
            guard let constraint else { return }
            try constraint.apply(&x, mean: &m, context: ConstraintContext(phase: phase, time: time, updateTime: updateTime,
                                                                       step: step, steps: steps, sde: sde), using: &rng)
        }
        func constrainCorrected(time: Double, step: Int) throws {
            guard constraint != nil else { return }
            var discarded = x
            try constrain(.corrector, time: time, updateTime: time, step: step, mean: &discarded)
        }
        if let constraint {
            try constraint.validate(x)
            var discarded = x
            try constrain(.start, time: grid.times[0], updateTime: grid.times[0], step: 0, mean: &discarded)
        }
        var out: Tensor?
        /// One interval: corrector and predictor in the chosen order, each followed by the constraint.
        func runInterval(_ i: Int, report: Bool) throws {
            let (t, next) = intervals[i]
            switch order {
            case .correctorFirst:
                try corrector.correct(&x, at: t, along: correcting, using: &rng)
                try constrainCorrected(time: t, step: i)
                mean = try predictor.step(&x, from: t, to: next, along: reverse, using: &rng)
                try constrain(.predictor, time: next, updateTime: t, step: i, mean: &mean)
            case .predictorFirst:
                mean = try predictor.step(&x, from: t, to: next, along: reverse, using: &rng)
                try constrain(.predictor, time: next, updateTime: t, step: i, mean: &mean)
                // The paper's order corrects at every noise level; there is none at t = 0.
                if next > 0 {
                    try corrector.correct(&x, at: next, along: correcting, using: &rng)
                    try constrainCorrected(time: next, step: i)
                }
            }
            if report { onStep?(StepEvent(index: i, total: intervals.count, t: t, next: next, scoreEvaluations: reverse.scoreEvaluations)) }
        }
        // The last interval is the Tweedie step when asked for; resampling blocks cover the others.
        let tweedieLast = denoising == .tweedie
        let regular = tweedieLast ? steps - 1 : steps
        var blockStart = 0
        while blockStart < regular {
            let blockEnd = min(regular, blockStart + resampling.jumpLength)
            for run in 0 ..< resampling.count {
                if run > 0 {
                    forwardJump(&x, from: grid.times[blockEnd], to: grid.times[blockStart], using: &rng)
                    if constraint != nil {
                        var discarded = x
                        try constrain(.jump, time: grid.times[blockStart], updateTime: grid.times[blockEnd], step: blockStart, mean: &discarded)
                    }
                }
                for i in blockStart ..< blockEnd { try runInterval(i, report: run == resampling.count - 1) }
            }
            blockStart = blockEnd
        }
        if tweedieLast {
            let i = steps - 1, (t, next) = intervals[i]
            if order == .correctorFirst {
                try corrector.correct(&x, at: t, along: correcting, using: &rng)
                try constrainCorrected(time: t, step: i)
            }
            var estimate = try tweedie(x, at: t, along: reverse)
            if constraint != nil {
                x = estimate
                try constrain(.final, time: 0, updateTime: t, step: i, mean: &estimate)
            }
            out = estimate
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

    /// The forward kernel from `next` back to `t > next` (RePaint's jump):
    /// `x ← (m_t/m_n) x + √(s_t² − (m_t/m_n)² s_n²) z`.
    private func forwardJump(_ x: inout Tensor, from next: Double, to t: Double, using rng: inout RandomSource) {
        let (mn, sn) = sde.marginal(at: next), (mt, st) = sde.marginal(at: t)
        let ratio = mt / mn
        let v = max(st * st - ratio * ratio * sn * sn, 0)
        x.scale(by: ratio)
        x.addStandardNormal(scaledBy: v.squareRoot(), using: &rng)
    }

    /// `(x + std(t)² s(x, t)) / meanScale(t)`.
    private func tweedie(_ x: Tensor, at t: Double, along reverse: some ReverseProcess) throws -> Tensor {
        let (m, s) = sde.marginal(at: t)
        var y = x
        y.add(try reverse.score(x, at: t), scaledBy: s * s)
        y.scale(by: 1 / m)
        return y
    }
}

/// RePaint's resampling schedule (Lugmayr et al. 2022): the sampler's intervals are grouped in
/// blocks of `jumpLength`; each block is run `count` times, and between runs the state is carried
/// back from the block's last time to its first with the forward kernel
/// `x ← (m_a/m_b) x + √(s_a² − (m_a/m_b)² s_b²) z`. Meant for constrained sampling (the
/// constraint's information propagates to the free coordinates over repeated runs); costs
/// `count ×` the NFE. RePaint's images use `count` 10, `jumpLength` 10 on 250 steps.
public struct Resampling: Sendable, Equatable {
    public var count: Int
    public var jumpLength: Int

    /// - Throws: `invalidArgument` unless `count >= 1` and `jumpLength >= 1`.
    public init(count: Int, jumpLength: Int = 1) throws {
        self.count = count; self.jumpLength = jumpLength
        try validate()
    }

    init(uncheckedCount count: Int, jumpLength: Int) { self.count = count; self.jumpLength = jumpLength }

    /// Each interval once.
    public static let none = Resampling(uncheckedCount: 1, jumpLength: 1)

    func validate() throws {
        try requireParameter(count >= 1, "resampling count must be >= 1 (got \(count)); 1 runs each interval once")
        try requireParameter(jumpLength >= 1, "resampling jump length must be >= 1 interval (got \(jumpLength))")
    }
}

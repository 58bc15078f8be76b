/// Predictor–corrector sampler (Song et al. 2021, Algorithm 1): from the prior at `T`, for each
/// interval of the grid, one predictor step and the corrector's steps. A convenience over
/// ``ReverseIntegrator`` (which it builds and runs): use the integrator to step by hand.
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
/// Same seed, same samples, whatever the thread count or batch size. Any grid is correct: the
/// steps read their coefficients from each interval.
///
/// **Inverse problems.** A `constraint` (``SamplingConstraint``: ``Inpainting``, ``Colorization``,
/// ``LinearMeasurementConstraint`` or your own) is applied to the whole population once at the
/// start and after every corrector and predictor update, as score_sde's inpainter and colorizer
/// wrap both updates. `resampling` (``Resampling``, RePaint: Lugmayr et al. 2022) runs blocks of
/// `jumpLength` intervals `count` times, carrying the state back from the block's end to its start
/// with the forward kernel between runs; NFE grows `count`-fold.
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
    /// Under ``Population/communicator`` (e.g. MPI ranks) the rows are split across processes and
    /// every process returns all of them, byte-identical to one process (unconstrained runs).
    public func sample(count: Int, rowShape: [Int]? = nil, using rng: inout RandomSource,
                       onStep: ((StepEvent) -> Void)? = nil) throws -> SamplingResult {
        guard count > 0 else { throw ScoreSDEError.invalid("count", count, must: "> 0") }
        guard let shape = rowShape ?? score.rowShape else {
            throw ScoreSDEError.invalidArgument("the score model accepts any shape: pass rowShape")
        }
        if let b = batchSize, b < 1 { throw ScoreSDEError.invalid("batchSize", b, must: ">= 1 (or nil for one batch)") }
        try predictor.validate(grid: grid, sde: sde)
        try corrector.validate(grid: grid, sde: sde)
        // Under `Population.communicator` each process runs its own rows (keyed by global row,
        // so the draws are a single run's) and every process gets all rows back.
        // A constraint may hold per-row data for the whole population: such runs are not split.
        var source = rng, steps = 0, nfe = 0, passes = 0
        let world = constraint == nil ? Population.communicator : nil
        let samples = try Population.$communicator.withValue(world) { try Population.split(count: count) { rows in
            var local = rng
            local.rowOffset += rows.lowerBound
            let x = sde.samplePrior(rowShape: shape, count: rows.count, using: &local)
            let run = try sample(from: x, using: &local, onStep: onStep)
            (source.draw, steps, nfe, passes) = (local.draw, run.steps, run.scoreEvaluations, run.modelPasses)
            return run.samples
        } }
        rng.draw = source.draw
        return SamplingResult(samples: samples, scoreEvaluations: nfe, modelPasses: passes, steps: steps)
    }

    /// Runs the sampler from a given state at `grid.times[0]` (e.g. a prior sample of your own).
    /// Calls `onStep` after each grid step (not for RePaint's repeated runs and jumps).
    public func sample(from start: Tensor, using rng: inout RandomSource,
                       onStep: ((StepEvent) -> Void)? = nil) throws -> SamplingResult {
        var integrator = try makeIntegrator(from: start, rng: rng)
        let result = try integrator.solve { event in if !event.isRepeated { onStep?(event) } }
        rng = integrator.rng
        return result
    }

    /// The integrator this sampler runs, for stepping by hand.
    public func makeIntegrator(from start: Tensor, rng: RandomSource) throws -> ReverseIntegrator<SDE, Score, P, C> {
        try ReverseIntegrator(sde: sde, score: score, grid: grid, predictor: predictor, corrector: corrector,
                              order: order, denoising: denoising, batchSize: batchSize, constraint: constraint,
                              resampling: resampling, start: start, rng: rng)
    }
}

/// Result of an ODE solve over a batch.
public struct ODEResult: Sendable {
    /// The states at the end of the solve (samples, latents or reconstructions).
    public let states: Tensor
    /// Batched score evaluations (NFE), including a denoising evaluation when asked for.
    public let scoreEvaluations: Int
    public let statistics: ODERunStatistics
    /// Model passes (≥ NFE for guided scores).
    public var modelPasses: Int { statistics.modelPasses }
}

/// Samples by solving the probability-flow ODE `dx = [f − ½ g² s] dt` from the prior at `T` down
/// to `eps` with an adaptive GSL integrator; also encodes data to latents (`eps → T`) and decodes
/// latents (`T → eps`), a bijection up to the solver tolerance.
///
///     let sampler = ODESampler(sde: sde, score: score, eps: 1e-3,
///                              solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5))
///     let run = try sampler.sample(count: 4096, using: &rng)
///     let z = try sampler.encode(run.states).states        // latents
///
/// Reference: Song et al. 2021, §4.3 and App. D; score_sde `get_ode_sampler` (RK45, rtol = atol = 1e-5).
public struct ODESampler<SDE: ForwardSDE, Score: ScoreModel> {
    public var sde: SDE
    public var score: Score
    public var solver: ODESolverOptions
    public var eps: Double
    public var layout: ODESystemLayout
    /// One noise-free reverse-diffusion step at `eps` after sampling (score_sde's `denoise`; its NFE is counted).
    public var denoise: Bool
    /// Rows per score-model call in the `.batch` layout (memory only; never changes results).
    public var batchSize: Int?

    public init(sde: SDE, score: Score, eps: Double, solver: ODESolverOptions,
                layout: ODESystemLayout = .batch, denoise: Bool = false, batchSize: Int? = nil) {
        self.sde = sde; self.score = score; self.eps = eps; self.solver = solver
        self.layout = layout; self.denoise = denoise; self.batchSize = batchSize
    }

    var flow: ProbabilityFlow<SDE, Score> { ProbabilityFlow(sde: sde, score: score, solver: solver, batchSize: batchSize) }

    /// Draws `count` prior samples and decodes them.
    public func sample(count: Int, rowShape: [Int]? = nil, using rng: inout RandomSource) throws -> ODEResult {
        guard count > 0 else { throw ScoreSDEError.invalid("count", count, must: "> 0") }
        guard let shape = rowShape ?? score.rowShape else {
            throw ScoreSDEError.invalidArgument("the score model accepts any shape: pass rowShape")
        }
        try flow.validateTimes(eps, sde.T)
        return try decode(sde.samplePrior(rowShape: shape, count: count, using: &rng))
    }

    /// Solves from latents at `T` down to `eps` (then denoises if asked): ``ProbabilityFlowIntegrator``
    /// stepped to the end (the per-sample layout under a ``Population/communicator``: rows split
    /// across processes, the same bytes).
    public func decode(_ latents: Tensor) throws -> ODEResult {
        if layout == .perSample, let comm = Population.communicator, comm.size > 1 {
            var x = latents
            let flow = self.flow
            var (_, stats) = try flow.integrate(&x, from: sde.T, to: eps, layout: layout, divergence: nil)
            if denoise {
                try denoiseStep(&x, counter: flow.counter)
                stats.scoreEvaluations = flow.counter.scoreEvaluations
                stats.modelPasses = flow.counter.modelPasses
            }
            try x.checkFinite("the decoded samples")
            return ODEResult(states: x, scoreEvaluations: stats.scoreEvaluations, statistics: stats)
        }
        var run = try ProbabilityFlowIntegrator(sampler: self, latents: latents)
        return try run.solve()
    }

    /// score_sde's `denoise`: one reverse-diffusion step at `eps`, its noise-free mean (1 NFE, on `counter`).
    func denoiseStep(_ x: inout Tensor, counter: EvaluationCounter) throws {
        let reverse = ReverseSDE(sde: sde, score: score, batchSize: batchSize, counter: counter)
        var unused = RandomSource(seed: 0), unusedState: Void = ()
        var noisy = x   // the step's noisy output is discarded; its mean is the denoised sample
        try ReverseDiffusion().step(&noisy, mean: &x, state: &unusedState, from: eps, to: 0, along: reverse, using: &unused)
    }

    /// Solves from data at `eps` up to `T`: the latent codes of `data`.
    public func encode(_ data: Tensor) throws -> ODEResult {
        var x = data
        let (_, stats) = try flow.integrate(&x, from: eps, to: sde.T, layout: layout, divergence: nil)
        return ODEResult(states: x, scoreEvaluations: stats.scoreEvaluations, statistics: stats)
    }
}

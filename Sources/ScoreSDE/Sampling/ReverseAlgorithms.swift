// The algorithms of `solve(_:_:using:onStep:)`: each is its settings only (the problem brings the
// SDE, the score, the start and the end time) and builds the library's own stepped integrator.

/// Predictor–corrector sampling on a fixed grid (Song et al. 2021, Algorithm 1) with any
/// ``Predictor`` and ``Corrector`` — ``ReverseIntegrator``, as ``PCSampler`` runs it: the same
/// bytes. The only algorithm family that applies a ``ReverseProblem/constraint`` (inverse problems)
/// and RePaint's ``Resampling``.
///
///     let pc = PredictorCorrectorAlgorithm(steps: 1000, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
///     let run = try solve(ReverseProblem(sde: sde, score: score, count: 4096, eps: 1e-3), pc, using: &rng)
public struct PredictorCorrectorAlgorithm<P: Predictor, C: Corrector>: ReverseAlgorithm {
    /// The grid; nil: ``steps`` uniform steps from `T` to the problem's `eps`.
    public var grid: TimeGrid?
    /// Grid intervals (the given grid's when there is one).
    public var steps: Int
    /// The step from each grid time to the next, and the refinement at each time.
    public var predictor: P
    public var corrector: C
    /// Corrector first (score_sde's code) or predictor first (the paper's Algorithm 1).
    public var order: PCOrder
    /// What the run returns after its last step.
    public var denoising: FinalDenoising
    /// RePaint's resampling schedule (`.none`: each interval once).
    public var resampling: Resampling
    /// Reported in ``ReverseSolution/algorithm`` (`pc`; the CLI names its few-step runs by method).
    public var name: String

    /// `steps` uniform steps from `T` to `eps` (score_sde's grid).
    public init(steps: Int, predictor: P, corrector: C, order: PCOrder = .correctorFirst,
                denoising: FinalDenoising = .lastPredictorMean, resampling: Resampling = .none, name: String = "pc") {
        self.grid = nil; self.steps = steps; self.predictor = predictor; self.corrector = corrector
        self.order = order; self.denoising = denoising; self.resampling = resampling; self.name = name
    }

    /// On a grid of your own (it starts at or below `T`; the problem's `eps` is not used).
    public init(grid: TimeGrid, predictor: P, corrector: C, order: PCOrder = .correctorFirst,
                denoising: FinalDenoising = .lastPredictorMean, resampling: Resampling = .none, name: String = "pc") {
        self.grid = grid; self.steps = grid.steps; self.predictor = predictor; self.corrector = corrector
        self.order = order; self.denoising = denoising; self.resampling = resampling; self.name = name
    }

    /// The grid this algorithm runs for `problem`.
    public func grid<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>) throws -> TimeGrid {
        try grid ?? TimeGrid.uniform(steps: steps, from: problem.sde.T, to: problem.eps)
    }

    /// Grid steps the run makes: every interval once, RePaint's repeated runs each time.
    func gridSteps<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>) throws -> Int {
        ReverseIntegrator<SDE, Score, P, C>.schedule(try grid(for: problem), resampling: resampling, tweedieLast: denoising == .tweedie)
            .reduce(0) { if case .step = $1 { return $0 + 1 }; return $0 }
    }

    func sampler<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>) throws -> PCSampler<SDE, Score, P, C> {
        PCSampler(sde: problem.sde, score: problem.score, grid: try grid(for: problem), predictor: predictor, corrector: corrector,
                  order: order, denoising: denoising, batchSize: problem.batchSize, constraint: problem.constraint, resampling: resampling)
    }

    public func validate<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>) throws {
        let grid = try grid(for: problem)
        if let b = problem.batchSize, b < 1 { throw ScoreSDEError.invalid("batchSize", b, must: ">= 1") }
        try resampling.validate()
        try predictor.validate(grid: grid, sde: problem.sde)
        try corrector.validate(grid: grid, sde: problem.sde)
    }

    public func makeSolver<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>, start: Tensor,
                                                               rng: RandomSource) throws -> ReverseSolver {
        let integrator = try sampler(problem).makeIntegrator(from: start, rng: rng)
        let (name, steps) = (self.name, try gridSteps(problem))
        return ReverseSolver(integrator, algorithm: name, start: start, startTime: integrator.grid.times[0], rng: rng,
                             randomSource: { $0.rng }) { run in
            ReverseSolution(samples: run.samples, scoreEvaluations: run.scoreEvaluations, modelPasses: run.modelPasses,
                            acceptedSteps: steps, rejectedSteps: 0, algorithm: name)
        }
    }

    /// ``PCSampler``'s whole run: prior rows split across the processes of a ``Population/communicator``.
    public func solve<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>, using rng: inout RandomSource,
                                                          onStep: ((StepEvent) -> Void)?) throws -> ReverseSolution {
        try validate(for: problem)
        let sampler = try sampler(problem)
        let run: SamplingResult
        switch problem.start {
        case let .prior(count, rowShape): run = try sampler.sample(count: count, rowShape: try problem.rowShape(rowShape), using: &rng, onStep: onStep)
        case .state(let x): run = try sampler.sample(from: x, using: &rng, onStep: onStep)
        }
        return ReverseSolution(samples: run.samples, scoreEvaluations: run.scoreEvaluations, modelPasses: run.modelPasses,
                               acceptedSteps: try gridSteps(problem), rejectedSteps: 0, algorithm: name)
    }
}

/// A few-step predictor (DDIM, DPM-Solver++, UniPC, EDM Heun, SDE-DPM-Solver++ or your own
/// ``DescribedPredictor``) at a budget of `nfe` score evaluations: the grid has
/// `nfe / evaluationsPerStep` steps spaced as the method states (``MethodFacts/defaultSpacing(nfe:dimension:)``)
/// unless `spacing` is given; no corrector; the state at `eps` is returned as it is.
///
///     let run = try solve(problem, FewStepAlgorithm(try DPMSolverPlusPlus(order: 3), nfe: 10), using: &rng)
///     let best = try solve(problem, try FewStepAlgorithm.recommended(nfe: 20, dimension: 784), using: &rng)
public struct FewStepAlgorithm<P: DescribedPredictor>: ReverseAlgorithm {
    /// The few-step method.
    public var predictor: P
    /// The budget of score evaluations; the grid has `nfe / evaluationsPerStep` steps.
    public var nfe: Int
    /// The step spacing (nil: the method's default for the budget and the data dimension).
    public var spacing: TimeSpacing?
    public var name: String { P.facts.name }

    /// - Throws: `invalidParameter` when `nfe` is below one step of the method.
    public init(_ predictor: P, nfe: Int, spacing: TimeSpacing? = nil) throws {
        try requireParameter(nfe >= P.facts.evaluationsPerStep, name: "nfe", value: nfe,
                             requirement: ">= \(P.facts.evaluationsPerStep) (one step of \(P.facts.name))")
        self.predictor = predictor; self.nfe = nfe; self.spacing = spacing
    }

    /// The steps of the grid: `nfe / evaluationsPerStep`.
    public var steps: Int { nfe / P.facts.evaluationsPerStep }

    /// The grid for `problem`, whose rows have `dimension` values.
    public func grid<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>, dimension: Int) throws -> TimeGrid {
        try TimeGrid.spaced(spacing ?? P.facts.defaultSpacing(nfe: nfe, dimension: dimension), steps: steps,
                            from: problem.sde.T, to: problem.eps, sde: problem.sde)
    }

    func pc<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>, dimension: Int) throws -> PredictorCorrectorAlgorithm<P, NoCorrector> {
        PredictorCorrectorAlgorithm(grid: try grid(for: problem, dimension: dimension), predictor: predictor, corrector: NoCorrector(),
                                    denoising: .none, name: name)
    }

    public func validate<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>) throws {
        try pc(problem, dimension: try problem.dimension()).validate(for: problem)
    }

    public func makeSolver<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>, start: Tensor,
                                                               rng: RandomSource) throws -> ReverseSolver {
        try pc(problem, dimension: start.rowSize).makeSolver(for: problem, start: start, rng: rng)
    }

    public func solve<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>, using rng: inout RandomSource,
                                                          onStep: ((StepEvent) -> Void)?) throws -> ReverseSolution {
        try pc(problem, dimension: try problem.dimension()).solve(problem, using: &rng, onStep: onStep)
    }
}

extension FewStepAlgorithm where P == UniPC {
    /// The project's recommended few-step sampler for `nfe` evaluations on data of `dimension`
    /// values per sample (``FewStepRecommendation``).
    public static func recommended(nfe: Int, dimension: Int) throws -> FewStepAlgorithm<UniPC> {
        let (predictor, spacing) = try FewStepRecommendation.for(nfe: nfe, dimension: dimension)
        return try FewStepAlgorithm(predictor, nfe: nfe, spacing: spacing)
    }
}

/// The probability-flow ODE on GSL's adaptive integrators (``ODESampler``,
/// ``ProbabilityFlowIntegrator``): deterministic, its step sizes from ``ODESolverOptions/controller``.
///
///     let ode = ProbabilityFlowAlgorithm(ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5))
public struct ProbabilityFlowAlgorithm: ReverseAlgorithm {
    /// GSL's step type, tolerances, step limits and controller.
    public var options: ODESolverOptions
    /// One system for the batch, or one per sample.
    public var layout: ODESystemLayout
    /// score_sde's final noise-free reverse-diffusion step at `eps` (1 NFE).
    public var denoise: Bool
    public var name: String { "ode" }

    public init(_ options: ODESolverOptions, layout: ODESystemLayout = .batch, denoise: Bool = false) {
        self.options = options; self.layout = layout; self.denoise = denoise
    }

    func sampler<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>) -> ODESampler<SDE, Score> {
        ODESampler(sde: problem.sde, score: problem.score, eps: problem.eps, solver: options, layout: layout,
                   denoise: denoise, batchSize: problem.batchSize)
    }

    public func validate<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>) throws {
        try problem.requireNoConstraint(name)
        try sampler(problem).flow.validateTimes(problem.eps, problem.sde.T)
        try requireParameter(options.absoluteTolerance.isFinite && options.absoluteTolerance > 0, name: "absoluteTolerance",
                             value: options.absoluteTolerance, requirement: "> 0 and finite", advice: "try 1e-5")
        try requireParameter(options.relativeTolerance.isFinite && options.relativeTolerance > 0, name: "relativeTolerance",
                             value: options.relativeTolerance, requirement: "> 0 and finite", advice: "try 1e-5")
    }

    public func makeSolver<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>, start: Tensor,
                                                               rng: RandomSource) throws -> ReverseSolver {
        try validate(for: problem)
        let integrator = try ProbabilityFlowIntegrator(sampler: sampler(problem), latents: start)
        let (name, layout) = (self.name, self.layout)
        return ReverseSolver(integrator, algorithm: name, start: start, startTime: problem.sde.T, rng: rng) { ProbabilityFlowAlgorithm.solution($0, layout: layout, name: name) }
    }

    /// ``ODESampler``'s whole run (the per-sample layout split across MPI processes).
    public func solve<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>, using rng: inout RandomSource,
                                                          onStep: ((StepEvent) -> Void)?) throws -> ReverseSolution {
        try validate(for: problem)
        if onStep == nil || (layout == .perSample && (Population.communicator?.size ?? 1) > 1) {
            let run = try sampler(problem).decode(try problem.startingState(using: &rng))
            return Self.solution(run, layout: layout, name: name)
        }
        let start = try problem.startingState(using: &rng)
        var solver = try makeSolver(for: problem, start: start, rng: rng)
        return try solver.solve(onStep: onStep)
    }

    static func solution(_ run: ODEResult, layout: ODESystemLayout, name: String) -> ReverseSolution {
        ReverseSolution(samples: run.states, scoreEvaluations: run.scoreEvaluations, modelPasses: run.modelPasses,
                        acceptedSteps: run.statistics.integrator.acceptedSteps, rejectedSteps: run.statistics.integrator.rejectedSteps,
                        perSampleEvaluations: layout == .perSample ? run.statistics.evaluationsPerSystem : nil, algorithm: name,
                        integrator: run.statistics.integrator)
    }
}

/// Adaptive UniPC on the probability flow (``AdaptiveUniPC``, ``AdaptiveUniPCIntegrator``):
/// deterministic, steps in log-SNR chosen by its ``StepSizeController``.
public struct AdaptiveUniPCAlgorithm: ReverseAlgorithm {
    /// The UniPC predictor order (1–3).
    public var order: Int
    /// The error tolerances of the controller.
    public var absoluteTolerance: Double, relativeTolerance: Double
    /// The first step in log-SNR (nil: 1/32 of the span).
    public var initialStep: Double?
    /// The controller's safety factor θ and largest growth per step.
    public var safety: Double, maximumGrowth: Double
    /// The most score evaluations before the solve fails.
    public var maximumEvaluations: Int
    /// ``StepSizeController/ErrorNorm/batch`` or ``StepSizeController/ErrorNorm/worstRow``.
    public var norm: StepSizeController.ErrorNorm
    public var name: String { "adaptive-unipc" }

    /// The defaults of ``AdaptiveUniPC``.
    public init(order: Int = 3, absoluteTolerance: Double = 5e-4, relativeTolerance: Double = 5e-4, initialStep: Double? = nil,
                safety: Double = 0.7, maximumGrowth: Double = 2, maximumEvaluations: Int = 10_000,
                norm: StepSizeController.ErrorNorm = .batch) {
        self.order = order; self.absoluteTolerance = absoluteTolerance; self.relativeTolerance = relativeTolerance
        self.initialStep = initialStep; self.safety = safety; self.maximumGrowth = maximumGrowth
        self.maximumEvaluations = maximumEvaluations; self.norm = norm
    }

    func sampler<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>) throws -> AdaptiveUniPC<SDE, Score> {
        try problem.requireNoConstraint(name)
        try requireParameter(norm == .batch || norm == .worstRow, name: "norm", value: norm.rawValue, requirement: "batch or worstRow")
        return try AdaptiveUniPC(sde: problem.sde, score: problem.score, eps: problem.eps, order: order,
                                 absoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance, initialStep: initialStep,
                                 safety: safety, maximumGrowth: maximumGrowth, maximumEvaluations: maximumEvaluations,
                                 batchSize: problem.batchSize, norm: norm == .worstRow ? .worstRow : .batch)
    }

    public func validate<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>) throws { _ = try sampler(problem) }

    public func makeSolver<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>, start: Tensor,
                                                               rng: RandomSource) throws -> ReverseSolver {
        let integrator = try AdaptiveUniPCIntegrator(solver: sampler(problem), latents: start)
        let name = self.name
        return ReverseSolver(integrator, algorithm: name, start: start, startTime: problem.sde.T, rng: rng) { run in
            ReverseSolution(samples: run.states, scoreEvaluations: run.scoreEvaluations, modelPasses: run.modelPasses,
                            acceptedSteps: run.acceptedSteps, rejectedSteps: run.rejectedSteps, algorithm: name)
        }
    }
}

/// The adaptive SDE solver of Jolicoeur-Martineau et al. 2021 ("Gotta Go Fast";
/// ``AdaptiveSDESampler``, ``AdaptiveSDEIntegrator``): every row its own step sizes, all active
/// rows in one batched model call per stage.
public struct AdaptiveSDEAlgorithm: ReverseAlgorithm {
    /// The error tolerances of the controller (the paper's 0.0078 and 0.05).
    public var absoluteTolerance: Double, relativeTolerance: Double
    /// The controller's safety factor θ, its exponent r and the first step h₀.
    public var safety: Double, exponent: Double, initialStep: Double
    /// `.none` or `.tweedie` (one more NFE at `eps`).
    public var denoising: FinalDenoising
    /// The most attempts of any row before the solve fails.
    public var maximumAttempts: Int
    /// What a rejected step does with its noise.
    public var rejectedNoise: AdaptiveSDERejectedNoise
    public var name: String { "adaptive-sde" }

    /// The defaults of ``AdaptiveSDESampler`` (the paper's).
    public init(absoluteTolerance: Double = 0.0078, relativeTolerance: Double = 0.05, safety: Double = 0.9, exponent: Double = 0.9,
                initialStep: Double = 0.01, denoising: FinalDenoising = .none, maximumAttempts: Int = 100_000,
                rejectedNoise: AdaptiveSDERejectedNoise = .brownianBridge) {
        self.absoluteTolerance = absoluteTolerance; self.relativeTolerance = relativeTolerance
        self.safety = safety; self.exponent = exponent; self.initialStep = initialStep; self.denoising = denoising
        self.maximumAttempts = maximumAttempts; self.rejectedNoise = rejectedNoise
    }

    func sampler<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>) throws -> AdaptiveSDESampler<SDE, Score> {
        try problem.requireNoConstraint(name)
        return try AdaptiveSDESampler(sde: problem.sde, score: problem.score, eps: problem.eps, absoluteTolerance: absoluteTolerance,
                                      relativeTolerance: relativeTolerance, safety: safety, exponent: exponent, initialStep: initialStep,
                                      denoising: denoising, maximumAttempts: maximumAttempts,
                                      rejectedNoise: rejectedNoise, batchSize: problem.batchSize)
    }

    public func validate<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>) throws { _ = try sampler(problem) }

    public func makeSolver<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>, start: Tensor,
                                                               rng: RandomSource) throws -> ReverseSolver {
        var rng = rng
        let integrator = try AdaptiveSDEIntegrator(solver: sampler(problem), start: start, using: &rng)
        let (name, tweedie) = (self.name, denoising == .tweedie ? 1 : 0)
        return ReverseSolver(integrator, algorithm: name, start: start, startTime: problem.sde.T, rng: rng) { run in
            // Each attempt costs a row 2 evaluations (Tweedie 1 more); accepted = attempts − rejected.
            let accepted = zip(run.perSampleEvaluations, run.perSampleRejections).reduce(0) { $0 + ($1.0 - tweedie) / 2 - $1.1 }
            return ReverseSolution(samples: run.samples, scoreEvaluations: run.scoreEvaluations, modelPasses: run.modelPasses,
                                   acceptedSteps: accepted, rejectedSteps: run.perSampleRejections.reduce(0, +),
                                   perSampleEvaluations: run.perSampleEvaluations, perSampleRejections: run.perSampleRejections,
                                   algorithm: name)
        }
    }
}

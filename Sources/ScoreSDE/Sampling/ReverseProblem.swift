/// What a reverse-time solve is asked to do, whatever the algorithm: the forward SDE and the score
/// model that reverse it, where the rows start (prior draws at `T`, or a given state), the end time
/// `eps`, and the hooks every step applies (a ``SamplingConstraint`` for inverse problems). The
/// algorithm (``ReverseAlgorithm``) is chosen separately and ``solve(_:_:using:onStep:)`` runs any
/// pair — the SciML `solve(prob, alg)` / diffrax `diffeqsolve(terms, solver, …)` shape.
///
///     let problem = ReverseProblem(sde: sde, score: score, count: 1024, eps: 1e-3)
///     let few = try solve(problem, FewStepAlgorithm(UniPC(order: 3), nfe: 20), using: &rng)
///     let pc = try solve(problem, PredictorCorrectorAlgorithm(steps: 1000, predictor: ReverseDiffusion(),
///                                                            corrector: try Langevin(snr: 0.16)), using: &rng)
///     let ode = try solve(problem, ProbabilityFlowAlgorithm(ODESolverOptions(.rkf45, absoluteTolerance: 1e-5,
///                                                                           relativeTolerance: 1e-5)), using: &rng)
///     print(few.scoreEvaluations, pc.scoreEvaluations, ode.scoreEvaluations)   // NFE: batched model calls, comparable
public struct ReverseProblem<SDE: ForwardSDE, Score: ScoreModel> {
    /// Where the rows start.
    public enum Start {
        /// `count` draws from the prior at `T` (rows of `rowShape`, default the model's), drawn
        /// from the solve's random source as the algorithm's own sampler draws them.
        case prior(count: Int, rowShape: [Int]?)
        /// These rows at `T` (latents to decode, a prior sample of your own).
        case state(Tensor)
    }

    /// The forward SDE the solve reverses.
    public var sde: SDE
    /// The score model of its marginals.
    public var score: Score
    /// Where the rows start, at `T`.
    public var start: Start
    /// The end time (`0 < eps < T`): the reference uses 1e-3 for VP / sub-VP and 1e-5 for VE. A
    /// fixed-grid algorithm given its own grid ends where the grid ends.
    public var eps: Double
    /// Applied after every update (nil: unconditional); only the fixed-grid algorithms take one.
    public var constraint: (any SamplingConstraint)?
    /// Rows per model call (memory only; never changes results).
    public var batchSize: Int?

    public init(sde: SDE, score: Score, start: Start, eps: Double, constraint: (any SamplingConstraint)? = nil, batchSize: Int? = nil) {
        self.sde = sde; self.score = score; self.start = start; self.eps = eps
        self.constraint = constraint; self.batchSize = batchSize
    }

    /// `count` prior draws of the model's row shape (or `rowShape`).
    public init(sde: SDE, score: Score, count: Int, rowShape: [Int]? = nil, eps: Double,
                constraint: (any SamplingConstraint)? = nil, batchSize: Int? = nil) {
        self.init(sde: sde, score: score, start: .prior(count: count, rowShape: rowShape), eps: eps, constraint: constraint, batchSize: batchSize)
    }

    /// The starting rows: the given state, or `count` prior draws from `rng`.
    /// - Throws: `invalidParameter` for a count < 1; `invalidArgument` for a model without a row shape and none given.
    public func startingState(using rng: inout RandomSource) throws -> Tensor {
        switch start {
        case .state(let x): return x
        case let .prior(count, rowShape):
            guard count > 0 else { throw ScoreSDEError.invalid("count", count, must: "> 0") }
            return sde.samplePrior(rowShape: try self.rowShape(rowShape), count: count, using: &rng)
        }
    }

    /// Values per row of the starting rows.
    func dimension() throws -> Int {
        switch start {
        case .state(let x): return x.rowSize
        case let .prior(_, rowShape): return try self.rowShape(rowShape).reduce(1, *)
        }
    }

    /// The row shape of prior draws: `rowShape`, else the model's.
    func rowShape(_ given: [Int]?) throws -> [Int] {
        guard let shape = given ?? score.rowShape else {
            throw ScoreSDEError.invalidArgument("the score model accepts any shape: give the problem's rowShape")
        }
        return shape
    }

    /// Throws unless the algorithm named `algorithm` may run this problem's constraint (it has none).
    func requireNoConstraint(_ algorithm: String) throws {
        if constraint != nil {
            throw ScoreSDEError.invalidArgument("\(algorithm) does not apply a sampling constraint; solve inverse problems with a fixed-grid algorithm (PredictorCorrectorAlgorithm or FewStepAlgorithm)")
        }
    }
}

/// What every solve returns, whatever the algorithm: the samples and what they cost, counted the
/// same way for every algorithm.
public struct ReverseSolution: Sendable {
    /// The rows at the end time (after any final denoising).
    public let samples: Tensor
    /// NFE: batched model calls, for every algorithm (a guided score is one call of several passes;
    /// the per-sample ODE layout calls the model once per row and system).
    public let scoreEvaluations: Int
    /// Model passes (≥ NFE: guided scores and Jacobian products cost several).
    public let modelPasses: Int
    /// Steps taken: grid intervals of a fixed grid (RePaint's repeated runs included once per
    /// run), accepted steps of an adaptive solver (summed over rows where rows step on their own).
    public let acceptedSteps: Int
    /// Rejected attempts of an adaptive solver (summed over rows); 0 on a fixed grid.
    public let rejectedSteps: Int
    /// Each row's own score evaluations, where rows are solved on their own (the adaptive SDE
    /// solver; the per-sample ODE layout: each system's right-hand-side evaluations); nil where
    /// every row shares every call.
    public let perSampleEvaluations: [Int]?
    /// Each row's rejected attempts, where rows are solved on their own.
    public let perSampleRejections: [Int]?
    /// The algorithm's name (``ReverseAlgorithm/name``).
    public let algorithm: String
    /// GSL's counters, for the probability-flow ODE (right-hand-side and Jacobian evaluations
    /// summed over systems); nil for every other algorithm.
    public let integrator: ODEStatistics?
    /// How the solve ended (failures throw a ``ScoreSDEError`` instead).
    public let returnCode: ReturnCode

    /// How a solve ended (SciML's `retcode`; a solve that fails throws a typed ``ScoreSDEError``
    /// such as ``ScoreSDEError/integrator(_:)`` instead of returning a failure code).
    public enum ReturnCode: Sendable, Equatable {
        /// Every row reached the end time; the samples are the algorithm's output (denoised if asked).
        case success
        /// The caller stopped the solve after `steps` steps (``ReverseSolver/terminate()``,
        /// ``solve(_:_:using:until:)``): the samples are the state reached, at `time` (the latest
        /// row time where rows have their own), not denoised; the counts are those of the steps made.
        case terminated(steps: Int, time: Double)
    }

    public init(samples: Tensor, scoreEvaluations: Int, modelPasses: Int, acceptedSteps: Int, rejectedSteps: Int,
                perSampleEvaluations: [Int]? = nil, perSampleRejections: [Int]? = nil, algorithm: String,
                integrator: ODEStatistics? = nil, returnCode: ReturnCode = .success) {
        self.samples = samples; self.scoreEvaluations = scoreEvaluations; self.modelPasses = modelPasses
        self.acceptedSteps = acceptedSteps; self.rejectedSteps = rejectedSteps
        self.perSampleEvaluations = perSampleEvaluations; self.perSampleRejections = perSampleRejections
        self.algorithm = algorithm; self.integrator = integrator; self.returnCode = returnCode
    }

    /// The mean of ``perSampleEvaluations`` (nil where there are none).
    public var meanPerSampleEvaluations: Double? {
        perSampleEvaluations.map { Double($0.reduce(0, +)) / Double(Swift.max($0.count, 1)) }
    }
}

/// A solve in progress, whatever its algorithm: ``step()`` advances exactly one step of the
/// algorithm's real loop and reports it (``StepEvent``), ``result()`` gives the one
/// ``ReverseSolution``. Made by ``ReverseAlgorithm/makeSolver(for:start:rng:)`` or
/// ``makeSolver(_:_:using:)``; a reference to one solve (copies share it).
///
/// ``terminate()`` stops it early — a custom stopping rule, a deadline, a signal: ``result()`` is
/// then the state reached with ``ReverseSolution/ReturnCode/terminated(steps:time:)``.
public final class ReverseSolver: SteppedSolve {
    private let stepOnce: () throws -> StepEvent?
    private let finished: () -> Bool
    private let finish: () throws -> ReverseSolution
    private let source: () -> RandomSource
    private let start: Tensor, startTime: Double
    private var last: StepEvent?
    private var steps = 0, accepted = 0, rejected = 0
    private var stopped = false
    /// The algorithm's name.
    public let algorithm: String

    /// Wraps a stepped solve that starts from `start` at `startTime`: `finish` turns its result
    /// into a ``ReverseSolution``; `randomSource` reads its random source (nil: a deterministic
    /// solve draws nothing after it starts, and `rng` stays the source).
    public init<S: SteppedSolve>(_ solve: S, algorithm: String, start: Tensor, startTime: Double, rng: RandomSource,
                                 randomSource: ((S) -> RandomSource)? = nil,
                                 finish: @escaping (S.Output) throws -> ReverseSolution) {
        let box = SteppedSolveBox(solve)
        self.algorithm = algorithm
        self.start = start; self.startTime = startTime
        stepOnce = { try box.solve.step() }
        finished = { box.solve.isFinished }
        self.finish = { try finish(box.solve.result()) }
        source = { randomSource.map { $0(box.solve) } ?? rng }
    }

    public func step() throws -> StepEvent? {
        guard !stopped, let e = try stepOnce() else { return nil }
        last = e; steps += 1; accepted += e.acceptedSteps; rejected += e.rejectedSteps
        return e
    }

    /// True when the solve has ended: every step made, or stopped by ``terminate()``.
    public var isFinished: Bool { stopped || finished() }

    /// Stops the solve after the steps made so far (no effect on a finished solve).
    public func terminate() { if !finished() { stopped = true } }

    public func result() throws -> ReverseSolution {
        guard stopped else { return try finish() }
        let time = last.map { $0.rowTimes?.max() ?? $0.next } ?? startTime
        return ReverseSolution(samples: last?.state ?? start, scoreEvaluations: last?.scoreEvaluations ?? 0,
                               modelPasses: last?.modelPasses ?? 0, acceptedSteps: accepted, rejectedSteps: rejected,
                               algorithm: algorithm, returnCode: .terminated(steps: steps, time: time))
    }

    /// The random source after the steps made so far (hand it to the next solve).
    public var rng: RandomSource { source() }
}

/// A stepped solve held by reference (what ``ReverseSolver``'s closures share).
private final class SteppedSolveBox<S: SteppedSolve> {
    var solve: S
    init(_ solve: S) { self.solve = solve }
}

/// A method that solves a ``ReverseProblem``: it validates its settings against the problem and
/// makes the stepped solve. Conforming types: ``PredictorCorrectorAlgorithm`` (fixed grids, every
/// ``Predictor`` and ``Corrector``), ``FewStepAlgorithm`` (a described few-step predictor at an NFE
/// budget), ``ProbabilityFlowAlgorithm`` (GSL's adaptive integrators), ``AdaptiveUniPCAlgorithm``
/// and ``AdaptiveSDEAlgorithm``. A user's own algorithm conforms the same way.
public protocol ReverseAlgorithm {
    /// The method's name (`pc`, `unipc`, `ode`, …), reported in ``ReverseSolution/algorithm``.
    var name: String { get }
    /// Checks the settings against `problem` without solving (what ``makeSolver(for:start:rng:)``
    /// would refuse, refused before any work).
    func validate<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>) throws
    /// The stepped solve of `problem` from the rows `start` at `T`, drawing its noise from `rng`.
    func makeSolver<SDE: ForwardSDE, Score: ScoreModel>(for problem: ReverseProblem<SDE, Score>, start: Tensor,
                                                        rng: RandomSource) throws -> ReverseSolver
    /// The whole solve (default: ``makeSolver(for:start:rng:)`` stepped to the end); an algorithm
    /// overrides it where the whole run can do more, e.g. split rows across MPI processes.
    func solve<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>, using rng: inout RandomSource,
                                                   onStep: ((StepEvent) -> Void)?) throws -> ReverseSolution
}

extension ReverseAlgorithm {
    public func solve<SDE: ForwardSDE, Score: ScoreModel>(_ problem: ReverseProblem<SDE, Score>, using rng: inout RandomSource,
                                                          onStep: ((StepEvent) -> Void)?) throws -> ReverseSolution {
        try validate(for: problem)
        let start = try problem.startingState(using: &rng)
        var solver = try makeSolver(for: problem, start: start, rng: rng)
        let solution = try solver.solve(onStep: onStep)
        rng = solver.rng
        return solution
    }
}

/// Solves `problem` with `algorithm`: the one entry point of every sampler, returning one result
/// type (``ReverseSolution``) with NFE counted as batched model calls for all of them. Same seed,
/// same bytes as the algorithm's own sampler type (``PCSampler``, ``ODESampler``,
/// ``AdaptiveUniPC``, ``AdaptiveSDESampler``).
///
/// - Parameters:
///   - problem: The SDE, the score, the start, the end time and any constraint.
///   - algorithm: The method (``PredictorCorrectorAlgorithm``, ``FewStepAlgorithm``,
///     ``ProbabilityFlowAlgorithm``, ``AdaptiveUniPCAlgorithm``, ``AdaptiveSDEAlgorithm``, your own).
///   - rng: The random source: prior draws and the solve's noise; advanced as the algorithm's own
///     sampler advances it.
///   - onStep: Called after every step (fixed grids: RePaint's repeated runs and jumps are not reported).
public func solve<SDE: ForwardSDE, Score: ScoreModel, Algorithm: ReverseAlgorithm>(
    _ problem: ReverseProblem<SDE, Score>, _ algorithm: Algorithm, using rng: inout RandomSource,
    onStep: ((StepEvent) -> Void)? = nil
) throws -> ReverseSolution {
    try algorithm.solve(problem, using: &rng, onStep: onStep)
}

/// Solves `problem` with `algorithm` until `stop` returns true for a step's event (or the end):
/// ``ReverseSolution/ReturnCode/terminated(steps:time:)`` with the state reached if it stopped
/// early, else the full solution. For a partial solve (stop at a time), a custom stopping rule
/// or a budget:
///
///     let half = try solve(problem, algorithm, using: &rng) { $0.next <= 0.5 }   // stop once t ≤ 0.5
public func solve<SDE: ForwardSDE, Score: ScoreModel, Algorithm: ReverseAlgorithm>(
    _ problem: ReverseProblem<SDE, Score>, _ algorithm: Algorithm, using rng: inout RandomSource,
    until stop: (StepEvent) -> Bool
) throws -> ReverseSolution {
    let solver = try makeSolver(problem, algorithm, using: &rng)
    while let e = try solver.step() {
        if stop(e) { solver.terminate() }
    }
    rng = solver.rng
    return try solver.result()
}

/// The stepped solve of `problem` with `algorithm` (its prior rows drawn from `rng` first), to
/// drive by hand: `while let e = try solver.step() { … }; let out = try solver.result()`.
public func makeSolver<SDE: ForwardSDE, Score: ScoreModel, Algorithm: ReverseAlgorithm>(
    _ problem: ReverseProblem<SDE, Score>, _ algorithm: Algorithm, using rng: inout RandomSource
) throws -> ReverseSolver {
    try algorithm.validate(for: problem)
    let start = try problem.startingState(using: &rng)
    return try algorithm.makeSolver(for: problem, start: start, rng: rng)
}

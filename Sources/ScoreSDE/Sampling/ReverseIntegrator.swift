/// One move of a reverse-time run: a step of the grid, or a RePaint jump back up to an earlier time.
public enum ReverseMove: Sendable, Equatable {
    /// Grid interval `index`: `t → next`. `repeated` is true for the runs of a RePaint block that
    /// will be run again (progress bars count only the last run).
    case step(index: Int, t: Double, next: Double, repeated: Bool)
    /// RePaint's forward jump from `from` (a later, less noisy time) back up to `to > from`.
    case jump(from: Double, to: Double, blockStart: Int)
    /// Attempt `index` of an adaptive solver (``AdaptiveUniPCIntegrator``, ``AdaptiveSDEIntegrator``)
    /// from `t` towards `next`: `accepted` steps were accepted and `rejected` rejected (one of
    /// them 1 for a batch-wide attempt; numbers of rows for a per-sample solver, whose `t` and
    /// `next` are the latest row's times before and after the round).
    case attempt(index: Int, t: Double, next: Double, accepted: Int, rejected: Int)
    /// Tweedie denoising at the end time `at` after an adaptive solve (one more NFE).
    case denoise(at: Double)
}

/// What ``ReverseIntegrator/step()``, ``AdaptiveUniPCIntegrator/step()`` and
/// ``AdaptiveSDEIntegrator/step()`` report after each move.
public struct StepEvent: Sendable {
    /// Grid interval index, and the number of grid intervals; for the adaptive solvers the attempt
    /// (or round) index, and 0 (the number is not known in advance).
    public let index: Int, total: Int
    /// The interval just stepped (`t → next`); for a jump, `t` is where it started and `next` where
    /// it landed; for an adaptive attempt, the current time and the time attempted (rejected: the
    /// time stays `t`); for a per-sample solver's round, the latest row time before and after it.
    public let t: Double, next: Double
    public let move: ReverseMove
    /// NFE and model passes so far.
    public let scoreEvaluations: Int, modelPasses: Int
    /// The state after the move and the last predictor's noise-free mean (adaptive UniPC: the data
    /// prediction at the current time; the adaptive SDE solver: the state).
    public let state: Tensor, mean: Tensor
    /// Where the rows' times differ (the per-sample ``AdaptiveSDEIntegrator``): every row's time
    /// after the move, rows that have finished at their end time; nil where all rows share `next`.
    public let rowTimes: [Double]?

    /// Steps this move accepted: 1 for a grid step, the attempt's count for an adaptive attempt
    /// (rows, for a per-sample solver), 0 for a jump or denoising.
    public var acceptedSteps: Int {
        switch move {
        case .step: return 1
        case let .attempt(_, _, _, accepted, _): return accepted
        case .jump, .denoise: return 0
        }
    }

    /// Steps this move rejected (only adaptive attempts reject).
    public var rejectedSteps: Int {
        if case let .attempt(_, _, _, _, rejected) = move { return rejected }
        return 0
    }

    /// True for RePaint's jumps and the runs of a block that will be repeated.
    public var isRepeated: Bool {
        switch move {
        case .step(_, _, _, let repeated): return repeated
        case .jump: return true
        case .attempt, .denoise: return false
        }
    }
}

/// Samples and what they cost.
public struct SamplingResult: Sendable {
    public let samples: Tensor
    /// Batched score evaluations (NFE), including any denoising evaluation.
    public let scoreEvaluations: Int
    /// Model passes (≥ NFE: guided scores and Jacobian products cost several).
    public let modelPasses: Int
    public let steps: Int
}

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

/// The reverse-time integrator, in the SciML / diffrax spirit: `init` → `step` … → `result`.
///
///     var integrator = try ReverseIntegrator(sde: sde, score: score, grid: try .uniform(steps: 100, from: 1, to: 1e-3),
///                                            predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16),
///                                            start: sde.samplePrior(rowShape: [2], count: 4096, using: &rng), rng: rng)
///     while let event = try integrator.step() { print(event.t, event.scoreEvaluations) }
///     let run = try integrator.result()
///
/// It owns the state, the predictor's state (multistep history), a reusable `mean` workspace and
/// the run's one NFE counter (``ReverseSDE``). Each move is a grid step — corrector and predictor
/// in the chosen ``PCOrder`` — or a RePaint jump (``Resampling``); a ``SamplingConstraint`` is a
/// hook applied after every update, never code inside the step. Same seed, same bytes, whatever
/// the thread count or `batchSize`.
public struct ReverseIntegrator<SDE: ForwardSDE, Score: ScoreModel, P: Predictor, C: Corrector>: SteppedSolve {
    public let sde: SDE
    public let grid: TimeGrid
    public let predictor: P
    public let corrector: C
    public let order: PCOrder
    public let denoising: FinalDenoising
    public let constraint: (any SamplingConstraint)?
    /// The reverse process every step goes through: it counts NFE and model passes.
    public let reverse: ReverseSDE<SDE, Score>
    /// The current state.
    public private(set) var state: Tensor
    /// The last predictor step's noise-free mean (the workspace predictors write into).
    public private(set) var mean: Tensor
    /// The random source; every draw advances its draw counter.
    public private(set) var rng: RandomSource
    /// The moves, in order, and how many have been made.
    public let moves: [ReverseMove]
    public private(set) var position = 0
    private var history: P.State
    private let correcting: ConditionedReverseProcess<ReverseSDE<SDE, Score>>
    private var output: Tensor?
    /// The `mean` a constraint gets where the sampler does not use it (start, corrector, jump): a
    /// reused buffer holding a copy of the state, so constrained runs allocate no batch per update.
    private var discard = Tensor(uncheckedShape: [0], storage: [])

    /// Sets up a run from `start` at `grid.times[0]`, validating everything before any work.
    public init(sde: SDE, score: Score, grid: TimeGrid, predictor: P, corrector: C,
                order: PCOrder = .correctorFirst, denoising: FinalDenoising = .lastPredictorMean,
                batchSize: Int? = nil, constraint: (any SamplingConstraint)? = nil, resampling: Resampling = .none,
                start: Tensor, rng: RandomSource, counter: EvaluationCounter = EvaluationCounter()) throws {
        try score.validate(start)
        try start.checkFinite("the initial state")
        try resampling.validate()
        if let b = batchSize, b < 1 { throw ScoreSDEError.invalid("batchSize", b, must: ">= 1 (or nil for one batch)") }
        guard grid.times[0] <= sde.T * (1 + 1e-12) else {
            throw ScoreSDEError.invalidArgument("the grid starts at \(grid.times[0]), after the SDE's end time T = \(sde.T); grids must lie in [0, T]")
        }
        if denoising == .tweedie, grid.times[grid.steps - 1] <= 0 {
            throw ScoreSDEError.invalidArgument("Tweedie denoising needs the last step to start at a time > 0")
        }
        try predictor.validate(grid: grid, sde: sde)
        try corrector.validate(grid: grid, sde: sde)
        if let constraint { try constraint.validate(start) }
        self.sde = sde; self.grid = grid; self.predictor = predictor; self.corrector = corrector
        self.order = order; self.denoising = denoising; self.constraint = constraint
        self.reverse = ReverseSDE(sde: sde, score: score, batchSize: batchSize, counter: counter)
        self.correcting = ConditionedReverseProcess(base: reverse, constraint: constraint)
        self.state = start
        self.mean = start
        self.rng = rng
        self.history = predictor.makeState(for: start)
        self.moves = Self.schedule(grid, resampling: resampling, tweedieLast: denoising == .tweedie)
        if constraint != nil {
            try constrainDiscardingMean(.start, time: grid.times[0], updateTime: grid.times[0], step: 0)
        }
    }

    /// True when every move has been made.
    public var isFinished: Bool { position == moves.count }

    /// Makes the next move; returns its event, or nil when the run is complete.
    public mutating func step() throws -> StepEvent? {
        guard position < moves.count else { return nil }
        let move = moves[position]
        let steps = grid.steps
        switch move {
        case let .jump(from, to, blockStart):
            Resampling.forwardJump(&state, sde: sde, from: from, to: to, using: &rng)
            if constraint != nil {
                try constrainDiscardingMean(.jump, time: to, updateTime: from, step: blockStart)
            }
            position += 1
            return event(blockStart, from, to, move)
        case let .step(i, t, next, _):
            let tweedieStep = denoising == .tweedie && i == steps - 1
            if tweedieStep {
                if order == .correctorFirst { try correct(at: t, next: next, step: i) }
                var estimate = try tweedie(at: t)
                if constraint != nil {
                    state = estimate
                    try constrain(.final, time: 0, updateTime: t, step: i, mean: &estimate)
                }
                output = estimate
            } else {
                switch order {
                case .correctorFirst:
                    try correct(at: t, next: next, step: i)
                    try predict(from: t, to: next, step: i)
                case .predictorFirst:
                    try predict(from: t, to: next, step: i)
                    // The paper's order corrects at every noise level; there is none at t = 0.
                    if next > 0 { try correct(at: next, next: i + 1 < steps ? grid.times[i + 2] : 0, step: i) }
                }
            }
            position += 1
            return event(i, t, next, move)
        case .attempt, .denoise:
            preconditionFailure("ReverseIntegrator schedules grid steps and jumps only (got \(move))")
        }
    }

    /// The samples after the last move (throws if the run is not finished or diverged).
    public func result() throws -> SamplingResult {
        guard isFinished else {
            throw ScoreSDEError.invalidArgument("the integrator has made \(position) of \(moves.count) moves; call step() until it returns nil")
        }
        let out: Tensor
        switch denoising {
        case .lastPredictorMean: out = mean   // no corrector follows the last step in either order
        case .none: out = state
        case .tweedie: out = output ?? state
        }
        try out.checkFinite("the samples (the sampler diverged: try more steps, a smaller snr, or another predictor)")
        return SamplingResult(samples: out, scoreEvaluations: reverse.scoreEvaluations, modelPasses: reverse.modelPasses,
                              steps: grid.steps)
    }

    // MARK: - The updates

    private mutating func predict(from t: Double, to next: Double, step i: Int) throws {
        let shape = state.shape
        try predictor.step(&state, mean: &mean, state: &history, from: t, to: next, along: reverse, using: &rng)
        guard state.shape == shape, mean.shape == shape else {
            throw ScoreSDEError.shapeMismatch("the predictor \(P.self) returned a state of shape \(state.shape) and a mean of shape \(mean.shape) for a batch of shape \(shape); a step must keep the batch's shape")
        }
        guard constraint != nil else { return }
        var m = mean
        mean = Tensor(uncheckedShape: [0], storage: [])   // m is now the only reference: no copy
        try constrain(.predictor, time: next, updateTime: t, step: i, mean: &m)
        mean = m
    }

    private mutating func correct(at t: Double, next: Double, step i: Int) throws {
        let shape = state.shape
        try corrector.correct(&state, at: t, next: next, along: correcting, using: &rng)
        guard state.shape == shape else {
            throw ScoreSDEError.shapeMismatch("the corrector \(C.self) changed the state's shape from \(shape) to \(state.shape)")
        }
        if constraint != nil {
            try constrainDiscardingMean(.corrector, time: t, updateTime: t, step: i)
        }
    }

    /// `constrain` with `mean` a copy of the state (what the constraint has always been given
    /// there), written into the reused `discard` buffer instead of a new batch.
    private mutating func constrainDiscardingMean(_ phase: ConstraintPhase, time: Double, updateTime: Double, step: Int) throws {
        var m = discard
        discard = Tensor(uncheckedShape: [0], storage: [])   // m is now the only reference: no copy
        m.assign(state)
        try constrain(phase, time: time, updateTime: updateTime, step: step, mean: &m)
        discard = m
    }

    private mutating func constrain(_ phase: ConstraintPhase, time: Double, updateTime: Double, step: Int, mean m: inout Tensor) throws {
        guard let constraint else { return }
        try constraint.apply(&state, mean: &m, context: ConstraintContext(phase: phase, time: time, updateTime: updateTime,
                                                                          step: step, steps: grid.steps, sde: sde), using: &rng)
    }

    /// `(x + std(t)² s(x, t)) / meanScale(t)`.
    private func tweedie(at t: Double) throws -> Tensor {
        let (m, s) = sde.marginal(at: t)
        var y = state
        y.add(try reverse.score(state, at: t), scaledBy: s * s)
        y.scale(by: 1 / m)
        return y
    }

    private func event(_ i: Int, _ t: Double, _ next: Double, _ move: ReverseMove) -> StepEvent {
        StepEvent(index: i, total: grid.steps, t: t, next: next, move: move, scoreEvaluations: reverse.scoreEvaluations,
                  modelPasses: reverse.modelPasses, state: state, mean: mean, rowTimes: nil)
    }
}

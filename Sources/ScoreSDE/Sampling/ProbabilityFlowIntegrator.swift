/// ``ODESampler``'s solve one step at a time, in the shape of ``ReverseIntegrator``: `init` →
/// ``step()`` … → ``result()``.
///
///     var run = try ProbabilityFlowIntegrator(sampler: sampler, latents: z)
///     while let e = try run.step() { print(e.t, e.next, e.rejectedSteps, e.scoreEvaluations) }
///     let out = try run.result()
///
/// Each ``step()`` is one `gsl_odeiv2_evolve_apply` of GSL: one accepted step, after the attempts
/// the controller (``ODESolverOptions/controller``) rejected, reported as
/// ``ReverseMove/attempt(index:t:next:accepted:rejected:)`` with `accepted` 1 and `rejected` the
/// rejected attempts. In the ``ODESystemLayout/perSample`` layout every row is its own system:
/// a step advances every row that has not reached `eps` by one accepted step of its own (rows in
/// parallel), `t` and `next` are the latest row time before and after, `accepted` and `rejected`
/// are summed over rows, and ``StepEvent/rowTimes`` holds every row's time. With
/// ``ODESampler/denoise`` one last step (``ReverseMove/denoise(at:)``) is score_sde's
/// noise-free reverse-diffusion step at `eps`. NFE is batched model calls (per-sample systems:
/// each call is one row's).
///
/// ``ODESampler/decode(_:)`` is this loop (same bytes), except that under a
/// ``Population/communicator`` the per-sample layout splits its rows across processes; this
/// integrator runs every row in this process.
public struct ProbabilityFlowIntegrator<SDE: ForwardSDE, Score: ScoreModel>: SteppedSolve {
    public let sampler: ODESampler<SDE, Score>
    /// The current state (rows at their own times in the per-sample layout). The batch layout
    /// reads GSL's own state array (no copy unless a caller keeps it while stepping on); the
    /// per-sample layout updates one buffer in place, row by row.
    public var state: Tensor {
        if let denoisedState { return denoisedState }
        if sampler.layout == .batch { return Tensor(uncheckedShape: shape, storage: systems[0].state) }
        return rows
    }
    private let shape: [Int]
    /// The per-sample layout's rows, each written after its system steps.
    private var rows: Tensor
    private var denoisedState: Tensor?
    /// Steps made so far (the denoising step included).
    public private(set) var steps = 0
    private let flow: ProbabilityFlow<SDE, Score>
    /// One system (batch layout) or one per row (per-sample layout).
    private let systems: [ODEIntegrator]

    /// Sets up the solve of `latents` (rows at `T`) down to `eps`.
    public init(sampler: ODESampler<SDE, Score>, latents: Tensor) throws {
        let flow = sampler.flow
        let sde = sampler.sde
        try flow.validateTimes(sampler.eps, sde.T)
        try sampler.score.validate(latents)
        try latents.checkFinite("the ODE's initial state")
        self.sampler = sampler
        self.flow = flow
        self.shape = latents.shape
        self.rows = latents
        let n = latents.rows, d = latents.rowSize
        switch sampler.layout {
        case .batch:
            let system = try flow.makeSystem(shape: latents.shape, divergence: nil)
            try system.start(latents.storage, from: sde.T, to: sampler.eps)
            systems = [system]
        case .perSample:
            let rowShape = [1] + latents.rowShape
            systems = try (0 ..< n).map { r in
                let system = try flow.makeSystem(shape: rowShape, divergence: nil)
                try system.start(Array(latents.storage[r * d ..< (r + 1) * d]), from: sde.T, to: sampler.eps)
                return system
            }
        }
    }

    /// True when every row has reached `eps` (and been denoised, if asked).
    public var isFinished: Bool { systems.allSatisfy(\.isFinished) && (!sampler.denoise || denoisedState != nil) }

    /// Makes the next step; returns its event, or nil when the solve is complete.
    public mutating func step() throws -> StepEvent? {
        guard !isFinished else { return nil }
        let index = steps
        steps += 1
        if systems.allSatisfy(\.isFinished) {
            // score_sde's denoise: one reverse-diffusion step at eps, its noise-free mean.
            var x = state
            try sampler.denoiseStep(&x, counter: flow.counter)
            denoisedState = x
            return event(index, sampler.eps, 0, .denoise(at: sampler.eps), rowTimes: nil)
        }
        switch sampler.layout {
        case .batch:
            let system = systems[0]
            guard let s = try system.step() else { return nil }
            return event(index, s.from, s.to, .attempt(index: index, t: s.from, next: s.to, accepted: 1, rejected: s.rejectedAttempts),
                         rowTimes: nil)
        case .perSample:
            let n = systems.count, d = rows.rowSize
            var made = [ODEIntegrator.Step?](repeating: nil, count: n)
            let systems = self.systems
            try made.withUnsafeMutableBufferPointer { mp in
                let mb = mp.baseAddress!
                try Parallel.forEachChunkThrowing(n, grain: 1) { range in
                    for r in range where !systems[r].isFinished {
                        mb[r] = try ProbabilityFlowRow.$current.withValue(r) { try systems[r].step() }
                    }
                }
            }
            var from = -Double.infinity, to = -Double.infinity, accepted = 0, rejected = 0
            rows.storage.withUnsafeMutableBufferPointer { out in
                for r in 0 ..< n {
                    guard let s = made[r] else { continue }
                    systems[r].state.withUnsafeBufferPointer { row in
                        for j in 0 ..< d { out[r * d + j] = row[j] }
                    }
                    from = max(from, s.from); to = max(to, s.to)
                    accepted += 1; rejected += s.rejectedAttempts
                }
            }
            let times = systems.map(\.time)
            return event(index, from, to, .attempt(index: index, t: from, next: to, accepted: accepted, rejected: rejected), rowTimes: times)
        }
    }

    /// The samples and what they cost (throws if the solve is not finished or diverged).
    public func result() throws -> ODEResult {
        guard isFinished else {
            throw ScoreSDEError.invalidArgument("the probability-flow solve has made \(steps) steps and has not reached eps = \(sampler.eps); call step() until it returns nil")
        }
        let state = self.state
        try state.checkFinite("the decoded samples")
        var stats = ODERunStatistics()
        for system in systems { stats.add(system.solveStatistics) }
        stats.scoreEvaluations = flow.counter.scoreEvaluations
        stats.modelPasses = flow.counter.modelPasses
        return ODEResult(states: state, scoreEvaluations: stats.scoreEvaluations, statistics: stats)
    }

    private func event(_ index: Int, _ t: Double, _ next: Double, _ move: ReverseMove, rowTimes: [Double]?) -> StepEvent {
        let x = state
        return StepEvent(index: index, total: 0, t: t, next: next, move: move, scoreEvaluations: flow.counter.scoreEvaluations,
                         modelPasses: flow.counter.modelPasses, state: x, mean: x, rowTimes: rowTimes)
    }
}

/// Settings of an adaptive ODE solve (GSL `gsl_odeiv2`). Tolerances are required: the right
/// choice depends on the data and on what the result is for (the reference uses 1e-5 / 1e-5).
public struct ODESolverOptions: Sendable, Equatable {
    public var stepType: ODEStepType
    public var absoluteTolerance: Double
    public var relativeTolerance: Double
    /// Magnitude of the first trial step (nil: 1/1000 of the interval).
    public var initialStep: Double?
    public var minStep: Double
    public var maxStep: Double?
    /// Most accepted steps per solve (nil: unlimited).
    public var maxSteps: Int?
    /// The step-size controller GSL's evolve loop asks (nil: GSL's standard control on the
    /// tolerances above, ``StepSizeController/gslStandard(absoluteTolerance:relativeTolerance:)``).
    /// Its row norms (``StepSizeController/ErrorNorm/worstRow``, ``StepSizeController/ErrorNorm/batch``)
    /// see the rows of the batch.
    public var controller: StepSizeController?

    public init(_ stepType: ODEStepType, absoluteTolerance: Double, relativeTolerance: Double,
                initialStep: Double? = nil, minStep: Double = 0, maxStep: Double? = nil, maxSteps: Int? = nil,
                controller: StepSizeController? = nil) {
        self.stepType = stepType; self.absoluteTolerance = absoluteTolerance; self.relativeTolerance = relativeTolerance
        self.initialStep = initialStep; self.minStep = minStep; self.maxStep = maxStep; self.maxSteps = maxSteps
        self.controller = controller
    }
}

/// How a batch becomes ODE systems.
public enum ODESystemLayout: String, Sendable, CaseIterable {
    /// The whole batch is one system with one step-size sequence (the reference's `solve_ivp` on the
    /// flattened batch): fewest model calls, each on the whole batch; the hardest row sets the steps.
    case batch
    /// Every sample is its own system with its own steps, solved in parallel across cores:
    /// results independent of the batch, NFE per sample.
    case perSample
}

/// Work counters of an ODE solve over a batch.
public struct ODERunStatistics: Sendable, Equatable {
    /// Batched score-model evaluations (for `.perSample`: summed over samples).
    public var scoreEvaluations: Int
    /// Model passes (Jacobian–vector products and guided scores count several per evaluation).
    public var modelPasses: Int = 0
    /// Integrator counters, summed over systems.
    public var integrator: ODEStatistics
    /// Right-hand-side evaluations of each system (one entry for `.batch`).
    public var evaluationsPerSystem: [Int]

    public init(scoreEvaluations: Int = 0, integrator: ODEStatistics = ODEStatistics(), evaluationsPerSystem: [Int] = []) {
        self.scoreEvaluations = scoreEvaluations; self.integrator = integrator; self.evaluationsPerSystem = evaluationsPerSystem
    }

    mutating func add(_ s: ODEStatistics) {
        integrator.rightHandSideEvaluations += s.rightHandSideEvaluations
        integrator.jacobianEvaluations += s.jacobianEvaluations
        integrator.acceptedSteps += s.acceptedSteps
        integrator.rejectedSteps += s.rejectedSteps
        evaluationsPerSystem.append(s.rightHandSideEvaluations)
    }
}

/// The probability-flow ODE `dx/dt = a(t) x − ½ g(t)² s(x, t)` of a forward SDE and a score model,
/// optionally augmented with `d(Δlog p)/dt = ∇·(drift)` for likelihoods, solved on GSL.
struct ProbabilityFlow<SDE: ForwardSDE, Score: ScoreModel> {
    let sde: SDE
    let score: Score
    let solver: ODESolverOptions
    let batchSize: Int?
    /// Counts every model call of this flow's solves (shared by the systems of `.perSample`).
    var counter = EvaluationCounter()

    /// The score and its divergence for rows of `x`, which are rows `firstRow...` of the data
    /// (nil: plain flow, no log-density component); `evaluations` is the number of batched model
    /// calls it made (1 for a closed form, D for exact-by-JVPs, K for K Hutchinson probes) and
    /// `passes` the model passes they cost (a vector–Jacobian product is a forward and a backward pass).
    typealias Divergence = (_ x: Tensor, _ t: Double, _ firstRow: Int) throws
        -> (score: Tensor, divergence: [Double], evaluations: Int, passes: Int)

    func validateTimes(_ t0: Double, _ t1: Double) throws {
        for t in [t0, t1] where !(t.isFinite && t > 0 && t <= sde.T) {
            throw ScoreSDEError.invalid("eps", t, must: "in (0, T = \(sde.T)]", advice: "the reference uses 1e-3 for VP/sub-VP sampling and 1e-5 for VE and likelihoods")
        }
    }

    /// Integrates every row of `x` from `t0` to `t1`, in place; with `divergence`, also returns
    /// `∫ ∇·drift dt` per row.
    func integrate(_ x: inout Tensor, from t0: Double, to t1: Double, layout: ODESystemLayout,
                   divergence: Divergence?) throws -> (deltaLogP: [Double], statistics: ODERunStatistics) {
        try validateTimes(t0, t1)
        try score.validate(x)
        try x.checkFinite("the ODE's initial state")
        let before = (counter.scoreEvaluations, counter.modelPasses)
        func counted(_ r: (deltaLogP: [Double], statistics: ODERunStatistics)) -> (deltaLogP: [Double], statistics: ODERunStatistics) {
            var r = r
            r.statistics.scoreEvaluations = counter.scoreEvaluations - before.0
            r.statistics.modelPasses = counter.modelPasses - before.1
            return r
        }
        switch layout {
        case .batch:
            return counted(try solve(&x, from: t0, to: t1, divergence: divergence))
        case .perSample:
            // Each row is its own system: under `Population.communicator` the rows are split
            // across processes and gathered back, the same bytes as one process.
            if let comm = Population.communicator, comm.size > 1 {
                return try integrateSplit(&x, from: t0, to: t1, divergence: divergence, comm)
            }
            let (delta, total, _) = try solveRows(&x, firstRow: 0, from: t0, to: t1, divergence: divergence)
            return counted((delta, total))
        }
    }

    /// The per-sample layout on this process's share of the rows of `x`; every process gets all
    /// rows, their Δlog p and statistics (summed as one process sums them).
    private func integrateSplit(_ x: inout Tensor, from t0: Double, to t1: Double, divergence: Divergence?,
                                _ comm: any Communicator) throws -> (deltaLogP: [Double], statistics: ODERunStatistics) {
        let n = x.rows, d = x.rowSize
        guard comm.size <= n else {
            throw ScoreSDEError.invalidArgument("\(comm.size) processes (ranks) share \(n) per-sample systems: each rank needs at least one row; use at most \(n) ranks (-np \(n)) or more samples")
        }
        let mine = Population.rows(of: n, rank: comm.rank, size: comm.size)
        let before = (counter.scoreEvaluations, counter.modelPasses)
        var local = x.rows(mine)
        let (delta, _, perRow) = try solveRows(&local, firstRow: mine.lowerBound, from: t0, to: t1, divergence: divergence)
        // One row per system: its state, Δlog p and its integrator counters (integers, exact in a double).
        let w = d + 5
        var packed = [Double](repeating: 0, count: mine.count * w)
        for r in 0 ..< mine.count {
            for j in 0 ..< d { packed[r * w + j] = local.storage[r * d + j] }
            let s = perRow[r]
            packed[r * w + d] = delta[r]
            packed[r * w + d + 1] = Double(s.rightHandSideEvaluations); packed[r * w + d + 2] = Double(s.jacobianEvaluations)
            packed[r * w + d + 3] = Double(s.acceptedSteps); packed[r * w + d + 4] = Double(s.rejectedSteps)
        }
        let all = try Population.gatherRows(try Tensor(shape: [mine.count, w], storage: packed), total: n, communicator: comm).storage
        let counts = try comm.allGather(Population.bytes(of: [Double(counter.scoreEvaluations - before.0), Double(counter.modelPasses - before.1)]))
            .map(Population.doubles(from:))
        var states = [Double](), deltas = [Double](repeating: 0, count: n)
        states.reserveCapacity(n * d)
        var total = ODERunStatistics()
        for r in 0 ..< n {
            states.append(contentsOf: all[r * w ..< r * w + d])
            deltas[r] = all[r * w + d]
            total.add(ODEStatistics(rightHandSideEvaluations: Int(all[r * w + d + 1]), jacobianEvaluations: Int(all[r * w + d + 2]),
                                    acceptedSteps: Int(all[r * w + d + 3]), rejectedSteps: Int(all[r * w + d + 4])))
        }
        total.scoreEvaluations = counts.reduce(0) { $0 + Int($1[0]) }
        total.modelPasses = counts.reduce(0) { $0 + Int($1[1]) }
        // The other ranks' evaluations, so that this flow's counter counts the whole population.
        counter.record(evaluations: total.scoreEvaluations - (counter.scoreEvaluations - before.0),
                       passes: total.modelPasses - (counter.modelPasses - before.1))
        x = try Tensor(shape: x.shape, storage: states)
        return (deltas, total)
    }

    /// One system per row of `x` (global rows `firstRow …`), in parallel; in place.
    private func solveRows(_ x: inout Tensor, firstRow: Int, from t0: Double, to t1: Double,
                           divergence: Divergence?) throws -> (deltaLogP: [Double], statistics: ODERunStatistics, perRow: [ODEStatistics]) {
            let n = x.rows, d = x.rowSize
            var delta = [Double](repeating: 0, count: n)
            var perRow = [ODERunStatistics](repeating: ODERunStatistics(), count: n)
            var out = x
            try out.storage.withUnsafeMutableBufferPointer { op in
                try delta.withUnsafeMutableBufferPointer { dp in
                    try perRow.withUnsafeMutableBufferPointer { sp in
                        let ob = op.baseAddress!, db = dp.baseAddress!, sb = sp.baseAddress!
                        let rowShape = [1] + x.rowShape
                        try Parallel.forEachChunkThrowing(n, grain: 1) { range in
                            for r in range {
                                var row = Tensor(uncheckedShape: rowShape, storage: Array(UnsafeBufferPointer(start: ob + r * d, count: d)))
                                let (dl, st) = try ProbabilityFlowRow.$current.withValue(firstRow + r) {
                                    try solve(&row, from: t0, to: t1, divergence: divergence)
                                }
                                for j in 0 ..< d { ob[r * d + j] = row.storage[j] }
                                db[r] = dl.first ?? 0
                                sb[r] = st
                            }
                        }
                    }
                }
            }
            x = out
            var total = ODERunStatistics()
            for s in perRow { total.add(s.integrator) }
            return (delta, total, perRow.map(\.integrator))
    }

    /// One GSL system holding all rows of `x` (plus one Δlog p component per row when augmented).
    private func solve(_ x: inout Tensor, from t0: Double, to t1: Double,
                       divergence: Divergence?) throws -> (deltaLogP: [Double], statistics: ODERunStatistics) {
        let n = x.rows, d = x.rowSize, shape = x.shape
        let augmented = divergence != nil
        let dim = n * d + (augmented ? n : 0)
        let integrator = try makeSystem(shape: shape, divergence: divergence)
        var y = x.storage
        if augmented { y.append(contentsOf: repeatElement(0, count: n)) }
        let stats = try integrator.integrate(&y, from: t0, to: t1)
        x = Tensor(uncheckedShape: shape, storage: Array(y[0 ..< n * d]))
        var run = ODERunStatistics()
        run.add(stats)
        return (augmented ? Array(y[n * d ..< dim]) : [], run)
    }

    /// The GSL system of a batch of shape `shape` (rows × row shape): the flow of every row, plus
    /// one Δlog p component per row when `divergence` is given; its state is the batch's values
    /// row by row, then the Δlog p components.
    func makeSystem(shape: [Int], divergence: Divergence?) throws -> ODEIntegrator {
        let n = shape[0], d = shape.dropFirst().reduce(1, *)
        let augmented = divergence != nil
        let dim = n * d + (augmented ? n : 0)
        let reverse = ReverseSDE(sde: sde, score: score, batchSize: batchSize, counter: counter)
        let sde = self.sde
        let rhs: ODEIntegrator.RightHandSide = { t, y, dydt in
            let state = Tensor(uncheckedShape: shape, storage: Array(UnsafeBufferPointer(rebasing: y[0 ..< n * d])))
            let a = sde.driftCoefficient(at: t), g = sde.diffusion(at: t), h = -0.5 * g * g
            let s: Tensor
            if let divergence {
                // Rows in chunks of at most `batchSize` per model call; the first row of a per-sample
                // system is its row in the data.
                let base = ProbabilityFlowRow.current ?? 0
                let chunk = min(n, batchSize ?? n)
                var scores = [Tensor](), calls = 0, passes = 0
                var lo = 0
                while lo < n {
                    let hi = min(n, lo + chunk)
                    let (sc, div, evaluations, p) = try ScoreBatch.$rows.withValue(chunk == n && base == 0 ? nil : base + lo ..< base + hi) {
                        try divergence(chunk == n ? state : state.rows(lo ..< hi), t, base + lo)
                    }
                    scores.append(sc)
                    calls = max(calls, evaluations)
                    passes = max(passes, p)
                    let ad = a * Double(d)
                    for r in lo ..< hi { dydt[n * d + r] = ad + h * div[r - lo] }
                    lo = hi
                }
                reverse.countEvaluations(calls, passes: passes)
                s = scores.count == 1 ? scores[0] : try Tensor.concatenating(scores)
            } else {
                s = try reverse.score(state, at: t)
            }
            guard s.count == n * d else {
                throw ScoreSDEError.shapeMismatch("the score model returned shape \(s.shape) for input \(shape)")
            }
            s.storage.withUnsafeBufferPointer { sp in
                let sb = sp.baseAddress!, yb = y.baseAddress!, out = dydt.baseAddress!
                for i in 0 ..< n * d { out[i] = a * yb[i] + h * sb[i] }
            }
        }
        return try ODEIntegrator(solver.stepType, dimension: dim,
                                           absoluteTolerance: solver.absoluteTolerance, relativeTolerance: solver.relativeTolerance,
                                           initialStep: solver.initialStep, minStep: solver.minStep, maxStep: solver.maxStep,
                                           maxSteps: solver.maxSteps, controller: solver.controller, rowSize: d, rightHandSide: rhs,
                                           jacobian: solver.stepType.requiresJacobian ? try jacobian(n: n, d: d, augmented: augmented, shape: shape, reverse: reverse) : nil)
    }

    /// The dense Jacobian of the flow, `a I − ½ g² ∂s/∂x`, from D Jacobian–vector products per row
    /// (implicit step types; only sensible for small systems). `∂f/∂t` by a forward difference.
    private func jacobian(n: Int, d: Int, augmented: Bool, shape: [Int], reverse: ReverseSDE<SDE, Score>) throws -> ODEIntegrator.Jacobian {
        guard let model = score as? any ScoreJacobianProviding else {
            throw ScoreSDEError.invalidArgument("the implicit step type \(solver.stepType.rawValue) needs the Jacobian of the score, which this model does not provide; use an explicit step type (rkf45, rkck, rk8pd, rk4, rk2, msadams)")
        }
        guard !augmented else {
            throw ScoreSDEError.invalidArgument("implicit step types are not supported for likelihoods (the divergence's Jacobian would need second derivatives); use rkf45, rkck, rk8pd or msadams")
        }
        let dim = n * d
        guard dim <= ODEStepType.maximumImplicitUnknowns else {
            throw ScoreSDEError.invalidArgument("the implicit step type \(solver.stepType.rawValue) needs a dense \(dim)×\(dim) Jacobian; use the per-sample layout or an explicit step type")
        }
        let sde = self.sde
        return { t, y, dfdy, dfdt in
            let x = Tensor(uncheckedShape: shape, storage: Array(y))
            let a = sde.driftCoefficient(at: t), g = sde.diffusion(at: t), h = -0.5 * g * g
            for i in 0 ..< dim * dim { dfdy[i] = 0 }
            var s0 = Tensor(zeros: shape)
            for j in 0 ..< d {
                var e = Tensor(zeros: shape)
                for r in 0 ..< n { e.storage[r * d + j] = 1 }
                let (s, jv) = try model.scoreAndJVP(x, at: t, direction: e)
                s0 = s
                // column j of each row's block: ∂f_{r,i}/∂x_{r,j} = a δ_ij + h (J_r)_{ij}
                for r in 0 ..< n {
                    for i in 0 ..< d {
                        dfdy[(r * d + i) * dim + r * d + j] = h * jv.storage[r * d + i] + (i == j ? a : 0)
                    }
                }
            }
            let dt = 1e-7 * max(1, abs(t))
            let t2 = min(sde.T, t + dt) == t ? t - dt : t + dt
            let s2 = try model.score(x, at: t2)
            // d score-and-JVP calls (2 passes each) and one score for ∂f/∂t
            reverse.countEvaluations(d + 1, passes: 2 * d + model.passesPerEvaluation)
            let a2 = sde.driftCoefficient(at: t2), g2 = sde.diffusion(at: t2)
            for i in 0 ..< dim {
                let f1 = a * y[i] + h * s0.storage[i], f2 = a2 * y[i] - 0.5 * g2 * g2 * s2.storage[i]
                dfdt[i] = (f2 - f1) / (t2 - t)
            }
        }
    }
}

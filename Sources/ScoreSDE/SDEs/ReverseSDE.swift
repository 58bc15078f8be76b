import Foundation

/// The reverse-time process of a forward SDE with a score model:
/// `dx = [f(x,t) − g(t)² s(x,t)] dt + g(t) dw̄`, or, as the probability-flow ODE,
/// `dx = [f(x,t) − ½ g(t)² s(x,t)] dt`.
///
/// It is passed to every predictor and corrector step, and every score evaluation goes through
/// it, so it owns the count of score evaluations (NFE).
public protocol ReverseProcess {
    associatedtype SDE: ForwardSDE
    /// The forward SDE being reversed.
    var sde: SDE { get }
    /// The score at `t` of every row of `x` (counted as one evaluation).
    func score(_ x: Tensor, at t: Double) throws -> Tensor
    /// Number of batched score evaluations so far (NFE).
    var scoreEvaluations: Int { get }
    /// Number of model passes so far: a guided score costs several per evaluation (its
    /// ``ScoreModel/passesPerEvaluation``), a Jacobian–vector product counts its own.
    var modelPasses: Int { get }
    /// Runs `body` with a batch-sized scratch tensor that is reused from call to call (its shape and
    /// contents on entry are unspecified), so steps need not allocate one per call.
    func withScratch<R>(_ body: (inout Tensor) throws -> R) rethrows -> R
    /// Whether the population being sampled is split across processes (an MPI run): then a step's
    /// batch is one shard, and population statistics must come from ``populationMeans(_:)``.
    var populationIsSplit: Bool { get }
    /// Means over the **whole population** being sampled of per-row values: `columns[k]` holds this
    /// batch's rows' values of quantity `k` (e.g. `z.rowNorms()`). One process: `columns[k].mean()`.
    /// A population split across processes: the values are gathered and summed in global row order,
    /// the bytes of one process. A step that needs a population statistic (Langevin's step size from
    /// the mean norms) takes it from the process it is given, never from its batch alone.
    func populationMeans(_ columns: [[Double]]) throws -> [Double]
}

extension ReverseProcess {
    public func withScratch<R>(_ body: (inout Tensor) throws -> R) rethrows -> R {
        var t = Tensor(zeros: [0])
        return try body(&t)
    }
    public var populationIsSplit: Bool { Population.isSplit }
    public func populationMeans(_ columns: [[Double]]) throws -> [Double] { try Population.rowMeans(columns) }
}

extension ReverseProcess {
    /// The reverse-SDE drift `f − g² s` (or `f − ½ g² s` for the probability flow), one score evaluation.
    public func drift(_ x: Tensor, at t: Double, probabilityFlow: Bool = false) throws -> Tensor {
        var s = try score(x, at: t)
        let g = sde.diffusion(at: t)
        s.scale(by: -(probabilityFlow ? 0.5 : 1) * g * g, adding: x, scaledBy: sde.driftCoefficient(at: t))
        return s
    }

    /// The reverse-SDE diffusion `g(t)` (0 for the probability flow).
    public func diffusion(at t: Double, probabilityFlow: Bool = false) -> Double {
        probabilityFlow ? 0 : sde.diffusion(at: t)
    }
}

/// The one place score evaluations and model passes are counted: every model call of a sampler,
/// ODE solve or likelihood goes through a ``ReverseSDE`` that owns one of these. Thread-safe.
public final class EvaluationCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var evaluations = 0, passes = 0

    public init() {}

    /// Records `evaluations` batched score calls costing `passes` model passes in all.
    public func record(evaluations e: Int, passes p: Int) {
        lock.lock(); evaluations += e; passes += p; lock.unlock()
    }

    public var scoreEvaluations: Int { lock.lock(); defer { lock.unlock() }; return evaluations }
    public var modelPasses: Int { lock.lock(); defer { lock.unlock() }; return passes }
}

/// A forward SDE reversed with a score model. `batchSize` bounds the rows of one model call
/// (memory); results never depend on it. It owns the run's ``EvaluationCounter`` and a reusable
/// score buffer, so a step that drops its score before the next call allocates nothing.
public final class ReverseSDE<SDE: ForwardSDE, Score: ScoreModel>: ReverseProcess, @unchecked Sendable {
    public let sde: SDE
    public let model: Score
    public let batchSize: Int?
    public let counter: EvaluationCounter
    private let lock = NSLock()
    private var spare: Tensor?
    private var scratch: Tensor?

    public func withScratch<R>(_ body: (inout Tensor) throws -> R) rethrows -> R {
        lock.lock(); var t = scratch ?? Tensor(zeros: [0]); scratch = nil; lock.unlock()
        defer { lock.lock(); scratch = t; lock.unlock() }
        return try body(&t)
    }

    public init(sde: SDE, score model: Score, batchSize: Int? = nil, counter: EvaluationCounter = EvaluationCounter()) {
        self.sde = sde; self.model = model; self.batchSize = batchSize; self.counter = counter
    }

    public var scoreEvaluations: Int { counter.scoreEvaluations }
    public var modelPasses: Int { counter.modelPasses }

    /// Records `n` evaluations made directly on the model (e.g. a score with its Jacobian–vector
    /// product) costing `passes` model passes in all (default `n` × the model's passes).
    public func countEvaluations(_ n: Int = 1, passes: Int? = nil) {
        counter.record(evaluations: n, passes: passes ?? n * model.passesPerEvaluation)
    }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        lock.lock(); var out = spare ?? Tensor(zeros: x.shape); spare = nil; lock.unlock()
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        try score(x, at: t, into: &out)
        lock.lock(); spare = out; lock.unlock()   // shared with the caller until it drops its copy
        return out
    }

    /// The score written into `out` (shaped like `x`); one counted evaluation.
    public func score(_ x: Tensor, at t: Double, into out: inout Tensor) throws {
        countEvaluations()
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        guard let b = batchSize, b < x.rows else {
            try model.score(x, at: t, into: &out)
            return try check(out, x)
        }
        var lo = 0
        while lo < x.rows {
            let hi = min(x.rows, lo + b)
            let part = try ScoreBatch.$rows.withValue(lo ..< hi) { try model.score(x.rows(lo ..< hi), at: t) }
            try Self.place(part, at: lo, rows: hi - lo, of: x, into: &out)
            lo = hi
        }
    }

    /// The score of row `i` of `x` at its own time `times[i]` (``ScoreModel/score(_:at:into:)-(_,[Double],_)``),
    /// written into `out`: **one** counted evaluation (one batched call), split into model calls of
    /// at most `batchSize` rows. `rows` says which rows of the batch those of `x` are (the active
    /// rows of a per-sample solver; composed with any ``ScoreBatch`` range the caller runs in), so
    /// per-row labels and observations follow them (``ScoreBatch/gathered``); `nil`: rows `0 ..< x.rows`.
    ///
    /// - Throws: `shapeMismatch` unless there is one time (and one entry of `rows`) per row, or when
    ///   the model returns another shape.
    public func score(_ x: Tensor, at times: [Double], rows: [Int]? = nil, into out: inout Tensor) throws {
        guard times.count == x.rows, rows.map({ $0.count == x.rows }) ?? true else {
            throw ScoreSDEError.shapeMismatch("\(times.count) times and \(rows?.count ?? x.rows) row indices for \(x.rows) rows: give one per row")
        }
        countEvaluations()
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        let n = x.rows
        guard let b = batchSize, b < n else {
            if let rows {
                try ScoreBatch.withRows(rows) { try model.score(x, at: times, into: &out) }
            } else {
                try model.score(x, at: times, into: &out)
            }
            return try check(out, x)
        }
        var lo = 0
        while lo < n {
            let hi = min(n, lo + b)
            let call = { try self.model.score(x.rows(lo ..< hi), at: Array(times[lo ..< hi])) }
            let part = try rows.map { r in try ScoreBatch.withRows(Array(r[lo ..< hi]), call) }
                ?? ScoreBatch.$rows.withValue(lo ..< hi, operation: call)
            try Self.place(part, at: lo, rows: hi - lo, of: x, into: &out)
            lo = hi
        }
    }

    /// Copies a split call's `rows` score rows into `out` from row `lo` on, after checking the model
    /// returned that many rows of `x`'s row size.
    private static func place(_ part: Tensor, at lo: Int, rows: Int, of x: Tensor, into out: inout Tensor) throws {
        let d = x.rowSize
        guard part.count == rows * d else {
            throw ScoreSDEError.shapeMismatch("the score model returned shape \(part.shape) for input rows of shape \(x.rowShape)")
        }
        out.values.withUnsafeMutableBufferPointer { o in
            part.values.withUnsafeBufferPointer { p in
                (o.baseAddress! + lo * d).update(from: p.baseAddress!, count: p.count)
            }
        }
    }

    private func check(_ s: Tensor, _ x: Tensor) throws {
        guard s.shape == x.shape else {
            throw ScoreSDEError.shapeMismatch("the score model returned shape \(s.shape) for input \(x.shape)")
        }
    }
}

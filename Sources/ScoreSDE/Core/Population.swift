import Foundation

/// Processes that share one run's rows — the ranks of an MPI job, say — seen through the one
/// collective the library needs. No MPI type appears here: `ScoreSDEMPI` implements it over Open
/// MPI; a test can implement it over threads.
///
/// Collective: every process calls ``allGather(_:)`` the same number of times, in the same order.
public protocol Communicator: Sendable {
    /// This process's index, `0 ..< size`.
    var rank: Int { get }
    /// The number of processes.
    var size: Int { get }
    /// Every process's `bytes` (any length, possibly different per process), in rank order;
    /// every process receives the whole list (MPI_Allgatherv).
    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]]
}

/// How a run's population (its rows) is split across processes, and the population quantities
/// reduced across them so that a split run gives the **same bytes** as one process.
///
/// Rows are split in contiguous blocks in rank order (``rows(of:rank:size:)``); a process holding
/// rows `lo ..< hi` draws with `RandomSource(seed:rowOffset: lo)`, so every draw (prior, predictor,
/// corrector noise) is the one a single process makes for those rows. Quantities over the whole
/// population (Langevin's mean norms) go through ``rowMeans(_:)``, which gathers the per-row values
/// in rank order — global row order — and sums them in that order, as one process does.
///
///     Population.$communicator.withValue(world) {          // e.g. ScoreSDEMPI.MPICommunicator
///         let run = try sampler.sample(count: 50_000, using: &rng)   // every rank gets all 50 000 rows
///     }
public enum Population {
    /// The processes that runs started in this task split their rows across (nil: this process
    /// alone). ``PCSampler/sample(count:rowShape:using:onStep:)`` and the ODE sampler's
    /// per-sample layout split across it; other computations run whole on every process.
    @TaskLocal public static var communicator: (any Communicator)?

    /// The processes the run in progress is split across: population quantities are reduced
    /// across them. Set by the samplers that split; set it yourself (`Population.$active.withValue`)
    /// when you run your own shards with `sample(from:)`.
    @TaskLocal public static var active: (any Communicator)?

    /// World size of ``communicator`` (1 without one).
    public static var size: Int { communicator?.size ?? 1 }
    /// Rank in ``communicator`` (0 without one).
    public static var rank: Int { communicator?.rank ?? 0 }

    /// Whether the run in progress is split across more than one process (``active``).
    public static var isSplit: Bool { (active?.size ?? 1) > 1 }

    /// The population means of `‖s_r‖` and `‖z_r‖` (Langevin's step size; see ``rowMeans(_:)``).
    public static func meanRowNorms(_ s: Tensor, _ z: Tensor) throws -> (Double, Double) {
        let m = try rowMeans([s.rowNorms(), z.rowNorms()])
        return (m[0], m[1])
    }

    /// The rows of `count` held by `rank` of `size`: contiguous blocks in rank order, the first
    /// `count % size` ranks one row more.
    public static func rows(of count: Int, rank: Int, size: Int) -> Range<Int> {
        let base = count / size, extra = count % size
        let lo = rank * base + min(rank, extra)
        return lo ..< lo + base + (rank < extra ? 1 : 0)
    }

    /// Means over the whole population of per-row values: `columns[k]` holds this process's rows'
    /// values of quantity `k`. Alone: `columns[k].mean()`. Split (``active``): the values are
    /// gathered in rank order and summed in global row order — the same bytes as one process.
    public static func rowMeans(_ columns: [[Double]]) throws -> [Double] {
        guard let comm = active, comm.size > 1 else { return columns.map { $0.mean() } }
        let rows = columns.first?.count ?? 0
        precondition(columns.allSatisfy { $0.count == rows }, "Population.rowMeans: one value per row in every column")
        let parts = try comm.allGather(bytes(of: columns.flatMap { $0 }))
        var full = Array(repeating: [Double](), count: columns.count)
        for (r, part) in parts.enumerated() {
            let values = doubles(from: part)
            guard values.count % max(columns.count, 1) == 0 else {
                throw ScoreSDEError.invalidArgument("rank \(r) sent \(values.count) values for \(columns.count) per-row quantities; every rank must run the same sampler")
            }
            let n = values.count / max(columns.count, 1)
            for k in 0 ..< columns.count { full[k].append(contentsOf: values[k * n ..< (k + 1) * n]) }
        }
        return full.map { $0.mean() }
    }

    /// Runs `body` on this process's share of `count` rows (its range) with the population split
    /// across ``communicator``, and returns every process's rows concatenated in rank order, on
    /// every process. Without a communicator (or a world of 1), `body(0 ..< count)`.
    ///
    /// - Throws: `invalidArgument` when there are more processes than rows.
    public static func split(count: Int, _ body: (Range<Int>) throws -> Tensor) throws -> Tensor {
        guard let comm = communicator, comm.size > 1 else { return try body(0 ..< count) }
        guard comm.size <= count else {
            throw ScoreSDEError.invalidArgument("\(comm.size) processes (ranks) share \(count) rows: each rank needs at least one row; use at most \(count) ranks (-np \(count)) or more samples")
        }
        let mine = rows(of: count, rank: comm.rank, size: comm.size)
        let local = try $active.withValue(comm) { try body(mine) }
        return try gatherRows(local, total: count, communicator: comm)
    }

    /// Every process's rows of `local`, concatenated in rank order (shape `[total] + rowShape`).
    public static func gatherRows(_ local: Tensor, total: Int, communicator comm: any Communicator) throws -> Tensor {
        let parts = try comm.allGather(bytes(of: local.storage))
        var storage = [Double]()
        storage.reserveCapacity(total * local.rowSize)
        for part in parts { storage.append(contentsOf: doubles(from: part)) }
        var shape = local.shape
        shape[0] = total
        guard storage.count == total * local.rowSize else {
            throw ScoreSDEError.shapeMismatch("the ranks returned \(storage.count) values for \(total) rows of \(local.rowSize); every rank must run the same computation")
        }
        return try Tensor(shape: shape, storage: storage)
    }

    /// Throws on every process when `check` throws on any, naming the first failing rank and its
    /// message; alone, just runs `check`. (E.g. an output path only some ranks can write.)
    public static func agree(_ what: String, _ check: () throws -> Void) throws {
        var failure: Error?
        do { try check() } catch { failure = error }
        guard let comm = communicator, comm.size > 1 else {
            if let failure { throw failure }
            return
        }
        let message = failure.map { "\($0)" }
        let parts = try comm.allGather(Array((message.map { "1" + $0 } ?? "0").utf8))
        for (r, part) in parts.enumerated() where part.first == UInt8(ascii: "1") {
            throw ScoreSDEError.population(PopulationFailure(rank: r, size: comm.size, collective: true,
                                                             message: "\(what): " + String(decoding: part.dropFirst(), as: UTF8.self)))
        }
    }

    static func bytes(of values: [Double]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    static func doubles(from bytes: [UInt8]) -> [Double] {
        var out = [Double](repeating: 0, count: bytes.count / 8)
        out.withUnsafeMutableBytes { o in bytes.withUnsafeBytes { b in o.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[0 ..< o.count])) } }
        return out
    }
}

import Foundation

/// How a training step's batch gradient is summed, so that it has the same bits however many
/// processes share the step.
///
/// The batch of `batchSize` rows is cut into consecutive **blocks** of `blockSize` rows (the last
/// one may be shorter). Block `b`'s partial gradient (and loss) is computed from its rows alone —
/// the same call with the same inputs, whoever computes it — and scaled by its share of the batch,
/// `rows(b) / batchSize`; the batch gradient is the sum of the partials **in block order**,
/// element by element: `g = (((0 + p₀) + p₁) + …)`. Floating-point addition is not associative,
/// so this fixed order, not the split, defines the bits: one process folds the blocks as it
/// computes them; `K` processes each compute a contiguous run of blocks and
/// ``GradientBlockReducer`` adds them in the same order (a reduce-scatter by parameter slices, then
/// an all-gather), which gives the same bits for any `K` up to ``count``.
///
///     let blocks = GradientBlocks(batchSize: 128, blockSize: 16)   // 8 blocks
///     blocks.owned(rank: 1, size: 3)                               // 3 ..< 6
///     blocks.rows(of: 7)                                           // 112 ..< 128
public struct GradientBlocks: Sendable, Equatable {
    public let batchSize: Int
    /// Rows per block (the last block may have fewer).
    public let blockSize: Int

    /// - Precondition: `batchSize >= 1`, `blockSize >= 1`.
    public init(batchSize: Int, blockSize: Int) {
        precondition(batchSize >= 1 && blockSize >= 1, "GradientBlocks: batch and block size must be >= 1")
        self.batchSize = batchSize
        self.blockSize = min(blockSize, batchSize)
    }

    /// The number of blocks, `⌈batchSize / blockSize⌉`: the most processes that can share a step.
    public var count: Int { (batchSize + blockSize - 1) / blockSize }

    /// The batch rows of block `b`.
    public func rows(of b: Int) -> Range<Int> { b * blockSize ..< min((b + 1) * blockSize, batchSize) }

    /// The batch rows of the blocks `blocks`.
    public func rows(of blocks: Range<Int>) -> Range<Int> {
        blocks.isEmpty ? 0 ..< 0 : rows(of: blocks.lowerBound).lowerBound ..< rows(of: blocks.upperBound - 1).upperBound
    }

    /// Block `b`'s weight in the batch mean, `rows(b) / batchSize` (exactly 1 for a single block).
    public func weight(of b: Int) -> Double { Double(rows(of: b).count) / Double(batchSize) }

    /// The blocks process `rank` of `size` computes: contiguous, in rank order
    /// (``Population/rows(of:rank:size:)`` over blocks).
    public func owned(rank: Int, size: Int) -> Range<Int> { Population.rows(of: count, rank: rank, size: size) }

    /// Throws unless `size` processes can share a step (each needs at least one block).
    public func checkShared(by size: Int) throws {
        guard size > count else { return }
        func n(_ k: Int, _ word: String) -> String { "\(k) \(word)\(k == 1 ? "" : "s")" }
        let advice = size <= batchSize
            ? "use at most \(n(count, "rank")) (-np \(count)), or smaller gradient blocks (at most \(n(batchSize / size, "row")) each for \(size) ranks; a new run only, as the block size is part of the run)"
            : "the batch has only \(n(batchSize, "row")); use at most \(n(count, "rank")) (-np \(count)) or a larger batch"
        throw ScoreSDEError.invalidArgument("\(size) processes (ranks) would share training steps of \(n(count, "gradient block")) (batch \(batchSize), \(n(blockSize, "row")) per block): each rank needs at least one block; \(advice)")
    }
}

/// A process's word to the others at a step's gradient exchange.
public enum StepNote: Sendable, Equatable {
    /// Its blocks are done.
    case ok
    /// Its blocks are done and it was asked to stop (a signal): every process stops after this step.
    case stop
    /// Its blocks failed; the message says why. Every process fails with it.
    case failure(String)
}

/// A ``Communicator`` that can also send each process its own bytes (MPI_Alltoallv). The block
/// reduction uses it to move only each process's slice of the partial gradients; a plain
/// ``Communicator`` gets the same result through ``Communicator/allGather(_:)`` (every process
/// receives every part, `size` times the bytes).
public protocol AllToAllCommunicator: Communicator {
    /// Sends `parts[r]` to process `r` (`parts.count == size`); returns the parts every process
    /// sent to this one, in rank order. Collective.
    func allToAll(_ parts: [[UInt8]]) throws -> [[UInt8]]
}

extension Communicator {
    /// ``AllToAllCommunicator/allToAll(_:)`` when available, else through ``allGather(_:)``.
    func exchange(_ parts: [[UInt8]]) throws -> [[UInt8]] {
        precondition(parts.count == size, "exchange: one part per process")
        if let a = self as? any AllToAllCommunicator { return try a.allToAll(parts) }
        // Everyone sends all its parts, prefixed by their lengths; each keeps the part meant for it.
        var packed = [UInt8]()
        for p in parts { withUnsafeBytes(of: UInt64(p.count).littleEndian) { packed.append(contentsOf: $0) } }
        for p in parts { packed.append(contentsOf: p) }
        return try allGather(packed).map { all in
            func length(_ i: Int) -> Int {
                all.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
            }
            var offset = 8 * size
            for i in 0 ..< rank { offset += length(i) }
            return Array(all[offset ..< offset + length(rank)])
        }
    }
}

/// Sums the partial gradients of a step's blocks across the processes of a ``Communicator``, in
/// block order (see ``GradientBlocks``): the same bits as one process folding them in order.
///
/// Each partial is a vector of `width` values (the gradient, then the block's loss). Process `r`
/// owns the slice ``Population/rows(of:rank:size:)`` of the `width` positions: every process sends
/// it that slice of each of its blocks (`allToAll`), it adds them in block order, and an
/// `allGather` of the summed slices gives every process the whole sum. Per step and process:
/// sent ≈ `8 · width · ownedBlocks` bytes, received ≈ `8 · width · (blocks / size + 1)` bytes;
/// two collectives (plus the count exchanges inside them).
///
/// Alongside, every process says how its blocks went (``StepNote``): a failure on any process
/// throws on all of them, naming the first failing rank, before the second collective; a stop
/// request on any is reported to all, so they stop after the same step.
public struct GradientBlockReducer: Sendable {
    public let blocks: GradientBlocks
    /// Values per partial (gradient and loss).
    public let width: Int

    public init(blocks: GradientBlocks, width: Int) { self.blocks = blocks; self.width = width }

    /// `sum[j] += partial[j]`: the one step of the fold, on one process or many.
    @inline(__always)
    public static func accumulate(_ partial: UnsafePointer<Double>, into sum: UnsafeMutablePointer<Double>, count: Int) {
        for j in 0 ..< count { sum[j] += partial[j] }
    }

    /// The in-order sum of every block's partial.
    ///
    /// - Parameters:
    ///   - partials: this process's blocks' partials (``GradientBlocks/owned(rank:size:)``), in
    ///     block order, `width` values each (ignored after a failure).
    ///   - note: how this process's blocks went.
    ///   - comm: the processes sharing the step (same call on each, collective).
    /// - Returns: the sum, and whether any process asked to stop.
    /// - Throws: ``ScoreSDEError/population(_:)`` (collective) naming the first rank whose note is a failure,
    ///   or whose data do not fit the blocks.
    public func reduce(_ partials: [[Double]], note: StepNote, communicator comm: any Communicator) throws -> (sum: [Double], stop: Bool) {
        let size = comm.size
        let mine = blocks.owned(rank: comm.rank, size: size)
        let failed: Bool
        if case .failure = note { failed = true } else { failed = false }
        precondition(failed || partials.count == mine.count && partials.allSatisfy { $0.count == width },
                     "GradientBlockReducer: one partial of \(width) values per owned block")
        // Part for process r: a note byte (0 ok, 1 stop, 2 failure + message), then r's slice of each partial.
        var parts = [[UInt8]]()
        parts.reserveCapacity(size)
        for r in 0 ..< size {
            switch note {
            case .failure(let message): parts.append([2] + Array(message.utf8))
            case .ok, .stop:
                let slice = Population.rows(of: width, rank: r, size: size)
                var part = [UInt8]()
                part.reserveCapacity(1 + 8 * slice.count * partials.count)
                part.append(note == .stop ? 1 : 0)
                for p in partials { p[slice].withUnsafeBytes { part.append(contentsOf: $0) } }
                parts.append(part)
            }
        }
        let received = try comm.exchange(parts)
        var stop = false
        for (r, part) in received.enumerated() {
            switch part.first {
            case 2: throw ScoreSDEError.population(PopulationFailure(rank: r, size: size, collective: true, message: String(decoding: part.dropFirst(), as: UTF8.self)))
            case 1: stop = true
            default: break
            }
        }
        // My slice of the sum, blocks in order (ranks in order, each rank's blocks in order).
        let slice = Population.rows(of: width, rank: comm.rank, size: size)
        var sum = [Double](repeating: 0, count: slice.count)
        for (r, part) in received.enumerated() {
            let owned = blocks.owned(rank: r, size: size).count
            guard part.count == 1 + 8 * slice.count * owned else {
                throw ScoreSDEError.population(PopulationFailure(rank: r, size: size, collective: true,
                                                         message: "sent \(part.count - 1) bytes of partial gradients where \(8 * slice.count * owned) were due (\(owned) blocks); every rank must train the same network with the same batch and block size"))
            }
            part.withUnsafeBytes { raw in
                for b in 0 ..< owned {
                    let base = 1 + 8 * slice.count * b
                    for j in 0 ..< slice.count { sum[j] += raw.loadUnaligned(fromByteOffset: base + 8 * j, as: Double.self) }
                }
            }
        }
        let all = try comm.allGather(Population.bytes(of: sum))
        var full = [Double]()
        full.reserveCapacity(width)
        for part in all { full.append(contentsOf: Population.doubles(from: part)) }
        guard full.count == width else {
            throw ScoreSDEError.population(PopulationFailure(rank: comm.rank, size: size, collective: true, message: "gathered \(full.count) gradient values where \(width) were due; every rank must train the same network"))
        }
        return (full, stop)
    }
}

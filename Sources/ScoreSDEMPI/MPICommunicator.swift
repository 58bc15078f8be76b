import CMPI
import Foundation
import ScoreSDE

/// The ranks of an MPI job (`MPI_COMM_WORLD` of Open MPI) as a ScoreSDE ``Communicator``: the
/// library splits rows across them (``Population``), gathers with `MPI_Allgatherv`, exchanges
/// training's gradient slices with `MPI_Alltoallv` (``AllToAllCommunicator``), and no MPI type
/// leaves this module.
///
///     let world = try MPICommunicator.initialize()      // once per process, under mpirun or srun
///     let run = try Population.$communicator.withValue(world) { try sampler.sample(count: 50_000, using: &rng) }
///     world.finalize()
///
/// Errors of MPI calls are returned, not fatal (`MPI_ERRORS_RETURN`), and thrown as
/// ``ScoreSDEError``; a job whose rank failed should be ended with ``abort(code:)``.
public final class MPICommunicator: AllToAllCommunicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int

    private init(rank: Int, size: Int) { self.rank = rank; self.size = size }

    /// Whether this binary was built against MPI's headers and library (pkg-config `ompi-c`).
    public static var isAvailable: Bool { cmpi_available() != 0 }

    /// Whether an MPI launcher started this process: `mpirun` (Open MPI sets
    /// `OMPI_COMM_WORLD_SIZE`) or a PMI/PMIx launcher such as `srun --mpi=pmix`.
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    /// Initializes MPI (once per process) and returns the world.
    public static func initialize() throws -> MPICommunicator {
        guard isAvailable else {
            throw ScoreSDEError.invalidArgument("this binary was built without MPI (no pkg-config ompi-c when it was built); install libopenmpi-dev and rebuild")
        }
        var rank: Int32 = 0, size: Int32 = 1
        let rc = cmpi_init(&rank, &size)
        guard rc == 0 else { throw failure("MPI_Init_thread", rc) }
        return MPICommunicator(rank: Int(rank), size: Int(size))
    }

    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        guard bytes.count <= Int(Int32.max) else {
            throw ScoreSDEError.invalidArgument("rank \(rank) would send \(bytes.count) bytes in one collective (at most \(Int32.max)); use more ranks or fewer samples per run")
        }
        var counts = [Int32](repeating: 0, count: size)
        var rc = cmpi_allgather_int(Int32(bytes.count), &counts)
        guard rc == 0 else { throw Self.failure("MPI_Allgather", rc) }
        var displacements = [Int32](repeating: 0, count: size), total = 0
        for r in 0 ..< size {
            guard total <= Int(Int32.max) - Int(counts[r]) else {
                throw ScoreSDEError.invalidArgument("the ranks would gather \(counts.reduce(0) { $0 + Int($1) }) bytes in one collective (at most \(Int32.max))")
            }
            displacements[r] = Int32(total); total += Int(counts[r])
        }
        var out = [UInt8](repeating: 0, count: max(total, 1))
        rc = bytes.withUnsafeBytes { b in
            out.withUnsafeMutableBytes { o in
                cmpi_allgatherv_bytes(b.baseAddress, Int32(bytes.count), o.baseAddress, counts, displacements)
            }
        }
        guard rc == 0 else { throw Self.failure("MPI_Allgatherv", rc) }
        return (0 ..< size).map { r in Array(out[Int(displacements[r]) ..< Int(displacements[r]) + Int(counts[r])]) }
    }

    public func allToAll(_ parts: [[UInt8]]) throws -> [[UInt8]] {
        precondition(parts.count == size, "allToAll: one part per rank")
        var sendCounts = [Int32](repeating: 0, count: size), sendDisplacements = sendCounts
        var total = 0
        for (r, p) in parts.enumerated() {
            guard p.count <= Int(Int32.max) - total else {
                throw ScoreSDEError.invalidArgument("rank \(rank) would send \(parts.reduce(0) { $0 + $1.count }) bytes in one collective (at most \(Int32.max)); use more ranks or a smaller model")
            }
            sendDisplacements[r] = Int32(total); sendCounts[r] = Int32(p.count); total += p.count
        }
        var receiveCounts = [Int32](repeating: 0, count: size)
        var rc = cmpi_alltoall_int(sendCounts, &receiveCounts)
        guard rc == 0 else { throw Self.failure("MPI_Alltoall", rc) }
        var receiveDisplacements = [Int32](repeating: 0, count: size), received = 0
        for r in 0 ..< size {
            guard Int(receiveCounts[r]) <= Int(Int32.max) - received else {
                throw ScoreSDEError.invalidArgument("rank \(rank) would receive more than \(Int32.max) bytes in one collective; use more ranks or a smaller model")
            }
            receiveDisplacements[r] = Int32(received); received += Int(receiveCounts[r])
        }
        let send = parts.flatMap { $0 }
        var out = [UInt8](repeating: 0, count: max(received, 1))
        rc = send.withUnsafeBytes { s in
            out.withUnsafeMutableBytes { o in
                cmpi_alltoallv_bytes(s.baseAddress, sendCounts, sendDisplacements, o.baseAddress, receiveCounts, receiveDisplacements)
            }
        }
        guard rc == 0 else { throw Self.failure("MPI_Alltoallv", rc) }
        return (0 ..< size).map { r in Array(out[Int(receiveDisplacements[r]) ..< Int(receiveDisplacements[r]) + Int(receiveCounts[r])]) }
    }

    /// Throws on every rank, naming the first rank whose `arguments` differ from rank 0's, when
    /// the ranks were started with different settings (compared by a 64-bit FNV-1a hash).
    public func checkSameArguments(_ arguments: [String]) throws {
        let hash = Self.fnv1a(arguments.joined(separator: "\u{0}"))
        let hashes = try allGather(withUnsafeBytes(of: hash.littleEndian) { Array($0) })
        for (r, h) in hashes.enumerated() where h != hashes[0] {
            throw ScoreSDEError.population(PopulationFailure(rank: r, size: size, collective: true,
                                  message: "started with arguments different from rank 0's (settings hash \(Self.hex(h)) vs \(Self.hex(hashes[0]))); start every rank with the same command line"))
        }
    }

    /// Blocks until every rank arrives.
    public func barrier() { _ = cmpi_barrier() }

    /// Ends MPI for this process (after the last collective).
    public func finalize() { _ = cmpi_finalize() }

    /// Ends the whole job: every rank is killed and the launcher exits with an error.
    public func abort(code: Int32) -> Never {
        cmpi_abort(code)
        exit(code)   // only reached if MPI_Abort returned
    }

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    private static func hex(_ bytes: [UInt8]) -> String { bytes.reversed().map { String(format: "%02x", $0) }.joined() }

    private static func failure(_ call: String, _ code: Int32) -> ScoreSDEError {
        var buffer = [CChar](repeating: 0, count: 512)
        cmpi_error_string(code, &buffer, Int32(buffer.count))
        return .invalidArgument("\(call) failed: \(String(cString: buffer)) (code \(code))")
    }
}

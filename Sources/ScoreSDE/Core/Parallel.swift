import CKernels
import Foundation

/// Batch-parallel loops over rows, on all cores by default.
///
/// The thread count is a task-local limit, so a caller (or a test) can pin it without global state:
///
///     Parallel.$threadLimit.withValue(1) { try sampler.sample(...) }
///
/// Work is split into contiguous chunks of rows; every row is processed by exactly one thread, and
/// no result depends on the split, so outputs are identical whatever the thread count.
public enum Parallel {
    /// Upper bound on threads for loops started in this task (nil: all active processors).
    @TaskLocal public static var threadLimit: Int?

    /// Tests only: split every loop into exactly this many chunks (at most one per item), run
    /// concurrently, whatever the processor count and grain, so that a test can check on any
    /// machine (one CPU included) that results do not depend on the split.
    @TaskLocal static var chunksForTesting: Int?

    /// Active processors, read once: `activeProcessorCount` re-reads cgroup files on every call on Linux.
    static let processorCount = ProcessInfo.processInfo.activeProcessorCount

    /// Threads a loop started now would use.
    public static var threadCount: Int {
        let n = processorCount
        return max(1, min(threadLimit ?? n, n))
    }

    /// Runs `body` over disjoint contiguous chunks covering `0..<count`, in parallel.
    ///
    /// One fork-join on the library's own pool (`sde_parallel`: persistent workers that spin, then
    /// sleep; the caller takes chunks too), about a microsecond, so per-step loops over small batches
    /// still scale. Chunk boundaries depend only on `count`, `grain` and the thread count.
    ///
    /// - Parameters:
    ///   - count: the number of items.
    ///   - grain: the least number of items worth a chunk (small loops run inline).
    ///   - body: called once per chunk with its range of items.
    public static func forEachChunk(_ count: Int, grain: Int = 256, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = chunksForTesting.map { min($0, count) } ?? min(threadCount, max(1, count / max(grain, 1)))
        if threads <= 1 { body(0 ..< count); return }
        run(count, threads: threads, body)
    }

    /// `body` over `pieces(count, threads)` chunks, one fork-join on the pool. Chunks are claimed
    /// dynamically (four per thread), so a thread the OS delays just takes fewer of them.
    private static func run(_ count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
        let (n, chunk) = pieces(count, threads: threads)
        withoutActuallyEscaping(body) { body in
            var job = ChunkJob(body: body, count: count, chunk: chunk)
            withUnsafeMutablePointer(to: &job) { p in
                sde_parallel(n, Int32(threads), { ctx, c in
                    let job = ctx!.assumingMemoryBound(to: ChunkJob.self)
                    let lo = c * job.pointee.chunk, hi = min(job.pointee.count, lo + job.pointee.chunk)
                    if lo < hi { job.pointee.body(lo ..< hi) }
                }, p)
            }
        }
    }

    /// Number of chunks and items per chunk for `count` items on `threads` threads.
    private static func pieces(_ count: Int, threads: Int) -> (count: Int, chunk: Int) {
        let chunk = max(1, (count + 4 * threads - 1) / (4 * threads))
        return ((count + chunk - 1) / chunk, chunk)
    }

    /// Like `forEachChunk`, but `body` may throw; the first error (in chunk order) is rethrown.
    public static func forEachChunkThrowing(_ count: Int, grain: Int = 256, _ body: (Range<Int>) throws -> Void) throws {
        guard count > 0 else { return }
        let threads = chunksForTesting.map { min($0, count) } ?? min(threadCount, max(1, count / max(grain, 1)))
        if threads <= 1 { try body(0 ..< count); return }
        let (n, chunk) = pieces(count, threads: threads)
        let errors = ErrorSlots(n)
        run(count, threads: threads) { r in
            do { try body(r) } catch { errors.set(r.lowerBound / chunk, error) }
        }
        if let e = errors.first { throw e }
    }

    /// Runs `body` over chunks like `forEachChunk` and returns whether it returned `true` for all.
    public static func allChunks(_ count: Int, grain: Int = 256, _ body: (Range<Int>) -> Bool) -> Bool {
        guard count > 0 else { return true }
        let threads = min(threadCount, max(1, count / max(grain, 1)))
        if threads <= 1 { return body(0 ..< count) }
        let (n, chunk) = pieces(count, threads: threads)
        return withUnsafeTemporaryAllocation(of: Bool.self, capacity: n) { ok in
            ok.initialize(repeating: true)
            run(count, threads: threads) { r in ok[r.lowerBound / chunk] = body(r) }
            return ok.allSatisfy { $0 }
        }
    }
}

/// The closure and split of one `forEachChunk`, passed to the C pool by pointer.
private struct ChunkJob {
    let body: (Range<Int>) -> Void
    let count: Int
    let chunk: Int
}

/// One error slot per chunk, written by distinct threads.
private final class ErrorSlots: @unchecked Sendable {
    private var slots: [Error?]
    private let lock = NSLock()
    init(_ n: Int) { slots = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ e: Error) { lock.lock(); slots[i] = e; lock.unlock() }
    var first: Error? { slots.compactMap { $0 }.first }
}

extension Parallel {
    /// The vector instruction set the C kernels use on this CPU: "avx512", "avx2" or "generic"
    /// (the environment variable `SCORESDE_SIMD=avx2|generic` lowers it; every level gives the same bits).
    public static var simdLevelName: String {
        switch sde_cpu_level() {
        case 2: return "avx512"
        case 1: return "avx2"
        default: return "generic"
        }
    }
}

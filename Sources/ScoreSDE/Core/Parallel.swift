import Dispatch
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
    /// - Parameter grain: the least number of items worth a chunk (small loops run inline).
    public static func forEachChunk(_ count: Int, grain: Int = 256, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = chunksForTesting.map { min($0, count) } ?? min(threadCount, max(1, count / max(grain, 1)))
        if threads <= 1 { body(0 ..< count); return }
        let chunk = (count + threads - 1) / threads
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: threads) { c in
                let lo = c * chunk, hi = min(count, lo + chunk)
                if lo < hi { body(lo ..< hi) }
            }
        }
    }

    /// Like `forEachChunk`, but `body` may throw; the first error (in chunk order) is rethrown.
    public static func forEachChunkThrowing(_ count: Int, grain: Int = 256, _ body: (Range<Int>) throws -> Void) throws {
        guard count > 0 else { return }
        let threads = chunksForTesting.map { min($0, count) } ?? min(threadCount, max(1, count / max(grain, 1)))
        if threads <= 1 { try body(0 ..< count); return }
        let chunk = (count + threads - 1) / threads
        let errors = ErrorSlots(threads)
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: threads) { c in
                let lo = c * chunk, hi = min(count, lo + chunk)
                guard lo < hi else { return }
                do { try body(lo ..< hi) } catch { errors.set(c, error) }
            }
        }
        if let e = errors.first { throw e }
    }
}

/// One error slot per chunk, written by distinct threads.
private final class ErrorSlots: @unchecked Sendable {
    private var slots: [Error?]
    private let lock = NSLock()
    init(_ n: Int) { slots = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ e: Error) { lock.lock(); slots[i] = e; lock.unlock() }
    var first: Error? { slots.compactMap { $0 }.first }
}

/// The times a sampler steps through, from `T` down towards 0: `times[0] > times[1] > … > times[N]`.
/// Step `i` goes from `times[i]` to `times[i + 1]`.
///
///     TimeGrid.uniform(steps: 1000, from: 1, to: 1e-3)   // starts at linspace(1, 1e-3, 1000), then 0
public struct TimeGrid: Sendable, Equatable {
    public let times: [Double]

    /// A user grid: strictly decreasing, finite, non-negative, at least two points.
    public init(_ times: [Double]) throws {
        guard times.count >= 2 else { throw ScoreSDEError.invalidArgument("a time grid needs at least 2 points (got \(times.count))") }
        guard times.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw ScoreSDEError.invalidArgument("grid times must be finite and >= 0") }
        for i in 1 ..< times.count where !(times[i] < times[i - 1]) {
            throw ScoreSDEError.invalidArgument("grid times must strictly decrease (times[\(i - 1)] = \(times[i - 1]), times[\(i)] = \(times[i]))")
        }
        self.times = times
    }

    /// The reference's grid: step `i` starts at `linspace(start, end, steps)[i]` — so discrete
    /// schedules (reverse diffusion, ancestral sampling, Langevin's α) read exactly the reference's
    /// indices N−1, …, 0 — and the last step runs from `end` (the sampler's `eps`) to 0.
    public static func uniform(steps: Int, from start: Double, to end: Double) throws -> TimeGrid {
        guard steps >= 1 else { throw ScoreSDEError.invalidArgument("steps must be >= 1 (got \(steps))") }
        guard end.isFinite, start.isFinite, end > 0, end < start else {
            throw ScoreSDEError.invalidArgument("eps must be in (0, \(start)) (got \(end)); the reference uses 1e-3 for VP/sub-VP and 1e-5 for VE")
        }
        guard steps > 1 else { return try TimeGrid([start, 0]) }
        let h = (start - end) / Double(steps - 1)
        var times = (0 ..< steps).map { i in i == steps - 1 ? end : start - Double(i) * h }
        times.append(0)
        return try TimeGrid(times)
    }

    /// Number of steps (intervals).
    public var steps: Int { times.count - 1 }

    /// The intervals `(t, next)`.
    public var intervals: [(t: Double, next: Double)] { (0 ..< steps).map { (times[$0], times[$0 + 1]) } }
}

import Foundation

/// Which rows of the whole batch a score call covers, when a sampler or the probability flow
/// splits the batch into calls of at most `batchSize` rows. A score with per-row settings — class
/// labels, one per sample (``UNetConditionedScore``, ``ClassConditionedScore``, classifier
/// guidance) — reads it to take its own rows' slice, so per-row labels work with any batch size.
///
///     // inside a score model with one label per row of the whole batch:
///     let mine = try ScoreBatch.slice(labels, rows: x.rows)   // labels of the rows being scored
///
/// Samplers set it with `ScoreBatch.$rows.withValue(lo ..< hi) { … }`; outside a split call it is
/// `nil` and a score sees the whole batch. A call on rows gathered from anywhere in the batch (the
/// active rows of a per-sample adaptive solver, one time group of a per-row-time call) sets
/// ``gathered`` instead, through ``withRows(_:_:)``.
public enum ScoreBatch {
    /// The rows `lo ..< hi` of the whole batch that the current call scores, or `nil` (all of them).
    @TaskLocal public static var rows: Range<Int>?
    /// The rows of the whole batch, in order, that the current call scores when they are not one
    /// range (row `i` of the call is row `gathered[i]` of the batch), or `nil`. Takes precedence
    /// over ``rows``.
    @TaskLocal public static var gathered: [Int]?

    /// Where row `i` of the current call sits in the whole batch.
    static func batchRow(_ i: Int) -> Int {
        if let g = gathered { return g[i] }
        return (rows?.lowerBound ?? 0) + i
    }

    /// Runs `body` as a call on rows `local` of the current call (indices into it): per-row tables
    /// (labels, observations) then follow those rows, whatever part of the batch the current call covers.
    public static func withRows<R>(_ local: [Int], _ body: () throws -> R) rethrows -> R {
        let global = local.map(batchRow)
        return try $gathered.withValue(global) { try $rows.withValue(nil) { try body() } }
    }

    /// Calls `body(rows, t)` once per distinct time of `times` (in order of first appearance), with
    /// the rows (indices into `times`) at that time, inside ``withRows(_:_:)`` for those rows unless
    /// they are all of them. How a one-time model answers a per-row-time call.
    public static func forEachTimeGroup(_ times: [Double], _ body: ([Int], Double) throws -> Void) throws {
        var order: [Double] = [], groups: [Double: [Int]] = [:]
        for (i, t) in times.enumerated() {
            guard t == t else { throw ScoreSDEError.nonFinite("the time of row \(i) is NaN") }
            if groups[t] == nil { order.append(t); groups[t] = [i] } else { groups[t]!.append(i) }
        }
        for t in order {
            let rows = groups[t]!
            if rows.count == times.count { try body(rows, t) } else { try withRows(rows) { try body(rows, t) } }
        }
    }

    /// `values` for a call on `n` rows: all of them when there is one value (shared) or `n`; the
    /// slice ``rows`` when the call covers part of a batch that `values` describes row by row.
    ///
    /// - Throws: `shapeMismatch` when neither applies.
    public static func slice<T>(_ values: [T], rows n: Int, what: String = "class labels") throws -> [T] {
        if values.count == 1 { return values }
        guard let rows = tableRows(of: values.count, rows: n) else {
            throw ScoreSDEError.shapeMismatch("\(values.count) \(what) for \(n) rows: give one for all rows, or one per row of the batch")
        }
        return rows.map { values[$0] }
    }

    /// Where a call on `n` rows starts in a table of `count` per-row entries (labels, observations):
    /// 0 when the table is shared (`count == 1`, every row reads entry 0) or covers exactly this call
    /// (`count == n`); the split's lower bound when the call covers ``rows`` of a table that describes
    /// the whole batch; `nil` when neither applies.
    public static func firstRow(of count: Int, rows n: Int) -> Int? {
        if count == 1 || count == n { return 0 }
        if let g = gathered {   // a gathered call is a range only when its rows are consecutive
            guard g.count == n, let f = g.first, g.last! < count, g.last! - f == n - 1 else { return nil }
            return f
        }
        if let r = rows, r.count == n, r.upperBound <= count { return r.lowerBound }
        return nil
    }

    /// The rows of a table of `count` per-row entries that a call on `n` rows reads, in order: all
    /// zeros for a shared table (`count == 1`), `0 ..< n` for a table of this call's rows, the
    /// ``gathered`` rows or the ``rows`` range of a table of the whole batch; `nil` when none applies.
    public static func tableRows(of count: Int, rows n: Int) -> [Int]? {
        if count == 1 { return [Int](repeating: 0, count: n) }
        if count == n { return Array(0 ..< n) }
        if let g = gathered { return g.count == n && g.allSatisfy({ $0 < count }) ? g : nil }
        if let r = rows, r.count == n, r.upperBound <= count { return Array(r) }
        return nil
    }
}

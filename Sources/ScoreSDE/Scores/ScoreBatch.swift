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
/// `nil` and a score sees the whole batch.
public enum ScoreBatch {
    /// The rows `lo ..< hi` of the whole batch that the current call scores, or `nil` (all of them).
    @TaskLocal public static var rows: Range<Int>?

    /// `values` for a call on `n` rows: all of them when there is one value (shared) or `n`; the
    /// slice ``rows`` when the call covers part of a batch that `values` describes row by row.
    ///
    /// - Throws: `shapeMismatch` when neither applies.
    public static func slice<T>(_ values: [T], rows n: Int, what: String = "class labels") throws -> [T] {
        guard let first = firstRow(of: values.count, rows: n) else {
            throw ScoreSDEError.shapeMismatch("\(values.count) \(what) for \(n) rows: give one for all rows, or one per row of the batch")
        }
        return values.count == 1 ? values : Array(values[first ..< first + n])
    }

    /// Where a call on `n` rows starts in a table of `count` per-row entries (labels, observations):
    /// 0 when the table is shared (`count == 1`, every row reads entry 0) or covers exactly this call
    /// (`count == n`); the split's lower bound when the call covers ``rows`` of a table that describes
    /// the whole batch; `nil` when neither applies.
    public static func firstRow(of count: Int, rows n: Int) -> Int? {
        if count == 1 || count == n { return 0 }
        if let r = rows, r.count == n, r.upperBound <= count { return r.lowerBound }
        return nil
    }
}

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
        if values.count == 1 || values.count == n { return values }
        if let r = rows, r.count == n, r.upperBound <= values.count { return Array(values[r]) }
        throw ScoreSDEError.shapeMismatch("\(values.count) \(what) for \(n) rows: give one for all rows, or one per row of the batch")
    }
}

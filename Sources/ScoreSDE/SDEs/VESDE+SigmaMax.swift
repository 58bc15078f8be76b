extension VESDE {
    /// The largest Euclidean distance between two training points: Song & Ermon (2020),
    /// "Improved techniques for training score-based generative models", Technique 1, choose
    /// σ_max as large as the maximum pairwise distance so that the prior N(0, σ_max² I) covers
    /// the data. At most `maxRows` evenly spaced rows are compared (`O(maxRows² · D)` work).
    ///
    ///     let sde = try VESDE(sigmaMin: 0.01, sigmaMax: try VESDE.suggestedSigmaMax(for: data))
    ///
    /// - Throws: ``ScoreSDEError/invalidArgument(_:)`` when all compared points are equal (there
    ///   is no scale); ``ScoreSDEError/invalidParameter(_:)`` for `maxRows < 2`.
    public static func suggestedSigmaMax(for data: Tensor, maxRows: Int = 2000) throws -> Double {
        guard maxRows >= 2 else { throw ScoreSDEError.invalid("maxRows", maxRows, must: ">= 2 (suggestedSigmaMax compares pairs of rows)") }
        let n = data.rows, d = data.rowSize
        let step = max(1, (n + maxRows - 1) / maxRows)
        let rows = stride(from: 0, to: n, by: step).map { Array(data.storage[$0 * d ..< ($0 + 1) * d]) }
        var best = 0.0
        for i in rows.indices {
            for j in (i + 1) ..< rows.count {
                var s = 0.0
                for k in 0 ..< d { let e = rows[i][k] - rows[j][k]; s += e * e }
                best = max(best, s)
            }
        }
        let value = best.squareRoot()
        guard value > 0, value.isFinite else {
            throw ScoreSDEError.invalidArgument("the training points are all equal (or not finite), so there is no data scale for sigma_max; give it explicitly")
        }
        return value
    }
}

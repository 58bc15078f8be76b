import Foundation

/// Dynamic thresholding of data predictions (Saharia et al. 2022, "Imagen", §2.3): per sample,
/// `s = max(1, q_p(|x0|))` with `q_p` the `p`-quantile of the row's absolute values (linear
/// interpolation, as `numpy.quantile`), then `x0 ← clip(x0, −s, s) / s` — every prediction ends in
/// `[−1, 1]`. For data scaled to `[−1, 1]`; used by the data-prediction samplers
/// (``DPMSolverPlusPlus``, ``UniPC``) when given.
public struct DynamicThresholding: Sendable, Equatable {
    /// The quantile `p ∈ (0, 1]` (Imagen: 0.995).
    public let percentile: Double

    /// - Throws: `invalidParameter` unless `0 < percentile <= 1`.
    public init(percentile: Double = 0.995) throws {
        try requireParameter(percentile.isFinite && percentile > 0 && percentile <= 1, name: "percentile", value: percentile,
                             requirement: "in (0, 1] (the thresholding percentile)", advice: "Imagen uses 0.995")
        self.percentile = percentile
    }

    /// Thresholds every row of `x0` in place.
    public func apply(_ x0: inout Tensor) {
        let d = x0.rowSize, n = x0.rows, p = percentile
        guard d > 0 else { return }
        x0.values.withUnsafeMutableBufferPointer { xp in
            guard let xb = xp.baseAddress else { return }
            Parallel.forEachChunk(n, grain: max(1, (1 << 14) / d)) { rows in
                var a = [Double](repeating: 0, count: d)
                for r in rows {
                    let row = xb + r * d
                    for j in 0 ..< d { a[j] = abs(row[j]) }
                    a.sort()
                    let pos = p * Double(d - 1), lo = Int(pos.rounded(.down)), hi = min(d - 1, lo + 1)
                    let q = a[lo] + (pos - Double(lo)) * (a[hi] - a[lo])
                    let s = max(1, q)
                    for j in 0 ..< d { row[j] = min(s, max(-s, row[j])) / s }
                }
            }
        }
    }
}

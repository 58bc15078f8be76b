import Foundation

/// The logit transform of dequantized pixels, the data space of density baselines and flows
/// (RealNVP, Dinh et al. 2017, §4.1; MAF, Papamakarios et al. 2017, appendix): a dequantized value
/// `v = k + u ∈ [0, L)` (levels `k = 0 ... L−1`, `u ~ U[0, 1)`) maps to
///
///     y = λ + (1 − 2λ) v / L,    z = logit(y) = log y − log(1 − y),
///
/// so `λ` keeps `z` finite at the ends of the range (MAF uses `λ = 1e-6` for MNIST). Densities
/// change by the log-Jacobian, per value
///
///     log |dz/dv| = log(1 − 2λ) − log L − log y − log(1 − y),
///
/// so a density `q(z)` in logit space is the density `q(z) Π |dz/dv|` of `v` in pixel-level units,
/// whose bits per value (`−log₂ p(v) / D`) bound those of the discrete pixels from above (uniform:
/// `log₂ L`, 8 bits for 8-bit images).
///
///     let t = try LogitPixelTransform()                     // λ = 1e-6, 256 levels
///     let (z, logJacobian) = try t.logits(ofDequantized: v)  // v = k + u
///     let back = t.dequantizedValues(fromLogits: z)          // v again, up to rounding
public struct LogitPixelTransform: Sendable, Equatable {
    /// `λ`, in `(0, 1/2)`.
    public let lambda: Double
    /// Number `L` of pixel levels (`0 ... L−1`; 256 for 8-bit images).
    public let levels: Int

    /// - Throws: `invalidParameter` unless `0 < lambda < 0.5` and `levels >= 2`.
    public init(lambda: Double = 1e-6, levels: Int = 256) throws {
        guard lambda > 0, lambda < 0.5 else {
            throw ScoreSDEError.invalid("lambda", lambda, must: "in (0, 0.5) (the logit transform's lambda)", advice: "MAF and RealNVP use 1e-6 and 0.05")
        }
        guard levels >= 2 else {
            throw ScoreSDEError.invalid("levels", levels, must: ">= 2 pixel levels", advice: "8-bit images have 256")
        }
        self.lambda = lambda; self.levels = levels
    }

    /// The logits `z` of dequantized values `v ∈ [0, L)` (any shape) and, per row, `Σ log |dz/dv|`.
    ///
    /// - Throws: `invalidArgument` naming the first value outside `[0, L)` (NaN included).
    public func logits(ofDequantized v: Tensor) throws -> (z: Tensor, logJacobian: [Double]) {
        let top = Double(levels)
        if let bad = v.storage.firstIndex(where: { !($0 >= 0 && $0 < top) }) {
            throw ScoreSDEError.invalidArgument("the logit transform takes dequantized values in [0, \(levels)), but row \(bad / max(v.rowSize, 1)) has \(v.storage[bad])")
        }
        let d = v.rowSize, n = v.rows
        var z = v
        var logJacobian = [Double](repeating: 0, count: n)
        let scale = (1 - 2 * lambda) / top, constant = Foundation.log1p(-2 * lambda) - Foundation.log(top)
        let lambda = self.lambda
        z.storage.withUnsafeMutableBufferPointer { zp in
            logJacobian.withUnsafeMutableBufferPointer { jp in
                let (zp, jp) = (zp, jp)
                Parallel.forEachChunk(n, grain: 64) { rows in
                    for r in rows {
                        var sum = 0.0
                        for j in r * d ..< (r + 1) * d {
                            let y = lambda + scale * zp[j]
                            let logY = Foundation.log(y), log1mY = Foundation.log1p(-y)
                            zp[j] = logY - log1mY
                            sum += constant - logY - log1mY
                        }
                        jp[r] = sum
                    }
                }
            }
        }
        return (z, logJacobian)
    }

    /// The dequantized values `v = L (σ(z) − λ) / (1 − 2λ)` of logits `z` (any shape), the inverse
    /// of ``logits(ofDequantized:)``. Logits outside the transform's range (below `logit(λ)` or above
    /// `logit(1 − λ)`, as a Gaussian's tails can be) map slightly outside `[0, L)`.
    public func dequantizedValues(fromLogits z: Tensor) -> Tensor {
        var v = z
        let scale = Double(levels) / (1 - 2 * lambda), lambda = self.lambda
        for i in v.storage.indices {
            let s = 1 / (1 + Foundation.exp(-v.storage[i]))
            v.storage[i] = (s - lambda) * scale
        }
        return v
    }

    /// The pixel levels `⌊v⌋`, clamped to `0 ... L−1`, of logits `z`: a draw of the discrete pixels
    /// when `z` is a draw of a density in logit space (the inverse of uniform dequantization,
    /// `P(k) = ∫ p(k + u) du`; the clamp only moves the rare values that fall outside the range).
    public func levels(fromLogits z: Tensor) -> Tensor {
        var v = dequantizedValues(fromLogits: z)
        let top = Double(levels - 1)
        for i in v.storage.indices { v.storage[i] = Swift.min(Swift.max(v.storage[i].rounded(.down), 0), top) }
        return v
    }
}

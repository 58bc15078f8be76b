import Foundation

/// Super-resolution as a linear inverse problem: the observation is the image averaged over
/// `factor × factor` blocks, `y = A x` with `A` the block-averaging matrix (each row averages one
/// block of one channel; `A Aᵀ = I / factor²`). Any method that takes a ``LinearMeasurement``
/// solves it: projection (``LinearMeasurementConstraint``), DPS and ΠGDM
/// (``MeasurementGuidedScore``; Chung et al. 2023, Song et al. 2023) — the "SR ×2 with average
/// pooling" task of those papers.
///
///     let y = try SuperResolution.blockAverage(images, factor: 2)              // [n, C, H/2, W/2]
///     let a = try SuperResolution.measurement(imageShape: [1, 28, 28], factor: 2, observation: y)
///     let baseline = try SuperResolution.bicubicUpsample(y, factor: 2)         // [n, C, H, W]
///
/// Rows are `[C, H, W]` images in row-major order, `H` and `W` multiples of `factor`.
public enum SuperResolution {
    static func checkShape(_ shape: [Int], factor: Int) throws -> (c: Int, h: Int, w: Int) {
        guard shape.count == 3, shape.allSatisfy({ $0 >= 1 }) else {
            throw ScoreSDEError.shapeMismatch("super-resolution takes [C, H, W] images (got a row shape \(shape))")
        }
        try requireParameter(factor >= 1, name: "factor", value: factor, requirement: ">= 1 (the super-resolution factor)")
        guard shape[1] % factor == 0, shape[2] % factor == 0 else {
            throw ScoreSDEError.shapeMismatch("the image size \(shape[1])x\(shape[2]) is not a multiple of the factor \(factor)")
        }
        return (shape[0], shape[1], shape[2])
    }

    /// The block-averaging matrix `A` (`C·(H/f)·(W/f)` rows of `C·H·W` values) of `[C, H, W]` images.
    public static func averagingMatrix(imageShape: [Int], factor f: Int) throws -> [[Double]] {
        let (c, h, w) = try checkShape(imageShape, factor: f)
        let (lh, lw) = (h / f, w / f), weight = 1 / Double(f * f)
        var rows = [[Double]]()
        rows.reserveCapacity(c * lh * lw)
        for ch in 0 ..< c {
            for i in 0 ..< lh {
                for j in 0 ..< lw {
                    var row = [Double](repeating: 0, count: c * h * w)
                    for di in 0 ..< f { for dj in 0 ..< f { row[(ch * h + i * f + di) * w + j * f + dj] = weight } }
                    rows.append(row)
                }
            }
        }
        return rows
    }

    /// The measurement `y = A x (+ noise)` of `[C, H, W]` images averaged over `factor × factor`
    /// blocks; `observation` holds `[n, C, H/f, W/f]` (or flat rows of that size).
    public static func measurement(imageShape: [Int], factor: Int, observation: Tensor, noiseStd: Double = 0) throws -> LinearMeasurement {
        try LinearMeasurement(matrix: averagingMatrix(imageShape: imageShape, factor: factor),
                              observation: observation.reshaped([observation.rows, observation.rowSize]), noiseStd: noiseStd)
    }

    /// The block averages of images `[n, C, H, W]`: `[n, C, H/f, W/f]` (what ``measurement(imageShape:factor:observation:noiseStd:)`` observes).
    public static func blockAverage(_ x: Tensor, factor f: Int) throws -> Tensor {
        let (c, h, w) = try checkShape(x.rowShape, factor: f)
        let (lh, lw) = (h / f, w / f)
        var out = Tensor(zeros: [x.rows, c, lh, lw])
        for r in 0 ..< x.rows {
            for ch in 0 ..< c {
                for i in 0 ..< lh {
                    for j in 0 ..< lw {
                        var s = 0.0
                        for di in 0 ..< f { for dj in 0 ..< f { s += x.storage[((r * c + ch) * h + i * f + di) * w + j * f + dj] } }
                        out.storage[((r * c + ch) * lh + i) * lw + j] = s / Double(f * f)
                    }
                }
            }
        }
        return out
    }

    /// Bicubic up-sampling of `[n, C, h, w]` images by `factor` (Keys 1981 cubic convolution,
    /// `a = −0.5`; pixel centres aligned as `align_corners = False`; edge pixels replicated): the
    /// classical baseline of super-resolution.
    public static func bicubicUpsample(_ y: Tensor, factor f: Int) throws -> Tensor {
        let s = y.rowShape
        guard s.count == 3, s.allSatisfy({ $0 >= 1 }) else {
            throw ScoreSDEError.shapeMismatch("bicubic up-sampling takes [C, h, w] images (got a row shape \(s))")
        }
        try requireParameter(f >= 1, name: "factor", value: f, requirement: ">= 1 (the up-sampling factor)")
        let (c, h, w) = (s[0], s[1], s[2])
        let (bh, bw) = (h * f, w * f)
        func kernel(_ t: Double) -> Double {
            let a = -0.5, x = abs(t)
            if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
            return 0
        }
        // Source taps and weights along one axis.
        func taps(_ n: Int, _ size: Int) -> [(index: [Int], weight: [Double])] {
            (0 ..< n).map { o in
                let src = (Double(o) + 0.5) / Double(f) - 0.5
                let base = Int(src.rounded(.down))
                let idx = (-1 ... 2).map { Swift.min(Swift.max(base + $0, 0), size - 1) }
                let wts = (-1 ... 2).map { kernel(src - Double(base + $0)) }
                return (idx, wts)
            }
        }
        let rowsT = taps(bh, h), colsT = taps(bw, w)
        var out = Tensor(zeros: [y.rows, c, bh, bw])
        for r in 0 ..< y.rows {
            for ch in 0 ..< c {
                let plane = (r * c + ch) * h * w
                for i in 0 ..< bh {
                    let (ri, rw) = rowsT[i]
                    for j in 0 ..< bw {
                        let (ci, cw) = colsT[j]
                        var v = 0.0
                        for p in 0 ..< 4 { for q in 0 ..< 4 { v += rw[p] * cw[q] * y.storage[plane + ri[p] * w + ci[q]] } }
                        out.storage[((r * c + ch) * bh + i) * bw + j] = v
                    }
                }
            }
        }
        return out
    }
}

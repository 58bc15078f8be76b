import Foundation

/// The nearest row of a reference set (training images) to each query row (samples, test images)
/// in Euclidean distance over scaled values (pixels `0 ... 255` scaled by `1/255` to `[0, 1]`):
/// the memorisation check of generative models — a model that copies its training images puts
/// samples much closer to them than held-out images are (see ``MemorisationCheck``).
///
///     let nn = try NearestNeighbours(of: samples, in: train.images)   // pixels / 255
///     nn.distances[0], nn.indices[0]                                  // distance and training row
///
/// Computed in blocks with matrix products, `‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b` (BLAS `dgemm`,
/// 10 000 × 60 000 rows of 784 pixels in about 20 s on 2 cores); the distance to the winner is
/// then recomputed directly, so the reported distances are exact to rounding. (Two reference rows
/// whose squared distances differ by less than the expansion's rounding, ~1e-12 here, may be
/// swapped: the distance reported is that of the row chosen.) Ties go to the lowest index.
public struct NearestNeighbours: Sendable, Equatable {
    /// For each query row, the index of its nearest reference row.
    public let indices: [Int]
    /// For each query row, the Euclidean distance (over scaled values) to that row.
    public let distances: [Double]

    /// - Parameters:
    ///   - queries: rows to look up, any row shape.
    ///   - reference: rows to search, with the queries' row size.
    ///   - scale: values are multiplied by it before distances are taken (`1/255`: pixels to `[0, 1]`).
    /// - Throws: `shapeMismatch` for different row sizes or an empty reference; `nonFinite` for
    ///   non-finite values; `invalidParameter` for a scale that is not finite and positive.
    public init(of queries: Tensor, in reference: Tensor, scale: Double = 1.0 / 255) throws {
        let d = queries.rowSize
        guard reference.rowSize == d else {
            throw ScoreSDEError.shapeMismatch("nearest neighbours need rows of one size: queries have \(d) values, the reference \(reference.rowSize)")
        }
        guard reference.rows >= 1 else { throw ScoreSDEError.shapeMismatch("the reference set is empty") }
        guard scale.isFinite, scale > 0 else {
            throw ScoreSDEError.invalid("scale", scale, must: "finite and > 0 (the scale of the nearest-neighbour distance)")
        }
        try queries.checkFinite("the nearest-neighbour queries")
        try reference.checkFinite("the nearest-neighbour reference set")
        let q = queries.storage.map { $0 * scale }, r = reference.storage.map { $0 * scale }
        (indices, distances) = Self.search(q, queries.rows, r, reference.rows, d)
    }

    /// Rows of query and reference blocks per matrix product.
    static let queryBlock = 1024, referenceBlock = 2048

    private static func search(_ q: [Double], _ n: Int, _ r: [Double], _ m: Int, _ d: Int) -> ([Int], [Double]) {
        func norms(_ x: [Double], _ rows: Int) -> [Double] {
            (0 ..< rows).map { i in var s = 0.0; for j in 0 ..< d { s += x[i * d + j] * x[i * d + j] }; return s }
        }
        let rNorm = norms(r, m)
        var best = [Int](repeating: 0, count: n)
        var bestValue = [Double](repeating: .infinity, count: n)   // ‖b‖² − 2 a·b: ‖a − b‖² less ‖a‖²
        var g = [Double](repeating: 0, count: queryBlock * referenceBlock)
        q.withUnsafeBufferPointer { qp in
            r.withUnsafeBufferPointer { rp in
                for q0 in stride(from: 0, to: n, by: queryBlock) {
                    let qn = Swift.min(queryBlock, n - q0)
                    for r0 in stride(from: 0, to: m, by: referenceBlock) {
                        let rn = Swift.min(referenceBlock, m - r0)
                        g.withUnsafeMutableBufferPointer { gp in
                            BLAS.gemm(transB: true, m: qn, n: rn, k: d, a: qp.baseAddress! + q0 * d, lda: d,
                                      b: rp.baseAddress! + r0 * d, ldb: d, c: gp.baseAddress!, ldc: rn)
                        }
                        g.withUnsafeBufferPointer { gp in
                            best.withUnsafeMutableBufferPointer { bi in
                                bestValue.withUnsafeMutableBufferPointer { bv in
                                    let (gp, bi, bv) = (gp, bi, bv)
                                    Parallel.forEachChunk(qn, grain: 64) { rows in
                                        for i in rows {
                                            var v = bv[q0 + i], k = bi[q0 + i]
                                            for j in 0 ..< rn {
                                                let e = rNorm[r0 + j] - 2 * gp[i * rn + j]
                                                if e < v { v = e; k = r0 + j }
                                            }
                                            bv[q0 + i] = v; bi[q0 + i] = k
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let distances = (0 ..< n).map { i -> Double in
            var s = 0.0
            for j in 0 ..< d { let e = q[i * d + j] - r[best[i] * d + j]; s += e * e }
            return s.squareRoot()
        }
        return (best, distances)
    }
}

/// The share of samples closer to their nearest training image than the `p`-th percentile of
/// held-out images' nearest-training distances (issue 22: `p = 1`; 1% for the held-out images
/// themselves by construction): a share well above `p%` means samples sit closer to training
/// images than new images from the data do — memorisation.
///
///     let test = try NearestNeighbours(of: testImages, in: trainImages)
///     let samples = try NearestNeighbours(of: generated, in: trainImages)
///     let check = try MemorisationCheck(sampleDistances: samples.distances, heldOutDistances: test.distances)
///     check.share, check.standardError   // e.g. 0.012 ± 0.0011
///
/// The threshold is the midpoint between the `k`-th and `(k+1)`-th smallest held-out distances,
/// `k = round(p n / 100)` (clamped to `1 ... n−1`), so exactly `k` of the `n` held-out distances
/// lie below it when those two differ. The standard error is the binomial `√(s (1 − s) / m)` of
/// the share `s` of `m` samples.
public struct MemorisationCheck: Sendable, Equatable {
    /// The percentile `p` of the held-out distances used as the threshold (1 in issue 22).
    public let percentile: Double
    /// The distance threshold.
    public let threshold: Double
    /// Number `n` of held-out distances the threshold came from.
    public let heldOutCount: Int
    /// Number of held-out distances below the threshold (`k`).
    public let heldOutBelow: Int
    /// Number `m` of samples.
    public let count: Int
    /// Number of samples whose distance is below the threshold.
    public let below: Int

    /// - Throws: `invalidParameter` for `percentile` outside `(0, 100)`, fewer than 2 held-out
    ///   distances, no samples, or non-finite distances.
    public init(sampleDistances: [Double], heldOutDistances: [Double], percentile: Double = 1) throws {
        let t = try Self.threshold(heldOutDistances, percentile: percentile)
        guard !sampleDistances.isEmpty else { throw ScoreSDEError.invalid("sampleDistances", sampleDistances, must: "non-empty (the memorisation check needs at least one sample distance)") }
        if let bad = sampleDistances.first(where: { !$0.isFinite }) {
            throw ScoreSDEError.nonFinite("a sample's nearest-neighbour distance is \(bad)")
        }
        self.percentile = percentile; threshold = t
        heldOutCount = heldOutDistances.count
        heldOutBelow = heldOutDistances.filter { $0 < t }.count
        count = sampleDistances.count
        below = sampleDistances.filter { $0 < t }.count
    }

    /// Restores a check from its recorded counts (a resumed evaluation).
    init(percentile: Double, threshold: Double, heldOutCount: Int, heldOutBelow: Int, count: Int, below: Int) {
        self.percentile = percentile; self.threshold = threshold; self.heldOutCount = heldOutCount
        self.heldOutBelow = heldOutBelow; self.count = count; self.below = below
    }

    /// The midpoint between the `k`-th and `(k+1)`-th smallest of `distances`, `k = round(p n / 100)`
    /// clamped to `1 ... n−1`.
    public static func threshold(_ distances: [Double], percentile p: Double) throws -> Double {
        guard p > 0, p < 100 else { throw ScoreSDEError.invalid("percentile", p, must: "in (0, 100)") }
        guard distances.count >= 2 else {
            throw ScoreSDEError.invalid("heldOutDistances", "\(distances.count) distances", must: "at least 2 distances (a percentile threshold)")
        }
        if let bad = distances.first(where: { !$0.isFinite }) {
            throw ScoreSDEError.nonFinite("a held-out nearest-neighbour distance is \(bad)")
        }
        let s = distances.sorted(), n = s.count
        let k = Swift.min(Swift.max(Int((p / 100 * Double(n)).rounded()), 1), n - 1)
        return 0.5 * (s[k - 1] + s[k])
    }

    /// The share of samples below the threshold.
    public var share: Double { Double(below) / Double(count) }
    /// Its binomial standard error `√(s (1 − s) / m)`.
    public var standardError: Double { (share * (1 - share) / Double(count)).squareRoot() }
    /// The share of held-out images below the threshold (`k / n`, `p%` up to rounding of `p n`).
    public var heldOutShare: Double { Double(heldOutBelow) / Double(heldOutCount) }
}

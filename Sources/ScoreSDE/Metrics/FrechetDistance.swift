import Foundation

/// The mean and covariance of a sample (one row per point): the moments the Fréchet distance
/// compares.
public struct SampleMoments: Sendable, Equatable {
    /// Dimension `D` (the rows' size).
    public let dimension: Int
    /// Number of rows the moments were estimated from (0 for given moments).
    public let count: Int
    /// The mean, `D` values.
    public let mean: [Double]
    /// The covariance, row-major `D × D` (unbiased: divided by `n − 1` for a sample).
    public let covariance: [Double]

    /// The sample mean and the unbiased sample covariance of the rows of `x`.
    ///
    /// - Throws: `shapeMismatch` with fewer than 2 rows; `nonFinite` for a non-finite value.
    public init(of x: Tensor) throws {
        let n = x.rows, d = x.rowSize
        guard n >= 2, d >= 1 else {
            throw ScoreSDEError.shapeMismatch("sample moments need >= 2 rows of >= 1 value (got \(x.shape))")
        }
        try x.checkFinite("the sample")
        var mean = [Double](repeating: 0, count: d)
        for r in 0 ..< n { for j in 0 ..< d { mean[j] += x.storage[r * d + j] } }
        for j in 0 ..< d { mean[j] /= Double(n) }
        var centred = [Double](repeating: 0, count: n * d)
        for r in 0 ..< n { for j in 0 ..< d { centred[r * d + j] = x.storage[r * d + j] - mean[j] } }
        var cov = [Double](repeating: 0, count: d * d)
        centred.withUnsafeBufferPointer { c in
            cov.withUnsafeMutableBufferPointer { s in
                BLAS.gemm(transA: true, m: d, n: d, k: n, alpha: 1 / Double(n - 1), a: c.baseAddress!, lda: d,
                          b: c.baseAddress!, ldb: d, c: s.baseAddress!, ldc: d)      // Cᵀ C / (n − 1)
            }
        }
        self.dimension = d; self.count = n; self.mean = mean
        covariance = Dense.symmetrized(cov, d)
    }

    /// Given moments: `mean` (`D` values) and a symmetric positive semi-definite `covariance` (`D` rows of `D`).
    ///
    /// - Throws: `shapeMismatch` unless the covariance is `D × D`; `nonFinite` for non-finite
    ///   entries; `invalidArgument` when it is not symmetric.
    public init(mean: [Double], covariance: [[Double]]) throws {
        let (rows, columns, values) = try validatedMatrix(covariance, "the covariance")
        guard rows == columns, rows == mean.count else {
            throw ScoreSDEError.shapeMismatch("the covariance must be \(mean.count) x \(mean.count) for a mean of \(mean.count) values (got \(rows) x \(columns))")
        }
        if let j = mean.firstIndex(where: { !$0.isFinite }) {
            throw ScoreSDEError.nonFinite("the mean contains \(mean[j]) at \(j); all entries must be finite")
        }
        var scale = 0.0
        for v in values { scale = Swift.max(scale, abs(v)) }
        for i in 0 ..< rows { for j in 0 ..< i where abs(values[i * rows + j] - values[j * rows + i]) > 1e-10 * scale {
            throw ScoreSDEError.invalidArgument("the covariance is not symmetric: entries (\(i), \(j)) and (\(j), \(i)) differ")
        } }
        dimension = rows; count = 0; self.mean = mean; self.covariance = Dense.symmetrized(values, rows)
    }
}

/// The Fréchet distance between the Gaussians with the moments of two samples (Dowson & Landau
/// 1982; the squared Wasserstein-2 distance between Gaussians; FID, Heusel et al. 2017, eq. 6,
/// computed here on the raw values rather than on Inception features):
///
///     d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}).
///
/// Both square roots come from symmetric eigendecompositions (LAPACK's divide-and-conquer
/// `dsyevd`, milliseconds for the hundreds of dimensions of classifier features; negative
/// rounding-level eigenvalues are taken as 0), so no non-symmetric matrix square root is needed. The value is
/// the squared distance (as FID reports it), ≥ 0 and 0 for equal moments.
///
/// Estimated from samples of sizes `n₁`, `n₂` it is biased upwards: the mean term alone by
/// `tr Σ₁ / n₁ + tr Σ₂ / n₂` (exactly, for any distribution), so compare sample sets of the same
/// sizes, or against a reference pair of those sizes.
///
///     let fd = try frechetDistance(samples, heldOut)      // rows: points, any row shape
public func frechetDistance(_ a: Tensor, _ b: Tensor) throws -> Double {
    guard a.rowSize == b.rowSize else {
        throw ScoreSDEError.shapeMismatch("the Fréchet distance needs samples of equal dimension (got \(a.rowSize) and \(b.rowSize))")
    }
    return try frechetDistance(moments: SampleMoments(of: a), SampleMoments(of: b))
}

/// The Fréchet distance between the Gaussians `N(a.mean, a.covariance)` and `N(b.mean, b.covariance)`
/// (the same formula as for two samples, on given moments).
///
/// - Throws: `shapeMismatch` for moments of different dimensions.
public func frechetDistance(moments a: SampleMoments, _ b: SampleMoments) throws -> Double {
    let d = a.dimension
    guard b.dimension == d else {
        throw ScoreSDEError.shapeMismatch("the Fréchet distance needs moments of equal dimension (got \(d) and \(b.dimension))")
    }
    var meanTerm = 0.0
    for j in 0 ..< d { let e = a.mean[j] - b.mean[j]; meanTerm += e * e }
    var traces = 0.0
    for i in 0 ..< d { traces += a.covariance[i * d + i] + b.covariance[i * d + i] }
    // Σ₁^{1/2} = V diag(√λ) Vᵀ, then M = Σ₁^{1/2} Σ₂ Σ₁^{1/2} (symmetric PSD) and tr M^{1/2} = Σ √μ_i.
    let root = symmetricSquareRoot(a.covariance, d)
    var m = [Double](repeating: 0, count: d * d)
    root.withUnsafeBufferPointer { r in
        b.covariance.withUnsafeBufferPointer { s in
            var rs = [Double](repeating: 0, count: d * d)
            rs.withUnsafeMutableBufferPointer { p in
                BLAS.gemm(m: d, n: d, k: d, a: r.baseAddress!, lda: d, b: s.baseAddress!, ldb: d, c: p.baseAddress!, ldc: d)
                m.withUnsafeMutableBufferPointer { q in
                    BLAS.gemm(m: d, n: d, k: d, a: p.baseAddress!, lda: d, b: r.baseAddress!, ldb: d, c: q.baseAddress!, ldc: d)
                }
            }
        }
    }
    let (mu, _) = LAPACK.symmetricEigen(Dense.symmetrized(m, d), d)
    var traceRoot = 0.0
    for v in mu where v > 0 { traceRoot += v.squareRoot() }
    return Swift.max(meanTerm + traces - 2 * traceRoot, 0)
}

/// `A^{1/2}` of a symmetric positive semi-definite matrix (row-major `n × n`) by its eigendecomposition
/// (`A = Qᵀ diag(λ) Q`, eigenvectors in the rows of `Q`): `A^{1/2} = Bᵀ B` with `B = diag(λ^{1/4}) Q`;
/// eigenvalues below 0 (rounding) are taken as 0.
func symmetricSquareRoot(_ a: [Double], _ n: Int) -> [Double] {
    var (values, b) = LAPACK.symmetricEigen(a, n)
    for k in 0 ..< n {
        let s = values[k] > 0 ? values[k].squareRoot().squareRoot() : 0
        for i in 0 ..< n { b[k * n + i] *= s }
    }
    var out = [Double](repeating: 0, count: n * n)
    b.withUnsafeBufferPointer { p in
        out.withUnsafeMutableBufferPointer { o in
            BLAS.gemm(transA: true, m: n, n: n, k: n, a: p.baseAddress!, lda: n, b: p.baseAddress!, ldb: n, c: o.baseAddress!, ldc: n)
        }
    }
    return Dense.symmetrized(out, n)
}

/// The share of the values of `x` (all of them, every row) outside `range`, with its standard
/// error treating rows as the independent units (values within a row, such as the pixels of one
/// image, are correlated): `standardError = sd(per-row shares) / √rows`.
///
///     let (share, se) = shareOutside(0 ... 16, of: digits)   // e.g. check share + 3 se < 0.01
public func shareOutside(_ range: ClosedRange<Double>, of x: Tensor) -> (share: Double, standardError: Double) {
    let n = x.rows, d = x.rowSize
    guard n > 0, d > 0 else { return (0, 0) }
    var shares = [Double](repeating: 0, count: n)
    for r in 0 ..< n {
        var k = 0
        for j in 0 ..< d where !range.contains(x.storage[r * d + j]) { k += 1 }   // NaN counts as outside
        shares[r] = Double(k) / Double(d)
    }
    let mean = shares.reduce(0, +) / Double(n)
    guard n > 1 else { return (mean, .infinity) }
    let variance = shares.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
    return (mean, (variance / Double(n)).squareRoot())
}

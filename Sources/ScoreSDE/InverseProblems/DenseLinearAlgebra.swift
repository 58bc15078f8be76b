import Foundation

/// Small dense linear algebra on row-major `[Double]` matrices (the sizes of measurement operators
/// and mixture components: tens to a few hundred). Internal: the public API speaks `[[Double]]`.
enum Dense {
    /// `C = A B` with `A` `m × k`, `B` `k × n`.
    static func multiply(_ a: [Double], _ b: [Double], _ m: Int, _ k: Int, _ n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0 ..< m {
            for l in 0 ..< k {
                let ail = a[i * k + l]
                if ail == 0 { continue }
                for j in 0 ..< n { c[i * n + j] += ail * b[l * n + j] }
            }
        }
        return c
    }

    /// `Aᵀ` of an `m × n` matrix.
    static func transpose(_ a: [Double], _ m: Int, _ n: Int) -> [Double] {
        var t = [Double](repeating: 0, count: m * n)
        for i in 0 ..< m { for j in 0 ..< n { t[j * m + i] = a[i * n + j] } }
        return t
    }

    /// `(A + Aᵀ) / 2`.
    static func symmetrized(_ a: [Double], _ n: Int) -> [Double] {
        var s = a
        for i in 0 ..< n { for j in 0 ..< i { let v = 0.5 * (a[i * n + j] + a[j * n + i]); s[i * n + j] = v; s[j * n + i] = v } }
        return s
    }

    /// Lower Cholesky factor `L` (`A = L Lᵀ`), or nil when `A` is not numerically positive definite.
    static func cholesky(_ a: [Double], _ n: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: n * n)
        for j in 0 ..< n {
            var d = a[j * n + j]
            for k in 0 ..< j { d -= l[j * n + k] * l[j * n + k] }
            guard d > 0, d.isFinite else { return nil }
            let ljj = d.squareRoot()
            l[j * n + j] = ljj
            for i in j + 1 ..< n {
                var s = a[i * n + j]
                for k in 0 ..< j { s -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = s / ljj
            }
        }
        return l
    }

    /// Solves `L Lᵀ x = b` in place (`b` of length `n`).
    static func choleskySolve(_ l: [Double], _ n: Int, _ b: inout [Double]) {
        for i in 0 ..< n {
            var s = b[i]
            for k in 0 ..< i { s -= l[i * n + k] * b[k] }
            b[i] = s / l[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = b[i]
            for k in i + 1 ..< n { s -= l[k * n + i] * b[k] }
            b[i] = s / l[i * n + i]
        }
    }

    /// `Σ log L_ii` (half the log-determinant of `L Lᵀ`).
    static func halfLogDeterminant(_ l: [Double], _ n: Int) -> Double {
        var s = 0.0
        for i in 0 ..< n { s += Foundation.log(l[i * n + i]) }
        return s
    }

    /// Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations: `A = V diag(λ) Vᵀ`,
    /// eigenvectors in the columns of `V`, eigenvalues in descending order.
    static func symmetricEigen(_ a: [Double], _ n: Int) -> (values: [Double], vectors: [Double]) {
        var m = symmetrized(a, n)
        var v = [Double](repeating: 0, count: n * n)
        for i in 0 ..< n { v[i * n + i] = 1 }
        var scale = 0.0
        for x in m { scale = max(scale, abs(x)) }
        if scale == 0 || n == 1 { return ((0 ..< n).map { m[$0 * n + $0] }, v) }
        for _ in 0 ..< 100 {
            var off = 0.0
            for i in 0 ..< n { for j in i + 1 ..< n { off += m[i * n + j] * m[i * n + j] } }
            if off <= 1e-30 * scale * scale { break }
            for p in 0 ..< n {
                for q in p + 1 ..< n {
                    let apq = m[p * n + q]
                    if abs(apq) <= 1e-300 { continue }
                    let app = m[p * n + p], aqq = m[q * n + q]
                    let theta = (aqq - app) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0 ..< n {
                        let mkp = m[k * n + p], mkq = m[k * n + q]
                        m[k * n + p] = c * mkp - s * mkq
                        m[k * n + q] = s * mkp + c * mkq
                    }
                    for k in 0 ..< n {
                        let mpk = m[p * n + k], mqk = m[q * n + k]
                        m[p * n + k] = c * mpk - s * mqk
                        m[q * n + k] = s * mpk + c * mqk
                    }
                    for k in 0 ..< n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0 ..< n).sorted { m[$0 * n + $0] > m[$1 * n + $1] }
        let values = order.map { m[$0 * n + $0] }
        var vectors = [Double](repeating: 0, count: n * n)
        for (newCol, oldCol) in order.enumerated() { for k in 0 ..< n { vectors[k * n + newCol] = v[k * n + oldCol] } }
        return (values, vectors)
    }

    /// A factor `F` with `F Fᵀ = A` for a symmetric positive semi-definite `A`: the Cholesky factor
    /// when `A` is well conditioned, else scaled eigenvectors with eigenvalues below `1e-12 λ_max`
    /// (rounding in the null space of a singular covariance) set to 0, so samples of a singular
    /// covariance stay exactly on its support.
    static func psdFactor(_ a: [Double], _ n: Int) -> [Double] {
        var diag = 0.0
        for i in 0 ..< n { diag = max(diag, a[i * n + i]) }
        if let l = cholesky(a, n), (0 ..< n).allSatisfy({ l[$0 * n + $0] * l[$0 * n + $0] > 1e-10 * diag }) { return l }
        let (values, vectors) = symmetricEigen(a, n)
        let floor = 1e-12 * max(values.first ?? 0, 0)
        var f = vectors
        for j in 0 ..< n {
            let r = values[j] > floor ? values[j].squareRoot() : 0
            for i in 0 ..< n { f[i * n + j] *= r }
        }
        return f
    }

    /// Inverse of a general square matrix (Gauss–Jordan with partial pivoting), nil when singular.
    static func inverse(_ a: [Double], _ n: Int) -> [Double]? {
        var m = a
        var inv = [Double](repeating: 0, count: n * n)
        for i in 0 ..< n { inv[i * n + i] = 1 }
        var scale = 0.0
        for x in a { scale = max(scale, abs(x)) }
        for col in 0 ..< n {
            var pivot = col, best = abs(m[col * n + col])
            for r in col + 1 ..< n where abs(m[r * n + col]) > best { best = abs(m[r * n + col]); pivot = r }
            guard best > 1e-13 * max(scale, 1e-300) else { return nil }
            if pivot != col {
                for k in 0 ..< n {
                    m.swapAt(col * n + k, pivot * n + k)
                    inv.swapAt(col * n + k, pivot * n + k)
                }
            }
            let p = 1 / m[col * n + col]
            for k in 0 ..< n { m[col * n + k] *= p; inv[col * n + k] *= p }
            for r in 0 ..< n where r != col {
                let f = m[r * n + col]
                if f == 0 { continue }
                for k in 0 ..< n { m[r * n + k] -= f * m[col * n + k]; inv[r * n + k] -= f * inv[col * n + k] }
            }
        }
        return inv
    }
}

/// Validates a `[[Double]]` matrix: rectangular, non-empty, finite. Returns `(rows, columns, row-major values)`.
func validatedMatrix(_ a: [[Double]], _ what: String) throws -> (rows: Int, columns: Int, values: [Double]) {
    guard let first = a.first, !first.isEmpty else {
        throw ScoreSDEError.shapeMismatch("\(what) must have at least one row and one column")
    }
    let n = first.count
    for (i, row) in a.enumerated() where row.count != n {
        throw ScoreSDEError.shapeMismatch("\(what) is ragged: row \(i) has \(row.count) columns, row 0 has \(n)")
    }
    for (i, row) in a.enumerated() {
        if let j = row.firstIndex(where: { !$0.isFinite }) {
            throw ScoreSDEError.nonFinite("\(what) contains \(row[j]) at row \(i), column \(j); all entries must be finite")
        }
    }
    return (a.count, n, a.flatMap { $0 })
}

/// Rows of a row-major `m × n` array as `[[Double]]`.
func matrixRows(_ a: [Double], _ m: Int, _ n: Int) -> [[Double]] {
    (0 ..< m).map { Array(a[$0 * n ..< ($0 + 1) * n]) }
}

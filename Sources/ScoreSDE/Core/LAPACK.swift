import COpenBLAS

/// Dense symmetric linear algebra through the LAPACK bundled with Debian's OpenBLAS (Cholesky
/// `dpotrf`, triangular solves `dtrsm`, the divide-and-conquer eigensolver `dsyevd`), for matrices
/// too large for ``Dense``'s hand-written loops (a 784 × 784 pixel covariance: `dpotrf` takes
/// milliseconds, cyclic Jacobi minutes). Matrices are row-major `[Double]`, as in ``Dense``.
///
/// Row-major storage of `M` is column-major storage of `Mᵀ`; for symmetric input the two agree,
/// and a row-major lower factor `L` is LAPACK's column-major upper factor `U = Lᵀ`.
enum LAPACK {
    /// The lower Cholesky factor `L` (`A = L Lᵀ`, zeros above the diagonal) of a symmetric
    /// positive-definite `A` (row-major `n × n`; only its lower triangle is read).
    ///
    /// - Throws: ``ScoreSDEError/notPositiveDefinite(_:)`` naming `what`, with `advice`, when a
    ///   leading minor is not positive; `nonFinite` for non-finite entries.
    static func cholesky(_ a: [Double], _ n: Int, what: String, advice: String) throws -> [Double] {
        precondition(a.count == n * n && n > 0, "LAPACK.cholesky: \(a.count) values for \(n) x \(n)")
        if let bad = a.firstIndex(where: { !$0.isFinite }) {
            throw ScoreSDEError.nonFinite("\(what) has \(a[bad]) at (\(bad / n), \(bad % n)); all entries must be finite")
        }
        var l = a
        var uplo: CChar = 85   // "U": column-major upper = row-major lower
        var nn = blasint(n), lda = blasint(n), info: blasint = 0
        _ = l.withUnsafeMutableBufferPointer { p in dpotrf_(&uplo, &nn, p.baseAddress, &lda, &info) }
        precondition(info >= 0, "dpotrf_: argument \(-info) is invalid")
        if info > 0 {
            throw ScoreSDEError.notPositiveDefinite(NotPositiveDefinite(matrix: what, dimension: n, order: Int(info), advice: advice))
        }
        for i in 0 ..< n { for j in i + 1 ..< n { l[i * n + j] = 0 } }
        return l
    }

    /// Solves `L sᵢ = rᵢ` in place for every row `rᵢ` of the row-major `rows × n` matrix `r`
    /// (`s = r L⁻ᵀ`), with `L` a lower factor from ``cholesky(_:_:what:advice:)``.
    static func solveLower(_ l: [Double], _ n: Int, rows: Int, _ r: UnsafeMutablePointer<Double>) {
        guard rows > 0 else { return }
        // Column-major view: r is Rᵀ (n × rows) and l is U = Lᵀ; solve op(U) X = Rᵀ with op = transpose.
        var side: CChar = 76, uplo: CChar = 85, trans: CChar = 84, diag: CChar = 78   // L, U, T, N
        var m = blasint(n), nr = blasint(rows), lda = blasint(n), ldb = blasint(n), one = 1.0
        l.withUnsafeBufferPointer { p in   // dtrsm reads A only (its prototype is not const)
            dtrsm_(&side, &uplo, &trans, &diag, &m, &nr, &one, UnsafeMutablePointer(mutating: p.baseAddress), &lda, r, &ldb)
        }
    }

    /// Eigenvalues (ascending) and orthonormal eigenvectors of a symmetric `A` (row-major `n × n`,
    /// lower triangle read) by divide and conquer: `vectors[k * n + i]` is component `i` of the
    /// eigenvector of `values[k]` (one eigenvector per row).
    static func symmetricEigen(_ a: [Double], _ n: Int) -> (values: [Double], vectors: [Double]) {
        precondition(a.count == n * n && n > 0, "LAPACK.symmetricEigen: \(a.count) values for \(n) x \(n)")
        var v = a
        var w = [Double](repeating: 0, count: n)
        var jobz: CChar = 86, uplo: CChar = 85   // "V", "U" (column-major upper = row-major lower)
        var nn = blasint(n), lda = blasint(n), info: blasint = 0
        var lwork = blasint(1 + 6 * n + 2 * n * n), liwork = blasint(3 + 5 * n)   // dsyevd's minimum for jobz = V
        var work = [Double](repeating: 0, count: Int(lwork))
        var iwork = [blasint](repeating: 0, count: Int(liwork))
        v.withUnsafeMutableBufferPointer { vp in
            w.withUnsafeMutableBufferPointer { wp in
                dsyevd_(&jobz, &uplo, &nn, vp.baseAddress, &lda, wp.baseAddress, &work, &lwork, &iwork, &liwork, &info, 1, 1)
            }
        }
        precondition(info >= 0, "dsyevd_: argument \(-info) is invalid")
        // info > 0: an eigenvalue failed to converge (does not happen for finite symmetric input).
        precondition(info == 0, "dsyevd_ did not converge (info \(info)); the matrix has non-finite entries?")
        return (w, v)   // column-major eigenvector columns = row-major rows
    }
}

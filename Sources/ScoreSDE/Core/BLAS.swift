import COpenBLAS

/// Row-major matrix products through OpenBLAS's Fortran entry points (see the COpenBLAS shim).
enum BLAS {
    /// `C = alpha · op(A) · op(B) + beta · C`, all row-major: `op(A)` is `m × k`, `op(B)` is `k × n`,
    /// `C` is `m × n`; `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored.
    static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                     alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
                     b: UnsafePointer<Double>, ldb: Int,
                     beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int) {
        // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands.
        var ta: CChar = transB ? 84 : 78, tb: CChar = transA ? 84 : 78   // "T" / "N"
        var mm = blasint(n), nn = blasint(m), kk = blasint(k)
        var al = alpha, be = beta
        var l1 = blasint(ldb), l2 = blasint(lda), l3 = blasint(ldc)
        dgemm_(&ta, &tb, &mm, &nn, &kk, &al, UnsafeMutablePointer(mutating: b), &l1, UnsafeMutablePointer(mutating: a), &l2, &be, c, &l3)
    }
}

import Testing
@testable import ScoreSDE

@Suite("BLAS") struct BLASTests {
    /// Row-major products with every transpose combination against a direct triple loop.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmMatchesLoops(_ ta: Bool, _ tb: Bool) {
        let m = 5, n = 4, k = 3
        var rng = RandomSource(seed: 1)
        let a = Tensor.standardNormal(shape: [m * k], using: &rng).storage   // op(A) m×k
        let b = Tensor.standardNormal(shape: [k * n], using: &rng).storage   // op(B) k×n
        var c = [Double](repeating: 1, count: m * n)
        func A(_ i: Int, _ p: Int) -> Double { ta ? a[p * m + i] : a[i * k + p] }
        func B(_ p: Int, _ j: Int) -> Double { tb ? b[j * k + p] : b[p * n + j] }
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            BLAS.gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 2, a: ap.baseAddress!, lda: ta ? m : k,
                      b: bp.baseAddress!, ldb: tb ? k : n, beta: 0.5, c: cp.baseAddress!, ldc: n)
        } } }
        for i in 0 ..< m {
            for j in 0 ..< n {
                var s = 0.0
                for p in 0 ..< k { s += A(i, p) * B(p, j) }
                #expect(abs(c[i * n + j] - (2 * s + 0.5)) < 1e-12)
            }
        }
    }
}

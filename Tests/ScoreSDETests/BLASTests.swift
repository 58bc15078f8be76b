import Testing
@testable import ScoreSDE
import COpenBLAS

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

    /// The selection rule (``BLASBackend``): OpenBLAS unless it fell back to a pre-AVX2 kernel on an
    /// AVX2 CPU and BLIS recognised the CPU; a set `OPENBLAS_CORETYPE` or `SCORESDE_BLAS` decides.
    @Test func backendSelectionRule() {
        func pick(_ requested: String? = nil, set: Bool = false, core: String, avx2: Bool = true, blis: String?) -> BLASBackend.Library {
            BLASBackend.choose(requested: requested, coreTypeSet: set, openBLASCore: core, cpuHasAVX2: avx2, blisConfig: { blis }).0
        }
        #expect(pick(core: "Cooperlake", blis: "generic") == .openBLAS)      // the AMD machine measured
        #expect(pick(core: "Prescott", blis: "skx") == .blis)                // the Intel machine of issue 19
        #expect(pick(core: "Prescott", blis: "haswell") == .blis)
        #expect(pick(core: "Prescott", blis: "generic") == .openBLAS)        // nothing better to be had
        #expect(pick(core: "Prescott", blis: nil) == .openBLAS)              // BLIS not installed
        #expect(pick(core: "Prescott", avx2: false, blis: "skx") == .openBLAS)
        #expect(pick(set: true, core: "Prescott", blis: "skx") == .openBLAS) // the user's OPENBLAS_CORETYPE is kept
        #expect(pick(core: "Haswell", blis: "skx") == .openBLAS)
        #expect(pick("blis", core: "Cooperlake", blis: "generic") == .blis)
        #expect(pick("blis", core: "Cooperlake", blis: nil) == .openBLAS)
        #expect(pick("openblas", core: "Prescott", blis: "skx") == .openBLAS)
    }

    /// Both libraries' `dgemm_` (whichever is not in use too, when installed) against direct loops,
    /// on shapes that take the blocked paths (m, n, k past the kernels' register blocks).
    @Test func bothBackendsMatchLoops() throws {
        var candidates: [(String, BLAS.Dgemm)] = [("current", BLAS.implementation.dgemm)]
        if let blis = BLISLibrary.load() { candidates.append(("BLIS \(blis.config)", blis.dgemm)) }
        let m = 37, n = 29, k = 70
        var rng = RandomSource(seed: 2)
        let a = Tensor.standardNormal(shape: [m * k], using: &rng).storage
        let b = Tensor.standardNormal(shape: [k * n], using: &rng).storage
        for (name, dgemm) in candidates {
            var c = [Double](repeating: 0, count: m * n)
            // Column-major C^T (n × m) = B^T A^T: the row-major product C = A B.
            var ta: CChar = 78, tb: CChar = 78
            var mm = blasint(n), nn = blasint(m), kk = blasint(k), al = 1.0, be = 0.0
            var lb = blasint(n), la = blasint(k), lc = blasint(n)
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                dgemm(&ta, &tb, &mm, &nn, &kk, &al, UnsafeMutablePointer(mutating: bp.baseAddress!), &lb,
                      UnsafeMutablePointer(mutating: ap.baseAddress!), &la, &be, cp.baseAddress!, &lc)
            } } }
            for i in 0 ..< m {
                for j in 0 ..< n {
                    var s = 0.0, scale = 0.0
                    for p in 0 ..< k { s += a[i * k + p] * b[p * n + j]; scale += abs(a[i * k + p] * b[p * n + j]) }
                    // Any summation order: |error| <= k eps sum |terms| (Higham, Thm 3.5 form).
                    #expect(abs(c[i * n + j] - s) <= Double(k) * 0x1p-52 * scale, "\(name) [\(i), \(j)]")
                }
            }
        }
        #expect(!BLASBackend.current.kernel.isEmpty)
    }
}

/// A dense layer over rows (PyTorch `nn.Linear`): `y = x Wᵀ + b`, `W` is `[out, in]`.
/// Backward: `dW = dyᵀ x`, `db = Σ_rows dy`, `dx = dy W`.
final class Linear<T: NetworkScalar> {
    let inFeatures: Int, outFeatures: Int
    let weight: ParameterRef, bias: ParameterRef

    init(_ name: String, in i: Int, out o: Int, parameters: ParameterLayout) {
        inFeatures = i; outFeatures = o
        weight = parameters.add("\(name).weight", [o, i], fanIn: i)
        bias = parameters.add("\(name).bias", [o], fanIn: i)
    }

    func forward(_ x: UnsafePointer<T>, rows: Int, parameters p: UnsafePointer<T>, into y: UnsafeMutablePointer<T>) {
        let b = p + bias.offset
        for r in 0 ..< rows { (y + r * outFeatures).update(from: b, count: outFeatures) }
        T.gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures, alpha: 1, a: x, lda: inFeatures,
               b: p + weight.offset, ldb: inFeatures, beta: 1, c: y, ldc: outFeatures)
    }

    /// Parameter gradients overwritten; `dx` (if given) overwritten, or accumulated when `accumulate`.
    func backward(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, rows: Int, parameters p: UnsafePointer<T>,
                  gradients g: UnsafeMutablePointer<T>, dx: UnsafeMutablePointer<T>?, accumulate: Bool = false) {
        let o = outFeatures
        let db = g + bias.offset
        db.update(repeating: 0, count: o)
        for r in 0 ..< rows { let d = dy + r * o; for j in 0 ..< o { db[j] += d[j] } }
        T.gemm(transA: true, transB: false, m: o, n: inFeatures, k: rows, alpha: 1, a: dy, lda: o, b: x, ldb: inFeatures,
               beta: 0, c: g + weight.offset, ldc: inFeatures)
        if let dx {
            T.gemm(transA: false, transB: false, m: rows, n: inFeatures, k: o, alpha: 1, a: dy, lda: o,
                   b: p + weight.offset, ldb: inFeatures, beta: accumulate ? 1 : 0, c: dx, ldc: inFeatures)
        }
    }
}

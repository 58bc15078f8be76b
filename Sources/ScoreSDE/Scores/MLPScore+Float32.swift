import Foundation

/// The precision an ``MLPScore`` computes in. The SDE, the solvers, the loss and the optimiser are
/// float64 either way; only the network's own arithmetic changes.
///
/// * ``float64``: every product and activation in float64 (OpenBLAS's dgemm); the exact path the
///   gradient and likelihood checks pin.
/// * ``float32``: inputs are rounded to float32 once per call, the network (forward, its
///   Jacobian–vector product, the training pass's forward and backward) runs in float32 with
///   oneDNN's `sgemm`, and outputs are widened back to float64. Weights stay float64 (the trainer's
///   master copy, its Adam moments and the EMA), rounded to float32 for each pass: mixed precision
///   with float64 master weights, so Adam's small updates are never lost to float32 rounding.
///   The Fourier time features and the time-folded biases of sampling are computed in float64.
///
/// Recorded in model files as `model.precision` (`float32`; absent: `float64`).
public enum MLPPrecision: String, Sendable, CaseIterable {
    case float64
    case float32

    /// Reads `model.precision` (absent: float64, as every file written before the option).
    init(metadata m: MetadataReader) throws {
        guard let text = m.map["model.precision"] else { self = .float64; return }
        guard let p = MLPPrecision(rawValue: text) else {
            throw m.fail("metadata 'model.precision' is '\(text)'; expected float32 or float64")
        }
        self = p
    }
}

/// The element type of ``MLPScore``'s kernels: a ``NetworkScalar`` (its matrix product) with the
/// SIMD SiLU kernels of that width.
protocol MLPKernelScalar: NetworkScalar {
    /// `C = op(A) · op(B) + beta · C` (row-major, as ``NetworkScalar/gemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``)
    /// for the MLP's layer shapes.
    static func mlpGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int,
                        b: UnsafePointer<Self>, ldb: Int, beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// `act = SiLU(pre)` and, when given, `sig = σ(pre)`, over `n` values.
    static func siluForward(_ pre: UnsafePointer<Self>, act: UnsafeMutablePointer<Self>, sig: UnsafeMutablePointer<Self>?, _ n: Int)
    /// `out (=|+=) g · SiLU'(pre)` from stored `sig = σ(pre)`.
    static func siluBackward(_ g: UnsafePointer<Self>, pre: UnsafePointer<Self>, sig: UnsafePointer<Self>,
                             into out: UnsafeMutablePointer<Self>, _ n: Int, accumulate: Bool)
    /// `act = SiLU(pre)` and the tangent `dact = SiLU'(pre) · dpre`.
    static func siluTangent(_ pre: UnsafePointer<Self>, _ dpre: UnsafePointer<Self>,
                            act: UnsafeMutablePointer<Self>, dact: UnsafeMutablePointer<Self>, _ n: Int)
}

extension Double: MLPKernelScalar {
    /// The library's float64 BLAS, threaded by the BLAS itself.
    @inline(__always)
    static func mlpGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int,
                        b: UnsafePointer<Double>, ldb: Int, beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        Double.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
    @inline(__always)
    static func siluForward(_ pre: UnsafePointer<Double>, act: UnsafeMutablePointer<Double>, sig: UnsafeMutablePointer<Double>?, _ n: Int) {
        ScoreSDE.siluForward(pre, act: act, sig: sig, n)
    }
    @inline(__always)
    static func siluBackward(_ g: UnsafePointer<Double>, pre: UnsafePointer<Double>, sig: UnsafePointer<Double>,
                             into out: UnsafeMutablePointer<Double>, _ n: Int, accumulate: Bool) {
        ScoreSDE.siluBackward(g, pre: pre, sig: sig, into: out, n, accumulate: accumulate)
    }
    @inline(__always)
    static func siluTangent(_ pre: UnsafePointer<Double>, _ dpre: UnsafePointer<Double>,
                            act: UnsafeMutablePointer<Double>, dact: UnsafeMutablePointer<Double>, _ n: Int) {
        ScoreSDE.siluTangent(pre, dpre, act: act, dact: dact, n)
    }
}

// MARK: - Float32 elementwise kernels (SIMD8)

typealias F8 = SIMD8<Float>

/// Vectorized float32 `exp` for arguments `≤ 0`: `x = n ln2 + r`, `|r| ≤ ln2/2`, a degree-7 Taylor
/// polynomial (truncation below 6e-9 relative, under float32's half ulp), `2ⁿ` from the bits of
/// the rounding constant (the float32 twin of ``expNonPositive(_:)``). Arguments below −87 give 0.
@inline(__always)
func expNonPositive8(_ x0: F8) -> F8 {
    let magic = F8(repeating: 12582912.0)   // 1.5·2^23: adding it rounds to an integer
    let x = x0.replacing(with: -87.0, where: x0 .< -87.0)
    let shifted = x * 1.44269504 + magic
    let n = shifted - magic
    let r = (x - n * 0.693359375) + n * 2.12194440e-4   // ln 2 = 0.693359375 − 2.12194440e-4 (the first exact in 9 bits)
    var p = F8(repeating: 1.0 / 5040.0)
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    // The low bits of `shifted` hold n (two's complement); n + 127 in the exponent field is 2ⁿ.
    let bits = unsafeBitCast(shifted, to: SIMD8<UInt32>.self)
    let scale = unsafeBitCast((bits &+ 127) &<< 23, to: F8.self)
    return (p * scale).replacing(with: 0, where: x0 .< -87.0)
}

/// σ(a) = 1/(1+e^{−a}) in float32, from `e^{−|a|}`.
@inline(__always) func sigmoid8(_ a: F8) -> F8 {
    let neg = unsafeBitCast(unsafeBitCast(a, to: SIMD8<UInt32>.self) | SIMD8<UInt32>(repeating: 0x8000_0000), to: F8.self)
    let e = expNonPositive8(neg)
    let r = 1 / (1 + e)
    return (e * r).replacing(with: r, where: a .>= 0)
}

@inline(__always) func load8(_ p: UnsafePointer<Float>, _ i: Int) -> F8 {
    UnsafeRawPointer(p + i).loadUnaligned(as: F8.self)
}
@inline(__always) func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: F8.self)
}
@inline(__always) func loadTail8(_ p: UnsafePointer<Float>, _ i: Int, _ k: Int) -> F8 {
    var v = F8(repeating: 0)
    for j in 0 ..< k { v[j] = p[i &+ j] }
    return v
}
@inline(__always) func storeTail8(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ k: Int) {
    for j in 0 ..< k { p[i &+ j] = v[j] }
}

extension Float: MLPKernelScalar {
    /// oneDNN's `sgemm`, one OpenMP thread per call, the rows of `C` split over the library's own
    /// threads (``Parallel``). The MLP alternates small products with elementwise kernels on
    /// those threads; letting OpenMP thread the products as well made its spin-waiting workers
    /// fight the elementwise threads for the cores (training the digits MLP on a loaded 2-core
    /// machine: 280 examples/s against 8 000 with one OpenMP thread). Every product keeps its whole
    /// inner dimension in one call, so a row's result does not depend on the split; the split
    /// depends only on the thread count. The calling thread's OpenMP setting is restored.
    static func mlpGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        Parallel.forEachChunk(m, grain: max(1, (1 << 17) / max(n * k, 1))) { r in
            let saved = DNNL.maxThreads
            if saved != 1 { DNNL.setThreads(1) }
            Float.gemm(transA: transA, transB: transB, m: r.count, n: n, k: k, alpha: 1,
                       a: a + (transA ? r.lowerBound : r.lowerBound * lda), lda: lda, b: b, ldb: ldb,
                       beta: beta, c: c + r.lowerBound * ldc, ldc: ldc)
            if saved > 1 { DNNL.setThreads(saved) }
        }
    }

    static func siluForward(_ pre: UnsafePointer<Float>, act: UnsafeMutablePointer<Float>, sig: UnsafeMutablePointer<Float>?, _ n: Int) {
        Parallel.forEachChunk(n, grain: elementGrain) { r in
            var i = r.lowerBound
            let end = r.upperBound
            while i &+ 8 <= end {
                let a = load8(pre, i), s = sigmoid8(a)
                store8(a * s, act, i)
                if let sig { store8(s, sig, i) }
                i &+= 8
            }
            if i < end {
                let k = end &- i, a = loadTail8(pre, i, k), s = sigmoid8(a)
                storeTail8(a * s, act, i, k)
                if let sig { storeTail8(s, sig, i, k) }
            }
        }
    }

    static func siluBackward(_ g: UnsafePointer<Float>, pre: UnsafePointer<Float>, sig: UnsafePointer<Float>,
                             into out: UnsafeMutablePointer<Float>, _ n: Int, accumulate: Bool) {
        Parallel.forEachChunk(n, grain: elementGrain) { r in
            var i = r.lowerBound
            let end = r.upperBound
            while i &+ 8 <= end {
                let a = load8(pre, i), s = load8(sig, i)
                let v = load8(g, i) * s * (1 + a * (1 - s))
                store8(accumulate ? load8(out, i) + v : v, out, i)
                i &+= 8
            }
            if i < end {
                let k = end &- i
                let a = loadTail8(pre, i, k), s = loadTail8(sig, i, k)
                let v = loadTail8(g, i, k) * s * (1 + a * (1 - s))
                storeTail8(accumulate ? loadTail8(out, i, k) + v : v, out, i, k)
            }
        }
    }

    static func siluTangent(_ pre: UnsafePointer<Float>, _ dpre: UnsafePointer<Float>,
                            act: UnsafeMutablePointer<Float>, dact: UnsafeMutablePointer<Float>, _ n: Int) {
        Parallel.forEachChunk(n, grain: elementGrain) { r in
            var i = r.lowerBound
            let end = r.upperBound
            while i &+ 8 <= end {
                let a = load8(pre, i), s = sigmoid8(a)
                store8(a * s, act, i)
                store8(load8(dpre, i) * s * (1 + a * (1 - s)), dact, i)
                i &+= 8
            }
            if i < end {
                let k = end &- i
                let a = loadTail8(pre, i, k), s = sigmoid8(a)
                storeTail8(a * s, act, i, k)
                storeTail8(loadTail8(dpre, i, k) * s * (1 + a * (1 - s)), dact, i, k)
            }
        }
    }
}

import CDNNL
import RealModule

/// The element type of a network: `Float` (production, kernels from oneDNN) or `Double` (the float64
/// twin every gradient test checks against: the same layer code, with im2col + OpenBLAS's dgemm).
///
/// Layers are written once, generic over the scalar; only the matrix product and the convolution
/// kernels differ.
public protocol NetworkScalar: BinaryFloatingPoint, Real, Sendable {
    /// `C = alpha · op(A) · op(B) + beta · C`, row-major: `op(A)` is `m × k`, `op(B)` is `k × n`.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
                     a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// Whether convolutions use oneDNN's primitives (otherwise im2col + `gemm`).
    static var usesDNNLConvolution: Bool { get }
}

extension Float: NetworkScalar {
    /// oneDNN's `dnnl_sgemm` (row-major, JIT-compiled for the CPU; threads with OpenMP).
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        let status = dnnl_sgemm(transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha,
                                a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        precondition(status == dnnl_success, "dnnl_sgemm failed with status \(status.rawValue) (m \(m), n \(n), k \(k))")
    }
    public static var usesDNNLConvolution: Bool { DNNL.convolutionOverride ?? true }
}

extension Double: NetworkScalar {
    /// The library's float64 BLAS (OpenBLAS or BLIS, see ``BLASBackend``) through its row-major `gemm` wrapper.
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                            a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                            beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        if m == 0 || n == 0 { return }
        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
    public static var usesDNNLConvolution: Bool { false }
}

/// A grow-only buffer a layer keeps between calls, so that a steady batch size allocates nothing.
final class NetworkBuffer<T: NetworkScalar> {
    private(set) var pointer: UnsafeMutablePointer<T>
    private(set) var capacity: Int

    init(_ count: Int = 0) {
        capacity = max(count, 1)
        pointer = .allocate(capacity: capacity)
        pointer.initialize(repeating: 0, count: capacity)
    }

    /// At least `count` elements (contents undefined after growing).
    @discardableResult
    func reserve(_ count: Int) -> UnsafeMutablePointer<T> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = .allocate(capacity: count)
            pointer.initialize(repeating: 0, count: count)
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}

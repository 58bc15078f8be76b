import CDNNL
import Dispatch
import Foundation

/// The process's oneDNN CPU engine and stream, and its thread control.
///
/// Debian builds oneDNN with the OpenMP runtime: primitives and `dnnl_sgemm` run on OpenMP's thread
/// team of the calling thread. At a fixed thread count oneDNN's CPU kernels split work statically, so
/// a given input gives the same bytes run after run; across thread counts the split of reductions
/// (backward-weights, GEMM K-blocking) may change and the last bits with it.
public enum DNNL {
    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        var e: dnnl_engine_t?
        let s = dnnl_engine_create(&e, dnnl_cpu, 0)
        precondition(s == dnnl_success && e != nil, "oneDNN: cannot create the CPU engine (status \(s.rawValue))")
        return e!
    }()

    /// The calling thread's stream (one per thread: oneDNN does not promise that one stream may be
    /// used from several threads at once, and score models are called concurrently).
    static var stream: dnnl_stream_t {
        let key = "scoresde.dnnl.stream"
        if let s = Thread.current.threadDictionary[key] as? StreamBox { return s.stream }
        let box = StreamBox()
        Thread.current.threadDictionary[key] = box
        return box.stream
    }

    final class StreamBox {
        let stream: dnnl_stream_t
        init() {
            var st: dnnl_stream_t?
            let s = dnnl_stream_create(&st, DNNL.engine, dnnl_stream_default_flags.rawValue)
            precondition(s == dnnl_success && st != nil, "oneDNN: cannot create a stream (status \(s.rawValue))")
            stream = st!
        }
        deinit { dnnl_stream_destroy(stream) }
    }

    /// Forces im2col + GEMM (`false`) or oneDNN convolutions (`true`) for float32 networks created
    /// afterwards (benchmarks compare the two); `nil` is the default, oneDNN.
    nonisolated(unsafe) public static var convolutionOverride: Bool? = nil

    /// Sets the OpenMP thread count for oneDNN calls made from the calling thread.
    /// - Returns: false when the OpenMP runtime was not found.
    @discardableResult
    public static func setThreads(_ n: Int) -> Bool { cdnnl_set_num_threads(Int32(max(1, n))) != 0 }

    /// OpenMP's thread bound for the calling thread.
    public static var maxThreads: Int { Int(cdnnl_max_threads()) }

    /// The CPU instruction set oneDNN dispatches to (e.g. "avx512_core_amx").
    public static var cpuISA: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx2: return "avx2"
        default: return "other"
        }
    }

    @inline(__always)
    static func check(_ s: dnnl_status_t, _ what: @autoclosure () -> String) {
        precondition(s == dnnl_success, "oneDNN: \(what()) failed with status \(s.rawValue)")
    }
}

extension DNNL {
    /// Measured float32 peak of one thread: GFLOP/s of a register-resident AVX-512 FMA loop
    /// (12 independent 16-lane accumulators), best of `repeats`; nil without AVX-512F.
    public static func fmaPeakGFLOPS(iterations: Int = 20_000_000, repeats: Int = 3) -> Double? {
        #if arch(x86_64)
        guard cdnnl_has_avx512f() != 0 else { return nil }
        var best = 0.0
        for _ in 0 ..< repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let v = cdnnl_fma_loop_avx512(iterations)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            if v.isNaN { return nil }
            best = max(best, 12 * 16 * 2 * Double(iterations) / dt / 1e9)
        }
        return best
        #else
        return nil
        #endif
    }
}

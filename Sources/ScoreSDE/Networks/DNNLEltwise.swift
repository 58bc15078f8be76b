import CDNNL
import Foundation

/// oneDNN's swish (`x σ(αx)`, α = 1: SiLU) forward and backward primitives over a flat float32 array,
/// created once per length and shared (primitives are stateless; memory objects are made per call
/// around the caller's buffers). Vectorised and threaded by oneDNN, unlike a scalar `expf` loop.
final class DNNLEltwise: @unchecked Sendable {
    let forward: dnnl_primitive_t, backward: dnnl_primitive_t
    var md = dnnl_memory_desc_t()

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [Int: DNNLEltwise] = [:]

    static func swish(count: Int) -> DNNLEltwise {
        lock.lock(); defer { lock.unlock() }
        if let e = cache[count] { return e }
        let e = DNNLEltwise(count: count)
        cache[count] = e
        return e
    }

    private init(count: Int) {
        let dims: [Int64] = [Int64(count)] + [Int64](repeating: 0, count: 11)
        DNNL.check(dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_x), "eltwise memory desc")
        var fd = dnnl_eltwise_desc_t(), bd = dnnl_eltwise_desc_t()
        DNNL.check(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, dnnl_eltwise_swish, &md, 1, 0), "swish forward desc")
        var fpd: dnnl_primitive_desc_t?
        DNNL.check(dnnl_primitive_desc_create(&fpd, &fd, nil, DNNL.engine, nil), "swish forward primitive desc")
        DNNL.check(dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_swish, &md, &md, 1, 0), "swish backward desc")
        var bpd: dnnl_primitive_desc_t?
        DNNL.check(dnnl_primitive_desc_create(&bpd, &bd, nil, DNNL.engine, fpd), "swish backward primitive desc")
        var f: dnnl_primitive_t?, b: dnnl_primitive_t?
        DNNL.check(dnnl_primitive_create(&f, fpd), "swish forward primitive")
        DNNL.check(dnnl_primitive_create(&b, bpd), "swish backward primitive")
        dnnl_primitive_desc_destroy(fpd); dnnl_primitive_desc_destroy(bpd)
        forward = f!; backward = b!
    }

    private func memory(_ p: UnsafeRawPointer) -> dnnl_memory_t {
        var m: dnnl_memory_t?
        DNNL.check(dnnl_memory_create(&m, &md, DNNL.engine, UnsafeMutableRawPointer(mutating: p)), "eltwise memory")
        return m!
    }

    func runForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        let a = memory(x), b = memory(y)
        var args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: a), dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: b)]
        DNNL.check(dnnl_primitive_execute(forward, DNNL.stream, 2, &args), "swish forward")
        dnnl_memory_destroy(a); dnnl_memory_destroy(b)
    }

    /// `dx = dy · swish'(x)`; `dx` may be `dy` (in place).
    func runBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) {
        let a = memory(x), b = memory(dy), c = memory(dx)
        var args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: a), dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_DST, memory: b),
                    dnnl_exec_arg_t(arg: DNNL_ARG_DIFF_SRC, memory: c)]
        DNNL.check(dnnl_primitive_execute(backward, DNNL.stream, 3, &args), "swish backward")
        dnnl_memory_destroy(a); dnnl_memory_destroy(b); dnnl_memory_destroy(c)
    }
}

import CDNNL

/// oneDNN convolution primitives for one shape: forward, backward-data and backward-weights, created
/// once and reused (``Conv2d`` keeps one per batch size and image size).
///
/// Activations are NHWC (`nhwc`, the layout every layer of the network uses); the weights live in the
/// parameter vector in PyTorch's OIHW order. oneDNN is asked for its preferred ("any") weight format:
/// when it picks a blocked one, the weights are reordered into it once per forward call (and the
/// weight gradient back to OIHW), which costs `O·I·k²` moves against the convolution's
/// `2·N·H·W·O·I·k²` flops.
final class DNNLConvolution {
    let forward: dnnl_primitive_t
    let backwardData: dnnl_primitive_t
    let backwardWeights: dnnl_primitive_t
    let forwardImpl: String, backwardDataImpl: String, backwardWeightsImpl: String
    // Memory objects whose data handles are set at each call.
    private let src: dnnl_memory_t, dst: dnnl_memory_t, bias: dnnl_memory_t
    private let diffSrc: dnnl_memory_t, diffDst: dnnl_memory_t, diffBias: dnnl_memory_t
    private let userWeights: dnnl_memory_t          // OIHW, in the parameter vector
    private let userDiffWeights: dnnl_memory_t      // OIHW, in the gradient vector
    // Weights in the primitives' formats (own storage) with their reorders, or nil when OIHW is used.
    private let weightsFwd: dnnl_memory_t, weightsBwdData: dnnl_memory_t, diffWeights: dnnl_memory_t
    private let reorderFwd: dnnl_primitive_t?, reorderBwdData: dnnl_primitive_t?, reorderDiff: dnnl_primitive_t?
    private var owned: [UnsafeMutableRawPointer] = []
    private var primitives: [dnnl_primitive_t] = []
    private var memories: [dnnl_memory_t] = []
    private var descs: [dnnl_primitive_desc_t] = []

    init(batch n: Int, inChannels c: Int, outChannels o: Int, height h: Int, width w: Int,
         kernel k: Int, stride s: Int, padding p: Int) {
        let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
        var srcMD = dnnl_memory_desc_t(), dstMD = dnnl_memory_desc_t(), wAny = dnnl_memory_desc_t()
        var wUser = dnnl_memory_desc_t(), bMD = dnnl_memory_desc_t()
        var sd: [Int64] = [Int64(n), Int64(c), Int64(h), Int64(w)]
        var dd: [Int64] = [Int64(n), Int64(o), Int64(oh), Int64(ow)]
        var wd: [Int64] = [Int64(o), Int64(c), Int64(k), Int64(k)]
        var bd: [Int64] = [Int64(o)]
        func mdInit(_ md: inout dnnl_memory_desc_t, _ dims: inout [Int64], _ tag: dnnl_format_tag_t) {
            // dnnl_dims_t imports as a pointer parameter: pass the array (padded to DNNL_MAX_NDIMS).
            let padded = dims + [Int64](repeating: 0, count: 12 - dims.count)
            DNNL.check(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), padded, dnnl_f32, tag), "memory_desc_init_by_tag")
        }
        mdInit(&srcMD, &sd, dnnl_nhwc)
        mdInit(&dstMD, &dd, dnnl_nhwc)
        mdInit(&wAny, &wd, dnnl_format_tag_any)
        mdInit(&wUser, &wd, dnnl_oihw)
        mdInit(&bMD, &bd, dnnl_x)
        let strides: [Int64] = [Int64(s), Int64(s)] + [Int64](repeating: 0, count: 10)
        let pads: [Int64] = [Int64(p), Int64(p)] + [Int64](repeating: 0, count: 10)
        let eng = DNNL.engine

        var fdesc = dnnl_convolution_desc_t()
        DNNL.check(dnnl_convolution_forward_desc_init(&fdesc, dnnl_forward_training, dnnl_convolution_direct,
                                                      &srcMD, &wAny, &bMD, &dstMD, strides, pads, pads), "convolution forward desc")
        var fpd: dnnl_primitive_desc_t?
        DNNL.check(dnnl_primitive_desc_create(&fpd, &fdesc, nil, eng, nil), "convolution forward primitive desc")
        var bdesc = dnnl_convolution_desc_t()
        DNNL.check(dnnl_convolution_backward_data_desc_init(&bdesc, dnnl_convolution_direct, &srcMD, &wAny, &dstMD,
                                                            strides, pads, pads), "convolution backward-data desc")
        var bpd: dnnl_primitive_desc_t?
        DNNL.check(dnnl_primitive_desc_create(&bpd, &bdesc, nil, eng, fpd), "convolution backward-data primitive desc")
        var wdesc = dnnl_convolution_desc_t()
        DNNL.check(dnnl_convolution_backward_weights_desc_init(&wdesc, dnnl_convolution_direct, &srcMD, &wAny, &bMD, &dstMD,
                                                               strides, pads, pads), "convolution backward-weights desc")
        var wpd: dnnl_primitive_desc_t?
        DNNL.check(dnnl_primitive_desc_create(&wpd, &wdesc, nil, eng, fpd), "convolution backward-weights primitive desc")
        descs = [fpd!, bpd!, wpd!]

        func impl(_ pd: dnnl_primitive_desc_t) -> String {
            var str: UnsafePointer<CChar>?
            _ = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &str)
            return str.map { String(cString: $0) } ?? "?"
        }
        forwardImpl = impl(fpd!); backwardDataImpl = impl(bpd!); backwardWeightsImpl = impl(wpd!)

        var list: [dnnl_memory_t] = []
        func mem(_ md: UnsafePointer<dnnl_memory_desc_t>, own: Bool) -> dnnl_memory_t {
            var m: dnnl_memory_t?
            DNNL.check(dnnl_memory_create(&m, md, eng, own ? cdnnl_memory_allocate() : nil), "memory create")
            list.append(m!)
            return m!
        }
        src = mem(&srcMD, own: false); dst = mem(&dstMD, own: false); bias = mem(&bMD, own: false)
        diffSrc = mem(&srcMD, own: false); diffDst = mem(&dstMD, own: false); diffBias = mem(&bMD, own: false)
        userWeights = mem(&wUser, own: false); userDiffWeights = mem(&wUser, own: false)

        var prims: [dnnl_primitive_t] = []
        func reorder(from a: UnsafePointer<dnnl_memory_desc_t>, to b: UnsafePointer<dnnl_memory_desc_t>) -> dnnl_primitive_t? {
            if dnnl_memory_desc_equal(a, b) != 0 { return nil }
            var rpd: dnnl_primitive_desc_t?
            DNNL.check(dnnl_reorder_primitive_desc_create(&rpd, a, eng, b, eng, nil), "reorder primitive desc")
            var r: dnnl_primitive_t?
            DNNL.check(dnnl_primitive_create(&r, rpd), "reorder primitive")
            dnnl_primitive_desc_destroy(rpd)
            prims.append(r!)
            return r
        }
        let fW = dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0)!
        let bW = dnnl_primitive_desc_query_md(bpd, dnnl_query_weights_md, 0)!
        let dW = dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_weights_md, 0)!
        reorderFwd = reorder(from: &wUser, to: fW)
        reorderBwdData = reorder(from: &wUser, to: bW)
        reorderDiff = reorder(from: dW, to: &wUser)
        weightsFwd = reorderFwd == nil ? userWeights : mem(fW, own: true)
        weightsBwdData = reorderBwdData == nil ? userWeights : mem(bW, own: true)
        diffWeights = reorderDiff == nil ? userDiffWeights : mem(dW, own: true)

        func prim(_ pd: dnnl_primitive_desc_t) -> dnnl_primitive_t {
            var p: dnnl_primitive_t?
            DNNL.check(dnnl_primitive_create(&p, pd), "primitive create")
            prims.append(p!)
            return p!
        }
        forward = prim(fpd!); backwardData = prim(bpd!); backwardWeights = prim(wpd!)
        primitives = prims
        memories = list
    }

    deinit {
        for p in primitives { dnnl_primitive_destroy(p) }
        for m in memories { dnnl_memory_destroy(m) }
        for d in descs { dnnl_primitive_desc_destroy(d) }
    }

    @inline(__always)
    private func set(_ m: dnnl_memory_t, _ p: UnsafeRawPointer) {
        DNNL.check(dnnl_memory_set_data_handle(m, UnsafeMutableRawPointer(mutating: p)), "set data handle")
    }

    private func execute(_ p: dnnl_primitive_t, _ args: [(Int32, dnnl_memory_t)]) {
        var a = args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1) }
        DNNL.check(dnnl_primitive_execute(p, DNNL.stream, Int32(a.count), &a), "primitive execute")
    }

    /// `y = conv(x, W) + b`.
    func runForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        set(src, x); set(dst, y); set(bias, b); set(userWeights, weight)
        if let r = reorderFwd { execute(r, [(DNNL_ARG_FROM, userWeights), (DNNL_ARG_TO, weightsFwd)]) }
        execute(forward, [(DNNL_ARG_SRC, src), (DNNL_ARG_WEIGHTS, weightsFwd), (DNNL_ARG_BIAS, bias), (DNNL_ARG_DST, dst)])
    }

    /// `dx = convᵀ(dy, W)`.
    func runBackwardData(dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        set(diffDst, dy); set(diffSrc, dx); set(userWeights, weight)
        if let r = reorderBwdData { execute(r, [(DNNL_ARG_FROM, userWeights), (DNNL_ARG_TO, weightsBwdData)]) }
        execute(backwardData, [(DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_WEIGHTS, weightsBwdData), (DNNL_ARG_DIFF_SRC, diffSrc)])
    }

    /// `dW`, `db` (overwritten) from `x` and `dy`.
    func runBackwardWeights(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>) {
        set(src, x); set(diffDst, dy); set(userDiffWeights, dWeight); set(diffBias, dBias)
        execute(backwardWeights, [(DNNL_ARG_SRC, src), (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_WEIGHTS, diffWeights), (DNNL_ARG_DIFF_BIAS, diffBias)])
        if let r = reorderDiff { execute(r, [(DNNL_ARG_FROM, diffWeights), (DNNL_ARG_TO, userDiffWeights)]) }
    }
}

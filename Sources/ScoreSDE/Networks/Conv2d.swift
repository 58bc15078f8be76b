/// A 2-D convolution (PyTorch `nn.Conv2d` semantics: cross-correlation, zero padding, square kernel
/// `k × k`, stride `s`) on NHWC activations, with weights `[O, I, k, k]` (OIHW) and bias `[O]` in the
/// parameter vector, as diffusers stores them.
///
/// `y[n, oy, ox, o] = b[o] + Σ_{c, ky, kx} W[o, c, ky, kx] · x[n, s·oy + ky − p, s·ox + kx − p, c]`.
///
/// Float32: oneDNN's convolution primitives (``DNNLConvolution``, one set per input shape, cached).
/// Float64 (the test twin) and the measured float32 fallback: im2col — a matrix `[N·OH·OW, k·k·I]`
/// of input patches in (ky, kx, c) order — times the weights reordered to `[O, k·k·I]` by GEMM;
/// backward-data is the transposed product followed by col2im (scatter-add), backward-weights
/// `dYᵀ · col`.
final class Conv2d<T: NetworkScalar> {
    let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    let weight: ParameterRef, bias: ParameterRef
    let useDNNL: Bool
    private var plans: [ShapeKey: DNNLConvolution] = [:]
    private let col = NetworkBuffer<T>(), wRe = NetworkBuffer<T>(), dCol = NetworkBuffer<T>()

    struct ShapeKey: Hashable { let n: Int, h: Int, w: Int }

    init(_ name: String, in inChannels: Int, out outChannels: Int, kernel: Int, stride: Int = 1, padding: Int,
         parameters: ParameterLayout) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        let fanIn = inChannels * kernel * kernel
        weight = parameters.add("\(name).weight", [outChannels, inChannels, kernel, kernel], fanIn: fanIn)
        bias = parameters.add("\(name).bias", [outChannels], fanIn: fanIn)
        useDNNL = T.usesDNNLConvolution
    }

    func outputSize(height h: Int, width w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1)
    }

    private var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

    private func plan(_ n: Int, _ h: Int, _ w: Int) -> DNNLConvolution {
        let key = ShapeKey(n: n, h: h, w: w)
        if let p = plans[key] { return p }
        let p = DNNLConvolution(batch: n, inChannels: inChannels, outChannels: outChannels, height: h, width: w,
                                kernel: kernel, stride: stride, padding: padding)
        plans[key] = p
        return p
    }

    /// The oneDNN implementations chosen for a shape (forward, backward-data, backward-weights).
    func implementations(batch n: Int, height h: Int, width w: Int) -> [String] {
        guard useDNNL else { return ["im2col+gemm"] }
        let p = plan(n, h, w)
        return [p.forwardImpl, p.backwardDataImpl, p.backwardWeightsImpl]
    }

    /// Multiply–adds of one forward pass (×2 for flops).
    func multiplyAdds(batch n: Int, height h: Int, width w: Int) -> Int {
        let (oh, ow) = outputSize(height: h, width: w)
        return n * oh * ow * outChannels * inChannels * kernel * kernel
    }

    /// `y` (NHWC, `[n, oh, ow, O]`) from `x` (`[n, h, w, I]`).
    func forward(_ x: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int,
                 parameters p: UnsafePointer<T>, into y: UnsafeMutablePointer<T>) {
        if useDNNL, T.self == Float.self {
            plan(n, h, w).runForward(x: cast(x), weight: cast(p + weight.offset), bias: cast(p + bias.offset), y: cast(y))
            return
        }
        let (oh, ow) = outputSize(height: h, width: w)
        let rows = n * oh * ow, kk = kernel * kernel * inChannels
        let a: UnsafePointer<T> = isPointwise ? x : UnsafePointer(im2col(x, n, h, w))
        let wr = reorderedWeights(p)
        // Bias first, then y += col · W'ᵀ.
        let b = p + bias.offset
        for r in 0 ..< rows { (y + r * outChannels).update(from: b, count: outChannels) }
        T.gemm(transA: false, transB: true, m: rows, n: outChannels, k: kk, alpha: 1, a: a, lda: kk,
               b: wr, ldb: kk, beta: 1, c: y, ldc: outChannels)
    }

    /// Parameter gradients (overwritten) and, when `dx` is given, the input gradient (overwritten).
    func backward(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int,
                  parameters p: UnsafePointer<T>, gradients g: UnsafeMutablePointer<T>, dx: UnsafeMutablePointer<T>?) {
        if useDNNL, T.self == Float.self {
            let pl = plan(n, h, w)
            pl.runBackwardWeights(x: cast(x), dy: cast(dy), dWeight: cast(g + weight.offset), dBias: cast(g + bias.offset))
            if let dx { pl.runBackwardData(dy: cast(dy), weight: cast(p + weight.offset), dx: cast(dx)) }
            return
        }
        let (oh, ow) = outputSize(height: h, width: w)
        let rows = n * oh * ow, kk = kernel * kernel * inChannels, o = outChannels
        // db = Σ_rows dy.
        let db = g + bias.offset
        db.update(repeating: 0, count: o)
        for r in 0 ..< rows { let d = dy + r * o; for j in 0 ..< o { db[j] += d[j] } }
        // dW' = dyᵀ · col  ([O, kk]), then back to OIHW.
        let a: UnsafePointer<T> = isPointwise ? x : UnsafePointer(im2col(x, n, h, w))
        let dwr = dCol.reserve(max(o * kk, isPointwise ? 0 : rows * kk))
        T.gemm(transA: true, transB: false, m: o, n: kk, k: rows, alpha: 1, a: dy, lda: o, b: a, ldb: kk,
               beta: 0, c: dwr, ldc: kk)
        let dw = g + weight.offset
        for oc in 0 ..< o { for ky in 0 ..< kernel { for kx in 0 ..< kernel { for c in 0 ..< inChannels {
            dw[((oc * inChannels + c) * kernel + ky) * kernel + kx] = dwr[oc * kk + (ky * kernel + kx) * inChannels + c]
        } } } }
        guard let dx else { return }
        let wr = reorderedWeights(p)
        if isPointwise {
            T.gemm(transA: false, transB: false, m: rows, n: kk, k: o, alpha: 1, a: dy, lda: o, b: wr, ldb: kk,
                   beta: 0, c: dx, ldc: kk)
            return
        }
        let dc = dCol.reserve(rows * kk)
        T.gemm(transA: false, transB: false, m: rows, n: kk, k: o, alpha: 1, a: dy, lda: o, b: wr, ldb: kk,
               beta: 0, c: dc, ldc: kk)
        // col2im: scatter-add the patch gradients.
        dx.update(repeating: 0, count: n * h * w * inChannels)
        for b in 0 ..< n { for oy in 0 ..< oh { for ox in 0 ..< ow {
            let row = dc + ((b * oh + oy) * ow + ox) * kk
            for ky in 0 ..< kernel {
                let iy = oy * stride + ky - padding
                if iy < 0 || iy >= h { continue }
                for kx in 0 ..< kernel {
                    let ix = ox * stride + kx - padding
                    if ix < 0 || ix >= w { continue }
                    let dst = dx + ((b * h + iy) * w + ix) * inChannels, src = row + (ky * kernel + kx) * inChannels
                    for c in 0 ..< inChannels { dst[c] += src[c] }
                }
            }
        } } }
    }

    private func reorderedWeights(_ p: UnsafePointer<T>) -> UnsafePointer<T> {
        let kk = kernel * kernel * inChannels
        let wr = wRe.reserve(outChannels * kk), wsrc = p + weight.offset
        for oc in 0 ..< outChannels { for c in 0 ..< inChannels { for ky in 0 ..< kernel { for kx in 0 ..< kernel {
            wr[oc * kk + (ky * kernel + kx) * inChannels + c] = wsrc[((oc * inChannels + c) * kernel + ky) * kernel + kx]
        } } } }
        return UnsafePointer(wr)
    }

    private func im2col(_ x: UnsafePointer<T>, _ n: Int, _ h: Int, _ w: Int) -> UnsafeMutablePointer<T> {
        let (oh, ow) = outputSize(height: h, width: w)
        let kk = kernel * kernel * inChannels
        let c = col.reserve(n * oh * ow * kk)
        for b in 0 ..< n { for oy in 0 ..< oh { for ox in 0 ..< ow {
            let row = c + ((b * oh + oy) * ow + ox) * kk
            for ky in 0 ..< kernel {
                let iy = oy * stride + ky - padding
                for kx in 0 ..< kernel {
                    let ix = ox * stride + kx - padding
                    let dst = row + (ky * kernel + kx) * inChannels
                    if iy < 0 || iy >= h || ix < 0 || ix >= w {
                        dst.update(repeating: 0, count: inChannels)
                    } else {
                        dst.update(from: x + ((b * h + iy) * w + ix) * inChannels, count: inChannels)
                    }
                }
            }
        } } }
        return c
    }
}

@inline(__always)
func cast<A, B>(_ p: UnsafePointer<A>) -> UnsafePointer<B> { UnsafeRawPointer(p).assumingMemoryBound(to: B.self) }
@inline(__always)
func cast<A, B>(_ p: UnsafeMutablePointer<A>) -> UnsafeMutablePointer<B> { UnsafeMutableRawPointer(p).assumingMemoryBound(to: B.self) }

import Foundation

// The numerical core of MLPScore: layer offsets, elementwise SIMD kernels, the inference pass
// (score and forward-mode JVP at one time) and the training pass (forward with stored
// activations, hand-written backward), generic over the compute precision (MLPKernelScalar:
// float64 through BLAS.gemm, float32 through oneDNN's sgemm). All matrix products run over whole batches.

/// Offsets of every tensor in the flat parameter vector, by role.
struct MLPLayout: Sendable {
    let d, h, f, blocks: Int
    let embedInBlocks: Bool
    let freq, embW, embB, inW, inB: Int
    let w1, b1, wt, bt, w2, b2: [Int]
    let outW, outB: Int
    /// Offset of `label.embedding` (`[K + 1, H]`), or -1 for an unconditional network.
    let labEmb: Int
    let count: Int

    init(_ a: MLPArchitecture) {
        d = a.dimension; h = a.hiddenWidth; f = a.fourierFeatures; blocks = a.residualBlocks
        embedInBlocks = a.timeEmbeddingInBlocks
        var o = [String: Int]()
        for s in a.parameterSpecs { o[s.name] = s.offset }
        freq = o["embed.W"]!; embW = o["embed.dense.weight"]!; embB = o["embed.dense.bias"]!
        inW = o["input.weight"]!; inB = o["input.bias"]!
        w1 = (0 ..< a.residualBlocks).map { o["blocks.\($0).dense1.weight"]! }
        b1 = (0 ..< a.residualBlocks).map { o["blocks.\($0).dense1.bias"]! }
        wt = (0 ..< a.residualBlocks).map { o["blocks.\($0).temb.weight"] ?? -1 }
        bt = (0 ..< a.residualBlocks).map { o["blocks.\($0).temb.bias"] ?? -1 }
        w2 = (0 ..< a.residualBlocks).map { o["blocks.\($0).dense2.weight"]! }
        b2 = (0 ..< a.residualBlocks).map { o["blocks.\($0).dense2.bias"]! }
        outW = o["output.weight"]!; outB = o["output.bias"]!
        labEmb = o["label.embedding"] ?? -1
        count = a.parameterCount
    }
}

// MARK: - Linear layers (weights [out, in], row-major, as torch.nn.Linear)

/// `y (=|+=) x · Wᵀ` for `rows` rows: `x` is `rows × in`, `W` is `out × in`.
@inline(__always)
func linearForward<T: MLPKernelScalar>(_ x: UnsafePointer<T>, rows: Int, inDim: Int, weight w: UnsafePointer<T>, outDim: Int,
                                     into y: UnsafeMutablePointer<T>, accumulate: Bool) {
    T.mlpGemm(transA: false, transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim,
              beta: accumulate ? 1 : 0, c: y, ldc: outDim)
}

/// `dW += gᵀ · x` (`g` is `rows × out`).
@inline(__always)
func linearWeightGradient<T: MLPKernelScalar>(_ g: UnsafePointer<T>, _ x: UnsafePointer<T>, rows: Int, inDim: Int, outDim: Int,
                                            into dw: UnsafeMutablePointer<T>) {
    T.mlpGemm(transA: true, transB: false, m: outDim, n: inDim, k: rows, a: g, lda: outDim, b: x, ldb: inDim,
              beta: 1, c: dw, ldc: inDim)
}

/// `gx (=|+=) g · W`.
@inline(__always)
func linearInputGradient<T: MLPKernelScalar>(_ g: UnsafePointer<T>, rows: Int, weight w: UnsafePointer<T>, inDim: Int, outDim: Int,
                                           into gx: UnsafeMutablePointer<T>, accumulate: Bool) {
    T.mlpGemm(transA: false, transB: false, m: rows, n: inDim, k: outDim, a: g, lda: outDim, b: w, ldb: inDim,
              beta: accumulate ? 1 : 0, c: gx, ldc: inDim)
}

// MARK: - Elementwise kernels

typealias V4 = SIMD4<Double>

/// Elements per parallel chunk of the elementwise kernels.
let elementGrain = 1 << 15

@inline(__always) func load4(_ p: UnsafePointer<Double>, _ i: Int) -> V4 {
    UnsafeRawPointer(p + i).loadUnaligned(as: V4.self)
}
@inline(__always) func store4(_ v: V4, _ p: UnsafeMutablePointer<Double>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: V4.self)
}

/// `−|a|` by setting the sign bits (concrete SIMD: no generic helper on the hot path).
@inline(__always) func negativeAbs4(_ a: V4) -> V4 {
    unsafeBitCast(unsafeBitCast(a, to: SIMD4<UInt64>.self) | SIMD4<UInt64>(repeating: 0x8000_0000_0000_0000), to: V4.self)
}

/// σ(a) = 1/(1+e^{−a}), from `e^{−|a|}` (never overflows).
@inline(__always) func sigmoid4(_ a: V4) -> V4 {
    let e = expNonPositive(negativeAbs4(a))
    let r = 1 / (1 + e)
    return (e * r).replacing(with: r, where: a .>= 0)
}

@inline(__always) func loadTail(_ p: UnsafePointer<Double>, _ i: Int, _ k: Int) -> V4 {
    var v = V4(repeating: 0)
    for j in 0 ..< k { v[j] = p[i &+ j] }
    return v
}
@inline(__always) func storeTail(_ v: V4, _ p: UnsafeMutablePointer<Double>, _ i: Int, _ k: Int) {
    for j in 0 ..< k { p[i &+ j] = v[j] }
}

/// `act = SiLU(pre)` and, when given, `sig = σ(pre)`, over `n` values.
func siluForward(_ pre: UnsafePointer<Double>, act: UnsafeMutablePointer<Double>, sig: UnsafeMutablePointer<Double>?, _ n: Int) {
    Parallel.forEachChunk(n, grain: elementGrain) { r in
        var i = r.lowerBound
        let end = r.upperBound
        if let sig {
            while i &+ 4 <= end {
                let a = load4(pre, i), s = sigmoid4(a)
                store4(a * s, act, i); store4(s, sig, i)
                i &+= 4
            }
            if i < end {
                let k = end &- i, a = loadTail(pre, i, k), s = sigmoid4(a)
                storeTail(a * s, act, i, k); storeTail(s, sig, i, k)
            }
        } else {
            while i &+ 4 <= end {
                let a = load4(pre, i)
                store4(a * sigmoid4(a), act, i)
                i &+= 4
            }
            if i < end {
                let k = end &- i, a = loadTail(pre, i, k)
                storeTail(a * sigmoid4(a), act, i, k)
            }
        }
    }
}

/// `out (=|+=) g · SiLU'(pre)` with `SiLU'(a) = σ(a) (1 + a (1 − σ(a)))`, from stored `sig = σ(pre)`.
func siluBackward(_ g: UnsafePointer<Double>, pre: UnsafePointer<Double>, sig: UnsafePointer<Double>,
                  into out: UnsafeMutablePointer<Double>, _ n: Int, accumulate: Bool) {
    Parallel.forEachChunk(n, grain: elementGrain) { r in
        var i = r.lowerBound
        let end = r.upperBound
        while i &+ 4 <= end {
            let a = load4(pre, i), s = load4(sig, i)
            let v = load4(g, i) * s * (1 + a * (1 - s))
            store4(accumulate ? load4(out, i) + v : v, out, i)
            i &+= 4
        }
        if i < end {
            let k = end &- i
            let a = loadTail(pre, i, k), s = loadTail(sig, i, k)
            let v = loadTail(g, i, k) * s * (1 + a * (1 - s))
            storeTail(accumulate ? loadTail(out, i, k) + v : v, out, i, k)
        }
    }
}

/// `act = SiLU(pre)`, and the tangent `dact = SiLU'(pre) · dpre`.
func siluTangent(_ pre: UnsafePointer<Double>, _ dpre: UnsafePointer<Double>,
                 act: UnsafeMutablePointer<Double>, dact: UnsafeMutablePointer<Double>, _ n: Int) {
    Parallel.forEachChunk(n, grain: elementGrain) { r in
        var i = r.lowerBound
        let end = r.upperBound
        while i &+ 4 <= end {
            let a = load4(pre, i), s = sigmoid4(a)
            store4(a * s, act, i)
            store4(load4(dpre, i) * s * (1 + a * (1 - s)), dact, i)
            i &+= 4
        }
        if i < end {
            let k = end &- i
            let a = loadTail(pre, i, k), s = sigmoid4(a)
            storeTail(a * s, act, i, k)
            storeTail(loadTail(dpre, i, k) * s * (1 + a * (1 - s)), dact, i, k)
        }
    }
}

/// `dst[r] = bias (+ other[r])` for `rows` rows of `width`.
func fillRows<T: FloatingPoint>(_ dst: UnsafeMutablePointer<T>, rows: Int, width: Int, bias: UnsafePointer<T>,
                                plus other: UnsafePointer<T>? = nil) {
    Parallel.forEachChunk(rows, grain: max(1, elementGrain / max(width, 1))) { range in
        for r in range {
            let o = dst + r &* width
            if let other {
                let q = other + r &* width
                for j in 0 ..< width { o[j] = bias[j] + q[j] }
            } else {
                o.update(from: bias, count: width)
            }
        }
    }
}

/// `acc[j] += Σ_r g[r, j]` (sequential over rows: the result does not depend on the thread count).
func addColumnSums<T: FloatingPoint>(_ g: UnsafePointer<T>, rows: Int, width: Int, into acc: UnsafeMutablePointer<T>) {
    for r in 0 ..< rows {
        let q = g + r &* width
        for j in 0 ..< width { acc[j] += q[j] }
    }
}

/// `out[r, k] = sin(2π W_k τ_r)`, `out[r, F + k] = cos(2π W_k τ_r)`, computed in float64 (the
/// frequencies and times are float64) and rounded once to `T`.
func fourierFeatures<T: BinaryFloatingPoint>(_ tau: UnsafePointer<Double>, rows: Int, frequencies w: UnsafePointer<Double>, f: Int,
                                             into out: UnsafeMutablePointer<T>) {
    Parallel.forEachChunk(rows, grain: max(1, 4096 / max(f, 1))) { range in
        for r in range {
            let o = out + r &* 2 &* f, t = 2 * Double.pi * tau[r]
            for k in 0 ..< f {
                let a = t * w[k]
                o[k] = T(Foundation.sin(a))
                o[f &+ k] = T(Foundation.cos(a))
            }
        }
    }
}

/// `SiLU(a)` of one value.
@inline(__always) func siluScalar(_ a: Double) -> Double { a * sigmoid4(V4(repeating: a))[0] }

/// `dst[i] = T(src[i])` for `n` values (a no-op copy when the types agree).
@inline(__always)
func convert<S: BinaryFloatingPoint, T: BinaryFloatingPoint>(_ src: UnsafePointer<S>, to dst: UnsafeMutablePointer<T>, _ n: Int) {
    for i in 0 ..< n { dst[i] = T(src[i]) }
}

// MARK: - Inference: score and JVP at one time

/// Scratch and time-folded biases for evaluating the network at one τ on chunks of rows, in the
/// compute precision `T` (``MLPPrecision``).
///
/// At a fixed time the embedding is one vector, so it is folded into biases once, in float64 from
/// the float64 parameters: `bias0 = input.bias + temb`, `biasU_i = dense1.bias + temb.bias + temb.weight · temb`,
/// then rounded to `T`. With a time per row (``MLPScore/score(_:at:labels:)-(_,[Double],_)``) each
/// distinct time gets its own folded biases, the same arithmetic, and every row reads its time's.
final class MLPInferenceContext<T: MLPKernelScalar> {
    let l: MLPLayout
    /// The parameters in `T` (the float64 ones themselves when `T` is `Double`).
    let p: UnsafePointer<T>
    let capacity: Int
    let buffer: UnsafeMutablePointer<T>
    let h, act, u: UnsafeMutablePointer<T>
    let dh, dact, du: UnsafeMutablePointer<T>
    let bias0, biasU: UnsafeMutablePointer<T>
    /// Per-row times: the bias slot (distinct time) of each row of the whole call; empty for one time.
    let rowSlot: [Int]
    /// Values per bias slot: `bias0` then the blocks' `biasU`.
    var slotStride: Int { l.h * (1 + l.blocks) }
    /// `T` ≠ `Double`: the chunk's inputs and outputs in `T` (rows × D each: x, v, out, jvp).
    let staging: UnsafeMutablePointer<T>?

    /// - Parameters:
    ///   - pd: the float64 parameters (the time embedding is computed from them).
    ///   - p: the same parameters in `T`.
    ///   - label: the label row of `label.embedding` to add (conditional networks), or nil.
    ///   - taus: one network time for all rows, or one per row of the call.
    init(layout l: MLPLayout, params pd: UnsafePointer<Double>, compute p: UnsafePointer<T>, taus: [Double], label: Int? = nil,
         capacity: Int, withTangent: Bool) {
        self.l = l; self.p = p; self.capacity = capacity
        var distinct: [Double] = [], slot: [Int] = [], seen: [Double: Int] = [:]
        for tau in taus {
            if let j = seen[tau] { slot.append(j) } else { seen[tau] = distinct.count; slot.append(distinct.count); distinct.append(tau) }
        }
        rowSlot = distinct.count > 1 ? slot : []
        let hw = l.h, slab = capacity * hw
        let total = (withTangent ? 6 : 3) * slab + hw * (1 + l.blocks) * distinct.count
        buffer = .allocate(capacity: total)
        h = buffer; act = buffer + slab; u = buffer + 2 * slab
        dh = withTangent ? buffer + 3 * slab : h
        dact = withTangent ? buffer + 4 * slab : act
        du = withTangent ? buffer + 5 * slab : u
        let base = buffer + (withTangent ? 6 : 3) * slab
        bias0 = base; biasU = base + hw
        staging = T.self == Double.self ? nil : .allocate(capacity: 4 * capacity * l.d)

        // Time embedding of one row per distinct time, in float64.
        let scratch = UnsafeMutablePointer<Double>.allocate(capacity: 2 * l.f + 2 * hw + hw * (1 + l.blocks))
        defer { scratch.deallocate() }
        let feat = scratch, temb = feat + 2 * l.f, tmp = temb + hw, b0 = tmp + hw, bU = b0 + hw
        for (slot, tau) in distinct.enumerated() {
            var t = tau
            fourierFeatures(&t, rows: 1, frequencies: pd + l.freq, f: l.f, into: feat)
            tmp.update(from: pd + l.embB, count: hw)
            linearForward(feat, rows: 1, inDim: 2 * l.f, weight: pd + l.embW, outDim: hw, into: tmp, accumulate: true)
            if let label, l.labEmb >= 0 {
                let e = pd + l.labEmb + label * hw
                for j in 0 ..< hw { tmp[j] += e[j] }
            }
            for j in 0 ..< hw { temb[j] = siluScalar(tmp[j]) }
            for j in 0 ..< hw { b0[j] = pd[l.inB + j] + temb[j] }
            for i in 0 ..< l.blocks {
                let b = bU + i * hw
                b.update(from: pd + l.b1[i], count: hw)
                if l.embedInBlocks {
                    for j in 0 ..< hw { b[j] += pd[l.bt[i] + j] }
                    linearForward(temb, rows: 1, inDim: hw, weight: pd + l.wt[i], outDim: hw, into: b, accumulate: true)
                }
            }
            convert(b0, to: bias0 + slot * slotStride, hw * (1 + l.blocks))
        }
    }

    deinit { buffer.deallocate(); staging?.deallocate() }

    /// `out = scale · net(x)` (with `bound`: `scale · B tanh(net / B)`) and, when `v` is given,
    /// `jvp` its derivative along `v`, for `rows ≤ capacity` float64 rows, rows `first ..< first + n`
    /// of the call: converted to `T` on the way in, the network in `T`, the output converted back
    /// and scaled in float64 (`scales`: one for all rows of the call, or one per row).
    func run(x: UnsafePointer<Double>, first: Int, rows n: Int, out: UnsafeMutablePointer<Double>,
             v: UnsafePointer<Double>?, jvp: UnsafeMutablePointer<Double>?, scales: [Double], bound: Double? = nil) {
        let nd = n * l.d
        if let staging {
            let xs = staging, vs = staging + capacity * l.d, os = vs + capacity * l.d, js = os + capacity * l.d
            convert(x, to: xs, nd)
            if let v { convert(v, to: vs, nd) }
            network(x: xs, first: first, rows: n, out: os, v: v == nil ? nil : UnsafePointer(vs), jvp: jvp == nil ? nil : js)
            convert(os, to: out, nd)
            if let jvp { convert(js, to: jvp, nd) }
        } else {
            // T is Double: no conversion.
            network(x: UnsafeRawPointer(x).assumingMemoryBound(to: T.self), first: first, rows: n,
                    out: UnsafeMutableRawPointer(out).assumingMemoryBound(to: T.self),
                    v: v.map { UnsafeRawPointer($0).assumingMemoryBound(to: T.self) },
                    jvp: jvp.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: T.self) })
        }
        if let bound {
            // out = B tanh(raw / B); its derivative 1 − tanh² scales the tangent.
            for i in 0 ..< nd {
                let th = Foundation.tanh(out[i] / bound)
                out[i] = bound * th
                if let jvp { jvp[i] *= 1 - th * th }
            }
        }
        if scales.count == 1 {
            let scale = scales[0]
            if scale != 1 { for i in 0 ..< nd { out[i] *= scale } }
            if let jvp, scale != 1 { for i in 0 ..< nd { jvp[i] *= scale } }
        } else {
            for r in 0 ..< n {
                let scale = scales[first + r]
                for i in r * l.d ..< (r + 1) * l.d { out[i] *= scale }
                if let jvp { for i in r * l.d ..< (r + 1) * l.d { jvp[i] *= scale } }
            }
        }
    }

    /// Fills `rows` rows of `dst` (rows `first…` of the call) with the folded bias at `offset` of a
    /// slot (0: the input layer's, `hw · (1 + i)`: block `i`'s), each row its own time's.
    private func fillBias(_ dst: UnsafeMutablePointer<T>, first: Int, rows: Int, offset: Int) {
        let hw = l.h
        if rowSlot.isEmpty { return fillRows(dst, rows: rows, width: hw, bias: bias0 + offset) }
        let stride = slotStride
        Parallel.forEachChunk(rows, grain: max(1, elementGrain / max(hw, 1))) { range in
            for r in range { (dst + r &* hw).update(from: bias0 + rowSlot[first + r] * stride + offset, count: hw) }
        }
    }

    /// `out = net(x)` and, when `v` is given, `jvp = (∂net/∂x) v`, in `T`.
    func network(x: UnsafePointer<T>, first: Int, rows n: Int, out: UnsafeMutablePointer<T>, v: UnsafePointer<T>?, jvp: UnsafeMutablePointer<T>?) {
        let hw = l.h, d = l.d, nh = n * hw
        let tangent = v != nil
        fillBias(h, first: first, rows: n, offset: 0)
        linearForward(x, rows: n, inDim: d, weight: p + l.inW, outDim: hw, into: h, accumulate: true)
        if let v { linearForward(v, rows: n, inDim: d, weight: p + l.inW, outDim: hw, into: dh, accumulate: false) }
        for i in 0 ..< l.blocks {
            if tangent { T.siluTangent(h, dh, act: act, dact: dact, nh) } else { T.siluForward(h, act: act, sig: nil, nh) }
            fillBias(u, first: first, rows: n, offset: hw * (1 + i))
            linearForward(act, rows: n, inDim: hw, weight: p + l.w1[i], outDim: hw, into: u, accumulate: true)
            if tangent { linearForward(dact, rows: n, inDim: hw, weight: p + l.w1[i], outDim: hw, into: du, accumulate: false) }
            if tangent { T.siluTangent(u, du, act: act, dact: dact, nh) } else { T.siluForward(u, act: act, sig: nil, nh) }
            addRowBias(h, rows: n, width: hw, bias: p + l.b2[i])
            linearForward(act, rows: n, inDim: hw, weight: p + l.w2[i], outDim: hw, into: h, accumulate: true)
            if tangent { linearForward(dact, rows: n, inDim: hw, weight: p + l.w2[i], outDim: hw, into: dh, accumulate: true) }
        }
        if tangent { T.siluTangent(h, dh, act: act, dact: dact, nh) } else { T.siluForward(h, act: act, sig: nil, nh) }
        fillRows(out, rows: n, width: d, bias: p + l.outB)
        linearForward(act, rows: n, inDim: hw, weight: p + l.outW, outDim: d, into: out, accumulate: true)
        if let jvp {
            linearForward(dact, rows: n, inDim: hw, weight: p + l.outW, outDim: d, into: jvp, accumulate: false)
        }
    }
}

/// `dst[r] += bias` for every row.
func addRowBias<T: FloatingPoint>(_ dst: UnsafeMutablePointer<T>, rows: Int, width: Int, bias: UnsafePointer<T>) {
    Parallel.forEachChunk(rows, grain: max(1, elementGrain / max(width, 1))) { range in
        for r in range {
            let o = dst + r &* width
            for j in 0 ..< width { o[j] += bias[j] }
        }
    }
}

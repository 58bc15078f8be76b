import Foundation

// MARK: - Training: forward with stored activations, backward

/// The scratch memory of ``MLPScore``'s batched training pass (``DenoisingScoreNetwork``): the
/// float64 boundary (inputs, output, `∂loss/∂out`) and the pass's buffers in the model's compute
/// precision (``MLPPrecision``). One allocation per precision, reused across steps.
///
/// With ``MLPPrecision/float32`` the float64 parameters are rounded to float32 at the start of
/// every pass (a copy of `P` values: under 0.2 % of a pass's work at batch 128), the forward and
/// backward run in float32, and the float32 gradient is added into the trainer's float64 one.
public final class MLPTrainingWorkspace {
    let l: MLPLayout
    let capacity: Int
    /// Inputs `x` (`rows × D`) and per-row time inputs `τ`.
    let x, tau: UnsafeMutablePointer<Double>
    /// Per-row label rows of `label.embedding` (conditional networks; set by the caller).
    var labels: [Int]
    /// Network output, and `∂loss/∂out` (set by the caller before `backward`).
    let out, gOut: UnsafeMutablePointer<Double>
    /// With an output bound: `∂out/∂raw = 1 − tanh²(raw / B)` of the last forward.
    let outDeriv: UnsafeMutablePointer<Double>
    let f64: MLPTrainingBuffers<Double>?
    let f32: MLPTrainingBuffers<Float>?
    /// τ, and with float32 the boundary buffers above (x, out, gOut, outDeriv).
    let boundary: UnsafeMutablePointer<Double>
    /// Float32: the parameters and the gradient in float32.
    let parameters32, gradient32: UnsafeMutablePointer<Float>?

    init(layout l: MLPLayout, capacity: Int, precision: MLPPrecision = .float64) {
        self.l = l; self.capacity = capacity
        labels = [Int](repeating: 0, count: capacity)
        let c = capacity, d = l.d
        switch precision {
        case .float64:
            let b = MLPTrainingBuffers<Double>(layout: l, capacity: c)
            f64 = b; f32 = nil; parameters32 = nil; gradient32 = nil
            boundary = .allocate(capacity: c)
            boundary.initialize(repeating: 0, count: c)
            x = b.x; out = b.out; gOut = b.gOut; outDeriv = b.outDeriv; tau = boundary
        case .float32:
            let b = MLPTrainingBuffers<Float>(layout: l, capacity: c)
            f64 = nil; f32 = b
            boundary = .allocate(capacity: c * (4 * d + 1))
            boundary.initialize(repeating: 0, count: c * (4 * d + 1))
            x = boundary; out = boundary + c * d; gOut = boundary + 2 * c * d; outDeriv = boundary + 3 * c * d; tau = boundary + 4 * c * d
            let pg = UnsafeMutablePointer<Float>.allocate(capacity: 2 * l.count)
            pg.initialize(repeating: 0, count: 2 * l.count)
            parameters32 = pg; gradient32 = pg + l.count
        }
    }

    deinit { boundary.deallocate(); parameters32?.deallocate() }

    /// `out = net(x, τ)` (bounded to `B tanh(net / B)` with a bound) for the first `n` rows, keeping what `backward` needs.
    func forward(_ p: UnsafePointer<Double>, rows n: Int, bound: Double? = nil) {
        precondition(n <= capacity)
        let nd = n * l.d
        if let f64 {
            f64.forward(p, frequencies: p + l.freq, tau: tau, labels: labels, rows: n)
        } else if let f32, let p32 = parameters32 {
            convert(p, to: p32, l.count)
            convert(x, to: f32.x, nd)
            f32.forward(p32, frequencies: p + l.freq, tau: tau, labels: labels, rows: n)
            convert(f32.out, to: out, nd)
        }
        if let bound {
            for i in 0 ..< nd {
                let th = Foundation.tanh(out[i] / bound)
                out[i] = bound * th
                outDeriv[i] = 1 - th * th
            }
        }
    }

    /// `gOut ← gOut · ∂out/∂raw` after a bounded forward (call before `backward`).
    func applyOutputBound(rows n: Int) {
        for i in 0 ..< n * l.d { gOut[i] *= outDeriv[i] }
    }

    /// Adds `∂loss/∂θ` to `g` (flat, parameter order) from `gOut = ∂loss/∂out` of the first `n`
    /// rows, after `forward` on the same rows and parameters. `embed.W` gets no gradient (a buffer).
    func backward(_ p: UnsafePointer<Double>, gradient g: UnsafeMutablePointer<Double>, rows n: Int) {
        if let f64 {
            f64.backward(p, gradient: g, rows: n)
        } else if let f32, let p32 = parameters32, let g32 = gradient32 {
            convert(gOut, to: f32.gOut, n * l.d)
            g32.update(repeating: 0, count: l.count)
            f32.backward(p32, gradient: g32, rows: n)
            for j in 0 ..< l.count { g[j] += Double(g32[j]) }
        }
    }
}

/// Buffers of one training pass over up to `capacity` rows in `T`: inputs, every activation the
/// backward pass needs, and gradient scratch. One allocation, reused across steps.
final class MLPTrainingBuffers<T: MLPKernelScalar> {
    let l: MLPLayout
    let capacity: Int
    let buffer: UnsafeMutablePointer<T>
    let x, out, gOut, outDeriv: UnsafeMutablePointer<T>
    /// The label rows of the last `forward` (conditional networks).
    var labels: [Int] = []
    let feat, tembPre, tembSig, temb: UnsafeMutablePointer<T>
    let hPre, hSig, hAct: [UnsafeMutablePointer<T>]     // L + 1 each
    let uPre, uSig, uAct: [UnsafeMutablePointer<T>]     // L each
    let gH, gA, gU, gTemb: UnsafeMutablePointer<T>
    let biasTmp: UnsafeMutablePointer<T>

    init(layout l: MLPLayout, capacity: Int) {
        self.l = l; self.capacity = capacity
        let c = capacity, hw = l.h, d = l.d, L = l.blocks
        let slab = c * hw
        let total = c * 4 * d + c * 2 * l.f + slab * (3 + 3 * (L + 1) + 3 * L + 4) + hw
        buffer = .allocate(capacity: total)
        buffer.initialize(repeating: 0, count: total)
        var cursor = buffer
        func take(_ n: Int) -> UnsafeMutablePointer<T> { defer { cursor += n }; return cursor }
        x = take(c * d); out = take(c * d); gOut = take(c * d); outDeriv = take(c * d)
        feat = take(c * 2 * l.f)
        tembPre = take(slab); tembSig = take(slab); temb = take(slab)
        hPre = (0 ... L).map { _ in take(slab) }
        hSig = (0 ... L).map { _ in take(slab) }
        hAct = (0 ... L).map { _ in take(slab) }
        uPre = (0 ..< L).map { _ in take(slab) }
        uSig = (0 ..< L).map { _ in take(slab) }
        uAct = (0 ..< L).map { _ in take(slab) }
        gH = take(slab); gA = take(slab); gU = take(slab); gTemb = take(slab)
        biasTmp = take(hw)
    }

    deinit { buffer.deallocate() }

    /// `out = net(x, τ)` (raw, before any output bound) for the first `n` rows, keeping what
    /// `backward` needs. `w` are the float64 Fourier frequencies, `tau` the float64 time inputs.
    func forward(_ p: UnsafePointer<T>, frequencies w: UnsafePointer<Double>, tau: UnsafePointer<Double>, labels: [Int], rows n: Int) {
        precondition(n <= capacity)
        self.labels = labels
        let hw = l.h, d = l.d, nh = n * hw, L = l.blocks
        fourierFeatures(tau, rows: n, frequencies: w, f: l.f, into: feat)
        fillRows(tembPre, rows: n, width: hw, bias: p + l.embB)
        linearForward(feat, rows: n, inDim: 2 * l.f, weight: p + l.embW, outDim: hw, into: tembPre, accumulate: true)
        if l.labEmb >= 0 {
            for r in 0 ..< n {
                let e = p + l.labEmb + labels[r] * hw, o = tembPre + r * hw
                for j in 0 ..< hw { o[j] += e[j] }
            }
        }
        T.siluForward(tembPre, act: temb, sig: tembSig, nh)
        fillRows(hPre[0], rows: n, width: hw, bias: p + l.inB, plus: temb)
        linearForward(x, rows: n, inDim: d, weight: p + l.inW, outDim: hw, into: hPre[0], accumulate: true)
        for i in 0 ..< L {
            T.siluForward(hPre[i], act: hAct[i], sig: hSig[i], nh)
            if l.embedInBlocks {
                for j in 0 ..< hw { biasTmp[j] = p[l.b1[i] + j] + p[l.bt[i] + j] }
                fillRows(uPre[i], rows: n, width: hw, bias: biasTmp)
                linearForward(temb, rows: n, inDim: hw, weight: p + l.wt[i], outDim: hw, into: uPre[i], accumulate: true)
            } else {
                fillRows(uPre[i], rows: n, width: hw, bias: p + l.b1[i])
            }
            linearForward(hAct[i], rows: n, inDim: hw, weight: p + l.w1[i], outDim: hw, into: uPre[i], accumulate: true)
            T.siluForward(uPre[i], act: uAct[i], sig: uSig[i], nh)
            fillRows(hPre[i + 1], rows: n, width: hw, bias: p + l.b2[i], plus: hPre[i])
            linearForward(uAct[i], rows: n, inDim: hw, weight: p + l.w2[i], outDim: hw, into: hPre[i + 1], accumulate: true)
        }
        T.siluForward(hPre[L], act: hAct[L], sig: hSig[L], nh)
        fillRows(out, rows: n, width: d, bias: p + l.outB)
        linearForward(hAct[L], rows: n, inDim: hw, weight: p + l.outW, outDim: d, into: out, accumulate: true)
    }

    /// Adds `∂loss/∂θ` to `g` (flat, parameter order) from `gOut = ∂loss/∂out` of the first `n`
    /// rows, after `forward` on the same rows and parameters. `embed.W` gets no gradient (a buffer).
    func backward(_ p: UnsafePointer<T>, gradient g: UnsafeMutablePointer<T>, rows n: Int) {
        let hw = l.h, d = l.d, nh = n * hw, L = l.blocks
        // out = output(hAct[L])
        linearWeightGradient(gOut, hAct[L], rows: n, inDim: hw, outDim: d, into: g + l.outW)
        addColumnSums(gOut, rows: n, width: d, into: g + l.outB)
        linearInputGradient(gOut, rows: n, weight: p + l.outW, inDim: hw, outDim: d, into: gA, accumulate: false)
        T.siluBackward(gA, pre: hPre[L], sig: hSig[L], into: gH, nh, accumulate: false)
        gTemb.update(repeating: 0, count: nh)
        for i in stride(from: L - 1, through: 0, by: -1) {
            // hPre[i+1] = hPre[i] + dense2(uAct[i])
            linearWeightGradient(gH, uAct[i], rows: n, inDim: hw, outDim: hw, into: g + l.w2[i])
            addColumnSums(gH, rows: n, width: hw, into: g + l.b2[i])
            linearInputGradient(gH, rows: n, weight: p + l.w2[i], inDim: hw, outDim: hw, into: gA, accumulate: false)
            T.siluBackward(gA, pre: uPre[i], sig: uSig[i], into: gU, nh, accumulate: false)
            // uPre[i] = dense1(hAct[i]) + temb(temb)
            linearWeightGradient(gU, hAct[i], rows: n, inDim: hw, outDim: hw, into: g + l.w1[i])
            addColumnSums(gU, rows: n, width: hw, into: g + l.b1[i])
            if l.embedInBlocks {
                linearWeightGradient(gU, temb, rows: n, inDim: hw, outDim: hw, into: g + l.wt[i])
                addColumnSums(gU, rows: n, width: hw, into: g + l.bt[i])
                linearInputGradient(gU, rows: n, weight: p + l.wt[i], inDim: hw, outDim: hw, into: gTemb, accumulate: true)
            }
            linearInputGradient(gU, rows: n, weight: p + l.w1[i], inDim: hw, outDim: hw, into: gA, accumulate: false)
            T.siluBackward(gA, pre: hPre[i], sig: hSig[i], into: gH, nh, accumulate: true)
        }
        // hPre[0] = input(x) + temb
        linearWeightGradient(gH, x, rows: n, inDim: d, outDim: hw, into: g + l.inW)
        addColumnSums(gH, rows: n, width: hw, into: g + l.inB)
        for k in 0 ..< nh { gTemb[k] += gH[k] }
        // temb = SiLU(embed.dense(feat))
        T.siluBackward(gTemb, pre: tembPre, sig: tembSig, into: gA, nh, accumulate: false)
        linearWeightGradient(gA, feat, rows: n, inDim: 2 * l.f, outDim: hw, into: g + l.embW)
        addColumnSums(gA, rows: n, width: hw, into: g + l.embB)
        if l.labEmb >= 0 {
            for r in 0 ..< n {
                let ge = g + l.labEmb + labels[r] * hw, q = gA + r * hw
                for j in 0 ..< hw { ge[j] += q[j] }
            }
        }
    }
}

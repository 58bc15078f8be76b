/// The DDPM U-Net (Ho et al. 2020, App. B; Song et al. 2021's DDPM++ without its extras), laid out
/// and named as diffusers' `UNet2DModel` so that its weights map one-to-one (``ParameterLayout``):
///
///     emb = time_embedding(sinusoid(τ)) [+ class_embedding[label]];   e = SiLU(emb)
///     h = conv_in(x);  skips = [h]
///     down level i: per block h = resnet(h, e) [→ attention];  skips += h;  h = downsample(h), skips += h  (not last)
///     mid: resnet, attention (optional), resnet
///     up level i (reversed): per block (layers + 1) h = resnet(cat(h, skips.pop()), e) [→ attention];  upsample (not last)
///     out = conv_out(SiLU(conv_norm_out(h)))
///
/// Activations are NHWC inside; `forward` takes and returns NHWC. Float32 runs on oneDNN; the float64
/// instance is the reference the gradient tests check. Not thread-safe: one instance per thread
/// (every layer keeps its activations for `backward` and its buffers across calls).
public final class UNet<T: NetworkScalar> {
    public let configuration: UNetConfiguration
    public let layout: ParameterLayout
    /// Flat parameters and gradients (order of ``layout``).
    public let parameters: UnsafeMutablePointer<T>
    public let gradients: UnsafeMutablePointer<T>
    public var parameterCount: Int { layout.count }

    struct DownLevel { var resnets: [ResnetBlock2D<T>]; var attentions: [Attention<T>]; var downsampler: Downsample2D<T>? }
    struct UpLevel { var resnets: [ResnetBlock2D<T>]; var attentions: [Attention<T>]; var upsampler: Upsample2D<T>? }

    let timeProj: SinusoidalTimesteps
    let timeEmbedding: TimestepEmbedding<T>
    let classEmbedding: ParameterRef?
    let convIn: Conv2d<T>
    let down: [DownLevel]
    let midResnets: [ResnetBlock2D<T>]
    let midAttention: Attention<T>?
    let up: [UpLevel]
    let convNormOut: GroupNorm<T>
    let convOut: Conv2d<T>

    // Forward trace and buffers.
    private let inputCopy = NetworkBuffer<T>(), tIn = NetworkBuffer<T>(), embAct = NetworkBuffer<T>(), embCopy = NetworkBuffer<T>(), dEmbAct = NetworkBuffer<T>()
    private let convInOut = NetworkBuffer<T>(), normOut = NetworkBuffer<T>(), actOut = NetworkBuffer<T>(), output = NetworkBuffer<T>()
    private let dAct = NetworkBuffer<T>(), dNorm = NetworkBuffer<T>(), dInput = NetworkBuffer<T>()
    private var catBuffers: [[NetworkBuffer<T>]] = []
    private var skipGrads: [NetworkBuffer<T>] = []
    private var trace = Trace()
    private var lastLabels: [Int]? = nil
    private var lastBatch = 0

    struct Trace {
        var x: UnsafePointer<T>? = nil
        var resIn: [[UnsafeMutablePointer<T>]] = [], attnIn: [[UnsafeMutablePointer<T>]] = [], downIn: [UnsafeMutablePointer<T>?] = []
        var midIn: [UnsafeMutablePointer<T>] = [], midAttnIn: UnsafeMutablePointer<T>? = nil
        var upAttnIn: [[UnsafeMutablePointer<T>]] = [], upIn: [UnsafeMutablePointer<T>?] = [], upSkip: [[Int]] = []
        var last: UnsafeMutablePointer<T>? = nil
    }

    /// A network with all parameters zero (set them with ``initialize(seed:)`` or by name).
    /// - Throws: what ``UNetConfiguration/validate()`` throws.
    public convenience init(_ c: UNetConfiguration) throws {
        try c.validate()
        self.init(validated: c)
    }

    /// A network with all parameters zero for a configuration that passed
    /// ``UNetConfiguration/validate()`` (which the layers below rely on: it does not trap).
    init(validated c: UNetConfiguration) {
        configuration = c
        let L = ParameterLayout()
        layout = L
        let scratch = BackwardScratch<T>()
        let c0 = c.blockOutChannels[0], E = c.embeddingWidth, G = c.normGroups, eps = c.normEpsilon
        convIn = Conv2d("conv_in", in: c.channels, out: c0, kernel: 3, padding: 1, parameters: L)
        timeProj = SinusoidalTimesteps(dim: c0, flipSinToCos: c.flipSinToCos, freqShift: c.freqShift)
        timeEmbedding = L.scope("time_embedding") { TimestepEmbedding(in: c0, embedding: E, parameters: L) }
        classEmbedding = c.classCount > 0 ? L.add("class_embedding.weight", [c.classCount + 1, E], initialization: .normal) : nil
        var downs: [DownLevel] = []
        var outCh = c0
        for i in 0 ..< c.levels {
            let inCh = outCh
            outCh = c.blockOutChannels[i]
            let last = i == c.levels - 1
            downs.append(L.scope("down_blocks.\(i)") {
                var lv = DownLevel(resnets: [], attentions: [], downsampler: nil)
                for j in 0 ..< c.layersPerBlock {
                    lv.resnets.append(L.scope("resnets.\(j)") {
                        ResnetBlock2D(in: j == 0 ? inCh : outCh, out: outCh, embedding: E, groups: G, epsilon: eps, dropout: c.dropout, parameters: L, scratch: scratch) })
                    if c.attentionLevels[i] {
                        lv.attentions.append(L.scope("attentions.\(j)") { Attention(channels: outCh, heads: c.attentionHeads(channels: outCh), groups: G, epsilon: eps, parameters: L) })
                    }
                }
                if !last { lv.downsampler = L.scope("downsamplers.0") { Downsample2D(channels: outCh, padding: c.downsamplePadding, parameters: L) } }
                return lv
            })
        }
        down = downs
        let cm = c.blockOutChannels.last!
        var mids: [ResnetBlock2D<T>] = []
        var midAttn: Attention<T>? = nil
        L.scope("mid_block") {
            mids.append(L.scope("resnets.0") { ResnetBlock2D(in: cm, out: cm, embedding: E, groups: G, epsilon: eps, dropout: c.dropout, parameters: L, scratch: scratch) })
            if c.midBlockAttention { midAttn = L.scope("attentions.0") { Attention(channels: cm, heads: c.attentionHeads(channels: cm), groups: G, epsilon: eps, parameters: L) } }
            mids.append(L.scope("resnets.1") { ResnetBlock2D(in: cm, out: cm, embedding: E, groups: G, epsilon: eps, dropout: c.dropout, parameters: L, scratch: scratch) })
        }
        midResnets = mids; midAttention = midAttn
        let rev = Array(c.blockOutChannels.reversed())
        var ups: [UpLevel] = []
        outCh = rev[0]
        for u in 0 ..< c.levels {
            let prevOut = outCh
            outCh = rev[u]
            let inCh = rev[min(u + 1, c.levels - 1)]
            let level = c.levels - 1 - u
            let last = u == c.levels - 1
            ups.append(L.scope("up_blocks.\(u)") {
                var lv = UpLevel(resnets: [], attentions: [], upsampler: nil)
                for j in 0 ... c.layersPerBlock {
                    let skipCh = j == c.layersPerBlock ? inCh : outCh
                    let resIn = j == 0 ? prevOut : outCh
                    lv.resnets.append(L.scope("resnets.\(j)") {
                        ResnetBlock2D(in: resIn + skipCh, out: outCh, embedding: E, groups: G, epsilon: eps, dropout: c.dropout, parameters: L, scratch: scratch) })
                    if c.attentionLevels[level] {
                        lv.attentions.append(L.scope("attentions.\(j)") { Attention(channels: outCh, heads: c.attentionHeads(channels: outCh), groups: G, epsilon: eps, parameters: L) })
                    }
                }
                if !last { lv.upsampler = L.scope("upsamplers.0") { Upsample2D(channels: outCh, parameters: L, scratch: scratch) } }
                return lv
            })
        }
        up = ups
        convNormOut = GroupNorm("conv_norm_out", channels: c0, groups: G, epsilon: eps, parameters: L)
        convOut = Conv2d("conv_out", in: c0, out: c.channels, kernel: 3, padding: 1, parameters: L)
        parameters = .allocate(capacity: max(L.count, 1))
        parameters.initialize(repeating: 0, count: max(L.count, 1))
        gradients = .allocate(capacity: max(L.count, 1))
        gradients.initialize(repeating: 0, count: max(L.count, 1))
    }

    deinit { parameters.deallocate(); gradients.deallocate() }

    /// PyTorch's default initialisation (``ParameterInit``), drawn from the seed's Philox streams
    /// (one stream per tensor, so a tensor's values do not depend on the others).
    public func initialize(seed: UInt64) {
        layout.initialize(parameters, seed: seed, purpose: 0x554E_4554)   // "UNET"
    }

    /// Total multiply–adds of the convolutions in one forward pass for `n` images.
    public func convolutionMultiplyAdds(batch n: Int) -> Int {
        var total = 0, s = configuration.imageSize
        total += convIn.multiplyAdds(batch: n, height: s, width: s)
        func res(_ r: ResnetBlock2D<T>, _ s: Int) -> Int {
            r.conv1.multiplyAdds(batch: n, height: s, width: s) + r.conv2.multiplyAdds(batch: n, height: s, width: s)
                + (r.convShortcut?.multiplyAdds(batch: n, height: s, width: s) ?? 0)
        }
        for lv in down {
            for r in lv.resnets { total += res(r, s) }
            if let d = lv.downsampler { total += d.conv.multiplyAdds(batch: n, height: s, width: s); s /= 2 }
        }
        for r in midResnets { total += res(r, s) }
        for lv in up {
            for r in lv.resnets { total += res(r, s) }
            if let u = lv.upsampler { s *= 2; total += u.conv.multiplyAdds(batch: n, height: s, width: s) }
        }
        total += convOut.multiplyAdds(batch: n, height: s, width: s)
        return total
    }

    /// The oneDNN implementation names of the network's 3×3 convolutions at batch `n` (distinct).
    public func convolutionImplementations(batch n: Int) -> [String] {
        var names = Set<String>()
        let s = configuration.imageSize
        names.formUnion(convIn.implementations(batch: n, height: s, width: s))
        names.formUnion(down[0].resnets[0].conv1.implementations(batch: n, height: s, width: s))
        return names.sorted()
    }

    /// The network output (NHWC `[n, S, S, channels]`, a buffer owned by the network and valid until
    /// the next call) for NHWC input `x`, network times `tau` (one per image) and optional labels
    /// (`0..<K`, or `K` for the null label). With `dropoutSeed`, dropout is active (training).
    public func forward(_ x: UnsafePointer<T>, tau: [Double], labels: [Int]? = nil, dropoutSeed: UInt64? = nil) -> UnsafePointer<T> {
        // Callers in other modules reach the unspecialised generic code; route the two concrete
        // types to code specialised in this module (element loops are ~10× faster specialised).
        if T.self == Float.self {
            return cast(unsafeDowncast(self, to: UNet<Float>.self).forwardImpl(cast(x), tau: tau, labels: labels, dropoutSeed: dropoutSeed))
        }
        if T.self == Double.self {
            return cast(unsafeDowncast(self, to: UNet<Double>.self).forwardImpl(cast(x), tau: tau, labels: labels, dropoutSeed: dropoutSeed))
        }
        return forwardImpl(x, tau: tau, labels: labels, dropoutSeed: dropoutSeed)
    }

    func forwardImpl(_ x: UnsafePointer<T>, tau: [Double], labels: [Int]?, dropoutSeed: UInt64?) -> UnsafePointer<T> {
        let c = configuration, n = tau.count, S = c.imageSize, c0 = c.blockOutChannels[0], E = c.embeddingWidth
        let p = UnsafePointer(parameters)
        lastBatch = n; lastLabels = labels
        var t = Trace()
        // Keep a copy of the input: backward needs it, and the caller's pointer may not outlive the call.
        let xc = inputCopy.reserve(n * S * S * c.channels)
        xc.update(from: x, count: n * S * S * c.channels)
        t.x = UnsafePointer(xc)
        // Time (and class) embedding.
        let ti = tIn.reserve(n * c0)
        timeProj.forward(tau, into: ti)
        let emb = timeEmbedding.forward(ti, rows: n, parameters: p)
        if let ce = classEmbedding {
            precondition(labels?.count == n, "UNet: a class-conditional network needs one label per image")
            for (b, l) in labels!.enumerated() {
                precondition(l >= 0 && l <= c.classCount, "UNet: label \(l) outside 0...\(c.classCount)")
                let row = p + ce.offset + l * E, e = emb + b * E
                for k in 0 ..< E { e[k] += row[k] }
            }
        }
        let ec = embCopy.reserve(n * E); ec.update(from: emb, count: n * E)
        let ea = embAct.reserve(n * E)
        SiLU<T>.forward(emb, count: n * E, into: ea)
        let eaC = UnsafePointer(ea)
        var seedCounter: UInt64 = 0
        func nextSeed() -> UInt64? { guard let s = dropoutSeed else { return nil }; seedCounter += 1; return s &+ seedCounter &* 0xD1B5_4A32_D192_ED03 }

        var h = convInOut.reserve(n * S * S * c0)
        convIn.forward(xc, batch: n, height: S, width: S, parameters: p, into: h)
        var skips: [(UnsafeMutablePointer<T>, Int)] = [(h, c0)]
        var s = S
        for (i, lv) in down.enumerated() {
            var ri: [UnsafeMutablePointer<T>] = [], ai: [UnsafeMutablePointer<T>] = []
            for (j, r) in lv.resnets.enumerated() {
                ri.append(h)
                h = r.forward(h, embAct: eaC, batch: n, height: s, width: s, parameters: p, dropoutSeed: nextSeed())
                if !lv.attentions.isEmpty { ai.append(h); h = lv.attentions[j].forward(h, batch: n, pixels: s * s, parameters: p) }
                skips.append((h, c.blockOutChannels[i]))
            }
            t.resIn.append(ri); t.attnIn.append(ai)
            if let d = lv.downsampler {
                t.downIn.append(h)
                h = d.forward(h, batch: n, height: s, width: s, parameters: p)
                s /= 2
                skips.append((h, c.blockOutChannels[i]))
            } else { t.downIn.append(nil) }
        }
        t.midIn.append(h)
        h = midResnets[0].forward(h, embAct: eaC, batch: n, height: s, width: s, parameters: p, dropoutSeed: nextSeed())
        if let a = midAttention { t.midAttnIn = h; h = a.forward(h, batch: n, pixels: s * s, parameters: p) }
        t.midIn.append(h)
        h = midResnets[1].forward(h, embAct: eaC, batch: n, height: s, width: s, parameters: p, dropoutSeed: nextSeed())
        if catBuffers.isEmpty { catBuffers = up.map { lv in lv.resnets.map { _ in NetworkBuffer<T>() } } }
        var hCh = c.blockOutChannels.last!
        for (u, lv) in up.enumerated() {
            var ai: [UnsafeMutablePointer<T>] = [], sk: [Int] = []
            for (j, r) in lv.resnets.enumerated() {
                let (skip, sc) = skips.removeLast()
                sk.append(skips.count)
                let cat = catBuffers[u][j].reserve(n * s * s * (hCh + sc))
                Concat<T>.forward(h, hCh, skip, sc, rows: n * s * s, into: cat)
                h = r.forward(cat, embAct: eaC, batch: n, height: s, width: s, parameters: p, dropoutSeed: nextSeed())
                hCh = r.outChannels
                if !lv.attentions.isEmpty { ai.append(h); h = lv.attentions[j].forward(h, batch: n, pixels: s * s, parameters: p) }
            }
            t.upAttnIn.append(ai); t.upSkip.append(sk)
            if let us = lv.upsampler {
                t.upIn.append(h)
                h = us.forward(h, batch: n, height: s, width: s, parameters: p)
                s *= 2
            } else { t.upIn.append(nil) }
        }
        t.last = h
        let no = normOut.reserve(n * S * S * c0), ao = actOut.reserve(n * S * S * c0)
        convNormOut.forward(h, batch: n, pixels: S * S, parameters: p, into: no)
        SiLU<T>.forward(no, count: n * S * S * c0, into: ao)
        let y = output.reserve(n * S * S * c.channels)
        convOut.forward(ao, batch: n, height: S, width: S, parameters: p, into: y)
        trace = t
        return UnsafePointer(y)
    }

    /// Backpropagates `dy` (NHWC, the gradient of a loss with respect to the last `forward`'s output):
    /// writes every parameter's gradient into ``gradients`` and returns the input gradient (NHWC,
    /// owned by the network).
    @discardableResult
    public func backward(_ dy: UnsafePointer<T>) -> UnsafePointer<T> {
        if T.self == Float.self { return cast(unsafeDowncast(self, to: UNet<Float>.self).backwardImpl(cast(dy))) }
        if T.self == Double.self { return cast(unsafeDowncast(self, to: UNet<Double>.self).backwardImpl(cast(dy))) }
        return backwardImpl(dy)
    }

    func backwardImpl(_ dy: UnsafePointer<T>) -> UnsafePointer<T> {
        let c = configuration, n = lastBatch, S = c.imageSize, c0 = c.blockOutChannels[0], E = c.embeddingWidth
        let p = UnsafePointer(parameters), g = gradients, t = trace
        let ea = UnsafePointer(embAct.pointer)
        let dea = dEmbAct.reserve(n * E); dea.update(repeating: 0, count: n * E)
        if skipGrads.isEmpty { skipGrads = (0 ..< (1 + c.levels * c.layersPerBlock + c.levels - 1)).map { _ in NetworkBuffer<T>() } }
        let da = dAct.reserve(n * S * S * c0)
        convOut.backward(actOut.pointer, dy, batch: n, height: S, width: S, parameters: p, gradients: g, dx: da)
        SiLU<T>.backward(normOut.pointer, da, count: n * S * S * c0, into: da)
        var d = dNorm.reserve(n * S * S * c0)
        convNormOut.backward(t.last!, da, batch: n, pixels: S * S, parameters: p, gradients: g, dx: d)
        var s = S
        for u in (0 ..< up.count).reversed() {
            let lv = up[u]
            if let us = lv.upsampler { s /= 2; d = us.backward(d, batch: n, height: s, width: s, parameters: p, gradients: g) }
            for j in (0 ..< lv.resnets.count).reversed() {
                if !lv.attentions.isEmpty { d = lv.attentions[j].backward(t.upAttnIn[u][j], d, batch: n, pixels: s * s, parameters: p, gradients: g) }
                let r = lv.resnets[j]
                let cat = catBuffers[u][j].pointer
                let dc = r.backward(cat, d, embAct: ea, dEmbAct: dea, batch: n, height: s, width: s, parameters: p, gradients: g)
                let k = t.upSkip[u][j]
                let prevCh = j == 0 ? (u == 0 ? c.blockOutChannels.last! : up[u - 1].resnets.last!.outChannels) : r.outChannels
                let sc = r.inChannels - prevCh
                let dsk = skipGrads[k].reserve(n * s * s * sc)
                let dhBuf = splitBuffer.reserve(n * s * s * prevCh)
                Concat<T>.backward(dc, prevCh, sc, rows: n * s * s, intoA: dhBuf, intoB: dsk)
                d = dhBuf
            }
        }
        d = midResnets[1].backward(t.midIn[1], d, embAct: ea, dEmbAct: dea, batch: n, height: s, width: s, parameters: p, gradients: g)
        if let a = midAttention { d = a.backward(t.midAttnIn!, d, batch: n, pixels: s * s, parameters: p, gradients: g) }
        d = midResnets[0].backward(t.midIn[0], d, embAct: ea, dEmbAct: dea, batch: n, height: s, width: s, parameters: p, gradients: g)
        let L = c.layersPerBlock
        for i in (0 ..< down.count).reversed() {
            let lv = down[i]
            if let ds = lv.downsampler {
                add(skipGrads[1 + i * (L + 1) + L].pointer, into: d, count: n * s * s * c.blockOutChannels[i])
                s *= 2
                d = ds.backward(t.downIn[i]!, d, batch: n, height: s, width: s, parameters: p, gradients: g)
            }
            for j in (0 ..< L).reversed() {
                add(skipGrads[1 + i * (L + 1) + j].pointer, into: d, count: n * s * s * c.blockOutChannels[i])
                if !lv.attentions.isEmpty { d = lv.attentions[j].backward(t.attnIn[i][j], d, batch: n, pixels: s * s, parameters: p, gradients: g) }
                d = lv.resnets[j].backward(t.resIn[i][j], d, embAct: ea, dEmbAct: dea, batch: n, height: s, width: s, parameters: p, gradients: g)
            }
        }
        add(skipGrads[0].pointer, into: d, count: n * S * S * c0)
        let dx = dInput.reserve(n * S * S * c.channels)
        convIn.backward(t.x!, d, batch: n, height: S, width: S, parameters: p, gradients: g, dx: dx)
        // Embedding: d emb = SiLU'(emb) · d e; class rows; then the time MLP.
        SiLU<T>.backward(embCopy.pointer, dea, count: n * E, into: dea)
        if let ce = classEmbedding {
            let dw = g + ce.offset
            dw.update(repeating: 0, count: ce.count)
            for (b, l) in lastLabels!.enumerated() { let r = dw + l * E, e = dea + b * E; for k in 0 ..< E { r[k] += e[k] } }
        }
        timeEmbedding.backward(tIn.pointer, dea, rows: n, parameters: p, gradients: g)
        return UnsafePointer(dx)
    }

    private let splitBuffer = NetworkBuffer<T>()

    @inline(__always)
    private func add(_ a: UnsafePointer<T>, into d: UnsafeMutablePointer<T>, count: Int) {
        for i in 0 ..< count { d[i] += a[i] }
    }
}

/// Channel concatenation of two NHWC tensors (`torch.cat([a, b], dim=1)` in NCHW) and its split.
enum Concat<T: NetworkScalar> {
    static func forward(_ a: UnsafePointer<T>, _ ca: Int, _ b: UnsafePointer<T>, _ cb: Int, rows: Int, into y: UnsafeMutablePointer<T>) {
        let c = ca + cb
        for r in 0 ..< rows {
            (y + r * c).update(from: a + r * ca, count: ca)
            (y + r * c + ca).update(from: b + r * cb, count: cb)
        }
    }
    static func backward(_ dy: UnsafePointer<T>, _ ca: Int, _ cb: Int, rows: Int, intoA da: UnsafeMutablePointer<T>, intoB db: UnsafeMutablePointer<T>) {
        let c = ca + cb
        for r in 0 ..< rows {
            (da + r * ca).update(from: dy + r * c, count: ca)
            (db + r * cb).update(from: dy + r * c + ca, count: cb)
        }
    }
}

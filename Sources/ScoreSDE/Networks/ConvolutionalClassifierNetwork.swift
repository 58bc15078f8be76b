/// The network of a ``ConvolutionalClassifier``: the encoder half of the ``UNet`` (the same layer
/// classes and diffusers-style names) followed by a pooled head, ADM's noisy classifier at small
/// size (Dhariwal & Nichol 2021, §4 and App. C):
///
///     emb = time_embedding(sinusoid(τ));   e = SiLU(emb)
///     h = conv_in(x)
///     level i: per block h = resnet(h, e);  h = downsample(h)   (not the last level)
///     mid: h = resnet(h, e) [→ attention]
///     pool = mean_pixels(SiLU(norm_out(h)))                      [n, C_last]
///     features = SiLU(features(pool))                            [n, F]   (penultimate layer)
///     logits = logits(features)                                  [n, K]
///
/// NHWC activations, as the U-Net's. Float32 runs on oneDNN; the float64 instance is the twin the
/// gradient tests check against central differences. Not thread-safe: one instance per thread.
final class ConvolutionalClassifierNetwork<T: NetworkScalar> {
    let architecture: ConvolutionalClassifier.Architecture
    let layout: ParameterLayout
    /// Flat parameters and gradients (order of ``layout``).
    let parameters: UnsafeMutablePointer<T>
    let gradients: UnsafeMutablePointer<T>
    var parameterCount: Int { layout.count }

    struct Level { var resnets: [ResnetBlock2D<T>]; var downsampler: Downsample2D<T>? }

    let timeProj: SinusoidalTimesteps
    let timeEmbedding: TimestepEmbedding<T>
    let convIn: Conv2d<T>
    let levels: [Level]
    let midResnet: ResnetBlock2D<T>
    let midAttention: Attention<T>?
    let normOut: GroupNorm<T>
    let featureLayer: Linear<T>
    let logitLayer: Linear<T>
    /// `(height, width)` of each level's activations.
    let sizes: [(Int, Int)]

    private let inputCopy = NetworkBuffer<T>(), tIn = NetworkBuffer<T>(), embCopy = NetworkBuffer<T>(), embAct = NetworkBuffer<T>()
    private let dEmbAct = NetworkBuffer<T>(), convInOut = NetworkBuffer<T>(), normed = NetworkBuffer<T>(), activated = NetworkBuffer<T>()
    private let pooled = NetworkBuffer<T>(), featurePre = NetworkBuffer<T>(), featureOut = NetworkBuffer<T>(), logitOut = NetworkBuffer<T>()
    private let dFeature = NetworkBuffer<T>(), dPooled = NetworkBuffer<T>(), dActivated = NetworkBuffer<T>(), dNormed = NetworkBuffer<T>()
    private let dInput = NetworkBuffer<T>()
    private var trace = Trace()
    private var lastBatch = 0

    struct Trace {
        var x: UnsafePointer<T>? = nil
        var resIn: [[UnsafeMutablePointer<T>]] = [], downIn: [UnsafeMutablePointer<T>?] = []
        var midIn: UnsafeMutablePointer<T>? = nil, midAttnIn: UnsafeMutablePointer<T>? = nil, last: UnsafeMutablePointer<T>? = nil
    }

    /// A network with all parameters zero (``initialize(seed:)`` sets PyTorch's defaults).
    convenience init(_ a: ConvolutionalClassifier.Architecture) throws {
        try a.validate()
        self.init(validated: a)
    }

    /// A network with all parameters zero for an architecture that passed
    /// ``ConvolutionalClassifier/Architecture/validate()`` (which the layers below rely on).
    init(validated a: ConvolutionalClassifier.Architecture) {
        architecture = a
        let L = ParameterLayout()
        layout = L
        let scratch = BackwardScratch<T>()
        let c0 = a.blockOutChannels[0], E = a.embeddingWidth, G = a.normGroups, eps = a.normEpsilon
        convIn = Conv2d("conv_in", in: a.channels, out: c0, kernel: 3, padding: 1, parameters: L)
        timeProj = SinusoidalTimesteps(dim: c0, flipSinToCos: a.flipSinToCos, freqShift: a.freqShift)
        timeEmbedding = L.scope("time_embedding") { TimestepEmbedding(in: c0, embedding: E, parameters: L) }
        var built: [Level] = [], outCh = c0
        for i in 0 ..< a.levels {
            let inCh = outCh
            outCh = a.blockOutChannels[i]
            let last = i == a.levels - 1, o = outCh
            built.append(L.scope("down_blocks.\(i)") {
                var lv = Level(resnets: [], downsampler: nil)
                for j in 0 ..< a.layersPerBlock {
                    lv.resnets.append(L.scope("resnets.\(j)") {
                        ResnetBlock2D(in: j == 0 ? inCh : o, out: o, embedding: E, groups: G, epsilon: eps, dropout: 0, parameters: L, scratch: scratch) })
                }
                if !last { lv.downsampler = L.scope("downsamplers.0") { Downsample2D(channels: o, padding: 1, parameters: L) } }
                return lv
            })
        }
        levels = built
        let cm = a.blockOutChannels.last!
        var attention: Attention<T>? = nil
        midResnet = L.scope("mid_block") {
            let r = L.scope("resnets.0") { ResnetBlock2D<T>(in: cm, out: cm, embedding: E, groups: G, epsilon: eps, dropout: 0, parameters: L, scratch: scratch) }
            if a.midBlockAttention { attention = L.scope("attentions.0") { Attention<T>(channels: cm, heads: 1, groups: G, epsilon: eps, parameters: L) } }
            return r
        }
        midAttention = attention
        normOut = GroupNorm("norm_out", channels: cm, groups: G, epsilon: eps, parameters: L)
        featureLayer = Linear("features", in: cm, out: a.featureDimension, parameters: L)
        logitLayer = Linear("logits", in: a.featureDimension, out: a.classCount, parameters: L)
        sizes = a.levelSizes
        parameters = .allocate(capacity: max(L.count, 1))
        parameters.initialize(repeating: 0, count: max(L.count, 1))
        gradients = .allocate(capacity: max(L.count, 1))
        gradients.initialize(repeating: 0, count: max(L.count, 1))
    }

    deinit { parameters.deallocate(); gradients.deallocate() }

    /// PyTorch's default initialisation (``ParameterInit``) from the seed's Philox streams, one per tensor.
    func initialize(seed: UInt64) {
        layout.initialize(parameters, seed: seed, purpose: 0x434F_4E56_434C_46)   // "CONVCLF"
    }

    /// The penultimate features `[n, F]` and logits `[n, K]` (buffers owned by the network, valid
    /// until the next call) of NHWC input `x` at network times `tau` (one per image).
    func forward(_ x: UnsafePointer<T>, tau: [Double]) -> (features: UnsafePointer<T>, logits: UnsafePointer<T>) {
        // Callers in other modules reach unspecialised generic code; route the concrete types to
        // code specialised here (as ``UNet/forward(_:tau:labels:dropoutSeed:)`` does).
        if T.self == Float.self {
            let r = unsafeDowncast(self, to: ConvolutionalClassifierNetwork<Float>.self).forwardImpl(cast(x), tau: tau)
            return (cast(r.features), cast(r.logits))
        }
        if T.self == Double.self {
            let r = unsafeDowncast(self, to: ConvolutionalClassifierNetwork<Double>.self).forwardImpl(cast(x), tau: tau)
            return (cast(r.features), cast(r.logits))
        }
        return forwardImpl(x, tau: tau)
    }

    func forwardImpl(_ x: UnsafePointer<T>, tau: [Double]) -> (features: UnsafePointer<T>, logits: UnsafePointer<T>) {
        let a = architecture, n = tau.count, (H, W) = sizes[0], C = a.channels, c0 = a.blockOutChannels[0], E = a.embeddingWidth
        let p = UnsafePointer(parameters)
        lastBatch = n
        var t = Trace()
        let xc = inputCopy.reserve(n * H * W * C)
        xc.update(from: x, count: n * H * W * C)
        t.x = UnsafePointer(xc)
        let ti = tIn.reserve(n * c0)
        timeProj.forward(tau, into: ti)
        let emb = timeEmbedding.forward(ti, rows: n, parameters: p)
        let ec = embCopy.reserve(n * E); ec.update(from: emb, count: n * E)
        let ea = embAct.reserve(n * E)
        SiLU<T>.forward(emb, count: n * E, into: ea)
        let eaC = UnsafePointer(ea)
        var h = convInOut.reserve(n * H * W * c0)
        convIn.forward(xc, batch: n, height: H, width: W, parameters: p, into: h)
        for (i, lv) in levels.enumerated() {
            let (sh, sw) = sizes[i]
            var ri: [UnsafeMutablePointer<T>] = []
            for r in lv.resnets {
                ri.append(h)
                h = r.forward(h, embAct: eaC, batch: n, height: sh, width: sw, parameters: p, dropoutSeed: nil)
            }
            t.resIn.append(ri)
            if let d = lv.downsampler {
                t.downIn.append(h)
                h = d.forward(h, batch: n, height: sh, width: sw, parameters: p)
            } else { t.downIn.append(nil) }
        }
        let (mh, mw) = sizes[a.levels - 1], P = mh * mw, cm = a.blockOutChannels.last!, F = a.featureDimension
        t.midIn = h
        h = midResnet.forward(h, embAct: eaC, batch: n, height: mh, width: mw, parameters: p, dropoutSeed: nil)
        if let at = midAttention { t.midAttnIn = h; h = at.forward(h, batch: n, pixels: P, parameters: p) }
        t.last = h
        let u = normed.reserve(n * P * cm), s = activated.reserve(n * P * cm)
        normOut.forward(h, batch: n, pixels: P, parameters: p, into: u)
        SiLU<T>.forward(u, count: n * P * cm, into: s)
        let pool = pooled.reserve(n * cm)
        let inv = 1 / T(P)
        for b in 0 ..< n {
            let o = pool + b * cm
            o.update(repeating: 0, count: cm)
            for q in 0 ..< P { let row = s + (b * P + q) * cm; for c in 0 ..< cm { o[c] += row[c] } }
            for c in 0 ..< cm { o[c] *= inv }
        }
        let fp = featurePre.reserve(n * F), f = featureOut.reserve(n * F)
        featureLayer.forward(pool, rows: n, parameters: p, into: fp)
        SiLU<T>.forward(fp, count: n * F, into: f)
        let y = logitOut.reserve(n * a.classCount)
        logitLayer.forward(f, rows: n, parameters: p, into: y)
        trace = t
        return (UnsafePointer(f), UnsafePointer(y))
    }

    /// Backpropagates `dLogits` (`[n, K]`, the gradient of a loss with respect to the last
    /// ``forward(_:tau:)``'s logits): writes every parameter's gradient into ``gradients`` and
    /// returns the input gradient (NHWC, owned by the network).
    @discardableResult
    func backward(_ dLogits: UnsafePointer<T>) -> UnsafePointer<T> {
        if T.self == Float.self { return cast(unsafeDowncast(self, to: ConvolutionalClassifierNetwork<Float>.self).backwardImpl(cast(dLogits))) }
        if T.self == Double.self { return cast(unsafeDowncast(self, to: ConvolutionalClassifierNetwork<Double>.self).backwardImpl(cast(dLogits))) }
        return backwardImpl(dLogits)
    }

    func backwardImpl(_ dLogits: UnsafePointer<T>) -> UnsafePointer<T> {
        let a = architecture, n = lastBatch, (H, W) = sizes[0], C = a.channels, E = a.embeddingWidth
        let p = UnsafePointer(parameters), g = gradients, t = trace
        let (mh, mw) = sizes[a.levels - 1], P = mh * mw, cm = a.blockOutChannels.last!, F = a.featureDimension
        let ea = UnsafePointer(embAct.pointer)
        let dea = dEmbAct.reserve(n * E); dea.update(repeating: 0, count: n * E)
        let df = dFeature.reserve(n * F)
        logitLayer.backward(featureOut.pointer, dLogits, rows: n, parameters: p, gradients: g, dx: df)
        SiLU<T>.backward(featurePre.pointer, df, count: n * F, into: df)
        let dpool = dPooled.reserve(n * cm)
        featureLayer.backward(pooled.pointer, df, rows: n, parameters: p, gradients: g, dx: dpool)
        // The mean over pixels spreads its gradient evenly.
        let ds = dActivated.reserve(n * P * cm), inv = 1 / T(P)
        for b in 0 ..< n {
            let src = dpool + b * cm
            for q in 0 ..< P { let row = ds + (b * P + q) * cm; for c in 0 ..< cm { row[c] = src[c] * inv } }
        }
        SiLU<T>.backward(normed.pointer, ds, count: n * P * cm, into: ds)
        var d = dNormed.reserve(n * P * cm)
        normOut.backward(t.last!, ds, batch: n, pixels: P, parameters: p, gradients: g, dx: d)
        if let at = midAttention { d = at.backward(t.midAttnIn!, d, batch: n, pixels: P, parameters: p, gradients: g) }
        d = midResnet.backward(t.midIn!, d, embAct: ea, dEmbAct: dea, batch: n, height: mh, width: mw, parameters: p, gradients: g)
        for i in (0 ..< levels.count).reversed() {
            let lv = levels[i], (sh, sw) = sizes[i]
            if let ds = lv.downsampler { d = ds.backward(t.downIn[i]!, d, batch: n, height: sh, width: sw, parameters: p, gradients: g) }
            for j in (0 ..< lv.resnets.count).reversed() {
                d = lv.resnets[j].backward(t.resIn[i][j], d, embAct: ea, dEmbAct: dea, batch: n, height: sh, width: sw, parameters: p, gradients: g)
            }
        }
        let dx = dInput.reserve(n * H * W * C)
        convIn.backward(t.x!, d, batch: n, height: H, width: W, parameters: p, gradients: g, dx: dx)
        SiLU<T>.backward(embCopy.pointer, dea, count: n * E, into: dea)
        timeEmbedding.backward(tIn.pointer, dea, rows: n, parameters: p, gradients: g)
        return UnsafePointer(dx)
    }

    /// Multiply–adds of the convolutions of one forward pass for `n` images.
    func convolutionMultiplyAdds(batch n: Int) -> Int {
        var total = convIn.multiplyAdds(batch: n, height: sizes[0].0, width: sizes[0].1)
        func res(_ r: ResnetBlock2D<T>, _ h: Int, _ w: Int) -> Int {
            r.conv1.multiplyAdds(batch: n, height: h, width: w) + r.conv2.multiplyAdds(batch: n, height: h, width: w)
                + (r.convShortcut?.multiplyAdds(batch: n, height: h, width: w) ?? 0)
        }
        for (i, lv) in levels.enumerated() {
            let (h, w) = sizes[i]
            for r in lv.resnets { total += res(r, h, w) }
            if let d = lv.downsampler { total += d.conv.multiplyAdds(batch: n, height: h, width: w) }
        }
        let (h, w) = sizes[levels.count - 1]
        return total + res(midResnet, h, w)
    }
}

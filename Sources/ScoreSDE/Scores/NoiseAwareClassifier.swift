import Foundation

/// A noise-aware (time-conditioned) classifier `p_t(y | x)` for classifier guidance: an MLP on the
/// noisy sample `x_t` and the time `t`, trained with cross-entropy on `x_t` drawn from the forward
/// SDE at random times (Dhariwal & Nichol 2021, "Diffusion models beat GANs", §4 — ADM's noisy
/// classifier; Song et al. 2021, App. I.1). ``NoisyClassifier`` through ``targeting(_:)``.
///
///     let classifier = try NoiseAwareClassifier.load(from: "clf.safetensors")
///     let logp = try classifier.logProbabilities(x, at: 0.3)            // [rows, K]
///     let g = try classifier.logProbabilityGradient(x, at: 0.3, labels: [3])   // ∇ₓ log p_t(3 | x)
///     let guided = try digits.classifierGuided(by: classifier, labels: [3], scale: 2)
///
/// **Network** (the ``MLPScore`` trunk with `K` logits as output; `D` inputs, `H` hidden, `L` blocks):
///
///     e      = [sin(2π W t), cos(2π W t)]                 W ~ N(0, scale²), fixed
///     temb   = SiLU(embed.dense(e))
///     h₀     = input(x) + temb
///     h_{i+1} = h_i + blocks.i.dense2(SiLU(blocks.i.dense1(SiLU(h_i)) + blocks.i.temb(temb)))
///     logits = output(SiLU(h_L))                          log p_t(y | x) = log_softmax(logits)_y
///
/// The input gradient `∇ₓ log p_t(y | x) = (e_y − p)ᵀ ∂logits/∂x` (what guidance needs) and the
/// parameter gradient of the cross-entropy are written by hand (reverse mode through the layers).
/// `x` is in the model space of ``dataScaling`` — the space of the score model it guides.
///
/// **Parameters** (order of ``Architecture/parameterSpecs``; Linear weights `[out, in]`, PyTorch default init):
/// `embed.W [F]` (buffer), `embed.dense.weight [H, 2F]`, `.bias [H]`, `input.weight [H, D]`,
/// `.bias`, per block `dense1`, `temb`, `dense2` (`[H, H]`, `[H]`), `output.weight [K, H]`, `.bias [K]`.
public struct NoiseAwareClassifier: TimeConditionedClassifier {
    /// The network's shape.
    public struct Architecture: Sendable, Equatable {
        /// Shape of one sample (flattened to `D` values).
        public var rowShape: [Int]
        /// Number `K ≥ 2` of classes `0 ..< K`.
        public var classCount: Int
        public var hiddenWidth: Int
        public var residualBlocks: Int
        public var fourierFeatures: Int
        /// Std of the Fourier frequencies; the time input is `t ∈ (0, T]`.
        public var fourierScale: Double

        public init(rowShape: [Int], classCount: Int, hiddenWidth: Int = 128, residualBlocks: Int = 2,
                    fourierFeatures: Int = 16, fourierScale: Double = 4) {
            self.rowShape = rowShape; self.classCount = classCount; self.hiddenWidth = hiddenWidth
            self.residualBlocks = residualBlocks; self.fourierFeatures = fourierFeatures; self.fourierScale = fourierScale
        }

        public var dimension: Int { rowShape.reduce(1, *) }

        /// - Throws: `invalidParameter` for non-positive sizes, fewer than 2 classes or a bad scale.
        public func validate() throws {
            try requireParameter(!rowShape.isEmpty && rowShape.allSatisfy { $0 >= 1 }, name: "rowShape", value: rowShape, requirement: "non-empty with positive dimensions (the sample shape)")
            try requireParameter(classCount >= 2, name: "classCount", value: classCount, requirement: ">= 2 (a classifier)")
            try requireParameter(hiddenWidth >= 1, name: "hiddenWidth", value: hiddenWidth, requirement: ">= 1")
            try requireParameter(residualBlocks >= 0, name: "residualBlocks", value: residualBlocks, requirement: ">= 0")
            try requireParameter(fourierFeatures >= 1, name: "fourierFeatures", value: fourierFeatures, requirement: ">= 1")
            try requireParameter(fourierScale.isFinite && fourierScale > 0, name: "fourierScale", value: fourierScale, requirement: "finite and > 0")
        }

        /// The named tensors in order.
        public var parameterSpecs: [MLPParameterSpec] {
            let h = hiddenWidth, d = dimension, f = fourierFeatures
            var specs = [MLPParameterSpec](), offset = 0
            func add(_ name: String, _ shape: [Int], trainable: Bool = true, fanIn: Int = 0) {
                specs.append(MLPParameterSpec(name: name, shape: shape, offset: offset, trainable: trainable, fanIn: fanIn))
                offset += shape.reduce(1, *)
            }
            add("embed.W", [f], trainable: false)
            add("embed.dense.weight", [h, 2 * f], fanIn: 2 * f)
            add("embed.dense.bias", [h], fanIn: 2 * f)
            add("input.weight", [h, d], fanIn: d)
            add("input.bias", [h], fanIn: d)
            for i in 0 ..< residualBlocks {
                add("blocks.\(i).dense1.weight", [h, h], fanIn: h)
                add("blocks.\(i).dense1.bias", [h], fanIn: h)
                add("blocks.\(i).temb.weight", [h, h], fanIn: h)
                add("blocks.\(i).temb.bias", [h], fanIn: h)
                add("blocks.\(i).dense2.weight", [h, h], fanIn: h)
                add("blocks.\(i).dense2.bias", [h], fanIn: h)
            }
            add("output.weight", [classCount, h], fanIn: h)
            add("output.bias", [classCount], fanIn: h)
            return specs
        }

        public var parameterCount: Int { parameterSpecs.last.map { $0.offset + $0.count } ?? 0 }
    }

    public let architecture: Architecture
    /// The forward SDE whose marginals `p_t` the classifier was trained on.
    public let sdeSpec: SDESpec
    public let sde: any ForwardSDE
    /// Data ↔ model space map (the guided score model's); the classifier sees model-space `x`.
    public let dataScaling: DataScaling
    public internal(set) var parameters: [Double]
    let specs: [MLPParameterSpec]
    let offsets: [String: Int]

    static let initPurpose: UInt64 = 0x636C_6669_6E69_74   // "clfinit"

    /// A freshly initialised network (PyTorch default Linear init from the seed's Philox streams).
    public init(architecture: Architecture, sde: SDESpec, dataScaling: DataScaling = .identity, seed: UInt64) throws {
        try architecture.validate()
        var values = [Double](repeating: 0, count: architecture.parameterCount)
        let rng = RandomSource(seed: seed).derived(Self.initPurpose)
        for (i, spec) in architecture.parameterSpecs.enumerated() {
            var s = rng.stream(draw: UInt64(i), row: 0)
            if spec.trainable {
                let bound = 1 / Double(spec.fanIn).squareRoot()
                for j in spec.range { values[j] = (2 * (Double(s.next() >> 11) * 0x1p-53) - 1) * bound }
            } else {
                for j in spec.range { values[j] = architecture.fourierScale * s.normal() }
            }
        }
        try self.init(architecture: architecture, sde: sde, dataScaling: dataScaling, parameters: values)
    }

    /// A network with the given flat parameters (order of ``Architecture/parameterSpecs``).
    public init(architecture: Architecture, sde: SDESpec, dataScaling: DataScaling = .identity, parameters: [Double]) throws {
        try architecture.validate()
        guard parameters.count == architecture.parameterCount else {
            throw ScoreSDEError.shapeMismatch("this classifier architecture has \(architecture.parameterCount) parameters but \(parameters.count) were given")
        }
        guard parameters.allSatisfy(\.isFinite) else { throw ScoreSDEError.nonFinite("the classifier parameters contain NaN or Inf") }
        self.architecture = architecture; self.sdeSpec = sde; self.sde = try sde.make(); self.dataScaling = dataScaling
        self.parameters = parameters
        specs = architecture.parameterSpecs
        offsets = Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0.offset) })
    }

    public var rowShape: [Int] { architecture.rowShape }
    public var classCount: Int { architecture.classCount }

    /// The same network with other parameters (e.g. EMA weights).
    public func withParameters(_ values: [Double]) throws -> NoiseAwareClassifier {
        try NoiseAwareClassifier(architecture: architecture, sde: sdeSpec, dataScaling: dataScaling, parameters: values)
    }

    /// The named tensors, in order.
    public var namedTensors: [SafetensorsTensor] {
        specs.map { SafetensorsTensor(name: $0.name, shape: $0.shape, values: Array(parameters[$0.range])) }
    }

    // MARK: - Inference

    func checkInput(_ x: Tensor, times: [Double]) throws {
        guard x.rowSize == architecture.dimension else {
            throw ScoreSDEError.shapeMismatch("the classifier takes samples of shape \(rowShape) (\(architecture.dimension) values) but got rows of shape \(x.rowShape)")
        }
        for t in times where !(t.isFinite && t > 0 && t <= sde.T) {
            throw ScoreSDEError.invalid("t", t, must: "in (0, \(sde.T)] for the noise-aware classifier")
        }
    }

    /// `log p_{t_r}(y | x_r)` with one time per row: shape `[rows, K]`.
    public func logProbabilities(_ x: Tensor, times: [Double]) throws -> Tensor {
        guard times.count == x.rows else { throw ScoreSDEError.shapeMismatch("\(times.count) times for \(x.rows) rows") }
        try checkInput(x, times: times)
        let pass = forward(x.storage, times: times)
        var out = pass.logits
        Self.logSoftmaxRows(&out, rows: x.rows, k: classCount)
        let result = Tensor(uncheckedShape: [x.rows, classCount], storage: out)
        try result.checkFinite("the classifier's log-probabilities")
        return result
    }

    /// `∇ₓ log p_t(y | x)` for each row (labels: one for all rows, or one per row): the input
    /// gradient classifier guidance adds to the score, by reverse mode through the network.
    ///
    /// - Throws: `invalidParameter` for a label outside `0 ..< K` or a time outside `(0, T]`;
    ///   `shapeMismatch` for rows of another size or a label count other than 1 or `rows`.
    public func logProbabilityGradient(_ x: Tensor, at t: Double, labels batchLabels: [Int]) throws -> Tensor {
        let labels = try ScoreBatch.slice(batchLabels, rows: x.rows)   // a sampler's batch split takes its rows' labels
        try checkLabels(labels, rows: x.rows)
        let times = [Double](repeating: t, count: x.rows)
        try checkInput(x, times: times)
        let n = x.rows, k = classCount
        let pass = forward(x.storage, times: times)
        var g = pass.logits
        Self.softmaxRows(&g, rows: n, k: k)
        for r in 0 ..< n {   // ∂ log softmax_y / ∂ logits = e_y − p
            for c in 0 ..< k { g[r * k + c] = -g[r * k + c] }
            g[r * k + (labels.count == 1 ? labels[0] : labels[r])] += 1
        }
        let gx = backward(pass, x: x.storage, gLogits: g, parameterGradient: nil)
        let out = Tensor(uncheckedShape: x.shape, storage: gx)
        try out.checkFinite("the classifier gradient")
        return out
    }



    // MARK: - Cross-entropy training pass

    /// The mean cross-entropy `−(1/n) Σ_r log p_{t_r}(y_r | x_r)` and its gradient with respect to
    /// ``parameters`` (zero for the fixed `embed.W`).
    public func crossEntropyAndGradient(_ x: Tensor, times: [Double], labels: [Int]) throws -> (loss: Double, gradient: [Double]) {
        guard times.count == x.rows, labels.count == x.rows else {
            throw ScoreSDEError.shapeMismatch("the cross-entropy needs one time and one label per row (\(x.rows) rows, \(times.count) times, \(labels.count) labels)")
        }
        try checkLabels(labels, rows: x.rows)
        try checkInput(x, times: times)
        let n = x.rows, k = classCount
        let pass = forward(x.storage, times: times)
        var lp = pass.logits
        Self.logSoftmaxRows(&lp, rows: n, k: k)
        var loss = 0.0
        var g = [Double](repeating: 0, count: n * k)
        let inv = 1 / Double(n)
        for r in 0 ..< n {
            loss -= lp[r * k + labels[r]]
            for c in 0 ..< k { g[r * k + c] = Foundation.exp(lp[r * k + c]) * inv }
            g[r * k + labels[r]] -= inv
        }
        var grad = [Double](repeating: 0, count: parameters.count)
        _ = backward(pass, x: x.storage, gLogits: g, parameterGradient: &grad)
        loss *= inv
        guard loss.isFinite else { throw ScoreSDEError.nonFinite("the cross-entropy is \(loss)") }
        return (loss, grad)
    }

    // MARK: - Network passes

    /// Stored activations of one forward pass.
    struct Pass {
        var n: Int
        var feat: [Double]         // [n, 2F]
        var tpre: [Double], tsig: [Double], temb: [Double]   // [n, H]
        var h: [[Double]]          // L + 1 states [n, H]
        var hsig: [[Double]]       // σ(h_i), L + 1
        var act1: [[Double]]       // SiLU(h_i), i < L
        var pre2: [[Double]], sig2: [[Double]], act2: [[Double]]
        var actF: [Double]         // SiLU(h_L)
        var logits: [Double]       // [n, K]
    }

    func forward(_ x: [Double], times: [Double]) -> Pass {
        let n = times.count, a = architecture, h = a.hiddenWidth, f = a.fourierFeatures, d = a.dimension, k = a.classCount
        let o = offsets
        // One time for all rows (sampling): the time embedding and its per-block projections are
        // computed on one row and broadcast.
        let er = times.allSatisfy({ $0 == times[0] }) ? 1 : n
        func broadcast(_ v: [Double]) -> [Double] {
            guard er == 1, n > 1 else { return v }
            var out = [Double](); out.reserveCapacity(n * v.count)
            for _ in 0 ..< n { out += v }
            return out
        }
        return parameters.withUnsafeBufferPointer { pb in
            let p = pb.baseAddress!
            var feat = [Double](repeating: 0, count: er * 2 * f)
            times.withUnsafeBufferPointer { tp in
                feat.withUnsafeMutableBufferPointer { fp in
                    fourierFeatures(tp.baseAddress!, rows: er, frequencies: p + o["embed.W"]!, f: f, into: fp.baseAddress!)
                }
            }
            func dense(_ input: [Double], _ inDim: Int, _ name: String, _ outDim: Int, plus: [Double]? = nil, rows: Int? = nil) -> [Double] {
                let n = rows ?? n
                var y = [Double](repeating: 0, count: n * outDim)
                y.withUnsafeMutableBufferPointer { yp in
                    fillRows(yp.baseAddress!, rows: n, width: outDim, bias: p + o[name + ".bias"]!)
                    if let plus { for i in 0 ..< yp.count { yp[i] += plus[i] } }
                    input.withUnsafeBufferPointer { ip in
                        linearForward(ip.baseAddress!, rows: n, inDim: inDim, weight: p + o[name + ".weight"]!, outDim: outDim,
                                      into: yp.baseAddress!, accumulate: true)
                    }
                }
                return y
            }
            func silu(_ pre: [Double]) -> (act: [Double], sig: [Double]) {
                var act = [Double](repeating: 0, count: pre.count), sig = act
                pre.withUnsafeBufferPointer { pp in act.withUnsafeMutableBufferPointer { ap in sig.withUnsafeMutableBufferPointer { sp in
                    siluForward(pp.baseAddress!, act: ap.baseAddress!, sig: sp.baseAddress!, pre.count)
                } } }
                return (act, sig)
            }
            let tpre1 = dense(feat, 2 * f, "embed.dense", h, rows: er)
            let (temb1, tsig1) = silu(tpre1)
            let temb = broadcast(temb1)
            var hs = [dense(x, d, "input", h, plus: temb)]
            var hsig = [[Double]](), act1 = [[Double]](), pre2 = [[Double]](), sig2 = [[Double]](), act2 = [[Double]]()
            for i in 0 ..< a.residualBlocks {
                let (a1, s1) = silu(hs[i])
                hsig.append(s1); act1.append(a1)
                let tb = broadcast(dense(temb1, h, "blocks.\(i).temb", h, rows: er))
                let p2 = dense(a1, h, "blocks.\(i).dense1", h, plus: tb)
                let (a2, s2) = silu(p2)
                pre2.append(p2); sig2.append(s2); act2.append(a2)
                hs.append(dense(a2, h, "blocks.\(i).dense2", h, plus: hs[i]))
            }
            let (actF, sigF) = silu(hs[a.residualBlocks])
            hsig.append(sigF)
            let logits = dense(actF, h, "output", k)
            return Pass(n: n, feat: broadcast(feat), tpre: broadcast(tpre1), tsig: broadcast(tsig1), temb: temb, h: hs, hsig: hsig, act1: act1,
                        pre2: pre2, sig2: sig2, act2: act2, actF: actF, logits: logits)
        }
    }

    /// Reverse mode from `∂/∂logits` (`[n, K]`): returns `∂/∂x`; accumulates `∂/∂θ` when asked.
    func backward(_ pass: Pass, x: [Double], gLogits: [Double], parameterGradient: UnsafeMutablePointer<[Double]>?) -> [Double] {
        let n = pass.n, a = architecture, h = a.hiddenWidth, f = a.fourierFeatures, d = a.dimension, k = a.classCount
        let o = offsets
        var dtheta = [Double](repeating: 0, count: parameterGradient == nil ? 0 : parameters.count)
        let wantParams = parameterGradient != nil
        let gx: [Double] = parameters.withUnsafeBufferPointer { pb in
            dtheta.withUnsafeMutableBufferPointer { db in
                let p = pb.baseAddress!, dp = db.baseAddress
                /// `∂/∂W += gᵀ input`, `∂/∂b += Σ g`; returns `g W` (the input's gradient) when asked.
                func linearBack(_ g: [Double], _ input: [Double], _ inDim: Int, _ name: String, _ outDim: Int, wantInput: Bool) -> [Double] {
                    g.withUnsafeBufferPointer { gp in
                        if wantParams, let dp {
                            input.withUnsafeBufferPointer { ip in
                                linearWeightGradient(gp.baseAddress!, ip.baseAddress!, rows: n, inDim: inDim, outDim: outDim,
                                                     into: dp + o[name + ".weight"]!)
                            }
                            addColumnSums(gp.baseAddress!, rows: n, width: outDim, into: dp + o[name + ".bias"]!)
                        }
                        guard wantInput else { return [] }
                        var gi = [Double](repeating: 0, count: n * inDim)
                        gi.withUnsafeMutableBufferPointer { gip in
                            linearInputGradient(gp.baseAddress!, rows: n, weight: p + o[name + ".weight"]!, inDim: inDim, outDim: outDim,
                                                into: gip.baseAddress!, accumulate: false)
                        }
                        return gi
                    }
                }
                func siluBack(_ g: [Double], _ pre: [Double], _ sig: [Double], into out: inout [Double], accumulate: Bool) {
                    g.withUnsafeBufferPointer { gp in pre.withUnsafeBufferPointer { pp in sig.withUnsafeBufferPointer { sp in
                        out.withUnsafeMutableBufferPointer { op in
                            siluBackward(gp.baseAddress!, pre: pp.baseAddress!, sig: sp.baseAddress!, into: op.baseAddress!, g.count, accumulate: accumulate)
                        }
                    } } }
                }
                let blocks = a.residualBlocks
                let gActF = linearBack(gLogits, pass.actF, h, "output", k, wantInput: true)
                var gh = [Double](repeating: 0, count: n * h)
                siluBack(gActF, pass.h[blocks], pass.hsig[blocks], into: &gh, accumulate: false)
                var gtemb = [Double](repeating: 0, count: wantParams ? n * h : 0)
                for i in stride(from: blocks - 1, through: 0, by: -1) {
                    let gAct2 = linearBack(gh, pass.act2[i], h, "blocks.\(i).dense2", h, wantInput: true)
                    var gPre2 = [Double](repeating: 0, count: n * h)
                    siluBack(gAct2, pass.pre2[i], pass.sig2[i], into: &gPre2, accumulate: false)
                    let gAct1 = linearBack(gPre2, pass.act1[i], h, "blocks.\(i).dense1", h, wantInput: true)
                    if wantParams {
                        let gt = linearBack(gPre2, pass.temb, h, "blocks.\(i).temb", h, wantInput: true)
                        for j in 0 ..< gtemb.count { gtemb[j] += gt[j] }
                    }
                    siluBack(gAct1, pass.h[i], pass.hsig[i], into: &gh, accumulate: true)
                }
                let gx = linearBack(gh, x, d, "input", h, wantInput: true)
                if wantParams {
                    for j in 0 ..< gtemb.count { gtemb[j] += gh[j] }
                    var gtpre = [Double](repeating: 0, count: n * h)
                    siluBack(gtemb, pass.tpre, pass.tsig, into: &gtpre, accumulate: false)
                    _ = linearBack(gtpre, pass.feat, 2 * f, "embed.dense", h, wantInput: false)
                }
                return gx
            }
        }
        if let parameterGradient {
            parameterGradient.pointee.withUnsafeMutableBufferPointer { out in
                for i in 0 ..< dtheta.count { out[i] += dtheta[i] }
            }
        }
        return gx
    }

    static func logSoftmaxRows(_ z: inout [Double], rows: Int, k: Int) {
        for r in 0 ..< rows {
            var top = -Double.infinity
            for c in 0 ..< k { top = max(top, z[r * k + c]) }
            var sum = 0.0
            for c in 0 ..< k { sum += Foundation.exp(z[r * k + c] - top) }
            let lse = top + Foundation.log(sum)
            for c in 0 ..< k { z[r * k + c] -= lse }
        }
    }

    static func softmaxRows(_ z: inout [Double], rows: Int, k: Int) {
        logSoftmaxRows(&z, rows: rows, k: k)
        for i in z.indices { z[i] = Foundation.exp(z[i]) }
    }
}


import Foundation

/// A convolutional, noise-aware (time-conditioned) classifier `p_t(y | x)` built from the U-Net's
/// layers: ADM's noisy classifier (Dhariwal & Nichol 2021, "Diffusion models beat GANs", §4 — the
/// encoder half of the U-Net with a pooled head, trained with cross-entropy on `x_t` at random
/// times), and, trained on clean images, the feature network of the sample-quality metrics (FID's
/// construction, Heusel et al. 2017, with this classifier's penultimate layer in place of Inception).
///
///     let classifier = try ConvolutionalClassifier.load(from: "clf.safetensors")
///     let logp = try classifier.logProbabilities(x, at: 0.3)                      // [rows, K]
///     let g = try classifier.logProbabilityGradient(x, at: 0.3, labels: [3])      // ∇ₓ log p_t(3 | x)
///     let guided = try unet.classifierGuided(by: classifier, labels: [3], scale: 2)
///     let (features, logits) = try classifier.featuresAndLogits(of: images)      // data space, t = min time
///
/// **Network** (``Architecture``; NHWC float32 on oneDNN, as ``UNet``):
///
///     emb = time_embedding(sinusoid(τ)), τ = timeScale · t;   e = SiLU(emb)
///     h = conv_in(x);  per level: ResnetBlock2D(h, e) × layersPerBlock, Downsample2D (not the last)
///     mid: ResnetBlock2D(h, e) [→ attention]
///     features = SiLU(Linear(C → F)(mean_pixels(SiLU(GroupNorm(h)))))         [rows, F]
///     logits = Linear(F → K)(features);   log p_t(y | x) = log_softmax(logits)_y
///
/// Parameters under diffusers-style names (`conv_in.*`, `time_embedding.*`, `down_blocks.i.resnets.j.*`,
/// `down_blocks.i.downsamplers.0.conv.*`, `mid_block.resnets.0.*`, `mid_block.attentions.0.*`,
/// `norm_out.*`, `features.*`, `logits.*`), PyTorch's default initialisation.
///
/// Both gradients are reverse mode through the layers: the cross-entropy's with respect to the
/// parameters (training) and `∇ₓ log p_t(y | x) = (e_y − p)ᵀ ∂logits/∂x` (guidance). `x` is in the
/// model space of ``dataScaling``, the space of the score model it guides; the softmax and the
/// cross-entropy are computed in Double from the float32 logits.
///
/// Thread-safe: each concurrent call borrows its own network instance. Rows are independent (no
/// batch statistics).
public struct ConvolutionalClassifier: TimeConditionedClassifier {
    public let architecture: Architecture
    /// The forward SDE whose marginals `p_t` the classifier was trained on.
    public let sdeSpec: SDESpec
    /// ``sdeSpec`` built.
    public let sde: any ForwardSDE
    /// Data ↔ model space map (the guided score model's); the classifier sees model-space `x`.
    public let dataScaling: DataScaling
    /// The times it was trained on (`t ~ U[lowerBound, upperBound]`); the features of
    /// ``featuresAndLogits(of:)`` are taken at the lower bound.
    public let trainingTimes: ClosedRange<Double>
    /// Trained on uniformly dequantized integer data with this many levels (recorded; data-space
    /// inputs of ``featuresAndLogits(of:)`` then take the middle of each level, `k + ½`); nil: off.
    public let dequantizationLevels: Int?
    /// The flat float32 parameters (order of ``tensors``).
    public let parameters: [Float]
    let pool: ConvolutionalClassifierPool

    static let initPurpose: UInt64 = 0x636F_6E76_696E_6974   // "convinit"

    /// A freshly initialised network (PyTorch's default initialisation from the seed's Philox streams).
    ///
    /// - Parameters:
    ///   - architecture: the network's shape.
    ///   - sde: the forward SDE whose noisy marginals it labels.
    ///   - dataScaling: data → model space map of its inputs (the guided model's).
    ///   - trainingTimes: the times it is (to be) trained on; nil: `[sde.samplingEps, T]`.
    ///   - dequantizationLevels: the levels of uniformly dequantized training data; nil: none.
    ///   - seed: seeds the initial weights.
    /// - Throws: as ``init(architecture:sde:dataScaling:trainingTimes:dequantizationLevels:parameters:)``.
    public init(architecture: Architecture, sde: SDESpec, dataScaling: DataScaling = .identity,
                trainingTimes: ClosedRange<Double>? = nil, dequantizationLevels: Int? = nil, seed: UInt64) throws {
        let net = try ConvolutionalClassifierNetwork<Float>(architecture)
        net.initialize(seed: seed)
        try self.init(architecture: architecture, sde: sde, dataScaling: dataScaling, trainingTimes: trainingTimes,
                      dequantizationLevels: dequantizationLevels,
                      parameters: Array(UnsafeBufferPointer(start: net.parameters, count: net.parameterCount)))
    }

    /// A network with the given flat parameters (order of ``tensors``).
    ///
    /// - Throws: `invalidParameter` for a bad architecture, time range or level count; `shapeMismatch`
    ///   for another parameter count; `nonFinite` for NaN/Inf parameters.
    public init(architecture: Architecture, sde: SDESpec, dataScaling: DataScaling = .identity,
                trainingTimes: ClosedRange<Double>? = nil, dequantizationLevels: Int? = nil, parameters: [Float]) throws {
        let pool = try ConvolutionalClassifierPool(architecture: architecture, parameters: parameters)
        let made = try sde.make()
        let times = trainingTimes ?? sde.samplingEps ... made.T
        try requireParameter(times.lowerBound.isFinite && times.lowerBound > 0 && times.upperBound <= made.T, name: "trainingTimes", value: times,
                             requirement: "within (0, \(made.T)]")
        if let l = dequantizationLevels { try requireParameter(l >= 2, name: "dequantizationLevels", value: l, requirement: ">= 2 (or nil for none)") }
        self.architecture = architecture; self.sdeSpec = sde; self.sde = made; self.dataScaling = dataScaling
        self.trainingTimes = times; self.dequantizationLevels = dequantizationLevels
        self.parameters = parameters; self.pool = pool
    }

    /// The shape `[C, H, W]` of one input.
    public var rowShape: [Int] { architecture.rowShape }
    /// Number `K` of classes.
    public var classCount: Int { architecture.classCount }
    /// Dimension `F` of the penultimate features.
    public var featureDimension: Int { architecture.featureDimension }

    /// The same network with other parameters (e.g. EMA weights).
    public func withParameters(_ values: [Float]) throws -> ConvolutionalClassifier {
        try ConvolutionalClassifier(architecture: architecture, sde: sdeSpec, dataScaling: dataScaling, trainingTimes: trainingTimes,
                                    dequantizationLevels: dequantizationLevels, parameters: values)
    }

    /// The same network recorded as trained on `times` with `dequantizationLevels`.
    func trained(on times: ClosedRange<Double>, dequantizationLevels levels: Int?) throws -> ConvolutionalClassifier {
        try ConvolutionalClassifier(architecture: architecture, sde: sdeSpec, dataScaling: dataScaling, trainingTimes: times,
                                    dequantizationLevels: levels, parameters: parameters)
    }

    // MARK: - Inference

    /// Images per network pass of inference: every pass has exactly this batch size (see
    /// ``evaluate(_:scratch:_:times:features:)``), which also bounds the activations' memory.
    static let chunkRows = 16

    func checkInput(_ x: Tensor, times: [Double]) throws {
        guard x.rowSize == rowShape.reduce(1, *) else {
            throw ScoreSDEError.shapeMismatch("the classifier takes images of shape \(rowShape) (\(rowShape.reduce(1, *)) values) but got rows of shape \(x.rowShape)")
        }
        guard times.count == x.rows else { throw ScoreSDEError.shapeMismatch("\(times.count) times for \(x.rows) rows") }
        for t in times where !(t.isFinite && t > 0 && t <= sde.T) {
            throw ScoreSDEError.invalid("t", t, must: "in (0, \(sde.T)] for the noise-aware classifier")
        }
        try x.checkFinite("the classifier's input")
    }

    /// The penultimate features `[rows, F]` and logits `[rows, K]` of model-space rows `x` at time `t`.
    ///
    /// - Throws: `shapeMismatch` for rows of another size; `invalidParameter` for a time outside
    ///   `(0, T]`; `nonFinite` for NaN/Inf in `x` or in the result.
    public func featuresAndLogits(_ x: Tensor, at t: Double) throws -> (features: Tensor, logits: Tensor) {
        let times = [Double](repeating: t, count: x.rows)
        try checkInput(x, times: times)
        let (f, l) = pool.withNetwork { net, scratch in
            ConvolutionalClassifier.evaluate(net, scratch: scratch, x, times: times, features: true)
        }
        let features = Tensor(uncheckedShape: [x.rows, featureDimension], storage: f)
        let logits = Tensor(uncheckedShape: [x.rows, classCount], storage: l)
        try logits.checkFinite("the classifier's logits"); try features.checkFinite("the classifier's features")
        return (features, logits)
    }

    /// `log p_{t_r}(y | x_r)` with one time per row: shape `[rows, K]`.
    public func logProbabilities(_ x: Tensor, times: [Double]) throws -> Tensor {
        try checkInput(x, times: times)
        var l = pool.withNetwork { net, scratch in ConvolutionalClassifier.evaluate(net, scratch: scratch, x, times: times, features: false).logits }
        NoiseAwareClassifier.logSoftmaxRows(&l, rows: x.rows, k: classCount)
        let out = Tensor(uncheckedShape: [x.rows, classCount], storage: l)
        try out.checkFinite("the classifier's log-probabilities")
        return out
    }

    /// `∇ₓ log p_t(y | x)` for each row (labels: one for all rows, or one per row of the whole
    /// batch, of which a sampler's split call takes its rows' slice, ``ScoreBatch``): the input
    /// gradient classifier guidance adds to the score, by reverse mode through the network.
    ///
    /// - Throws: `invalidParameter` for a label outside `0 ..< K` or a time outside `(0, T]`;
    ///   `shapeMismatch` for rows of another size or a label count other than 1 or `rows`;
    ///   `nonFinite` for NaN/Inf input.
    public func logProbabilityGradient(_ x: Tensor, at t: Double, labels batchLabels: [Int]) throws -> Tensor {
        let labels = try ScoreBatch.slice(batchLabels, rows: x.rows)   // a sampler's batch split takes its rows' labels
        try checkLabels(labels, rows: x.rows)
        let times = [Double](repeating: t, count: x.rows)
        try checkInput(x, times: times)
        let g = pool.withNetwork { net, scratch in
            ConvolutionalClassifier.inputGradient(net, scratch: scratch, x, times: times, labels: labels)
        }
        let out = Tensor(uncheckedShape: x.shape, storage: g)
        try out.checkFinite("the classifier gradient")
        return out
    }



    /// The mean cross-entropy `−(1/n) Σ_r log p_{t_r}(y_r | x_r)` of model-space rows and its
    /// gradient with respect to ``parameters`` (one float32 pass over all rows).
    public func crossEntropyAndGradient(_ x: Tensor, times: [Double], labels: [Int]) throws -> (loss: Double, gradient: [Float]) {
        guard labels.count == x.rows else { throw ScoreSDEError.shapeMismatch("the cross-entropy needs one label per row (\(x.rows) rows, \(labels.count) labels)") }
        try checkLabels(labels, rows: x.rows)
        try checkInput(x, times: times)
        return try pool.withNetwork { net, scratch in
            let loss = try ConvolutionalClassifier.crossEntropy(net, scratch: scratch, x, times: times, labels: labels)
            return (loss, Array(UnsafeBufferPointer(start: net.gradients, count: net.parameterCount)))
        }
    }

    // MARK: - Passes (generic: the float64 twin runs the same code)

    /// Model-space NCHW Double rows `rows` of `x` → NHWC `T` in `into`.
    static func load<T: NetworkScalar>(_ x: UnsafePointer<Double>, rows: Range<Int>, channels C: Int, pixels P: Int, into y: UnsafeMutablePointer<T>) {
        for (k, b) in rows.enumerated() { for ch in 0 ..< C { for q in 0 ..< P {
            y[(k * P + q) * C + ch] = T(x[(b * C + ch) * P + q])
        } } }
    }

    /// Loads rows `rows` of `x` (at most ``chunkRows``) into a chunk of exactly ``chunkRows`` images,
    /// the rest zero, with their network times (the padding takes the first row's).
    static func loadChunk<T: NetworkScalar>(_ x: UnsafePointer<Double>, rows: Range<Int>, times: [Double], timeScale: Double,
                                            channels C: Int, pixels P: Int, into y: UnsafeMutablePointer<T>) -> [Double] {
        load(x, rows: rows, channels: C, pixels: P, into: y)
        (y + rows.count * P * C).update(repeating: 0, count: (chunkRows - rows.count) * P * C)
        let tau = times[rows].map { timeScale * $0 }
        return tau + [Double](repeating: tau[0], count: chunkRows - rows.count)
    }

    /// Features (when asked) and logits of every row, in chunks of exactly ``chunkRows`` images
    /// (the last padded with zeros): oneDNN's kernels are chosen per batch size and a row's bits
    /// depend on it, but not on the row's place in a batch of a given size, so every row's result
    /// is the same bits in any batch.
    static func evaluate<T: NetworkScalar>(_ net: ConvolutionalClassifierNetwork<T>, scratch: NetworkBuffer<T>, _ x: Tensor, times: [Double],
                                           features wanted: Bool) -> (features: [Double], logits: [Double]) {
        let a = net.architecture, n = x.rows, C = a.channels, P = x.rowSize / C, K = a.classCount, F = a.featureDimension
        var features = [Double](repeating: 0, count: wanted ? n * F : 0), logits = [Double](repeating: 0, count: n * K)
        x.storage.withUnsafeBufferPointer { xs in
            var start = 0
            while start < n {
                let end = min(n, start + chunkRows), m = end - start
                let input = scratch.reserve(chunkRows * P * C)
                let tau = loadChunk(xs.baseAddress!, rows: start ..< end, times: times, timeScale: a.timeScale, channels: C, pixels: P, into: input)
                let out = net.forward(input, tau: tau)
                for i in 0 ..< m * K { logits[start * K + i] = Double(out.logits[i]) }
                if wanted { for i in 0 ..< m * F { features[start * F + i] = Double(out.features[i]) } }
                start = end
            }
        }
        return (features, logits)
    }

    /// `∇ₓ log p_t(y | x)` of every row, in padded chunks of ``chunkRows`` (as ``evaluate(_:scratch:_:times:features:)``).
    static func inputGradient<T: NetworkScalar>(_ net: ConvolutionalClassifierNetwork<T>, scratch: NetworkBuffer<T>, _ x: Tensor, times: [Double],
                                                labels: [Int]) -> [Double] {
        let a = net.architecture, n = x.rows, C = a.channels, P = x.rowSize / C, K = a.classCount
        var out = [Double](repeating: 0, count: x.count)
        x.storage.withUnsafeBufferPointer { xs in
            var start = 0
            while start < n {
                let end = min(n, start + chunkRows), m = end - start
                let input = scratch.reserve(chunkRows * max(P * C, K))
                let tau = loadChunk(xs.baseAddress!, rows: start ..< end, times: times, timeScale: a.timeScale, channels: C, pixels: P, into: input)
                let y = net.forward(input, tau: tau).logits
                var p = (0 ..< m * K).map { Double(y[$0]) }
                NoiseAwareClassifier.softmaxRows(&p, rows: m, k: K)
                // ∂ log softmax_y / ∂ logits = e_y − p; zero for the padding (the input buffer is
                // free: forward copied it).
                for r in 0 ..< chunkRows {
                    let label = r < m ? (labels.count == 1 ? labels[0] : labels[start + r]) : -1
                    for c in 0 ..< K { input[r * K + c] = r < m ? T((c == label ? 1 : 0) - p[r * K + c]) : 0 }
                }
                let dx = net.backward(input)
                for (k, b) in (start ..< end).enumerated() { for ch in 0 ..< C { for q in 0 ..< P {
                    out[(b * C + ch) * P + q] = Double(dx[(k * P + q) * C + ch])
                } } }
                start = end
            }
        }
        return out
    }

    /// The mean cross-entropy of all rows in one pass; the parameter gradient is left in `net.gradients`.
    /// - Throws: `nonFinite` when the loss is not finite.
    static func crossEntropy<T: NetworkScalar>(_ net: ConvolutionalClassifierNetwork<T>, scratch: NetworkBuffer<T>, _ x: Tensor, times: [Double],
                                               labels: [Int]) throws -> Double {
        let a = net.architecture, n = x.rows, C = a.channels, P = x.rowSize / C, K = a.classCount
        let input = scratch.reserve(max(n * P * C, n * K))
        x.storage.withUnsafeBufferPointer { load($0.baseAddress!, rows: 0 ..< n, channels: C, pixels: P, into: input) }
        let y = net.forward(input, tau: times.map { a.timeScale * $0 }).logits
        var lp = (0 ..< n * K).map { Double(y[$0]) }
        NoiseAwareClassifier.logSoftmaxRows(&lp, rows: n, k: K)
        var loss = 0.0
        let inv = 1 / Double(n)
        for r in 0 ..< n {
            loss -= lp[r * K + labels[r]]
            for c in 0 ..< K { input[r * K + c] = T((Foundation.exp(lp[r * K + c]) - (c == labels[r] ? 1 : 0)) * inv) }
        }
        loss *= inv
        guard loss.isFinite else {
            throw ScoreSDEError.nonFinite("the cross-entropy is \(loss); lower the learning rate or check the data for extreme values")
        }
        net.backward(input)
        return loss
    }
}


/// Float32 networks of one ``ConvolutionalClassifier``, one per concurrent caller, with the converted input.
final class ConvolutionalClassifierPool: @unchecked Sendable {
    final class Entry {
        let network: ConvolutionalClassifierNetwork<Float>
        let scratch = NetworkBuffer<Float>()
        init(_ n: ConvolutionalClassifierNetwork<Float>) { network = n }
    }
    let architecture: ConvolutionalClassifier.Architecture
    let parameters: [Float]
    let layout: ParameterLayout
    private var free: [Entry] = []
    private let lock = NSLock()

    /// - Throws: as ``ConvolutionalClassifier/init(architecture:sde:dataScaling:trainingTimes:dequantizationLevels:parameters:)``.
    init(architecture: ConvolutionalClassifier.Architecture, parameters: [Float]) throws {
        let first = try ConvolutionalClassifierNetwork<Float>(architecture)
        guard parameters.count == first.parameterCount else {
            throw ScoreSDEError.shapeMismatch("this convolutional classifier architecture has \(first.parameterCount) parameters but \(parameters.count) were given")
        }
        guard parameters.allSatisfy(\.isFinite) else { throw ScoreSDEError.nonFinite("the classifier parameters contain NaN or Inf") }
        self.architecture = architecture; self.parameters = parameters
        parameters.withUnsafeBufferPointer { first.parameters.update(from: $0.baseAddress!, count: parameters.count) }
        layout = first.layout
        free = [Entry(first)]
    }

    func take() -> Entry {
        lock.lock()
        if let e = free.popLast() { lock.unlock(); return e }
        lock.unlock()
        let net = ConvolutionalClassifierNetwork<Float>(validated: architecture)   // init built `first` from it: it is valid
        parameters.withUnsafeBufferPointer { net.parameters.update(from: $0.baseAddress!, count: parameters.count) }
        return Entry(net)
    }

    func give(_ e: Entry) { lock.lock(); free.append(e); lock.unlock() }

    func withNetwork<R>(_ body: (ConvolutionalClassifierNetwork<Float>, NetworkBuffer<Float>) throws -> R) rethrows -> R {
        let e = take()
        defer { give(e) }
        return try body(e.network, e.scratch)
    }
}

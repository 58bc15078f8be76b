import Foundation

/// Settings of a ``ClassifierTrainer`` run (an MLP ``NoiseAwareClassifier``).
public typealias ClassifierTrainingConfiguration = NoisyClassifierTrainingConfiguration<NoiseAwareClassifier.Architecture>

/// Settings of a ``ConvolutionalClassifierTrainer`` run (a ``ConvolutionalClassifier``).
public typealias ConvolutionalClassifierTrainingConfiguration = NoisyClassifierTrainingConfiguration<ConvolutionalClassifier.Architecture>

/// Settings of a ``NoisyClassifierTrainer`` run: the network's ``ClassifierArchitecture`` and the
/// settings every classifier shares (SDE, data map, optimiser, times, randomness).
public struct NoisyClassifierTrainingConfiguration<Architecture: ClassifierArchitecture>: Sendable, Equatable {
    /// The forward SDE whose noisy samples `x_t` the classifier learns to label (the guided model's).
    public var sde: SDESpec
    /// The network's shape.
    public var architecture: Architecture
    /// Data → model space (the guided model's).
    public var dataScaling: DataScaling
    public var seed: UInt64
    public var batchSize: Int
    public var learningRate: Double
    public var warmup: Int
    public var gradClip: Double
    public var emaRate: Double
    /// Training times are uniform on `[minTime, maxTime]` (ADM: all noise levels; `maxTime` nil: `T`).
    /// A `maxTime` close to `minTime` trains an (almost) clean classifier.
    public var minTime: Double
    public var maxTime: Double?
    /// Uniformly dequantize integer data with this many levels (as the guided model was trained); nil: off.
    public var dequantizationLevels: Int?

    /// A run's settings (defaults: batch 128, Adam 1e-3 with 100 warm-up steps, clipping at 1, EMA 0.999, `t ∈ [10⁻³, T]`).
    public init(sde: SDESpec, architecture: Architecture, dataScaling: DataScaling = .identity,
                seed: UInt64 = 0, batchSize: Int = 128, learningRate: Double = 1e-3, warmup: Int = 100, gradClip: Double = 1,
                emaRate: Double = 0.999, minTime: Double = 1e-3, maxTime: Double? = nil, dequantizationLevels: Int? = nil) {
        self.sde = sde; self.architecture = architecture; self.dataScaling = dataScaling; self.seed = seed
        self.batchSize = batchSize; self.learningRate = learningRate; self.warmup = warmup; self.gradClip = gradClip
        self.emaRate = emaRate; self.minTime = minTime; self.maxTime = maxTime; self.dequantizationLevels = dequantizationLevels
    }

    /// - Throws: `invalidParameter` for a bad setting.
    public func validate() throws {
        try architecture.validate()
        let T = try sde.make().T
        try requireParameter(batchSize >= 1, name: "batchSize", value: batchSize, requirement: ">= 1")
        try requireParameter(learningRate.isFinite && learningRate > 0, name: "learningRate", value: learningRate, requirement: "finite and > 0")
        try requireParameter(warmup >= 0, name: "warmup", value: warmup, requirement: ">= 0 steps")
        try requireParameter(gradClip.isFinite, name: "gradClip", value: gradClip, requirement: "finite", advice: "a negative clip turns clipping off")
        try requireParameter(emaRate >= 0 && emaRate < 1, name: "emaRate", value: emaRate, requirement: "in [0, 1)")
        try requireParameter(minTime.isFinite && minTime > 0 && minTime <= T, name: "minTime", value: minTime, requirement: "in (0, \(T)] (the smallest training time)")
        if let m = maxTime { try requireParameter(m.isFinite && m >= minTime && m <= T, name: "maxTime", value: m, requirement: "in [minTime, T] = [\(minTime), \(T)] (the largest training time)") }
        if let l = dequantizationLevels { try requireParameter(l >= 2, name: "dequantizationLevels", value: l, requirement: ">= 2 (or nil for none)") }
    }

    var metadata: [String: String] {
        var m = ["train.seed": "\(seed)", "train.batch_size": "\(batchSize)", "train.lr": "\(learningRate)",
                 "train.warmup": "\(warmup)", "train.grad_clip": "\(gradClip)", "train.ema_rate": "\(emaRate)",
                 "train.min_time": "\(minTime)"]
        if let maxTime { m["train.max_time"] = "\(maxTime)" }
        if let l = dequantizationLevels { m["data.dequantization_levels"] = "\(l)" }
        return m
    }
}

/// A classifier network that ``NoisyClassifierTrainer`` trains with cross-entropy on noisy
/// samples: ``NoiseAwareClassifier`` (MLP, float64) and ``ConvolutionalClassifier`` (U-Net
/// encoder, float32). Adam, the EMA and checkpoints work on its flat ``TrainableNetwork`` vector.
public protocol NoisyClassifierNetwork: TrainableNetwork {
    /// The network's shape.
    associatedtype Architecture: ClassifierArchitecture
    /// Scratch memory a training pass reuses across steps (one per trainer).
    associatedtype TrainingWorkspace
    /// The network's shape.
    var architecture: Architecture { get }
    /// The forward SDE whose marginals the classifier labels.
    var sdeSpec: SDESpec { get }
    /// ``sdeSpec`` built.
    var sde: any ForwardSDE { get }
    /// Data → model space map of its input.
    var dataScaling: DataScaling { get }
    /// The network a new run starts from: weights initialised from the configuration's seed.
    static func initialNetwork(for configuration: NoisyClassifierTrainingConfiguration<Architecture>) throws -> Self
    /// A workspace for training passes.
    func makeTrainingWorkspace() -> TrainingWorkspace
    /// The mean cross-entropy of model-space rows `x` at per-row `times` and `labels`, and its
    /// gradient with respect to the flat parameters.
    func crossEntropyAndGradient(_ x: Tensor, times: [Double], labels: [Int], workspace: TrainingWorkspace) throws
        -> (loss: Double, gradient: [Scalar])
    /// The most probable class of every model-space row at time `t`.
    func predict(_ x: Tensor, at t: Double) throws -> [Int]
    /// Metadata of a file holding this network (`content`: `weights` or `checkpoint`).
    func fileMetadata(content: String) -> [String: String]
    /// The network (zero weights) a classifier checkpoint describes.
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for another kind of file or bad metadata.
    static func checkpointSkeleton(_ file: SafetensorsFile) throws -> Self
}

/// Trains an MLP ``NoiseAwareClassifier`` (see ``NoisyClassifierTrainer``).
public typealias ClassifierTrainer = NoisyClassifierTrainer<NoiseAwareClassifier>

/// Trains a ``ConvolutionalClassifier`` (see ``NoisyClassifierTrainer``).
public typealias ConvolutionalClassifierTrainer = NoisyClassifierTrainer<ConvolutionalClassifier>

/// Trains a noise-aware classifier with cross-entropy on noisy samples (Dhariwal & Nichol 2021,
/// §4: the classifier sees `x_t = m(t) x₀ + σ(t) z` at `t ~ U[minTime, maxTime]`), with the
/// score trainer's Adam (warm-up, clipping), EMA and checkpoint schedule: ``ClassifierTrainer``
/// for the MLP, ``ConvolutionalClassifierTrainer`` for the convolutional classifier.
///
///     let trainer = try ClassifierTrainer(configuration: config, data: digits.images, labels: digits.labels)
///     try trainer.train(steps: 2000)
///     let classifier = trainer.emaClassifier
///
/// Step `k` draws its rows, times, noise and dequantization from Philox streams `(k, row)` of the
/// seed: a run is reproducible, and a resumed checkpoint (weights, EMA and Adam moments in the
/// network's precision: F64 for the MLP, F32 for the convolutional network) continues bitwise.
public final class NoisyClassifierTrainer<Network: NoisyClassifierNetwork>: CheckpointedTrainer {
    /// The run's settings.
    public typealias Configuration = NoisyClassifierTrainingConfiguration<Network.Architecture>
    /// The run's settings.
    public let configuration: Configuration
    /// The network with the current (raw, not averaged) weights.
    public private(set) var classifier: Network
    /// The exponential moving average of the weights.
    public private(set) var ema: MovingAverage<Network.Scalar>
    /// Adam's state.
    public private(set) var optimizer: Adam<Network.Scalar>
    /// Steps completed.
    public private(set) var completedSteps: Int
    /// Training data in data space and its labels.
    let data: Tensor
    let labels: [Int]
    let trainable: [Range<Int>]
    let dataHash: UInt64
    let sde: any ForwardSDE
    let workspace: Network.TrainingWorkspace

    static var purpose: UInt64 { 0x636C_6674_7261_696E }   // "clftrain"

    /// A new run from freshly initialised weights.
    ///
    /// - Throws: `invalidArgument` for a bad configuration or labels outside the classes;
    ///   `shapeMismatch` for labels whose count differs from the data rows or rows of another shape.
    public convenience init(configuration: Configuration, data: Tensor, labels: [Int]) throws {
        try configuration.validate()
        let c = try Network.initialNetwork(for: configuration)
        let p = c.flatParameters
        try self.init(configuration: configuration, data: data, labels: labels, classifier: c,
                      ema: MovingAverage(rate: configuration.emaRate, initial: p),
                      optimizer: Adam(parameterCount: p.count, learningRate: configuration.learningRate,
                                      warmup: configuration.warmup, gradClip: configuration.gradClip),
                      completedSteps: 0)
    }

    init(configuration: Configuration, data: Tensor, labels: [Int], classifier: Network,
         ema: MovingAverage<Network.Scalar>, optimizer: Adam<Network.Scalar>, completedSteps: Int) throws {
        try configuration.validate()
        guard data.rows >= 1 else { throw ScoreSDEError.invalid("data", "\(data.rows) rows", must: "at least one row (the training data)") }
        guard labels.count == data.rows else {
            throw ScoreSDEError.shapeMismatch("\(labels.count) labels for \(data.rows) data rows; give exactly one label per row")
        }
        let k = configuration.architecture.classCount
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= k }) {
            throw ScoreSDEError.invalid("labels", "\(labels[bad]) at row \(bad)", must: "in the classifier's \(k) classes 0...\(k - 1)")
        }
        let shape = configuration.architecture.rowShape
        guard data.rowSize == shape.reduce(1, *) else {
            throw ScoreSDEError.shapeMismatch("the classifier takes samples of shape \(shape) but the data rows have shape \(data.rowShape)")
        }
        try data.checkFinite("the training data")
        if let levels = configuration.dequantizationLevels,
           let i = data.storage.firstIndex(where: { !($0 >= 0 && $0 < Double(levels) && $0.rounded() == $0) }) {
            throw ScoreSDEError.invalidArgument("dequantization needs integer levels 0...\(levels - 1) as data, but row \(i / max(data.rowSize, 1)) has \(data.storage[i])")
        }
        self.configuration = configuration; self.classifier = classifier; self.ema = ema; self.optimizer = optimizer
        self.completedSteps = completedSteps; self.data = data; self.labels = labels
        trainable = classifier.tensors.filter(\.trainable).map(\.range)
        dataHash = Trainer.fingerprint(data, labels: labels)
        sde = classifier.sde
        workspace = classifier.makeTrainingWorkspace()
    }

    /// The classifier with the EMA weights (the one to guide with).
    public var emaClassifier: Network {
        // The average of finite weights of the right count (checked every step) is a valid network.
        do { return try classifier.withFlatParameters(ema.values) } catch { preconditionFailure("NoisyClassifierTrainer: the EMA weights do not make a network: \(error)") }
    }

    /// The model-space noisy batch `x_t`, times and labels of step `step`.
    @_specialize(where Network == NoiseAwareClassifier) @_specialize(where Network == ConvolutionalClassifier)
    public func batch(forStep step: Int) -> (x: Tensor, times: [Double], labels: [Int]) {
        let b = configuration.batchSize, d = data.rowSize, n = UInt64(data.rows)
        let rng = RandomSource(seed: configuration.seed).derived(Self.purpose)
        let lo = configuration.minTime, hi = configuration.maxTime ?? sde.T
        let scaling = configuration.dataScaling
        let dequantize = configuration.dequantizationLevels != nil
        var x = [Double](repeating: 0, count: b * d), times = [Double](repeating: 0, count: b), ys = [Int](repeating: 0, count: b)
        let base = UInt64(step) &* 4
        data.storage.withUnsafeBufferPointer { src in
            x.withUnsafeMutableBufferPointer { dst in
                for r in 0 ..< b {
                    var s = rng.stream(draw: base, row: r)
                    let i = Int(s.next().multipliedFullWidth(by: n).high)
                    let t = lo + (hi - lo) * (Double(s.next() >> 11) * 0x1p-53)
                    let (m, sd) = sde.marginal(at: t)
                    times[r] = t; ys[r] = labels[i]
                    var z = rng.stream(draw: base + 1, row: r), u = rng.stream(draw: base + 2, row: r)
                    for j in 0 ..< d {
                        let raw = src[i * d + j] + (dequantize ? Double(u.next() >> 11) * 0x1p-53 : 0)
                        dst[r * d + j] = m * scaling.modelValue(raw) + sd * z.normal()
                    }
                }
            }
        }
        return (Tensor(uncheckedShape: [b] + configuration.architecture.rowShape, storage: x), times, ys)
    }

    /// Gradient norm (before clipping) of the last step.
    public private(set) var lastGradientNorm = 0.0

    /// One Adam step on the cross-entropy of the next batch; returns its loss.
    @discardableResult
    public func step() throws -> Double { try step(requestingStop: false).loss }

    /// The learning rate of step `step` (0-based): ``Adam/learningRate(atStep:)``.
    public func learningRate(atStep step: Int) -> Double { optimizer.learningRate(atStep: step) }

    /// One step (``CheckpointedTrainer``). Classifier training is one process's: a stop request
    /// stops after this step.
    ///
    /// - Throws: `nonFinite` when the loss or the updated weights are NaN or ±Inf (the weights
    ///   are left as they were).
    // Callers in other modules reach the unspecialised generic code: route the library's networks
    // to specialisations compiled here.
    @_specialize(where Network == NoiseAwareClassifier) @_specialize(where Network == ConvolutionalClassifier)
    public func step(requestingStop: Bool) throws -> (loss: Double, stop: Bool) {
        let s = completedSteps
        let (x, times, ys) = batch(forStep: s)
        var (loss, grad) = try classifier.crossEntropyAndGradient(x, times: times, labels: ys, workspace: workspace)
        var p = classifier.flatParameters
        lastGradientNorm = optimizer.step(&p, gradient: &grad, step: s, trainable: trainable)
        guard p.allSatisfy(\.isFinite) else {
            throw ScoreSDEError.nonFinite("the classifier weights became NaN or Inf at step \(s + 1); lower the learning rate")
        }
        classifier = try classifier.withFlatParameters(p)
        ema.update(with: p)
        completedSteps += 1
        return (loss, requestingStop)
    }

    /// Accuracy of `classifier` on `x₀` (data space) noised to time `t` with the seed's noise (dequantized
    /// like training when `dequantizationLevels` is set): the fraction of rows whose most probable class is the label.
    @_specialize(where Network == NoiseAwareClassifier) @_specialize(where Network == ConvolutionalClassifier)
    public static func accuracy(of classifier: Network, data x0: Tensor, labels: [Int], at t: Double,
                                seed: UInt64, dequantizationLevels: Int? = nil) throws -> Double {
        guard labels.count == x0.rows else { throw ScoreSDEError.shapeMismatch("\(labels.count) labels for \(x0.rows) rows") }
        guard t.isFinite, t > 0, t <= classifier.sde.T else { throw ScoreSDEError.invalid("t", t, must: "in (0, \(classifier.sde.T)]") }
        let (m, sd) = classifier.sde.marginal(at: t)
        let rng = RandomSource(seed: seed).derived(Self.purpose)
        let d = x0.rowSize, a = classifier.dataScaling
        var x = [Double](repeating: 0, count: x0.count)
        for r in 0 ..< x0.rows {
            var z = rng.stream(draw: 1, row: r), u = rng.stream(draw: 2, row: r)
            for j in 0 ..< d {
                let raw = x0.storage[r * d + j] + (dequantizationLevels != nil ? Double(u.next() >> 11) * 0x1p-53 : 0)
                x[r * d + j] = m * a.modelValue(raw) + sd * z.normal()
            }
        }
        let predicted = try classifier.predict(Tensor(uncheckedShape: x0.shape, storage: x), at: t)
        return Double(zip(predicted, labels).filter { $0 == $1 }.count) / Double(labels.count)
    }

    // MARK: - Checkpoints

    /// Writes a checkpoint (checksummed, in the network's precision) atomically.
    public func save(to path: String, keepPrevious: Bool = false) throws {
        try AtomicFile.write(checkpointData(), to: path,
                             keepingPreviousAs: keepPrevious ? ModelFile.previousCheckpointPath(for: path) : nil)
    }

    /// The bytes of the checkpoint (with its ``ModelFile/checksumKey``).
    public func checkpointData() throws -> Data {
        var meta = classifier.fileMetadata(content: "checkpoint")
        meta.merge(configuration.metadata) { a, _ in a }
        meta["train.step"] = "\(completedSteps)"
        meta["data.rows"] = "\(data.rows)"
        meta["data.fingerprint"] = String(dataHash, radix: 16)
        return try ModelFile.checkpointData(metadata: meta, tensors: classifier.tensors, parameters: classifier.flatParameters,
                                            ema: ema.values, optimizer: optimizer)
    }

    /// Continues a run from its checkpoint: same settings, weights, EMA, Adam state and step.
    ///
    /// - Throws: `io` for a bad or damaged file, a weights file or a checkpoint of another kind of
    ///   classifier; `invalidArgument` when `data` / `labels` are not the run's.
    public static func resume(from path: String, data: Tensor, labels: [Int]) throws -> NoisyClassifierTrainer {
        do {
            return try resume(Safetensors.read(path), data: data, labels: labels)
        } catch ScoreSDEError.io(let p, let message) where FileManager.default.fileExists(atPath: path) {
            throw ScoreSDEError.io(path: p, message: message + ModelFile.previousCheckpointAdvice(path))
        }
    }

    /// Continues a run from a decoded checkpoint (see ``resume(from:data:labels:)``).
    public static func resume(_ file: SafetensorsFile, data: Tensor, labels: [Int]) throws -> NoisyClassifierTrainer {
        let path = file.path
        guard try ClassifierFile.content(of: file) == "checkpoint" else {
            throw ScoreSDEError.io(path: path, message: "this is a classifier weights file, not a training checkpoint: it has no optimiser state to resume from")
        }
        try ModelFile.verifyChecksum(file, required: true)
        let m = MetadataReader(map: file.metadata, path: path)
        let skeleton = try Network.checkpointSkeleton(file)
        let config = Configuration(
            sde: skeleton.sdeSpec, architecture: skeleton.architecture, dataScaling: skeleton.dataScaling,
            seed: try m.uint64("train.seed"), batchSize: try m.int("train.batch_size"), learningRate: try m.double("train.lr"),
            warmup: try m.int("train.warmup"), gradClip: try m.double("train.grad_clip"), emaRate: try m.double("train.ema_rate"),
            minTime: try m.double("train.min_time"), maxTime: m.map["train.max_time"] == nil ? nil : try m.double("train.max_time"),
            dequantizationLevels: m.map["data.dequantization_levels"] == nil ? nil : try m.int("data.dequantization_levels"))
        do { try config.validate() } catch { throw m.fail("the checkpoint's settings are invalid: \(error)") }
        guard config.batchSize <= 1 << 20 else { throw m.fail("train.batch_size \(config.batchSize) is too large; the file is corrupt") }
        let steps = try m.int("train.step")
        guard steps >= 0 else { throw m.fail("metadata 'train.step' is \(steps); expected >= 0") }
        let hash = Trainer.fingerprint(data, labels: labels)
        guard try m.int("data.rows") == data.rows, UInt64(try m.string("data.fingerprint"), radix: 16) == hash else {
            throw ScoreSDEError.invalidArgument("the data and labels (\(data.rows) rows) are not those this classifier checkpoint was trained on; resume with the same data")
        }
        let tensors = skeleton.tensors, count = skeleton.flatParameters.count
        var adam = Adam<Network.Scalar>(parameterCount: count, learningRate: config.learningRate, warmup: config.warmup, gradClip: config.gradClip)
        let state = try ModelFile.trainingState(file, tensors: tensors, count: count, steps: steps, emaRate: config.emaRate, optimizer: &adam)
        let classifier = try skeleton.withFlatParameters(state.parameters)
        return try NoisyClassifierTrainer(configuration: config, data: data, labels: labels, classifier: classifier,
                                          ema: state.ema, optimizer: adam, completedSteps: steps)
    }
}

extension NoiseAwareClassifier: NoisyClassifierNetwork {
    /// The parameters' scalar: the MLP computes in float64.
    public typealias Scalar = Double
    /// Every tensor under its name (`embed.W` is a fixed buffer, not trained).
    public var tensors: [NetworkTensor] {
        specs.map { NetworkTensor(name: $0.name, shape: $0.shape, offset: $0.offset, trainable: $0.trainable) }
    }
    /// ``parameters``.
    public var flatParameters: [Double] { parameters }
    /// ``withParameters(_:)``.
    public func withFlatParameters(_ values: [Double]) throws -> NoiseAwareClassifier { try withParameters(values) }

    /// A freshly initialised network from the configuration's seed.
    public static func initialNetwork(for c: ClassifierTrainingConfiguration) throws -> NoiseAwareClassifier {
        try NoiseAwareClassifier(architecture: c.architecture, sde: c.sde, dataScaling: c.dataScaling, seed: c.seed)
    }
    /// The MLP needs no workspace.
    public func makeTrainingWorkspace() {}
    /// ``crossEntropyAndGradient(_:times:labels:)``.
    public func crossEntropyAndGradient(_ x: Tensor, times: [Double], labels: [Int], workspace: Void) throws -> (loss: Double, gradient: [Double]) {
        try crossEntropyAndGradient(x, times: times, labels: labels)
    }
    /// The metadata of ``ClassifierFile``.
    public func fileMetadata(content: String) -> [String: String] { ClassifierFile.metadata(self, content: content) }
    /// The network an MLP classifier checkpoint describes.
    public static func checkpointSkeleton(_ file: SafetensorsFile) throws -> NoiseAwareClassifier { try ClassifierFile.skeleton(file) }
}

/// A ``ConvolutionalClassifier``'s training network: its own float32 network instance (the
/// weights copied in per pass) and the converted input.
public final class ConvolutionalClassifierWorkspace {
    let entry: ConvolutionalClassifierPool.Entry
    init(_ entry: ConvolutionalClassifierPool.Entry) { self.entry = entry }
}

extension ConvolutionalClassifier: NoisyClassifierNetwork {
    /// A freshly initialised network from the configuration's seed, recording its training times and dequantization.
    public static func initialNetwork(for c: ConvolutionalClassifierTrainingConfiguration) throws -> ConvolutionalClassifier {
        let T = try c.sde.make().T
        return try ConvolutionalClassifier(architecture: c.architecture, sde: c.sde, dataScaling: c.dataScaling,
                                           trainingTimes: c.minTime ... (c.maxTime ?? T), dequantizationLevels: c.dequantizationLevels, seed: c.seed)
    }
    /// A network instance of its own.
    public func makeTrainingWorkspace() -> ConvolutionalClassifierWorkspace {
        // `architecture` passed validate() in init (the pool built a network from it), and it is a `let`.
        ConvolutionalClassifierWorkspace(ConvolutionalClassifierPool.Entry(ConvolutionalClassifierNetwork<Float>(validated: architecture)))
    }
    /// ``crossEntropyAndGradient(_:times:labels:)`` on the workspace's network.
    public func crossEntropyAndGradient(_ x: Tensor, times: [Double], labels: [Int], workspace: ConvolutionalClassifierWorkspace) throws -> (loss: Double, gradient: [Float]) {
        guard labels.count == x.rows else { throw ScoreSDEError.shapeMismatch("the cross-entropy needs one label per row (\(x.rows) rows, \(labels.count) labels)") }
        try checkLabels(labels, rows: x.rows)
        try checkInput(x, times: times)
        let net = workspace.entry.network
        parameters.withUnsafeBufferPointer { net.parameters.update(from: $0.baseAddress!, count: $0.count) }
        let loss = try ConvolutionalClassifier.crossEntropy(net, scratch: workspace.entry.scratch, x, times: times, labels: labels)
        return (loss, Array(UnsafeBufferPointer(start: net.gradients, count: net.parameterCount)))
    }
    /// ``metadata(content:)``.
    public func fileMetadata(content: String) -> [String: String] { metadata(content: content) }
    /// The network a convolutional classifier checkpoint describes.
    public static func checkpointSkeleton(_ file: SafetensorsFile) throws -> ConvolutionalClassifier { try skeleton(file) }
}

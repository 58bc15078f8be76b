import Foundation

/// Settings of a ``ClassifierTrainer`` run.
public struct ClassifierTrainingConfiguration: Sendable, Equatable {
    /// The forward SDE whose noisy samples `x_t` the classifier learns to label (the guided model's).
    public var sde: SDESpec
    public var architecture: NoiseAwareClassifier.Architecture
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

    public init(sde: SDESpec, architecture: NoiseAwareClassifier.Architecture, dataScaling: DataScaling = .identity,
                seed: UInt64 = 0, batchSize: Int = 128, learningRate: Double = 1e-3, warmup: Int = 100, gradClip: Double = 1,
                emaRate: Double = 0.999, minTime: Double = 1e-3, maxTime: Double? = nil, dequantizationLevels: Int? = nil) {
        self.sde = sde; self.architecture = architecture; self.dataScaling = dataScaling; self.seed = seed
        self.batchSize = batchSize; self.learningRate = learningRate; self.warmup = warmup; self.gradClip = gradClip
        self.emaRate = emaRate; self.minTime = minTime; self.maxTime = maxTime; self.dequantizationLevels = dequantizationLevels
    }

    /// - Throws: `invalidArgument` for a bad setting.
    public func validate() throws {
        try architecture.validate()
        let T = try sde.make().T
        try requireParameter(batchSize >= 1, "the batch size must be >= 1 (got \(batchSize))")
        try requireParameter(learningRate.isFinite && learningRate > 0, "the learning rate must be finite and > 0 (got \(learningRate))")
        try requireParameter(warmup >= 0, "the warm-up must be >= 0 steps (got \(warmup))")
        try requireParameter(gradClip.isFinite, "the gradient clip must be finite (got \(gradClip)); negative turns it off")
        try requireParameter(emaRate >= 0 && emaRate < 1, "the EMA rate must be in [0, 1) (got \(emaRate))")
        try requireParameter(minTime.isFinite && minTime > 0 && minTime <= T, "the smallest training time must be in (0, \(T)] (got \(minTime))")
        if let m = maxTime { try requireParameter(m.isFinite && m >= minTime && m <= T, "the largest training time must be in [\(minTime), \(T)] (got \(m))") }
        if let l = dequantizationLevels { try requireParameter(l >= 2, "dequantization needs >= 2 levels (got \(l))") }
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

/// Trains a ``NoiseAwareClassifier`` with cross-entropy on noisy samples (Dhariwal & Nichol 2021,
/// §4: the classifier sees `x_t = m(t) x₀ + σ(t) z` at `t ~ U[minTime, maxTime]`), with the
/// score trainer's Adam (warm-up, clipping), EMA and checkpoint schedule.
///
///     let trainer = try ClassifierTrainer(configuration: config, data: digits.images, labels: digits.labels)
///     try trainer.train(steps: 2000)
///     let classifier = trainer.emaClassifier
///
/// Step `k` draws its rows, times, noise and dequantization from Philox streams `(k, row)` of the
/// seed: a run is reproducible, and a resumed checkpoint continues bitwise.
public final class ClassifierTrainer: CheckpointedTrainer {
    public let configuration: ClassifierTrainingConfiguration
    public private(set) var classifier: NoiseAwareClassifier
    public private(set) var ema: ExponentialMovingAverage
    public private(set) var optimizer: AdamOptimizer
    public private(set) var completedSteps: Int
    /// Training data in data space and its labels.
    let data: Tensor
    let labels: [Int]
    let trainable: [Range<Int>]
    let dataHash: UInt64
    let sde: any ForwardSDE

    static let purpose: UInt64 = 0x636C_6674_7261_696E   // "clftrain"

    /// A new run from freshly initialised weights.
    ///
    /// - Throws: `invalidArgument` for a bad configuration or labels outside the classes;
    ///   `shapeMismatch` for labels whose count differs from the data rows or rows of another shape.
    public convenience init(configuration: ClassifierTrainingConfiguration, data: Tensor, labels: [Int]) throws {
        try configuration.validate()
        let c = try NoiseAwareClassifier(architecture: configuration.architecture, sde: configuration.sde,
                                         dataScaling: configuration.dataScaling, seed: configuration.seed)
        try self.init(configuration: configuration, data: data, labels: labels, classifier: c,
                      ema: ExponentialMovingAverage(rate: configuration.emaRate, initial: c.parameters),
                      optimizer: AdamOptimizer(parameterCount: c.parameters.count, learningRate: configuration.learningRate,
                                               warmup: configuration.warmup, gradClip: configuration.gradClip),
                      completedSteps: 0)
    }

    init(configuration: ClassifierTrainingConfiguration, data: Tensor, labels: [Int], classifier: NoiseAwareClassifier,
         ema: ExponentialMovingAverage, optimizer: AdamOptimizer, completedSteps: Int) throws {
        try configuration.validate()
        guard data.rows >= 1 else { throw ScoreSDEError.invalidArgument("the training data has no rows") }
        guard labels.count == data.rows else {
            throw ScoreSDEError.shapeMismatch("\(labels.count) labels for \(data.rows) data rows; give exactly one label per row")
        }
        let k = configuration.architecture.classCount
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= k }) {
            throw ScoreSDEError.invalidArgument("label \(labels[bad]) of row \(bad) is outside the classifier's \(k) classes 0...\(k - 1)")
        }
        guard data.rowSize == configuration.architecture.dimension else {
            throw ScoreSDEError.shapeMismatch("the classifier takes samples of shape \(configuration.architecture.rowShape) but the data rows have shape \(data.rowShape)")
        }
        try data.checkFinite("the training data")
        if let levels = configuration.dequantizationLevels,
           let i = data.storage.firstIndex(where: { !($0 >= 0 && $0 < Double(levels) && $0.rounded() == $0) }) {
            throw ScoreSDEError.invalidArgument("dequantization needs integer levels 0...\(levels - 1) as data, but row \(i / max(data.rowSize, 1)) has \(data.storage[i])")
        }
        self.configuration = configuration; self.classifier = classifier; self.ema = ema; self.optimizer = optimizer
        self.completedSteps = completedSteps; self.data = data; self.labels = labels
        trainable = classifier.specs.filter(\.trainable).map(\.range)
        dataHash = Trainer.fingerprint(data, labels: labels)
        sde = classifier.sde
    }

    /// The classifier with the EMA weights (the one to guide with).
    public var emaClassifier: NoiseAwareClassifier {
        var c = classifier
        c.parameters = ema.values
        return c
    }

    /// The model-space noisy batch `x_t`, times and labels of step `step`.
    public func batch(forStep step: Int) -> (x: Tensor, times: [Double], labels: [Int]) {
        let b = configuration.batchSize, d = data.rowSize, n = UInt64(data.rows)
        let rng = RandomSource(seed: configuration.seed).derived(Self.purpose)
        let lo = configuration.minTime, hi = configuration.maxTime ?? sde.T
        let scale = configuration.dataScaling.scale, shift = configuration.dataScaling.shift
        let dequantize = configuration.dequantizationLevels != nil
        var x = [Double](repeating: 0, count: b * d), times = [Double](repeating: 0, count: b), ys = [Int](repeating: 0, count: b)
        let base = UInt64(step) &* 4
        for r in 0 ..< b {
            var s = rng.stream(draw: base, row: r)
            let i = Int(s.next().multipliedFullWidth(by: n).high)
            let t = lo + (hi - lo) * (Double(s.next() >> 11) * 0x1p-53)
            let (m, sd) = sde.marginal(at: t)
            times[r] = t; ys[r] = labels[i]
            var z = rng.stream(draw: base + 1, row: r), u = rng.stream(draw: base + 2, row: r)
            for j in 0 ..< d {
                let raw = data.storage[i * d + j] + (dequantize ? Double(u.next() >> 11) * 0x1p-53 : 0)
                x[r * d + j] = m * (scale * raw + shift) + sd * z.normal()
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
    public func step(requestingStop: Bool) throws -> (loss: Double, stop: Bool) {
        let s = completedSteps
        let (x, times, ys) = batch(forStep: s)
        var (loss, grad) = try classifier.crossEntropyAndGradient(x, times: times, labels: ys)
        lastGradientNorm = optimizer.step(&classifier.parameters, gradient: &grad, step: s, trainable: trainable)
        guard classifier.parameters.allSatisfy(\.isFinite) else {
            throw ScoreSDEError.nonFinite("the classifier weights became NaN or Inf at step \(s + 1); lower the learning rate")
        }
        ema.update(with: classifier.parameters)
        completedSteps += 1
        return (loss, requestingStop)
    }

    /// Accuracy of `classifier` on `x₀` (data space) noised to time `t` with the seed's noise (dequantized
    /// like training when `dequantizationLevels` is set): the fraction of rows whose most probable class is the label.
    public static func accuracy(of classifier: NoiseAwareClassifier, data x0: Tensor, labels: [Int], at t: Double,
                                seed: UInt64, dequantizationLevels: Int? = nil) throws -> Double {
        guard labels.count == x0.rows else { throw ScoreSDEError.shapeMismatch("\(labels.count) labels for \(x0.rows) rows") }
        let (m, sd) = classifier.sde.marginal(at: t)
        let rng = RandomSource(seed: seed).derived(Self.purpose)
        let d = x0.rowSize, a = classifier.dataScaling
        var x = [Double](repeating: 0, count: x0.count)
        for r in 0 ..< x0.rows {
            var z = rng.stream(draw: 1, row: r), u = rng.stream(draw: 2, row: r)
            for j in 0 ..< d {
                let raw = x0.storage[r * d + j] + (dequantizationLevels != nil ? Double(u.next() >> 11) * 0x1p-53 : 0)
                x[r * d + j] = m * (a.scale * raw + a.shift) + sd * z.normal()
            }
        }
        let predicted = try classifier.predict(Tensor(uncheckedShape: x0.shape, storage: x), at: t)
        return Double(zip(predicted, labels).filter { $0 == $1 }.count) / Double(labels.count)
    }

    // MARK: - Checkpoints

    /// Writes a checkpoint (F64, checksummed) atomically.
    public func save(to path: String, keepPrevious: Bool = false) throws {
        try AtomicFile.write(checkpointData(), to: path,
                             keepingPreviousAs: keepPrevious ? ModelFile.previousCheckpointPath(for: path) : nil)
    }

    public func checkpointData() throws -> Data {
        var meta = ClassifierFile.metadata(classifier, content: "checkpoint")
        meta.merge(configuration.metadata) { a, _ in a }
        meta["train.step"] = "\(completedSteps)"
        meta["data.rows"] = "\(data.rows)"
        meta["data.fingerprint"] = String(dataHash, radix: 16)
        return try ModelFile.checkpointData(metadata: meta, tensors: classifier.tensors, parameters: classifier.parameters,
                                            ema: ema.values, optimizer: optimizer)
    }

    /// Continues a run from its checkpoint: same settings, weights, EMA, Adam state and step.
    ///
    /// - Throws: `io` for a bad or damaged file or a weights file; `invalidArgument` when `data` /
    ///   `labels` are not the run's.
    public static func resume(from path: String, data: Tensor, labels: [Int]) throws -> ClassifierTrainer {
        let file = try Safetensors.read(path)
        guard try ClassifierFile.content(of: file) == "checkpoint" else {
            throw ScoreSDEError.io(path: path, message: "this is a classifier weights file, not a training checkpoint: it has no optimiser state to resume from")
        }
        try ModelFile.verifyChecksum(file, required: true)
        let m = MetadataReader(map: file.metadata, path: path)
        let skeleton = try ClassifierFile.skeleton(file)
        let config = ClassifierTrainingConfiguration(
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
        let tensors = skeleton.tensors, count = skeleton.parameters.count
        var adam = AdamOptimizer(parameterCount: count, learningRate: config.learningRate, warmup: config.warmup, gradClip: config.gradClip)
        let state = try ModelFile.trainingState(file, tensors: tensors, count: count, steps: steps, emaRate: config.emaRate, optimizer: &adam)
        let classifier = try skeleton.withParameters(state.parameters), ema = state.ema
        return try ClassifierTrainer(configuration: config, data: data, labels: labels, classifier: classifier,
                                     ema: ema, optimizer: adam, completedSteps: steps)
    }
}

extension NoiseAwareClassifier: TrainableNetwork {
    public typealias Scalar = Double
    public var tensors: [NetworkTensor] {
        specs.map { NetworkTensor(name: $0.name, shape: $0.shape, offset: $0.offset, trainable: $0.trainable) }
    }
    public var flatParameters: [Double] { parameters }
    public func withFlatParameters(_ values: [Double]) throws -> NoiseAwareClassifier { try withParameters(values) }
}

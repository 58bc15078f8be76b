import Foundation

/// Everything that defines a training run of an ``MLPScore``. Defaults are the reference's
/// (`configs/default_cifar10_configs.py`: lr 2e-4, warm-up 5000, grad clip 1, EMA 0.999 (VE),
/// `reduce_mean=False`, `likelihood_weighting=False`, eps 1e-5), batch 128.
public struct TrainingConfiguration: Sendable, Equatable {
    public var sde: SDESpec
    public var architecture: MLPArchitecture
    /// nil: the reference's for the SDE kind (VE: scaled by σ; VP, sub-VP: noise prediction).
    public var parameterization: MLPOutputParameterization?
    /// Data → model space map applied to the data before training (recorded with the weights).
    public var dataScaling: DataScaling
    /// Seeds the initial weights and every step's minibatch, times and noise.
    public var seed: UInt64
    public var batchSize: Int
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var adamEpsilon: Double
    /// Linear warm-up steps (`lr · min(step / warmup, 1)`); 0: none.
    public var warmup: Int
    /// Gradient-norm clipping threshold; negative: off.
    public var gradClip: Double
    /// EMA decay of the weights used for sampling (reference: 0.999 VE, 0.9999 VP).
    public var emaRate: Double
    /// Mean over a sample's values (true) or half their sum (false).
    public var reduceMean: Bool
    /// λ = g² (true) or λ = std² (false).
    public var likelihoodWeighting: Bool
    /// Smallest training time: `t ~ U(eps, T)` (or the importance distribution on `[eps, T]`).
    public var eps: Double
    /// How training times are drawn (``TrainingTimeSampling/importance`` needs likelihood weighting).
    public var timeSampling: TrainingTimeSampling
    /// `δ` of the ``MLPOutputParameterization/boundedNoisePrediction`` output (model-space units).
    public var noiseFloor: Double
    /// Uniform dequantization during training, for data with this many integer levels `0 ... L−1`:
    /// every step adds fresh `u ~ U[0, 1)` to each value in data space, `x₀ = scale · (k + u) + shift`,
    /// so the model learns a density of the dequantized data (whose likelihood bounds that of the
    /// discrete data). Recorded with the model (``MLPScore/dequantizationLevels``). nil: off.
    public var dequantizationLevels: Int?
    /// Class-conditional training (``MLPArchitecture/classCount`` > 0): the probability that an
    /// example's label is replaced by the null label `∅` (classifier-free guidance's label dropout).
    public var labelDropout: Double

    public init(sde: SDESpec, architecture: MLPArchitecture, parameterization: MLPOutputParameterization? = nil,
                dataScaling: DataScaling = .identity, seed: UInt64 = 0, batchSize: Int = 128,
                learningRate: Double = 2e-4, beta1: Double = 0.9, beta2: Double = 0.999, adamEpsilon: Double = 1e-8,
                warmup: Int = 5000, gradClip: Double = 1, emaRate: Double = 0.999,
                reduceMean: Bool = false, likelihoodWeighting: Bool = false, eps: Double = 1e-5,
                timeSampling: TrainingTimeSampling = .uniform, noiseFloor: Double = 0, dequantizationLevels: Int? = nil,
                labelDropout: Double = 0.15) {
        self.sde = sde; self.architecture = architecture; self.parameterization = parameterization
        self.dataScaling = dataScaling; self.seed = seed; self.batchSize = batchSize
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.adamEpsilon = adamEpsilon
        self.warmup = warmup; self.gradClip = gradClip; self.emaRate = emaRate
        self.reduceMean = reduceMean; self.likelihoodWeighting = likelihoodWeighting; self.eps = eps
        self.timeSampling = timeSampling; self.noiseFloor = noiseFloor; self.dequantizationLevels = dequantizationLevels
        self.labelDropout = labelDropout
    }

    /// - Throws: `invalidArgument` naming the first setting out of its domain.
    public func validate() throws {
        try architecture.validate()
        _ = try sde.make()
        try requireParameter(batchSize >= 1, "the batch size must be >= 1 (got \(batchSize))")
        try requireParameter(learningRate.isFinite && learningRate > 0, "the learning rate must be finite and > 0 (got \(learningRate)); the reference uses 2e-4")
        try requireParameter(beta1 >= 0 && beta1 < 1, "Adam beta1 must be in [0, 1) (got \(beta1))")
        try requireParameter(beta2 >= 0 && beta2 < 1, "Adam beta2 must be in [0, 1) (got \(beta2))")
        try requireParameter(adamEpsilon.isFinite && adamEpsilon > 0, "Adam eps must be finite and > 0 (got \(adamEpsilon))")
        try requireParameter(warmup >= 0, "warm-up steps must be >= 0 (got \(warmup))")
        try requireParameter(!gradClip.isNaN && gradClip != .infinity, "the gradient clip must be finite (negative turns clipping off; got \(gradClip))")
        try requireParameter(emaRate >= 0 && emaRate < 1, "the EMA rate must be in [0, 1) (got \(emaRate)); the reference uses 0.999 or 0.9999")
        try requireParameter(eps.isFinite && eps > 0 && eps < 1, "the training eps must be in (0, T) (got \(eps)); the reference uses 1e-5")
        try requireParameter(timeSampling == .uniform || likelihoodWeighting, "importance sampling of t is for likelihood weighting (λ = g²); turn likelihood weighting on or sample t uniformly")
        if let l = dequantizationLevels { try requireParameter(l >= 2, "dequantization needs >= 2 levels (got \(l))") }
        try requireParameter(labelDropout >= 0 && labelDropout < 1, "the label dropout probability must be in [0, 1) (got \(labelDropout)); 0.1–0.2 is usual")
        if (parameterization ?? sde.defaultParameterization) == .boundedNoisePrediction {
            try requireParameter(noiseFloor.isFinite && noiseFloor > 0, "the bounded noise-prediction output needs a noise floor > 0 (got \(noiseFloor))")
        }
    }

    /// Metadata entries `train.*` (the SDE, network and data scaling are recorded separately).
    var trainingMetadata: [String: String] {
        ["train.seed": "\(seed)", "train.batch_size": "\(batchSize)", "train.lr": "\(learningRate)",
         "train.beta1": "\(beta1)", "train.beta2": "\(beta2)", "train.adam_eps": "\(adamEpsilon)",
         "train.warmup": "\(warmup)", "train.grad_clip": "\(gradClip)", "train.ema_rate": "\(emaRate)",
         "train.reduce_mean": "\(reduceMean)", "train.likelihood_weighting": "\(likelihoodWeighting)",
         "train.eps": "\(eps)", "train.time_sampling": timeSampling.rawValue,
         "train.label_dropout": "\(labelDropout)"]
    }

    init(metadata m: MetadataReader) throws {
        let param = try m.string("model.parameterization")
        guard let p = MLPOutputParameterization(rawValue: param) else {
            throw m.fail("metadata 'model.parameterization' is '\(param)'; expected noise, scaled_by_sigma or noise_bounded")
        }
        let sampling = try m.map["train.time_sampling"].map { name in
            guard let v = TrainingTimeSampling(rawValue: name) else { throw m.fail("metadata 'train.time_sampling' is '\(name)'; expected uniform or importance") }
            return v
        } ?? .uniform
        self.init(sde: try SDESpec(metadata: m), architecture: try MLPArchitecture(metadata: m), parameterization: p,
                  dataScaling: try DataScaling(metadata: m), seed: try m.uint64("train.seed"),
                  batchSize: try m.int("train.batch_size"), learningRate: try m.double("train.lr"),
                  beta1: try m.double("train.beta1"), beta2: try m.double("train.beta2"),
                  adamEpsilon: try m.double("train.adam_eps"), warmup: try m.int("train.warmup"),
                  gradClip: try m.double("train.grad_clip"), emaRate: try m.double("train.ema_rate"),
                  reduceMean: try m.bool("train.reduce_mean"), likelihoodWeighting: try m.bool("train.likelihood_weighting"),
                  eps: try m.double("train.eps"), timeSampling: sampling,
                  noiseFloor: m.map["model.noise_floor"] == nil ? 0 : try m.double("model.noise_floor"),
                  dequantizationLevels: m.map["data.dequantization_levels"] == nil ? nil : try m.int("data.dequantization_levels"),
                  labelDropout: m.map["train.label_dropout"] == nil ? 0.15 : try m.double("train.label_dropout"))
        do { try validate() } catch let ScoreSDEError.invalidArgument(msg) { throw m.fail("the recorded training settings are invalid: \(msg)") }
    }
}

/// What one step did.
public struct TrainingProgress: Sendable {
    /// Steps completed, this one included.
    public let step: Int
    public let loss: Double
    public let learningRate: Double
    /// Gradient norm before clipping.
    public let gradientNorm: Double
}

/// Trains an ``MLPScore`` by denoising score matching with Adam, warm-up, clipping and an EMA of
/// the weights (the reference's `run_lib.train`).
///
///     let trainer = try Trainer(configuration: config, data: samples)
///     let losses = try trainer.train(steps: 2000) { p in if p.step % 100 == 0 { print(p.step, p.loss) } }
///     try trainer.save(to: "run.safetensors")
///     let model = trainer.emaModel                      // or MLPScore.load(from: "run.safetensors")
///     // later: let t = try Trainer.resume(from: "run.safetensors", data: samples); try t.train(steps: 2000)
///
/// Step `k`'s minibatch (rows drawn uniformly with replacement), times and noise are a pure function
/// of `(seed, k)` (``DSMLoss/drawBatch(step:seed:batchSize:dataRows:rowShape:)``), and a checkpoint
/// holds the weights, EMA, Adam moments and step count exactly (F64): training `k` steps, saving,
/// resuming and training `k` more gives bitwise the weights and losses of `2k` uninterrupted steps
/// (on the same machine and thread count, as BLAS results depend on them).
public final class Trainer {
    public let configuration: TrainingConfiguration
    /// The network with the current (raw, not averaged) weights.
    public private(set) var model: MLPScore
    public private(set) var ema: ExponentialMovingAverage
    public private(set) var optimizer: AdamOptimizer
    /// Steps completed.
    public private(set) var completedSteps: Int
    /// The training data in model space (after ``TrainingConfiguration/dataScaling``).
    public let data: Tensor
    /// The class of each data row (class-conditional networks), else nil.
    public let labels: [Int]?
    /// Gradient norm (before clipping) of the last step.
    public private(set) var lastGradientNorm: Double = 0

    let loss: DSMLoss
    let dataRows: Int
    let dataHash: UInt64
    let workspace: MLPTrainingWorkspace
    var gradient: [Double]
    var x0: [Double]
    let trainable: [Range<Int>]

    /// A new run: weights initialised from the seed.
    ///
    /// - Parameters:
    ///   - configuration: the run's settings (architecture, SDE, optimiser, seed).
    ///   - data: the training samples in data space, `n × rowShape` with the
    ///     architecture's sample size; finite.
    ///   - labels: the class of each row, in `0 ..< classCount`: required exactly when the
    ///     architecture is class-conditional.
    public convenience init(configuration: TrainingConfiguration, data: Tensor, labels: [Int]? = nil) throws {
        try configuration.validate()
        var model = try MLPScore(architecture: configuration.architecture, sde: configuration.sde,
                                 parameterization: configuration.parameterization, noiseFloor: configuration.noiseFloor,
                                 dataScaling: configuration.dataScaling, seed: configuration.seed)
        if configuration.architecture.gaussianBase {   // the fixed Gaussian base, fitted to the training data
            model = try model.withGaussianBase(fittedTo: data, dequantizationLevels: configuration.dequantizationLevels)
        }
        try self.init(configuration: configuration, data: data, labels: labels, model: model,
                      ema: ExponentialMovingAverage(rate: configuration.emaRate, initial: model.parameters),
                      optimizer: AdamOptimizer(parameterCount: model.parameters.count, learningRate: configuration.learningRate,
                                               beta1: configuration.beta1, beta2: configuration.beta2,
                                               epsilon: configuration.adamEpsilon, warmup: configuration.warmup,
                                               gradClip: configuration.gradClip),
                      completedSteps: 0)
    }

    init(configuration: TrainingConfiguration, data raw: Tensor, labels: [Int]? = nil, model: MLPScore, ema: ExponentialMovingAverage,
         optimizer: AdamOptimizer, completedSteps: Int) throws {
        try configuration.validate()
        guard raw.rows >= 1 else { throw ScoreSDEError.invalidArgument("the training data has no rows") }
        try Trainer.checkLabels(labels, rows: raw.rows, classCount: configuration.architecture.classCount)
        if let levels = configuration.dequantizationLevels,
           let i = raw.storage.firstIndex(where: { !($0 >= 0 && $0 < Double(levels) && $0.rounded() == $0) }) {
            throw ScoreSDEError.invalidArgument("dequantization needs integer levels 0...\(levels - 1) as data, but row \(i / max(raw.rowSize, 1)) has \(raw.storage[i]); train without dequantization for continuous data")
        }
        guard raw.rowSize == configuration.architecture.dimension else {
            throw ScoreSDEError.shapeMismatch("the network takes samples of shape \(configuration.architecture.rowShape) (\(configuration.architecture.dimension) values) but the data rows have shape \(raw.rowShape) (\(raw.rowSize) values)")
        }
        try raw.checkFinite("the training data")
        self.configuration = configuration
        var model = model
        model.dequantizationLevels = configuration.dequantizationLevels
        // Likelihood-grade runs (likelihood weighting) state their likelihood at the training eps.
        model.likelihoodEps = configuration.likelihoodWeighting ? configuration.eps : nil
        self.model = model
        self.ema = ema
        self.optimizer = optimizer
        self.completedSteps = completedSteps
        data = try configuration.dataScaling.toModel(raw).reshaped([raw.rows] + configuration.architecture.rowShape)
        self.labels = labels
        dataRows = raw.rows
        dataHash = Trainer.fingerprint(raw, labels: labels)
        loss = try DSMLoss(sde: model.sde, reduceMean: configuration.reduceMean,
                           likelihoodWeighting: configuration.likelihoodWeighting, eps: configuration.eps,
                           timeSampling: configuration.timeSampling)
        workspace = MLPTrainingWorkspace(layout: model.layout, capacity: configuration.batchSize)
        gradient = [Double](repeating: 0, count: model.parameters.count)
        x0 = [Double](repeating: 0, count: configuration.batchSize * raw.rowSize)
        trainable = model.specs.filter(\.trainable).map(\.range)
    }

    /// The network with the EMA weights: the one to sample from.
    public var emaModel: MLPScore {
        var m = model
        m.parameters = ema.values
        return m
    }

    /// The minibatch, times and noise of step `step` (0-based) of this run.
    /// Class-conditional runs: each example's label, replaced by the null label with probability
    /// ``TrainingConfiguration/labelDropout`` (stream `(step, row)` of the seed's label-dropout purpose).
    public func batch(forStep step: Int) throws -> DSMBatch {
        var b = try loss.drawBatch(step: step, seed: configuration.seed, batchSize: configuration.batchSize,
                                   dataRows: data.rows, rowShape: data.rowShape)
        if let labels {
            let rng = RandomSource(seed: configuration.seed).derived(Trainer.labelDropoutPurpose)
            let k = configuration.architecture.classCount, p = configuration.labelDropout
            b.labels = b.indices.enumerated().map { r, i in
                var s = rng.stream(draw: UInt64(step), row: r)
                return Double(s.next() >> 11) * 0x1p-53 < p ? k : labels[i]
            }
        }
        return b
    }

    static let labelDropoutPurpose: UInt64 = 0x6C61_6264_726F_70   // "labdrop"
    static let dequantizationPurpose: UInt64 = 0x6465_7175_616E_74   // "dequant"

    /// Throws unless `labels` is nil for an unconditional network, or one label in `0 ..< classCount` per row.
    static func checkLabels(_ labels: [Int]?, rows: Int, classCount k: Int) throws {
        guard let labels else {
            if k > 0 { throw ScoreSDEError.invalidArgument("the network is class-conditional (\(k) classes) but no labels were given; give one label per data row") }
            return
        }
        guard k > 0 else { throw ScoreSDEError.invalidArgument("labels were given but the network is unconditional; set the architecture's class count") }
        guard labels.count == rows else {
            throw ScoreSDEError.shapeMismatch("\(labels.count) labels for \(rows) data rows; give exactly one label per row")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= k }) {
            throw ScoreSDEError.invalidArgument("label \(labels[bad]) of row \(bad) is outside the \(k) classes 0...\(k - 1)")
        }
    }

    /// One optimisation step; returns its loss (computed before the update, as the reference reports it).
    ///
    /// - Throws: `nonFinite` when the loss is NaN or ±Inf (the state is left unchanged).
    @discardableResult
    public func step() throws -> Double {
        let s = completedSteps
        let b = try batch(forStep: s)
        let d = data.rowSize
        data.storage.withUnsafeBufferPointer { src in
            x0.withUnsafeMutableBufferPointer { dst in
                for (r, i) in b.indices.enumerated() {
                    (dst.baseAddress! + r * d).update(from: src.baseAddress! + i * d, count: d)
                }
            }
        }
        if configuration.dequantizationLevels != nil {
            // x₀ = scale · (k + u) + shift: fresh u ~ U[0, 1) per value and step.
            let rng = RandomSource(seed: configuration.seed).derived(Trainer.dequantizationPurpose)
            let a = configuration.dataScaling.scale
            for r in 0 ..< b.indices.count {
                var st = rng.stream(draw: UInt64(s), row: r)
                for j in 0 ..< d { x0[r * d + j] += a * (Double(st.next() >> 11) * 0x1p-53) }
            }
        }
        if let l = b.labels { workspace.labels.replaceSubrange(0 ..< l.count, with: l) }
        gradient.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        let value = try x0.withUnsafeBufferPointer { xp in
            try gradient.withUnsafeMutableBufferPointer { gp in
                try model.trainingPass(loss, x0: xp.baseAddress!, times: b.times, noise: b.noise,
                                       workspace: workspace, gradient: gp.baseAddress!)
            }
        }
        lastGradientNorm = optimizer.step(&model.parameters, gradient: &gradient, step: s, trainable: trainable)
        ema.update(with: model.parameters)
        completedSteps += 1
        return value
    }

    /// Runs `steps` steps; returns their losses. `onProgress` is called after each step.
    @discardableResult
    public func train(steps: Int, onProgress: ((TrainingProgress) -> Void)? = nil) throws -> [Double] {
        guard steps >= 0 else { throw ScoreSDEError.invalidArgument("the number of steps must be >= 0 (got \(steps))") }
        var losses = [Double]()
        losses.reserveCapacity(steps)
        for _ in 0 ..< steps {
            let lr = optimizer.learningRate(atStep: completedSteps)
            let value = try step()
            losses.append(value)
            onProgress?(TrainingProgress(step: completedSteps, loss: value, learningRate: lr, gradientNorm: lastGradientNorm))
        }
        return losses
    }

    /// A 64-bit fingerprint of the data (rows, shape and every value's bits), recorded in
    /// checkpoints so that a resume on other data is caught.
    static func fingerprint(_ t: Tensor, labels: [Int]? = nil) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for s in t.shape { h = (h ^ UInt64(truncatingIfNeeded: s)) &* 0x1000_0000_01B3 }
        t.storage.withUnsafeBufferPointer { p in
            for v in p { h = (h ^ v.bitPattern) &* 0x1000_0000_01B3; h ^= h >> 29 }
        }
        // Labels (class-conditional runs) are part of the data; unlabelled data hash as before.
        for y in labels ?? [] { h = (h ^ UInt64(bitPattern: Int64(y))) &* 0x1000_0000_01B3; h ^= h >> 29 }
        return h
    }
}

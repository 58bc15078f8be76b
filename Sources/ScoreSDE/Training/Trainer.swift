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
    /// Smallest training time: `t ~ U(eps, T)`.
    public var eps: Double

    public init(sde: SDESpec, architecture: MLPArchitecture, parameterization: MLPOutputParameterization? = nil,
                dataScaling: DataScaling = .identity, seed: UInt64 = 0, batchSize: Int = 128,
                learningRate: Double = 2e-4, beta1: Double = 0.9, beta2: Double = 0.999, adamEpsilon: Double = 1e-8,
                warmup: Int = 5000, gradClip: Double = 1, emaRate: Double = 0.999,
                reduceMean: Bool = false, likelihoodWeighting: Bool = false, eps: Double = 1e-5) {
        self.sde = sde; self.architecture = architecture; self.parameterization = parameterization
        self.dataScaling = dataScaling; self.seed = seed; self.batchSize = batchSize
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.adamEpsilon = adamEpsilon
        self.warmup = warmup; self.gradClip = gradClip; self.emaRate = emaRate
        self.reduceMean = reduceMean; self.likelihoodWeighting = likelihoodWeighting; self.eps = eps
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
    }

    /// Metadata entries `train.*` (the SDE, network and data scaling are recorded separately).
    var trainingMetadata: [String: String] {
        ["train.seed": "\(seed)", "train.batch_size": "\(batchSize)", "train.lr": "\(learningRate)",
         "train.beta1": "\(beta1)", "train.beta2": "\(beta2)", "train.adam_eps": "\(adamEpsilon)",
         "train.warmup": "\(warmup)", "train.grad_clip": "\(gradClip)", "train.ema_rate": "\(emaRate)",
         "train.reduce_mean": "\(reduceMean)", "train.likelihood_weighting": "\(likelihoodWeighting)",
         "train.eps": "\(eps)"]
    }

    init(metadata m: MetadataReader) throws {
        let param = try m.string("model.parameterization")
        guard let p = MLPOutputParameterization(rawValue: param) else {
            throw m.fail("metadata 'model.parameterization' is '\(param)'; expected noise or scaled_by_sigma")
        }
        self.init(sde: try SDESpec(metadata: m), architecture: try MLPArchitecture(metadata: m), parameterization: p,
                  dataScaling: try DataScaling(metadata: m), seed: try m.uint64("train.seed"),
                  batchSize: try m.int("train.batch_size"), learningRate: try m.double("train.lr"),
                  beta1: try m.double("train.beta1"), beta2: try m.double("train.beta2"),
                  adamEpsilon: try m.double("train.adam_eps"), warmup: try m.int("train.warmup"),
                  gradClip: try m.double("train.grad_clip"), emaRate: try m.double("train.ema_rate"),
                  reduceMean: try m.bool("train.reduce_mean"), likelihoodWeighting: try m.bool("train.likelihood_weighting"),
                  eps: try m.double("train.eps"))
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
    public convenience init(configuration: TrainingConfiguration, data: Tensor) throws {
        try configuration.validate()
        let model = try MLPScore(architecture: configuration.architecture, sde: configuration.sde,
                                 parameterization: configuration.parameterization,
                                 dataScaling: configuration.dataScaling, seed: configuration.seed)
        try self.init(configuration: configuration, data: data, model: model,
                      ema: ExponentialMovingAverage(rate: configuration.emaRate, initial: model.parameters),
                      optimizer: AdamOptimizer(parameterCount: model.parameters.count, learningRate: configuration.learningRate,
                                               beta1: configuration.beta1, beta2: configuration.beta2,
                                               epsilon: configuration.adamEpsilon, warmup: configuration.warmup,
                                               gradClip: configuration.gradClip),
                      completedSteps: 0)
    }

    init(configuration: TrainingConfiguration, data raw: Tensor, model: MLPScore, ema: ExponentialMovingAverage,
         optimizer: AdamOptimizer, completedSteps: Int) throws {
        try configuration.validate()
        guard raw.rows >= 1 else { throw ScoreSDEError.invalidArgument("the training data has no rows") }
        guard raw.rowSize == configuration.architecture.dimension else {
            throw ScoreSDEError.shapeMismatch("the network takes samples of shape \(configuration.architecture.rowShape) (\(configuration.architecture.dimension) values) but the data rows have shape \(raw.rowShape) (\(raw.rowSize) values)")
        }
        try raw.checkFinite("the training data")
        self.configuration = configuration
        self.model = model
        self.ema = ema
        self.optimizer = optimizer
        self.completedSteps = completedSteps
        data = try configuration.dataScaling.toModel(raw).reshaped([raw.rows] + configuration.architecture.rowShape)
        dataRows = raw.rows
        dataHash = Trainer.fingerprint(raw)
        loss = try DSMLoss(sde: model.sde, reduceMean: configuration.reduceMean,
                           likelihoodWeighting: configuration.likelihoodWeighting, eps: configuration.eps)
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
    public func batch(forStep step: Int) throws -> DSMBatch {
        try loss.drawBatch(step: step, seed: configuration.seed, batchSize: configuration.batchSize,
                       dataRows: data.rows, rowShape: data.rowShape)
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
    static func fingerprint(_ t: Tensor) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for s in t.shape { h = (h ^ UInt64(truncatingIfNeeded: s)) &* 0x1000_0000_01B3 }
        t.storage.withUnsafeBufferPointer { p in
            for v in p { h = (h ^ v.bitPattern) &* 0x1000_0000_01B3; h ^= h >> 29 }
        }
        return h
    }
}

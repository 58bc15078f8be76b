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
    /// Rows per gradient block (``GradientBlocks``): the batch gradient is the in-order sum of
    /// the blocks' partial gradients, which fixes its bits for any number of processes sharing a
    /// step (at most ⌈batch / block⌉ of them). nil: the whole batch is one block (one process only).
    /// Part of the run: recorded in checkpoints as `train.gradient_block`.
    public var gradientBlockSize: Int?
    /// The precision the network computes in (``MLPPrecision``): float32 runs the training pass's
    /// forward and backward in float32 against float64 master weights, Adam moments and EMA.
    /// Recorded with the model (`model.precision`), so sampling from it computes in float32 too.
    public var precision: MLPPrecision

    public init(sde: SDESpec, architecture: MLPArchitecture, parameterization: MLPOutputParameterization? = nil,
                dataScaling: DataScaling = .identity, seed: UInt64 = 0, batchSize: Int = 128,
                learningRate: Double = 2e-4, beta1: Double = 0.9, beta2: Double = 0.999, adamEpsilon: Double = 1e-8,
                warmup: Int = 5000, gradClip: Double = 1, emaRate: Double = 0.999,
                reduceMean: Bool = false, likelihoodWeighting: Bool = false, eps: Double = 1e-5,
                timeSampling: TrainingTimeSampling = .uniform, noiseFloor: Double = 0, dequantizationLevels: Int? = nil,
                labelDropout: Double = 0.15, gradientBlockSize: Int? = nil, precision: MLPPrecision = .float64) {
        self.sde = sde; self.architecture = architecture; self.parameterization = parameterization
        self.precision = precision
        self.dataScaling = dataScaling; self.seed = seed; self.batchSize = batchSize
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.adamEpsilon = adamEpsilon
        self.warmup = warmup; self.gradClip = gradClip; self.emaRate = emaRate
        self.reduceMean = reduceMean; self.likelihoodWeighting = likelihoodWeighting; self.eps = eps
        self.timeSampling = timeSampling; self.noiseFloor = noiseFloor; self.dequantizationLevels = dequantizationLevels
        self.labelDropout = labelDropout; self.gradientBlockSize = gradientBlockSize
    }

    /// The blocks of every step's batch.
    public var gradientBlocks: GradientBlocks { GradientBlocks(batchSize: batchSize, blockSize: gradientBlockSize ?? batchSize) }

    /// The settings shared by every network.
    public var options: DSMTrainingOptions {
        DSMTrainingOptions(sde: sde, dataScaling: dataScaling, seed: seed, batchSize: batchSize, learningRate: learningRate,
                           beta1: beta1, beta2: beta2, adamEpsilon: adamEpsilon, warmup: warmup, gradClip: gradClip,
                           emaRate: emaRate, reduceMean: reduceMean, likelihoodWeighting: likelihoodWeighting, eps: eps,
                           timeSampling: timeSampling, dequantizationLevels: dequantizationLevels,
                           labelDropout: labelDropout, gradientBlockSize: gradientBlockSize)
    }

    /// - Throws: `invalidParameter` naming the first setting out of its domain.
    public func validate() throws {
        try architecture.validate()
        try options.validate()
        if (parameterization ?? sde.defaultParameterization) == .boundedNoisePrediction {
            try requireParameter(noiseFloor.isFinite && noiseFloor > 0, name: "noiseFloor", value: noiseFloor, requirement: "finite and > 0 (the bounded noise-prediction output's floor)")
        }
    }

    /// Metadata entries `train.*` (the SDE, network and data scaling are recorded separately).
    var trainingMetadata: [String: String] { options.metadata }

    /// The MLP settings with the shared ones of `options`.
    public init(architecture: MLPArchitecture, parameterization: MLPOutputParameterization? = nil, noiseFloor: Double = 0,
                precision: MLPPrecision = .float64, options o: DSMTrainingOptions) {
        self.init(sde: o.sde, architecture: architecture, parameterization: parameterization, dataScaling: o.dataScaling,
                  seed: o.seed, batchSize: o.batchSize, learningRate: o.learningRate, beta1: o.beta1, beta2: o.beta2,
                  adamEpsilon: o.adamEpsilon, warmup: o.warmup, gradClip: o.gradClip, emaRate: o.emaRate,
                  reduceMean: o.reduceMean, likelihoodWeighting: o.likelihoodWeighting, eps: o.eps,
                  timeSampling: o.timeSampling, noiseFloor: noiseFloor, dequantizationLevels: o.dequantizationLevels,
                  labelDropout: o.labelDropout, gradientBlockSize: o.gradientBlockSize, precision: precision)
    }

    init(metadata m: MetadataReader) throws {
        let param = try m.string("model.parameterization")
        guard let p = MLPOutputParameterization(rawValue: param) else {
            throw m.fail("metadata 'model.parameterization' is '\(param)'; expected noise, scaled_by_sigma or noise_bounded")
        }
        _ = try DataScaling(metadata: m)   // required in MLP files
        self.init(architecture: try MLPArchitecture(metadata: m), parameterization: p,
                  noiseFloor: m.map["model.noise_floor"] == nil ? 0 : try m.double("model.noise_floor"),
                  precision: try MLPPrecision(metadata: m), options: try DSMTrainingOptions(metadata: m))
        do { try validate() } catch let error as ScoreSDEError where error.argumentMessage != nil { throw m.fail("the recorded training settings are invalid: \(error.argumentMessage ?? "")") }
    }
}

extension TrainingConfiguration: ScoreTrainingRecipe {
    public typealias Network = MLPScore

    /// A freshly initialised ``MLPScore``; with ``MLPArchitecture/gaussianBase`` its fixed base is
    /// fitted to the training data.
    public func makeNetwork(data: Tensor) throws -> MLPScore {
        var model = try MLPScore(architecture: architecture, sde: sde, parameterization: parameterization, noiseFloor: noiseFloor,
                                 dataScaling: dataScaling, seed: seed)
        model.precision = precision
        if architecture.gaussianBase {
            model = try model.withGaussianBase(fittedTo: data, dequantizationLevels: dequantizationLevels)
        }
        return model
    }

    /// Records the dequantization levels and, for likelihood-grade runs (likelihood weighting), the
    /// training eps as the time the model states its likelihood at.
    public func trained(_ network: MLPScore) -> MLPScore {
        var model = network
        model.dequantizationLevels = dequantizationLevels
        model.likelihoodEps = likelihoodWeighting ? eps : nil
        model.precision = precision
        return model
    }

    public func metadata(for network: MLPScore, content: String) -> [String: String] {
        var meta = ModelFile.modelMetadata(network, content: content)
        if content == "checkpoint" { meta.merge(trainingMetadata) { a, _ in a } }
        return meta
    }

    public static func checkpoint(_ file: SafetensorsFile) throws -> (recipe: TrainingConfiguration, network: MLPScore) {
        guard try ModelFile.content(of: file) == "checkpoint" else {
            throw ScoreSDEError.io(path: file.path, message: "this is a weights file, not a training checkpoint: it has no optimiser state to resume from (write checkpoints with Trainer.save)")
        }
        try ModelFile.verifyChecksum(file, required: true)
        let m = MetadataReader(map: file.metadata, path: file.path)
        let skeleton = try ModelFile.skeleton(file)   // checks the network's size against the file first
        let config = try TrainingConfiguration(metadata: m)
        guard let work = ModelFile.workspaceValues(config), work <= ModelFile.maxWorkspaceValues else {
            throw m.fail("train.batch_size \(config.batchSize) with this network needs more than \(ModelFile.maxWorkspaceValues >> 27) GiB of training workspace; the file is corrupt or the run too large to resume here")
        }
        return (config, skeleton)
    }
}

// MARK: - MLPScore as a trainable network

extension MLPScore: DenoisingScoreNetwork {
    public typealias Scalar = Double

    public var tensors: [NetworkTensor] {
        specs.map { NetworkTensor(name: $0.name, shape: $0.shape, offset: $0.offset, trainable: $0.trainable) }
    }
    public var flatParameters: [Double] { parameters }
    public func withFlatParameters(_ values: [Double]) throws -> MLPScore { try withParameters(values) }
    public var sampleShape: [Int] { architecture.rowShape }
    public var classCount: Int { architecture.classCount }

    public func makeTrainingWorkspace(rows: Int) -> MLPTrainingWorkspace { MLPTrainingWorkspace(layout: layout, capacity: rows, precision: precision) }

    public func addDSMGradient(_ loss: DSMLoss, parameters p: UnsafePointer<Double>, x0: UnsafePointer<Double>,
                               times: [Double], noise: UnsafePointer<Double>, labels: [Int]?, randomSeed: UInt64,
                               workspace: MLPTrainingWorkspace, gradient: UnsafeMutablePointer<Double>) throws -> Double {
        if let labels { workspace.labels.replaceSubrange(0 ..< labels.count, with: labels) }
        return try trainingPass(loss, parameters: p, x0: x0, times: times, noise: noise, workspace: workspace, gradient: gradient)
    }
}

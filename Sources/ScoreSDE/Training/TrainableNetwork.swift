import Foundation

/// One named tensor of a network's flat parameter vector (what checkpoints store under its name).
public struct NetworkTensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    /// Index of its first value in the flat vector.
    public let offset: Int
    /// Whether training updates it (fixed buffers such as Fourier frequencies are not).
    public let trainable: Bool
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset ..< offset + count }

    public init(name: String, shape: [Int], offset: Int, trainable: Bool = true) {
        self.name = name; self.shape = shape; self.offset = offset; self.trainable = trainable
    }
}

/// A network the trainers optimise: named tensors laid over one flat parameter vector of
/// ``Scalar`` (Double for the float64 MLPs, Float for the float32 U-Net). Adam, the EMA and
/// checkpoints work on that vector and these names alone, so they are the same code for every
/// network (``ScoreTrainer``, ``ClassifierTrainer``).
public protocol TrainableNetwork: Sendable {
    associatedtype Scalar: NetworkScalar
    /// The named tensors, in flat order, covering the whole vector.
    var tensors: [NetworkTensor] { get }
    /// The flat parameters (order of ``tensors``).
    var flatParameters: [Scalar] { get }
    /// The same network with other parameters.
    /// - Throws: `shapeMismatch` for another count, `nonFinite` for NaN/Inf.
    func withFlatParameters(_ values: [Scalar]) throws -> Self
}

/// A score network trainable by denoising score matching (``DSMLoss``): one batched pass that
/// perturbs clean rows, runs the network, evaluates the loss and back-propagates. ``MLPScore`` and
/// ``UNetScore`` implement it; so can a user's network, which then trains with ``ScoreTrainer``
/// (checkpoints, resume, signals, MPI data parallelism) unchanged.
public protocol DenoisingScoreNetwork: TrainableNetwork, ScoreModel {
    /// Scratch memory a training pass reuses across steps (one per trainer).
    associatedtype TrainingWorkspace
    /// The shape of one sample.
    var sampleShape: [Int] { get }
    /// `K` classes (labels `0..<K`, `K` the null label of classifier-free guidance); 0: unconditional.
    var classCount: Int { get }
    /// A workspace for passes of up to `rows` rows.
    func makeTrainingWorkspace(rows: Int) -> TrainingWorkspace
    /// The batch-mean `loss` of the `times.count` rows of `x0` (model space) perturbed with
    /// `noise` (standard normals, same layout), scored with `parameters`; **adds** its gradient
    /// with respect to every parameter into `gradient` and returns the loss. Class-conditional
    /// networks get one label per row in `labels` (`0...classCount`, the last the null label);
    /// `randomSeed` seeds stochastic layers (dropout) and is a function of the run's seed, the step
    /// and the rows, so the pass is the same whoever computes it; `workspace` is the trainer's.
    /// Throws `nonFinite` (before touching `gradient`) when the loss is not finite.
    func addDSMGradient(_ loss: DSMLoss, parameters: UnsafePointer<Scalar>, x0: UnsafePointer<Double>,
                        times: [Double], noise: UnsafePointer<Double>, labels: [Int]?, randomSeed: UInt64,
                        workspace: TrainingWorkspace, gradient: UnsafeMutablePointer<Scalar>) throws -> Double
}

/// The settings of a denoising-score-matching run that do not depend on the network: the SDE, the
/// data map, the optimiser, the loss and the randomness. Recorded in checkpoints as `train.*`
/// (and `sde.*`, `data.*`).
public struct DSMTrainingOptions: Sendable, Equatable {
    public var sde: SDESpec
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
    /// EMA decay of the weights used for sampling.
    public var emaRate: Double
    /// Mean over a sample's values (true) or half their sum (false).
    public var reduceMean: Bool
    /// λ = g² (true) or λ = std² (false).
    public var likelihoodWeighting: Bool
    /// Smallest training time.
    public var eps: Double
    public var timeSampling: TrainingTimeSampling
    /// Uniform dequantization of integer data with this many levels; nil: off.
    public var dequantizationLevels: Int?
    /// Class-conditional training: the probability of the null label.
    public var labelDropout: Double
    /// Rows per gradient block (``GradientBlocks``); nil: the whole batch.
    public var gradientBlockSize: Int?

    public init(sde: SDESpec, dataScaling: DataScaling = .identity, seed: UInt64 = 0, batchSize: Int = 128,
                learningRate: Double = 2e-4, beta1: Double = 0.9, beta2: Double = 0.999, adamEpsilon: Double = 1e-8,
                warmup: Int = 5000, gradClip: Double = 1, emaRate: Double = 0.999,
                reduceMean: Bool = false, likelihoodWeighting: Bool = false, eps: Double = 1e-5,
                timeSampling: TrainingTimeSampling = .uniform, dequantizationLevels: Int? = nil,
                labelDropout: Double = 0.15, gradientBlockSize: Int? = nil) {
        self.sde = sde; self.dataScaling = dataScaling; self.seed = seed; self.batchSize = batchSize
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.adamEpsilon = adamEpsilon
        self.warmup = warmup; self.gradClip = gradClip; self.emaRate = emaRate
        self.reduceMean = reduceMean; self.likelihoodWeighting = likelihoodWeighting; self.eps = eps
        self.timeSampling = timeSampling; self.dequantizationLevels = dequantizationLevels
        self.labelDropout = labelDropout; self.gradientBlockSize = gradientBlockSize
    }

    /// The blocks of every step's batch.
    public var gradientBlocks: GradientBlocks { GradientBlocks(batchSize: batchSize, blockSize: gradientBlockSize ?? batchSize) }

    /// - Throws: `invalidParameter` naming the first setting out of its domain; `invalidArgument` for
    ///   importance sampling of t without likelihood weighting.
    public func validate() throws {
        let T = try sde.make().T
        try requireParameter(batchSize >= 1, name: "batchSize", value: batchSize, requirement: ">= 1")
        try requireParameter(learningRate.isFinite && learningRate > 0, name: "learningRate", value: learningRate, requirement: "finite and > 0", advice: "the reference uses 2e-4")
        try requireParameter(beta1 >= 0 && beta1 < 1, name: "beta1", value: beta1, requirement: "in [0, 1) (Adam's beta1)")
        try requireParameter(beta2 >= 0 && beta2 < 1, name: "beta2", value: beta2, requirement: "in [0, 1) (Adam's beta2)")
        try requireParameter(adamEpsilon.isFinite && adamEpsilon > 0, name: "adamEpsilon", value: adamEpsilon, requirement: "finite and > 0 (Adam's eps)")
        try requireParameter(warmup >= 0, name: "warmup", value: warmup, requirement: ">= 0 steps")
        try requireParameter(!gradClip.isNaN && gradClip != .infinity, name: "gradClip", value: gradClip, requirement: "finite", advice: "a negative clip turns clipping off")
        try requireParameter(emaRate >= 0 && emaRate < 1, name: "emaRate", value: emaRate, requirement: "in [0, 1)", advice: "the reference uses 0.999 or 0.9999")
        try requireParameter(eps.isFinite && eps > 0 && eps < T, name: "eps", value: eps, requirement: "in (0, T = \(T)) (the training eps)", advice: "the reference uses 1e-5")
        try requireParameter(timeSampling == .uniform || likelihoodWeighting, "importance sampling of t is for likelihood weighting (λ = g²); turn likelihood weighting on or sample t uniformly")
        if let l = dequantizationLevels { try requireParameter(l >= 2, name: "dequantizationLevels", value: l, requirement: ">= 2 (or nil for none)") }
        if let b = gradientBlockSize { try requireParameter(b >= 1, name: "gradientBlockSize", value: b, requirement: ">= 1 row (the gradient block size)") }
        try requireParameter(labelDropout >= 0 && labelDropout < 1, name: "labelDropout", value: labelDropout, requirement: "in [0, 1) (a probability)", advice: "0.1–0.2 is usual")
    }

    /// Metadata entries `train.*` (the SDE and data scaling are recorded with the model).
    public var metadata: [String: String] {
        var m = ["train.seed": "\(seed)", "train.batch_size": "\(batchSize)", "train.lr": "\(learningRate)",
                 "train.beta1": "\(beta1)", "train.beta2": "\(beta2)", "train.adam_eps": "\(adamEpsilon)",
                 "train.warmup": "\(warmup)", "train.grad_clip": "\(gradClip)", "train.ema_rate": "\(emaRate)",
                 "train.reduce_mean": "\(reduceMean)", "train.likelihood_weighting": "\(likelihoodWeighting)",
                 "train.eps": "\(eps)", "train.time_sampling": timeSampling.rawValue,
                 "train.label_dropout": "\(labelDropout)"]
        if let b = gradientBlockSize { m["train.gradient_block"] = "\(b)" }
        return m
    }

    /// Reads the entries ``metadata`` writes, with `sde.*`, `data.scale`/`data.shift` and
    /// `data.dequantization_levels` (absent keys of older files take their old defaults).
    init(metadata m: MetadataReader) throws {
        let sampling = try m.map["train.time_sampling"].map { name in
            guard let v = TrainingTimeSampling(rawValue: name) else { throw m.fail("metadata 'train.time_sampling' is '\(name)'; expected uniform or importance") }
            return v
        } ?? .uniform
        self.init(sde: try SDESpec(metadata: m),
                  dataScaling: m.map["data.scale"] == nil ? .identity : try DataScaling(metadata: m),
                  seed: try m.uint64("train.seed"),
                  batchSize: try m.int("train.batch_size"), learningRate: try m.double("train.lr"),
                  beta1: try m.double("train.beta1"), beta2: try m.double("train.beta2"),
                  adamEpsilon: try m.double("train.adam_eps"), warmup: try m.int("train.warmup"),
                  gradClip: try m.double("train.grad_clip"), emaRate: try m.double("train.ema_rate"),
                  reduceMean: try m.bool("train.reduce_mean"), likelihoodWeighting: try m.bool("train.likelihood_weighting"),
                  eps: try m.double("train.eps"), timeSampling: sampling,
                  dequantizationLevels: m.map["data.dequantization_levels"] == nil ? nil : try m.int("data.dequantization_levels"),
                  labelDropout: m.map["train.label_dropout"] == nil ? 0.15 : try m.double("train.label_dropout"),
                  gradientBlockSize: m.map["train.gradient_block"] == nil ? nil : try m.int("train.gradient_block"))
    }
}

/// Everything that defines a training run of one kind of network: the network's own settings
/// (architecture, output parameterisation) and the ``DSMTrainingOptions``. ``TrainingConfiguration``
/// (``MLPScore``) and ``UNetTrainingConfiguration`` (``UNetScore``) are the library's.
public protocol ScoreTrainingRecipe: Sendable, Equatable {
    associatedtype Network: DenoisingScoreNetwork
    /// The settings shared by every network.
    var options: DSMTrainingOptions { get }
    /// - Throws: `invalidParameter` naming the first setting out of its domain.
    func validate() throws
    /// The network a new run starts from: weights initialised from ``DSMTrainingOptions/seed``,
    /// fitted to `data` (model space) where the architecture has a fitted part.
    func makeNetwork(data: Tensor) throws -> Network
    /// The network as training leaves it: settings the run records in the model (dequantization,
    /// likelihood time) applied to `network`.
    func trained(_ network: Network) -> Network
    /// Metadata of a file holding `network` trained with these settings (`content`: `weights` or `checkpoint`).
    func metadata(for network: Network, content: String) -> [String: String]
    /// The settings and the network (weights not loaded) a checkpoint records.
    /// - Throws: ``ScoreSDEError/io(path:message:)`` when `file` is not such a checkpoint.
    static func checkpoint(_ file: SafetensorsFile) throws -> (recipe: Self, network: Network)
}

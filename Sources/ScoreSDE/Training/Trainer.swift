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

    public init(sde: SDESpec, architecture: MLPArchitecture, parameterization: MLPOutputParameterization? = nil,
                dataScaling: DataScaling = .identity, seed: UInt64 = 0, batchSize: Int = 128,
                learningRate: Double = 2e-4, beta1: Double = 0.9, beta2: Double = 0.999, adamEpsilon: Double = 1e-8,
                warmup: Int = 5000, gradClip: Double = 1, emaRate: Double = 0.999,
                reduceMean: Bool = false, likelihoodWeighting: Bool = false, eps: Double = 1e-5,
                timeSampling: TrainingTimeSampling = .uniform, noiseFloor: Double = 0, dequantizationLevels: Int? = nil,
                labelDropout: Double = 0.15, gradientBlockSize: Int? = nil) {
        self.sde = sde; self.architecture = architecture; self.parameterization = parameterization
        self.dataScaling = dataScaling; self.seed = seed; self.batchSize = batchSize
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.adamEpsilon = adamEpsilon
        self.warmup = warmup; self.gradClip = gradClip; self.emaRate = emaRate
        self.reduceMean = reduceMean; self.likelihoodWeighting = likelihoodWeighting; self.eps = eps
        self.timeSampling = timeSampling; self.noiseFloor = noiseFloor; self.dequantizationLevels = dequantizationLevels
        self.labelDropout = labelDropout; self.gradientBlockSize = gradientBlockSize
    }

    /// The blocks of every step's batch.
    public var gradientBlocks: GradientBlocks { GradientBlocks(batchSize: batchSize, blockSize: gradientBlockSize ?? batchSize) }

    /// - Throws: `invalidArgument` naming the first setting out of its domain.
    public func validate() throws {
        try architecture.validate()
        let T = try sde.make().T
        try requireParameter(batchSize >= 1, "the batch size must be >= 1 (got \(batchSize))")
        try requireParameter(learningRate.isFinite && learningRate > 0, "the learning rate must be finite and > 0 (got \(learningRate)); the reference uses 2e-4")
        try requireParameter(beta1 >= 0 && beta1 < 1, "Adam beta1 must be in [0, 1) (got \(beta1))")
        try requireParameter(beta2 >= 0 && beta2 < 1, "Adam beta2 must be in [0, 1) (got \(beta2))")
        try requireParameter(adamEpsilon.isFinite && adamEpsilon > 0, "Adam eps must be finite and > 0 (got \(adamEpsilon))")
        try requireParameter(warmup >= 0, "warm-up steps must be >= 0 (got \(warmup))")
        try requireParameter(!gradClip.isNaN && gradClip != .infinity, "the gradient clip must be finite (negative turns clipping off; got \(gradClip))")
        try requireParameter(emaRate >= 0 && emaRate < 1, "the EMA rate must be in [0, 1) (got \(emaRate)); the reference uses 0.999 or 0.9999")
        try requireParameter(eps.isFinite && eps > 0 && eps < T, "the training eps must be in (0, \(T)) (got \(eps)); the reference uses 1e-5")
        try requireParameter(timeSampling == .uniform || likelihoodWeighting, "importance sampling of t is for likelihood weighting (λ = g²); turn likelihood weighting on or sample t uniformly")
        if let l = dequantizationLevels { try requireParameter(l >= 2, "dequantization needs >= 2 levels (got \(l))") }
        if let b = gradientBlockSize { try requireParameter(b >= 1, "the gradient block size must be >= 1 row (got \(b))") }
        try requireParameter(labelDropout >= 0 && labelDropout < 1, "the label dropout probability must be in [0, 1) (got \(labelDropout)); 0.1–0.2 is usual")
        if (parameterization ?? sde.defaultParameterization) == .boundedNoisePrediction {
            try requireParameter(noiseFloor.isFinite && noiseFloor > 0, "the bounded noise-prediction output needs a noise floor > 0 (got \(noiseFloor))")
        }
    }

    /// Metadata entries `train.*` (the SDE, network and data scaling are recorded separately).
    var trainingMetadata: [String: String] {
        var m = ["train.seed": "\(seed)", "train.batch_size": "\(batchSize)", "train.lr": "\(learningRate)",
         "train.beta1": "\(beta1)", "train.beta2": "\(beta2)", "train.adam_eps": "\(adamEpsilon)",
         "train.warmup": "\(warmup)", "train.grad_clip": "\(gradClip)", "train.ema_rate": "\(emaRate)",
         "train.reduce_mean": "\(reduceMean)", "train.likelihood_weighting": "\(likelihoodWeighting)",
         "train.eps": "\(eps)", "train.time_sampling": timeSampling.rawValue,
         "train.label_dropout": "\(labelDropout)"]
        if let b = gradientBlockSize { m["train.gradient_block"] = "\(b)" }
        return m
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
                  labelDropout: m.map["train.label_dropout"] == nil ? 0.15 : try m.double("train.label_dropout"),
                  gradientBlockSize: m.map["train.gradient_block"] == nil ? nil : try m.int("train.gradient_block"))
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
/// of `(seed, k)` (``DSMLoss/drawBatch(step:seed:batchSize:dataRows:rowShape:)``), each row's keyed
/// by its row, and a checkpoint holds the weights, EMA, Adam moments and step count exactly (F64):
/// training `k` steps, saving, resuming and training `k` more gives bitwise the weights and losses
/// of `2k` uninterrupted steps (on the same kind of machine: BLAS kernels differ between CPUs).
///
/// **Data-parallel training.** Under ``Population/communicator`` with several processes (the ranks
/// of an MPI job), each step's batch is shared: every process computes the partial gradients of
/// its contiguous run of ``TrainingConfiguration/gradientBlocks`` (drawing only its rows' indices,
/// times, noise, label dropout and dequantization, keyed by the global row), the partials are
/// summed in block order (``GradientBlockReducer``), and every process applies the same Adam step:
/// the weights after any number of steps are **bitwise** those of one process, for any number of
/// processes up to the block count. Only rank 0 writes checkpoints.
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
    /// The blocks of each step's batch, and one block's partial gradient and loss (P + 1 values).
    let blocks: GradientBlocks
    var partial: [Double]
    /// The in-order sum of the partials (one process).
    var blockSum: [Double]
    /// Whether the processes of a shared run have compared their starting states.
    var stateChecked = false

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
        blocks = configuration.gradientBlocks
        workspace = MLPTrainingWorkspace(layout: model.layout, capacity: blocks.blockSize)
        gradient = [Double](repeating: 0, count: model.parameters.count)
        partial = [Double](repeating: 0, count: model.parameters.count + 1)
        blockSum = partial
        x0 = [Double](repeating: 0, count: blocks.blockSize * raw.rowSize)
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
        b.labels = droppedLabels(step: step, rows: 0 ..< b.indices.count, indices: b.indices)
        return b
    }

    /// Rows `rows` of ``batch(forStep:)``, drawn alone: every value is keyed by its global row, so
    /// this is that batch's slice (what one process of a shared step draws).
    func batch(forStep step: Int, rows: Range<Int>) -> DSMBatch {
        let rng = RandomSource(seed: configuration.seed).derived(DSMLoss.trainingPurpose)
        let base = UInt64(step) &* 3, n = UInt64(data.rows)
        let span = loss.sde.T - loss.eps
        var indices = [Int](repeating: 0, count: rows.count), times = [Double](repeating: 0, count: rows.count)
        for (k, r) in rows.enumerated() {
            var s = rng.stream(draw: base, row: r)
            indices[k] = Int(s.next().multipliedFullWidth(by: n).high)
            var q = rng.stream(draw: base + 1, row: r)
            let u = Double(q.next() >> 11) * 0x1p-53
            times[k] = loss.importance?.time(forUniform: u) ?? loss.eps + u * span
        }
        var noise = Tensor(zeros: [rows.count] + data.rowShape)
        let d = data.rowSize
        noise.storage.withUnsafeMutableBufferPointer { p in
            if let base0 = p.baseAddress { rng.normals(draw: base + 2, rows: rows, rowSize: d, into: base0) }
        }
        return DSMBatch(indices: indices, times: times, noise: noise,
                        labels: droppedLabels(step: step, rows: rows, indices: indices))
    }

    /// Class-conditional runs: the label of each row of `rows` (data rows `indices`), replaced by
    /// the null label with probability ``TrainingConfiguration/labelDropout`` (stream `(step, row)`
    /// of the seed's label-dropout purpose); nil otherwise.
    func droppedLabels(step: Int, rows: Range<Int>, indices: [Int]) -> [Int]? {
        guard let labels else { return nil }
        let rng = RandomSource(seed: configuration.seed).derived(Trainer.labelDropoutPurpose)
        let k = configuration.architecture.classCount, p = configuration.labelDropout
        return zip(rows, indices).map { r, i in
            var s = rng.stream(draw: UInt64(step), row: r)
            return Double(s.next() >> 11) * 0x1p-53 < p ? k : labels[i]
        }
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
    /// Under ``Population/communicator`` with several processes, every process calls it and
    /// they share the step (see the type's discussion).
    ///
    /// - Throws: `nonFinite` when the loss is NaN or ±Inf (the state is left unchanged); shared:
    ///   ``PopulationError`` naming the rank that failed, or the first rank whose starting state
    ///   (data, weights, settings) differs from rank 0's, or `invalidArgument` when there are more
    ///   processes than gradient blocks.
    @discardableResult
    public func step() throws -> Double { try step(requestingStop: false).loss }

    /// One step; `requestingStop` is this process's wish to stop, and `stop` whether any process
    /// of a shared step had it (then all stop after this step).
    func step(requestingStop: Bool) throws -> (loss: Double, stop: Bool) {
        let s = completedSteps
        let comm = Population.communicator.flatMap { $0.size > 1 ? $0 : nil }
        if let comm {
            try blocks.checkShared(by: comm.size)
            if !stateChecked { try checkSameState(comm); stateChecked = true }
        }
        let mine = comm.map { blocks.owned(rank: $0.rank, size: $0.size) } ?? 0 ..< blocks.count
        let width = model.parameters.count + 1
        var note: StepNote = requestingStop ? .stop : .ok
        var partials = [[Double]]()
        blockSum.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        for blockIndex in mine {
            do {
                try computeBlock(blockIndex, step: s)
            } catch {
                guard comm != nil else { throw error }
                note = .failure("at step \(s + 1): \(error)")
                break
            }
            if comm == nil {
                partial.withUnsafeBufferPointer { p in
                    blockSum.withUnsafeMutableBufferPointer { GradientBlockReducer.accumulate(p.baseAddress!, into: $0.baseAddress!, count: width) }
                }
            } else {
                partials.append(partial)
            }
        }
        var stop = requestingStop
        if let comm {
            (blockSum, stop) = try GradientBlockReducer(blocks: blocks, width: width).reduce(partials, note: note, communicator: comm)
        }
        let value = blockSum[width - 1]
        gradient.withUnsafeMutableBufferPointer { g in
            blockSum.withUnsafeBufferPointer { g.baseAddress!.update(from: $0.baseAddress!, count: width - 1) }
        }
        lastGradientNorm = optimizer.step(&model.parameters, gradient: &gradient, step: s, trainable: trainable)
        ema.update(with: model.parameters)
        completedSteps += 1
        return (value, stop)
    }

    /// Block `b` of step `s`: its partial gradient and loss, scaled by its share of the batch,
    /// into ``partial``. A function of `(seed, s, b)` and the state alone, whoever computes it.
    func computeBlock(_ b: Int, step s: Int) throws {
        let rows = blocks.rows(of: b)
        let batch = batch(forStep: s, rows: rows)
        let d = data.rowSize, n = rows.count
        data.storage.withUnsafeBufferPointer { src in
            x0.withUnsafeMutableBufferPointer { dst in
                for (k, i) in batch.indices.enumerated() {
                    (dst.baseAddress! + k * d).update(from: src.baseAddress! + i * d, count: d)
                }
            }
        }
        if configuration.dequantizationLevels != nil {
            // x₀ = scale · (k + u) + shift: fresh u ~ U[0, 1) per value and step, keyed by the batch row.
            let rng = RandomSource(seed: configuration.seed).derived(Trainer.dequantizationPurpose)
            let a = configuration.dataScaling.scale
            for (k, r) in rows.enumerated() {
                var st = rng.stream(draw: UInt64(s), row: r)
                for j in 0 ..< d { x0[k * d + j] += a * (Double(st.next() >> 11) * 0x1p-53) }
            }
        }
        if let l = batch.labels { workspace.labels.replaceSubrange(0 ..< n, with: l) }
        partial.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        let width = partial.count
        let value = try x0.withUnsafeBufferPointer { xp in
            try partial.withUnsafeMutableBufferPointer { gp in
                try model.trainingPass(loss, x0: xp.baseAddress!, times: batch.times, noise: batch.noise,
                                       workspace: workspace, gradient: gp.baseAddress!)
            }
        }
        partial[width - 1] = value
        let w = blocks.weight(of: b)
        if w != 1 { for j in 0 ..< width { partial[j] *= w } }
    }

    /// Throws on every process of `comm`, naming the first rank whose data or training state
    /// (weights, EMA, Adam moments, step, settings) differ from rank 0's.
    func checkSameState(_ comm: any Communicator) throws {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ v: UInt64) { h = (h ^ v) &* 0x1000_0000_01B3; h ^= h >> 29 }
        mix(UInt64(completedSteps))
        for v in model.parameters { mix(v.bitPattern) }
        for v in ema.values { mix(v.bitPattern) }
        for v in optimizer.firstMoment { mix(v.bitPattern) }
        for v in optimizer.secondMoment { mix(v.bitPattern) }
        for (k, v) in configuration.trainingMetadata.sorted(by: { $0.key < $1.key }) { for b in (k + "=" + v).utf8 { mix(UInt64(b)) } }
        let mine = [dataHash, h]
        let all = try comm.allGather(mine.withUnsafeBytes { Array($0) })
        let states = all.map { part in part.withUnsafeBytes { (d: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), s: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) } }
        for (r, st) in states.enumerated() {
            if st.d != states[0].d {
                throw PopulationError(rank: r, size: comm.size, collective: true,
                                      message: "its training data differ from rank 0's (fingerprint \(String(st.d, radix: 16)) vs \(String(states[0].d, radix: 16))); every rank must load the same data")
            }
            if st.s != states[0].s {
                throw PopulationError(rank: r, size: comm.size, collective: true,
                                      message: "its training state (weights, EMA, Adam moments, step or settings) differs from rank 0's; every rank must start the same run or resume the same checkpoint")
            }
        }
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

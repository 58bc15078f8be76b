import Foundation

/// What one step did.
public struct TrainingProgress: Sendable {
    /// Steps completed, this one included.
    public let step: Int
    public let loss: Double
    public let learningRate: Double
    /// Gradient norm before clipping.
    public let gradientNorm: Double
}

/// Trains a ``DenoisingScoreNetwork`` by denoising score matching with Adam, warm-up, clipping and
/// an EMA of the weights (the reference's `run_lib.train`): ``Trainer`` for ``MLPScore``,
/// ``UNetTrainer`` for ``UNetScore``, and the same code for any network that implements the protocol.
///
///     let trainer = try Trainer(configuration: config, data: samples)
///     let losses = try trainer.train(steps: 2000) { p in if p.step % 100 == 0 { print(p.step, p.loss) } }
///     try trainer.save(to: "run.safetensors")
///     let model = trainer.emaModel                      // or MLPScore.load(from: "run.safetensors")
///     // later: let t = try Trainer.resume(from: "run.safetensors", data: samples); try t.train(steps: 2000)
///
/// Step `k`'s minibatch (rows drawn uniformly with replacement), times and noise are a pure function
/// of `(seed, k)` (``DSMLoss/drawBatch(step:seed:batchSize:dataRows:rowShape:)``), each row's keyed
/// by its row, and a checkpoint holds the weights, EMA, Adam moments and step count exactly (in the
/// network's own precision: F64 for the MLPs, F32 for the U-Net):
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
///
/// **Precision.** The state (weights, EMA, Adam moments) has the network's ``TrainableNetwork/Scalar``.
/// A block's gradient is computed in that precision; the partials are summed in Double (in block
/// order), and the sum is rounded once to the scalar before Adam (exact for float64 networks).
public final class ScoreTrainer<Recipe: ScoreTrainingRecipe>: CheckpointedTrainer {
    public typealias Network = Recipe.Network
    public typealias Scalar = Network.Scalar
    public let configuration: Recipe
    /// The current (raw, not averaged) weights, flat (order of ``TrainableNetwork/tensors``).
    public private(set) var parameters: [Scalar]
    public private(set) var ema: MovingAverage<Scalar>
    public private(set) var optimizer: Adam<Scalar>
    /// Steps completed.
    public private(set) var completedSteps: Int
    /// The training data in model space (after ``TrainingConfiguration/dataScaling``).
    public let data: Tensor
    /// The class of each data row (class-conditional networks), else nil.
    public let labels: [Int]?
    /// Gradient norm (before clipping) of the last step.
    public private(set) var lastGradientNorm: Double = 0

    /// The network the run started from (its non-trainable tensors are the model's).
    let network: Network
    let options: DSMTrainingOptions
    let loss: DSMLoss
    let dataRows: Int
    let dataHash: UInt64
    let workspace: Network.TrainingWorkspace
    var gradient: [Scalar]
    /// One block's gradient in the network's precision.
    var blockGradient: [Scalar]
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
    ///   - configuration: the run's settings (network, SDE, optimiser, seed).
    ///   - data: the training samples in data space, `n × rowShape` with the
    ///     network's sample size; finite.
    ///   - labels: the class of each row, in `0 ..< classCount`: required exactly when the
    ///     network is class-conditional.
    public convenience init(configuration: Recipe, data: Tensor, labels: [Int]? = nil) throws {
        try configuration.validate()
        let o = configuration.options
        let network = try configuration.makeNetwork(data: data)
        let p = network.flatParameters
        try self.init(configuration: configuration, data: data, labels: labels, network: network, parameters: p,
                      ema: MovingAverage(rate: o.emaRate, initial: p),
                      optimizer: Adam(parameterCount: p.count, learningRate: o.learningRate, beta1: o.beta1, beta2: o.beta2,
                                      epsilon: o.adamEpsilon, warmup: o.warmup, gradClip: o.gradClip),
                      completedSteps: 0)
    }

    init(configuration: Recipe, data raw: Tensor, labels: [Int]? = nil, network: Network, parameters: [Scalar],
         ema: MovingAverage<Scalar>, optimizer: Adam<Scalar>, completedSteps: Int) throws {
        try configuration.validate()
        let o = configuration.options
        guard raw.rows >= 1 else { throw ScoreSDEError.invalid("data", "\(raw.rows) rows", must: "at least one row (the training data)") }
        try ScoreTrainer.checkLabels(labels, rows: raw.rows, classCount: network.classCount)
        if let levels = o.dequantizationLevels,
           let i = raw.storage.firstIndex(where: { !($0 >= 0 && $0 < Double(levels) && $0.rounded() == $0) }) {
            throw ScoreSDEError.invalidArgument("dequantization needs integer levels 0...\(levels - 1) as data, but row \(i / max(raw.rowSize, 1)) has \(raw.storage[i]); train without dequantization for continuous data")
        }
        let shape = network.sampleShape
        guard raw.rowSize == shape.reduce(1, *) else {
            throw ScoreSDEError.shapeMismatch("the network takes samples of shape \(shape) (\(shape.reduce(1, *)) values) but the data rows have shape \(raw.rowShape) (\(raw.rowSize) values)")
        }
        try raw.checkFinite("the training data")
        self.configuration = configuration
        self.options = o
        self.network = configuration.trained(network)
        self.parameters = parameters
        self.ema = ema
        self.optimizer = optimizer
        self.completedSteps = completedSteps
        // Dequantized through a logit stage: the levels are kept and mapped after adding u, per step.
        data = try (o.dequantizationLevels != nil && !o.dataScaling.isAffine ? raw : o.dataScaling.toModel(raw)).reshaped([raw.rows] + shape)
        self.labels = labels
        dataRows = raw.rows
        dataHash = Trainer.fingerprint(raw, labels: labels)
        loss = try DSMLoss(sde: o.sde.make(), reduceMean: o.reduceMean, likelihoodWeighting: o.likelihoodWeighting,
                           eps: o.eps, timeSampling: o.timeSampling)
        blocks = o.gradientBlocks
        workspace = network.makeTrainingWorkspace(rows: blocks.blockSize)
        gradient = [Scalar](repeating: 0, count: parameters.count)
        blockGradient = gradient
        partial = [Double](repeating: 0, count: parameters.count + 1)
        blockSum = partial
        x0 = [Double](repeating: 0, count: blocks.blockSize * raw.rowSize)
        trainable = network.tensors.filter(\.trainable).map(\.range)
    }

    /// The network with the current (raw, not averaged) weights.
    public var model: Network {
        get throws { try network.withFlatParameters(parameters) }
    }

    /// The network with the EMA weights: the one to sample from.
    public var emaModel: Network {
        get throws { try network.withFlatParameters(ema.values) }
    }

    /// The minibatch, times and noise of step `step` (0-based) of this run.
    /// Class-conditional runs: each example's label, replaced by the null label with probability
    /// ``TrainingConfiguration/labelDropout`` (stream `(step, row)` of the seed's label-dropout purpose).
    public func batch(forStep step: Int) throws -> DSMBatch {
        var b = try loss.drawBatch(step: step, seed: options.seed, batchSize: options.batchSize,
                                   dataRows: data.rows, rowShape: data.rowShape)
        b.labels = droppedLabels(step: step, rows: 0 ..< b.indices.count, indices: b.indices)
        return b
    }

    /// Rows `rows` of ``batch(forStep:)``, drawn alone: every value is keyed by its global row, so
    /// this is that batch's slice (what one process of a shared step draws).
    func batch(forStep step: Int, rows: Range<Int>) -> DSMBatch {
        let rng = RandomSource(seed: options.seed).derived(DSMLoss.trainingPurpose)
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
        let rng = RandomSource(seed: options.seed).derived(labelDropoutPurpose)
        let k = network.classCount, p = options.labelDropout
        return zip(rows, indices).map { r, i in
            var s = rng.stream(draw: UInt64(step), row: r)
            return Double(s.next() >> 11) * 0x1p-53 < p ? k : labels[i]
        }
    }


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
            throw ScoreSDEError.invalid("labels", "\(labels[bad]) at row \(bad)", must: "in the network's \(k) classes 0...\(k - 1)")
        }
    }

    /// One optimisation step; returns its loss (computed before the update, as the reference reports it).
    /// Under ``Population/communicator`` with several processes, every process calls it and
    /// they share the step (see the type's discussion).
    ///
    /// - Throws: `nonFinite` when the loss is NaN or ±Inf (the state is left unchanged); shared:
    ///   ``ScoreSDEError/population(_:)`` naming the rank that failed, or the first rank whose starting state
    ///   (data, weights, settings) differs from rank 0's, or `invalidArgument` when there are more
    ///   processes than gradient blocks.
    @discardableResult
    public func step() throws -> Double { try step(requestingStop: false).loss }

    /// The learning rate of step `step` (0-based): ``Adam/learningRate(atStep:)``.
    public func learningRate(atStep step: Int) -> Double { optimizer.learningRate(atStep: step) }

    /// One step; `requestingStop` is this process's wish to stop, and `stop` whether any process
    /// of a shared step had it (then all stop after this step).
    // Callers in other modules reach the unspecialised generic code: route the library's recipes to
    // specialisations compiled here (element loops over the parameters are many times faster).
    @_specialize(where Recipe == TrainingConfiguration) @_specialize(where Recipe == UNetTrainingConfiguration)
    public func step(requestingStop: Bool) throws -> (loss: Double, stop: Bool) {
        let s = completedSteps
        let comm = Population.communicator.flatMap { $0.size > 1 ? $0 : nil }
        if let comm {
            try blocks.checkShared(by: comm.size)
            if !stateChecked { try checkSameState(comm); stateChecked = true }
        }
        let mine = comm.map { blocks.owned(rank: $0.rank, size: $0.size) } ?? 0 ..< blocks.count
        let width = parameters.count + 1
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
            blockSum.withUnsafeBufferPointer { b in for j in 0 ..< width - 1 { g[j] = Scalar(b[j]) } }
        }
        lastGradientNorm = optimizer.step(&parameters, gradient: &gradient, step: s, trainable: trainable)
        ema.update(with: parameters)
        completedSteps += 1
        return (value, stop)
    }

    /// Block `b` of step `s`: its partial gradient and loss, scaled by its share of the batch,
    /// into ``partial``. A function of `(seed, s, b)` and the state alone, whoever computes it.
    @_specialize(where Recipe == TrainingConfiguration) @_specialize(where Recipe == UNetTrainingConfiguration)
    func computeBlock(_ b: Int, step s: Int) throws {
        let rows = blocks.rows(of: b)
        let batch = batch(forStep: s, rows: rows)
        let d = data.rowSize
        data.storage.withUnsafeBufferPointer { src in
            x0.withUnsafeMutableBufferPointer { dst in
                for (k, i) in batch.indices.enumerated() {
                    (dst.baseAddress! + k * d).update(from: src.baseAddress! + i * d, count: d)
                }
            }
        }
        if options.dequantizationLevels != nil {
            // x₀ = scale · (k + u) + shift (or the logit stage's image of k + u): fresh u ~ U[0, 1)
            // per value and step, keyed by the batch row.
            let rng = RandomSource(seed: options.seed).derived(dequantizationPurpose)
            let scaling = options.dataScaling, a = scaling.scale
            for (k, r) in rows.enumerated() {
                var st = rng.stream(draw: UInt64(s), row: r)
                if scaling.isAffine {
                    for j in 0 ..< d { x0[k * d + j] += a * (Double(st.next() >> 11) * 0x1p-53) }
                } else {
                    for j in 0 ..< d { x0[k * d + j] = scaling.modelValue(x0[k * d + j] + Double(st.next() >> 11) * 0x1p-53) }
                }
            }
        }
        blockGradient.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        let width = partial.count
        // Keyed by the run, the step and the block's first row: the same whoever computes the block.
        let randomSeed = RandomSource(seed: options.seed).derived(stochasticLayerPurpose).derived(UInt64(s) &* 0x1_0000_0000 &+ UInt64(rows.lowerBound)).seed
        let value = try x0.withUnsafeBufferPointer { xp in
            try blockGradient.withUnsafeMutableBufferPointer { gp in
                try parameters.withUnsafeBufferPointer { pp in
                    try batch.noise.storage.withUnsafeBufferPointer { zp in
                        try network.addDSMGradient(loss, parameters: pp.baseAddress!, x0: xp.baseAddress!, times: batch.times,
                                                   noise: zp.baseAddress!, labels: batch.labels, randomSeed: randomSeed,
                                                   workspace: workspace, gradient: gp.baseAddress!)
                    }
                }
            }
        }
        blockGradient.withUnsafeBufferPointer { g in
            partial.withUnsafeMutableBufferPointer { p in for j in 0 ..< width - 1 { p[j] = Double(g[j]) } }
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
        for v in parameters { mix(UInt64(Double(v).bitPattern)) }
        for v in ema.values { mix(UInt64(Double(v).bitPattern)) }
        for v in optimizer.firstMoment { mix(UInt64(Double(v).bitPattern)) }
        for v in optimizer.secondMoment { mix(UInt64(Double(v).bitPattern)) }
        for (k, v) in options.metadata.sorted(by: { $0.key < $1.key }) { for b in (k + "=" + v).utf8 { mix(UInt64(b)) } }
        let mine = [dataHash, h]
        let all = try comm.allGather(mine.withUnsafeBytes { Array($0) })
        let states = all.map { part in part.withUnsafeBytes { (d: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), s: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) } }
        for (r, st) in states.enumerated() {
            if st.d != states[0].d {
                throw ScoreSDEError.population(PopulationFailure(rank: r, size: comm.size, collective: true,
                                                         message: "its training data differ from rank 0's (fingerprint \(String(st.d, radix: 16)) vs \(String(states[0].d, radix: 16))); every rank must load the same data"))
            }
            if st.s != states[0].s {
                throw ScoreSDEError.population(PopulationFailure(rank: r, size: comm.size, collective: true,
                                                         message: "its training state (weights, EMA, Adam moments, step or settings) differs from rank 0's; every rank must start the same run or resume the same checkpoint"))
            }
        }
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

/// Trains an ``MLPScore`` (see ``ScoreTrainer``).
public typealias Trainer = ScoreTrainer<TrainingConfiguration>

/// Random-stream purposes of the trainers.
let labelDropoutPurpose: UInt64 = 0x6C61_6264_726F_70   // "labdrop"
let dequantizationPurpose: UInt64 = 0x6465_7175_616E_74   // "dequant"
let stochasticLayerPurpose: UInt64 = 0x6472_6F70_6F75_74   // "dropout"

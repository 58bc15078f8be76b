import Foundation

/// Model and checkpoint files: safetensors (F64) with string metadata.
///
/// **Weights file** (``MLPScore/save(to:dtype:)``): the named tensors of ``MLPScore`` under their
/// own names (`input.weight`, ...), PyTorch layout.
///
/// **Checkpoint** (``ScoreTrainer/save(to:keepPrevious:)``): `model.<name>` (current weights), `ema.<name>` (EMA
/// weights), `adam.exp_avg.<name>` and `adam.exp_avg_sq.<name>` (Adam moments, trainable tensors
/// only), all F64 so that a resume is exact.
///
/// **Metadata** (every value a string):
///
/// | key | value |
/// |---|---|
/// | `format`, `format.version`, `format.content` | `scoresde.mlp`, `1`, `weights` or `checkpoint` |
/// | `sde` | `ve` / `vp` / `subvp` (older files also carry `sde.N`, ignored) |
/// | `sde.sigma_min`, `sde.sigma_max` (VE) or `sde.beta_min`, `sde.beta_max` (VP, sub-VP) | numbers |
/// | `model.row_shape` | e.g. `2` or `1,28,28` |
/// | `model.hidden_width`, `model.residual_blocks`, `model.fourier_features` | integers |
/// | `model.fourier_scale`, `model.time_embedding_in_blocks` | number, `true`/`false` |
/// | `model.parameterization` | `noise` or `scaled_by_sigma` |
/// | `model.precision` (absent: `float64`) | `float32`: the network computes in float32 (``MLPPrecision``) |
/// | `data.scale`, `data.shift` | model-space data = scale · data + shift |
/// | checkpoints only: `train.step` | steps completed |
/// | `train.seed`, `train.batch_size`, `train.lr`, `train.beta1`, `train.beta2`, `train.adam_eps`, `train.warmup`, `train.grad_clip`, `train.ema_rate`, `train.reduce_mean`, `train.likelihood_weighting`, `train.eps` | the ``TrainingConfiguration`` |
/// | `train.gradient_block` (absent: the whole batch is one block) | rows per gradient block (``GradientBlocks``) |
/// | `data.rows`, `data.fingerprint` | the training data's row count and 64-bit fingerprint (hex) |
/// | checkpoints: `checksum.crc32` | ``CRC32`` (8 hex digits) of the content, see ``checksum(tensors:metadata:dtype:)`` |
///
/// A checkpoint whose checksum does not match (a file damaged on disk, or cut short by a power
/// failure on a file system that reorders writes) is never loaded: reading it throws.
public enum ModelFile {
    /// The metadata key of a checkpoint's checksum.
    public static let checksumKey = "checksum.crc32"

    /// The CRC-32 of a file's content: the metadata as `key=value` lines in key order (the checksum
    /// itself left out), then for each tensor in data order a line `name dtype shape` (e.g.
    /// `model.input.weight F64 [16, 2]`) and its values as little-endian F64 bytes (F32 files: the
    /// float32 values widened to F64, which is exact).
    public static func checksum(tensors: [SafetensorsTensor], metadata: [String: String], dtype: Safetensors.DType = .f64) -> UInt32 {
        var crc = CRC32()
        for key in metadata.keys.sorted() where key != checksumKey {
            crc.update("\(key)=\(metadata[key]!)\n".utf8)
        }
        let name = dtype == .f64 ? "F64" : "F32"
        for t in tensors {
            crc.update("\(t.name) \(name) \(t.shape)\n".utf8)
            #if _endian(little)
            t.values.withUnsafeBytes { crc.update($0) }
            #else
            for v in t.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { crc.update($0) } }
            #endif
        }
        return crc.value
    }

    /// Checks the recorded checksum of a decoded file against its content.
    ///
    /// - Parameters:
    ///   - file: the decoded file.
    ///   - required: throw when the file records no checksum (checkpoints always do).
    /// - Throws: ``ScoreSDEError/io(path:message:)`` naming the mismatch.
    public static func verifyChecksum(_ file: SafetensorsFile, required: Bool) throws {
        guard let recorded = file.metadata[checksumKey] else {
            if required {
                throw ScoreSDEError.io(path: file.path, message: "the checkpoint records no '\(checksumKey)' checksum, so its integrity cannot be checked; it was not loaded (checkpoints written by this version always have one)")
            }
            return
        }
        let dtype = file.tensors.first?.dtype ?? .f64
        guard dtype == .f64 || dtype == .f32, file.tensors.allSatisfy({ $0.dtype == dtype }) else {
            throw ScoreSDEError.io(path: file.path, message: "corrupt: a checksummed model file holds only F64 (or only F32) tensors, this one has \(Set(file.tensors.map(\.dtype.rawValue)).sorted()); it was not loaded")
        }
        let actual = String(format: "%08x", checksum(tensors: file.tensors, metadata: file.metadata, dtype: dtype))
        guard recorded.lowercased() == actual else {
            throw ScoreSDEError.io(path: file.path, message: "corrupt: the content's CRC-32 is \(actual) but the file records \(recorded) (damaged on disk or cut short); it was not loaded")
        }
    }

    /// Where ``AtomicFile`` keeps the checkpoint a new one replaces: `run.safetensors` →
    /// `run.prev.safetensors`.
    public static func previousCheckpointPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let ext = url.pathExtension
        guard !ext.isEmpty else { return path + ".prev" }
        return String(path.dropLast(ext.count + 1)) + ".prev." + ext
    }

    public static let format = "scoresde.mlp"
    public static let version = "1"

    /// Which weights of a checkpoint to load.
    public enum Weights: String, Sendable, CaseIterable {
        /// The exponential moving average (what the reference samples with).
        case ema
        /// The raw optimiser weights.
        case raw
    }

    /// `format.*`, `sde.*`, `model.*` and `data.scale/shift` of `model`.
    static func modelMetadata(_ model: MLPScore, content: String) -> [String: String] {
        var m = ["format": format, "format.version": version, "format.content": content,
                 "model.parameterization": model.parameterization.rawValue]
        m.merge(model.sdeSpec.metadata) { a, _ in a }
        m.merge(model.architecture.metadata) { a, _ in a }
        m.merge(model.dataScaling.metadata) { a, _ in a }
        if model.parameterization == .boundedNoisePrediction { m["model.noise_floor"] = "\(model.noiseFloor)" }
        if let l = model.dequantizationLevels { m["data.dequantization_levels"] = "\(l)" }
        if let e = model.likelihoodEps { m["model.likelihood_eps"] = "\(e)" }
        if model.precision != .float64 { m["model.precision"] = model.precision.rawValue }
        return m
    }

    /// Checks the `format` keys; returns the content kind.
    static func content(of file: SafetensorsFile) throws -> String {
        guard let f = file.metadata["format"] else {
            throw ScoreSDEError.io(path: file.path, message: "not a ScoreSDE model file: the safetensors metadata has no 'format' key (expected '\(format)'); weights files are written by `Trainer.save` / `MLPScore.save`")
        }
        guard f == format else {
            throw ScoreSDEError.io(path: file.path, message: "unsupported model format '\(f)' (expected '\(format)')")
        }
        let v = file.metadata["format.version"] ?? "?"
        guard v == version else {
            throw ScoreSDEError.io(path: file.path, message: "unsupported \(format) version '\(v)' (this build reads version \(version))")
        }
        let c = file.metadata["format.content"] ?? "?"
        guard c == "weights" || c == "checkpoint" else {
            throw ScoreSDEError.io(path: file.path, message: "metadata 'format.content' is '\(c)'; expected weights or checkpoint")
        }
        return c
    }

    /// An ``MLPScore`` with the architecture, SDE and scaling of the file and no weights loaded yet.
    static func skeleton(_ file: SafetensorsFile) throws -> MLPScore {
        let m = MetadataReader(map: file.metadata, path: file.path)
        let arch = try MLPArchitecture(metadata: m)
        // Sizes come from the file: check them against its content before allocating anything.
        let held = file.tensors.reduce(0) { $0 + $1.values.count }
        guard let claimed = parameterCount(arch), claimed <= held else {
            throw m.fail("the metadata describes a network (hidden width \(arch.hiddenWidth), \(arch.residualBlocks) blocks, sample shape \(arch.rowShape)) with more values than the file's \(held); the file is corrupt")
        }
        let spec = try SDESpec(metadata: m)
        let param = try m.string("model.parameterization")
        guard let p = MLPOutputParameterization(rawValue: param) else {
            throw m.fail("metadata 'model.parameterization' is '\(param)'; expected noise, scaled_by_sigma or noise_bounded")
        }
        let floor = p == .boundedNoisePrediction ? try m.double("model.noise_floor") : 0
        let levels = m.map["data.dequantization_levels"] == nil ? nil : try m.int("data.dequantization_levels")
        if let levels, levels < 2 { throw m.fail("metadata 'data.dequantization_levels' is \(levels); expected >= 2") }
        do {
            var model = try MLPScore(architecture: arch, sde: spec, parameterization: p, noiseFloor: floor, dataScaling: try DataScaling(metadata: m),
                                     parameters: [Double](repeating: 0, count: arch.parameterCount))
            model.dequantizationLevels = levels
            model.likelihoodEps = m.map["model.likelihood_eps"] == nil ? nil : try m.double("model.likelihood_eps")
            model.precision = try MLPPrecision(metadata: m)
            return model
        } catch let e as ScoreSDEError {
            if case .io = e { throw e }
            throw m.fail("the metadata describes a model that cannot be built: \(e)")
        }
    }

    /// ``MLPArchitecture/parameterCount`` computed without trapping: nil when it overflows.
    static func parameterCount(_ a: MLPArchitecture) -> Int? {
        var d = 1
        for s in a.rowShape {
            let (p, o) = d.multipliedReportingOverflow(by: s)
            guard !o else { return nil }
            d = p
        }
        let h = a.hiddenWidth, f = a.fourierFeatures, blocks = a.residualBlocks
        func mul(_ x: Int, _ y: Int) -> Int? { let (p, o) = x.multipliedReportingOverflow(by: y); return o ? nil : p }
        func add(_ xs: Int?...) -> Int? {
            var total = 0
            for x in xs {
                guard let x else { return nil }
                let (p, o) = total.addingReportingOverflow(x)
                guard !o else { return nil }
                total = p
            }
            return total
        }
        guard let dense = add(mul(h, h), h), let perBlock = mul(dense, a.timeEmbeddingInBlocks ? 3 : 2),
              let twoF = mul(2, f) else { return nil }
        return add(f, mul(h, twoF), h, mul(h, d), h, mul(perBlock, blocks), mul(d, h), d)
    }

    /// Values of the training workspace of `config` (``MLPTrainingWorkspace``), nil when it overflows.
    static func workspaceValues(_ c: TrainingConfiguration) -> Int? {
        guard let _ = parameterCount(c.architecture) else { return nil }
        let a = c.architecture
        let d = a.dimension, h = a.hiddenWidth, blocks = a.residualBlocks
        let (slabs, o1) = (3 + 3 * (blocks + 1) + 3 * blocks + 4).multipliedReportingOverflow(by: h)
        let (perRow, o2) = slabs.addingReportingOverflow(5 * d + 1 + 2 * a.fourierFeatures)
        let (total, o3) = perRow.multipliedReportingOverflow(by: c.batchSize)
        return o1 || o2 || o3 ? nil : total
    }

    /// The largest training workspace a checkpoint may ask for: 2^28 values (2 GiB).
    static let maxWorkspaceValues = 1 << 28

    /// The flat vector of the tensors `prefix + name` for `tensors` (those with `only` true), checking shapes and finiteness.
    static func vector<S: BinaryFloatingPoint>(_ file: SafetensorsFile, prefix: String, tensors: [NetworkTensor], count: Int,
                                               only: (NetworkTensor) -> Bool = { _ in true }) throws -> [S] {
        var out = [S](repeating: 0, count: count)
        for s in tensors where only(s) {
            let t = try file.tensor(named: prefix + s.name, shape: s.shape)
            guard t.values.allSatisfy(\.isFinite) else {
                throw ScoreSDEError.io(path: file.path, message: "tensor '\(prefix + s.name)' contains NaN or Inf")
            }
            for (j, v) in t.values.enumerated() { out[s.offset + j] = S(v) }
        }
        return out
    }

    /// The bytes of a training checkpoint: `metadata` plus the tensors `model.*` (current
    /// weights), `ema.*` and, for trainable tensors, `adam.exp_avg.*` / `adam.exp_avg_sq.*`, with
    /// the ``checksumKey``; F64 for float64 networks, F32 for float32 ones (exact either way).
    /// Shared by every trainer (score models and classifiers).
    static func checkpointData<S: NetworkScalar>(metadata: [String: String], tensors specs: [NetworkTensor], parameters: [S],
                                                 ema: [S], optimizer: Adam<S>) throws -> Data {
        var meta = metadata
        var tensors = [SafetensorsTensor]()
        func add(_ prefix: String, _ values: [S], trainableOnly: Bool = false) {
            for s in specs where !trainableOnly || s.trainable {
                tensors.append(SafetensorsTensor(name: prefix + s.name, shape: s.shape, values: values[s.range].map { Double($0) }))
            }
        }
        add("model.", parameters)
        add("ema.", ema)
        add("adam.exp_avg.", optimizer.firstMoment, trainableOnly: true)
        add("adam.exp_avg_sq.", optimizer.secondMoment, trainableOnly: true)
        let dtype: Safetensors.DType = S.self == Double.self ? .f64 : .f32
        meta[checksumKey] = String(format: "%08x", checksum(tensors: tensors, metadata: meta, dtype: dtype))
        return try Safetensors.encode(tensors, metadata: meta, dtype: dtype)
    }

    /// The optimisation state of a checkpoint written by `checkpointData` after `steps` steps: the
    /// current weights, the EMA, and Adam's moments loaded into `optimizer` (configured by the
    /// caller). Shapes and finiteness are checked; negative second moments are corruption.
    static func trainingState<S: NetworkScalar>(_ file: SafetensorsFile, tensors: [NetworkTensor], count: Int, steps: Int, emaRate: Double,
                                                optimizer: inout Adam<S>) throws -> (parameters: [S], ema: MovingAverage<S>) {
        let parameters: [S] = try vector(file, prefix: "model.", tensors: tensors, count: count)
        var ema = MovingAverage(rate: emaRate, initial: try vector(file, prefix: "ema.", tensors: tensors, count: count) as [S])
        ema.updates = steps
        optimizer.firstMoment = try vector(file, prefix: "adam.exp_avg.", tensors: tensors, count: count, only: \.trainable)
        optimizer.secondMoment = try vector(file, prefix: "adam.exp_avg_sq.", tensors: tensors, count: count, only: \.trainable)
        guard optimizer.secondMoment.allSatisfy({ $0 >= 0 }) else {
            throw ScoreSDEError.io(path: file.path, message: "Adam's second moments (adam.exp_avg_sq.*) must be >= 0; the checkpoint is corrupt")
        }
        optimizer.updates = steps
        return (parameters, ema)
    }
}

extension MLPScore {

    /// Loads a learned score from a weights file or a checkpoint (EMA weights by default): this is
    /// what `--model PATH.safetensors` uses.
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a missing, truncated or corrupt file, a
    ///   file that is not a ScoreSDE model, missing or mis-shaped tensors, or NaN/Inf weights.
    public static func load(from path: String, weights: ModelFile.Weights = .ema) throws -> MLPScore {
        try load(Safetensors.read(path), weights: weights)
    }

    /// Loads from a decoded file (see ``load(from:weights:)``).
    public static func load(_ file: SafetensorsFile, weights: ModelFile.Weights = .ema) throws -> MLPScore {
        let content = try ModelFile.content(of: file)
        try ModelFile.verifyChecksum(file, required: false)
        var model = try ModelFile.skeleton(file)
        let prefix = content == "weights" ? "" : (weights == .ema ? "ema." : "model.")
        model.parameters = try ModelFile.vector(file, prefix: prefix, tensors: model.tensors, count: model.parameters.count)
        return model
    }

    /// Writes the weights with their architecture, SDE and data scaling (atomically). F32 halves
    /// the size; F64 keeps the weights exactly.
    public func save(to path: String, dtype: Safetensors.DType = .f64) throws {
        try AtomicFile.write(weightsData(dtype: dtype), to: path)
    }

    /// The bytes of the weights file ``save(to:dtype:)`` writes.
    public func weightsData(dtype: Safetensors.DType = .f64) throws -> Data {
        try Safetensors.encode(namedTensors, metadata: ModelFile.modelMetadata(self, content: "weights"), dtype: dtype)
    }
}

extension ScoreTrainer {
    /// Writes a checkpoint (see ``ModelFile``) atomically: a reader sees the previous checkpoint or
    /// this one, never a partial file.
    ///
    /// - Parameters:
    ///   - path: the checkpoint file to write.
    ///   - keepPrevious: keep the checkpoint being replaced as
    ///     ``ModelFile/previousCheckpointPath(for:)``.
    public func save(to path: String, keepPrevious: Bool = false) throws {
        try AtomicFile.write(checkpointData(), to: path,
                             keepingPreviousAs: keepPrevious ? ModelFile.previousCheckpointPath(for: path) : nil)
    }

    /// The bytes of the checkpoint (with its ``ModelFile/checksumKey``).
    public func checkpointData() throws -> Data {
        var meta = configuration.metadata(for: network, content: "checkpoint")
        meta["train.step"] = "\(completedSteps)"
        meta["data.rows"] = "\(dataRows)"
        meta["data.fingerprint"] = String(dataHash, radix: 16)
        return try ModelFile.checkpointData(metadata: meta, tensors: network.tensors, parameters: parameters,
                                            ema: ema.values, optimizer: optimizer)
    }

    /// Continues a run from a checkpoint: same settings, weights, EMA, Adam state and step count.
    ///
    /// - Parameters:
    ///   - path: the checkpoint file (written by ``ScoreTrainer/checkpointData()`` or the `train` command).
    ///   - data: the training data in data space. It must be the data of the original run for an
    ///     exact continuation; other data throws unless `allowDifferentData` (same sample shape needed).
    ///   - labels: the class of each data row, for a class-conditional run (part of its data).
    ///   - allowDifferentData: continue on other data of the same sample shape.
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a bad file (a truncated file or a checksum
    ///   mismatch included; the message names an intact previous checkpoint if there is one);
    ///   `invalidArgument` for other data.
    public static func resume(from path: String, data: Tensor, labels: [Int]? = nil, allowDifferentData: Bool = false) throws -> ScoreTrainer {
        do {
            return try resume(Safetensors.read(path), data: data, labels: labels, allowDifferentData: allowDifferentData)
        } catch ScoreSDEError.io(let p, let message) where FileManager.default.fileExists(atPath: path) {
            throw ScoreSDEError.io(path: p, message: message + ModelFile.previousCheckpointAdvice(path))
        }
    }

    /// Continues a run from a decoded checkpoint (see ``resume(from:data:labels:allowDifferentData:)``).
    public static func resume(_ file: SafetensorsFile, data: Tensor, labels: [Int]? = nil, allowDifferentData: Bool = false) throws -> ScoreTrainer {
        let (config, skeleton) = try Recipe.checkpoint(file)
        let m = MetadataReader(map: file.metadata, path: file.path)
        let steps = try m.int("train.step")
        guard steps >= 0 else { throw m.fail("metadata 'train.step' is \(steps); expected >= 0") }
        let rows = try m.int("data.rows")
        let hashText = try m.string("data.fingerprint")
        if !allowDifferentData {
            let hash = Trainer.fingerprint(data, labels: labels)
            guard rows == data.rows, UInt64(hashText, radix: 16) == hash else {
                throw ScoreSDEError.invalidArgument("the data (\(data.rows) rows, fingerprint \(String(hash, radix: 16))) is not the data this checkpoint was trained on (\(rows) rows, fingerprint \(hashText)); pass the same data for an exact continuation, or allow different data")
            }
        }
        let o = config.options
        let tensors = skeleton.tensors, count = skeleton.flatParameters.count
        var adam = Adam<Scalar>(parameterCount: count, learningRate: o.learningRate, beta1: o.beta1, beta2: o.beta2,
                                epsilon: o.adamEpsilon, warmup: o.warmup, gradClip: o.gradClip)
        let state = try ModelFile.trainingState(file, tensors: tensors, count: count, steps: steps, emaRate: o.emaRate, optimizer: &adam)
        // Non-trainable tensors (fixed buffers) are the file's: the network starts from its current weights.
        let network = try skeleton.withFlatParameters(state.parameters)
        return try ScoreTrainer(configuration: config, data: data, labels: labels, network: network, parameters: state.parameters,
                                ema: state.ema, optimizer: adam, completedSteps: steps)
    }
}

extension ModelFile {
    /// `; the previous checkpoint P (step n) is intact: ...` when `path`'s previous checkpoint verifies.
    static func previousCheckpointAdvice(_ path: String) -> String {
        let previous = ModelFile.previousCheckpointPath(for: path)
        guard FileManager.default.fileExists(atPath: previous),
              let file = try? Safetensors.read(previous), (try? ModelFile.content(of: file)) == "checkpoint",
              (try? ModelFile.verifyChecksum(file, required: true)) != nil else { return "" }
        let step = file.metadata["train.step"] ?? "?"
        return ". The previous checkpoint \(previous) (step \(step)) is intact: to resume from it, move it into place (mv '\(previous)' '\(path)') and resume again"
    }
}

import Foundation

// Files of convolutional classifiers, their use in guidance, and the feature space of the metrics.

extension ClassifierFile {
    /// The metadata key naming the classifier's network: absent or `mlp` (``NoiseAwareClassifier``),
    /// `conv` (``ConvolutionalClassifier``).
    public static let kindKey = "classifier.kind"

    /// The network kind of a classifier file (`mlp` when the key is absent, as in older files).
    static func kind(of file: SafetensorsFile) -> String { file.metadata[kindKey] ?? "mlp" }

    /// Throws unless `file` holds a classifier of `kind`.
    static func requireKind(_ kind: String, _ file: SafetensorsFile) throws {
        let found = Self.kind(of: file)
        guard found == kind else {
            let names = ["mlp": "an MLP noise-aware classifier (NoiseAwareClassifier, kind 'mlp')",
                         "conv": "a convolutional classifier (ConvolutionalClassifier, kind 'conv')"]
            throw ScoreSDEError.io(path: file.path, message: "this is \(names[found] ?? "a classifier of kind '\(found)'"), not \(names[kind] ?? kind); load it with its own type (ClassifierFile reads both kinds)")
        }
    }
}

extension ConvolutionalClassifier {
    /// Metadata of a file holding this classifier (`content`: `weights` or `checkpoint`):
    ///
    /// | key | value |
    /// |---|---|
    /// | `format`, `format.version`, `format.content` | `scoresde.classifier`, `1`, `weights` or `checkpoint` |
    /// | `classifier.kind` | `conv` |
    /// | `classifier.row_shape`, `classifier.class_count` | e.g. `1,28,28`, `10` |
    /// | `conv.block_out_channels`, `.layers_per_block`, `.mid_block_attention`, `.norm_num_groups`, `.norm_eps`, `.feature_dim`, `.flip_sin_to_cos`, `.freq_shift`, `.time_scale` | the ``Architecture`` |
    /// | `classifier.min_time`, `classifier.max_time` | ``trainingTimes`` |
    /// | `sde`, `sde.*`; `data.scale`, `data.shift`; `data.dequantization_levels` (optional) | as score models |
    public func metadata(content: String) -> [String: String] {
        var m = ["format": ClassifierFile.format, "format.version": ClassifierFile.version, "format.content": content,
                 ClassifierFile.kindKey: "conv",
                 "classifier.min_time": "\(trainingTimes.lowerBound)", "classifier.max_time": "\(trainingTimes.upperBound)"]
        m.merge(architecture.metadata) { a, _ in a }
        m.merge(sdeSpec.metadata) { a, _ in a }
        m.merge(dataScaling.metadata) { a, _ in a }
        if let l = dequantizationLevels { m["data.dequantization_levels"] = "\(l)" }
        return m
    }

    /// Named tensors (float32 values widened to Double) for a safetensors file.
    public var namedTensors: [SafetensorsTensor] {
        pool.layout.refs.map { r in SafetensorsTensor(name: r.name, shape: r.shape, values: parameters[r.range].map(Double.init)) }
    }

    /// The bytes of a weights file (F32 by default: exact, the network's own precision).
    public func weightsData(dtype: Safetensors.DType = .f32) throws -> Data {
        try Safetensors.encode(namedTensors, metadata: metadata(content: "weights"), dtype: dtype)
    }

    /// Writes a weights file atomically.
    public func save(to path: String, dtype: Safetensors.DType = .f32) throws {
        try AtomicFile.write(weightsData(dtype: dtype), to: path)
    }

    /// Loads a convolutional classifier from a weights file or a checkpoint (its EMA weights by default).
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a missing, truncated or corrupt file (a
    ///   checkpoint's checksum is verified), a file of another kind (a score model, an MLP
    ///   classifier), missing or mis-shaped tensors or NaN weights.
    public static func load(from path: String, weights: ModelFile.Weights = .ema) throws -> ConvolutionalClassifier {
        try load(Safetensors.read(path), weights: weights)
    }

    /// Loads from a decoded file (see ``load(from:weights:)``).
    public static func load(_ file: SafetensorsFile, weights: ModelFile.Weights = .ema) throws -> ConvolutionalClassifier {
        let content = try ClassifierFile.content(of: file)
        try ClassifierFile.requireKind("conv", file)
        try ModelFile.verifyChecksum(file, required: content == "checkpoint")
        let skeleton = try skeleton(file)
        let prefix = content == "weights" ? "" : (weights == .ema ? "ema." : "model.")
        let values: [Float] = try ModelFile.vector(file, prefix: prefix, tensors: skeleton.tensors, count: skeleton.parameters.count)
        return try skeleton.withParameters(values)
    }

    /// A classifier with the file's architecture, SDE, scaling and times and zero weights (sizes
    /// checked against the file's content before the network is built).
    static func skeleton(_ file: SafetensorsFile) throws -> ConvolutionalClassifier {
        try ClassifierFile.requireKind("conv", file)
        let m = MetadataReader(map: file.metadata, path: file.path)
        let arch = try Architecture(metadata: m)
        // A 3×3 convolution needs 9 C_in C_out values: refuse metadata describing more than the file holds.
        let held = file.tensors.reduce(0) { $0 + $1.values.count }
        var lower = 0, c = arch.channels
        for ch in arch.blockOutChannels { lower += 9 * c * ch; c = ch }
        guard lower <= held else {
            throw m.fail("the metadata describes a classifier with more values than the file holds (\(held)); the file is corrupt")
        }
        let lo = try m.double("classifier.min_time"), hi = try m.double("classifier.max_time")
        guard lo > 0, hi >= lo else { throw m.fail("metadata classifier.min_time/max_time \(lo), \(hi) are not a time range") }
        let levels = m.map["data.dequantization_levels"] == nil ? nil : try m.int("data.dequantization_levels")
        do {
            let net = try ConvolutionalClassifierNetwork<Float>(arch)
            return try ConvolutionalClassifier(architecture: arch, sde: SDESpec(metadata: m), dataScaling: DataScaling(metadata: m),
                                               trainingTimes: lo ... hi, dequantizationLevels: levels,
                                               parameters: [Float](repeating: 0, count: net.parameterCount))
        } catch let e as ScoreSDEError {
            if case .io = e { throw e }
            throw m.fail("the metadata describes a classifier that cannot be built: \(e)")
        }
    }

    /// Throws unless this classifier fits `model`: the same sample size, class count (of a
    /// class-conditional model), forward SDE and data scaling.
    ///
    /// - Throws: `shapeMismatch` for another sample size; `invalidArgument` for another class
    ///   count, SDE or data scaling.
    public func checkCompatible(with model: some LearnedScoreModel, name: String = "the model") throws {
        try ClassifierFile.checkCompatible(rowShape: rowShape, classCount: classCount, sde: sdeSpec, scaling: dataScaling, with: model, name: name)
    }
}

extension ClassifierFile {
    /// The compatibility check of ``NoiseAwareClassifier/checkCompatible(with:name:)`` and
    /// ``ConvolutionalClassifier/checkCompatible(with:name:)``.
    static func checkCompatible(rowShape mine: [Int], classCount: Int, sde: SDESpec, scaling: DataScaling,
                                with model: some LearnedScoreModel, name: String) throws {
        let theirs = model.sampleShape
        guard mine.reduce(1, *) == theirs.reduce(1, *) else {
            throw ScoreSDEError.shapeMismatch("the classifier takes samples of shape \(mine) but \(name) has samples of shape \(theirs); train the classifier on \(name)'s data")
        }
        if model.classCount > 0 && model.classCount != classCount {
            throw ScoreSDEError.invalidArgument("the classifier has \(classCount) classes but \(name) has \(model.classCount); use a classifier trained on the same labels")
        }
        guard sde == model.sdeSpec else {
            throw ScoreSDEError.invalidArgument("the classifier was trained on the noisy data of \(sde) but \(name) uses \(model.sdeSpec); train the classifier with the model's SDE")
        }
        guard scaling == model.dataScaling else {
            throw ScoreSDEError.invalidArgument("the classifier's data scaling (\(scaling)) differs from \(name)'s (\(model.dataScaling)); train the classifier with the model's data scaling")
        }
    }
}

extension LearnedScoreModel {
    /// Classifier guidance with a convolutional noise-aware classifier (Dhariwal & Nichol 2021, §4):
    /// `s(x, t) + w ∇ₓ log p_t(y | x)`, `s` this model's score (a class-conditional model's null
    /// label). `w = 1` is Bayes' rule, `w > 1` sharpens. Two passes per evaluation.
    ///
    /// - Throws: as ``ConvolutionalClassifier/checkCompatible(with:name:)``; `invalidParameter` for
    ///   a label outside the classifier's classes or a non-finite scale.
    public func classifierGuided(by classifier: ConvolutionalClassifier, labels: [Int], scale w: Double) throws
        -> ClassifierGuidedScore<Self, TargetedConvolutionalClassifier> {
        try requireParameter(w.isFinite, name: "scale", value: w, requirement: "finite (the classifier guidance scale)")
        try classifier.checkCompatible(with: self)
        return ClassifierGuidedScore(base: self, classifier: try classifier.targeting(labels), scale: w)
    }
}

extension ConvolutionalClassifier: FeatureClassifier {
    /// The penultimate features `[rows, F]` and logits `[rows, K]` of data-space images (e.g.
    /// Fashion-MNIST pixel levels `0 ... 255`): mapped to model space by ``dataScaling`` (the middle
    /// of each level, `k + ½`, when trained dequantized) and evaluated clean, at the smallest
    /// training time ``trainingTimes``' lower bound. Rows are independent.
    ///
    /// - Throws: `shapeMismatch` for rows of another shape; `nonFinite` for NaN/Inf.
    public func featuresAndLogits(of x: Tensor) throws -> (features: Tensor, logits: Tensor) {
        var y = x
        if dequantizationLevels != nil { for i in y.storage.indices { y.storage[i] += 0.5 } }
        return try featuresAndLogits(dataScaling.toModel(y), at: trainingTimes.lowerBound)
    }

    /// The share of data-space images (as ``featuresAndLogits(of:)``: clean, at the smallest
    /// training time) whose most probable class is their label.
    ///
    ///     let test = try FashionMNIST.testSplitForEvaluation()
    ///     let accuracy = try PretrainedClassifiers.fashion().accuracy(onData: test.images, labels: test.labels)
    ///
    /// - Throws: `shapeMismatch` unless there is one label per row; as ``featuresAndLogits(of:)``.
    public func accuracy(onData x: Tensor, labels: [Int]) throws -> Double {
        guard labels.count == x.rows, x.rows > 0 else { throw ScoreSDEError.shapeMismatch("\(labels.count) labels for \(x.rows) rows; give one label per row") }
        let logits = try featuresAndLogits(of: x).logits, k = classCount
        let hits = (0 ..< x.rows).filter { r in (0 ..< k).max { logits.storage[r * k + $0] < logits.storage[r * k + $1] }! == labels[r] }.count
        return Double(hits) / Double(x.rows)
    }
}

extension ConvolutionalClassifier: TrainableNetwork {
    /// The parameters' scalar: the network computes in float32.
    public typealias Scalar = Float
    /// Every tensor under its name (all trained).
    public var tensors: [NetworkTensor] {
        pool.layout.refs.map { NetworkTensor(name: $0.name, shape: $0.shape, offset: $0.offset) }
    }
    /// ``parameters``.
    public var flatParameters: [Float] { parameters }
    /// ``withParameters(_:)``.
    public func withFlatParameters(_ values: [Float]) throws -> ConvolutionalClassifier { try withParameters(values) }
}

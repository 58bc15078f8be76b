import Foundation

// Files of noise-aware classifiers, the shipped digits classifier, and classifier guidance of a
// learned score model with a learned classifier.

/// Classifier files: safetensors with the named tensors of ``NoiseAwareClassifier`` (weights
/// files) or `model.` / `ema.` / `adam.exp_avg.` / `adam.exp_avg_sq.` prefixed ones (checkpoints,
/// F64 with a ``ModelFile/checksumKey``), and string metadata:
///
/// | key | value |
/// |---|---|
/// | `format`, `format.version`, `format.content` | `scoresde.classifier`, `1`, `weights` or `checkpoint` |
/// | `sde`, `sde.*` | the SDE (as ``ModelFile``) |
/// | `classifier.row_shape`, `classifier.class_count` | e.g. `1,8,8`, `10` |
/// | `classifier.hidden_width`, `.residual_blocks`, `.fourier_features`, `.fourier_scale` | the ``NoiseAwareClassifier/Architecture`` |
/// | `data.scale`, `data.shift` | model space = scale · data + shift |
/// | checkpoints: `train.*`, `data.rows`, `data.fingerprint` | ``ClassifierTrainingConfiguration``, step, data |
public enum ClassifierFile {
    public static let format = "scoresde.classifier"
    public static let version = "1"

    static func metadata(_ c: NoiseAwareClassifier, content: String) -> [String: String] {
        let a = c.architecture
        var m = ["format": format, "format.version": version, "format.content": content,
                 "classifier.row_shape": a.rowShape.map(String.init).joined(separator: ","),
                 "classifier.class_count": "\(a.classCount)", "classifier.hidden_width": "\(a.hiddenWidth)",
                 "classifier.residual_blocks": "\(a.residualBlocks)", "classifier.fourier_features": "\(a.fourierFeatures)",
                 "classifier.fourier_scale": "\(a.fourierScale)"]
        m.merge(c.sdeSpec.metadata) { a, _ in a }
        m.merge(c.dataScaling.metadata) { a, _ in a }
        return m
    }

    /// The content kind (`weights` / `checkpoint`) after checking the format keys.
    static func content(of file: SafetensorsFile) throws -> String {
        guard let f = file.metadata["format"] else {
            throw ScoreSDEError.io(path: file.path, message: "not a ScoreSDE classifier file: the metadata has no 'format' key (expected '\(format)'); classifiers are written by `scoresde train-classifier`")
        }
        guard f == format else {
            let hint = f == ModelFile.format ? " — this is a score model; load it as one (classifiers are written by `scoresde train-classifier`)" : ""
            throw ScoreSDEError.io(path: file.path, message: "not a classifier file: its format is '\(f)' (expected '\(format)')\(hint)")
        }
        let v = file.metadata["format.version"] ?? "?"
        guard v == version else { throw ScoreSDEError.io(path: file.path, message: "unsupported \(format) version '\(v)' (this build reads \(version))") }
        let c = file.metadata["format.content"] ?? "?"
        guard c == "weights" || c == "checkpoint" else {
            throw ScoreSDEError.io(path: file.path, message: "metadata 'format.content' is '\(c)'; expected weights or checkpoint")
        }
        return c
    }

    /// A classifier with the file's architecture, SDE and scaling and zero weights (sizes checked
    /// against the file's content before anything is allocated).
    static func skeleton(_ file: SafetensorsFile) throws -> NoiseAwareClassifier {
        try requireKind("mlp", file)
        let m = MetadataReader(map: file.metadata, path: file.path)
        let shapeText = try m.string("classifier.row_shape")
        let shape = shapeText.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !shape.isEmpty, shape.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1 << 20 }) else {
            throw m.fail("metadata 'classifier.row_shape' is '\(shapeText)'; expected positive integers separated by commas")
        }
        let arch = NoiseAwareClassifier.Architecture(
            rowShape: shape.map { $0! }, classCount: try m.int("classifier.class_count"),
            hiddenWidth: try m.int("classifier.hidden_width"), residualBlocks: try m.int("classifier.residual_blocks"),
            fourierFeatures: try m.int("classifier.fourier_features"), fourierScale: try m.double("classifier.fourier_scale"))
        do { try arch.validate() } catch let error as ScoreSDEError where error.argumentMessage != nil { throw m.fail("metadata describes an invalid classifier: \(error.argumentMessage ?? "")") }
        let held = file.tensors.reduce(0) { $0 + $1.values.count }
        let sizes = [arch.hiddenWidth, arch.residualBlocks, arch.fourierFeatures, arch.classCount, arch.dimension]
        guard sizes.allSatisfy({ $0 <= 1 << 20 }), arch.parameterCount <= held else {
            throw m.fail("the metadata describes a classifier with more values than the file holds (\(held)); the file is corrupt")
        }
        return try NoiseAwareClassifier(architecture: arch, sde: SDESpec(metadata: m), dataScaling: DataScaling(metadata: m),
                                        parameters: [Double](repeating: 0, count: arch.parameterCount))
    }
}

extension NoiseAwareClassifier {
    /// Loads a classifier from a weights file or a checkpoint (EMA weights of a checkpoint by default).
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a missing or corrupt file, a file of
    ///   another kind (a score model), missing or mis-shaped tensors, NaN weights.
    public static func load(from path: String, weights: ModelFile.Weights = .ema) throws -> NoiseAwareClassifier {
        try load(Safetensors.read(path), weights: weights)
    }

    /// Loads from a decoded file (see ``load(from:weights:)``).
    public static func load(_ file: SafetensorsFile, weights: ModelFile.Weights = .ema) throws -> NoiseAwareClassifier {
        let content = try ClassifierFile.content(of: file)
        try ModelFile.verifyChecksum(file, required: content == "checkpoint")
        let skeleton = try ClassifierFile.skeleton(file)
        let prefix = content == "weights" ? "" : (weights == .ema ? "ema." : "model.")
        return try skeleton.withParameters(ModelFile.vector(file, prefix: prefix, tensors: skeleton.tensors, count: skeleton.parameters.count))
    }

    /// The bytes of a weights file (F32 halves the size).
    public func weightsData(dtype: Safetensors.DType = .f64) throws -> Data {
        try Safetensors.encode(namedTensors, metadata: ClassifierFile.metadata(self, content: "weights"), dtype: dtype)
    }

    /// Writes a weights file atomically.
    public func save(to path: String, dtype: Safetensors.DType = .f64) throws {
        try AtomicFile.write(weightsData(dtype: dtype), to: path)
    }

    /// Throws unless this classifier fits `model`: the same sample shape, class count, forward SDE
    /// and data scaling (the classifier's `p_t` must be the marginals the model's score describes).
    ///
    /// - Throws: `shapeMismatch` for another sample shape; `invalidArgument` for another class
    ///   count (of a class-conditional model), SDE or data scaling.
    public func checkCompatible(with model: some LearnedScoreModel, name: String = "the model") throws {
        try ClassifierFile.checkCompatible(rowShape: architecture.rowShape, classCount: classCount, sde: sdeSpec, scaling: dataScaling,
                                           with: model, name: name)
    }
}

extension MLPScore {
    /// Classifier guidance with a learned noise-aware classifier (Dhariwal & Nichol 2021, §4;
    /// Song et al. 2021, App. I): `s(x, t) + w ∇ₓ log p_t(y | x)`, `s` this model's unconditional
    /// score (the null label of a class-conditional model). `w = 1` is Bayes' rule, `w > 1` sharpens.
    /// Two passes per evaluation (score, classifier gradient).
    ///
    /// Samplers that work with a noise or data prediction (DDIM, DPM-Solver++, UniPC, EDM-Heun)
    /// read `ε̂ = −σ_t s̃` from this score, which is ADM's ε-form of classifier guidance,
    /// `ε̂ = ε − w σ_t ∇ₓ log p_t(y | x)` (Dhariwal & Nichol, Alg. 2), and the data prediction
    /// `x̂₀ = (x + σ_t² s̃) / m_t`: guiding the score and guiding ε are the same thing.
    ///
    /// - Throws: as ``NoiseAwareClassifier/checkCompatible(with:name:)``; `invalidParameter` for a
    ///   label outside the classifier's classes or a non-finite scale.
    public func classifierGuided(by classifier: NoiseAwareClassifier, labels: [Int], scale w: Double) throws
        -> ClassifierGuidedScore<MLPScore, TargetedNoiseAwareClassifier> {
        try requireParameter(w.isFinite, name: "scale", value: w, requirement: "finite (the classifier guidance scale)")
        try classifier.checkCompatible(with: self)
        return ClassifierGuidedScore(base: self, classifier: try classifier.targeting(labels), scale: w)
    }
}

/// Noise-aware classifiers shipped in the package's resources, matching the shipped score models.
///
/// | name | for | file |
/// |---|---|---|
/// | `digits` | ``PretrainedModels/digits()`` (VP, dequantized logit scaling λ = 10⁻³, 10 classes) | `digits-classifier.safetensors` |
/// | `digits-mlp` | ``PretrainedModels/digitsMLP()`` (VP, dequantized symmetric scaling, 10 classes) | `digits-mlp-classifier.safetensors` |
///
/// Both are MLPs on the model-space values (a classifier sees what the score model sees, so each
/// is trained `--like` its model), trained (bitwise reproducible on the same machine and thread
/// count) with
///
///     scoresde train-classifier --data digits --like digits --hidden 128 --blocks 2 \
///         --steps 6000 --batch-size 128 --lr 1e-3 --seed 0 --output digits-clf-run.safetensors \
///         --export-weights Sources/ScoreSDE/Resources/digits-classifier.safetensors
///     scoresde train-classifier --data digits --like digits-mlp --hidden 128 --blocks 2 \
///         --steps 6000 --batch-size 128 --lr 1e-3 --seed 0 --output digits-mlp-clf-run.safetensors \
///         --export-weights Sources/ScoreSDE/Resources/digits-mlp-classifier.safetensors
public enum PretrainedClassifiers {
    public static let names = ["digits", "digits-mlp"]

    /// The digits classifier (for ``PretrainedModels/digits()``, the U-Net).
    public static func digits() throws -> NoiseAwareClassifier { try named("digits") }

    /// The classifier for the MLP digits model ``PretrainedModels/digitsMLP()``.
    public static func digitsMLP() throws -> NoiseAwareClassifier { try named("digits-mlp") }

    /// - Throws: ``ScoreSDEError/unknownName(_:)`` for a name not in ``names``; `io` for a missing resource.
    public static func named(_ name: String) throws -> NoiseAwareClassifier {
        switch PretrainedModels.canonicalName(name) {
        case "digits": return try cachedDigits.get()
        case "digits-mlp": return try cachedDigitsMLP.get()
        default:
            throw ScoreSDEError.unknownName("'\(name)' is not a shipped classifier; choose one of \(names.joined(separator: ", ")) or give a .safetensors file from `scoresde train-classifier`")
        }
    }

    private static func load(_ file: String) -> Result<NoiseAwareClassifier, ScoreSDEError> {
        do { return .success(try NoiseAwareClassifier.load(from: PackagedData.url(file).path)) }
        catch let e as ScoreSDEError { return .failure(e) }
        catch { return .failure(.io(path: file, message: "\(error)")) }
    }
    private static let cachedDigits = load("digits-classifier.safetensors")
    private static let cachedDigitsMLP = load("digits-mlp-classifier.safetensors")
}

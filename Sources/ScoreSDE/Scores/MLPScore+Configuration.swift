import Foundation

/// A built-in forward SDE by kind and parameters: what a weights file records so that a learned
/// model can be rebuilt knowing nothing else.
///
///     let spec = try SDESpec(VPSDE())                  // .vp(betaMin: 0.1, betaMax: 20)
///     let sde = try spec.make()                        // any ForwardSDE
///     let cosine = try SDESpec(CosineVPSDE())          // .cosineVP(s: 0.008, T: 0.9946)
public enum SDESpec: Sendable, Equatable, CustomStringConvertible {
    case ve(sigmaMin: Double, sigmaMax: Double)
    /// VP with the linear schedule `β(t) = βmin + t (βmax − βmin)` (``VPSDE``).
    case vp(betaMin: Double, betaMax: Double)
    case subVP(betaMin: Double, betaMax: Double)
    /// VP with improved DDPM's cosine schedule (Nichol & Dhariwal 2021; ``CosineVPSDE``): offset
    /// `s` and end time `T`.
    case cosineVP(s: Double, T: Double)

    /// The cosine VP SDE with improved DDPM's `s = 0.008` and DPM-Solver's `T = 0.9946`.
    public static let defaultCosineVP = SDESpec.cosineVP(s: 0.008, T: 0.9946)

    /// The spec of a built-in SDE.
    /// - Throws: `invalidArgument` for an SDE type other than `VESDE`, `VPSDE`, `SubVPSDE`, `CosineVPSDE`.
    public init(_ sde: any ForwardSDE) throws {
        switch sde {
        case let s as VESDE: self = .ve(sigmaMin: s.sigmaMin, sigmaMax: s.sigmaMax)
        case let s as VPSDE: self = .vp(betaMin: s.betaMin, betaMax: s.betaMax)
        case let s as SubVPSDE: self = .subVP(betaMin: s.betaMin, betaMax: s.betaMax)
        case let s as CosineVPSDE: self = .cosineVP(s: s.s, T: s.T)
        default:
            throw ScoreSDEError.invalidArgument("only the built-in SDEs (VESDE, VPSDE, SubVPSDE, CosineVPSDE) can be recorded in a model file (got \(type(of: sde)))")
        }
    }

    /// The SDE (validating its parameters).
    public func make() throws -> any ForwardSDE {
        switch self {
        case .ve(let a, let b): return try VESDE(sigmaMin: a, sigmaMax: b)
        case .vp(let a, let b): return try VPSDE(betaMin: a, betaMax: b)
        case .subVP(let a, let b): return try SubVPSDE(betaMin: a, betaMax: b)
        case .cosineVP(let s, let T): return try CosineVPSDE(s: s, T: T)
        }
    }

    /// The smallest sampling time: the reference's 1e-5 for VE and 1e-3 for VP and sub-VP; 1e-3
    /// for the cosine schedule too, DPM-Solver's end time `t_0 = 1/N` for the improved-DDPM models
    /// it converts to continuous time (`N = 1000` steps, `t_i = (i + 1)/N`; Lu et al. 2022). There
    /// the cosine marginal's std is `6.4e-3` (`std² ≈ β(0) t` with `β(0) = π tan(πs/(2(1 + s)))/(1 + s) ≈ 0.039`),
    /// below the linear VP's `1.0e-2` at the same time: no coarser a final noise level.
    public var samplingEps: Double {
        if case .ve = self { return 1e-5 }
        return 1e-3
    }

    /// `"ve"`, `"vp"` or `"subvp"` (the CLI's `--sde` names; both VP schedules are `"vp"`).
    public var kind: String {
        switch self {
        case .ve: return "ve"
        case .vp, .cosineVP: return "vp"
        case .subVP: return "subvp"
        }
    }

    /// A VP SDE's noise schedule, `"linear"` or `"cosine"` (the CLI's `--schedule` names); nil for
    /// VE and sub-VP.
    public var schedule: String? {
        switch self {
        case .vp: return "linear"
        case .cosineVP: return "cosine"
        case .ve, .subVP: return nil
        }
    }

    /// The default output parameterization of the reference for this kind (VE: scaled by σ; VP of
    /// either schedule, sub-VP: noise).
    public var defaultParameterization: MLPOutputParameterization {
        if case .ve = self { return .scaledBySigma }
        return .noisePrediction
    }

    public var description: String {
        switch self {
        case .ve(let a, let b): return "ve(sigmaMin: \(a), sigmaMax: \(b))"
        case .vp(let a, let b): return "vp(betaMin: \(a), betaMax: \(b))"
        case .subVP(let a, let b): return "subvp(betaMin: \(a), betaMax: \(b))"
        case .cosineVP(let s, let T): return "vp(schedule: cosine, s: \(s), T: \(T))"
        }
    }

    /// Metadata entries: `sde` and `sde.sigma_min`/`sde.sigma_max` or `sde.beta_min`/`sde.beta_max`;
    /// the cosine schedule writes `sde` = `vp`, `sde.schedule` = `cosine`, `sde.cosine_s` and
    /// `sde.T` (and no betas, so that a reader that knows only the linear schedule fails on a
    /// missing `sde.beta_min` rather than misreading the file). The linear schedule writes no
    /// `sde.schedule` (its files are as before).
    public var metadata: [String: String] {
        switch self {
        case .ve(let a, let b): return ["sde": "ve", "sde.sigma_min": "\(a)", "sde.sigma_max": "\(b)"]
        case .vp(let a, let b): return ["sde": "vp", "sde.beta_min": "\(a)", "sde.beta_max": "\(b)"]
        case .subVP(let a, let b): return ["sde": "subvp", "sde.beta_min": "\(a)", "sde.beta_max": "\(b)"]
        case .cosineVP(let s, let T): return ["sde": "vp", "sde.schedule": "cosine", "sde.cosine_s": "\(s)", "sde.T": "\(T)"]
        }
    }

    /// Reads the entries written by ``metadata``: `vp` without `sde.schedule` (every file written
    /// before the cosine schedule) is the linear schedule. Files from before the SDEs lost their
    /// step count also carry `sde.N`, which is ignored: the sampler's grid is chosen at sampling time.
    init(metadata m: MetadataReader) throws {
        let kind = try m.string("sde")
        let schedule = m.map["sde.schedule"]
        if let schedule, kind != "vp" {
            throw m.fail("metadata 'sde.schedule' is '\(schedule)' but 'sde' is '\(kind)'; only the VP SDE has a schedule")
        }
        switch kind {
        case "ve": self = .ve(sigmaMin: try m.double("sde.sigma_min"), sigmaMax: try m.double("sde.sigma_max"))
        case "vp":
            switch schedule ?? "linear" {
            case "linear": self = .vp(betaMin: try m.double("sde.beta_min"), betaMax: try m.double("sde.beta_max"))
            case "cosine": self = .cosineVP(s: try m.double("sde.cosine_s"), T: try m.double("sde.T"))
            case let other: throw m.fail("metadata 'sde.schedule' is '\(other)'; expected linear or cosine")
            }
        case "subvp": self = .subVP(betaMin: try m.double("sde.beta_min"), betaMax: try m.double("sde.beta_max"))
        default: throw m.fail("metadata 'sde' is '\(kind)'; expected ve, vp or subvp")
        }
    }
}

/// How the network output becomes a score (PT `models/utils.py get_score_fn`, NCSN++ `scale_by_sigma`).
public enum MLPOutputParameterization: String, Sendable, CaseIterable {
    /// VP / sub-VP: the network predicts the noise, `s = −out / std(t)`; time input `τ = t`.
    case noisePrediction = "noise"
    /// VE: `s = out / σ(t)` (`scale_by_sigma`); time input `τ = log σ(t)`.
    case scaledBySigma = "scaled_by_sigma"
    /// Noise prediction whose score stays bounded as `t → 0`: `s = −out / √(std(t)² + δ²)` with
    /// `δ` the model's ``MLPScore/noiseFloor`` and the output itself bounded, `out = B tanh(net / B)`
    /// (``MLPScore/boundedOutputLimit``); time input `τ = t`. For `std ≫ δ` this is
    /// `.noisePrediction`; for `std ≪ δ` the predicted noise `out · std / √(std² + δ²)` vanishes
    /// like `std` and the score tends to `−out / δ` instead of exploding like `1/std`. Meant for
    /// dequantized data, whose density is smooth only down to the bin width: `δ` of the order of the
    /// dequantization noise's std makes the model's density at small `t` (what likelihoods
    /// integrate from) a smooth one. Used with likelihood weighting and importance sampling of `t`
    /// (Song, Durkan, Murray & Ermon 2021), whose loss is the noise-prediction loss.
    case boundedNoisePrediction = "noise_bounded"
}

/// The shape of an ``MLPScore`` network.
public struct MLPArchitecture: Sendable, Equatable {
    /// Shape of one sample; the network sees it flattened to `D = rowShape.reduce(1, *)` values.
    public var rowShape: [Int]
    /// Width `H` of every hidden layer.
    public var hiddenWidth: Int
    /// Number of residual blocks `h + Dense(SiLU(Dense(SiLU(h)) [+ Dense(temb)]))`.
    public var residualBlocks: Int
    /// Number `F` of random Fourier frequencies (the embedding has `2F` features).
    public var fourierFeatures: Int
    /// Standard deviation of the Fourier frequencies `W ~ N(0, scale²)` (NCSN++: 16).
    public var fourierScale: Double
    /// Whether each residual block adds its own projection of the time embedding (as NCSN++'s blocks do).
    public var timeEmbeddingInBlocks: Bool
    /// Number `K` of class labels `0 ..< K` of a class-conditional network (0: unconditional). A
    /// conditional network has a learned label embedding with `K + 1` rows, the last one the null
    /// label `∅` (classifier-free guidance, Ho & Salimans 2022), added to the time embedding.
    public var classCount: Int
    /// Whether the score is a Gaussian's exact score plus the network's correction,
    /// `s(x, t) = −(m² Σ + std² I)⁻¹ (x − m μ) + c(t) · out(x, t)` (``MLPScore/withGaussianBase(fittedTo:dequantizationLevels:)``): a
    /// linear skip in the spirit of EDM's `c_skip` (Karras et al. 2022), so the network only learns
    /// how the data depart from the Gaussian fitted to them, and far from the data the model
    /// falls back to that Gaussian. `μ`, `Σ` are buffers (`base.*`), fitted once to the training data.
    public var gaussianBase: Bool

    public init(rowShape: [Int], hiddenWidth: Int = 256, residualBlocks: Int = 2, fourierFeatures: Int = 64,
                fourierScale: Double = 16, timeEmbeddingInBlocks: Bool = true, classCount: Int = 0, gaussianBase: Bool = false) {
        self.rowShape = rowShape; self.hiddenWidth = hiddenWidth; self.residualBlocks = residualBlocks
        self.fourierFeatures = fourierFeatures; self.fourierScale = fourierScale
        self.timeEmbeddingInBlocks = timeEmbeddingInBlocks; self.classCount = classCount; self.gaussianBase = gaussianBase
    }

    /// Whether the network takes a class label.
    public var isClassConditional: Bool { classCount > 0 }

    /// `D`, the flattened sample size.
    public var dimension: Int { rowShape.reduce(1, *) }

    /// - Throws: `invalidParameter` for non-positive sizes or scale.
    public func validate() throws {
        try requireParameter(!rowShape.isEmpty && rowShape.allSatisfy { $0 >= 1 }, name: "rowShape", value: rowShape, requirement: "non-empty with positive dimensions (the sample shape)")
        try requireParameter(hiddenWidth >= 1, name: "hiddenWidth", value: hiddenWidth, requirement: ">= 1")
        try requireParameter(residualBlocks >= 0, name: "residualBlocks", value: residualBlocks, requirement: ">= 0")
        try requireParameter(fourierFeatures >= 1, name: "fourierFeatures", value: fourierFeatures, requirement: ">= 1")
        try requireParameter(fourierScale.isFinite && fourierScale > 0, name: "fourierScale", value: fourierScale, requirement: "finite and > 0", advice: "NCSN++ uses 16")
        try requireParameter(classCount >= 0, name: "classCount", value: classCount, requirement: ">= 0", advice: "0 is an unconditional network")
    }

    /// The named tensors of the network, in order (see ``MLPScore`` for the table).
    public var parameterSpecs: [MLPParameterSpec] {
        let h = hiddenWidth, d = dimension, f = fourierFeatures
        var specs = [MLPParameterSpec]()
        var offset = 0
        func add(_ name: String, _ shape: [Int], trainable: Bool = true, fanIn: Int = 0) {
            specs.append(MLPParameterSpec(name: name, shape: shape, offset: offset, trainable: trainable, fanIn: fanIn))
            offset += shape.reduce(1, *)
        }
        add("embed.W", [f], trainable: false)
        add("embed.dense.weight", [h, 2 * f], fanIn: 2 * f)
        add("embed.dense.bias", [h], fanIn: 2 * f)
        add("input.weight", [h, d], fanIn: d)
        add("input.bias", [h], fanIn: d)
        for i in 0 ..< residualBlocks {
            add("blocks.\(i).dense1.weight", [h, h], fanIn: h)
            add("blocks.\(i).dense1.bias", [h], fanIn: h)
            if timeEmbeddingInBlocks {
                add("blocks.\(i).temb.weight", [h, h], fanIn: h)
                add("blocks.\(i).temb.bias", [h], fanIn: h)
            }
            add("blocks.\(i).dense2.weight", [h, h], fanIn: h)
            add("blocks.\(i).dense2.bias", [h], fanIn: h)
        }
        add("output.weight", [d, h], fanIn: h)
        add("output.bias", [d], fanIn: h)
        if classCount > 0 { add("label.embedding", [classCount + 1, h], fanIn: 1) }
        if gaussianBase {
            add("base.mean", [d], trainable: false)
            add("base.eigenvectors", [d, d], trainable: false)
            add("base.eigenvalues", [d], trainable: false)
        }
        return specs
    }

    /// Total number of values over all named tensors.
    public var parameterCount: Int { parameterSpecs.last.map { $0.offset + $0.count } ?? 0 }

    /// Metadata entries `model.*`.
    public var metadata: [String: String] {
        ["model.row_shape": rowShape.map(String.init).joined(separator: ","),
         "model.hidden_width": "\(hiddenWidth)",
         "model.residual_blocks": "\(residualBlocks)",
         "model.fourier_features": "\(fourierFeatures)",
         "model.fourier_scale": "\(fourierScale)",
         "model.time_embedding_in_blocks": "\(timeEmbeddingInBlocks)",
         "model.class_count": "\(classCount)"]
            .merging(gaussianBase ? ["model.gaussian_base": "true"] : [:]) { a, _ in a }
    }

    init(metadata m: MetadataReader) throws {
        let shapeText = try m.string("model.row_shape")
        let shape = shapeText.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !shape.isEmpty, shape.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw m.fail("metadata 'model.row_shape' is '\(shapeText)'; expected positive integers separated by commas, e.g. '2' or '1,28,28'")
        }
        self.init(rowShape: shape.map { $0! }, hiddenWidth: try m.int("model.hidden_width"),
                  residualBlocks: try m.int("model.residual_blocks"), fourierFeatures: try m.int("model.fourier_features"),
                  fourierScale: try m.double("model.fourier_scale"), timeEmbeddingInBlocks: try m.bool("model.time_embedding_in_blocks"),
                  classCount: m.map["model.class_count"] == nil ? 0 : try m.int("model.class_count"),
                  gaussianBase: m.map["model.gaussian_base"] == nil ? false : try m.bool("model.gaussian_base"))
        do { try validate() } catch let error as ScoreSDEError where error.argumentMessage != nil { throw m.fail("metadata describes an invalid network: \(error.argumentMessage ?? "")") }
    }
}

/// One named tensor of an ``MLPScore``: its place in the flat parameter vector.
public struct MLPParameterSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    /// Index of its first value in ``MLPScore/parameters``.
    public let offset: Int
    /// Whether training updates it (`embed.W`, the fixed Fourier frequencies, and the `base.*`
    /// Gaussian are buffers).
    public let trainable: Bool
    /// `in_features` of its Linear layer (0 for `embed.W`), which sets the init bound `1/√fanIn`.
    public let fanIn: Int
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset ..< offset + count }
}

/// Typed access to a metadata map, with errors naming the file.
struct MetadataReader {
    let map: [String: String]
    let path: String

    func fail(_ message: String) -> ScoreSDEError { .io(path: path, message: message) }

    func string(_ key: String) throws -> String {
        guard let v = map[key] else { throw fail("missing metadata key '\(key)' (is this a ScoreSDE model file?)") }
        return v
    }
    func double(_ key: String) throws -> Double {
        let s = try string(key)
        guard let v = Double(s), v.isFinite else { throw fail("metadata '\(key)' is '\(s)'; expected a finite number") }
        return v
    }
    func int(_ key: String) throws -> Int {
        let s = try string(key)
        guard let v = Int(s) else { throw fail("metadata '\(key)' is '\(s)'; expected an integer") }
        return v
    }
    func uint64(_ key: String) throws -> UInt64 {
        let s = try string(key)
        guard let v = UInt64(s) else { throw fail("metadata '\(key)' is '\(s)'; expected a non-negative integer") }
        return v
    }
    func bool(_ key: String) throws -> Bool {
        let s = try string(key)
        switch s {
        case "true": return true
        case "false": return false
        default: throw fail("metadata '\(key)' is '\(s)'; expected true or false")
        }
    }
}

import ArgumentParser
import Foundation
import ScoreSDE

// Option groups shared by the subcommands: which model, which forward SDE, and how to compute.
// Each group validates what it can alone, builds the library values it names, and describes its
// settings for the stats file.

// MARK: - Model

/// `--model`: the data model whose score drives the sampler.
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The model: a built-in Gaussian mixture (\(GaussianMixture.builtInNames.joined(separator: ", "))), gmm:PATH.json, a shipped learned model (\(PretrainedModels.names.joined(separator: ", "))), a trained PATH.safetensors or a diffusers UNet2DModel folder PATH/.",
        discussion: """
            ring: 8 modes on a circle (2-D); grid: 5x5 modes (2-D); gmm64: 10 modes in 64-D. \
            gmm:PATH.json reads {"weights": [...], "means": [[...], ...], "stds": [...]} (weights optional, \
            each std a number or a vector). \
            Learned models (from `scoresde train`; a checkpoint's EMA weights): digits (8x8 grey digits, \
            values 0...16; a U-Net, sampled by default with the recommended few-step sampler at 20 NFE), \
            digits-mlp (the same digits, the earlier MLP model), patches (8x8 RGB patches, values \
            0...255) and fashion (28x28 Fashion-MNIST, a U-Net) ship with the package. A learned \
            model brings its SDE (other --sde settings are an error; the number of steps may differ) and \
            its data scaling: samples are written in data space, data are read in data space. \
            A folder PATH/ is a Hugging Face diffusers UNet2DModel (config.json + \
            diffusion_pytorch_model.safetensors) or pipeline (model_index.json, unet/, scheduler/): its \
            scheduler config gives the SDE (linear betas: VP with N·beta_start, N·beta_end; squaredcos_cap_v2: \
            the cosine VP) and its data are 8-bit pixels 0...255.
            """,
        valueName: "name|gmm:PATH.json|PATH.safetensors|PATH/"))
    var model: String = "ring"

    /// Resolves `--model` (see ``DataModel/load(_:)``).
    func load() throws -> DataModel { try DataModel.load(model) }

    /// The help of `--model` for commands with another default (`inpaint`, `colorize`).
    static func help(default name: String) -> ArgumentHelp {
        ArgumentHelp("The model (default: \(name)): a built-in Gaussian mixture (\(GaussianMixture.builtInNames.joined(separator: ", "))), gmm:PATH.json, a shipped learned model (\(PretrainedModels.names.joined(separator: ", "))), a trained PATH.safetensors or a diffusers UNet2DModel folder PATH/ (see `scoresde sample --help`).",
                     valueName: "name|gmm:PATH.json|PATH.safetensors|PATH/")
    }
}

extension DataModel {
    /// Resolves a `--model` value: a mixture file after `gmm:`, a diffusers `UNet2DModel` or pipeline
    /// folder, a model file (`.safetensors`, or any existing file), a shipped learned model, or a
    /// built-in mixture.
    static func load(_ model: String) throws -> DataModel {
        let prefix = "gmm:"
        if model.hasPrefix(prefix) {
            let path = String(model.dropFirst(prefix.count))
            guard !path.isEmpty else {
                throw ScoreSDEError.invalidArgument("--model gmm: needs a file path, e.g. --model gmm:mixture.json")
            }
            let mixture = try GaussianMixture(contentsOf: path)
            let label = "gmm:" + URL(fileURLWithPath: path).lastPathComponent
            return DataModel(name: model, label: label, source: .mixture(mixture))
        }
        let shipped = PretrainedModels.names.contains(PretrainedModels.canonicalName(model))
        let isBuiltIn = GaussianMixture.builtInNames.contains(model) || shipped
        var isDirectory: ObjCBool = false
        if !isBuiltIn, FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue {
            // A diffusers UNet2DModel folder or pipeline folder (DiffusersUNet.load).
            let name = URL(fileURLWithPath: model).standardizedFileURL.lastPathComponent
            return DataModel(name: model, label: name, source: .learned(try DiffusersUNet.load(model)))
        }
        if model.hasSuffix(".safetensors") || (!isBuiltIn && FileManager.default.fileExists(atPath: model)) {
            return DataModel(name: model, label: URL(fileURLWithPath: model).lastPathComponent, source: .learned(try loadLearned(model)))
        }
        if shipped {
            let name = PretrainedModels.canonicalName(model)
            return DataModel(name: name, label: name, source: .learned(try PretrainedModels.learned(name)))
        }
        do {
            return DataModel(name: model, label: model, source: .mixture(try GaussianMixture.builtIn(model)))
        } catch ScoreSDEError.unknownName {
            throw ScoreSDEError.unknownName("--model '\(model)' is neither a built-in mixture (\(GaussianMixture.builtInNames.joined(separator: ", "))), a shipped learned model (\(PretrainedModels.names.joined(separator: ", "))), gmm:PATH.json, nor a model file PATH.safetensors")
        }
    }
}

extension DataModel {
    /// A trained model file: a U-Net when its metadata says `model = unet`, else an MLP (whose
    /// loader reads both model files and checkpoints, and names what is wrong with other files).
    static func loadLearned(_ path: String) throws -> any LearnedScoreModel {
        try ModelFile.loadScoreModel(path)
    }
}

/// A model resolved from `--model`: its score under a given SDE, and how to show its samples.
struct DataModel {
    /// Where the score comes from.
    enum Source {
        /// A Gaussian mixture, whose score under any forward SDE is exact.
        case mixture(GaussianMixture)
        /// A trained network (an MLP or a U-Net), tied to the SDE it was trained for and working in
        /// its model space.
        case learned(any LearnedScoreModel)
    }

    /// `--model` as given.
    let name: String
    /// A short name for plot titles.
    let label: String
    let source: Source

    /// The shape of one sample.
    var rowShape: [Int] {
        switch source {
        case .mixture(let m): return [m.dimension]
        case .learned(let s): return s.sampleShape
        }
    }

    /// The learned network, if this is one.
    var learned: (any LearnedScoreModel)? {
        if case .learned(let s) = source { return s }
        return nil
    }

    /// Data space -> the space the score works in (identity for mixtures).
    var scaling: DataScaling { learned?.dataScaling ?? .identity }

    /// The score of the data diffused by `sde` (a learned model's own SDE, which
    /// ``SDEOptions/resolve(for:)`` has checked `sde` agrees with).
    func score(diffusedBy sde: any ForwardSDE) -> any ScoreModel {
        switch source {
        case .mixture(let m): return GaussianMixtureScore(m, diffusedBy: sde)
        case .learned(let s): return s
        }
    }

    /// Points to mark on a scatter plot (the mixture means), shaped `[K, D]`.
    var referencePoints: Tensor? {
        switch source {
        case .mixture(let m): return try? Tensor(rows: m.means)
        case .learned: return nil
        }
    }

    /// The value range (in data space) mapped to black...white when samples are images. A learned
    /// model's model space is taken to be [-1, 1] when its scaling shifts by -1 (symmetric) and
    /// [0, 1] otherwise (unit or none), mapped back to data space: digits 0...16, patches 0...255.
    var imageRange: ClosedRange<Double> {
        switch source {
        case .mixture: return 0 ... 1
        case .learned(let s):
            // Trained on dequantized levels k + u: the levels 0...L-1 are the data range.
            if let levels = s.dequantizationLevels { return 0 ... Double(levels - 1) }
            let (a, b) = (s.dataScaling.scale, s.dataScaling.shift)
            let ends = [b == -1 ? -1.0 : 0.0, 1].map { ($0 - b) / a }
            return min(ends[0], ends[1]) ... max(ends[0], ends[1])
        }
    }
}

// MARK: - Forward SDE

/// The forward SDEs by name.
enum SDEName: String, CaseIterable, ExpressibleByArgument {
    case ve, vp, subvp
}

/// `--schedule`: the noise schedule of the VP SDE.
enum ScheduleName: String, CaseIterable, ExpressibleByArgument {
    /// β linear from --beta-min to --beta-max (Song et al. 2021; DDPM).
    case linear
    /// The cosine schedule of improved DDPM (Nichol & Dhariwal 2021, s = 0.008; ``CosineVPSDE``).
    case cosine
}

/// A forward SDE built from the options, keeping its concrete type so that features that only
/// some SDEs have (ancestral sampling) are chosen with an exhaustive `switch`.
enum BuiltSDE {
    case ve(VESDE)
    case vp(VPSDE)
    case subVP(SubVPSDE)
    case vpCosine(CosineVPSDE)

    var forward: any ForwardSDE {
        switch self {
        case .ve(let s): return s
        case .vp(let s): return s
        case .subVP(let s): return s
        case .vpCosine(let s): return s
        }
    }
}

/// `--sde` and its parameters, as given (nil: not on the command line). ``resolve(for:)`` fills
/// in the defaults, or a learned model's own SDE.
struct SDEOptions: ParsableArguments {
    static let defaultSigmaMin = 0.01, defaultSigmaMax = 50.0, defaultBetaMin = 0.1, defaultBetaMax = 20.0

    @Option(help: "The forward SDE: ve (variance exploding, default), vp (variance preserving) or subvp (sub-VP). A learned model uses the SDE it was trained with.")
    var sde: SDEName?

    @Option(parsing: .unconditional, help: ArgumentHelp("VE: the smallest noise level sigma_min (default: 0.01).", valueName: "sigma"))
    var sigmaMin: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("VE: the largest noise level sigma_max, about the largest distance between data points (default: 50).", valueName: "sigma"))
    var sigmaMax: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("VP/sub-VP: beta(0) (default: 0.1).", valueName: "beta"))
    var betaMin: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("VP/sub-VP: beta(1) (default: 20).", valueName: "beta"))
    var betaMax: Double?

    @Option(help: ArgumentHelp(
        "VP: the noise schedule (default: linear).",
        discussion: "linear: beta(t) from --beta-min to --beta-max (the reference's); cosine: improved DDPM's cosine schedule (Nichol & Dhariwal 2021, s = 0.008) in continuous time, ending at T = 0.9946 where beta diverges (DPM-Solver's choice); it has no --beta-min/--beta-max."))
    var schedule: ScheduleName?

    /// Checks `--schedule` against the SDE kind and the other SDE options (shared with `train` and
    /// `train-classifier`, whose default kind is vp): the cosine schedule is VP's only, and it has
    /// neither betas nor sigmas.
    /// - Parameter kindGiven: whether `--sde` was on the command line (else `kind` is the default).
    static func checkSchedule(_ schedule: ScheduleName?, kind: SDEName, kindGiven: Bool, sigmaMin: Double?, sigmaMax: Double?,
                              betaMin: Double?, betaMax: Double?) throws {
        if let schedule, kind != .vp {
            throw ScoreSDEError.invalidArgument("--schedule \(schedule.rawValue) is an option of --sde vp, not of --sde \(kind.rawValue)\(kindGiven ? "" : " (the default)"); add --sde vp or remove --schedule")
        }
        if schedule == .cosine {
            let given = [("--beta-min", betaMin), ("--beta-max", betaMax), ("--sigma-min", sigmaMin), ("--sigma-max", sigmaMax)].filter { $0.1 != nil }.map(\.0)
            if !given.isEmpty {
                throw ScoreSDEError.invalidArgument("\(given.joined(separator: ", ")) \(given.count == 1 ? "is not a parameter" : "are not parameters") of the cosine schedule (s = 0.008, T = 0.9946); remove \(given.count == 1 ? "it" : "them") or use --schedule linear")
            }
        }
    }

    /// The SDE settings for `model`: the options with their defaults for a mixture; a learned
    /// model's own SDE, after checking that every option given agrees with it.
    func resolve(for model: DataModel) throws -> SDEChoice {
        guard let learned = model.learned else {
            let kind = sde ?? .ve
            try Self.checkSchedule(schedule, kind: kind, kindGiven: sde != nil, sigmaMin: sigmaMin, sigmaMax: sigmaMax, betaMin: betaMin, betaMax: betaMax)
            return SDEChoice(kind: kind, sigmaMin: sigmaMin ?? Self.defaultSigmaMin, sigmaMax: sigmaMax ?? Self.defaultSigmaMax,
                             betaMin: betaMin ?? Self.defaultBetaMin, betaMax: betaMax ?? Self.defaultBetaMax, schedule: schedule ?? .linear)
        }
        let spec = learned.sdeSpec
        let choice = SDEChoice(spec)
        var conflicts = [String]()
        if let sde, sde != choice.kind { conflicts.append("--sde \(sde.rawValue) (the model's SDE is \(choice.kind.rawValue))") }
        if let schedule {
            if choice.kind != .vp {
                conflicts.append("--schedule \(schedule.rawValue) (not an option of the model's \(choice.kind.rawValue) SDE)")
            } else if schedule != choice.schedule {
                conflicts.append("--schedule \(schedule.rawValue) (the model's SDE has the \(choice.schedule.rawValue) schedule)")
            }
        }
        func check(_ option: String, _ given: Double?, _ stored: Double?) {
            guard let given else { return }
            if let stored {
                if given != stored { conflicts.append("\(option) \(given) (the model's is \(stored))") }
            } else {
                conflicts.append("\(option) (not a parameter of the model's \(choice.kind.rawValue)\(choice.schedule == .cosine ? " cosine" : "") SDE)")
            }
        }
        let isVE = choice.kind == .ve, hasBetas = !isVE && choice.schedule == .linear
        check("--sigma-min", sigmaMin, isVE ? choice.sigmaMin : nil)
        check("--sigma-max", sigmaMax, isVE ? choice.sigmaMax : nil)
        check("--beta-min", betaMin, hasBetas ? choice.betaMin : nil)
        check("--beta-max", betaMax, hasBetas ? choice.betaMax : nil)
        guard conflicts.isEmpty else {
            throw ScoreSDEError.invalidArgument("the learned model \(model.name) was trained with the SDE \(spec) and must be sampled with it, but the command line asks for \(conflicts.joined(separator: ", ")); drop these options (the number of steps may differ)")
        }
        return choice
    }
}

/// A resolved forward SDE: kind and parameters (the step count comes from the sampler).
struct SDEChoice {
    let kind: SDEName
    let sigmaMin: Double, sigmaMax: Double, betaMin: Double, betaMax: Double
    /// VP's noise schedule (linear for the others).
    let schedule: ScheduleName
    /// The cosine schedule's offset `s` and end time `T` (a learned model's; else the defaults).
    let cosineS: Double, cosineT: Double

    init(kind: SDEName, sigmaMin: Double, sigmaMax: Double, betaMin: Double, betaMax: Double, schedule: ScheduleName = .linear,
         cosineS: Double = 0.008, cosineT: Double = 0.9946) {
        self.kind = kind; self.sigmaMin = sigmaMin; self.sigmaMax = sigmaMax; self.betaMin = betaMin; self.betaMax = betaMax
        self.schedule = schedule; self.cosineS = cosineS; self.cosineT = cosineT
    }

    /// A learned model's SDE (the unused parameters keep the CLI defaults).
    init(_ spec: SDESpec) {
        let (a, b, c, d) = (SDEOptions.defaultSigmaMin, SDEOptions.defaultSigmaMax, SDEOptions.defaultBetaMin, SDEOptions.defaultBetaMax)
        switch spec {
        case .ve(let lo, let hi): self.init(kind: .ve, sigmaMin: lo, sigmaMax: hi, betaMin: c, betaMax: d)
        case .vp(let lo, let hi): self.init(kind: .vp, sigmaMin: a, sigmaMax: b, betaMin: lo, betaMax: hi)
        case .subVP(let lo, let hi): self.init(kind: .subvp, sigmaMin: a, sigmaMax: b, betaMin: lo, betaMax: hi)
        case .cosineVP(let s, let T): self.init(kind: .vp, sigmaMin: a, sigmaMax: b, betaMin: c, betaMax: d, schedule: .cosine, cosineS: s, cosineT: T)
        }
    }

    /// The library's record of this SDE (the CLI adds only the option names and defaults).
    var spec: SDESpec {
        switch kind {
        case .ve: return .ve(sigmaMin: sigmaMin, sigmaMax: sigmaMax)
        case .vp where schedule == .cosine: return .cosineVP(s: cosineS, T: cosineT)
        case .vp: return .vp(betaMin: betaMin, betaMax: betaMax)
        case .subvp: return .subVP(betaMin: betaMin, betaMax: betaMax)
        }
    }

    /// The SDE, validated by the library (continuous: any grid samples it correctly).
    func make() throws -> BuiltSDE {
        switch try spec.make() {
        case let s as VESDE: return .ve(s)
        case let s as VPSDE: return .vp(s)
        case let s as SubVPSDE: return .subVP(s)
        case let s as CosineVPSDE: return .vpCosine(s)
        case let s: preconditionFailure("SDESpec.make() returned \(type(of: s))")
        }
    }

    /// The smallest sampling time (``SDESpec/samplingEps``): 1e-5 for VE, 1e-3 for VP (either
    /// schedule) and sub-VP.
    var defaultEps: Double { spec.samplingEps }

    /// `sde` and the parameters it uses.
    var stats: RunStats {
        var s = RunStats()
        s["sde"] = .string(kind.rawValue)
        switch kind {
        case .ve:
            s["sigma_min"] = .double(sigmaMin)
            s["sigma_max"] = .double(sigmaMax)
        case .vp where schedule == .cosine:
            s["schedule"] = .string(schedule.rawValue)
            s["cosine_s"] = .double(cosineS)
            s["T"] = .double(cosineT)
        case .vp, .subvp:
            s["beta_min"] = .double(betaMin)
            s["beta_max"] = .double(betaMax)
            if kind == .vp { s["schedule"] = .string(schedule.rawValue) }
        }
        return s
    }
}

// MARK: - Computation

/// How the work is done: seed, batch size, threads. None of these change the samples except the seed.
struct ComputeOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Seed of the random source; the same seed gives the same bytes whatever --threads and --batch-size.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "At most this many rows per score-model call (default: all at once; U-Nets 256 rows, diffusers models 32, which bounds their activation memory — 10 000 Fashion-MNIST rows at once would need about 24 GB). Results do not depend on it.")
    var batchSize: Int?

    /// `--batch-size`, else the default for `model`: all rows at once, except for convolutional
    /// networks, whose activations grow with the batch (about 2.4 MB per 28x28 row for the shipped
    /// U-Net) — 256 rows per call for a U-Net, 32 for a diffusers model.
    func rowsPerCall(_ model: DataModel) -> Int? {
        if let batchSize { return batchSize }
        guard case .learned(let s) = model.source else { return nil }
        if s is DiffusersScore { return 32 }
        if s is UNetScore { return 256 }
        return nil
    }

    @Option(parsing: .unconditional, help: "Threads to use (default: all cores). Results do not depend on it.")
    var threads: Int?

    func validate() throws {
        if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be >= 1 (got \(b))") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be >= 1 (got \(t))") }
    }

    /// Runs `body` with the thread limit in force; `threadCount` is what the loops will use.
    func withThreadLimit<R>(_ body: (_ threadCount: Int) throws -> R) rethrows -> R {
        try Parallel.$threadLimit.withValue(threads) { try body(Parallel.threadCount) }
    }
}

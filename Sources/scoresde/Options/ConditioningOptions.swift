import ArgumentParser
import ScoreSDE

/// The ways of conditioning an unconditional score model on a measurement, by name.
enum ConditioningMethod: String, CaseIterable, ExpressibleByArgument {
    /// score_sde's replacement / projection after every update (Song et al. 2021, App. I).
    case replace
    /// Replacement with RePaint's resampling (Lugmayr et al. 2022).
    case repaint
    /// Diffusion posterior sampling (Chung et al. 2023): a normalised measurement-gradient term.
    case dps
    /// Pseudoinverse-guided diffusion (Song et al. 2023): a Gaussian `p(x₀ | x_t)` of fixed variance.
    case pigdm
    /// Tweedie-moment guidance: the Jacobian-based covariance of `p(x₀ | x_t)` (exact for Gaussian priors).
    case tweedie

    var isGuidance: Bool { self == .dps || self == .pigdm || self == .tweedie }
}

/// `--method` and its parameters, `--noise-std`, `--samples-per-input`, `--convention`: how
/// `inpaint`, `colorize` and `reconstruct` condition the predictor-corrector sampler.
struct ConditioningOptions: ParsableArguments {
    @Option(name: .customLong("method"), help: ArgumentHelp(
        "How the sampler is conditioned (default: replace; colorize: repaint; --model fashion: dps with --dps-scale 30, its model card's recommendation).",
        discussion: """
            replace: after every predictor and corrector update the measured part of each sample is \
            replaced by a forward-noised copy of the observation (score_sde's inpainter / colorizer). \
            repaint: the same with RePaint resampling (see --resample, --jump; NFE grows --resample-fold). \
            dps, pigdm, tweedie: no replacement; the score gets the gradient of an approximate \
            log p_t(y | x) (DPS; pseudoinverse guidance with --data-variance; Tweedie moments, which cost \
            one extra model Jacobian-vector product per measured value and evaluation).
            """,
        valueName: "replace|repaint|dps|pigdm|tweedie"))
    var methodChoice: ConditioningMethod?

    /// The method: `--method`, or the command's default (``ConditionedCommandOptions/prepare``
    /// fills it in: replace for inpaint and reconstruct, repaint for colorize).
    var method: ConditioningMethod { methodChoice ?? .replace }

    @Option(parsing: .unconditional, help: ArgumentHelp("repaint: how many times each block of --jump steps is run (default: 4).", valueName: "r"))
    var resample: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("repaint: steps per resampled block (default: 10).", valueName: "j"))
    var jump: Int?

    @Option(help: ArgumentHelp(
        "replace, repaint: paper (default) or reference (score_sde's code: observation noised at the step's start time, un-noised at T, mean built from the noisy update).",
        valueName: "paper|reference"))
    var convention: ConventionName?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "The standard deviation of the observation's Gaussian noise, in data units (default: 0, exact observation). Without --data the built-in input is observed with this noise.",
        valueName: "sigma"))
    var noiseStd: Double = 0

    @Option(parsing: .unconditional, help: ArgumentHelp("dps: the weight of the normalised measurement gradient (default: 1; 30 for --model fashion).", valueName: "zeta"))
    var dpsScale: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("pigdm: the prior variance per value, in model units (default: a mixture's mean variance per coordinate; 0.25 for learned models, whose data lie in [-1, 1] or [0, 1]).", valueName: "v"))
    var dataVariance: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("dps, pigdm, tweedie: the weight of the measurement term (1: Bayes' rule).", valueName: "w"))
    var guidanceWeight: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("Samples drawn for every input (default: 4 for images, 1000 for vector models).", valueName: "k"))
    var samplesPerInput: Int?

    static let defaultResample = 4, defaultJump = 10

    func validate() throws {
        if let k = samplesPerInput, k < 1 { throw ValidationError("--samples-per-input must be >= 1 (got \(k))") }
        guard noiseStd.isFinite, noiseStd >= 0 else { throw ValidationError("--noise-std must be finite and >= 0 (got \(noiseStd))") }
        if let r = resample, r < 1 { throw ValidationError("--resample must be >= 1 (got \(r)); 1 runs each step once") }
        if let j = jump, j < 1 { throw ValidationError("--jump must be >= 1 step (got \(j))") }
        if let z = dpsScale, !(z.isFinite && z > 0) { throw ValidationError("--dps-scale must be finite and > 0 (got \(z))") }
        if let v = dataVariance, !(v.isFinite && v > 0) { throw ValidationError("--data-variance must be finite and > 0 (got \(v))") }
        if let w = guidanceWeight, !w.isFinite { throw ValidationError("--guidance-weight must be finite (got \(w))") }
        // Without --method the command's default decides; `prepare` checks then.
        if methodChoice != nil { try checkPlacement() }
    }

    /// Each method's own options must come with that method.
    func checkPlacement() throws {
        // Each method's own options, named with the method they belong to.
        var misplaced = [String]()
        if method != .repaint {
            if resample != nil { misplaced.append("--resample belongs to --method repaint") }
            if jump != nil { misplaced.append("--jump belongs to --method repaint") }
        }
        if method.isGuidance, convention != nil { misplaced.append("--convention belongs to --method replace and repaint") }
        if method != .dps, dpsScale != nil { misplaced.append("--dps-scale belongs to --method dps") }
        if method != .pigdm, dataVariance != nil { misplaced.append("--data-variance belongs to --method pigdm") }
        if !method.isGuidance, guidanceWeight != nil { misplaced.append("--guidance-weight belongs to --method dps, pigdm and tweedie") }
        if !misplaced.isEmpty {
            throw ValidationError("\(misplaced.joined(separator: "; ")): with --method \(method.rawValue) \(misplaced.count == 1 ? "it does" : "they do") nothing; remove \(misplaced.count == 1 ? "it" : "them") or change --method")
        }
    }

    var resampling: Resampling {
        get throws {
            method == .repaint ? try Resampling(count: resample ?? Self.defaultResample, jumpLength: jump ?? Self.defaultJump) : .none
        }
    }

    var constraintConvention: ConstraintConvention { (convention ?? .paper).convention }

    /// The measurement likelihood of a guidance method; `mixtureVariance` is the prior's mean
    /// variance per coordinate when known.
    func likelihood(mixtureVariance: Double?) -> MeasurementLikelihood? {
        switch method {
        case .replace, .repaint: return nil
        case .dps: return .dps(stepScale: dpsScale ?? 1)
        case .pigdm: return .pseudoinverse(dataVariance: dataVariance ?? mixtureVariance ?? 0.25, jacobianFree: true)
        case .tweedie: return .tweedieCovariance
        }
    }

    /// "replace (paper)", "repaint r=4 j=10", "tweedie": for titles and summaries.
    var label: String {
        switch method {
        case .replace: return "replace (\((convention ?? .paper).rawValue))"
        case .repaint: return "repaint r=\(resample ?? Self.defaultResample) j=\(jump ?? Self.defaultJump) (\((convention ?? .paper).rawValue))"
        case .dps, .pigdm, .tweedie: return method.rawValue
        }
    }

    /// The settings for a stats file.
    func stats(mixtureVariance: Double?) -> RunStats {
        var s = RunStats()
        s["method"] = .string(method.rawValue)
        s["noise_std"] = .double(noiseStd)
        switch method {
        case .replace:
            s["convention"] = .string((convention ?? .paper).rawValue)
        case .repaint:
            s["convention"] = .string((convention ?? .paper).rawValue)
            s["resample"] = .int(resample ?? Self.defaultResample)
            s["jump"] = .int(jump ?? Self.defaultJump)
        case .dps, .pigdm, .tweedie:
            s["guidance_weight"] = .double(guidanceWeight ?? 1)
            switch likelihood(mixtureVariance: mixtureVariance) {
            case .dps(let z)?: s["dps_scale"] = .double(z)
            case .pseudoinverse(let v, _)?: s["data_variance"] = .double(v)
            default: break
            }
        }
        return s
    }
}

/// ``ConstraintConvention`` by name.
enum ConventionName: String, CaseIterable, ExpressibleByArgument {
    case paper, reference

    var convention: ConstraintConvention { self == .paper ? .paper : .reference }
}

/// What `inpaint`, `colorize` and `reconstruct` share besides `--model` (whose default differs):
/// the SDE, the predictor-corrector sampler and its conditioning, the computation and the files.
struct ConditionedCommandOptions: ParsableArguments {
    @OptionGroup(title: "Forward SDE") var sde: SDEOptions
    @OptionGroup(title: "Sampler") var sampler: SamplerOptions
    @OptionGroup(title: "Predictor-corrector sampler") var pc: PCOptions
    @OptionGroup(title: "Conditioning") var conditioning: ConditioningOptions
    @OptionGroup(title: "Computation") var compute: ComputeOptions
    @OptionGroup(title: "Progress") var progressOptions: ProgressOptions

    @OptionGroup(title: "Output files") var files: OutputOptions

    func validate() throws {
        if let chosen = sampler.sampler, chosen != .pc {
            throw ValidationError("--sampler \(chosen.rawValue) is not available here: conditioning acts on the predictor-corrector sampler's updates (replace, repaint) or on its score (dps, pigdm, tweedie); remove --sampler")
        }
    }

    /// Resolves everything about the run that does not depend on the inputs, checking the output
    /// paths (before any work).
    /// Without `--method`, `defaultMethod` is used (the job's `options` carry it).
    func prepare(_ model: DataModel, defaultPNG: String, defaultSamplesPerInput: Int,
                 defaultMethod: ConditioningMethod = .replace) throws -> ConditionedJob {
        var options = self
        if options.conditioning.methodChoice == nil {
            // A shipped model's recommendation (the Fashion-MNIST U-Net: DPS, ζ = 30) before the command's.
            if case .dps(let zeta)? = PretrainedModels.recommendedMeasurementGuidance(model.name) {
                options.conditioning.methodChoice = .dps
                if options.conditioning.dpsScale == nil { options.conditioning.dpsScale = zeta }
            } else {
                options.conditioning.methodChoice = defaultMethod
            }
        }
        try options.conditioning.checkPlacement()
        return try options.prepareResolved(model, defaultPNG: defaultPNG, defaultSamplesPerInput: defaultSamplesPerInput)
    }

    private func prepareResolved(_ model: DataModel, defaultPNG: String, defaultSamplesPerInput: Int) throws -> ConditionedJob {
        let sdeChoice = try sde.resolve(for: model)
        let built = try sdeChoice.make()
        let eps = sampler.eps(default: sdeChoice.defaultEps)
        try checkEps(eps, for: built.forward)
        let sampler = try ConditionedSampler(data: model, built: built, sampler: self.sampler, pc: pc, conditioning: conditioning,
                                             batchSize: compute.batchSize, eps: eps)
        let files = try self.files.files(defaultPNG: defaultPNG)
        return ConditionedJob(model: model, sdeChoice: sdeChoice, eps: eps, sampler: sampler, files: files, options: self,
                              samplesPerInput: conditioning.samplesPerInput ?? defaultSamplesPerInput)
    }
}

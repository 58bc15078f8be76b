import ArgumentParser
import ScoreSDE

// Option groups of the samplers: the time grid, and the predictor-corrector sampler's parts.

// MARK: - Sampler and time grid

/// The samplers by name.
enum SamplerName: String, CaseIterable, ExpressibleByArgument {
    /// Predictor-corrector (Song et al. 2021, Algorithm 1).
    case pc
}

/// `--sampler`, `--steps`, `--eps`.
struct SamplerOptions: ParsableArguments {
    @Option(help: "The sampler: pc (predictor-corrector).")
    var sampler: SamplerName = .pc

    @Option(parsing: .unconditional, help: "Number of time steps from T down to eps (also the SDE's discretization N, as in the reference).")
    var steps: Int = 1000

    @Option(parsing: .unconditional, help: ArgumentHelp("The last time of the grid, in (0, T) (default: 1e-5 for ve, 1e-3 for vp and subvp).", valueName: "t"))
    var eps: Double?

    func validate() throws {
        if steps < 1 { throw ValidationError("--steps must be >= 1 (got \(steps))") }
    }

    /// `eps`, or the SDE's default.
    func eps(default value: Double) -> Double { eps ?? value }

    /// `steps` equal intervals from `T` down to `eps`.
    func grid(for sde: any ForwardSDE, eps: Double) throws -> TimeGrid {
        try TimeGrid.uniform(steps: steps, from: sde.T, to: eps)
    }
}

// MARK: - Predictor-corrector

/// The predictors by name.
enum PredictorName: String, CaseIterable, ExpressibleByArgument {
    case eulerMaruyama = "euler-maruyama"
    case reverseDiffusion = "reverse-diffusion"
    case ancestral
    case none
}

/// The correctors by name.
enum CorrectorName: String, CaseIterable, ExpressibleByArgument {
    /// Langevin MCMC with the signal-to-noise step size.
    case langevin
    /// Annealed Langevin dynamics.
    case ald
    case none
}

/// What the sampler returns after the last step, by name.
enum DenoiseName: String, CaseIterable, ExpressibleByArgument {
    case lastMean = "last-mean"
    case tweedie
    case none

    var denoising: FinalDenoising {
        switch self {
        case .lastMean: return .lastPredictorMean
        case .tweedie: return .tweedie
        case .none: return .none
        }
    }
}

/// The order of predictor and corrector within a step, by name.
enum OrderName: String, CaseIterable, ExpressibleByArgument {
    case correctorFirst = "corrector-first"
    case predictorFirst = "predictor-first"

    var order: PCOrder {
        switch self {
        case .correctorFirst: return .correctorFirst
        case .predictorFirst: return .predictorFirst
        }
    }
}

/// The parts of the predictor-corrector sampler.
struct PCOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The predictor.",
        discussion: "euler-maruyama: Euler-Maruyama on the reverse SDE; reverse-diffusion: the SDE's discrete form run backwards; ancestral: SMLD/DDPM ancestral sampling (ve and vp only); none: corrector only."))
    var predictor: PredictorName = .reverseDiffusion

    @Option(help: ArgumentHelp(
        "The corrector.",
        discussion: "langevin: Langevin MCMC with step size from the signal-to-noise ratio; ald: annealed Langevin dynamics; none: predictor only."))
    var corrector: CorrectorName = .langevin

    @Option(parsing: .unconditional, help: "Signal-to-noise ratio of the corrector's step size (typical: 0.05-0.2).")
    var snr: Double = 0.16

    @Option(parsing: .unconditional, help: "Corrector steps per time step.")
    var correctorSteps: Int = 1

    @Option(help: ArgumentHelp(
        "The final denoising.",
        discussion: "last-mean: the noise-free mean of the last predictor step (no extra cost); tweedie: Tweedie's formula at eps (one more score evaluation); none: the last noisy iterate."))
    var denoise: DenoiseName = .lastMean

    @Option(help: "The order of the two updates within a step (corrector-first is the reference's code, predictor-first the paper's Algorithm 1).")
    var order: OrderName = .correctorFirst

    func validate() throws {
        if predictor == .none && corrector == .none {
            throw ValidationError("--predictor none with --corrector none would not sample anything; choose a predictor, a corrector, or both")
        }
        if correctorSteps < 1 {
            throw ValidationError("--corrector-steps must be >= 1 (got \(correctorSteps)); use --corrector none for no corrector")
        }
    }

    /// The predictor for `sde`. Ancestral sampling needs the SDE's discrete schedule (VE, VP).
    func makePredictor(for sde: BuiltSDE) throws -> any Predictor {
        switch predictor {
        case .eulerMaruyama: return EulerMaruyama()
        case .reverseDiffusion: return ReverseDiffusion()
        case .none: return NoPredictor()
        case .ancestral:
            switch sde {
            case .ve(let s): return AncestralSampling(for: s)
            case .vp(let s): return AncestralSampling(for: s)
            case .subVP:
                throw ScoreSDEError.invalidArgument("--predictor ancestral needs --sde ve or vp: sub-VP has no discrete ancestral schedule; use --predictor reverse-diffusion or euler-maruyama with --sde subvp")
            }
        }
    }

    func makeCorrector() throws -> any Corrector {
        switch corrector {
        case .langevin: return try Langevin(snr: snr, steps: correctorSteps)
        case .ald: return try AnnealedLangevin(snr: snr, steps: correctorSteps)
        case .none: return NoCorrector()
        }
    }

    /// "reverse-diffusion + langevin", "ancestral", "ald only": for titles and summaries.
    var label: String {
        switch (predictor, corrector) {
        case (_, .none): return predictor.rawValue
        case (.none, _): return corrector.rawValue + " (corrector only)"
        default: return "\(predictor.rawValue) + \(corrector.rawValue)"
        }
    }

    var stats: RunStats {
        var s = RunStats()
        s["predictor"] = .string(predictor.rawValue)
        s["corrector"] = .string(corrector.rawValue)
        s["snr"] = .double(snr)
        s["corrector_steps"] = .int(correctorSteps)
        s["denoise"] = .string(denoise.rawValue)
        s["order"] = .string(order.rawValue)
        return s
    }
}

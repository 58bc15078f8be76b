import ArgumentParser
import ScoreSDE

// Option groups of the samplers: the time grid, and the predictor-corrector sampler's parts.

// MARK: - Sampler and time grid

/// The samplers by name.
enum SamplerName: String, CaseIterable, ExpressibleByArgument {
    /// Predictor-corrector (Song et al. 2021, Algorithm 1).
    case pc
    /// The probability-flow ODE, solved with an adaptive GSL integrator (Song et al. 2021, §4.3).
    case ode
}

/// `--sampler`, `--steps`, `--eps`, `--denoise`.
struct SamplerOptions: ParsableArguments {
    static let defaultSteps = 1000

    @Option(help: ArgumentHelp(
        "The sampler: pc (predictor-corrector, default) or ode (probability-flow ODE).",
        discussion: "ode uses the options of the probability-flow ODE below; --latent implies ode. Options of the other sampler are rejected rather than ignored.",
        valueName: "pc|ode"))
    var sampler: SamplerName?

    @Option(parsing: .unconditional, help: "pc: number of time steps from T down to eps (default: 1000). Any number works: each step takes its coefficients from its own interval.")
    var steps: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("The last time of the grid or ODE solve, in (0, T) (default: 1e-5 for ve, 1e-3 for vp and subvp, the reference's sampling eps).", valueName: "t"))
    var eps: Double?

    @Option(help: ArgumentHelp(
        "The final denoising (default: last-mean for pc, none for ode, as in the reference).",
        discussion: """
            pc: last-mean: the noise-free mean of the last predictor step (no extra cost); tweedie: \
            Tweedie's formula at eps in place of the last predictor step (same cost); none: the last noisy iterate. \
            ode: last-mean: one noise-free reverse-diffusion step from eps to 0 after the solve \
            (score_sde's denoise=True; its score evaluation is counted in nfe); none: the ODE solution at eps; \
            tweedie is not available for ode.
            """))
    var denoise: DenoiseName?

    func validate() throws {
        if let steps, steps < 1 { throw ValidationError("--steps must be >= 1 (got \(steps))") }
    }

    /// `--sampler`, else ode when latents are given, else pc.
    func resolved(latentGiven: Bool) -> SamplerName { sampler ?? (latentGiven ? .ode : .pc) }

    /// The number of grid steps.
    var stepCount: Int { steps ?? Self.defaultSteps }

    /// `eps`, or the SDE's default.
    func eps(default value: Double) -> Double { eps ?? value }

    /// `steps` equal intervals from `T` down to `eps`.
    func grid(for sde: any ForwardSDE, eps: Double) throws -> TimeGrid {
        try TimeGrid.uniform(steps: stepCount, from: sde.T, to: eps)
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
        "The predictor (default: reverse-diffusion).",
        discussion: "euler-maruyama: Euler-Maruyama on the reverse SDE; reverse-diffusion: the SDE's discrete form run backwards; ancestral: SMLD/DDPM ancestral sampling (ve and vp only); none: corrector only."))
    var predictor: PredictorName?

    @Option(help: ArgumentHelp(
        "The corrector (default: langevin).",
        discussion: "langevin: Langevin MCMC with step size from the signal-to-noise ratio; ald: annealed Langevin dynamics; none: predictor only."))
    var corrector: CorrectorName?

    @Option(parsing: .unconditional, help: "Signal-to-noise ratio of the corrector's step size (typical: 0.05-0.2; default: 0.16).")
    var snr: Double?

    @Option(parsing: .unconditional, help: "Corrector steps per time step (default: 1).")
    var correctorSteps: Int?

    @Option(help: "The order of the two updates within a step (default: corrector-first, the reference's code; predictor-first is the paper's Algorithm 1).")
    var order: OrderName?

    @Option(help: ArgumentHelp(
        "Where step coefficients come from (default: interval).",
        discussion: "interval: from each interval of the grid through the SDE's continuous schedule, correct for any --steps; reference: score_sde's discrete tables with N = --steps (SMLD sigmas, DDPM betas, Langevin alpha = 1 - beta_i, Euler-Maruyama dt = -1/N), bit-for-bit its behaviour on its own uniform grid.",
        valueName: "interval|reference"))
    var coefficients: CoefficientsName?

    var predictorName: PredictorName { predictor ?? .reverseDiffusion }
    var correctorName: CorrectorName { corrector ?? .langevin }
    var snrValue: Double { snr ?? 0.16 }
    var correctorStepCount: Int { correctorSteps ?? 1 }
    var orderName: OrderName { order ?? .correctorFirst }

    /// The options given on the command line, by name (for rejecting them with `--sampler ode`).
    var given: [String] {
        var names = [String]()
        if predictor != nil { names.append("--predictor") }
        if corrector != nil { names.append("--corrector") }
        if snr != nil { names.append("--snr") }
        if correctorSteps != nil { names.append("--corrector-steps") }
        if order != nil { names.append("--order") }
        if coefficients != nil { names.append("--coefficients") }
        return names
    }

    func validate() throws {
        let (predictor, corrector, correctorSteps) = (predictorName, correctorName, correctorStepCount)
        if predictor == .none && corrector == .none {
            throw ValidationError("--predictor none with --corrector none would not sample anything; choose a predictor, a corrector, or both")
        }
        if correctorSteps < 1 {
            throw ValidationError("--corrector-steps must be >= 1 (got \(correctorSteps)); use --corrector none for no corrector")
        }
    }

    /// The step coefficients for a grid of `steps` intervals.
    func stepCoefficients(steps: Int) throws -> StepCoefficients {
        switch coefficients ?? .interval {
        case .interval: return .interval
        case .reference: return .reference(try ReferenceDiscretization(steps: steps))
        }
    }

    /// The predictor for `sde`. Ancestral sampling needs an ancestral form (VE, VP).
    func makePredictor(for sde: BuiltSDE, steps: Int) throws -> any Predictor {
        let c = try stepCoefficients(steps: steps)
        switch predictorName {
        case .eulerMaruyama: return EulerMaruyama(coefficients: c)
        case .reverseDiffusion: return ReverseDiffusion(coefficients: c)
        case .none: return NoPredictor()
        case .ancestral:
            switch sde {
            case .ve(let s): return AncestralSampling(for: s, coefficients: c)
            case .vp(let s): return AncestralSampling(for: s, coefficients: c)
            case .subVP:
                throw ScoreSDEError.invalidArgument("--predictor ancestral needs --sde ve or vp: sub-VP has no discrete ancestral schedule; use --predictor reverse-diffusion or euler-maruyama with --sde subvp")
            }
        }
    }

    func makeCorrector(steps: Int) throws -> any Corrector {
        let c = try stepCoefficients(steps: steps)
        switch correctorName {
        case .langevin: return try Langevin(snr: snrValue, steps: correctorStepCount, coefficients: c)
        case .ald: return try AnnealedLangevin(snr: snrValue, steps: correctorStepCount, coefficients: c)
        case .none: return NoCorrector()
        }
    }

    /// "reverse-diffusion + langevin", "ancestral", "ald only": for titles and summaries.
    var label: String {
        let (predictor, corrector) = (predictorName, correctorName)
        switch (predictor, corrector) {
        case (_, .none): return predictor.rawValue
        case (.none, _): return corrector.rawValue + " (corrector only)"
        default: return "\(predictor.rawValue) + \(corrector.rawValue)"
        }
    }

    /// The settings for a stats file (`denoise` is the resolved `--denoise`).
    func stats(denoise: DenoiseName) -> RunStats {
        var s = RunStats()
        s["predictor"] = .string(predictorName.rawValue)
        s["corrector"] = .string(correctorName.rawValue)
        s["snr"] = .double(snrValue)
        s["corrector_steps"] = .int(correctorStepCount)
        s["denoise"] = .string(denoise.rawValue)
        s["order"] = .string(orderName.rawValue)
        s["coefficients"] = .string((coefficients ?? .interval).rawValue)
        return s
    }
}

/// Where step coefficients come from, by name.
enum CoefficientsName: String, CaseIterable, ExpressibleByArgument {
    case interval
    case reference
}

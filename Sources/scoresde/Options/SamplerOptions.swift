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
    /// Few-step deterministic samplers with exactly `--nfe` score evaluations (``FewStepOptions``).
    case ddim
    case dpmSolverPP = "dpm-solver++"
    case unipc
    case heun
    /// SDE-DPM-Solver++ (stochastic, `--nfe` steps of 1 NFE).
    case sdeDPMSolverPP = "sde-dpm-solver++"
    /// The "Gotta Go Fast" adaptive SDE solver (`--rtol`, `--atol`; NFE chosen by error control).
    case adaptiveSDE = "adaptive-sde"
    /// UniPC with error control (``AdaptiveUniPC``; `--rtol`, `--atol`, `--order`; NFE chosen by error control).
    case adaptiveUniPC = "adaptive-unipc"

    /// The few-step samplers (`--nfe`, `--skip`, `--order`, `--eta`).
    var isFewStep: Bool { self != .pc && self != .ode && self != .adaptiveSDE && self != .adaptiveUniPC }

    /// Samplers whose output depends only on the starting latent (usable with `--latent`).
    var isDeterministic: Bool {
        self == .ode || self == .dpmSolverPP || self == .unipc || self == .heun || self == .ddim || self == .adaptiveUniPC
    }

    /// `--nfe` without `--sampler`: the method the benchmark (`scoresde-bench fast`) recommends.
    static let recommended = SamplerName.unipc
}

/// `--sampler`, `--steps`, `--eps`, `--denoise`.
struct SamplerOptions: ParsableArguments {
    static let defaultSteps = 1000

    @Option(help: ArgumentHelp(
        "The sampler: pc (predictor-corrector; the default, except for the shipped U-Nets digits and fashion, whose default is the recommended few-step sampler at 20 NFE), ode (probability-flow ODE), a few-step sampler: ddim, dpm-solver++, unipc, heun, sde-dpm-solver++ (stochastic), adaptive-sde (Gotta Go Fast) or adaptive-unipc (deterministic, error-controlled).",
        discussion: "ode uses the options of the probability-flow ODE below; --latent implies ode unless a few-step sampler or --nfe is given; --nfe alone implies the recommended few-step sampler (\(SamplerName.recommended.rawValue)). adaptive-sde: Euler-Maruyama and improved Euler with extrapolation, per-sample step sizes under error control with --rtol (default 0.05) and --atol (default 0.0078), the paper's; --denoise none (default) or tweedie. adaptive-unipc: UniPC (order 3, or --order 1|2) on steps it chooses by error control, --rtol and --atol (default 5e-4 each: map RMSE <= 1e-3 on the benchmark mixtures in 43-47 NFE), --latent accepted, the state at --eps returned. Options of the other samplers are rejected rather than ignored.",
        valueName: "pc|ode|ddim|dpm-solver++|unipc|heun|sde-dpm-solver++|adaptive-sde|adaptive-unipc"))
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

    @Option(name: .customLong("error-norm"), help: ArgumentHelp(
        "adaptive-unipc: how the local errors of the batch are combined: batch (RMS over all samples, default, scipy's norm) or worst-row (every sample's error is controlled; about 1.4x the NFE).",
        valueName: "batch|worst-row"))
    var errorNorm: ErrorNormName?

    func validate() throws {
        if let steps, steps < 1 { throw ValidationError("--steps must be >= 1 (got \(steps))") }
    }

    /// `--sampler`, else the recommended few-step sampler when `--nfe` is given, else ode when
    /// latents are given, else the recommended few-step sampler for a shipped model whose card
    /// recommends it (``PretrainedModels/recommendedNFE(_:)``: the U-Nets), else pc.
    func resolved(latentGiven: Bool, nfeGiven: Bool = false, model: String? = nil) -> SamplerName {
        sampler ?? (nfeGiven ? .recommended : latentGiven ? .ode
                    : model.flatMap(PretrainedModels.recommendedNFE) != nil ? .recommended : .pc)
    }

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

    @Option(help: ArgumentHelp(
        "pc: the order of the two updates within a step (default: corrector-first, the reference's code; predictor-first is the paper's Algorithm 1). Few-step samplers: the solver's order (dpm-solver++: 1-3, default 3; unipc: 1-3, default 3 with lower orders on the final steps below --nfe 40; sde-dpm-solver++: 1-2, default 2; ddim: 1; heun: 2).",
        valueName: "corrector-first|predictor-first|1|2|3"))
    var order: OrderArgument?

    @Option(help: ArgumentHelp(
        "Where step coefficients come from (default: interval).",
        discussion: "interval: from each interval of the grid through the SDE's continuous schedule, correct for any --steps; reference: score_sde's discrete tables with N = --steps (SMLD sigmas, DDPM betas, Langevin alpha = 1 - beta_i, Euler-Maruyama dt = -1/N), bit-for-bit its behaviour on its own uniform grid.",
        valueName: "interval|reference"))
    var coefficients: CoefficientsName?

    var predictorName: PredictorName { predictor ?? .reverseDiffusion }
    var correctorName: CorrectorName { corrector ?? .langevin }
    var snrValue: Double { snr ?? 0.16 }
    var correctorStepCount: Int { correctorSteps ?? 1 }
    var orderName: OrderName {
        if case .pc(let o) = order { return o }
        return .correctorFirst
    }

    /// The options given on the command line, by name (for rejecting them with `--sampler ode`).
    var given: [String] {
        var names = [String]()
        if predictor != nil { names.append("--predictor") }
        if corrector != nil { names.append("--corrector") }
        if snr != nil { names.append("--snr") }
        if correctorSteps != nil { names.append("--corrector-steps") }
        if case .pc = order { names.append("--order") }
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
        if case .solver(let n) = order {
            throw ScoreSDEError.invalidArgument("--order \(n) is a few-step solver's order (--sampler dpm-solver++ or unipc); the predictor-corrector sampler's --order is corrector-first or predictor-first")
        }
        let c = try stepCoefficients(steps: steps)
        switch predictorName {
        case .eulerMaruyama: return EulerMaruyama(coefficients: c)
        case .reverseDiffusion: return ReverseDiffusion(coefficients: c)
        case .none: return NoPredictor()
        case .ancestral:
            switch sde {
            case .ve(let s): return AncestralSampling(for: s, coefficients: c)
            case .vp(let s): return AncestralSampling(for: s, coefficients: c)
            case .vpCosine(let s): return AncestralSampling(for: s, coefficients: c)
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

/// `--error-norm` of adaptive UniPC.
enum ErrorNormName: String, CaseIterable, ExpressibleByArgument {
    case batch
    case worstRow = "worst-row"
}

/// `--order`: the PC update order by name, or a few-step solver's order as a number.
enum OrderArgument: ExpressibleByArgument, Equatable {
    case pc(OrderName)
    case solver(Int)

    init?(argument: String) {
        if let n = Int(argument) { self = .solver(n) } else if let o = OrderName(rawValue: argument) { self = .pc(o) } else { return nil }
    }

    static var allValueStrings: [String] { OrderName.allCases.map(\.rawValue) + ["1", "2", "3"] }
}

// MARK: - Few-step samplers

/// `--skip`: where the few-step samplers put their steps.
enum SkipName: ExpressibleByArgument, Equatable {
    case timeUniform
    case timeQuadratic
    /// Uniform in t^(1/p), p >= 1 (`time-power-P`; the recommendation uses 1.25, 2 and 2.5).
    case timePower(Double)
    case logSNR
    case karras

    init?(argument: String) {
        switch argument {
        case "time-uniform": self = .timeUniform
        case "time-quadratic": self = .timeQuadratic
        case "logsnr": self = .logSNR
        case "karras": self = .karras
        default:
            guard argument.hasPrefix("time-power-"), let p = Double(argument.dropFirst("time-power-".count)), p.isFinite, p >= 1 else { return nil }
            self = .timePower(p)
        }
    }

    init(_ spacing: TimeSpacing) {
        switch spacing {
        case .timeUniform: self = .timeUniform
        case .timeQuadratic: self = .timeQuadratic
        case .timePower(let p): self = .timePower(p)
        case .logSNR: self = .logSNR
        case .karras: self = .karras
        }
    }

    static var allValueStrings: [String] { ["time-uniform", "time-quadratic", "time-power-P", "logsnr", "karras"] }

    /// The name on the command line and in `stats.json`.
    var rawValue: String {
        switch self {
        case .timeUniform: return "time-uniform"
        case .timeQuadratic: return "time-quadratic"
        case .timePower(let p): return "time-power-\(p == p.rounded() ? String(Int(p)) : String(p))"
        case .logSNR: return "logsnr"
        case .karras: return "karras"
        }
    }

    var spacing: TimeSpacing {
        switch self {
        case .timeUniform: return .timeUniform
        case .timeQuadratic: return .timeQuadratic
        case .timePower(let p): return .timePower(p)
        case .logSNR: return .logSNR
        case .karras: return .karras(rho: 7)
        }
    }
}

/// `--nfe`, `--skip`, `--eta` of the few-step samplers (`--order` is shared with ``PCOptions``).
struct FewStepOptions: ParsableArguments {
    static let defaultNFE = 20

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Few-step samplers: exactly this many score evaluations (stats.json nfe == K; default 20). Without --sampler: the recommended few-step sampler.",
        valueName: "K"))
    var nfe: Int?

    @Option(help: ArgumentHelp(
        "Few-step samplers: the step spacing between T and eps (default: unipc the recommendation's: below 40 NFE time-power-1.25 for data of 3 or more dimensions, time-power-2 (below 15 NFE) or time-power-2.5 for 1-D and 2-D data, from 40 NFE time-quadratic; dpm-solver++ and sde-dpm-solver++ logsnr; ddim and heun time-uniform).",
        discussion: "time-uniform: uniform in t; time-quadratic: uniform in sqrt(t); time-power-P (P >= 1): uniform in t^(1/P); logsnr: uniform in log(m^2/std^2); karras: EDM's sigma^(1/7) spacing, sigma = std/m."))
    var skip: SkipName?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "ddim: stochasticity eta >= 0 (default 0, deterministic; 1 is DDPM ancestral sampling).", valueName: "eta"))
    var eta: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "dpm-solver++, sde-dpm-solver++, unipc: dynamic thresholding (Imagen) of the data predictions at this per-sample percentile P in (0, 1] (e.g. 0.995); for data scaled to [-1, 1].",
        valueName: "P"))
    var threshold: Double?

    /// The options given on the command line, by name.
    var given: [String] {
        (nfe != nil ? ["--nfe"] : []) + (skip != nil ? ["--skip"] : []) + (eta != nil ? ["--eta"] : [])
            + (threshold != nil ? ["--threshold"] : [])
    }

    var nfeValue: Int { nfe ?? Self.defaultNFE }

    /// The library's facts of the few-step method `kind` (orders, cost, determinism, default grid):
    /// the CLI asks the method instead of keeping its own table.
    static func facts(_ kind: SamplerName) -> MethodFacts {
        switch kind {
        case .ddim: return DDIM.facts
        case .heun: return EDMHeun.facts
        case .unipc: return UniPC.facts
        case .sdeDPMSolverPP: return SDEDPMSolverPlusPlus.facts
        default: return DPMSolverPlusPlus.facts
        }
    }

    /// Score evaluations per step, and the fewest evaluations the method runs with at `order`.
    static func cost(_ kind: SamplerName, order: Int) -> (perStep: Int, minimum: Int) {
        let f = facts(kind)
        return (f.evaluationsPerStep, f.minimumEvaluations(order: order))
    }

    /// The default `--skip`: the method's own default spacing (``MethodFacts/defaultSpacing(nfe:dimension:)``:
    /// ddim, heun time-uniform; unipc the recommendation's; dpm-solver++ the reference's logsnr).
    static func defaultSkip(_ kind: SamplerName, nfe: Int, dimension: Int) -> SkipName {
        SkipName(facts(kind).defaultSpacing(nfe: nfe, dimension: dimension))
    }

    /// The solver order for `kind` from `--order` (throws for an order the method lacks); unipc's
    /// default is the recommendation's for the budget and the data dimension (3 when unknown).
    static func solverOrder(_ kind: SamplerName, _ order: OrderArgument?, nfe: Int, dimension: Int? = nil) throws -> Int {
        let given: Int?
        switch order {
        case .none: given = nil
        case .solver(let n): given = n
        case .pc(let name):
            throw ValidationError("--order \(name.rawValue) is the predictor-corrector sampler's update order; --sampler \(kind.rawValue) takes a solver order (a number)")
        }
        let f = facts(kind)
        if let given, !f.orders.contains(given) {
            if f.orders.count == 1 {
                // A single-order method: point to the multistep solvers for the other orders.
                let others = (1 ... 3).filter { !f.orders.contains($0) }
                let list = others.count > 1 && others.last! - others.first! == others.count - 1
                    ? "\(others.first!)-\(others.last!)" : others.map(String.init).joined(separator: " and ")
                throw ValidationError("\(kind.rawValue) is \(MethodFacts.orderList(f.orders)) (got --order \(given)); use --sampler dpm-solver++ or unipc for orders \(list)")
            }
            throw ValidationError("--sampler \(kind.rawValue) has \(MethodFacts.orderList(f.orders)) (got --order \(given))")
        }
        if kind == .unipc, given == nil, let dimension { return FewStepRecommendation.order(nfe: nfe, dimension: dimension) }
        return given ?? f.defaultOrder
    }

    /// Checks the few-step options for `kind` (with `latent`: decoding needs a deterministic sampler).
    func validate(_ kind: SamplerName, order: OrderArgument?, latent: Bool) throws {
        let k = try Self.solverOrder(kind, order, nfe: nfeValue)
        let (perStep, cost) = Self.cost(kind, order: k)
        let minimum = kind == .unipc && order == nil ? 2 : cost   // the recommendation's lower-order warm-up runs from 2
        let nfe = nfeValue
        if nfe < minimum {
            throw ValidationError("--nfe \(nfe) is below the minimum of --sampler \(kind.rawValue)\(kind == .heun ? "" : " --order \(k)") (\(minimum) score evaluations)")
        }
        if nfe % perStep != 0 {
            throw ValidationError("--sampler heun spends 2 score evaluations per step: --nfe must be even (got \(nfe))")
        }
        if let eta {
            if kind != .ddim { throw ValidationError("--eta is an option of --sampler ddim, not \(kind.rawValue)") }
            if !(eta.isFinite && eta >= 0) { throw ValidationError("--eta must be >= 0 (got \(eta)); 0 is deterministic DDIM, 1 is DDPM ancestral sampling") }
            if latent && eta > 0 { throw ValidationError("--latent decodes latents with a deterministic sampler; --eta \(eta) makes ddim stochastic (use --eta 0)") }
        }
        if latent && !Self.facts(kind).deterministic {
            throw ValidationError("--latent decodes latents with a deterministic sampler; \(kind.rawValue) is stochastic (use dpm-solver++)")
        }
        if let threshold {
            if kind != .dpmSolverPP && kind != .unipc && kind != .sdeDPMSolverPP {
                throw ValidationError("--threshold acts on data predictions: use it with --sampler dpm-solver++, sde-dpm-solver++ or unipc, not \(kind.rawValue)")
            }
            if !(threshold.isFinite && threshold > 0 && threshold <= 1) {
                throw ValidationError("--threshold must be a percentile in (0, 1] (got \(threshold)); Imagen uses 0.995")
            }
        }
    }

    /// The predictor and its grid for `kind` from `T` to `eps`.
    func make(_ kind: SamplerName, order: OrderArgument?, sde: any ForwardSDE, eps: Double, dimension: Int) throws -> (predictor: any Predictor, grid: TimeGrid, order: Int, skip: SkipName) {
        let k = try Self.solverOrder(kind, order, nfe: nfeValue, dimension: dimension)
        let skip = self.skip ?? Self.defaultSkip(kind, nfe: nfeValue, dimension: dimension)
        let steps = nfeValue / Self.cost(kind, order: k).perStep
        let grid = try TimeGrid.spaced(skip.spacing, steps: steps, from: sde.T, to: eps, sde: sde)
        let predictor: any Predictor
        switch kind {
        case .ddim: predictor = try DDIM(eta: eta ?? 0)
        case .dpmSolverPP: predictor = try DPMSolverPlusPlus(order: k, threshold: try threshold.map { try DynamicThresholding(percentile: $0) })
        case .unipc:   // without --order: the recommendation's per-step orders (lower orders on the final steps below 40 NFE)
            predictor = try UniPC(order: k, orders: order == nil ? FewStepRecommendation.orders(nfe: nfeValue, dimension: dimension) : nil,
                                  threshold: try threshold.map { try DynamicThresholding(percentile: $0) })
        case .heun: predictor = EDMHeun()
        case .sdeDPMSolverPP: predictor = try SDEDPMSolverPlusPlus(order: k, threshold: try threshold.map { try DynamicThresholding(percentile: $0) })
        case .pc, .ode, .adaptiveSDE, .adaptiveUniPC: throw ScoreSDEError.invalidArgument("\(kind.rawValue) is not a few-step sampler")
        }
        return (predictor, grid, k, skip)
    }
}

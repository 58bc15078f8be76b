import Foundation
import ArgumentParser
import ScoreSDE

// The probability-flow ODE solver, shared by `sample --sampler ode`, `encode` and `likelihood`.

/// The GSL step types by name (the raw values of `ODEStepType`).
enum MethodName: String, CaseIterable, ExpressibleByArgument {
    case rkf45, rkck, rk8pd, msadams, rk2, rk4, rk1imp, rk2imp, rk4imp, bsimp, msbdf

    var stepType: ODEStepType {
        switch self {
        case .rkf45: return .rkf45
        case .rkck: return .rkck
        case .rk8pd: return .rk8pd
        case .msadams: return .msadams
        case .rk2: return .rk2
        case .rk4: return .rk4
        case .rk1imp: return .rk1imp
        case .rk2imp: return .rk2imp
        case .rk4imp: return .rk4imp
        case .bsimp: return .bsimp
        case .msbdf: return .msbdf
        }
    }

    /// The explicit (and Jacobian-free multistep) methods, for messages.
    static var jacobianFree: String {
        allCases.filter { !$0.stepType.requiresJacobian }.map(\.rawValue).joined(separator: ", ")
    }

    static let helpText = """
        Explicit, no Jacobian: rkf45 (Runge-Kutta-Fehlberg 4(5), default; the reference uses scipy's \
        RK45), rkck (Cash-Karp 4(5)), rk8pd (Prince-Dormand 8(9)), msadams (Adams multistep, orders 1-12), \
        rk2 (2(3)), rk4 (classical, step doubling). Implicit, need the score's Jacobian (mixtures provide \
        it; a dense Jacobian per system, so use --per-sample or few samples): rk1imp, rk2imp, rk4imp \
        (Gaussian implicit Runge-Kutta), bsimp (Bulirsch-Stoer), msbdf (BDF, orders 1-5). \
        Implicit methods cannot compute likelihoods.
        """
}

/// `--method`, `--rtol`, `--atol`, `--initial-step`, `--max-steps`, `--per-sample`.
///
/// Every option is optional so that `sample` can tell which were given (it rejects them with the
/// predictor-corrector sampler); the defaults are the reference's (RK45-like, rtol = atol = 1e-5).
struct ODEOptions: ParsableArguments {
    static let defaultMethod = MethodName.rkf45
    static let defaultTolerance = 1e-5

    @Option(help: ArgumentHelp("The ODE step type (default: rkf45).", discussion: MethodName.helpText, valueName: "method"))
    var method: MethodName?

    @Option(parsing: .unconditional, help: ArgumentHelp("Relative error tolerance per component, > 0 (default: 1e-5, the reference's).", valueName: "tol"))
    var rtol: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("Absolute error tolerance per component, > 0 (default: 1e-5, the reference's).", valueName: "tol"))
    var atol: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("Magnitude of the first trial step, > 0 (default: 1/1000 of the time interval).", valueName: "h"))
    var initialStep: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("Fail when a solve needs more accepted steps than this (default: unlimited).", valueName: "n"))
    var maxSteps: Int?

    @Flag(help: ArgumentHelp(
        "Solve every sample as its own ODE system (own step sizes, parallel over cores; NFE per sample).",
        discussion: "Without it the whole batch is one system, as in the reference: fewest model calls, the hardest sample sets the steps."))
    var perSample = false

    func validate() throws {
        for (name, value) in [("--rtol", rtol), ("--atol", atol)] {
            if let v = value, !(v > 0 && v.isFinite) {
                throw ValidationError("\(name) must be > 0 and finite (got \(v)); the reference uses 1e-5")
            }
        }
        if let h = initialStep, !(h > 0 && h.isFinite) {
            throw ValidationError("--initial-step must be > 0 and finite (got \(h))")
        }
        if let n = maxSteps, n < 1 { throw ValidationError("--max-steps must be >= 1 (got \(n))") }
    }

    var methodName: MethodName { method ?? Self.defaultMethod }
    var relativeTolerance: Double { rtol ?? Self.defaultTolerance }
    var absoluteTolerance: Double { atol ?? Self.defaultTolerance }
    var layout: ODESystemLayout { perSample ? .perSample : .batch }

    /// The options given on the command line, by name (for rejecting them where they do nothing).
    var given: [String] {
        var names = [String]()
        if method != nil { names.append("--method") }
        if rtol != nil { names.append("--rtol") }
        if atol != nil { names.append("--atol") }
        if initialStep != nil { names.append("--initial-step") }
        if maxSteps != nil { names.append("--max-steps") }
        if perSample { names.append("--per-sample") }
        return names
    }

    var solver: ODESolverOptions {
        ODESolverOptions(methodName.stepType, absoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance,
                         initialStep: initialStep, maxSteps: maxSteps)
    }

    /// Rejects the implicit methods, which the likelihood ODE cannot use (the library's check, in
    /// the options' words).
    func checkUsableForLikelihood() throws {
        do { try methodName.stepType.checkUsableForLikelihood() }
        catch ScoreSDEError.invalidArgument(let message) { throw ScoreSDEError.invalidArgument(optionWords(message)) }
    }

    /// A library message about step types and layouts, in the words of these options.
    func optionWords(_ message: String) -> String {
        message.replacingOccurrences(of: "the step type ", with: "--method ")
            .replacingOccurrences(of: "an explicit step type", with: "an explicit method")
            .replacingOccurrences(of: "use the per-sample layout", with: "add --per-sample")
    }

    /// "rkf45 (rtol 1e-05, atol 1e-05, per-sample)": for summaries and titles.
    var label: String {
        "\(methodName.rawValue) (rtol \(relativeTolerance), atol \(absoluteTolerance)\(perSample ? ", per-sample" : ""))"
    }

    /// The settings for a stats file.
    var stats: RunStats {
        var s = RunStats()
        s["method"] = .string(methodName.rawValue)
        s["rtol"] = .double(relativeTolerance)
        s["atol"] = .double(absoluteTolerance)
        s["layout"] = .string(perSample ? "per-sample" : "batch")
        s["initial_step"] = initialStep.map { .double($0) } ?? .null
        s["max_steps"] = maxSteps.map { .int($0) } ?? .null
        return s
    }

    /// The work counters of a solve, for a stats file: `nfe` (total batched score evaluations;
    /// per-sample: summed over samples), `nfe_per_sample_mean` (per-sample layout only),
    /// accepted/rejected steps (summed over systems), and the integrator's call counts.
    /// The results of a `solve` with the probability-flow algorithm.
    static func results(_ run: ReverseSolution, layout: ODESystemLayout) -> RunStats {
        var statistics = ODERunStatistics(scoreEvaluations: run.scoreEvaluations, integrator: run.integrator ?? ODEStatistics(),
                                          evaluationsPerSystem: run.perSampleEvaluations ?? [])
        statistics.modelPasses = run.modelPasses
        return results(nfe: run.scoreEvaluations, statistics, layout: layout)
    }

    static func results(nfe: Int, _ statistics: ODERunStatistics, layout: ODESystemLayout) -> RunStats {
        var s = RunStats()
        s["nfe"] = .int(nfe)
        if layout == .perSample {
            let per = statistics.evaluationsPerSystem
            s["nfe_per_sample_mean"] = .double(per.isEmpty ? 0 : Double(per.reduce(0, +)) / Double(per.count))
            s["nfe_per_sample_max"] = .int(per.max() ?? 0)
        }
        s["accepted_steps"] = .int(statistics.integrator.acceptedSteps)
        s["rejected_steps"] = .int(statistics.integrator.rejectedSteps)
        s["rhs_evaluations"] = .int(statistics.integrator.rightHandSideEvaluations)
        s["jacobian_evaluations"] = .int(statistics.integrator.jacobianEvaluations)
        return s
    }
}

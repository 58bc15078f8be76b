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
        "The data model: a built-in Gaussian mixture (\(GaussianMixture.builtInNames.joined(separator: ", "))) or gmm:PATH.json.",
        discussion: """
            ring: 8 modes on a circle (2-D); grid: 5x5 modes (2-D); gmm64: 10 modes in 64-D. \
            gmm:PATH.json reads {"weights": [...], "means": [[...], ...], "stds": [...]} (weights optional, \
            each std a number or a vector).
            """,
        valueName: "name|gmm:PATH.json"))
    var model: String = "ring"

    /// Resolves `--model`: a built-in name, or a mixture file after `gmm:`.
    func load() throws -> DataModel {
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
        return DataModel(name: model, label: model, source: .mixture(try GaussianMixture.builtIn(model)))
    }
}

/// A model resolved from `--model`: its score under a given SDE, and how to show its samples.
struct DataModel {
    /// Where the score comes from (trained models will be further cases).
    enum Source {
        /// A Gaussian mixture, whose score under any forward SDE is exact.
        case mixture(GaussianMixture)
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
        }
    }

    /// The score of the data diffused by `sde`.
    func score(diffusedBy sde: any ForwardSDE) -> any ScoreModel {
        switch source {
        case .mixture(let m): return GaussianMixtureScore(m, diffusedBy: sde)
        }
    }

    /// Points to mark on a scatter plot (the mixture means), shaped `[K, D]`.
    var referencePoints: Tensor? {
        switch source {
        case .mixture(let m): return try? Tensor(rows: m.means)
        }
    }

    /// The value range mapped to black...white when samples are images.
    var imageRange: ClosedRange<Double> {
        switch source {
        case .mixture: return 0 ... 1
        }
    }
}

// MARK: - Forward SDE

/// The forward SDEs by name.
enum SDEName: String, CaseIterable, ExpressibleByArgument {
    case ve, vp, subvp
}

/// A forward SDE built from the options, keeping its concrete type so that features that only
/// some SDEs have (ancestral sampling) are chosen with an exhaustive `switch`.
enum BuiltSDE {
    case ve(VESDE)
    case vp(VPSDE)
    case subVP(SubVPSDE)

    var forward: any ForwardSDE {
        switch self {
        case .ve(let s): return s
        case .vp(let s): return s
        case .subVP(let s): return s
        }
    }
}

/// `--sde` and its parameters.
struct SDEOptions: ParsableArguments {
    @Option(help: "The forward SDE: ve (variance exploding), vp (variance preserving) or subvp (sub-VP).")
    var sde: SDEName = .ve

    @Option(parsing: .unconditional, help: ArgumentHelp("VE: the smallest noise level sigma_min.", valueName: "sigma"))
    var sigmaMin: Double = 0.01

    @Option(parsing: .unconditional, help: ArgumentHelp("VE: the largest noise level sigma_max (about the largest distance between data points).", valueName: "sigma"))
    var sigmaMax: Double = 50

    @Option(parsing: .unconditional, help: ArgumentHelp("VP/sub-VP: beta(0).", valueName: "beta"))
    var betaMin: Double = 0.1

    @Option(parsing: .unconditional, help: ArgumentHelp("VP/sub-VP: beta(1).", valueName: "beta"))
    var betaMax: Double = 20

    /// The SDE with `N` discretization steps (the sampler's step count, as in the reference).
    func make(steps N: Int) throws -> BuiltSDE {
        switch sde {
        case .ve: return .ve(try VESDE(sigmaMin: sigmaMin, sigmaMax: sigmaMax, N: N))
        case .vp: return .vp(try VPSDE(betaMin: betaMin, betaMax: betaMax, N: N))
        case .subvp: return .subVP(try SubVPSDE(betaMin: betaMin, betaMax: betaMax, N: N))
        }
    }

    /// The reference's smallest time: 1e-5 for VE, 1e-3 for VP and sub-VP.
    var defaultEps: Double {
        switch sde {
        case .ve: return 1e-5
        case .vp, .subvp: return 1e-3
        }
    }

    /// `sde` and the parameters it uses.
    var stats: RunStats {
        var s = RunStats()
        s["sde"] = .string(sde.rawValue)
        switch sde {
        case .ve:
            s["sigma_min"] = .double(sigmaMin)
            s["sigma_max"] = .double(sigmaMax)
        case .vp, .subvp:
            s["beta_min"] = .double(betaMin)
            s["beta_max"] = .double(betaMax)
        }
        return s
    }
}

// MARK: - Computation

/// How the work is done: seed, batch size, threads. None of these change the samples except the seed.
struct ComputeOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Seed of the random source; the same seed gives the same bytes whatever --threads and --batch-size.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "At most this many rows per score-model call (default: all at once). Results do not depend on it.")
    var batchSize: Int?

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

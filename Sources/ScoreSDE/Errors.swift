import Foundation

/// The one error type of ScoreSDE. Every case carries a message a person can act on:
/// what was wrong, the value seen, and what to do instead.
///
///     do { _ = try VPSDE(betaMin: 0, betaMax: 20) }
///     catch let error as ScoreSDEError { print(error) }   // "invalid argument: betaMin must be finite and > 0 (got 0.0); ..."
///
/// A parameter outside its domain is ``invalidParameter(_:)``, which names the parameter and the
/// value, so that a caller can match on them:
///
///     do { _ = try VPSDE(betaMin: 0, betaMax: 20) }
///     catch ScoreSDEError.invalidParameter(let p) where p.name == "betaMin" { ... }
public enum ScoreSDEError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// A misuse that is not one parameter out of its domain: arguments that do not fit together
    /// (several parameters, or a parameter and the state of the object it is given to), a call
    /// made at the wrong time (a re-entrant call, a result asked for before the work is done), or
    /// data whose values are not what the call needs. The message says what was wrong and what
    /// to do. A single named parameter outside its domain is ``invalidParameter(_:)`` instead.
    case invalidArgument(String)
    /// One named parameter outside its domain (SDE parameters, eps, steps, tolerances, counts,
    /// sizes ...): which parameter, the value seen, what it must satisfy and what to try.
    case invalidParameter(InvalidParameter)
    /// One process of a split run failed (see ``Population``): which rank, and whether every rank
    /// knows the failure.
    case population(PopulationFailure)
    /// A tensor or file whose shape does not fit (wrong dimensionality for a model, ragged rows ...).
    case shapeMismatch(String)
    /// NaN or ±Inf where finite numbers are required (input data, model parameters, a score).
    case nonFinite(String)
    /// A file that cannot be read, parsed, or written.
    case io(path: String, message: String)
    /// The ODE integrator failed (step-size underflow, max steps, non-finite right-hand side ...).
    case integrator(IntegratorFailure)
    /// A name (model, SDE, predictor ...) that is not known.
    case unknownName(String)
    /// An IDX data file (the format of MNIST and Fashion-MNIST) that is malformed or not the data
    /// expected: which file, and what is wrong with it.
    case idx(path: String, problem: IDXProblem)
    /// A data set whose files are not installed: names the package that provides them and how to install it.
    case missingDataSet(MissingDataSet)
    /// A matrix that must be positive definite (a covariance to factor) is not, numerically.
    case notPositiveDefinite(NotPositiveDefinite)

    public var description: String {
        switch self {
        case .invalidArgument(let m): return "invalid argument: \(m)"
        case .invalidParameter(let p): return "invalid argument: \(p)"
        case .population(let f): return f.description
        case .shapeMismatch(let m): return "shape mismatch: \(m)"
        case .nonFinite(let m): return "non-finite value: \(m)"
        case .io(let path, let m): return "\(path): \(m)"
        case .integrator(let f): return "ODE integration failed: \(f)"
        case .unknownName(let m): return "unknown name: \(m)"
        case .idx(let path, let problem): return "\(path): \(problem)"
        case .missingDataSet(let m): return m.description
        case .notPositiveDefinite(let m): return m.description
        }
    }

    public var errorDescription: String? { description }

    /// The message of ``invalidArgument(_:)``, or the description of ``invalidParameter(_:)``;
    /// nil for the other cases. (For re-wording a refused argument, e.g. a file's metadata.)
    var argumentMessage: String? {
        switch self {
        case .invalidArgument(let m): return m
        case .invalidParameter(let p): return p.description
        default: return nil
        }
    }

    /// ``invalidParameter(_:)`` for `name`, printing `value` as the value seen.
    static func invalid(_ name: String, _ value: some Any, must requirement: String, advice: String? = nil) -> ScoreSDEError {
        .invalidParameter(InvalidParameter(name: name, value: "\(value)", requirement: requirement, advice: advice))
    }
}

/// A parameter outside its domain: which one, the value seen, what it must satisfy and what to
/// try. Thrown as ``ScoreSDEError/invalidParameter(_:)``.
///
///     do { _ = try VESDE(sigmaMin: 0.01, sigmaMax: -1) }
///     catch ScoreSDEError.invalidParameter(let p) {
///         print(p.name, p.value)   // "sigmaMax -1.0"
///         print(p)                 // "sigmaMax must be finite and > sigmaMin = 0.01 (got -1.0); the reference uses 50 ..."
///     }
public struct InvalidParameter: Equatable, Sendable, CustomStringConvertible {
    /// The parameter's name in the library: the argument label or property, e.g. `betaMin`,
    /// `eps`, `absoluteTolerance`, `steps`, `batchSize`; `t` for a time.
    public var name: String
    /// The offending value, as printed (`"0.0"`, `"-3"`, `"[3, 3]"`).
    public var value: String
    /// What the parameter must be, to follow "must be": `"finite and > 0"`, `"in (0, 1)"`, `">= 1"`.
    public var requirement: String
    /// What to try, or a usual value (`"the reference uses 0.1"`); nil when there is nothing to add.
    public var advice: String?

    /// A parameter `name` that had `value` and must be `requirement`, with optional `advice`.
    public init(name: String, value: String, requirement: String, advice: String? = nil) {
        self.name = name; self.value = value; self.requirement = requirement; self.advice = advice
    }

    /// "`name` must be `requirement` (got `value`); `advice`".
    public var description: String {
        "\(name) must be \(requirement) (got \(value))" + (advice.map { "; \($0)" } ?? "")
    }
}

/// One process of a split run failed: which rank of how many, whether every rank knows it, and
/// the message. Thrown as ``ScoreSDEError/population(_:)``.
///
/// `collective` failures are known to every rank (from ``Population/agree(_:_:)`` or another
/// collective), so one report is enough; the others are one rank's own.
public struct PopulationFailure: Equatable, Sendable, CustomStringConvertible {
    /// The rank that failed, `0 ..< size`.
    public var rank: Int
    /// The number of processes.
    public var size: Int
    /// Whether every rank knows this failure (and throws it).
    public var collective: Bool
    /// What went wrong on `rank`.
    public var message: String

    /// A failure of `rank` of `size`.
    public init(rank: Int, size: Int, collective: Bool, message: String) {
        self.rank = rank; self.size = size; self.collective = collective; self.message = message
    }

    /// "rank `rank` of `size`: `message`".
    public var description: String { "rank \(rank) of \(size): \(message)" }
}

/// The error of a split run before it became a case of ``ScoreSDEError``.
@available(*, deprecated, renamed: "PopulationFailure", message: "split runs throw ScoreSDEError.population(PopulationFailure); catch that case")
public typealias PopulationError = PopulationFailure

/// What went wrong inside an ODE solve, with where it went wrong.
public struct IntegratorFailure: Equatable, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public enum Reason: Equatable, Sendable {
        /// The step size fell below `hmin` (or machine precision): the problem is stiff or the tolerance too tight.
        case stepSizeUnderflow
        /// More than `maxSteps` steps were needed.
        case maxStepsExceeded
        /// The right-hand side produced NaN or ±Inf.
        case nonFiniteRightHandSide
        /// The right-hand side (e.g. a score model) threw; its message is kept.
        case rightHandSideThrew(String)
        /// Any other GSL status, with GSL's code and text.
        case gsl(code: Int32, text: String)
    }
    public var reason: Reason
    /// The time reached by the last successful step.
    public var time: Double
    /// The step size in use when the failure happened.
    public var stepSize: Double
    /// A sentence on what to try.
    public var advice: String

    public init(reason: Reason, time: Double, stepSize: Double, advice: String) {
        self.reason = reason; self.time = time; self.stepSize = stepSize; self.advice = advice
    }

    public var description: String {
        let what: String
        switch reason {
        case .stepSizeUnderflow: what = "step size underflow"
        case .maxStepsExceeded: what = "maximum number of steps exceeded"
        case .nonFiniteRightHandSide: what = "the right-hand side returned NaN or Inf"
        case .rightHandSideThrew(let m): what = "the right-hand side threw: \(m)"
        case .gsl(let code, let text): what = "GSL status \(code) (\(text))"
        }
        return "\(what) at t = \(time), step size h = \(stepSize). \(advice)"
    }
}

/// A data set that needs files from a system package that is not installed (or not where it was
/// looked for), with the commands that fix it.
///
///     do { _ = try FashionMNIST.trainingSplit() }
///     catch ScoreSDEError.missingDataSet(let m) { print(m.package) }   // "dataset-fashion-mnist"
public struct MissingDataSet: Equatable, Sendable, CustomStringConvertible {
    /// The data set's name, e.g. `fashion-mnist`.
    public var dataSet: String
    /// The Debian package that installs its files, e.g. `dataset-fashion-mnist`.
    public var package: String
    /// The file that was looked for and not found (the first one missing).
    public var missingFile: String
    /// The environment variable that points to a folder holding the files instead, if the data set has one.
    public var directoryVariable: String?

    public init(dataSet: String, package: String, missingFile: String, directoryVariable: String? = nil) {
        self.dataSet = dataSet; self.package = package; self.missingFile = missingFile; self.directoryVariable = directoryVariable
    }

    public var description: String {
        var text = "the data set \(dataSet) is not installed: \(missingFile) does not exist. Install the Debian package "
            + "\(package): run scripts/setup.sh from the ScoreSDE.swift checkout, or `apt-get install \(package)` as root"
        if let directoryVariable {
            text += "; or set \(directoryVariable) to a folder that holds the files"
        }
        return text
    }
}

/// A symmetric matrix that had to be positive definite and is not (its Cholesky factorisation
/// failed): which matrix, where the factorisation stopped, and what to do.
///
///     catch ScoreSDEError.notPositiveDefinite(let m) { print(m.matrix, m.order) }
public struct NotPositiveDefinite: Equatable, Sendable, CustomStringConvertible {
    /// What the matrix is, e.g. `the covariance of class 3 in logit space`.
    public var matrix: String
    /// Its dimension `D`.
    public var dimension: Int
    /// The order of the first leading minor that is not positive (LAPACK `dpotrf`'s `info`), `1 ... D`.
    public var order: Int
    /// A sentence on what to try.
    public var advice: String

    public init(matrix: String, dimension: Int, order: Int, advice: String) {
        self.matrix = matrix; self.dimension = dimension; self.order = order; self.advice = advice
    }

    public var description: String {
        "\(matrix) (\(dimension) x \(dimension)) is not positive definite: its leading minor of order \(order) is not positive. \(advice)"
    }
}

import Foundation

/// The one error type of ScoreSDE. Every case carries a message a person can act on:
/// what was wrong, the value seen, and what to do instead.
///
///     do { _ = try VPSDE(betaMin: 0, betaMax: 20) }
///     catch let error as ScoreSDEError { print(error) }   // "invalid argument: betaMin must be > 0 (got 0) ..."
public enum ScoreSDEError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// A parameter outside its domain (SDE parameters, eps, steps, tolerances, counts ...).
    case invalidArgument(String)
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
}

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

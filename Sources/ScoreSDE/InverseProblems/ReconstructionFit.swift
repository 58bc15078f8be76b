import Foundation

extension LinearMeasurement {
    /// The measurement `y = A x + noise` of data `x`, rewritten for a model that works on
    /// `x' = a x + b` (``DataScaling``, affine): `A x' = a (A x) + b (A 1)`, so the model-space
    /// observation is `a y + b (A 1)` and the noise std `|a| σ`.
    ///
    /// - Parameters:
    ///   - a: the measurement matrix `A` (rows of the data dimension).
    ///   - y: one row of `A.count` measured values per input (data space).
    ///   - noiseStd: the measurement noise std in data space.
    ///   - scaling: the model's data scaling (affine).
    ///   - repeats: each observation row repeated this many times (one row per sample).
    /// - Throws: `invalidArgument` for a logit scaling (a linear measurement of the data is not
    ///   linear in a logit model space) or `repeats < 1`; `shapeMismatch` for an observation whose
    ///   rows are not `A.count` long; what the measurement's initializer throws.
    public static func inModelSpace(matrix a: [[Double]], observation y: Tensor, noiseStd: Double, scaling: DataScaling,
                                    repeats: Int = 1) throws -> LinearMeasurement {
        guard scaling.isAffine else {
            throw ScoreSDEError.invalidArgument("the model maps data to model space through a logit (\(scaling)), so a linear measurement of the data is not linear in model space; use a model with an affine scaling")
        }
        try requireParameter(repeats >= 1, name: "repeats", value: repeats, requirement: ">= 1")
        guard y.rowSize == a.count else {
            throw ScoreSDEError.shapeMismatch("the observation has rows of \(y.rowSize) values for \(a.count) measurements")
        }
        var yModel = y
        let m = a.count
        for r in 0 ..< y.rows {
            for i in 0 ..< m { yModel.storage[r * m + i] = scaling.scale * y.storage[r * m + i] + scaling.shift * a[i].reduce(0, +) }
        }
        return try LinearMeasurement(matrix: a, observation: repeats == 1 ? yModel : yModel.repeatingRows(repeats),
                                     noiseStd: noiseStd * abs(scaling.scale))
    }
}

/// How reconstructions from a linear measurement fit: the RMS of the measurement residual
/// `A x − y` of every sample, and (when the inputs are known) the RMSE of every sample against its input.
///
///     let fit = try ReconstructionFit(samples: x, matrix: a, observation: y, truth: inputs, perInput: 4)
///     print(fit.residualRMS, fit.rmse ?? .nan)
public struct ReconstructionFit: Sendable, Equatable {
    /// RMS over samples and measurements of `(A x)_i − y_i` (data space).
    public let residualRMS: Double
    /// RMSE over samples and values of `x − truth` (nil without a truth).
    public let rmse: Double?

    /// - Parameters:
    ///   - samples: `n·k` rows of `d` values (data space), rows `i·k ..< (i+1)·k` for input `i`.
    ///   - a: the measurement matrix (`m` rows of `d`).
    ///   - y: the `n` observations (rows of `m` values).
    ///   - truth: the `n` inputs, if known.
    ///   - k: samples per input.
    /// - Throws: `shapeMismatch` when the shapes disagree; `invalidArgument` for `k < 1`.
    public init(samples: Tensor, matrix a: [[Double]], observation y: Tensor, truth: Tensor?, perInput k: Int) throws {
        try requireParameter(k >= 1, name: "perInput", value: k, requirement: ">= 1")
        let d = samples.rowSize, n = samples.rows / k, m = a.count
        guard samples.rows == n * k, y.rows == n, y.rowSize == m, a.allSatisfy({ $0.count == d }),
              truth.map({ $0.rows == n && $0.rowSize == d }) ?? true else {
            throw ScoreSDEError.shapeMismatch("reconstruction fit: \(samples.rows) samples of \(d) values at \(k) per input need \(n) observations of \(m) values (got \(y.shape)), a \(m) x \(d) matrix and \(n) inputs of \(d) values (got \(truth.map { "\($0.shape)" } ?? "none"))")
        }
        let measured = try LinearMeasurement(matrix: a, observation: [Double](repeating: 0, count: m)).apply(samples)
        var residual = 0.0
        for r in 0 ..< n * k {
            for i in 0 ..< m { let e = measured.storage[r * m + i] - y.storage[(r / k) * m + i]; residual += e * e }
        }
        residualRMS = (residual / Double(max(n * k * m, 1))).squareRoot()
        if let truth {
            var squared = 0.0
            for r in 0 ..< n * k { for j in 0 ..< d { let e = samples.storage[r * d + j] - truth.storage[(r / k) * d + j]; squared += e * e } }
            rmse = (squared / Double(max(n * k * d, 1))).squareRoot()
        } else {
            rmse = nil
        }
    }
}

import Foundation

/// The step-size controller role shared by the adaptive solvers (``AdaptiveUniPC``,
/// ``AdaptiveSDESampler``): how a local error estimate is measured against the tolerances, whether
/// the step is accepted, and by what factor the next step changes — one implementation, so the two
/// solvers cannot drift apart (issue 21, item 2; the `diffrax` `AbstractStepSizeController` /
/// GSL `gsl_odeiv2_control` role).
///
/// **Error norm.** Each value's error `e` is scaled by a tolerance built from two reference
/// magnitudes `a`, `b` of that value (the solver's states before and after the step):
///
///     sc = ε_abs + ε_rel · max(|a|, |b|)        (``ToleranceScale/sum``: Hairer, Nørsett & Wanner,
///                                                 *Solving ODEs I*, §II.4 eq. 4.10; scipy)
///     sc = max(ε_abs, ε_rel · max(|a|, |b|))    (``ToleranceScale/max``: Jolicoeur-Martineau et al.
///                                                 2021, "Gotta Go Fast", Algorithm 1)
///
/// and the norm is the RMS of `e / sc` over one row (``ErrorNorm/perSample``: every sample decides
/// for itself), over the whole batch (``ErrorNorm/batch``), or the largest row RMS
/// (``ErrorNorm/worstRow``: one decision for a batch that moves in lock-step, every row controlled).
///
/// **Decision.** A step with norm `E ≤ 1` is accepted. Either way the next step is
///
///     h ← h · clamp(θ · max(E, E_floor)^(−r), f_min, f_max)
///
/// with `r` = ``exponent`` (or `1/(k + 1)` for a method of local order `k + 1` when nil), no growth
/// right after a rejection when ``holdAfterRejection`` is set (Hairer, Nørsett & Wanner §II.4), and
/// never growth on a rejection.
public struct StepSizeController: Sendable, Equatable {
    /// How ``ErrorNorm`` combines the errors of a batch.
    public enum ErrorNorm: String, Sendable, CaseIterable {
        /// One norm per row: each sample is accepted or rejected on its own (per-sample step sizes).
        case perSample
        /// The RMS over every value of the batch (scipy's norm for one system of all rows).
        case batch
        /// The largest row RMS: one decision for the batch, every row's error controlled.
        case worstRow
    }

    /// How the absolute and relative tolerances combine into one value's scale.
    public enum ToleranceScale: String, Sendable, CaseIterable {
        /// `ε_abs + ε_rel · max(|a|, |b|)`.
        case sum
        /// `max(ε_abs, ε_rel · max(|a|, |b|))`.
        case max
    }

    public var absoluteTolerance: Double
    public var relativeTolerance: Double
    public var toleranceScale: ToleranceScale
    public var norm: ErrorNorm
    /// Safety factor θ.
    public var safety: Double
    /// Exponent `r` of the step-size update; nil: `1/(order + 1)` from the order passed to
    /// ``decide(error:order:afterRejection:)``.
    public var exponent: Double?
    /// Smallest and largest factor of one update (0 and +∞: unclamped).
    public var minimumFactor: Double
    public var maximumFactor: Double
    /// Errors below this are raised to it before the update (0: none; an error of 0 then allows any step).
    public var errorFloor: Double
    /// No growth on the step after a rejection.
    public var holdAfterRejection: Bool

    /// The controller with these settings, unchecked (the solvers' own settings, checked when the
    /// solvers were made).
    init(uncheckedAbsoluteTolerance absoluteTolerance: Double, relativeTolerance: Double, toleranceScale: ToleranceScale,
         norm: ErrorNorm, safety: Double, exponent: Double?, minimumFactor: Double, maximumFactor: Double,
         errorFloor: Double, holdAfterRejection: Bool) {
        self.absoluteTolerance = absoluteTolerance; self.relativeTolerance = relativeTolerance
        self.toleranceScale = toleranceScale; self.norm = norm; self.safety = safety; self.exponent = exponent
        self.minimumFactor = minimumFactor; self.maximumFactor = maximumFactor; self.errorFloor = errorFloor
        self.holdAfterRejection = holdAfterRejection
    }

    /// `(e / sc)²` for one value with error `e` and reference magnitudes `a`, `b`.
    @inline(__always)
    public func scaledSquare(error e: Double, _ a: Double, _ b: Double) -> Double {
        let m = Swift.max(Swift.abs(a), Swift.abs(b))
        let scale: Double
        switch toleranceScale {
        case .sum: scale = absoluteTolerance + relativeTolerance * m
        case .max: scale = Swift.max(absoluteTolerance, relativeTolerance * m)
        }
        let r = e / scale
        return r * r
    }

    /// The RMS norm of one row of `rowSize` values from its sum of ``scaledSquare(error:_:_:)``.
    @inline(__always)
    public func rowNorm(sumOfSquares q: Double, rowSize d: Int) -> Double {
        (q / Double(Swift.max(d, 1))).squareRoot()
    }

    /// The norm of a batch that takes one decision (``ErrorNorm/batch`` or ``ErrorNorm/worstRow``;
    /// ``ErrorNorm/perSample`` reads as ``ErrorNorm/worstRow``: the decision every row would accept),
    /// from the sum of all rows' squares, the largest row's, the number of values and the row size.
    public func batchNorm(total: Double, worstRow: Double, values: Int, rowSize d: Int) -> Double {
        switch norm {
        case .batch: return (total / Double(Swift.max(1, values))).squareRoot()
        case .worstRow, .perSample: return (worstRow / Double(Swift.max(d, 1))).squareRoot()
        }
    }

    /// Accept or reject a step whose error norm is `error`, and the factor for the next step (the
    /// same step size times it, whether or not it was accepted). `order` is the local order minus
    /// one (`k`, giving `r = 1/(k + 1)`) when ``exponent`` is nil; `afterRejection`: the previous
    /// attempt was rejected.
    @inline(__always)
    public func decide(error: Double, order: Int = 1, afterRejection: Bool = false) -> (accepted: Bool, factor: Double) {
        let r = exponent ?? 1 / Double(order + 1)
        let proposed = safety * Foundation.pow(Swift.max(error, errorFloor), -r)
        let factor = Swift.min(afterRejection && holdAfterRejection ? 1 : maximumFactor, Swift.max(minimumFactor, proposed))
        return error <= 1 ? (true, factor) : (false, Swift.min(1, factor))
    }
}

extension StepSizeController {
    /// - Throws: `invalidArgument` for tolerances that are negative, not finite or both zero, θ outside
    ///   (0, 1], an exponent ≤ 0, or factors with `0 ≤ f_min ≤ 1 ≤ f_max` violated.
    public init(absoluteTolerance: Double, relativeTolerance: Double, toleranceScale: ToleranceScale = .sum,
                norm: ErrorNorm = .perSample, safety: Double = 0.9, exponent: Double? = nil,
                minimumFactor: Double = 0, maximumFactor: Double = .infinity, errorFloor: Double = 0,
                holdAfterRejection: Bool = false) throws {
        try requireParameter(absoluteTolerance.isFinite && absoluteTolerance >= 0 && relativeTolerance.isFinite && relativeTolerance >= 0
                             && absoluteTolerance + relativeTolerance > 0,
                             "the tolerances must be finite, >= 0 and not both 0 (got absolute \(absoluteTolerance), relative \(relativeTolerance))")
        try requireParameter(safety.isFinite && safety > 0 && safety <= 1, "the safety factor must be in (0, 1] (got \(safety))")
        if let r = exponent { try requireParameter(r.isFinite && r > 0, "the step-size exponent must be > 0 (got \(r))") }
        try requireParameter(minimumFactor >= 0 && minimumFactor <= 1 && maximumFactor >= 1,
                             "the step factors need 0 <= minimum <= 1 <= maximum (got \(minimumFactor), \(maximumFactor))")
        try requireParameter(errorFloor.isFinite && errorFloor >= 0, "the error floor must be finite and >= 0 (got \(errorFloor))")
        self.init(uncheckedAbsoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance, toleranceScale: toleranceScale,
                  norm: norm, safety: safety, exponent: exponent, minimumFactor: minimumFactor, maximumFactor: maximumFactor,
                  errorFloor: errorFloor, holdAfterRejection: holdAfterRejection)
    }
}

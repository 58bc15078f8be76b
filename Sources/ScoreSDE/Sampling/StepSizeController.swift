import Foundation

/// The step-size controller role shared by every adaptive solver (``AdaptiveUniPC``,
/// ``AdaptiveSDESampler`` and, as GSL's `gsl_odeiv2_control`, ``ODEIntegrator``): how a local
/// error estimate is measured against the tolerances, whether the step is accepted, and by what
/// factor the next step changes — one implementation, so the solvers cannot drift apart (the
/// `diffrax` `AbstractStepSizeController` / GSL `gsl_odeiv2_control` role). GSL keeps its steppers
/// and its evolve loop; ``ODEIntegrator`` installs this controller as their control object
/// (``gslStandard(absoluteTolerance:relativeTolerance:)`` reproduces GSL's own standard control
/// bit for bit, and is the ODE solvers' default).
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
/// for itself), over the whole batch (``ErrorNorm/batch``), the largest row RMS
/// (``ErrorNorm/worstRow``: one decision for a batch that moves in lock-step, every row controlled),
/// or the largest `|e| / sc` of any value (``ErrorNorm/maximum``: GSL's standard norm).
///
/// **Decision** (``Rule/proportional``). A step with norm `E ≤ 1` is accepted. Either way the next
/// step is
///
///     h ← h · clamp(θ · max(E, E_floor)^(−r), f_min, f_max)
///
/// with `r` = ``exponent`` (or `1/(k + 1)` for a method of local order `k + 1` when nil), no growth
/// right after a rejection when ``holdAfterRejection`` is set (Hairer, Nørsett & Wanner §II.4), and
/// never growth on a rejection. ``Rule/deadband(decreaseAbove:increaseBelow:)`` is GSL's rule
/// instead (`gsl_odeiv2_control_standard_new`, GSL manual §27.4): reject and shrink by
/// `max(f_min, θ / E^(1/q))` when `E >` the upper bound, grow by `clamp(θ / E^(1/(q + 1)), 1, f_max)`
/// when `E <` the lower bound, keep `h` in between, for a stepper of order `q`.
public struct StepSizeController: Sendable, Equatable {
    /// How ``ErrorNorm`` combines the errors of a batch.
    public enum ErrorNorm: String, Sendable, CaseIterable {
        /// One norm per row: each sample is accepted or rejected on its own (per-sample step sizes).
        case perSample
        /// The RMS over every value of the batch (scipy's norm for one system of all rows).
        case batch
        /// The largest row RMS: one decision for the batch, every row's error controlled.
        case worstRow
        /// The largest `|e| / sc` of any single value (GSL's standard control; stricter than any RMS).
        case maximum
    }

    /// How a norm becomes a decision.
    public enum Rule: Sendable, Equatable {
        /// Accept when `E ≤ 1`; the next step `h · clamp(θ E^(−r), f_min, f_max)` (Hairer, Nørsett & Wanner §II.4).
        case proportional
        /// GSL's standard rule: reject and shrink when `E > decreaseAbove`, grow when
        /// `E < increaseBelow`, keep the step in between (GSL: 1.1 and 0.5).
        case deadband(decreaseAbove: Double, increaseBelow: Double)
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
    /// How the norm becomes a decision (``Rule/proportional`` unless made otherwise).
    public var rule: Rule = .proportional

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
        let r = e / toleranceLevel(Swift.max(Swift.abs(a), Swift.abs(b)))
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
        case .worstRow, .perSample, .maximum: return (worstRow / Double(Swift.max(d, 1))).squareRoot()
        }
    }

    /// `|e| / sc` for one value with error `e` and reference magnitudes `a`, `b` (the terms of
    /// ``ErrorNorm/maximum``; GSL's `|yerr_i| / D_i` with `a = b = y_i`).
    @inline(__always)
    public func scaledRatio(error e: Double, _ a: Double, _ b: Double) -> Double {
        Swift.abs(e) / toleranceLevel(Swift.max(Swift.abs(a), Swift.abs(b)))
    }

    /// The tolerance scale `sc` of a value of magnitude `|y|` (GSL's `errlevel`, which its
    /// multistep steppers ask for).
    @inline(__always)
    public func toleranceLevel(_ y: Double) -> Double {
        let m = Swift.abs(y)
        switch toleranceScale {
        case .sum: return absoluteTolerance + relativeTolerance * m
        case .max: return Swift.max(absoluteTolerance, relativeTolerance * m)
        }
    }

    /// The norm of a whole state's error `e` against the states `y0` before and `y1` after the
    /// step (`a = y0`, `b = y1` in ``scaledSquare(error:_:_:)``), in rows of `rowSize` values:
    /// ``ErrorNorm/maximum`` the largest ratio, ``ErrorNorm/batch`` the RMS of all values,
    /// ``ErrorNorm/worstRow`` and ``ErrorNorm/perSample`` the largest row RMS (a last, shorter
    /// group counts as a row). `y0` may be `y1` (GSL passes only the new state).
    public func norm(error e: UnsafeBufferPointer<Double>, before y0: UnsafeBufferPointer<Double>,
                     after y1: UnsafeBufferPointer<Double>, rowSize: Int) -> Double {
        let n = e.count
        switch norm {
        case .maximum:
            var rmax = Double.leastNormalMagnitude   // GSL starts at DBL_MIN
            for i in 0 ..< n { rmax = Swift.max(scaledRatio(error: e[i], y0[i], y1[i]), rmax) }
            return rmax
        case .batch, .worstRow, .perSample:
            let d = Swift.max(1, Swift.min(rowSize, n))
            var total = 0.0, worst = 0.0, lo = 0
            while lo < n {
                let hi = Swift.min(n, lo + d)
                var row = 0.0
                for i in lo ..< hi { row += scaledSquare(error: e[i], y0[i], y1[i]) }
                total += row
                worst = Swift.max(worst, row / Double(hi - lo))
                lo = hi
            }
            if norm == .batch { return (total / Double(Swift.max(1, n))).squareRoot() }
            return worst.squareRoot()
        }
    }

    /// Accept or reject a step whose error norm is `error`, and the factor for the next step (the
    /// same step size times it, whether or not it was accepted). `order` is the local order minus
    /// one (`k`, giving `r = 1/(k + 1)`) when ``exponent`` is nil; `afterRejection`: the previous
    /// attempt was rejected.
    /// Under ``Rule/deadband(decreaseAbove:increaseBelow:)`` the exponents are GSL's (`1/(k + 1)`
    /// on a decrease, `1/(k + 2)` on an increase, for `order` = `k`) unless ``exponent`` is set.
    @inline(__always)
    public func decide(error: Double, order: Int = 1, afterRejection: Bool = false) -> (accepted: Bool, factor: Double) {
        if case let .deadband(upper, lower) = rule {
            // GSL's arithmetic, operation for operation (ode-initval2/cstd.c), with q = order + 1.
            let q = Double(order + 1)
            if error > upper {
                var r = safety / Foundation.pow(error, exponent ?? 1.0 / q)
                if r < minimumFactor { r = minimumFactor }
                return (false, r)
            } else if error < lower {
                var r = safety / Foundation.pow(error, exponent ?? 1.0 / (q + 1.0))
                if r > maximumFactor { r = maximumFactor }
                if r < 1.0 { r = 1.0 }
                if afterRejection && holdAfterRejection { r = 1 }
                return (true, r)
            }
            return (true, 1)
        }
        let r = exponent ?? 1 / Double(order + 1)
        let proposed = safety * Foundation.pow(Swift.max(error, errorFloor), -r)
        let factor = Swift.min(afterRejection && holdAfterRejection ? 1 : maximumFactor, Swift.max(minimumFactor, proposed))
        return error <= 1 ? (true, factor) : (false, Swift.min(1, factor))
    }
}

extension StepSizeController {
    /// GSL's standard control (`gsl_odeiv2_control_y_new`): ``ErrorNorm/maximum`` of
    /// `|e_i| / (ε_abs + ε_rel |y_i|)`, safety 0.9, ``Rule/deadband(decreaseAbove:increaseBelow:)``
    /// 1.1 / 0.5, factors 0.2 … 5 — the ODE solvers' default, the same steps as GSL's own control
    /// bit for bit.
    ///
    /// - Throws: `invalidParameter` for tolerances that are negative, not finite or both zero.
    public static func gslStandard(absoluteTolerance: Double, relativeTolerance: Double) throws -> StepSizeController {
        try StepSizeController(absoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance, toleranceScale: .sum,
                               norm: .maximum, safety: 0.9, minimumFactor: 0.2, maximumFactor: 5,
                               rule: .deadband(decreaseAbove: 1.1, increaseBelow: 0.5))
    }

    /// - Throws: `invalidParameter` for tolerances that are negative, not finite or both zero, θ outside
    ///   (0, 1], an exponent ≤ 0, factors with `0 ≤ f_min ≤ 1 ≤ f_max` violated, or a deadband
    ///   without `0 < increaseBelow ≤ 1 ≤ decreaseAbove`.
    public init(absoluteTolerance: Double, relativeTolerance: Double, toleranceScale: ToleranceScale = .sum,
                norm: ErrorNorm = .perSample, safety: Double = 0.9, exponent: Double? = nil,
                minimumFactor: Double = 0, maximumFactor: Double = .infinity, errorFloor: Double = 0,
                holdAfterRejection: Bool = false, rule: Rule = .proportional) throws {
        try requireParameter(absoluteTolerance.isFinite && absoluteTolerance >= 0, name: "absoluteTolerance", value: absoluteTolerance,
                             requirement: "finite and >= 0")
        try requireParameter(relativeTolerance.isFinite && relativeTolerance >= 0, name: "relativeTolerance", value: relativeTolerance,
                             requirement: "finite and >= 0")
        try requireParameter(absoluteTolerance + relativeTolerance > 0, name: "relativeTolerance", value: relativeTolerance,
                             requirement: "> 0 when absoluteTolerance is 0")
        try requireParameter(safety.isFinite && safety > 0 && safety <= 1, name: "safety", value: safety, requirement: "in (0, 1]")
        if let r = exponent { try requireParameter(r.isFinite && r > 0, name: "exponent", value: r, requirement: "finite and > 0") }
        try requireParameter(minimumFactor >= 0 && minimumFactor <= 1, name: "minimumFactor", value: minimumFactor, requirement: "in [0, 1]")
        try requireParameter(maximumFactor >= 1, name: "maximumFactor", value: maximumFactor, requirement: ">= 1")
        try requireParameter(errorFloor.isFinite && errorFloor >= 0, name: "errorFloor", value: errorFloor, requirement: "finite and >= 0")
        if case let .deadband(upper, lower) = rule {
            try requireParameter(lower.isFinite && lower > 0 && lower <= 1, name: "increaseBelow", value: lower, requirement: "in (0, 1]")
            try requireParameter(upper.isFinite && upper >= 1, name: "decreaseAbove", value: upper, requirement: "finite and >= 1")
        }
        self.init(uncheckedAbsoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance, toleranceScale: toleranceScale,
                  norm: norm, safety: safety, exponent: exponent, minimumFactor: minimumFactor, maximumFactor: maximumFactor,
                  errorFloor: errorFloor, holdAfterRejection: holdAfterRejection)
        self.rule = rule
    }
}

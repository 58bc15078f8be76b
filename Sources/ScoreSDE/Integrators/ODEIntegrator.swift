import CGSL

/// An adaptive ODE solver for `dy/dt = f(t, y)`, `y ∈ ℝⁿ`, over GNU GSL's `gsl_odeiv2`.
///
/// GSL keeps its steppers and its evolve loop (`gsl_odeiv2_evolve_apply`); the step size is ours:
/// a ``StepSizeController`` installed as GSL's control object (a `gsl_odeiv2_control_type` whose
/// `hadjust` and `errlevel` call it), the same controller role as the other adaptive solvers. By
/// default it is ``StepSizeController/gslStandard(absoluteTolerance:relativeTolerance:)``: the local
/// error estimate of every component stays below `D_i = absoluteTolerance + relativeTolerance·|y_i|`
/// (the maximum over components, stricter than scipy's RMS norm), GSL's standard control bit for
/// bit; pass `controller:` for an RMS or per-row norm or the proportional rule.
///
///     let decay = try ODEIntegrator(.rkf45, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6) {
///         t, y, dydt in dydt[0] = -y[0]
///     }
///     var y = [1.0]
///     let stats = try decay.integrate(&y, from: 0, to: 1)   // y[0] ≈ exp(-1)
///     print(stats.rightHandSideEvaluations)
///
/// **Stepping by hand.** ``start(_:from:to:)`` sets up a solve, ``step()`` makes exactly one
/// `gsl_odeiv2_evolve_apply` (one accepted step, after the attempts the controller rejected) and
/// returns what it did; ``state`` and ``time`` are the solution so far. ``integrate(_:from:to:)``
/// is this loop.
///
/// One integrator can run any number of solves, in either direction; each solve starts afresh
/// (step-size history and multistep state are reset). It owns its GSL objects and frees them
/// when released. It is not thread-safe: use one integrator per thread.
///
/// Failures throw ``ScoreSDEError/integrator(_:)`` with the time and step size where the solve
/// stopped; `y` then holds the state at ``IntegratorFailure/time``, the last successful step.
public final class ODEIntegrator {
    /// Writes `f(t, y)` into `dydt` (both of length `dimension`). The buffers are only valid during
    /// the call. Writing NaN or ±Inf, or throwing, stops the solve.
    public typealias RightHandSide = (_ t: Double, _ y: UnsafeBufferPointer<Double>,
                                      _ dydt: UnsafeMutableBufferPointer<Double>) throws -> Void
    /// Writes the Jacobian `∂f_i/∂y_j` row-major into `dfdy[i * dimension + j]` and `∂f/∂t` into
    /// `dfdt`; every entry must be written. The buffers are only valid during the call.
    public typealias Jacobian = (_ t: Double, _ y: UnsafeBufferPointer<Double>,
                                 _ dfdy: UnsafeMutableBufferPointer<Double>,
                                 _ dfdt: UnsafeMutableBufferPointer<Double>) throws -> Void

    /// The stepping method.
    public let stepType: ODEStepType
    /// The length of the state vector.
    public let dimension: Int
    /// The absolute part of the per-component error tolerance.
    public let absoluteTolerance: Double
    /// The relative part of the per-component error tolerance.
    public let relativeTolerance: Double
    /// The magnitude of the first trial step of each solve (nil: 1/1000 of the interval).
    public let initialStep: Double?
    /// The smallest step magnitude allowed before a solve fails with a step-size underflow.
    public let minStep: Double
    /// The largest step magnitude allowed (nil: unlimited).
    public let maxStep: Double?
    /// The most accepted steps one solve may take (nil: unlimited).
    public let maxSteps: Int?
    /// The step-size controller GSL's evolve loop asks after every attempt.
    public let controller: StepSizeController
    /// Values per row for the row norms of ``controller`` (the whole state is one row by default).
    public let rowSize: Int

    /// Work done by all solves so far, failed ones included.
    public private(set) var statistics = ODEStatistics()

    private let context: ODECallbackContext
    private let control: ODEControl?
    /// The system GSL's driver points to; heap-allocated, so it lives exactly as long as the driver.
    private let system: UnsafeMutablePointer<gsl_odeiv2_system>
    /// Owns GSL's step, control and evolve objects (wired together for the multistep and implicit
    /// steppers); the solve loop below calls `gsl_odeiv2_evolve_apply` on them directly.
    private let driver: UnsafeMutablePointer<gsl_odeiv2_driver>
    private var isIntegrating = false

    /// Creates an integrator; allocates GSL's work space for `dimension` components.
    ///
    /// - Parameters:
    ///   - stepType: The stepping method; see ``ODEStepType`` for orders and Jacobian needs.
    ///   - dimension: The length of the state vector, at least 1.
    ///   - absoluteTolerance: Absolute error tolerance per component, > 0 (e.g. 1e-5).
    ///   - relativeTolerance: Relative error tolerance per component, > 0 (e.g. 1e-5).
    ///   - initialStep: The magnitude of the first trial step; its sign follows the direction of
    ///     each solve. Default: 1/1000 of `|t1 - t0|`, kept within `minStep...maxStep`.
    ///   - minStep: A solve fails with ``IntegratorFailure/Reason/stepSizeUnderflow`` when the
    ///     controller proposes a step smaller than this (default 0: only machine precision limits it).
    ///   - maxStep: The largest step magnitude (default: unlimited).
    ///   - maxSteps: The most accepted steps per solve before it fails with
    ///     ``IntegratorFailure/Reason/maxStepsExceeded`` (default: unlimited).
    ///   - controller: The step-size controller installed as GSL's control object (default:
    ///     ``StepSizeController/gslStandard(absoluteTolerance:relativeTolerance:)`` on the two
    ///     tolerances above, GSL's standard control bit for bit).
    ///   - rowSize: Values per row for the controller's row norms (default: the whole state is one row).
    ///   - rightHandSide: `f(t, y)`, written into `dydt`.
    ///   - jacobian: `∂f/∂y` (row-major) and `∂f/∂t`; required by the implicit step types.
    /// - Throws: ``ScoreSDEError/invalidParameter(_:)`` for a parameter out of its domain;
    ///   ``ScoreSDEError/invalidArgument(_:)`` for an implicit step type without a Jacobian; ``ScoreSDEError/integrator(_:)`` if GSL cannot
    ///   allocate its work space.
    public convenience init(_ stepType: ODEStepType, dimension: Int,
                absoluteTolerance: Double, relativeTolerance: Double,
                initialStep: Double? = nil, minStep: Double = 0, maxStep: Double? = nil, maxSteps: Int? = nil,
                controller: StepSizeController? = nil, rowSize: Int? = nil,
                rightHandSide: @escaping RightHandSide, jacobian: Jacobian? = nil) throws {
        try self.init(stepType, dimension: dimension, absoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance,
                      initialStep: initialStep, minStep: minStep, maxStep: maxStep, maxSteps: maxSteps, controller: controller,
                      rowSize: rowSize, gslControl: false, rightHandSide: rightHandSide, jacobian: jacobian)
    }

    /// `gslControl`: keep GSL's own standard control object instead of ours (tests compare the two).
    init(_ stepType: ODEStepType, dimension: Int,
         absoluteTolerance: Double, relativeTolerance: Double,
         initialStep: Double? = nil, minStep: Double = 0, maxStep: Double? = nil, maxSteps: Int? = nil,
         controller: StepSizeController? = nil, rowSize: Int? = nil, gslControl: Bool,
         rightHandSide: @escaping RightHandSide, jacobian: Jacobian? = nil) throws {
        guard dimension >= 1 else {
            throw ScoreSDEError.invalid("dimension", dimension, must: ">= 1", advice: "it is the length of the state vector")
        }
        guard absoluteTolerance > 0, absoluteTolerance.isFinite else {
            throw ScoreSDEError.invalid("absoluteTolerance", absoluteTolerance, must: "> 0 and finite", advice: "try 1e-5")
        }
        guard relativeTolerance > 0, relativeTolerance.isFinite else {
            throw ScoreSDEError.invalid("relativeTolerance", relativeTolerance, must: "> 0 and finite", advice: "try 1e-5")
        }
        guard minStep >= 0, minStep.isFinite else {
            throw ScoreSDEError.invalid("minStep", minStep, must: ">= 0 and finite", advice: "use 0 for no lower limit")
        }
        if let maxStep {
            guard maxStep.isFinite, maxStep > minStep else {
                throw ScoreSDEError.invalid("maxStep", maxStep, must: "finite and > minStep = \(minStep)", advice: "use nil for no upper limit")
            }
        }
        if let initialStep {
            guard initialStep > 0, initialStep.isFinite else {
                throw ScoreSDEError.invalid("initialStep", initialStep, must: "> 0 and finite", advice: "it is a magnitude, the sign follows the direction of each solve")
            }
            guard initialStep >= minStep, initialStep <= (maxStep ?? .infinity) else {
                throw ScoreSDEError.invalid("initialStep", initialStep, must: "in minStep...maxStep = \(minStep)...\(maxStep ?? .infinity)")
            }
        }
        if let maxSteps, maxSteps < 1 {
            throw ScoreSDEError.invalid("maxSteps", maxSteps, must: ">= 1", advice: "use nil for no limit")
        }
        if let rowSize, rowSize < 1 {
            throw ScoreSDEError.invalid("rowSize", rowSize, must: ">= 1", advice: "use nil for one row of the whole state")
        }
        let controller = try controller ?? StepSizeController.gslStandard(absoluteTolerance: absoluteTolerance, relativeTolerance: relativeTolerance)
        if stepType.requiresJacobian {
            guard jacobian != nil else {
                throw ScoreSDEError.invalidArgument("step type \(stepType.rawValue) needs a jacobian; pass jacobian:, or use a step type that works without one (\(ODEStepType.jacobianFreeNames))")
            }
            guard !dimension.multipliedReportingOverflow(by: dimension).overflow else {
                throw ScoreSDEError.invalidArgument("dimension \(dimension) is too large for the \(dimension)×\(dimension) Jacobian of \(stepType.rawValue); use \(ODEStepType.jacobianFreeNames)")
            }
        }

        _ = gslErrorHandlerOff

        let context = ODECallbackContext(dimension: dimension, rightHandSide: rightHandSide, jacobian: jacobian)
        let system = UnsafeMutablePointer<gsl_odeiv2_system>.allocate(capacity: 1)
        system.initialize(to: gsl_odeiv2_system(
            function: { t, y, dydt, params in
                Unmanaged<ODECallbackContext>.fromOpaque(params!).takeUnretainedValue()
                    .evaluateRightHandSide(t, y!, dydt!)
            },
            jacobian: jacobian == nil ? nil : { t, y, dfdy, dfdt, params in
                Unmanaged<ODECallbackContext>.fromOpaque(params!).takeUnretainedValue()
                    .evaluateJacobian(t, y!, dfdy!, dfdt!)
            },
            dimension: dimension,
            params: Unmanaged.passUnretained(context).toOpaque()))
        // hstart 1 is a placeholder (GSL requires it nonzero); every solve sets its own first step.
        // A non-NULL driver always has its step, control and evolve objects (GSL frees and returns NULL otherwise).
        guard let driver = gsl_odeiv2_driver_alloc_y_new(system, stepType.gslType, 1,
                                                         absoluteTolerance, relativeTolerance) else {
            system.deinitialize(count: 1)
            system.deallocate()
            throw Self.outOfMemory("GSL could not allocate the \(stepType.rawValue) work space for dimension \(dimension); reduce the dimension (batch size) or free memory.")
        }

        self.stepType = stepType
        self.dimension = dimension
        self.absoluteTolerance = absoluteTolerance
        self.relativeTolerance = relativeTolerance
        self.initialStep = initialStep
        self.minStep = minStep
        self.maxStep = maxStep
        self.maxSteps = maxSteps
        self.controller = controller
        self.rowSize = min(rowSize ?? dimension, dimension)
        self.context = context
        self.system = system
        self.driver = driver
        if gslControl {
            self.control = nil
        } else {
            // Our controller replaces the driver's standard control object; the driver frees it.
            let control = ODEControl(controller: controller, rowSize: self.rowSize)
            guard let c = control.makeGSLControl() else {
                gsl_odeiv2_driver_free(driver)
                system.deinitialize(count: 1)
                system.deallocate()
                throw Self.outOfMemory("GSL could not allocate a control object; free memory.")
            }
            gsl_odeiv2_control_free(driver.pointee.c)
            driver.pointee.c = c
            _ = gsl_odeiv2_control_set_driver(c, driver)
            self.control = control
        }
    }

    /// GSL's out-of-memory status as an integrator failure before any step.
    private static func outOfMemory(_ advice: String) -> ScoreSDEError {
        let status = GSLStatus.outOfMemory
        return .integrator(IntegratorFailure(reason: .gsl(code: status.rawValue, text: status.description), time: 0, stepSize: 0,
                                             advice: advice))
    }

    deinit {
        gsl_odeiv2_driver_free(driver)   // frees step, control and evolve too
        system.deinitialize(count: 1)
        system.deallocate()
        withExtendedLifetime(control) {}
    }

    /// Integrates `y` from `t0` to `t1` (forward or backward in time), in place: ``start(_:from:to:)``
    /// and ``step()`` until the end.
    ///
    /// The solve lands exactly on `t1`. On failure `y` holds the state at the time reported in the
    /// ``IntegratorFailure``, the last successful step (for a failure before the first step, the
    /// initial state).
    ///
    /// - Parameters:
    ///   - y: The state at `t0` on entry, at `t1` on return; `dimension` finite values.
    ///   - t0: The start time.
    ///   - t1: The end time, finite and different from `t0`; `t1 < t0` integrates backward.
    /// - Returns: The work done by this solve (``statistics`` accumulates over all solves).
    /// - Throws: ``ScoreSDEError/invalidArgument(_:)`` for a wrong length, non-finite values or an
    ///   empty interval; ``ScoreSDEError/integrator(_:)`` when the solve fails (step-size underflow,
    ///   too many steps, a NaN or ±Inf from the right-hand side or Jacobian, one of them throwing,
    ///   another GSL status). An error thrown by the right-hand side or Jacobian is rethrown
    ///   unchanged if it is a ``ScoreSDEError`` other than `.integrator`, or a `CancellationError`;
    ///   any other error becomes ``IntegratorFailure/Reason/rightHandSideThrew(_:)`` with its
    ///   description.
    @discardableResult
    public func integrate(_ y: inout [Double], from t0: Double, to t1: Double) throws -> ODEStatistics {
        try start(y, from: t0, to: t1)
        defer { y = state }
        while try step() != nil {}
        return solveStatistics
    }

    /// The state of the current (or last) solve: at ``time`` after the last successful step.
    public private(set) var state: [Double] = []
    /// The time of ``state``.
    public private(set) var time: Double = 0
    /// The end time of the current solve.
    public private(set) var endTime: Double = 0
    /// The next trial step (signed) GSL's evolve loop will start from.
    public private(set) var stepSize: Double = 0
    /// True when the current solve has reached its end time (or none was started).
    public var isFinished: Bool { !(direction * (endTime - time) > 0) }
    /// Work done by the current (or last) solve.
    public var solveStatistics: ODEStatistics {
        ODEStatistics(rightHandSideEvaluations: context.rightHandSideEvaluations - solveStart.evaluations,
                      jacobianEvaluations: context.jacobianEvaluations - solveStart.jacobians,
                      acceptedSteps: accepted, rejectedSteps: Int(driver.pointee.e!.pointee.failed_steps))
    }
    private var direction: Double = 1
    private var accepted = 0
    private var solveStart = (evaluations: 0, jacobians: 0)
    private var recorded = ODEStatistics()

    /// Sets up a solve of `y` from `t0` to `t1` (forward or backward), discarding any solve in
    /// progress: GSL's step-size history and multistep state are reset.
    ///
    /// - Throws: ``ScoreSDEError/invalidArgument(_:)`` for a wrong length, non-finite values, an
    ///   empty interval, or a call from inside this integrator's right-hand side.
    public func start(_ y: [Double], from t0: Double, to t1: Double) throws {
        guard !isIntegrating else {
            throw ScoreSDEError.invalidArgument("integrate(_:from:to:) was called from inside the right-hand side or Jacobian of the same ODEIntegrator; use a separate integrator for nested solves")
        }
        guard y.count == dimension else {
            throw ScoreSDEError.invalidArgument("y has \(y.count) components but the integrator was made for dimension \(dimension)")
        }
        guard t0.isFinite, t1.isFinite else {
            throw ScoreSDEError.invalidArgument("integration limits must be finite (got t0 = \(t0), t1 = \(t1))")
        }
        guard t0 != t1 else {
            throw ScoreSDEError.invalid("t1", t1, must: "different from t0 = \(t0)", advice: "nothing to integrate")
        }
        if let i = y.firstIndex(where: { !$0.isFinite }) {
            throw ScoreSDEError.invalidArgument("the initial state must be finite, but y[\(i)] = \(y[i]) at t0 = \(t0)")
        }
        // Start afresh: evolve counters, step-size history and multistep state.
        let resetStatus = GSLStatus(rawValue: gsl_odeiv2_driver_reset(driver))
        precondition(resetStatus == .success, "gsl_odeiv2_driver_reset failed: \(resetStatus)")
        context.failure = nil
        solveStart = (context.rightHandSideEvaluations, context.jacobianEvaluations)
        recorded = ODEStatistics()
        accepted = 0
        state = y
        time = t0
        endTime = t1
        direction = t1 > t0 ? 1 : -1
        stepSize = direction * startingStep(span: abs(t1 - t0))
    }

    /// What one ``step()`` did.
    public struct Step: Sendable, Equatable {
        /// The time before and after the step.
        public var from: Double, to: Double
        /// Attempts the controller (or the stepper) rejected before this step was accepted.
        public var rejectedAttempts: Int
        /// Right-hand-side evaluations of this step, its rejected attempts included.
        public var rightHandSideEvaluations: Int
        /// The trial step (signed) of the next step.
        public var nextStepSize: Double
    }

    /// Makes one accepted step of the current solve (one `gsl_odeiv2_evolve_apply`: attempts until
    /// the controller accepts one); nil when the solve is at its end time.
    ///
    /// - Throws: ``ScoreSDEError/integrator(_:)`` as ``integrate(_:from:to:)`` does; ``state`` then
    ///   holds the last successful step.
    public func step() throws -> Step? {
        guard !isFinished else { return nil }
        guard !isIntegrating else {
            throw ScoreSDEError.invalidArgument("step() was called from inside the right-hand side or Jacobian of the same ODEIntegrator; use a separate integrator for nested solves")
        }
        isIntegrating = true
        defer { isIntegrating = false; syncStatistics() }
        let before = (time, Int(driver.pointee.e!.pointee.failed_steps), context.rightHandSideEvaluations)
        try withExtendedLifetime(context) {
            try state.withUnsafeMutableBufferPointer { y in try advance(y) }
        }
        return Step(from: before.0, to: time, rejectedAttempts: Int(driver.pointee.e!.pointee.failed_steps) - before.1,
                    rightHandSideEvaluations: context.rightHandSideEvaluations - before.2, nextStepSize: stepSize)
    }

    /// Adds this solve's work since the last call to ``statistics``.
    private func syncStatistics() {
        let now = solveStatistics
        statistics.rightHandSideEvaluations += now.rightHandSideEvaluations - recorded.rightHandSideEvaluations
        statistics.jacobianEvaluations += now.jacobianEvaluations - recorded.jacobianEvaluations
        statistics.acceptedSteps += now.acceptedSteps - recorded.acceptedSteps
        statistics.rejectedSteps += now.rejectedSteps - recorded.rejectedSteps
        recorded = now
    }

    /// One `gsl_odeiv2_evolve_apply` (as in `gsl_odeiv2_driver_apply`, but with exact step
    /// accounting and `y` restored after every failure).
    private func advance(_ state: UnsafeMutableBufferPointer<Double>) throws {
        let y = state.baseAddress!
        let evolve = driver.pointee.e!, control = driver.pointee.c!, step = driver.pointee.s!
        let system = UnsafePointer(self.system)
        let t1 = endTime
        let hmax = maxStep ?? .infinity
        var t = time, h = stepSize
        defer { time = t; stepSize = h }
        if let maxSteps, accepted >= maxSteps {
            throw failure(.maxStepsExceeded, time: t, stepSize: h,
                          advice: "\(maxSteps) steps (maxSteps) did not reach t1 = \(t1); raise maxSteps, loosen the tolerances, or, if the problem is stiff, use an implicit step type (bsimp, msbdf). \(kept(t))")
        }
        let tStart = t
        // Both limits and h agree in direction and dimensions match by construction, so evolve
        // always saves y into evolve->y0 before it can fail.
        let status = GSLStatus(rawValue: gsl_odeiv2_evolve_apply(evolve, control, step, system, &t, t1, &h, y))
        if status != .success || context.failure != nil {
            // y may hold a partial or rejected step: go back to the last good state.
            y.update(from: evolve.pointee.y0, count: dimension)
            t = tStart
            throw failure(for: status, time: t, stepSize: h)
        }
        accepted += 1
        if !ODECallbackContext.isAllFinite(UnsafeBufferPointer(state)) {
            y.update(from: evolve.pointee.y0, count: dimension)
            accepted -= 1
            t = tStart
            throw failure(.gsl(code: GSLStatus.overflow.rawValue, text: GSLStatus.overflow.description),
                          time: tStart, stepSize: h,
                          advice: "The state overflowed to ±Inf or NaN in the step from t = \(tStart) although the right-hand side was finite; the solution may blow up: check the right-hand side, or lower maxStep. \(kept(tStart))")
        }
        if abs(h) > hmax { h = direction * hmax }
        if direction * (t1 - t) > 0 && abs(h) < minStep {
            throw failure(.stepSizeUnderflow, time: t, stepSize: h,
                          advice: "The step size needed for the tolerances fell below minStep = \(minStep); lower minStep, loosen the tolerances, or, if the problem is stiff, use an implicit step type (bsimp, msbdf). \(kept(t))")
        }
    }

    /// GSL's own counters for the latest solve (`evolve->count`: step attempts that the stepper
    /// completed, including those the controller then rejected; `evolve->failed_steps`: rejections).
    var gslEvolveCounters: (count: Int, failedSteps: Int) {
        let evolve = driver.pointee.e!
        return (Int(evolve.pointee.count), Int(evolve.pointee.failed_steps))
    }

    /// The first trial step magnitude of a solve over an interval of length `span`.
    private func startingStep(span: Double) -> Double {
        if let initialStep { return initialStep }
        var h = span * 1e-3
        if !(h > 0) { h = span }   // a subnormal span
        return min(max(h, minStep), maxStep ?? .infinity)
    }

    private func kept(_ time: Double) -> String { "y holds the state at t = \(time), the last successful step." }

    private func failure(_ reason: IntegratorFailure.Reason, time: Double, stepSize: Double, advice: String) -> ScoreSDEError {
        .integrator(IntegratorFailure(reason: reason, time: time, stepSize: stepSize, advice: advice))
    }

    /// Maps a failed `evolve_apply` (and what the callbacks recorded) to the error to throw.
    private func failure(for status: GSLStatus, time: Double, stepSize: Double) -> Error {
        let keptNote = kept(time)
        switch context.failure {
        case .threw(let error, let at, let inJacobian)?:
            switch error {
            case let error as ScoreSDEError:
                if case .integrator = error { break }
                return error
            case let error as CancellationError:
                return error
            default:
                break
            }
            return failure(.rightHandSideThrew(String(describing: error)), time: time, stepSize: stepSize,
                           advice: "The \(inJacobian ? "Jacobian" : "right-hand side") threw at t = \(at); \(keptNote)")
        case .nonFinite(let at, let component, let value, let inJacobian)?:
            return failure(.nonFiniteRightHandSide, time: time, stepSize: stepSize,
                           advice: "The \(inJacobian ? "Jacobian" : "right-hand side") returned \(component) = \(value) at t = \(at); \(keptNote) Check the model and its inputs near that time.")
        case nil:
            break
        }
        switch status {
        case .failure:
            return failure(.stepSizeUnderflow, time: time, stepSize: stepSize,
                           advice: "The step size shrank to the resolution of t without meeting the tolerances: the solution may be singular near t = \(time), or the problem stiff; loosen the tolerances or use an implicit step type (bsimp, msbdf). \(keptNote)")
        default:
            return failure(.gsl(code: status.rawValue, text: status.description), time: time, stepSize: stepSize,
                           advice: "GSL's \(stepType.rawValue) stepper stopped with status \(status.rawValue); try another step type or looser tolerances. \(keptNote)")
        }
    }
}

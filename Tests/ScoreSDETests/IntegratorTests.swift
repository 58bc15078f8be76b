import Foundation
import Testing
@testable import ScoreSDE

// Expectations come from closed-form solutions. Accuracy bound used throughout (`globalErrorBound`):
// the controller keeps every accepted step's local error estimate below D = atol + rtol·|y| (max norm),
// so after N accepted steps the global error is at most about N·D times the flow's amplification of
// earlier errors (1 for decay forward in time, √2 ≤ 2 for the rotation of the harmonic oscillator in the
// max norm, e^{kT} for decay integrated backward over T). A factor 10 allows for the estimate being only
// an estimate (embedded pairs estimate the error of the lower-order solution). A wrong sign, tableau,
// direction or reset gives errors of order 1, far above these bounds.

private let nonStiffTypes = ODEStepType.allCases.filter { !$0.requiresJacobian }
private let implicitTypes = ODEStepType.allCases.filter { $0.requiresJacobian }

private func globalErrorBound(steps: Int, tolerance: Double, yMax: Double, amplification: Double) -> Double {
    10 * amplification * Double(max(steps, 1)) * tolerance * (1 + yMax)
}

/// y' = -k y.
private func decay(_ type: ODEStepType, k: Double = 1, tolerance: Double, maxStep: Double? = nil,
                   maxSteps: Int? = nil) throws -> ODEIntegrator {
    try ODEIntegrator(type, dimension: 1, absoluteTolerance: tolerance, relativeTolerance: tolerance,
                      maxStep: maxStep, maxSteps: maxSteps,
                      rightHandSide: { _, y, dydt in dydt[0] = -k * y[0] },
                      jacobian: { _, _, dfdy, dfdt in dfdy[0] = -k; dfdt[0] = 0 })
}

/// Runs `body`, expecting it to throw `ScoreSDEError.integrator`; returns the failure.
private func integratorFailure(_ body: () throws -> Void) -> IntegratorFailure? {
    do {
        try body()
        Issue.record("expected ScoreSDEError.integrator, but nothing was thrown")
    } catch ScoreSDEError.integrator(let failure) {
        return failure
    } catch {
        Issue.record("expected ScoreSDEError.integrator, got \(error)")
    }
    return nil
}

/// Runs `body`, expecting `ScoreSDEError.invalidArgument`; returns its message.
private func invalidArgumentMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        Issue.record("expected ScoreSDEError.invalidArgument, but nothing was thrown")
    } catch ScoreSDEError.invalidArgument(let message) {
        return message
    } catch {
        Issue.record("expected ScoreSDEError.invalidArgument, got \(error)")
    }
    return nil
}

private struct ModelBroke: Error, CustomStringConvertible {
    var description: String { "model broke" }
}

@Suite("ODEStepType")
struct ODEStepTypeTests {
    @Test func namesAndKinds() {
        #expect(ODEStepType.allCases.map(\.rawValue) ==
                ["rk2", "rk4", "rkf45", "rkck", "rk8pd", "msadams", "rk1imp", "rk2imp", "rk4imp", "bsimp", "msbdf"])
        #expect(Set(implicitTypes) == [.rk1imp, .rk2imp, .rk4imp, .bsimp, .msbdf])
        #expect(Set(ODEStepType.allCases.filter(\.isExplicit)) == [.rk2, .rk4, .rkf45, .rkck, .rk8pd])
        #expect(ODEStepType(rawValue: "rkf45") == .rkf45)
    }

    @Test func allFiniteFindsEveryPosition() {
        for n in 0 ..< 11 {
            var x = (0 ..< n).map { Double($0) - 3.5 }
            #expect(x.withUnsafeBufferPointer(ODECallbackContext.isAllFinite))
            for i in 0 ..< n {
                for bad in [Double.nan, .infinity, -.infinity] {
                    let saved = x[i]
                    x[i] = bad
                    #expect(!x.withUnsafeBufferPointer(ODECallbackContext.isAllFinite), "n = \(n), x[\(i)] = \(bad)")
                    x[i] = saved
                }
            }
        }
    }
}

@Suite("ODEIntegrator accuracy")
struct ODEIntegratorAccuracyTests {
    static let tolerance = 1e-8

    @Test(arguments: nonStiffTypes)
    func exponentialDecayForwardAndBackward(_ type: ODEStepType) throws {
        let ode = try decay(type, k: 1, tolerance: Self.tolerance)
        // Forward 0 → 2: y(2) = e^{-2}.
        var y = [1.0]
        let forward = try ode.integrate(&y, from: 0, to: 2)
        #expect(abs(y[0] - exp(-2)) <= globalErrorBound(steps: forward.acceptedSteps, tolerance: Self.tolerance,
                                                         yMax: 1, amplification: 1))
        // Backward 2 → 0 from the exact y(2): y(0) = 1; errors grow by at most e^2.
        y = [exp(-2)]
        let backward = try ode.integrate(&y, from: 2, to: 0)
        #expect(abs(y[0] - 1) <= globalErrorBound(steps: backward.acceptedSteps, tolerance: Self.tolerance,
                                                  yMax: 1, amplification: exp(2)))
        #expect(forward.acceptedSteps > 0 && backward.acceptedSteps > 0)
    }

    @Test(arguments: nonStiffTypes)
    func harmonicOscillatorForwardAndBackward(_ type: ODEStepType) throws {
        // x' = v, v' = -x: x = cos t, v = -sin t from (1, 0).
        let tol = Self.tolerance
        let ode = try ODEIntegrator(type, dimension: 2, absoluteTolerance: tol, relativeTolerance: tol) { _, y, dydt in
            dydt[0] = y[1]
            dydt[1] = -y[0]
        }
        let t1 = 5.0
        var y = [1.0, 0.0]
        let forward = try ode.integrate(&y, from: 0, to: t1)
        let forwardBound = globalErrorBound(steps: forward.acceptedSteps, tolerance: tol, yMax: 1, amplification: 2)
        #expect(abs(y[0] - cos(t1)) <= forwardBound)
        #expect(abs(y[1] + sin(t1)) <= forwardBound)
        // Backward from the exact state at t1 to t = -1.
        y = [cos(t1), -sin(t1)]
        let backward = try ode.integrate(&y, from: t1, to: -1)
        let backwardBound = globalErrorBound(steps: backward.acceptedSteps, tolerance: tol, yMax: 1, amplification: 2)
        #expect(abs(y[0] - cos(-1.0)) <= backwardBound)
        #expect(abs(y[1] + sin(-1.0)) <= backwardBound)
    }

    /// Stiff 2×2 linear system (eigenvalues -1 and -1000): u' = 998u + 1998v, v' = -999u - 1999v, (u, v)(0) = (1, 0);
    /// u = 2e^{-t} - e^{-1000t}, v = -e^{-t} + e^{-1000t}.
    @Test(arguments: implicitTypes)
    func stiffLinearSystemWithAnalyticJacobian(_ type: ODEStepType) throws {
        let tol = 1e-7
        let ode = try ODEIntegrator(
            type, dimension: 2, absoluteTolerance: tol, relativeTolerance: tol,
            rightHandSide: { _, y, dydt in
                dydt[0] = 998 * y[0] + 1998 * y[1]
                dydt[1] = -999 * y[0] - 1999 * y[1]
            },
            jacobian: { _, _, dfdy, dfdt in
                dfdy[0] = 998; dfdy[1] = 1998
                dfdy[2] = -999; dfdy[3] = -1999
                dfdt[0] = 0; dfdt[1] = 0
            })
        for t1 in [0.01, 1.0] {
            var y = [1.0, 0.0]
            let stats = try ode.integrate(&y, from: 0, to: t1)
            let bound = globalErrorBound(steps: stats.acceptedSteps, tolerance: tol, yMax: 2, amplification: 1)
            #expect(abs(y[0] - (2 * exp(-t1) - exp(-1000 * t1))) <= bound, "u(\(t1))")
            #expect(abs(y[1] - (-exp(-t1) + exp(-1000 * t1))) <= bound, "v(\(t1))")
            #expect(stats.jacobianEvaluations > 0)
        }
    }

    /// Stiff scalar problem with a time-dependent forcing, so `dfdt` matters:
    /// y' = -λ(y - cos t), y(0) = 0, λ = 1000;
    /// y = (λ² cos t + λ sin t)/(λ² + 1) - λ²/(λ² + 1)·e^{-λt}.
    @Test(arguments: implicitTypes)
    func stiffForcedScalar(_ type: ODEStepType) throws {
        let tol = 1e-7, lambda = 1000.0
        let ode = try ODEIntegrator(
            type, dimension: 1, absoluteTolerance: tol, relativeTolerance: tol,
            rightHandSide: { t, y, dydt in dydt[0] = -lambda * (y[0] - cos(t)) },
            jacobian: { t, _, dfdy, dfdt in dfdy[0] = -lambda; dfdt[0] = -lambda * sin(t) })
        var y = [0.0]
        let stats = try ode.integrate(&y, from: 0, to: 1)
        let l2 = lambda * lambda
        let exact = (l2 * cos(1.0) + lambda * sin(1.0)) / (l2 + 1) - l2 / (l2 + 1) * exp(-lambda)
        #expect(abs(y[0] - exact) <= globalErrorBound(steps: stats.acceptedSteps, tolerance: tol, yMax: 1, amplification: 1))
    }

    @Test func stiffSolversNeedFewerStepsThanRKF45() throws {
        let tol = 1e-6, lambda = 1000.0
        func steps(_ type: ODEStepType) throws -> Int {
            let ode = try ODEIntegrator(
                type, dimension: 1, absoluteTolerance: tol, relativeTolerance: tol,
                rightHandSide: { t, y, dydt in dydt[0] = -lambda * (y[0] - cos(t)) },
                jacobian: { t, _, dfdy, dfdt in dfdy[0] = -lambda; dfdt[0] = -lambda * sin(t) })
            var y = [0.0]
            return try ode.integrate(&y, from: 0, to: 1).acceptedSteps
        }
        let explicitSteps = try steps(.rkf45)   // stability-limited: h ≲ 3/λ
        #expect(explicitSteps > 250)
        for type in [ODEStepType.rk4imp, .bsimp, .msbdf] {
            #expect(try steps(type) < explicitSteps / 2, "\(type)")
        }
    }
}

@Suite("ODEIntegrator statistics")
struct ODEIntegratorStatisticsTests {
    /// Right-hand-side evaluations per step attempt (GSL 2.7 reuses the end-of-step derivative of an
    /// accepted step as the next step's first stage; the first attempt of a solve costs one more).
    static let evaluationsPerAttempt: [ODEStepType: Int] = [.rk2: 3, .rk4: 11, .rkf45: 6, .rkck: 6, .rk8pd: 13]

    @Test func rkf45UsesSixEvaluationsPerStepAfterTheFirst() throws {
        let ode = try decay(.rkf45, tolerance: 1e-6)
        var y = [1.0]
        let stats = try ode.integrate(&y, from: 0, to: 1)
        #expect(stats.rejectedSteps == 0)
        #expect(stats.acceptedSteps == 8)
        #expect(stats.rightHandSideEvaluations == 6 * stats.acceptedSteps + 1)
        #expect(stats.jacobianEvaluations == 0)
    }

    /// On a stiff problem the explicit steppers reject steps; GSL's `count` includes the rejected attempts
    /// and `failed_steps` counts them.
    @Test(arguments: ODEStepType.allCases.filter(\.isExplicit))
    func acceptedAndRejectedStepsAreConsistent(_ type: ODEStepType) throws {
        let lambda = 1000.0
        let ode = try ODEIntegrator(type, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6) { t, y, dydt in
            dydt[0] = -lambda * (y[0] - cos(t))
        }
        var y = [0.0]
        let stats = try ode.integrate(&y, from: 0, to: 1)
        let gsl = ode.gslEvolveCounters
        #expect(stats.rejectedSteps == gsl.failedSteps)
        #expect(gsl.count == stats.acceptedSteps + stats.rejectedSteps)
        let perAttempt = try #require(Self.evaluationsPerAttempt[type])
        #expect(stats.rightHandSideEvaluations == 1 + perAttempt * (stats.acceptedSteps + stats.rejectedSteps))
        #expect(ode.statistics == stats)
        if type == .rkf45 { #expect(stats.rejectedSteps > 0) }
    }

    @Test func statisticsAccumulateOverSolves() throws {
        let ode = try decay(.rkck, tolerance: 1e-6)
        var y = [1.0]
        let first = try ode.integrate(&y, from: 0, to: 1)
        let second = try ode.integrate(&y, from: 1, to: 3)
        #expect(ode.statistics == ODEStatistics(
            rightHandSideEvaluations: first.rightHandSideEvaluations + second.rightHandSideEvaluations,
            jacobianEvaluations: 0,
            acceptedSteps: first.acceptedSteps + second.acceptedSteps,
            rejectedSteps: first.rejectedSteps + second.rejectedSteps))
    }

    @Test(arguments: ODEStepType.allCases)
    func reusedIntegratorRepeatsItselfExactly(_ type: ODEStepType) throws {
        let ode = try decay(type, k: 1.5, tolerance: 1e-7)
        var a = [1.0]
        let statsA = try ode.integrate(&a, from: 0, to: 1)
        var back = a
        _ = try ode.integrate(&back, from: 1, to: 0)      // change direction in between
        #expect(abs(back[0] - 1) < 1e-3)
        var b = [1.0]
        let statsB = try ode.integrate(&b, from: 0, to: 1)
        #expect(a == b)                                      // bit for bit
        #expect(statsA == statsB)
        // A fresh integrator agrees too: nothing leaks from one solve into the next.
        var c = [1.0]
        let statsC = try decay(type, k: 1.5, tolerance: 1e-7).integrate(&c, from: 0, to: 1)
        #expect(a == c)
        #expect(statsA == statsC)
    }

    @Test func reuseAfterFailure() throws {
        var fail = true
        let ode = try ODEIntegrator(.msadams, dimension: 1, absoluteTolerance: 1e-7, relativeTolerance: 1e-7) { t, y, dydt in
            if fail && t > 0.5 { throw ModelBroke() }
            dydt[0] = -y[0]
        }
        var y = [1.0]
        #expect(integratorFailure { try ode.integrate(&y, from: 0, to: 1) } != nil)
        fail = false
        y = [1.0]
        let stats = try ode.integrate(&y, from: 0, to: 1)
        var fresh = [1.0]
        let freshStats = try ODEIntegrator(.msadams, dimension: 1, absoluteTolerance: 1e-7, relativeTolerance: 1e-7) { _, y, dydt in
            dydt[0] = -y[0]
        }.integrate(&fresh, from: 0, to: 1)
        #expect(y == fresh)
        #expect(stats == freshStats)
    }
}

@Suite("ODEIntegrator failures")
struct ODEIntegratorFailureTests {
    @Test func minStepTooLargeIsStepSizeUnderflow() throws {
        // Stiff: rkf45 needs h ≲ 3e-3 for stability, but minStep is 1e-2.
        let ode = try ODEIntegrator(.rkf45, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6,
                                    minStep: 1e-2) { t, y, dydt in dydt[0] = -1000 * (y[0] - cos(t)) }
        var y = [0.0]
        let failure = try #require(integratorFailure { try ode.integrate(&y, from: 0, to: 1) })
        #expect(failure.reason == .stepSizeUnderflow)
        #expect(abs(failure.stepSize) < 1e-2)
        #expect(failure.time >= 0 && failure.time < 1)
        #expect(failure.advice.contains("minStep"))
        #expect(y[0].isFinite)
    }

    /// y' = y², y(0) = 1 blows up at t = 1 (y = 1/(1 - t)); GSL's step size shrinks to the resolution of t.
    @Test(arguments: [ODEStepType.rkf45, .rk8pd, .msadams])
    func blowUpIsStepSizeUnderflow(_ type: ODEStepType) throws {
        let ode = try ODEIntegrator(type, dimension: 1, absoluteTolerance: 1e-8, relativeTolerance: 1e-8) { _, y, dydt in
            dydt[0] = y[0] * y[0]
        }
        var y = [1.0]
        let failure = try #require(integratorFailure { try ode.integrate(&y, from: 0, to: 2) })
        #expect(failure.reason == .stepSizeUnderflow)
        #expect(abs(failure.time - 1) < 1e-3)
        // y is the last good state: finite, and far up the pole (y' = y² amplifies errors near the pole,
        // so the value itself is not compared with 1/(1 - t)).
        #expect(y[0].isFinite && y[0] > 1e3)
    }

    @Test func maxStepsExceeded() throws {
        let ode = try decay(.rkf45, tolerance: 1e-8, maxSteps: 3)
        var y = [1.0]
        let failure = try #require(integratorFailure { try ode.integrate(&y, from: 0, to: 100) })
        #expect(failure.reason == .maxStepsExceeded)
        #expect(ode.statistics.acceptedSteps == 3)
        #expect(failure.time > 0 && failure.time < 100)
        #expect(failure.stepSize > 0)
        // y holds the state after the third step.
        #expect(abs(y[0] - exp(-failure.time)) < 1e-7)
        // Exactly enough steps succeed.
        let enough = try decay(.rkf45, tolerance: 1e-8)
        var z = [1.0]
        let needed = try enough.integrate(&z, from: 0, to: 1).acceptedSteps
        var w = [1.0]
        #expect(try decay(.rkf45, tolerance: 1e-8, maxSteps: needed).integrate(&w, from: 0, to: 1).acceptedSteps == needed)
        var v = [1.0]
        #expect(integratorFailure { try decay(.rkf45, tolerance: 1e-8, maxSteps: needed - 1).integrate(&v, from: 0, to: 1) }?
            .reason == .maxStepsExceeded)
    }

    /// rkf45 and rk8pd would carry NaN through silently; the callback check stops every step type.
    @Test(arguments: ODEStepType.allCases)
    func nanFromRightHandSide(_ type: ODEStepType) throws {
        let ode = try ODEIntegrator(type, dimension: 2, absoluteTolerance: 1e-8, relativeTolerance: 1e-8, maxStep: 0.01,
                                    rightHandSide: { t, y, dydt in
                                        dydt[0] = -y[0]
                                        dydt[1] = t > 0.5 ? .nan : -y[1]
                                    },
                                    jacobian: { _, _, dfdy, dfdt in
                                        dfdy[0] = -1; dfdy[1] = 0; dfdy[2] = 0; dfdy[3] = -1
                                        dfdt[0] = 0; dfdt[1] = 0
                                    })
        var y = [1.0, 1.0]
        let failure = try #require(integratorFailure { try ode.integrate(&y, from: 0, to: 1) })
        #expect(failure.reason == .nonFiniteRightHandSide)
        #expect(failure.time <= 0.5 && failure.time >= 0.49, "time \(failure.time)")
        #expect(failure.advice.contains("dydt[1] = nan"))
        // y holds the last good state: the solution at failure.time.
        let bound = globalErrorBound(steps: ode.statistics.acceptedSteps, tolerance: 1e-8, yMax: 1, amplification: 1)
        #expect(abs(y[0] - exp(-failure.time)) <= bound && abs(y[1] - exp(-failure.time)) <= bound)
    }

    @Test func infinityFromRightHandSideIntegratingBackward() throws {
        let ode = try ODEIntegrator(.rk8pd, dimension: 1, absoluteTolerance: 1e-8, relativeTolerance: 1e-8,
                                    maxStep: 0.01) { t, y, dydt in
            dydt[0] = t < 0.25 ? -.infinity : -y[0]
        }
        var y = [exp(-1.0)]
        let failure = try #require(integratorFailure { try ode.integrate(&y, from: 1, to: 0) })
        #expect(failure.reason == .nonFiniteRightHandSide)
        #expect(failure.time >= 0.25 && failure.time <= 0.26, "time \(failure.time)")
        #expect(failure.stepSize < 0)
        #expect(failure.advice.contains("dydt[0] = -inf"))
        #expect(abs(y[0] - exp(-failure.time)) < 1e-6)
    }

    /// y' = 10³⁰⁸ is finite, but y = 10³⁰⁸·t overflows past t ≈ 1.8: caught by the check of y after each step.
    @Test func overflowingStateIsCaught() throws {
        let ode = try ODEIntegrator(.rkf45, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6,
                                    maxStep: 0.01) { _, _, dydt in dydt[0] = 1e308 }
        var y = [0.0]
        let failure = try #require(integratorFailure { try ode.integrate(&y, from: 0, to: 10) })
        #expect(failure.reason == .gsl(code: 16, text: "overflow"))
        #expect(failure.time > 1.7 && failure.time < 1.8, "time \(failure.time)")
        #expect(y[0].isFinite)
        #expect(abs(y[0] / 1e308 - failure.time) < 1e-9)
    }

    @Test(arguments: ODEStepType.allCases)
    func throwingRightHandSide(_ type: ODEStepType) throws {
        let ode = try ODEIntegrator(type, dimension: 1, absoluteTolerance: 1e-8, relativeTolerance: 1e-8, maxStep: 0.01,
                                    rightHandSide: { t, y, dydt in
                                        if t > 0.5 { throw ModelBroke() }
                                        dydt[0] = -y[0]
                                    },
                                    jacobian: { _, _, dfdy, dfdt in dfdy[0] = -1; dfdt[0] = 0 })
        var y = [1.0]
        let failure = try #require(integratorFailure { try ode.integrate(&y, from: 0, to: 1) })
        #expect(failure.reason == .rightHandSideThrew("model broke"))
        #expect(failure.time <= 0.5 && failure.time >= 0.49)
        let bound = globalErrorBound(steps: ode.statistics.acceptedSteps, tolerance: 1e-8, yMax: 1, amplification: 1)
        #expect(abs(y[0] - exp(-failure.time)) <= bound)
    }

    @Test func scoreSDEErrorFromRightHandSideIsRethrownUnchanged() throws {
        let thrown = ScoreSDEError.nonFinite("score at t = 0.3")
        let ode = try ODEIntegrator(.rkf45, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6) { t, y, dydt in
            if t > 0.3 { throw thrown }
            dydt[0] = -y[0]
        }
        var y = [1.0]
        #expect(throws: thrown) { try ode.integrate(&y, from: 0, to: 1) }
        // An integrator failure from a nested solve is wrapped, with the outer time.
        let nested = ScoreSDEError.integrator(IntegratorFailure(reason: .maxStepsExceeded, time: 7, stepSize: 1, advice: ""))
        let outer = try ODEIntegrator(.rkf45, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6) { t, y, dydt in
            if t > 0.3 { throw nested }
            dydt[0] = -y[0]
        }
        y = [1.0]
        let failure = try #require(integratorFailure { try outer.integrate(&y, from: 0, to: 1) })
        #expect(failure.reason == .rightHandSideThrew(String(describing: nested)))
        #expect(failure.time < 0.3)
    }

    @Test func throwingAndNonFiniteJacobian() throws {
        for type in implicitTypes {
            let throwing = try ODEIntegrator(type, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6,
                                             rightHandSide: { _, y, dydt in dydt[0] = -y[0] },
                                             jacobian: { _, _, _, _ in throw ModelBroke() })
            var y = [1.0]
            let thrown = try #require(integratorFailure { try throwing.integrate(&y, from: 0, to: 1) })
            #expect(thrown.reason == .rightHandSideThrew("model broke"), "\(type)")
            #expect(thrown.advice.contains("Jacobian"))
            #expect(y == [1.0])

            let nan = try ODEIntegrator(type, dimension: 2, absoluteTolerance: 1e-6, relativeTolerance: 1e-6,
                                        rightHandSide: { _, y, dydt in dydt[0] = -y[0]; dydt[1] = -y[1] },
                                        jacobian: { _, _, dfdy, dfdt in
                                            dfdy[0] = -1; dfdy[1] = 0; dfdy[2] = .nan; dfdy[3] = -1
                                            dfdt[0] = 0; dfdt[1] = 0
                                        })
            var z = [1.0, 2.0]
            let nonFinite = try #require(integratorFailure { try nan.integrate(&z, from: 0, to: 1) })
            #expect(nonFinite.reason == .nonFiniteRightHandSide, "\(type)")
            #expect(nonFinite.advice.contains("dfdy[1, 0] = nan"))
            #expect(z == [1.0, 2.0])
        }
    }

    @Test func implicitStepTypeWithoutJacobianIsInvalid() throws {
        for type in implicitTypes {
            let message = try #require(invalidArgumentMessage {
                _ = try ODEIntegrator(type, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6) { _, y, dydt in
                    dydt[0] = -y[0]
                }
            })
            #expect(message.contains(type.rawValue))
            #expect(message.contains("rk2, rk4, rkf45, rkck, rk8pd, msadams"))
        }
    }

    @Test func invalidParametersThrowInsteadOfAborting() throws {
        let rhs: ODEIntegrator.RightHandSide = { _, y, dydt in dydt[0] = -y[0] }
        func make(dimension: Int = 1, atol: Double = 1e-6, rtol: Double = 1e-6, initialStep: Double? = nil,
                  minStep: Double = 0, maxStep: Double? = nil, maxSteps: Int? = nil) throws {
            _ = try ODEIntegrator(.rkf45, dimension: dimension, absoluteTolerance: atol, relativeTolerance: rtol,
                                  initialStep: initialStep, minStep: minStep, maxStep: maxStep, maxSteps: maxSteps,
                                  rightHandSide: rhs)
        }
        // Each parameter out of its domain is named, with its value (ScoreSDEError.invalidParameter).
        func named(_ body: () throws -> Void) -> String? { invalidParameter(body)?.name }
        #expect(invalidParameterText { try make(atol: -1e-6) } == "absoluteTolerance must be > 0 and finite (got -1e-06); try 1e-5")
        #expect(invalidParameterText { try make(rtol: 0) } == "relativeTolerance must be > 0 and finite (got 0.0); try 1e-5")
        #expect(named { try make(rtol: .nan) } == "relativeTolerance")
        #expect(named { try make(atol: .infinity) } == "absoluteTolerance")
        #expect(named { try make(dimension: 0) } == "dimension")
        #expect(named { try make(minStep: -1) } == "minStep")
        #expect(named { try make(minStep: 0.1, maxStep: 0.1) } == "maxStep")
        #expect(named { try make(maxStep: .infinity) } == "maxStep")
        #expect(named { try make(initialStep: 0) } == "initialStep")
        #expect(named { try make(initialStep: -0.1) } == "initialStep")
        #expect(named { try make(initialStep: 0.5, maxStep: 0.1) } == "initialStep")
        #expect(named { try make(initialStep: 0.01, minStep: 0.1) } == "initialStep")
        #expect(named { try make(maxSteps: 0) } == "maxSteps")

        let ode = try ODEIntegrator(.rkf45, dimension: 2, absoluteTolerance: 1e-6, relativeTolerance: 1e-6) { _, y, dydt in
            dydt[0] = -y[0]; dydt[1] = -y[1]
        }
        var wrongLength = [1.0]
        #expect(invalidArgumentMessage { try ode.integrate(&wrongLength, from: 0, to: 1) } != nil)
        var nonFinite = [1.0, .nan]
        #expect(invalidArgumentMessage { try ode.integrate(&nonFinite, from: 0, to: 1) }?.contains("y[1]") == true)
        var y = [1.0, 1.0]
        #expect(invalidParameter { try ode.integrate(&y, from: 1, to: 1) }?.name == "t1")
        #expect(invalidArgumentMessage { try ode.integrate(&y, from: 0, to: .infinity) } != nil)
        #expect(invalidArgumentMessage { try ode.integrate(&y, from: .nan, to: 1) } != nil)
        #expect(y == [1.0, 1.0])
        #expect(ode.statistics == ODEStatistics())
    }

    @Test func reentrantSolveIsRejected() throws {
        var ode: ODEIntegrator?
        var inner: Error?
        ode = try ODEIntegrator(.rkf45, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6) { _, y, dydt in
            if inner == nil {
                var z = [1.0]
                do { try ode!.integrate(&z, from: 0, to: 1) } catch { inner = error }
            }
            dydt[0] = -y[0]
        }
        var y = [1.0]
        try ode!.integrate(&y, from: 0, to: 1)
        #expect(abs(y[0] - exp(-1)) < 1e-5)
        guard case ScoreSDEError.invalidArgument? = inner as? ScoreSDEError else {
            Issue.record("expected invalidArgument, got \(String(describing: inner))")
            return
        }
        ode = nil
    }
}

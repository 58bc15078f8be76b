import CGSL

/// The Swift side of the C callbacks: the closures, their counters, and the first failure seen.
///
/// Passed to GSL unretained through `gsl_odeiv2_system.params`; the integrator keeps it alive.
final class ODECallbackContext {
    enum Failure {
        /// `component` names the entry, e.g. `dydt[3]` or `dfdy[0, 1]`.
        case nonFinite(time: Double, component: String, value: Double, inJacobian: Bool)
        case threw(Error, time: Double, inJacobian: Bool)
    }

    let dimension: Int
    let rightHandSide: ODEIntegrator.RightHandSide
    let jacobian: ODEIntegrator.Jacobian?
    var rightHandSideEvaluations = 0
    var jacobianEvaluations = 0
    var failure: Failure?

    init(dimension: Int, rightHandSide: @escaping ODEIntegrator.RightHandSide, jacobian: ODEIntegrator.Jacobian?) {
        self.dimension = dimension
        self.rightHandSide = rightHandSide
        self.jacobian = jacobian
    }

    /// Returns `GSL_EBADFUNC` (GSL stops at once) if the closure throws or writes NaN/±Inf.
    func evaluateRightHandSide(_ t: Double, _ y: UnsafePointer<Double>, _ dydt: UnsafeMutablePointer<Double>) -> Int32 {
        rightHandSideEvaluations += 1
        let out = UnsafeMutableBufferPointer(start: dydt, count: dimension)
        do {
            try rightHandSide(t, UnsafeBufferPointer(start: y, count: dimension), out)
        } catch {
            failure = .threw(error, time: t, inJacobian: false)
            return GSLStatus.badFunction.rawValue
        }
        guard Self.isAllFinite(UnsafeBufferPointer(out)) else {
            let i = out.firstIndex { !$0.isFinite }!
            failure = .nonFinite(time: t, component: "dydt[\(i)]", value: out[i], inJacobian: false)
            return GSLStatus.badFunction.rawValue
        }
        return GSLStatus.success.rawValue
    }

    func evaluateJacobian(_ t: Double, _ y: UnsafePointer<Double>, _ dfdy: UnsafeMutablePointer<Double>,
                          _ dfdt: UnsafeMutablePointer<Double>) -> Int32 {
        jacobianEvaluations += 1
        guard let jacobian else { return GSLStatus.badFunction.rawValue }   // not reachable: init checks
        let matrix = UnsafeMutableBufferPointer(start: dfdy, count: dimension * dimension)
        let timeDerivative = UnsafeMutableBufferPointer(start: dfdt, count: dimension)
        do {
            try jacobian(t, UnsafeBufferPointer(start: y, count: dimension), matrix, timeDerivative)
        } catch {
            failure = .threw(error, time: t, inJacobian: true)
            return GSLStatus.badFunction.rawValue
        }
        if !Self.isAllFinite(UnsafeBufferPointer(matrix)) {
            let k = matrix.firstIndex { !$0.isFinite }!
            failure = .nonFinite(time: t, component: "dfdy[\(k / dimension), \(k % dimension)]", value: matrix[k],
                                 inJacobian: true)
            return GSLStatus.badFunction.rawValue
        }
        if !Self.isAllFinite(UnsafeBufferPointer(timeDerivative)) {
            let i = timeDerivative.firstIndex { !$0.isFinite }!
            failure = .nonFinite(time: t, component: "dfdt[\(i)]", value: timeDerivative[i], inJacobian: true)
            return GSLStatus.badFunction.rawValue
        }
        return GSLStatus.success.rawValue
    }

    /// Whether every element is finite, without branching per element: `x - x` is +0 for finite `x`
    /// and NaN for NaN or ±Inf, and NaN survives the sums. Four accumulators break the add chain.
    @inline(__always)
    static func isAllFinite(_ x: UnsafeBufferPointer<Double>) -> Bool {
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        let n = x.count
        var i = 0
        while i &+ 4 <= n {
            s0 += x[i] - x[i]
            s1 += x[i &+ 1] - x[i &+ 1]
            s2 += x[i &+ 2] - x[i &+ 2]
            s3 += x[i &+ 3] - x[i &+ 3]
            i &+= 4
        }
        while i < n {
            s0 += x[i] - x[i]
            i &+= 1
        }
        return (s0 + s1) + (s2 + s3) == 0
    }
}

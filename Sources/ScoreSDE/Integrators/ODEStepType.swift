import CGSL

/// The stepping methods of GSL's `gsl_odeiv2` adaptive ODE integrators.
///
/// The raw values are the names the command line accepts (`--ode-method rkf45`).
/// For large systems, such as a flattened batch of images, pick a step type whose
/// ``requiresJacobian`` is `false` (`rkf45`, `rkck`, `rk8pd` or `msadams`): the implicit ones
/// need the dense `dimension × dimension` Jacobian at every step.
///
///     let solver = try ODEIntegrator(.rkf45, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6) {
///         t, y, dydt in dydt[0] = -y[0]
///     }
public enum ODEStepType: String, CaseIterable, Sendable {
    /// Explicit embedded Runge–Kutta (2, 3) method. Order 2. No Jacobian.
    case rk2
    /// Explicit classical 4th-order Runge–Kutta; error estimated by step doubling. Order 4. No Jacobian.
    case rk4
    /// Explicit embedded Runge–Kutta–Fehlberg (4, 5) method, "a good general-purpose integrator".
    /// Order 5 (GSL's `order`). No Jacobian.
    case rkf45
    /// Explicit embedded Runge–Kutta Cash–Karp (4, 5) method. Order 5 (GSL's `order`). No Jacobian.
    case rkck
    /// Explicit embedded Runge–Kutta Prince–Dormand (8, 9) method. Order 8. No Jacobian.
    case rk8pd
    /// Variable-coefficient linear multistep Adams method in Nordsieck form: Adams–Bashforth
    /// predictor, Adams–Moulton corrector solved by functional iteration, P(EC)^m.
    /// Order varies between 1 and 12. No Jacobian.
    case msadams
    /// Implicit Gaussian 1st-order Runge–Kutta (backward Euler); error by step doubling.
    /// Order 1. Requires a Jacobian.
    case rk1imp
    /// Implicit Gaussian 2nd-order Runge–Kutta (implicit midpoint rule); error by step doubling.
    /// Order 2. Requires a Jacobian.
    case rk2imp
    /// Implicit Gaussian 4th-order Runge–Kutta; error by step doubling. Order 4. Requires a Jacobian.
    case rk4imp
    /// Implicit Bulirsch–Stoer method of Bader and Deuflhard, suitable for stiff problems.
    /// Variable order. Requires a Jacobian.
    case bsimp
    /// Variable-coefficient linear multistep backward differentiation formula (BDF) in Nordsieck form,
    /// with a modified Newton iteration; suitable for stiff problems. Order varies between 1 and 5.
    /// Requires a Jacobian.
    case msbdf

    /// Whether this step type needs a Jacobian (`rk1imp`, `rk2imp`, `rk4imp`, `bsimp`, `msbdf`).
    public var requiresJacobian: Bool {
        switch self {
        case .rk1imp, .rk2imp, .rk4imp, .bsimp, .msbdf: return true
        case .rk2, .rk4, .rkf45, .rkck, .rk8pd, .msadams: return false
        }
    }

    /// Whether this is an explicit Runge–Kutta method (`rk2`, `rk4`, `rkf45`, `rkck`, `rk8pd`).
    ///
    /// `msadams` is `false`: its Adams–Moulton corrector is implicit, although it is solved by
    /// functional iteration and so needs no Jacobian (see ``requiresJacobian``).
    public var isExplicit: Bool {
        switch self {
        case .rk2, .rk4, .rkf45, .rkck, .rk8pd: return true
        case .msadams, .rk1imp, .rk2imp, .rk4imp, .bsimp, .msbdf: return false
        }
    }

    /// The step types that work without a Jacobian, for error messages.
    static var jacobianFreeNames: String {
        allCases.filter { !$0.requiresJacobian }.map(\.rawValue).joined(separator: ", ")
    }

    /// GSL's step type table (through the shim's getters: Swift 6 cannot read GSL's globals).
    var gslType: UnsafePointer<gsl_odeiv2_step_type> {
        let type: UnsafePointer<gsl_odeiv2_step_type>?
        switch self {
        case .rk2: type = cgsl_step_rk2()
        case .rk4: type = cgsl_step_rk4()
        case .rkf45: type = cgsl_step_rkf45()
        case .rkck: type = cgsl_step_rkck()
        case .rk8pd: type = cgsl_step_rk8pd()
        case .msadams: type = cgsl_step_msadams()
        case .rk1imp: type = cgsl_step_rk1imp()
        case .rk2imp: type = cgsl_step_rk2imp()
        case .rk4imp: type = cgsl_step_rk4imp()
        case .bsimp: type = cgsl_step_bsimp()
        case .msbdf: type = cgsl_step_msbdf()
        }
        guard let type else { fatalError("GSL step type \(rawValue) is NULL: libgsl is broken") }
        return type
    }
}

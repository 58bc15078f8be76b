import CGSL

/// A GSL status code (`GSL_SUCCESS`, `GSL_EBADFUNC`, ...) with GSL's own text.
///
/// Internal: nothing GSL-typed leaves `Integrators/`; failures surface as ``ScoreSDEError``.
struct GSLStatus: RawRepresentable, Equatable, CustomStringConvertible {
    let rawValue: Int32
    init(rawValue: Int32) { self.rawValue = rawValue }

    static let success = GSLStatus(rawValue: Int32(GSL_SUCCESS))
    /// Generic failure; `gsl_odeiv2_evolve_apply` returns it when the step size cannot shrink further.
    static let failure = GSLStatus(rawValue: Int32(GSL_FAILURE))
    static let invalidArgument = GSLStatus(rawValue: Int32(GSL_EINVAL))
    static let outOfMemory = GSLStatus(rawValue: Int32(GSL_ENOMEM))
    /// A user function asked the integrator to stop at once.
    static let badFunction = GSLStatus(rawValue: Int32(GSL_EBADFUNC))
    static let maxIterations = GSLStatus(rawValue: Int32(GSL_EMAXITER))
    static let overflow = GSLStatus(rawValue: Int32(GSL_EOVRFLW))
    static let noProgress = GSLStatus(rawValue: Int32(GSL_ENOPROG))

    /// `gsl_strerror` text, e.g. "problem with user-supplied function".
    var description: String {
        guard let text = gsl_strerror(rawValue) else { return "GSL status \(rawValue)" }
        return String(cString: text)
    }
}

/// Switches GSL's abort-on-error handler off, once per process (GSL's handler is one global).
///
/// Every initializer of a GSL-owning type evaluates it (`_ = gslErrorHandlerOff`); Swift runs the
/// initializer exactly once, thread-safely. With the handler off, GSL reports errors only through
/// return values and NULL, which the wrappers check; they also validate arguments in Swift first,
/// because GSL's own messages are lost with the handler off.
let gslErrorHandlerOff: Void = {
    _ = gsl_set_error_handler_off()
}()

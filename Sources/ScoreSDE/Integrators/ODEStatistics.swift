/// Work counters of ODE solves.
public struct ODEStatistics: Sendable, Equatable {
    /// Calls of the right-hand side (NFE), counted in the callback, including those of rejected steps.
    public var rightHandSideEvaluations: Int
    /// Calls of the Jacobian (implicit step types only).
    public var jacobianEvaluations: Int
    /// Steps that met the tolerances and advanced the solution.
    public var acceptedSteps: Int
    /// Step attempts that were thrown away and retried with a smaller step (GSL's `failed_steps`):
    /// the error estimate was too large, or the stepper itself could not complete the step.
    public var rejectedSteps: Int

    public init(rightHandSideEvaluations: Int = 0, jacobianEvaluations: Int = 0,
                acceptedSteps: Int = 0, rejectedSteps: Int = 0) {
        self.rightHandSideEvaluations = rightHandSideEvaluations
        self.jacobianEvaluations = jacobianEvaluations
        self.acceptedSteps = acceptedSteps
        self.rejectedSteps = rejectedSteps
    }

    static func += (lhs: inout ODEStatistics, rhs: ODEStatistics) {
        lhs.rightHandSideEvaluations += rhs.rightHandSideEvaluations
        lhs.jacobianEvaluations += rhs.jacobianEvaluations
        lhs.acceptedSteps += rhs.acceptedSteps
        lhs.rejectedSteps += rhs.rejectedSteps
    }
}

/// What the implicit step types (those that need a Jacobian) can be used for, checked in one place
/// before any work: a dense `n × n` Jacobian limits a system to ``maximumImplicitUnknowns``
/// unknowns, and the likelihood's augmented system has none (its divergence component would need
/// second derivatives of the score).
extension ODEStepType {
    /// The most unknowns one system of an implicit step type may have (a dense 4096 × 4096 Jacobian
    /// is 128 MiB).
    public static let maximumImplicitUnknowns = 4096

    /// Throws unless a system of `rows` samples of `dimension` values each fits this step type:
    /// explicit types always fit; implicit ones need at most ``maximumImplicitUnknowns`` unknowns
    /// per system (`dimension` per sample with ``ODESystemLayout/perSample``, `rows · dimension`
    /// with ``ODESystemLayout/batch``).
    public func checkFits(rows: Int, dimension: Int, layout: ODESystemLayout) throws {
        guard requiresJacobian else { return }
        let unknowns = layout == .perSample ? dimension : rows * dimension
        guard unknowns <= Self.maximumImplicitUnknowns else {
            let fix = layout == .perSample
                ? "use an explicit step type (\(Self.jacobianFreeNames))"
                : "use the per-sample layout (one \(dimension)x\(dimension) Jacobian per sample), fewer samples, or an explicit step type (\(Self.jacobianFreeNames))"
            throw ScoreSDEError.invalidArgument("the step type \(rawValue) is implicit and needs a dense Jacobian of the whole system, \(unknowns)x\(unknowns) here (at most \(Self.maximumImplicitUnknowns) unknowns); \(fix)")
        }
    }

    /// Throws for an implicit step type: the likelihood ODE cannot use one.
    public func checkUsableForLikelihood() throws {
        guard requiresJacobian else { return }
        throw ScoreSDEError.invalidArgument("the step type \(rawValue) is implicit and needs the Jacobian of the whole augmented system, including the divergence term (second derivatives of the score), which no model provides; use an explicit step type for likelihoods: \(Self.jacobianFreeNames)")
    }
}

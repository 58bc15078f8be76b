/// `n` Langevin-type refinement steps at a fixed time `t`; `(t, next)` is the interval about to be
/// stepped, for coefficients that depend on the grid spacing (Langevin's `α`).
public protocol Corrector: Sendable {
    func correct(_ x: inout Tensor, at t: Double, next: Double,
                 along reverse: some ReverseProcess, using rng: inout RandomSource) throws
    /// Throws when the corrector cannot run on `grid` with `sde` (default: any grid is fine).
    func validate(grid: TimeGrid, sde: some ForwardSDE) throws
}

extension Corrector {
    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws {}
}

/// Does nothing: predictor-only sampling.
public struct NoCorrector: Corrector {
    public init() {}
    public func correct(_ x: inout Tensor, at t: Double, next: Double, along reverse: some ReverseProcess,
                        using rng: inout RandomSource) throws {}
}

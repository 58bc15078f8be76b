/// One step of the reverse process over an interval `t → next` (`next < t`).
///
/// A predictor updates `x` in place and writes the noise-free part of its update ("x_mean") into
/// `mean`, which the sampler returns after the last step (the final denoising). Coefficients come
/// from the interval (`sde.transition(from: next, to: t)`, `sde.marginal(at:)`), so any time grid is
/// a correct sampler. A multistep method keeps what it remembers in `State` (`Void` for one-step
/// methods); the integrator makes it once per run with ``makeState(for:)`` and threads it through
/// every step. Write your own as a small `Sendable` struct; the library's predictors are written
/// exactly the same way:
///
///     /// Euler on the probability-flow ODE. Order 1, 1 NFE per step, any ForwardSDE.
///     struct FlowEuler: Predictor {
///         func step(_ x: inout Tensor, mean: inout Tensor, state: inout Void, from t: Double, to next: Double,
///                   along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
///             let drift = try reverse.drift(x, at: t, probabilityFlow: true)   // counted (NFE)
///             x.add(drift, scaledBy: next - t)
///             mean = x
///         }
///     }
public protocol Predictor: Sendable {
    /// What the method carries from step to step (e.g. earlier model outputs of a multistep method).
    associatedtype State = Void
    /// The state at the start of a run from `x`.
    func makeState(for x: Tensor) -> State
    /// Advances `x` from `t` to `next` and writes the noise-free part of the update into `mean`
    /// (a workspace shaped like `x`, reused across steps).
    func step(_ x: inout Tensor, mean: inout Tensor, state: inout State, from t: Double, to next: Double,
              along reverse: some ReverseProcess, using rng: inout RandomSource) throws
    /// Throws when the method cannot run on `grid` with `sde` (default: any grid is fine).
    func validate(grid: TimeGrid, sde: some ForwardSDE) throws
}

extension Predictor where State == Void {
    public func makeState(for x: Tensor) -> Void { () }
}

extension Predictor {
    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws {}
}

extension Tensor {
    /// `affineStep` returning a new `mean` (allocates; prefer the workspace form in a sampler).
    public static func affineStep(_ x: inout Tensor, xScale a: Double, score s: Tensor, scoreScale b: Double,
                                  noise c: Double, using rng: inout RandomSource) -> Tensor {
        var mean = Tensor(zeros: x.shape)
        affineStep(&x, mean: &mean, xScale: a, score: s, scoreScale: b, noise: c, using: &rng)
        return mean
    }
}

/// Does nothing: corrector-only sampling (NCSN / annealed Langevin dynamics).
public struct NoPredictor: Predictor {
    public init() {}
    public func step(_ x: inout Tensor, mean: inout Tensor, state: inout Void, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws { mean = x }
}

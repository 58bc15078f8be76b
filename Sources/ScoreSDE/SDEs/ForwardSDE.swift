import Foundation
import RealModule

/// A forward (noising) SDE with linear drift: `dx = a(t) x dt + g(t) dw` on `t ∈ [0, T]`.
///
/// Linear drift is what makes the perturbation kernel Gaussian,
/// `x(t) | x(0) ~ N(m(t) x(0), s(t)² I)`, which every exact result in this library relies on.
/// VE, VP and sub-VP (Song et al. 2021) are all of this form.
///
/// Everything else — the drift on a batch, the reverse-time SDE, the probability-flow ODE — is
/// derived from these members.
public protocol ForwardSDE: Sendable {
    /// End time of the forward process (1 for the built-in SDEs).
    var T: Double { get }
    /// Number of discretization steps `N` of the reference's discrete forms.
    var N: Int { get }
    /// The drift coefficient `a(t)` in `f(x, t) = a(t) x`.
    func driftCoefficient(at t: Double) -> Double
    /// The diffusion coefficient `g(t)`.
    func diffusion(at t: Double) -> Double
    /// The perturbation kernel: `x(t) | x(0) ~ N(meanScale · x(0), std² I)`.
    func marginal(at t: Double) -> (meanScale: Double, std: Double)
    /// Standard deviation of the (isotropic, zero-mean Gaussian) prior at `T`.
    var priorStd: Double { get }
    /// The reference's discrete form at time `t`: `x_{i+1} = x_i + f_i(x_i) + G_i z_i` with
    /// `f_i(x) = driftScale · x`.
    func discretize(at t: Double) -> (driftScale: Double, G: Double)
    /// The per-step `α_i` that scales the Langevin corrector's step (1 for VE; `1 − β_i` for VP).
    func langevinAlpha(at t: Double) -> Double
    /// The cumulative `ᾱ_i = ∏_{j≤i} (1 − β_j)` used by the paper's Algorithm 5 (1 for VE).
    func cumulativeLangevinAlpha(at t: Double) -> Double
}

extension ForwardSDE {
    /// Default discretization: Euler–Maruyama with `dt = T/N`.
    public func discretize(at t: Double) -> (driftScale: Double, G: Double) {
        let dt = T / Double(N)
        return (driftCoefficient(at: t) * dt, diffusion(at: t) * dt.squareRoot())
    }

    public func langevinAlpha(at t: Double) -> Double { 1 }
    public func cumulativeLangevinAlpha(at t: Double) -> Double { 1 }

    /// The drift `f(x, t)` on a batch.
    public func drift(_ x: Tensor, at t: Double) -> Tensor { x.scaled(by: driftCoefficient(at: t)) }

    /// Samples the prior `N(0, priorStd² I)`: `count` rows of shape `rowShape`. One draw of `rng`.
    public func samplePrior(rowShape: [Int], count: Int, using rng: inout RandomSource) -> Tensor {
        var x = Tensor(zeros: [count] + rowShape)
        x.addStandardNormal(scaledBy: priorStd, using: &rng)
        return x
    }

    /// Log density of the prior at each row of `x`.
    public func priorLogDensity(_ x: Tensor) -> [Double] {
        let d = Double(x.rowSize), s2 = priorStd * priorStd
        return x.rowNorms().map { n in -0.5 * d * Foundation.log(2 * Double.pi * s2) - n * n / (2 * s2) }
    }

    /// The discrete step index the reference uses at `t`: `⌊t (N − 1) / T⌋`, clamped to `0..<N`.
    public func timestep(at t: Double) -> Int {
        min(N - 1, max(0, Int((t * Double(N - 1) / T).rounded(.down))))
    }
}

/// An SDE with the discrete schedule that ancestral sampling needs (VE: SMLD, VP: DDPM).
/// Sub-VP has none, so `AncestralSampling(for: SubVPSDE(...))` does not compile.
public protocol AncestralSamplable: ForwardSDE {
    /// One ancestral step at `t`: `mean = xScale · x + scoreScale · s`, then `x = mean + noise · z`.
    func ancestralCoefficients(at t: Double) -> (xScale: Double, scoreScale: Double, noise: Double)
}

func requireParameter(_ ok: Bool, _ message: @autoclosure () -> String) throws {
    if !ok { throw ScoreSDEError.invalidArgument(message()) }
}

func validateSteps(_ N: Int) throws {
    try requireParameter(N >= 1, "the number of discretization steps N must be >= 1 (got \(N)); the reference uses 1000")
}

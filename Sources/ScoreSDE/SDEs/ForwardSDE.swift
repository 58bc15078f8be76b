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
    /// The drift coefficient `a(t)` in `f(x, t) = a(t) x`.
    func driftCoefficient(at t: Double) -> Double
    /// The diffusion coefficient `g(t)`.
    func diffusion(at t: Double) -> Double
    /// The perturbation kernel: `x(t) | x(0) ~ N(meanScale · x(0), std² I)`.
    func marginal(at t: Double) -> (meanScale: Double, std: Double)
    /// The transition kernel between two times `s < t`: `x(t) | x(s) ~ N(scale · x(s), variance · I)`.
    /// Every interval-based step reads its coefficients from this (and `marginal`), so any time grid
    /// is a correct discretization. The default derives it from `marginal`; SDEs override it where a
    /// closed form keeps more digits for short intervals.
    func transition(from s: Double, to t: Double) -> (scale: Double, variance: Double)
    /// Standard deviation of the (isotropic, zero-mean Gaussian) prior at `T`.
    var priorStd: Double { get }
}

extension ForwardSDE {
    /// `scale = m(t)/m(s)`, `variance = std(t)² − scale² std(s)²` (clamped at 0).
    public func transition(from s: Double, to t: Double) -> (scale: Double, variance: Double) {
        let (ms, ss) = marginal(at: s), (mt, st) = marginal(at: t)
        let r = mt / ms
        return (r, max(0, st * st - r * r * ss * ss))
    }

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
}

/// An SDE with an ancestral (posterior-style) sampling step: SMLD for VE, DDPM for VP.
/// Sub-VP has none, so `AncestralSampling(for: SubVPSDE(...))` does not compile.
public protocol AncestralSamplable: ForwardSDE {
    /// One ancestral step over `t → next`: `mean = xScale · x + scoreScale · s`, then
    /// `x = mean + noise · z`, with coefficients from the interval.
    func ancestralCoefficients(from t: Double, to next: Double) -> (xScale: Double, scoreScale: Double, noise: Double)
}

/// Throws ``ScoreSDEError/invalidArgument(_:)`` with `message` unless `ok`: for misuse that is not
/// one named parameter (arguments that do not fit together, a call at the wrong time).
func requireParameter(_ ok: Bool, _ message: @autoclosure () -> String) throws {
    if !ok { throw ScoreSDEError.invalidArgument(message()) }
}

/// Throws ``ScoreSDEError/invalidParameter(_:)`` unless `ok`: the parameter `name` had `value`,
/// which must be `requirement` ("finite and > 0"); `advice` says what to try.
func requireParameter(_ ok: Bool, name: String, value: @autoclosure () -> some Any,
                      requirement: @autoclosure () -> String, advice: @autoclosure () -> String? = nil) throws {
    if !ok { throw ScoreSDEError.invalid(name, value(), must: requirement(), advice: advice()) }
}

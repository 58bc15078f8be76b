import Foundation
import RealModule

/// Variance-exploding SDE (SMLD / NCSN): `dx = σ(t) √(2 log(σmax/σmin)) dw`,
/// `σ(t) = σmin (σmax/σmin)^t`. `marginal(at:)` follows the reference's convention that the data
/// already carry noise σmin: `x(t) | x(0) ~ N(x(0), σ(t)² I)`; from a point mass the SDE itself adds
/// variance `σ(t)² − σmin²`.
///
/// Supports: every predictor (ancestral: SMLD form), both correctors.
/// Reference: Song et al. 2021, eq. (30); defaults σmin = 0.01, σmax = 50, N = 1000.
public struct VESDE: AncestralSamplable, Equatable {
    public let sigmaMin: Double
    public let sigmaMax: Double
    public let N: Int
    public var T: Double { 1 }
    let logRatio: Double

    /// - Throws: `invalidArgument` unless `0 < sigmaMin < sigmaMax` (finite) and `N >= 1`.
    public init(sigmaMin: Double = 0.01, sigmaMax: Double = 50, N: Int = 1000) throws {
        try requireParameter(sigmaMin.isFinite && sigmaMin > 0, "sigmaMin must be a finite number > 0 (got \(sigmaMin)); the reference uses 0.01")
        try requireParameter(sigmaMax.isFinite && sigmaMax > sigmaMin, "sigmaMax must be finite and > sigmaMin = \(sigmaMin) (got \(sigmaMax)); the reference uses 50 — choose about the largest pairwise distance in the data")
        try validateSteps(N)
        self.sigmaMin = sigmaMin; self.sigmaMax = sigmaMax; self.N = N
        logRatio = Foundation.log(sigmaMax / sigmaMin)
    }

    /// σ(t).
    public func sigma(at t: Double) -> Double { sigmaMin * Foundation.exp(t * logRatio) }

    public func driftCoefficient(at t: Double) -> Double { 0 }
    public func diffusion(at t: Double) -> Double { sigma(at: t) * (2 * logRatio).squareRoot() }
    public func marginal(at t: Double) -> (meanScale: Double, std: Double) { (1, sigma(at: t)) }
    public var priorStd: Double { sigmaMax }

    /// `discrete_sigmas[i] = exp(linspace(log σmin, log σmax, N))[i]`.
    public func discreteSigma(_ i: Int) -> Double {
        N == 1 ? sigmaMin : sigmaMin * Foundation.exp(Double(i) / Double(N - 1) * logRatio)
    }

    /// SMLD form: `f = 0`, `G = √(σ_i² − σ_{i−1}²)` with `σ_{−1} = 0`.
    public func discretize(at t: Double) -> (driftScale: Double, G: Double) {
        let i = timestep(at: t)
        let s = discreteSigma(i), a = i == 0 ? 0 : discreteSigma(i - 1)
        return (0, (s * s - a * a).squareRoot())
    }

    public func ancestralCoefficients(at t: Double) -> (xScale: Double, scoreScale: Double, noise: Double) {
        let i = timestep(at: t)
        let s = discreteSigma(i), a = i == 0 ? 0 : discreteSigma(i - 1)
        let d = s * s - a * a
        return (1, d, (a * a * d / (s * s)).squareRoot())
    }
}

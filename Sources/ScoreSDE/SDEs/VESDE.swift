import Foundation
import RealModule

/// Variance-exploding SDE (SMLD / NCSN): `dx = σ(t) √(2 log(σmax/σmin)) dw`,
/// `σ(t) = σmin (σmax/σmin)^t`. `marginal(at:)` follows the reference's convention that the data
/// already carry noise σmin: `x(t) | x(0) ~ N(x(0), σ(t)² I)`; from a point mass the SDE itself adds
/// variance `σ(t)² − σmin²`.
///
/// Supports: every predictor (ancestral: SMLD form), both correctors.
/// Reference: Song et al. 2021, eq. (30); defaults σmin = 0.01, σmax = 50. The reference's discrete
/// sigmas (`N` of them) are ``ReferenceDiscretization``'s business, not the SDE's.
public struct VESDE: AncestralSamplable, Equatable {
    public let sigmaMin: Double
    public let sigmaMax: Double
    public var T: Double { 1 }
    let logRatio: Double

    /// - Throws: `invalidParameter` unless `0 < sigmaMin < sigmaMax` (finite).
    public init(sigmaMin: Double = 0.01, sigmaMax: Double = 50) throws {
        try requireParameter(sigmaMin.isFinite && sigmaMin > 0, name: "sigmaMin", value: sigmaMin, requirement: "finite and > 0", advice: "the reference uses 0.01")
        try requireParameter(sigmaMax.isFinite && sigmaMax > sigmaMin, name: "sigmaMax", value: sigmaMax, requirement: "finite and > sigmaMin = \(sigmaMin)",
                             advice: "the reference uses 50 — choose about the largest pairwise distance in the data")
        self.sigmaMin = sigmaMin; self.sigmaMax = sigmaMax
        logRatio = Foundation.log(sigmaMax / sigmaMin)
    }

    /// σ(t).
    public func sigma(at t: Double) -> Double { sigmaMin * Foundation.exp(t * logRatio) }

    public func driftCoefficient(at t: Double) -> Double { 0 }
    public func diffusion(at t: Double) -> Double { sigma(at: t) * (2 * logRatio).squareRoot() }
    public func marginal(at t: Double) -> (meanScale: Double, std: Double) { (1, sigma(at: t)) }
    public var priorStd: Double { sigmaMax }

    /// `transition(from: s, to: t)`: scale 1, variance `σ(t)² − σ(s)²`, where time 0 is the clean data
    /// (`σ(0) := 0`, the reference's `adjacent_sigma = 0` for its last step), so a step that ends at 0
    /// removes all the noise.
    public func transition(from s: Double, to t: Double) -> (scale: Double, variance: Double) {
        let a = s > 0 ? sigma(at: s) : 0, b = sigma(at: t)
        return (1, max(0, (b - a) * (b + a)))
    }

    /// SMLD ancestral step over `t → next` (Song & Ermon 2019; Song et al. 2021 App. F) with
    /// `σ = σ(t)`, `σ' = σ(next)` (0 when `next = 0`: the step removes all noise):
    /// `mean = x + (σ² − σ'²) s`, noise `√(σ'² (σ² − σ'²) / σ²)`.
    public func ancestralCoefficients(from t: Double, to next: Double) -> (xScale: Double, scoreScale: Double, noise: Double) {
        let s = sigma(at: t), a = next > 0 ? sigma(at: next) : 0
        let d = (s - a) * (s + a)
        return (1, d, (a * a * d / (s * s)).squareRoot())
    }
}

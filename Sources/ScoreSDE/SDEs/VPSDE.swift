import Foundation
import RealModule

/// A variance-preserving SDE `dx = −½ β(t) x dt + √β(t) dw` (Song et al. 2021, eq. 11), given by
/// its schedule `β(t)` and `log m(t) = −½ ∫₀ᵗ β`: drift, diffusion, marginals, transitions and the
/// DDPM ancestral step follow from those two (the linear ``VPSDE``, the cosine ``CosineVPSDE``).
public protocol VariancePreservingSDE: AncestralSamplable {
    /// The noise rate `β(t)`.
    func beta(at t: Double) -> Double
    /// `log m(t)`, the log of the marginal's mean scale (accurate as `t → 0`).
    func logMeanCoefficient(at t: Double) -> Double
}

extension VariancePreservingSDE {
    public func driftCoefficient(at t: Double) -> Double { -0.5 * beta(at: t) }
    public func diffusion(at t: Double) -> Double { beta(at: t).squareRoot() }
    /// Std `√(1 − e^{2 log m})`, computed with `expm1` so it keeps its digits as t → 0.
    public func marginal(at t: Double) -> (meanScale: Double, std: Double) {
        let l = logMeanCoefficient(at: t)
        return (Foundation.exp(l), (-Double.expMinusOne(2 * l)).squareRoot())
    }
    public var priorStd: Double { 1 }

    /// `scale = e^{l(t) − l(s)}`, `variance = 1 − scale²` (with `expm1`: exact for short intervals).
    public func transition(from s: Double, to t: Double) -> (scale: Double, variance: Double) {
        let d = logMeanCoefficient(at: t) - logMeanCoefficient(at: s)
        return (Foundation.exp(d), -Double.expMinusOne(2 * d))
    }

    /// DDPM ancestral step over `t → next` (Ho et al. 2020, Alg. 2; Song et al. 2021 App. F) with the
    /// interval's `β = 1 − (m(t)/m(next))²`: `mean = (x + β s)/√(1 − β)`, noise `√β`.
    public func ancestralCoefficients(from t: Double, to next: Double) -> (xScale: Double, scoreScale: Double, noise: Double) {
        let (r, b) = transition(from: next, to: t)
        return (1 / r, b / r, b.squareRoot())
    }
}

/// Variance-preserving SDE (DDPM): `dx = −½ β(t) x dt + √β(t) dw`, `β(t) = βmin + t (βmax − βmin)`.
///
/// Supports: every predictor (ancestral: DDPM form), both correctors.
/// Reference: Song et al. 2021, eq. (32); defaults βmin = 0.1, βmax = 20. The reference's discrete
/// betas (`N` of them) are ``ReferenceDiscretization``'s business, not the SDE's.
public struct VPSDE: VariancePreservingSDE, Equatable {
    public let betaMin: Double
    public let betaMax: Double
    public var T: Double { 1 }

    /// - Throws: `invalidParameter` unless `0 < betaMin < betaMax` (finite).
    public init(betaMin: Double = 0.1, betaMax: Double = 20) throws {
        try validateBetas(betaMin, betaMax)
        self.betaMin = betaMin; self.betaMax = betaMax
    }

    public func beta(at t: Double) -> Double { betaMin + t * (betaMax - betaMin) }
    /// `log m(t) = −¼ t² (βmax − βmin) − ½ t βmin`.
    public func logMeanCoefficient(at t: Double) -> Double { vpLogMeanCoefficient(t, betaMin, betaMax) }
}

/// Sub-VP SDE: `dx = −½ β(t) x dt + √(β(t) (1 − e^{−2∫₀ᵗβ})) dw`; marginal std `1 − e^{−∫₀ᵗβ}`
/// (no square root: its variance is `(1 − e^{−∫β})²`).
///
/// Supports: Euler–Maruyama and reverse diffusion (Euler–Maruyama discretization), both correctors;
/// not ancestral sampling (no discrete schedule), which the type system enforces.
/// Reference: Song et al. 2021, eq. (34) and App. B; defaults as VP.
public struct SubVPSDE: ForwardSDE, Equatable {
    public let betaMin: Double
    public let betaMax: Double
    public var T: Double { 1 }

    /// - Throws: `invalidParameter` unless `0 < betaMin < betaMax` (finite).
    public init(betaMin: Double = 0.1, betaMax: Double = 20) throws {
        try validateBetas(betaMin, betaMax)
        self.betaMin = betaMin; self.betaMax = betaMax
    }

    public func beta(at t: Double) -> Double { betaMin + t * (betaMax - betaMin) }
    public func driftCoefficient(at t: Double) -> Double { -0.5 * beta(at: t) }
    public func diffusion(at t: Double) -> Double {
        let discount = -Double.expMinusOne(-2 * betaMin * t - (betaMax - betaMin) * t * t)
        return (beta(at: t) * discount).squareRoot()
    }
    public func marginal(at t: Double) -> (meanScale: Double, std: Double) {
        let l = vpLogMeanCoefficient(t, betaMin, betaMax)
        return (Foundation.exp(l), -Double.expMinusOne(2 * l))
    }
    public var priorStd: Double { 1 }

    /// `scale = e^{l(t) − l(s)}`; variance `std(t)² − scale² std(s)²`.
    public func transition(from s: Double, to t: Double) -> (scale: Double, variance: Double) {
        let ls = vpLogMeanCoefficient(s, betaMin, betaMax), lt = vpLogMeanCoefficient(t, betaMin, betaMax)
        let r = Foundation.exp(lt - ls)
        let ss = -Double.expMinusOne(2 * ls), st = -Double.expMinusOne(2 * lt)
        return (r, max(0, st * st - r * r * ss * ss))
    }
}

func validateBetas(_ betaMin: Double, _ betaMax: Double) throws {
    try requireParameter(betaMin.isFinite && betaMin > 0, name: "betaMin", value: betaMin, requirement: "finite and > 0", advice: "the reference uses 0.1")
    try requireParameter(betaMax.isFinite && betaMax > betaMin, name: "betaMax", value: betaMax, requirement: "finite and > betaMin = \(betaMin)", advice: "the reference uses 20")
}

func vpLogMeanCoefficient(_ t: Double, _ b0: Double, _ b1: Double) -> Double { -0.25 * t * t * (b1 - b0) - 0.5 * t * b0 }

import Foundation
import RealModule

/// Variance-preserving SDE (DDPM): `dx = −½ β(t) x dt + √β(t) dw`, `β(t) = βmin + t (βmax − βmin)`.
///
/// Supports: every predictor (ancestral: DDPM form), both correctors.
/// Reference: Song et al. 2021, eq. (32); defaults βmin = 0.1, βmax = 20, N = 1000.
public struct VPSDE: AncestralSamplable, Equatable {
    public let betaMin: Double
    public let betaMax: Double
    public let N: Int
    public var T: Double { 1 }

    /// - Throws: `invalidArgument` unless `0 < betaMin < betaMax` (finite), `betaMax / N < 1` and `N >= 1`.
    public init(betaMin: Double = 0.1, betaMax: Double = 20, N: Int = 1000) throws {
        try validateBetas(betaMin, betaMax, N)
        self.betaMin = betaMin; self.betaMax = betaMax; self.N = N
    }

    public func beta(at t: Double) -> Double { betaMin + t * (betaMax - betaMin) }
    /// `log m(t) = −¼ t² (βmax − βmin) − ½ t βmin`.
    public func logMeanCoefficient(at t: Double) -> Double { vpLogMeanCoefficient(t, betaMin, betaMax) }

    public func driftCoefficient(at t: Double) -> Double { -0.5 * beta(at: t) }
    public func diffusion(at t: Double) -> Double { beta(at: t).squareRoot() }
    /// Std `√(1 − e^{2 log m})`, computed with `expm1` so it keeps its digits as t → 0.
    public func marginal(at t: Double) -> (meanScale: Double, std: Double) {
        let l = logMeanCoefficient(at: t)
        return (Foundation.exp(l), (-Double.expMinusOne(2 * l)).squareRoot())
    }
    public var priorStd: Double { 1 }

    /// `discrete_betas[i] = linspace(βmin/N, βmax/N, N)[i]`.
    public func discreteBeta(_ i: Int) -> Double { vpDiscreteBeta(i, betaMin, betaMax, N) }

    /// DDPM form: `f = (√α_i − 1) x`, `G = √β_i`.
    public func discretize(at t: Double) -> (driftScale: Double, G: Double) {
        let b = discreteBeta(timestep(at: t))
        return ((1 - b).squareRoot() - 1, b.squareRoot())
    }

    public func ancestralCoefficients(at t: Double) -> (xScale: Double, scoreScale: Double, noise: Double) {
        let b = discreteBeta(timestep(at: t))
        let r = 1 / (1 - b).squareRoot()
        return (r, b * r, b.squareRoot())
    }

    public func langevinAlpha(at t: Double) -> Double { 1 - discreteBeta(timestep(at: t)) }
    public func cumulativeLangevinAlpha(at t: Double) -> Double { vpCumulativeAlpha(timestep(at: t), betaMin, betaMax, N) }
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
    public let N: Int
    public var T: Double { 1 }

    public init(betaMin: Double = 0.1, betaMax: Double = 20, N: Int = 1000) throws {
        try validateBetas(betaMin, betaMax, N)
        self.betaMin = betaMin; self.betaMax = betaMax; self.N = N
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

    public func langevinAlpha(at t: Double) -> Double { 1 - vpDiscreteBeta(timestep(at: t), betaMin, betaMax, N) }
    public func cumulativeLangevinAlpha(at t: Double) -> Double { vpCumulativeAlpha(timestep(at: t), betaMin, betaMax, N) }
}

func validateBetas(_ betaMin: Double, _ betaMax: Double, _ N: Int) throws {
    try requireParameter(betaMin.isFinite && betaMin > 0, "betaMin must be a finite number > 0 (got \(betaMin)); the reference uses 0.1")
    try requireParameter(betaMax.isFinite && betaMax > betaMin, "betaMax must be finite and > betaMin = \(betaMin) (got \(betaMax)); the reference uses 20")
    try validateSteps(N)
    try requireParameter(betaMax / Double(N) < 1, "betaMax / N must be < 1 for the discrete schedule (got \(betaMax) / \(N)); use more steps")
}

func vpLogMeanCoefficient(_ t: Double, _ b0: Double, _ b1: Double) -> Double { -0.25 * t * t * (b1 - b0) - 0.5 * t * b0 }

func vpDiscreteBeta(_ i: Int, _ b0: Double, _ b1: Double, _ N: Int) -> Double {
    let lo = b0 / Double(N), hi = b1 / Double(N)
    return N == 1 ? lo : lo + (hi - lo) * Double(i) / Double(N - 1)
}

func vpCumulativeAlpha(_ i: Int, _ b0: Double, _ b1: Double, _ N: Int) -> Double {
    var s = 0.0
    for j in 0 ... i { s += Double.log(onePlus: -vpDiscreteBeta(j, b0, b1, N)) }
    return Foundation.exp(s)
}

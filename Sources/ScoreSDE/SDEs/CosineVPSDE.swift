import Foundation
import RealModule

/// Variance-preserving SDE with the cosine noise schedule of improved DDPM (Nichol & Dhariwal 2021,
/// eq. 17, s = 0.008) in continuous time: `ᾱ(t) = m(t)² = f(t)/f(0)`, `f(t) = cos²(φ(t))`,
/// `φ(t) = (t + s)/(1 + s) · π/2`, hence `β(t) = −2 d log m/dt = π tan φ(t) / (1 + s)` and
/// `dx = −½ β(t) x dt + √β(t) dw` (Song et al. 2021, eq. 32, with this β).
///
/// β diverges at `t = 1` (ᾱ = 0), so the process ends at `T < 1`: by default `T = 0.9946`, the end
/// time of DPM-Solver's continuous cosine schedule (Lu et al. 2022, `NoiseScheduleVP('cosine')`),
/// where `m(T) ≈ 8.4e-3` (linear VP with β 0.1 → 20: `m(1) ≈ 6.5e-3`); the prior is `N(0, I)`.
///
/// Supports: everything the linear ``VPSDE`` supports (every predictor including ancestral DDPM
/// steps, both correctors, the few-step samplers, the probability-flow ODE and likelihoods).
public struct CosineVPSDE: VariancePreservingSDE, Equatable {
    /// The offset `s` (0.008 in improved DDPM).
    public let s: Double
    public let T: Double

    /// - Throws: `invalidParameter` unless `s > 0` and `0 < T < 1` (finite).
    public init(s: Double = 0.008, T: Double = 0.9946) throws {
        try requireParameter(s.isFinite && s > 0 && s < 1, name: "s", value: s, requirement: "in (0, 1) (the cosine schedule's offset)", advice: "improved DDPM uses 0.008")
        try requireParameter(T.isFinite && T > 0 && T < 1, name: "T", value: T, requirement: "in (0, 1): the cosine schedule's β(t) diverges at t = 1", advice: "DPM-Solver uses 0.9946")
        self.s = s; self.T = T
    }

    func phi(_ t: Double) -> Double { (t + s) / (1 + s) * (Double.pi / 2) }

    /// `β(t) = π tan φ(t) / (1 + s)`.
    public func beta(at t: Double) -> Double { Double.pi * Foundation.tan(phi(t)) / (1 + s) }

    /// `log m(t) = log(cos φ(t) / cos φ(0))`, written as `log1p((cos φ(t) − cos φ(0))/cos φ(0))`
    /// with the difference of cosines as a product of sines (keeps its digits as t → 0).
    public func logMeanCoefficient(at t: Double) -> Double {
        let a = phi(t), b = phi(0)
        return Double.log(onePlus: -2 * Foundation.sin(0.5 * (a + b)) * Foundation.sin(0.5 * (a - b)) / Foundation.cos(b))
    }
}

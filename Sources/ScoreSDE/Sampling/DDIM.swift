import Foundation

/// DDIM (Song, Meng & Ermon 2021, eq. 12) over `t → next` for any SDE with marginal `(m, std)`:
/// with the data prediction `x0 = (x + std_t² s)/m_t` and noise `ε̂ = −std_t s`,
/// `x_next = m_n x0 + √(std_n² − c²) ε̂ + c z`, `c² = η² v std_n²/std_t²` (`v` the transition
/// variance `next → t`: DDIM's `σ_t(η)²`, which is the posterior variance of `q(x_next | x_t, x0)`).
///
/// `η = 0` is deterministic DDIM = DPM-Solver-1 (Lu et al. 2022, eq. 3.7 with k = 1) = the
/// exponential integrator of the probability flow; `η = 1` is DDPM ancestral sampling (Ho et al.
/// 2020, eq. 7; for VE: SMLD's ancestral step). A step to `t = 0` returns the data prediction.
///
/// Order: 1 (deterministic); 1 NFE per step. Time grid: any. Supports: any ``ForwardSDE`` (VE, VP,
/// sub-VP: only `m`, `std` and the transition variance are used).
public struct DDIM: Predictor {
    /// Stochasticity: 0 deterministic, 1 DDPM ancestral.
    public let eta: Double

    /// - Throws: `invalidParameter` unless `eta` is finite and `>= 0`.
    public init(eta: Double = 0) throws {
        try requireParameter(eta.isFinite && eta >= 0, name: "eta", value: eta, requirement: "finite and >= 0", advice: "0 is deterministic DDIM, 1 is DDPM ancestral sampling")
        self.eta = eta
    }

    /// `(xScale, scoreScale, noise)` of the step `t → next`: `mean = a x + b s`, `x = mean + c z`.
    public func coefficients(_ sde: some ForwardSDE, from t: Double, to next: Double) -> (xScale: Double, scoreScale: Double, noise: Double) {
        let (mt, st) = sde.noiseLevel(at: t), (mn, sn) = sde.noiseLevel(at: next)
        let v = sde.transition(from: next, to: t).variance
        let c2 = eta == 0 || st == 0 ? 0 : min(sn * sn, eta * eta * v * sn * sn / (st * st))
        let keep = (sn * sn - c2).squareRoot()
        // m_n x0 + keep ε̂ = (m_n/m_t) x + (m_n st²/m_t − keep st) s
        return (mn / mt, mn * st * st / mt - keep * st, c2.squareRoot())
    }

    public func step(_ x: inout Tensor, mean: inout Tensor, state: inout Void, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let (a, b, c) = coefficients(reverse.sde, from: t, to: next)
        let s = try reverse.score(x, at: t)
        Tensor.affineStep(&x, mean: &mean, xScale: a, score: s, scoreScale: b, noise: c, using: &rng)
    }
}

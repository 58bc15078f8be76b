import Foundation

/// How the denoising score matching loss draws its times.
public enum TrainingTimeSampling: String, Sendable, CaseIterable {
    /// `t ~ U(eps, T)` (the reference).
    case uniform
    /// `t ~ p(t) ∝ g(t)² / std(t)²` on `[eps, T]` with the loss weighted by `1 / ((T − eps) p(t))`
    /// (``LikelihoodTimeSampler``): the same expected loss as uniform times with likelihood weighting,
    /// with far lower variance. Needs likelihood weighting.
    case importance
}

/// Importance sampling of the training time for likelihood weighting λ(t) = g(t)² (Song, Durkan,
/// Murray & Ermon 2021, "Maximum likelihood training of score-based diffusion models", §5): the
/// weighted DSM integrand `g² E‖s_θ + z/std‖²` behaves like `g²/std²` (∝ 1/t near 0 for VP), so
/// drawing `t` from `p(t) ∝ g(t)²/std(t)²` makes the per-sample loss `∝ E‖std · s_θ + z‖²`, bounded.
///
/// Any ``ForwardSDE``: the density is tabulated on `cells` equal cells of `log t` over `[eps, T]`
/// (midpoint values of `t g²/std²`, smooth in `log t`), so `p` is piecewise `c_i / t`; sampling
/// inverts that distribution exactly and ``density(at:)`` is the density actually sampled, so the
/// importance weights are exact for it (the loss stays unbiased whatever the tabulation error).
///
///     let sampler = try LikelihoodTimeSampler(sde: VPSDE(), eps: 1e-5)
///     let t = sampler.time(forUniform: 0.3)                  // inverse CDF
///     let w = 1 / ((1 - 1e-5) * sampler.density(at: t))       // importance weight
public struct LikelihoodTimeSampler: Sendable {
    public let eps: Double
    public let T: Double
    let logEps: Double
    let step: Double
    /// `cdf[i]`: probability of `log t < logEps + i · step`; `cdf[0] = 0`, `cdf[cells] = 1`.
    let cdf: [Double]
    /// Density of `log t` in cell `i`.
    let logDensity: [Double]

    /// - Throws: `invalidArgument` unless `0 < eps < T` and `cells >= 1`, or when `g²/std²` is not
    ///   finite and positive on `[eps, T]`.
    public init(sde: any ForwardSDE, eps: Double, cells: Int = 4096) throws {
        try requireParameter(eps.isFinite && eps > 0 && eps < sde.T, name: "eps", value: eps, requirement: "in (0, T = \(sde.T)) (the training eps)")
        try requireParameter(cells >= 1, name: "cells", value: cells, requirement: ">= 1")
        self.eps = eps; T = sde.T
        logEps = Foundation.log(eps)
        step = (Foundation.log(sde.T) - logEps) / Double(cells)
        var mass = [Double](repeating: 0, count: cells)
        for i in 0 ..< cells {
            let t = Foundation.exp(logEps + (Double(i) + 0.5) * step)
            let g = sde.diffusion(at: t), s = sde.marginal(at: t).std
            let q = t * g * g / (s * s)
            guard q.isFinite, q > 0 else {
                throw ScoreSDEError.invalidArgument("importance sampling of t needs g(t)²/std(t)² finite and > 0 on [eps, T]; at t = \(t) it is \(q / t)")
            }
            mass[i] = q * step
        }
        let total = mass.reduce(0, +)
        var c = [Double](repeating: 0, count: cells + 1)
        for i in 0 ..< cells { c[i + 1] = c[i] + mass[i] / total }
        c[cells] = 1
        cdf = c
        let width = step
        logDensity = mass.map { $0 / (total * width) }
    }

    /// The time with CDF value `u ∈ [0, 1)` (inverse transform sampling).
    public func time(forUniform u: Double) -> Double {
        var lo = 0, hi = cdf.count - 1          // cdf[lo] <= u < cdf[hi]
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if cdf[mid] <= u { lo = mid } else { hi = mid }
        }
        let width = cdf[lo + 1] - cdf[lo]
        let frac = width > 0 ? (u - cdf[lo]) / width : 0
        let t = Foundation.exp(logEps + (Double(lo) + frac) * step)
        return Swift.min(Swift.max(t, eps), T)
    }

    /// The density `p(t)` sampled by ``time(forUniform:)`` (0 outside `[eps, T]`).
    public func density(at t: Double) -> Double {
        guard t >= eps, t <= T else { return 0 }
        let i = Swift.min(Swift.max(Int((Foundation.log(t) - logEps) / step), 0), logDensity.count - 1)
        return logDensity[i] / t
    }
}

import Foundation

/// Noise levels of a ``ForwardSDE`` used by the few-step samplers and time grids: the signal scale
/// `m(t)`, the noise std `std(t)`, the half log-SNR `λ(t) = log(m/std)` (DPM-Solver's λ; the logSNR
/// is `2λ`) and the EDM noise level `σ(t) = std/m = e^{−λ}`. Time 0 is clean data (std 0, λ = +∞),
/// the convention of ``ForwardSDE/transition(from:to:)`` (VE's σmin is noise only above t = 0).
extension ForwardSDE {
    /// `(m, std)` at `t`, with `std = 0` at `t = 0`: the signal scale `α_t` and noise level `σ_t` of
    /// DPM-Solver's notation (`x_t = α_t x₀ + σ_t ε`). What every few-step predictor of the library steps with.
    public func noiseLevel(at t: Double) -> (m: Double, std: Double) {
        let (m, s) = marginal(at: t)
        return (m, t > 0 ? s : 0)
    }

    /// Half log-SNR `λ(t) = log(m(t)/std(t))` (+∞ at t = 0). Decreasing in `t` for VE, VP and sub-VP.
    public func halfLogSNR(at t: Double) -> Double {
        let (m, s) = noiseLevel(at: t)
        return s > 0 ? Foundation.log(m) - Foundation.log(s) : .infinity
    }

    /// The time in `[lo, hi]` where `λ(t) = target`, by bisection (λ decreasing; no closed form needed).
    /// Clamps to the ends when the target lies outside.
    public func time(atHalfLogSNR target: Double, in lo: Double, _ hi: Double) -> Double {
        var a = lo, b = hi
        if target >= halfLogSNR(at: a) { return a }
        if target <= halfLogSNR(at: b) { return b }
        for _ in 0 ..< 200 {
            let c = 0.5 * (a + b)
            guard c > a && c < b else { break }
            if halfLogSNR(at: c) > target { a = c } else { b = c }
        }
        return 0.5 * (a + b)
    }
}

/// Data prediction (Tweedie's formula; DPM-Solver++'s `x_θ`): `x0 = (x + std² s)/m` written into
/// `out` (reshaped if needed, so a step can reuse one buffer). `m`, `std` are
/// ``ForwardSDE/noiseLevel(at:)`` at the time `s` was scored. The library's DPM-Solver++, UniPC,
/// DDIM and Tweedie denoising compute it with this function.
///
///     let (m, std) = reverse.sde.noiseLevel(at: t)
///     dataPrediction(x, score: try reverse.score(x, at: t), m: m, std: std, into: &x0)
public func dataPrediction(_ x: Tensor, score s: Tensor, m: Double, std: Double, into out: inout Tensor) {
    if out.shape != x.shape { out = Tensor(zeros: x.shape) }
    let a = 1 / m, b = std * std / m
    let n = x.count
    x.values.withUnsafeBufferPointer { xp in
        s.values.withUnsafeBufferPointer { sp in
            out.values.withUnsafeMutableBufferPointer { op in
                guard let xb = xp.baseAddress, let sb = sp.baseAddress, let ob = op.baseAddress else { return }
                Parallel.forEachChunk(n, grain: 1 << 14) { r in for i in r { ob[i] = a * xb[i] + b * sb[i] } }
            }
        }
    }
}

import Foundation

/// Noise levels of a ``ForwardSDE`` used by the few-step samplers and time grids: the signal scale
/// `m(t)`, the noise std `std(t)`, the half log-SNR `λ(t) = log(m/std)` (DPM-Solver's λ; the logSNR
/// is `2λ`) and the EDM noise level `σ(t) = std/m = e^{−λ}`. Time 0 is clean data (std 0, λ = +∞),
/// the convention of ``ForwardSDE/transition(from:to:)`` (VE's σmin is noise only above t = 0).
extension ForwardSDE {
    /// `(m, std)` at `t`, with `std = 0` at `t = 0`.
    func noiseLevel(at t: Double) -> (m: Double, std: Double) {
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

/// Data prediction (Tweedie): `x0 = (x + std² s)/m` written into `out` (reshaped if needed).
func dataPrediction(_ x: Tensor, score s: Tensor, m: Double, std: Double, into out: inout Tensor) {
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

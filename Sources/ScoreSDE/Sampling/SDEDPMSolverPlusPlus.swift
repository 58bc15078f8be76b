import Foundation

/// SDE-DPM-Solver++ (Lu et al. 2022, "DPM-Solver++", §5 / App. B, the stochastic variant; the
/// `sde-dpmsolver++` of the authors' and diffusers' code) in data-prediction form, stepping in the
/// half log-SNR `λ = log(m/std)`. With `h = λ_next − λ_t` and the data prediction `x0`:
/// - order 1: `x_n = (std_n/std_t) e^{−h} x + m_n (1 − e^{−2h}) x0 + std_n √(1 − e^{−2h}) z`
///   (= DDIM with η = 1 = the DDPM posterior step with `x0` plugged in);
/// - order 2 (2M, "midpoint"): `x0` replaced by `x0 + ½ (x0 − x0₋₁)/r`, `r = (λ_t − λ₋₁)/h`.
///
/// Step `i` uses order `min(order, i + 1)`; a step to `t = 0` returns the data prediction. The
/// noise-free part goes into `mean` (the final denoising of ``FinalDenoising/lastPredictorMean``).
///
/// Order: strong order 1 in the noise, the drift's data-prediction extrapolation second order;
/// 1 NFE per step. Time grid: any (the reference uses uniform logSNR). Supports: any
/// ``ForwardSDE`` (VE, VP, sub-VP: only `m(t)` and `std(t)` are used).
public struct SDEDPMSolverPlusPlus: Predictor {
    public let order: Int
    /// Applied to every data prediction (nil: none).
    public let threshold: DynamicThresholding?

    public struct History: Sendable {
        var previous: Tensor?
        var previousLambda = 0.0
        /// The prediction before `previous`, reused as the next step's buffer (no allocation per step).
        var spare: Tensor?
    }

    /// - Throws: `invalidParameter` unless `order` is 1 or 2.
    public init(order: Int = 2, threshold: DynamicThresholding? = nil) throws {
        try requireParameter((1 ... 2).contains(order), name: "order", value: order, requirement: "1 or 2", advice: "SDE-DPM-Solver++ has orders 1 and 2")
        self.order = order; self.threshold = threshold
    }

    public func makeState(for x: Tensor) -> History { History() }

    public func step(_ x: inout Tensor, mean: inout Tensor, state: inout History, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let sde = reverse.sde
        let (mt, st) = sde.noiseLevel(at: t), (mn, sn) = sde.noiseLevel(at: next)
        var x0 = state.spare ?? Tensor(zeros: x.shape)
        state.spare = nil
        dataPrediction(x, score: try reverse.score(x, at: t), m: mt, std: st, into: &x0)
        threshold?.apply(&x0)
        let lt = sde.halfLogSNR(at: t)
        if sn == 0 {
            mean.assign(x0, scaledBy: mn)
            x.assign(mean)
        } else {
            let h = sde.halfLogSNR(at: next) - lt
            let decay = Foundation.exp(-h), keep = -Foundation.expm1(-2 * h)   // e^{−h}, 1 − e^{−2h}
            var terms: [(Tensor, Double)] = [(x0, mn * keep)]
            if order == 2, let previous = state.previous {
                let r = (lt - state.previousLambda) / h
                terms = [(x0, mn * keep * (1 + 0.5 / r)), (previous, -mn * keep * 0.5 / r)]
            }
            mean.setLinearCombination(x, scale: sn / st * decay, terms)
            x.assign(mean)
            x.addStandardNormal(scaledBy: sn * keep.squareRoot(), using: &rng)
        }
        state.spare = state.previous
        state.previous = x0; state.previousLambda = lt
    }
}

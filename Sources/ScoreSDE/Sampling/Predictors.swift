/// Euler–Maruyama on the reverse SDE: `mean = x + f̄(x,t) Δt`, `x = mean + g(t) √|Δt| z`
/// with `Δt = next − t < 0`.
///
/// Order: strong 0.5, weak 1. Time grid: any. Supports: any `ForwardSDE`.
/// `probabilityFlow: true` gives Euler on the probability-flow ODE (no noise).
/// Reference: score_sde `EulerMaruyamaPredictor`, which uses `Δt = −1/N` whatever the grid;
/// here `Δt` is the actual interval (`−(T − eps)/N` on the uniform grid).
public struct EulerMaruyama: Predictor {
    public var probabilityFlow: Bool
    public init(probabilityFlow: Bool = false) { self.probabilityFlow = probabilityFlow }

    public func step(_ x: inout Tensor, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws -> Tensor {
        let dt = next - t
        let s = try reverse.score(x, at: t)
        let g = reverse.sde.diffusion(at: t)
        // x + (a x − k g² s) dt, k = 1 (SDE) or ½ (probability flow)
        let k = probabilityFlow ? 0.5 : 1
        return Tensor.affineStep(&x, xScale: 1 + reverse.sde.driftCoefficient(at: t) * dt, score: s,
                                 scoreScale: -k * g * g * dt,
                                 noise: probabilityFlow ? 0 : g * (-dt).squareRoot(), using: &rng)
    }
}

/// Reverse diffusion: the forward SDE's discrete form `x_{i+1} = x_i + f_i(x_i) + G_i z` run
/// backwards, `mean = x − f_i(x) + G_i² s`, `x = mean + G_i z` (SMLD form for VE, DDPM form for VP,
/// Euler–Maruyama form otherwise).
///
/// Order: strong 0.5. Time grid: the SDE's own discretization (index `⌊t (N−1)/T⌋`).
/// Supports: any `ForwardSDE`. Reference: Song et al. 2021, eq. (46)–(47); score_sde
/// `ReverseDiffusionPredictor`.
public struct ReverseDiffusion: Predictor {
    public var probabilityFlow: Bool
    public init(probabilityFlow: Bool = false) { self.probabilityFlow = probabilityFlow }

    public func step(_ x: inout Tensor, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws -> Tensor {
        let (f, G) = reverse.sde.discretize(at: t)
        let s = try reverse.score(x, at: t)
        return Tensor.affineStep(&x, xScale: 1 - f, score: s, scoreScale: (probabilityFlow ? 0.5 : 1) * G * G,
                                 noise: probabilityFlow ? 0 : G, using: &rng)
    }
}

/// Ancestral sampling with the SDE's discrete schedule: SMLD for VE
/// (`mean = x + (σ_i² − σ_{i−1}²) s`), DDPM for VP (`mean = (x + β_i s)/√(1 − β_i)`).
///
/// Order: as the discrete chain. Supports: `AncestralSamplable` SDEs only (VE, VP) — checked at
/// compile time: `AncestralSampling(for: SubVPSDE(...))` does not build.
/// Reference: Song et al. 2021, App. F; score_sde `AncestralSamplingPredictor`.
public struct AncestralSampling<SDE: AncestralSamplable>: Predictor {
    public let schedule: SDE
    public init(for sde: SDE) { schedule = sde }

    public func step(_ x: inout Tensor, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws -> Tensor {
        let (a, b, c) = schedule.ancestralCoefficients(at: t)
        let s = try reverse.score(x, at: t)
        return Tensor.affineStep(&x, xScale: a, score: s, scoreScale: b, noise: c, using: &rng)
    }
}

/// Euler–Maruyama on the reverse SDE: `mean = x + f̄(x,t) Δt`, `x = mean + g(t) √|Δt| z`
/// with `Δt = next − t < 0`.
///
/// Order: strong 0.5, weak 1; 1 NFE per step. Time grid: any. Supports: any `ForwardSDE`.
/// `probabilityFlow: true` gives Euler on the probability-flow ODE (no noise).
/// Reference: score_sde `EulerMaruyamaPredictor`, which uses `Δt = −1/N` whatever the grid;
/// here `Δt` is the actual interval (`−(T − eps)/(N − 1)` on the uniform grid); `.reference(N)`
/// reproduces the reference's `−T/N`.
public struct EulerMaruyama: Predictor {
    public var probabilityFlow: Bool
    public var coefficients: StepCoefficients
    public init(probabilityFlow: Bool = false, coefficients: StepCoefficients = .interval) {
        self.probabilityFlow = probabilityFlow; self.coefficients = coefficients
    }

    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws { try coefficients.validate(grid: grid, sde: sde) }

    public func step(_ x: inout Tensor, mean: inout Tensor, state: inout Void, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let dt: Double
        switch coefficients {
        case .interval: dt = next - t
        case .reference(let r): dt = -reverse.sde.T / Double(r.steps)
        }
        let s = try reverse.score(x, at: t)
        let g = reverse.sde.diffusion(at: t)
        // x + (a x − k g² s) dt, k = 1 (SDE) or ½ (probability flow)
        let k = probabilityFlow ? 0.5 : 1
        Tensor.affineStep(&x, mean: &mean, xScale: 1 + reverse.sde.driftCoefficient(at: t) * dt, score: s,
                          scoreScale: -k * g * g * dt, noise: probabilityFlow ? 0 : g * (-dt).squareRoot(), using: &rng)
    }
}

/// Reverse diffusion: the forward transition over the interval, `x_t = r x_next + √v z`, run
/// backwards: `mean = (2 − r) x + v s`, `x = mean + √v z` (`r`, `v` from `sde.transition(from: next,
/// to: t)`; `probabilityFlow` halves `v s` and drops the noise). On the reference's grid this is its
/// SMLD form for VE (`v = σ_i² − σ_{i−1}²`) and, to first order in the step, its DDPM form for VP.
///
/// Order: strong 0.5; 1 NFE per step. Time grid: any (`.reference(N)`: the reference's own only).
/// Supports: any `ForwardSDE`. Reference: Song et al. 2021, eq. (46)–(47); score_sde
/// `ReverseDiffusionPredictor`.
public struct ReverseDiffusion: Predictor {
    public var probabilityFlow: Bool
    public var coefficients: StepCoefficients
    public init(probabilityFlow: Bool = false, coefficients: StepCoefficients = .interval) {
        self.probabilityFlow = probabilityFlow; self.coefficients = coefficients
    }

    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws { try coefficients.validate(grid: grid, sde: sde) }

    public func step(_ x: inout Tensor, mean: inout Tensor, state: inout Void, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let f: Double, G2: Double, G: Double
        switch coefficients {
        case .interval:
            let (r, v) = reverse.sde.transition(from: next, to: t)
            f = r - 1; G2 = v; G = v.squareRoot()
        case .reference(let tables):
            (f, G) = tables.discretize(reverse.sde, at: t)
            G2 = G * G
        }
        let s = try reverse.score(x, at: t)
        Tensor.affineStep(&x, mean: &mean, xScale: 1 - f, score: s, scoreScale: (probabilityFlow ? 0.5 : 1) * G2,
                          noise: probabilityFlow ? 0 : G, using: &rng)
    }
}

/// Ancestral sampling: SMLD for VE (`mean = x + (σ² − σ'²) s`, noise `√(σ'²(σ² − σ'²)/σ²)`), DDPM for
/// VP (`mean = (x + β s)/√(1 − β)`, noise `√β`, with the interval's `β = 1 − (m(t)/m(next))²`).
///
/// Order: as the discrete chain; 1 NFE per step. Time grid: any (`.reference(N)`: the reference's
/// own only). Supports: `AncestralSamplable` SDEs only (VE, VP) — checked at compile time:
/// `AncestralSampling(for: SubVPSDE(...))` does not build.
/// Reference: Song et al. 2021, App. F; Ho et al. 2020, Alg. 2; score_sde `AncestralSamplingPredictor`.
public struct AncestralSampling<SDE: AncestralSamplable>: Predictor {
    public let schedule: SDE
    public var coefficients: StepCoefficients
    public init(for sde: SDE, coefficients: StepCoefficients = .interval) {
        schedule = sde; self.coefficients = coefficients
    }

    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws { try coefficients.validate(grid: grid, sde: schedule) }

    public func step(_ x: inout Tensor, mean: inout Tensor, state: inout Void, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let (a, b, c): (Double, Double, Double)
        switch coefficients {
        case .interval: (a, b, c) = schedule.ancestralCoefficients(from: t, to: next)
        case .reference(let tables): (a, b, c) = tables.ancestralCoefficients(schedule, at: t)
        }
        let s = try reverse.score(x, at: t)
        Tensor.affineStep(&x, mean: &mean, xScale: a, score: s, scoreScale: b, noise: c, using: &rng)
    }
}

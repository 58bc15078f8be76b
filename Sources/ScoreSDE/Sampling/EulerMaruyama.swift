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

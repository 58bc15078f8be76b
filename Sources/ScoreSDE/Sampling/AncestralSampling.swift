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

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

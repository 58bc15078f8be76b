/// Annealed Langevin dynamics (NCSN/NCSNv2): step `ε = 2 α (r σ(t))²` from the analytic marginal
/// std instead of observed norms; `x ← x + ε s + √(2ε) z`, `steps` times.
///
/// Supports: any `ForwardSDE`. Reference: Song & Ermon 2019; score_sde `AnnealedLangevinDynamics`.
public struct AnnealedLangevin: Corrector {
    public var snr: Double
    public var steps: Int
    public var alpha: LangevinAlpha
    public var coefficients: StepCoefficients

    public init(snr: Double = 0.16, steps: Int = 1, alpha: LangevinAlpha = .perStep, coefficients: StepCoefficients = .interval) throws {
        try requireParameter(snr.isFinite && snr > 0, name: "snr", value: snr, requirement: "finite and > 0")
        try requireParameter(steps >= 1, name: "steps", value: steps, requirement: ">= 1 (corrector steps)", advice: "use NoCorrector for none")
        self.snr = snr; self.steps = steps; self.alpha = alpha; self.coefficients = coefficients
    }

    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws { try coefficients.validate(grid: grid, sde: sde) }

    public func correct(_ x: inout Tensor, at t: Double, next: Double, along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let a = alpha.value(reverse.sde, at: t, next: next, coefficients: coefficients)
        let std = reverse.sde.marginal(at: t).std
        let eps = 2 * a * (snr * std) * (snr * std)
        for _ in 0 ..< steps {
            let s = try reverse.score(x, at: t)
            // The step's noise-free mean is not needed: write it into the reusable scratch buffer
            // instead of allocating a batch-sized tensor per step.
            reverse.withScratch { m in
                Tensor.affineStep(&x, mean: &m, xScale: 1, score: s, scoreScale: eps, noise: (2 * eps).squareRoot(), using: &rng)
            }
        }
    }
}

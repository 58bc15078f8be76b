/// How a Langevin corrector turns observed norms into one step size.
public enum LangevinNorms: String, Sendable, CaseIterable {
    /// Mean of `‖s‖` and `‖z‖` over the whole population being sampled (score_sde; the population,
    /// not the score-evaluation chunk, so the batch split never changes results).
    case populationMean
    /// Per sample, with `‖z‖` replaced by `√d` as the paper suggests for small batches.
    case perSample
}

/// Which `α` scales the Langevin step for VP / sub-VP (1 for VE either way).
public enum LangevinAlpha: String, Sendable, CaseIterable {
    /// `α = 1 − β_i` (score_sde's code, used for the paper's results); from the interval `t → next`:
    /// `(m(t)/m(next))²`, the interval's `1 − β`.
    case perStep
    /// `α = ∏_{j≤i}(1 − β_j)` (the paper's Algorithm 5); from the interval: `m(t)²`.
    case cumulative

    /// `α` at `t` for the interval `t → next`.
    func value(_ sde: some ForwardSDE, at t: Double, next: Double, coefficients: StepCoefficients) -> Double {
        switch (self, coefficients) {
        case (.perStep, .interval): return sde.transition(from: next, to: t).scale.squared
        case (.cumulative, .interval): return sde.marginal(at: t).meanScale.squared
        case (.perStep, .reference(let r)): return r.langevinAlpha(sde, at: t)
        case (.cumulative, .reference(let r)): return r.cumulativeLangevinAlpha(sde, at: t)
        }
    }
}

extension Double {
    var squared: Double { self * self }
}

/// Langevin MCMC corrector with signal-to-noise-ratio step size:
/// `ε = 2 α (r ‖z‖ / ‖s‖)²`, `x ← x + ε s + √(2ε) z`, `steps` times at fixed `t`.
///
/// Supports: any `ForwardSDE`. Reference: Song et al. 2021, Algorithms 4–5; score_sde
/// `LangevinCorrector` (typical `snr` 0.05–0.2; 0.16 for VE PC1000).
public struct Langevin: Corrector {
    public var snr: Double
    public var steps: Int
    public var norms: LangevinNorms
    public var alpha: LangevinAlpha
    public var coefficients: StepCoefficients

    public init(snr: Double = 0.16, steps: Int = 1, norms: LangevinNorms = .populationMean, alpha: LangevinAlpha = .perStep,
                coefficients: StepCoefficients = .interval) throws {
        try requireParameter(snr.isFinite && snr > 0, name: "snr", value: snr, requirement: "finite and > 0", advice: "typical values are 0.05–0.2")
        try requireParameter(steps >= 1, name: "steps", value: steps, requirement: ">= 1 (corrector steps)", advice: "use NoCorrector for none")
        self.snr = snr; self.steps = steps; self.norms = norms; self.alpha = alpha; self.coefficients = coefficients
    }

    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws { try coefficients.validate(grid: grid, sde: sde) }

    public func correct(_ x: inout Tensor, at t: Double, next: Double, along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let a = alpha.value(reverse.sde, at: t, next: next, coefficients: coefficients)
        for _ in 0 ..< steps {
            let s = try reverse.score(x, at: t)
            switch norms {
            case .populationMean:
                // z, ‖s‖ and ‖z‖ in one fused pass into a reused buffer (same bits as
                // `s.rowNorms().mean()`, `z.rowNorms().mean()`). When the population is split across
                // processes, the means are over the whole population (gathered in row order).
                try reverse.withScratch { z in
                    var (gn, zn) = Tensor.langevinNoise(&z, score: s, using: &rng)
                    if reverse.populationIsSplit {
                        let m = try reverse.populationMeans([s.rowNorms(), z.rowNorms()])
                        (gn, zn) = (m[0], m[1])
                    }
                    let r = snr * zn / gn
                    let eps = gn > 0 ? 2 * a * r * r : 0
                    x.add(s, scaledBy: eps, z, scaledBy: (2 * eps).squareRoot())
                }
            case .perSample:
                let draw = rng.nextDraw()
                reverse.withScratch { z in   // the noise in a reused buffer, not a new batch per step
                    if z.shape != x.shape { z = Tensor(zeros: x.shape) }
                    z.fillStandardNormal(draw: draw, rng)
                    let d = Double(x.rowSize)
                    let eps = s.rowNorms().map { gn in gn > 0 ? 2 * a * (snr * d.squareRoot() / gn) * (snr * d.squareRoot() / gn) : 0 }
                    x.add(s, rowScales: eps)
                    x.add(z, rowScales: eps.map { (2 * $0).squareRoot() })
                }
            }
        }
    }
}

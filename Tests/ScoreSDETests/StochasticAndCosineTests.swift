import Foundation
import Testing
@testable import ScoreSDE

// Issue 10's stochastic samplers and the cosine schedule, against closed forms written here.

/// Improved DDPM's cosine schedule (Nichol & Dhariwal 2021, eq. 17) from its definition:
/// ᾱ(t) = cos²(φ(t))/cos²(φ(0)), φ(t) = (t + s)/(1 + s) π/2, s = 0.008.
enum CosineTruth {
    static let s = 0.008
    static func phi(_ t: Double) -> Double { (t + s) / (1 + s) * Double.pi / 2 }
    static func alphaBar(_ t: Double) -> Double { let r = cos(phi(t)) / cos(phi(0)); return r * r }
    /// 1 − ᾱ = (cos²φ0 − cos²φt)/cos²φ0 = sin(φt − φ0) sin(φt + φ0)/cos²φ0 (no cancellation).
    static func oneMinusAlphaBar(_ t: Double) -> Double {
        sin(phi(t) - phi(0)) * sin(phi(t) + phi(0)) / (cos(phi(0)) * cos(phi(0)))
    }
    static func marginal(_ t: Double) -> (m: Double, std: Double) { (alphaBar(t).squareRoot(), oneMinusAlphaBar(t).squareRoot()) }
}

@Suite("Cosine noise schedule (improved DDPM) as a VP SDE")
struct CosineScheduleTests {
    /// Measured (200 000 samples): max |Δweight| 0.0007, max |Δmean| 0.0009, pooled variance +0.77%
    /// (1σ 0.0011, 0.0013, 0.0022); allowance = measured + 2σ, rounded up.
    static let cosineAncestralBias = BiasAllowance(weight: 0.003, mean: 0.004, variance: 0.013)

    @Test("marginals, transition and the SDE coefficients match the closed form")
    func marginals() throws {
        let sde = try CosineVPSDE()
        #expect(sde.T == 0.9946 && sde.s == 0.008 && sde.priorStd == 1)
        for t in [1e-6, 1e-4, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.9946] {
            let (m, sd) = sde.marginal(at: t), (em, es) = CosineTruth.marginal(t)
            #expect(abs(m / em - 1) <= 1e-13, "m(\(t)) \(m) vs \(em)")
            #expect(abs(sd / es - 1) <= 1e-10, "std(\(t)) \(sd) vs \(es)")
            // β(t) = −d log ᾱ/dt (central difference of the closed form, relative error ≲ (h/(π/2 − φ))²
            // ≈ 4e-6 at T), f = −β/2, g² = β.
            let h = 1e-5
            let beta = -(log(CosineTruth.alphaBar(t + h)) - log(CosineTruth.alphaBar(t - h))) / (2 * h)
            if t > h {
                #expect(abs(sde.beta(at: t) / beta - 1) <= 2e-5, "beta(\(t)) \(sde.beta(at: t)) vs \(beta)")
                #expect(abs(sde.driftCoefficient(at: t) + 0.5 * beta) <= 2e-5 * beta)
                #expect(abs(sde.diffusion(at: t) * sde.diffusion(at: t) / beta - 1) <= 2e-5)
            }
            // VP identity for a linear-drift SDE: d std²/dt = 2 f std² + g² (here std² = 1 − ᾱ).
            if t > 1e-3 && t < 0.99 {
                let ds2 = (CosineTruth.oneMinusAlphaBar(t + h) - CosineTruth.oneMinusAlphaBar(t - h)) / (2 * h)
                let rhs = 2 * sde.driftCoefficient(at: t) * es * es + sde.diffusion(at: t) * sde.diffusion(at: t)
                #expect(abs(ds2 - rhs) <= 1e-6 * max(1, abs(ds2)) + 1e-9, "d std²/dt at \(t): \(ds2) vs \(rhs)")
            }
        }
        for (a, b) in [(0.1, 0.2), (1e-3, 0.5), (0.5, 0.9946), (0.3, 0.30001)] {
            let (r, v) = sde.transition(from: a, to: b)
            let er = CosineTruth.marginal(b).m / CosineTruth.marginal(a).m
            #expect(abs(r / er - 1) <= 1e-12)
            #expect(abs(v - (1 - er * er)) <= 1e-12 * max(1e-3, 1 - er * er) * 10, "transition \(a)→\(b): \(v) vs \(1 - er * er)")
        }
        #expect(invalidParameterText { _ = try CosineVPSDE(T: 1) }?.contains("diverges") == true)
        #expect(invalidParameterText { _ = try CosineVPSDE(s: 0) }?.contains("0.008") == true)
    }

    /// The exact score of a 2-D mixture with diagonal stds diffused by the cosine SDE against the
    /// gradient (central differences) of its log density written here from ᾱ(t).
    @Test("the exact mixture score under the cosine schedule")
    func mixtureScore() throws {
        let sde = try CosineVPSDE()
        let w = [0.7, 0.3], mu = [[1.0, -2.0], [-1.5, 0.5]], sd = [[0.3, 0.6], [0.8, 0.2]]
        let mixture = try GaussianMixture(weights: w, means: mu, stds: sd)
        let score = GaussianMixtureScore(mixture, diffusedBy: sde)
        func logp(_ x: [Double], _ t: Double) -> Double {
            let (m, s) = CosineTruth.marginal(t)
            var p = 0.0
            for k in 0 ..< 2 {
                var q = w[k]
                for j in 0 ..< 2 {
                    let v = m * m * sd[k][j] * sd[k][j] + s * s
                    q *= exp(-0.5 * (x[j] - m * mu[k][j]) * (x[j] - m * mu[k][j]) / v) / (2 * Double.pi * v).squareRoot()
                }
                p += q
            }
            return log(p)
        }
        var rng = RandomSource(seed: 4)
        let x = Tensor.standardNormal(shape: [20, 2], using: &rng).scaled(by: 1.5)
        for t in [1e-3, 0.05, 0.3, 0.7, 0.99] {
            let s = try score.score(x, at: t)
            let lp = try score.logDensity(x, at: t)
            for r in 0 ..< x.rows {
                let row = x.row(r)
                #expect(abs(lp[r] - logp(row, t)) <= 1e-10 * max(1, abs(lp[r])))
                for j in 0 ..< 2 {
                    let h = 1e-5
                    var a = row, b = row
                    a[j] += h; b[j] -= h
                    let g = (logp(a, t) - logp(b, t)) / (2 * h)
                    #expect(abs(s.storage[r * 2 + j] - g) <= 1e-5 * max(1, abs(g)), "t \(t) row \(r) coord \(j): \(s.storage[r * 2 + j]) vs \(g)")
                }
            }
        }
    }

    /// Samplers on the cosine SDE: the few-step samplers converge to the affine flow map of Gaussian
    /// data; DDPM ancestral sampling recovers a mixture; the likelihood ODE gives the exact log density.
    @Test("samplers and the likelihood run on the cosine schedule")
    func samplers() throws {
        let sde = try CosineVPSDE(), eps = 1e-3
        let mu = [1.0, -0.5], s0 = 0.5
        let data = try GaussianMixture(means: [mu], isotropicStds: [s0])
        let gaussScore = GaussianMixtureScore(data, diffusedBy: sde)
        var rng = RandomSource(seed: 6)
        let z = Tensor.standardNormal(shape: [100, 2], using: &rng)
        func V(_ t: Double) -> Double { let (m, s) = CosineTruth.marginal(t); return m * m * s0 * s0 + s * s }
        let k = (V(eps) / V(sde.T)).squareRoot(), me = CosineTruth.marginal(eps).m, mT = CosineTruth.marginal(sde.T).m
        func mapError(_ steps: Int) throws -> Double {
            let grid = try TimeGrid.spaced(.logSNR, steps: steps, from: sde.T, to: eps, sde: sde)
            var integrator = try ReverseIntegrator(sde: sde, score: gaussScore, grid: grid, predictor: try UniPC(order: 2),
                                                   corrector: NoCorrector(), denoising: .none, start: z, rng: rng)
            let out = try integrator.solve().samples
            var se = 0.0
            for r in 0 ..< z.rows { for j in 0 ..< 2 {
                let d = out.storage[r * 2 + j] - (me * mu[j] + k * (z.storage[r * 2 + j] - mT * mu[j])); se += d * d
            } }
            return (se / Double(z.count)).squareRoot()
        }
        let e16 = try mapError(16), e32 = try mapError(32), e64 = try mapError(64)
        #expect(e64 < 1e-3 && log2(e16 / e32) > 2 && log2(e32 / e64) > 2, "UniPC-2 on cosine: errors \(e16), \(e32), \(e64)")

        // DDPM ancestral sampling, 500 steps, on a two-mode mixture: weights, means, covariances.
        let mixture = try GaussianMixture(weights: [0.7, 0.3], means: [[2, 0], [-2, 1]], isotropicStds: [0.3, 0.5])
        let (m, s) = sde.marginal(at: eps)
        let target = mixture.diffused(meanScale: m, std: s)
        let pc = PCSampler(sde: sde, score: GaussianMixtureScore(mixture, diffusedBy: sde),
                           grid: try .uniform(steps: 500, from: sde.T, to: eps), predictor: AncestralSampling(for: sde),
                           corrector: NoCorrector(), denoising: .none)
        var r2 = RandomSource(seed: 9)
        let out = try pc.sample(count: measureBias ? 200_000 : 8000, using: &r2)
        reportBias(out.samples, target, "ancestral on cosine, 500 steps")
        // Allowances: the bias measured with 200 000 samples (SCORESDE_MEASURE_BIAS=1, seed 9; 1σ of
        // that measurement: 0.0011 on a weight, 0.0013 on a mean, 0.0032 on the pooled variance)
        // plus 2σ of it, rounded up: see cosineAncestralBias.
        expectMatches(out.samples, target, bias: Self.cosineAncestralBias, "ancestral on cosine")

        // Exact-divergence likelihood against the closed-form log density at eps.
        var r3 = RandomSource(seed: 10)
        let x = mixture.sample(count: 16, using: &r3)
        let mixScore = GaussianMixtureScore(mixture, diffusedBy: sde)
        let ll = Likelihood(sde: sde, score: mixScore, estimator: .exact, eps: eps,
                            solver: ODESolverOptions(.rk8pd, absoluteTolerance: 1e-9, relativeTolerance: 1e-9),
                            terminalLogDensity: { try mixScore.logDensity($0, at: sde.T) })
        let result = try ll.evaluate(x, using: &r3)
        let truth = try mixScore.logDensity(x, at: eps)
        for i in 0 ..< x.rows { #expect(abs(result.logLikelihood[i] - truth[i]) <= 1e-5, "log p \(result.logLikelihood[i]) vs \(truth[i])") }
    }
}

@Suite("SDE-DPM-Solver++ (stochastic, data prediction)")
struct SDEDPMSolverTests {
    static let mu = [1.0, -0.5], sigma0 = 0.5

    /// Order 1 is DDIM with η = 1 (Lu et al. 2022): the same noise gives the same samples.
    @Test("order 1 equals DDIM with eta 1")
    func orderOneIsDDPM() throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(GaussianMixture.ring(), diffusedBy: sde)
        let grid = try TimeGrid.spaced(.logSNR, steps: 12, from: 1, to: 1e-3, sde: sde)
        func run<P: Predictor>(_ p: P) throws -> Tensor {
            var rng = RandomSource(seed: 3)
            return try PCSampler(sde: sde, score: score, grid: grid, predictor: p, corrector: NoCorrector(), denoising: .none)
                .sample(count: 500, using: &rng).samples
        }
        let a = try run(try SDEDPMSolverPlusPlus(order: 1)), b = try run(try DDIM(eta: 1))
        let diff = zip(a.storage, b.storage).map { abs($0 - $1) }.max()!
        #expect(diff <= 1e-9, "max difference \(diff)")
    }

    /// 2M on Gaussian data N(μ, σ0² I): the chain is affine in (x, previous data prediction) with
    /// Gaussian noise, so its output mean and variance are propagated exactly here from the paper's
    /// update; 20 000 samples within 5 standard errors. And with enough steps the chain's marginal
    /// is the true one at eps.
    @Test("2M has the exact marginal of its chain on Gaussian data", arguments: [6, 25])
    func twoMMarginal(steps: Int) throws {
        let sde = try VPSDE(), eps = 1e-3, n = 20000
        let grid = try TimeGrid.spaced(.logSNR, steps: steps, from: 1, to: eps, sde: sde)
        let score = GaussianMixtureScore(try GaussianMixture(means: [Self.mu], isotropicStds: [Self.sigma0]), diffusedBy: sde)
        var rng = RandomSource(seed: 31)
        let run = try PCSampler(sde: sde, score: score, grid: grid, predictor: try SDEDPMSolverPlusPlus(order: 2),
                                corrector: NoCorrector(), denoising: .none).sample(count: n, using: &rng)
        #expect(run.scoreEvaluations == steps)
        // Per coordinate: state (x, d₋₁) with means (mx, md) and covariance [[vxx, vxd], [vxd, vdd]].
        var mx = [0.0, 0.0], md = [0.0, 0.0], vxx = 1.0, vxd = 0.0, vdd = 0.0
        var lambdaPrev = 0.0, first = true
        for (t, next) in grid.intervals {
            let (mt, st) = ChainSDE.vp.marginal(t), (mn, sn) = ChainSDE.vp.marginal(next)
            let lt = log(mt / st), h = log(mn / sn) - lt
            let V = mt * mt * Self.sigma0 * Self.sigma0 + st * st
            // Data prediction of the exact score s = −(x − m μ)/V: d = p x + q μ.
            let p = (1 - st * st / V) / mt, q = st * st / V
            let keep = 1 - exp(-2 * h)
            let a = sn / st * exp(-h)
            let (c0, c1) = first ? (mn * keep, 0.0) : { let r = (lt - lambdaPrev) / h; return (mn * keep * (1 + 0.5 / r), -mn * keep * 0.5 / r) }()
            let noise2 = sn * sn * keep
            // x' = (a + c0 p) x + c1 d₋₁ + c0 q μ + noise; d = p x + q μ.
            let A = a + c0 * p
            let nvxx = A * A * vxx + 2 * A * c1 * vxd + c1 * c1 * vdd + noise2
            let nvxd = p * (A * vxx + c1 * vxd)
            let nvdd = p * p * vxx
            for j in 0 ..< 2 {
                let d = p * mx[j] + q * Self.mu[j]
                mx[j] = A * mx[j] + c1 * md[j] + c0 * q * Self.mu[j]
                md[j] = d
            }
            (vxx, vxd, vdd) = (nvxx, nvxd, nvdd)
            lambdaPrev = lt; first = false
        }
        var pooled = 0.0
        for j in 0 ..< 2 {
            let mo = Moments((0 ..< n).map { run.samples.storage[$0 * 2 + j] })
            #expect(abs(mo.mean - mx[j]) <= zBound * (vxx / Double(n)).squareRoot(), "coord \(j): mean \(mo.mean) vs \(mx[j])")
            pooled += mo.variance / 2
        }
        #expect(abs(pooled - vxx) <= zBound * vxx * (2.0 / Double(2 * n - 2)).squareRoot(), "variance \(pooled) vs \(vxx)")
        if steps == 25 {   // and the chain itself is close to the true marginal N(m μ, V(eps))
            let (me, se) = ChainSDE.vp.marginal(eps)
            let v = me * me * Self.sigma0 * Self.sigma0 + se * se
            #expect(abs(vxx / v - 1) < 0.05 && abs(mx[0] - me * Self.mu[0]) < 0.01, "chain variance \(vxx) vs \(v), mean \(mx[0])")
        }
    }

    @Test("bad parameters are refused")
    func badInput() {
        #expect(invalidParameterText { _ = try SDEDPMSolverPlusPlus(order: 3) }?.contains("orders 1 and 2") == true)
    }
}

@Suite("Adaptive SDE solver (Gotta Go Fast)")
struct AdaptiveSDETests {
    /// Measured (100 000 samples, seed 14): max |Δweight| 0.0017, max |Δmean| 0.0038, pooled variance
    /// +0.14% (1σ 0.0015, 0.003, 0.0032); allowance = measured + 2σ, rounded up.
    static let adaptiveBias = BiasAllowance(weight: 0.005, mean: 0.01, variance: 0.008)

    /// Four isotropic modes with unequal weights; 4000 samples at atol 0.0078 (the paper's), rtol
    /// 0.02 (the Brownian-bridge rejection; the paper's redrawn noise fails this test): mode weights,
    /// means, per-mode covariances and the pooled variance of p_eps within 5 standard errors plus a
    /// small stated bias allowance; fewer NFE (the largest per-sample count) than PC-1000's 2000.
    @Test("recovers mode weights and per-mode covariances with fewer NFE than PC-1000")
    func mixture() throws {
        let sde = try VPSDE(), eps = 1e-3
        let mixture = try GaussianMixture(weights: [0.4, 0.3, 0.2, 0.1], means: [[3, 0], [0, 3], [-3, 0], [0, -3]],
                                          isotropicStds: [0.3, 0.3, 0.3, 0.3])
        let (m, s) = sde.marginal(at: eps)
        let target = mixture.diffused(meanScale: m, std: s)
        let sampler = try AdaptiveSDESampler(sde: sde, score: GaussianMixtureScore(mixture, diffusedBy: sde), eps: eps,
                                             absoluteTolerance: 0.0078, relativeTolerance: 0.02)
        var rng = RandomSource(seed: 14)
        let out = try sampler.sample(count: measureBias ? 100_000 : 4000, using: &rng)
        reportBias(out.samples, target, "adaptive SDE, atol 0.0078, rtol 0.02")
        #expect(out.scoreEvaluations < 2000 && out.scoreEvaluations % 2 == 0, "NFE \(out.scoreEvaluations)")
        #expect(out.meanEvaluations <= Double(out.scoreEvaluations))
        // Allowances: the bias measured with 100 000 samples (SCORESDE_MEASURE_BIAS=1, seed 14) plus
        // 2σ of that measurement, rounded up: see adaptiveBias.
        expectMatches(out.samples, target, bias: Self.adaptiveBias, "adaptive SDE")
    }

    @Test("same seed, same bytes whatever the thread count; tweedie adds one NFE")
    func reproducible() throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(GaussianMixture.ring(), diffusedBy: sde)
        let sampler = try AdaptiveSDESampler(sde: sde, score: score, eps: 1e-3, relativeTolerance: 0.1)
        var r1 = RandomSource(seed: 2), r2 = RandomSource(seed: 2)
        let a = try sampler.sample(count: 64, using: &r1)
        let b = try Parallel.$threadLimit.withValue(1) { try sampler.sample(count: 64, using: &r2) }
        #expect(a.samples == b.samples && a.perSampleEvaluations == b.perSampleEvaluations && r1 == r2)
        var t = sampler
        t.denoising = .tweedie
        var r3 = RandomSource(seed: 2)
        let c = try t.sample(count: 64, using: &r3)
        #expect(zip(c.perSampleEvaluations, a.perSampleEvaluations).allSatisfy { $0 == $1 + 1 })
    }

    @Test("bad tolerances and settings are refused")
    func badInput() throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(GaussianMixture.ring(), diffusedBy: sde)
        #expect(invalidParameterText { _ = try AdaptiveSDESampler(sde: sde, score: score, eps: 1e-3, absoluteTolerance: 0) }?.contains("absolute tolerance") == true)
        #expect(invalidParameterText { _ = try AdaptiveSDESampler(sde: sde, score: score, eps: 1e-3, relativeTolerance: -1) }?.contains("relative tolerance") == true)
        #expect(invalidParameterText { _ = try AdaptiveSDESampler(sde: sde, score: score, eps: 1e-3, absoluteTolerance: .nan) } != nil)
        #expect(invalidParameterText { _ = try AdaptiveSDESampler(sde: sde, score: score, eps: 0) }?.contains("eps") == true)
        #expect(invalidParameterText { _ = try AdaptiveSDESampler(sde: sde, score: score, eps: 1e-3, denoising: .lastPredictorMean) } != nil)
    }
}

import Foundation
import Testing
@testable import ScoreSDE

// Likelihood-grade training: importance sampling of t against its closed form (VP), the bounded
// noise-prediction output, uniform dequantization and the dequantized likelihood against the
// closed-form density of a mixture, and the bits/dim summary.

private let vpSpec = SDESpec.vp(betaMin: 0.1, betaMax: 20)

@Suite("Likelihood-grade training")
struct LikelihoodTrainingTests {
    /// VP: `p(t) ∝ β(t) / (1 − e^{−B(t)})` has CDF `[L(t) − L(eps)] / [L(T) − L(eps)]` with
    /// `L(t) = log(e^{B(t)} − 1)`, `B(t) = β₀ t + (β₁ − β₀) t² / 2` (Song, Durkan, Murray & Ermon 2021).
    @Test("importance sampling of t inverts the closed-form VP distribution ∝ g²/std²")
    func importanceSamplerMatchesClosedForm() throws {
        let sde = try VPSDE(betaMin: 0.1, betaMax: 20)
        for eps in [1e-5, 1e-2] {
            let sampler = try LikelihoodTimeSampler(sde: sde, eps: eps)
            func bigB(_ t: Double) -> Double { 0.1 * t + 0.5 * 19.9 * t * t }
            func logEm1(_ t: Double) -> Double { log(expm1(bigB(t))) }
            let lo = logEm1(eps), hi = logEm1(1)
            for u in stride(from: 0.0005, to: 1, by: 0.0371) {
                // Closed-form inverse: B = log(1 + e^L), then the quadratic for t.
                let l = lo + u * (hi - lo)
                let b = l > 30 ? l : log1p(exp(l))
                let a2 = 0.5 * 19.9, a1 = 0.1
                let t = (-a1 + (a1 * a1 + 4 * a2 * b).squareRoot()) / (2 * a2)
                let got = sampler.time(forUniform: u)
                // Tabulation error: midpoint rule on 4096 cells of log t, O(h²) ≈ 1e-5 in the CDF.
                #expect(abs(log(got) - log(t)) < 2e-3, "eps \(eps) u \(u): sampled \(got), closed form \(t)")
                // Density ∝ β/(1 − e^{−B}) normalised by L(T) − L(eps).
                let exact = sde.beta(at: t) / (-expm1(-bigB(t))) / (hi - lo)
                #expect(abs(sampler.density(at: got) / exact - 1) < 5e-3, "density at \(t)")
            }
        }
    }

    /// `E_p[f(t) / ((T − eps) p(t))] = (1/(T − eps)) ∫ f dt` when `density` is what `time` samples:
    /// stratified draws (u = (i + ½)/n) against a fine trapezoid rule.
    @Test("importance weights are exact for the sampled density (unbiased loss)")
    func importanceWeightsAreUnbiased() throws {
        let sde = try VPSDE(betaMin: 0.1, betaMax: 20)
        let eps = 1e-3
        let sampler = try LikelihoodTimeSampler(sde: sde, eps: eps)
        let f: (Double) -> Double = { t in sde.beta(at: t) * (1 + sin(7 * t)) }   // g² times a smooth factor
        let n = 400_000
        var mc = 0.0
        for i in 0 ..< n {
            let t = sampler.time(forUniform: (Double(i) + 0.5) / Double(n))
            mc += f(t) / ((1 - eps) * sampler.density(at: t))
        }
        mc /= Double(n)
        var quad = 0.0
        let m = 2_000_000, h = (1 - eps) / Double(m)
        for i in 0 ... m { let t = eps + Double(i) * h; quad += (i == 0 || i == m ? 0.5 : 1) * f(t) }
        quad *= h / (1 - eps)
        #expect(abs(mc / quad - 1) < 1e-3, "importance estimate \(mc) vs quadrature \(quad)")
    }

    /// The DSM loss with likelihood weighting has the same expectation under uniform and
    /// importance-sampled times (the exact score, so only sampling noise differs), and the
    /// importance-sampled terms vary far less.
    @Test("DSM loss: importance sampling keeps the likelihood-weighted expectation, with lower variance")
    func importanceLossMatchesUniform() throws {
        let sde = try VPSDE()
        let ring = GaussianMixture.ring()
        var rng = RandomSource(seed: 3)
        let data = ring.sample(count: 4000, using: &rng)
        let score = GaussianMixtureScore(ring, diffusedBy: sde)
        func stats(_ loss: DSMLoss) throws -> (Double, Double) {
            var values = [Double]()
            for step in 0 ..< 40 {
                let b = try loss.drawBatch(step: step, seed: 11, batchSize: 100, dataRows: data.rows, rowShape: [2])
                values.append(try loss.loss(of: score, data: data, batch: b))
            }
            let mean = values.reduce(0, +) / Double(values.count)
            let sd = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
            return (mean, sd / Double(values.count).squareRoot())
        }
        let (u, su) = try stats(DSMLoss(sde: sde, likelihoodWeighting: true, eps: 1e-3))
        let (i, si) = try stats(DSMLoss(sde: sde, likelihoodWeighting: true, eps: 1e-3, timeSampling: .importance))
        #expect(abs(u - i) < 4 * (su * su + si * si).squareRoot(), "uniform \(u) ± \(su) vs importance \(i) ± \(si)")
        #expect(si < su, "importance sampling should lower the standard error (\(si) vs \(su))")
        #expect(throws: ScoreSDEError.self) { try DSMLoss(sde: sde, likelihoodWeighting: false, timeSampling: .importance) }
    }

    @Test("bounded noise prediction: score = −B tanh(net/B) / √(std² + δ²), bounded for any input")
    func boundedParameterization() throws {
        let arch = MLPArchitecture(rowShape: [3], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 3)
        let model = try MLPScore(architecture: arch, sde: vpSpec, parameterization: .boundedNoisePrediction, noiseFloor: 0.05, seed: 2)
        let plain = try MLPScore(architecture: arch, sde: vpSpec, parameterization: .noisePrediction, parameters: model.parameters)
        var rng = RandomSource(seed: 4)
        let x = Tensor.standardNormal(shape: [5, 3], using: &rng)
        let sde = try vpSpec.make()
        for t in [1e-5, 1e-2, 0.5] {
            let std = sde.marginal(at: t).std
            let raw = try plain.networkOutput(x, at: t)
            let s = try model.score(x, at: t)
            for i in 0 ..< s.count {
                let expected = -5 * tanh(raw.storage[i] / 5) / (std * std + 0.0025).squareRoot()
                #expect(abs(s.storage[i] - expected) <= 1e-12 * max(1, abs(expected)))
            }
        }
        // Far outside the data the score stays below B / δ per value (an unbounded MLP grows linearly).
        let far = try Tensor(shape: [1, 3], storage: [1e6, -3e6, 2e6])
        let s = try model.score(far, at: 1e-5)
        #expect(s.storage.allSatisfy { abs($0) <= 5 / 0.05 + 1e-9 })
        // JVP through the bound matches finite differences.
        let v = Tensor.standardNormal(shape: [5, 3], using: &rng)
        let (_, jv) = try model.scoreAndJVP(x, at: 0.3, direction: v)
        var xp = x, xm = x
        xp.add(v, scaledBy: 1e-6); xm.add(v, scaledBy: -1e-6)
        let fp = try model.score(xp, at: 0.3), fm = try model.score(xm, at: 0.3)
        for i in 0 ..< jv.count {
            let fd = (fp.storage[i] - fm.storage[i]) / 2e-6
            #expect(abs(fd - jv.storage[i]) < 1e-6 * max(1, abs(fd)))
        }
        #expect(throws: ScoreSDEError.self) { try MLPScore(architecture: arch, sde: vpSpec, parameterization: .boundedNoisePrediction, seed: 1) }
    }

    @Test("uniform dequantization: k + u with u ~ U[0, 1); integer levels only")
    func dequantization() throws {
        let n = 2000
        let levels = try Tensor(shape: [n, 4], storage: (0 ..< 4 * n).map { Double($0 % 17) })
        var rng = RandomSource(seed: 8)
        let x = try UniformDequantization.sample(levels: levels, topLevel: 16, using: &rng)
        var sum = 0.0
        for i in 0 ..< x.count {
            let u = x.storage[i] - levels.storage[i]
            #expect(u >= 0 && u < 1)
            sum += u
        }
        // Mean of 8000 U[0, 1): 0.5 ± 4 · (1/√12)/√8000.
        #expect(abs(sum / Double(x.count) - 0.5) < 4 * 0.2887 / Double(x.count).squareRoot())
        for bad in [0.5, -1, 17] {
            #expect(throws: ScoreSDEError.self) { try UniformDequantization.sample(levels: try Tensor(shape: [1, 1], storage: [bad]), topLevel: 16, using: &rng) }
        }
        #expect(try DataNormalization.symmetric.dequantizedScaling(levels: 17) == DataScaling(scale: 2.0 / 17, shift: -1))
        #expect(try DataNormalization.unit.dequantizedScaling(levels: 256) == DataScaling(scale: 1.0 / 256, shift: 0))
    }

    /// A mixture in model space with its exact p_T: the dequantized log-likelihood equals the
    /// closed-form `log p_eps(scale (k + u) + shift) + D log|scale|` averaged over the same draws.
    @Test("dequantized likelihood averages the closed-form density over the same dequantizations")
    func dequantizedLikelihoodMatchesClosedForm() throws {
        let sde = try VPSDE()
        let mixture = try GaussianMixture(weights: [0.4, 0.6], means: [[-0.5, 0.2], [0.6, -0.3]], stds: [[0.3, 0.25], [0.2, 0.35]])
        let score = GaussianMixtureScore(mixture, diffusedBy: sde)
        let scaling = try DataScaling(scale: 0.25, shift: -1)
        let levels = try Tensor(shape: [6, 2], storage: [0, 1, 2, 3, 4, 5, 7, 2, 3, 3, 6, 0])
        let eps = 1e-3, draws = 3
        let solver = ODESolverOptions(.rkf45, absoluteTolerance: 1e-8, relativeTolerance: 1e-8)
        let likelihood = Likelihood(sde: sde, score: score, estimator: .exact, eps: eps, solver: solver,
                                    terminalLogDensity: { z in try score.logDensity(z, at: sde.T) })
        var rng = RandomSource(seed: 21)
        var replay = rng
        let r = try likelihood.evaluateDequantized(levels: levels, topLevel: 7, scaling: scaling, draws: draws, using: &rng)
        var expected = [Double](repeating: 0, count: levels.rows)
        for _ in 0 ..< draws {
            let x = scaling.toModel(try UniformDequantization.sample(levels: levels, topLevel: 7, using: &replay))
            let lp = try score.logDensity(x, at: eps)
            for i in 0 ..< levels.rows { expected[i] += (lp[i] + 2 * log(0.25)) / Double(draws) }
        }
        for i in 0 ..< levels.rows {
            #expect(abs(r.logLikelihood[i] - expected[i]) < 1e-4, "row \(i): \(r.logLikelihood[i]) vs \(expected[i])")
            #expect(abs(r.bitsPerDim[i] + expected[i] / (2 * M_LN2)) < 1e-4)
        }
        #expect(r.draws == draws)
        #expect(throws: ScoreSDEError.self) { try likelihood.evaluateDequantized(levels: levels, topLevel: 6, scaling: scaling, draws: 1, using: &rng) }
    }

    @Test("bits/dim summary: median, max, count above the uniform guess, tail-dominated means")
    func summary() {
        let s = LikelihoodSummary(bitsPerDim: [3, 1, 2, 5, 4], threshold: 3.5)
        #expect(s.mean == 3 && s.median == 3 && s.max == 5 && s.countAboveThreshold == 2)
        #expect(LikelihoodSummary(bitsPerDim: [1, 2, 3, 4], threshold: 9).median == 2.5)
        // 297 well-behaved values: no warning; one wild value among them: a warning.
        let calm = (0 ..< 297).map { 3 + 0.4 * sin(Double($0)) }
        #expect(!LikelihoodSummary(bitsPerDim: calm, threshold: 4.09).tailDominated)
        var wild = calm
        wild[10] = 5000
        let w = LikelihoodSummary(bitsPerDim: wild, threshold: 4.09)
        #expect(w.tailDominated && w.tailCount == 3 && w.tailShift > 16)
    }

    /// Issue 12, item 5: the shipped digits model's held-out bits/dim (bits per 17-level pixel,
    /// uniform dequantization, its stated eps 1e-2) beat the 5-component full-covariance mixture
    /// (mean 2.82; worst digit 5.05, 6 of 297 above the uniform guess 4.09; scikit-learn, issue 12).
    /// One dequantization and one Rademacher probe per digit (unbiased for log p up to the
    /// solver's error); measured 2.65 ± 0.03 (s.e.), max 4.3, 2 above 4.09 — the mean bound is
    /// more than 5 standard errors away.
    @Test("the shipped digits model beats the 5-component Gaussian mixture on the 297 held-out digits")
    func shippedDigitsBeatTheMixture() throws {
        let model = try PretrainedModels.digitsMLP()
        let eps = try #require(model.likelihoodEps)
        #expect(eps == 1e-2 && model.architecture.gaussianBase)
        let test = try Digits.load(split: .heldOut).images
        let solver = ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5)
        let likelihood = Likelihood(sde: try VPSDE(), score: model, estimator: .rademacher(probes: 1), eps: eps, solver: solver,
                                    convention: .continuous)
        var rng = RandomSource(seed: 0)
        let r = try likelihood.evaluateDequantized(levels: test, topLevel: 16, scaling: model.dataScaling, draws: 1, using: &rng)
        let summary = LikelihoodSummary(bitsPerDim: r.bitsPerDim, threshold: log2(17))
        #expect(summary.count == 297)
        #expect(summary.mean + 5 * summary.standardError < 2.82, "mean \(summary.mean) ± \(summary.standardError)")
        #expect(summary.max < 5.05 && summary.countAboveThreshold <= 6, "max \(summary.max), \(summary.countAboveThreshold) above 4.09")
    }
}

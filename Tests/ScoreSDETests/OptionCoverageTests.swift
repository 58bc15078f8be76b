import Foundation
import Testing
@testable import ScoreSDE

// Options that had no test (issue 24): Langevin's per-sample norms and cumulative α, UniPC's B(h) = h,
// the adaptive SDE solver's redrawn noise and attempt limit, Adam's β₁/β₂/ε, the classifier trainer's
// time range and the shipped classifier. Each is checked against a truth derived here from the
// papers' formulas (not from the library's code), with bands from the stated statistics.

/// VP (βmin 0.1, βmax 20) written out: m(t) = exp(−¼ t² (β1 − β0) − ½ t β0), std = √(1 − m²).
private func vpTruth(_ t: Double) -> (m: Double, std: Double) {
    let m = exp(-0.25 * t * t * (20 - 0.1) - 0.5 * t * 0.1)
    return (m, (1 - m * m).squareRoot())
}

@Suite("Langevin corrector variants: one step against its closed form")
struct LangevinVariantTests {
    static let mu = [1.0, -0.5], sigma0 = 0.5, x0 = [0.3, 0.2]

    /// One corrector step from a point mass: every one of n rows starts at x0, so all rows see the
    /// same exact score s = −(x0 − m μ)/V (V = m² σ0² + std²) and, for per-sample norms, the same
    /// step ε = 2 α (r √d / ‖s‖)² (Song et al. 2021, Alg. 4 with ‖z‖ → √d). Then
    /// x' ~ N(x0 + ε s, 2ε I): each coordinate's sample mean has s.e. √(2ε/n), and the pooled
    /// variance (d(n − 1) degrees of freedom) estimates 2ε with relative s.e. √(2/(d(n − 1))) =
    /// 0.5% at n = 40 000, d = 2 (5 s.e. = 2.5%). A √d → d slip changes ε by √2 (41%), a dropped
    /// square on α by 1/m(t) (×3.6 at t = 0.5).
    /// Population-mean norms use the rows' mean ‖z‖ instead of √d: its truth is E‖z‖ = √(π/2) for
    /// d = 2 (the sample mean's relative s.e. 0.655/(1.2533 √n) = 0.26%, doubled in ε: 0.52%).
    static func oneStep(norms: LangevinNorms, alpha: LangevinAlpha, t: Double, next: Double, n: Int = 40_000)
        throws -> (meanShift: [Double], variance: Double, score: [Double]) {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(try GaussianMixture(means: [mu], isotropicStds: [sigma0]), diffusedBy: sde)
        let reverse = ReverseSDE(sde: sde, score: score)
        var x = try Tensor(rows: [[Double]](repeating: x0, count: n))
        var rng = RandomSource(seed: 404)
        try Langevin(snr: 0.16, steps: 1, norms: norms, alpha: alpha).correct(&x, at: t, next: next, along: reverse, using: &rng)
        let (m, std) = vpTruth(t)
        let V = m * m * sigma0 * sigma0 + std * std
        let s = (0 ..< 2).map { -(x0[$0] - m * mu[$0]) / V }
        var shift = [Double](), pooled = 0.0
        for j in 0 ..< 2 {
            let mo = Moments((0 ..< n).map { x.storage[$0 * 2 + j] })
            shift.append(mo.mean - x0[j]); pooled += mo.variance / 2
        }
        return (shift, pooled, s)
    }

    @Test("per-sample norms and both α: step ε = 2α(r√d/‖s‖)², α = (m(t)/m(next))² or m(t)²",
          arguments: [LangevinAlpha.perStep, .cumulative])
    func perSampleStep(alpha: LangevinAlpha) throws {
        let t = 0.5, next = 0.49, n = 40_000, d = 2.0
        let (shift, variance, s) = try Self.oneStep(norms: .perSample, alpha: alpha, t: t, next: next, n: n)
        let a = alpha == .perStep ? pow(vpTruth(t).m / vpTruth(next).m, 2) : pow(vpTruth(t).m, 2)
        let norm2 = s.reduce(0) { $0 + $1 * $1 }
        let eps = 2 * a * 0.16 * 0.16 * d / norm2
        for j in 0 ..< 2 {
            #expect(abs(shift[j] - eps * s[j]) <= zBound * (2 * eps / Double(n)).squareRoot(),
                    "\(alpha) coord \(j): mean shift \(shift[j]) vs ε s = \(eps * s[j])")
        }
        #expect(abs(variance / (2 * eps) - 1) <= zBound * (2 / (d * Double(n - 1))).squareRoot(),
                "\(alpha): step variance \(variance) vs 2ε = \(2 * eps)")
    }

    @Test("population-mean norms: ε = 2α(r E‖z‖/‖s‖)² with E‖z‖ = √(π/2) in 2-D")
    func populationMeanStep() throws {
        let t = 0.5, next = 0.49, n = 40_000, d = 2.0
        let (_, variance, s) = try Self.oneStep(norms: .populationMean, alpha: .cumulative, t: t, next: next, n: n)
        let a = pow(vpTruth(t).m, 2), ez = (Double.pi / 2).squareRoot()
        let eps = 2 * a * 0.16 * 0.16 * ez * ez / s.reduce(0) { $0 + $1 * $1 }
        // relative s.e.: sampling of the variance (0.5%) and of the mean ‖z‖ in ε (2 · 0.655/(1.2533 √n))
        let se = (2 / (d * Double(n - 1)) + pow(2 * 0.655 / (ez * Double(n).squareRoot()), 2)).squareRoot()
        #expect(abs(variance / (2 * eps) - 1) <= zBound * se, "step variance \(variance) vs 2ε = \(2 * eps)")
    }
}

@Suite("UniPC variants")
struct UniPCVariantTests {
    static let mu = [1.0, -0.5], sigma0 = 0.5

    /// Exact data prediction of Gaussian data: D(x, t) = (x + std² s)/m, s = −(x − m μ)/V.
    static func dataPrediction(_ x: [Double], _ t: Double) -> [Double] {
        let (m, std) = vpTruth(t), V = m * m * sigma0 * sigma0 + std * std
        return (0 ..< 2).map { (x[$0] - std * std * (x[$0] - m * mu[$0]) / V) / m }
    }

    /// Order 1, two steps 1 → 0.3 → 0.05 from known starts, against Zhao et al. 2023 (Alg. 1–2, p = 1):
    /// UniP-1 is DDIM, x₁ = (σ₁/σ₀) x₀ + α₁ (1 − e^{−h}) D₀; the second step first corrects the
    /// first with the model value at the predicted point (UniC-1, ρ = ½):
    /// x₁ᶜ = (σ₁/σ₀) x₀ + α₁ (1 − e^{−h}) D₀ − α₁ B(h) ½ (D₁ − D₀), B(h) = −h (bh1) or e^{−h} − 1 (bh2)
    /// (in the code's sign convention, h̃ = −h), then predicts x₂ from x₁ᶜ with D₁. Doubles to 1e-12.
    @Test("order 1: the corrector uses B(h) = h (bh1) or e^h − 1 (bh2), to 1e-12", arguments: [UniPC.Variant.bh1, .bh2])
    func orderOneClosedForm(variant: UniPC.Variant) throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(try GaussianMixture(means: [Self.mu], isotropicStds: [Self.sigma0]), diffusedBy: sde)
        let times = [1.0, 0.3, 0.05]
        let start = try Tensor(rows: [[0.7, -1.2], [-2.0, 0.4], [0.1, 0.1]])
        var integrator = try ReverseIntegrator(sde: sde, score: score, grid: try TimeGrid(times), predictor: try UniPC(order: 1, variant: variant),
                                               corrector: NoCorrector(), denoising: .none, start: start, rng: RandomSource(seed: 1))
        let out = try integrator.solve().samples
        func lam(_ t: Double) -> Double { let (m, s) = vpTruth(t); return log(m / s) }
        for r in 0 ..< start.rows {
            let x0 = start.row(r)
            let (a1, s1) = vpTruth(times[1]), (a2, s2) = vpTruth(times[2]), s0 = vpTruth(times[0]).std
            let h1 = lam(times[1]) - lam(times[0]), h2 = lam(times[2]) - lam(times[1])
            let D0 = Self.dataPrediction(x0, times[0])
            let x1 = (0 ..< 2).map { s1 / s0 * x0[$0] + a1 * (1 - exp(-h1)) * D0[$0] }
            let D1 = Self.dataPrediction(x1, times[1])
            let B = variant == .bh1 ? -h1 : expm1(-h1)
            let x1c = (0 ..< 2).map { s1 / s0 * x0[$0] + a1 * (1 - exp(-h1)) * D0[$0] - a1 * B * 0.5 * (D1[$0] - D0[$0]) }
            let x2 = (0 ..< 2).map { s2 / s1 * x1c[$0] + a2 * (1 - exp(-h2)) * D1[$0] }
            for j in 0 ..< 2 {
                #expect(abs(out.storage[r * 2 + j] - x2[j]) <= 1e-12 * (1 + abs(x2[j])), "\(variant) row \(r)[\(j)]: \(out.storage[r * 2 + j]) vs \(x2[j])")
            }
        }
    }

    /// bh1 of order 2 and 3 is a convergent method of the flow map: on Gaussian data the map
    /// T → eps is x ↦ m_e μ + k (x − m_T μ), k = √(V(eps)/V(T)); the RMS error at 64 steps is below
    /// 1e-3 and halving the step divides it by more than 4 (order ≥ 2).
    @Test("bh1 converges to the exact flow map at order >= 2", arguments: [2, 3])
    func bh1Converges(order: Int) throws {
        let sde = try VPSDE(), eps = 1e-3
        let score = GaussianMixtureScore(try GaussianMixture(means: [Self.mu], isotropicStds: [Self.sigma0]), diffusedBy: sde)
        var rng = RandomSource(seed: 8)
        let z = Tensor.standardNormal(shape: [50, 2], using: &rng)
        func V(_ t: Double) -> Double { let (m, s) = vpTruth(t); return m * m * Self.sigma0 * Self.sigma0 + s * s }
        let k = (V(eps) / V(1)).squareRoot(), me = vpTruth(eps).m, mT = vpTruth(1).m
        func mapError(_ steps: Int) throws -> Double {
            var integrator = try ReverseIntegrator(sde: sde, score: score, grid: try .spaced(.logSNR, steps: steps, from: 1, to: eps, sde: sde),
                                                   predictor: try UniPC(order: order, variant: .bh1), corrector: NoCorrector(),
                                                   denoising: .none, start: z, rng: rng)
            let out = try integrator.solve().samples
            var se = 0.0
            for i in 0 ..< z.count { let d = out.storage[i] - (me * Self.mu[i % 2] + k * (z.storage[i] - mT * Self.mu[i % 2])); se += d * d }
            return (se / Double(z.count)).squareRoot()
        }
        let e16 = try mapError(16), e32 = try mapError(32), e64 = try mapError(64)
        #expect(e64 < 1e-3 && log2(e16 / e32) > 2 && log2(e32 / e64) > 2, "UniPC-\(order) bh1: errors \(e16), \(e32), \(e64)")
    }
}

typealias RingAdaptive = AdaptiveSDESampler<VPSDE, GaussianMixtureScore>

@Suite("Adaptive SDE solver options")
struct AdaptiveSDEOptionTests {
    static func sampler(_ attempts: Int = 100_000, noise: RingAdaptive.RejectedNoise = .brownianBridge, rtol: Double = 0.05) throws
        -> RingAdaptive {
        let sde = try VPSDE()
        return try AdaptiveSDESampler(sde: sde, score: GaussianMixtureScore(GaussianMixture.ring(), diffusedBy: sde), eps: 1e-3,
                                      relativeTolerance: rtol, maximumAttempts: attempts, rejectedNoise: noise)
    }

    /// Each attempt costs 2 NFE (no final denoising), so a row's attempts are its NFE / 2. With the
    /// largest of them, A, as the limit the run is unchanged; with A − 1 the row that needs A fails.
    @Test("maximumAttempts: A attempts suffice, A − 1 is an error", arguments: [RingAdaptive.RejectedNoise.brownianBridge, .redraw])
    func attemptLimitIsExact(noise: RingAdaptive.RejectedNoise) throws {
        var r1 = RandomSource(seed: 5)
        let free = try Self.sampler(noise: noise).sample(count: 16, using: &r1)
        let a = free.perSampleEvaluations.max()! / 2
        #expect(free.perSampleEvaluations.allSatisfy { $0 % 2 == 0 } && a > 1)
        var r2 = RandomSource(seed: 5)
        let limited = try Self.sampler(a, noise: noise).sample(count: 16, using: &r2)
        #expect(limited.samples == free.samples)
        var r3 = RandomSource(seed: 5)
        let text = invalidArgumentText { _ = try Self.sampler(a - 1, noise: noise).sample(count: 16, using: &r3) }
        #expect(text?.contains("\(a - 1) attempts") == true, "\(text ?? "no error")")
    }

    /// `.redraw` (the paper's code) draws fresh noise after a rejection, `.brownianBridge` splits the
    /// rejected increment: the same seed gives the same accepted first steps but different samples
    /// once a row has been rejected; rows never rejected are identical.
    @Test("redraw differs from the Brownian bridge exactly in the rows with rejections")
    func redrawIsUsed() throws {
        var r1 = RandomSource(seed: 21), r2 = RandomSource(seed: 21)
        let bridge = try Self.sampler(rtol: 0.02).sample(count: 64, using: &r1)
        let redraw = try Self.sampler(noise: .redraw, rtol: 0.02).sample(count: 64, using: &r2)
        var differing = 0
        for r in 0 ..< 64 {
            let same = bridge.samples.row(r) == redraw.samples.row(r)
            if bridge.perSampleRejections[r] == 0 && redraw.perSampleRejections[r] == 0 { #expect(same, "row \(r) had no rejection") }
            if !same { differing += 1 }
        }
        #expect(bridge.perSampleRejections.reduce(0, +) > 0 && differing > 0, "rejections \(bridge.perSampleRejections.reduce(0, +)), differing rows \(differing)")
    }
}

@Suite("Adam hyper-parameters")
struct AdamHyperparameterTests {
    /// Torch's Adam with β₁ = 0.5, β₂ = 0.8, ε = 0.1, no warm-up or clipping, two steps with
    /// gradients g₁, g₂. The bias-corrected moments are weighted means of the gradients:
    /// m̂₁ = g₁, v̂₁ = g₁²; m̂₂ = (β₁ g₁ + g₂)/(1 + β₁), v̂₂ = (β₂ g₁² + g₂²)/(1 + β₂), and
    /// θ_k = θ_{k−1} − lr m̂_k/(√v̂_k + ε) (Kingma & Ba 2015, Alg. 1). Doubles to 1e-14.
    @Test("β₁, β₂ and ε are the given ones")
    func twoStepsClosedForm() {
        let (b1, b2, e, lr) = (0.5, 0.8, 0.1, 0.01)
        var adam = AdamOptimizer(parameterCount: 2, learningRate: lr, beta1: b1, beta2: b2, epsilon: e, warmup: 0, gradClip: -1)
        var p = [1.0, -1.0]
        let g1 = [0.3, -2.0], g2 = [-0.6, 1.5]
        var g = g1
        adam.step(&p, gradient: &g, step: 0, trainable: [0 ..< 2])
        let after1 = (0 ..< 2).map { [1.0, -1.0][$0] - lr * g1[$0] / (abs(g1[$0]) + e) }
        for i in 0 ..< 2 { #expect(abs(p[i] - after1[i]) <= 1e-14, "step 1 [\(i)]: \(p[i]) vs \(after1[i])") }
        g = g2
        adam.step(&p, gradient: &g, step: 1, trainable: [0 ..< 2])
        for i in 0 ..< 2 {
            let mHat = (b1 * g1[i] + g2[i]) / (1 + b1), vHat = (b2 * g1[i] * g1[i] + g2[i] * g2[i]) / (1 + b2)
            let want = after1[i] - lr * mHat / (vHat.squareRoot() + e)
            #expect(abs(p[i] - want) <= 1e-14, "step 2 [\(i)]: \(p[i]) vs \(want)")
        }
    }
}

@Suite("Classifier training time range")
struct ClassifierTimeRangeTests {
    /// Every data row is the same point c, so a batch row is x = m(t) c + std(t) z exactly: with
    /// `minTime`/`maxTime` the times are U[min, max] (KS distance below √(ln(2/5.7e-7)/(2n)), the 5σ
    /// level), and the residuals (x − m c)/std are standard normal (mean and variance within 5 s.e.).
    @Test("times are uniform on [minTime, maxTime] (maxTime nil: T) and x_t has the forward marginal",
          arguments: [(0.2, 0.4 as Double?), (0.6, nil)])
    func batchTimes(range: (Double, Double?)) throws {
        let (lo, hi) = range, n = 4000, c = [0.5, -0.25]
        let arch = NoiseAwareClassifier.Architecture(rowShape: [2], classCount: 2, hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4)
        let config = ClassifierTrainingConfiguration(sde: .vp(betaMin: 0.1, betaMax: 20), architecture: arch, seed: 3, batchSize: n,
                                                     minTime: lo, maxTime: hi)
        let data = try Tensor(rows: [[Double]](repeating: c, count: 10))
        let trainer = try ClassifierTrainer(configuration: config, data: data, labels: (0 ..< 10).map { $0 % 2 })
        let (x, times, _) = trainer.batch(forStep: 0)
        let top = hi ?? 1
        #expect(times.allSatisfy { $0 >= lo && $0 <= top })
        let ks = ksStatistic(times) { min(max(($0 - lo) / (top - lo), 0), 1) }
        #expect(ks <= (log(2 / 5.7e-7) / (2 * Double(n))).squareRoot(), "KS distance of the times from U[\(lo), \(top)]: \(ks)")
        var z = [Double]()
        for r in 0 ..< n {
            let (m, s) = vpTruth(times[r])
            for j in 0 ..< 2 { z.append((x.storage[r * 2 + j] - m * c[j]) / s) }
        }
        let mo = Moments(z)
        #expect(abs(mo.mean) <= zBound / Double(z.count).squareRoot() && abs(mo.variance - 1) <= zBound * (2 / Double(z.count)).squareRoot(),
                "residual mean \(mo.mean), variance \(mo.variance)")
    }
}

@Suite("Shipped classifier")
struct PretrainedClassifierTests {
    /// A statistical contract of a trained classifier (holds for any retrained file, fails for zero
    /// or random weights, which score about chance, 1/10): on the held-out digits, dequantized as in
    /// training and noised to time t by the classifier's SDE, the accuracy's 5σ binomial lower bound
    /// acc − 5√(acc(1 − acc)/n) exceeds 0.5 at t = 0.01 and 0.2 at t = 0.3 (chance 0.1), and the
    /// mean log-probability of the true class beats a uniform guess, −ln 10, by 5 standard errors.
    @Test("the digits classifier classifies held-out digits far above chance", arguments: [(0.01, 0.5), (0.3, 0.2)])
    func classifiesHeldOutDigits(point: (Double, Double)) throws {
        let (t, floor) = point
        let classifier = try PretrainedClassifiers.digitsMLP()
        #expect(classifier.classCount == 10 && classifier.rowShape == [1, 8, 8])
        let test = try Digits.load(split: .heldOut)
        var rng = RandomSource(seed: 99)
        let dequantized = try DataNormalization.none.dequantize(test.images, levels: Digits.levels, using: &rng)
        let x = classifier.dataScaling.toModel(dequantized)
        let (m, s) = classifier.sde.marginal(at: t)
        var xt = x.scaled(by: m)
        xt.add(Tensor.standardNormal(shape: x.shape, using: &rng), scaledBy: s)
        let lp = try classifier.logProbabilities(xt, at: t)
        let predicted = try classifier.predict(xt, at: t)
        let n = Double(test.images.rows)
        let acc = Double(zip(predicted, test.labels).filter { $0 == $1 }.count) / n
        #expect(acc - zBound * (acc * (1 - acc) / n).squareRoot() > floor, "t = \(t): accuracy \(acc) on \(Int(n)) held-out digits")
        let own = Moments((0 ..< test.images.rows).map { lp.storage[$0 * 10 + test.labels[$0]] })
        #expect(own.mean - zBound * (own.variance / n).squareRoot() > -log(10.0), "t = \(t): mean log p(true class) \(own.mean)")
    }
}

@Suite("Classifier guidance scale")
struct GuidanceScaleTests {
    /// With the exact mixture classifier, ∇ₓ log p_t(y | x) = s_y − s (the class-restricted mixture's
    /// score minus the full one), so the guided score at scale w is s + w (s_y − s), computed here
    /// from two plain mixture scores; every w, not only w = 1 (where the scale drops out), to 1e-9.
    @Test("ClassifierGuidedScore at scale w is s + w (s_y − s)", arguments: [0.5, 2.0, 3.0])
    func scaleIsApplied(w: Double) throws {
        let sde = try VPSDE(), ring = GaussianMixture.ring(), labels = (0 ..< 8).map { $0 % 2 }
        let classifier = try GaussianMixtureClassifier(ring, diffusedBy: sde, labels: labels, target: 0)
        let guided = ClassifierGuidedScore(base: GaussianMixtureScore(ring, diffusedBy: sde), classifier: classifier, scale: w)
        let full = GaussianMixtureScore(ring, diffusedBy: sde)
        let restricted = GaussianMixtureScore(try ring.restricted(to: [0, 2, 4, 6]), diffusedBy: sde)
        let x = tensor([[0.3, 4.2], [3, 3], [-4, 0.5], [0, 0]])
        for t in [0.05, 0.4, 0.9] {
            let a = try guided.score(x, at: t), s = try full.score(x, at: t), sy = try restricted.score(x, at: t)
            for i in 0 ..< a.count {
                let want = s.storage[i] + w * (sy.storage[i] - s.storage[i])
                #expect(abs(a.storage[i] - want) <= 1e-9 * max(1, abs(want)), "w \(w) t \(t) i \(i): \(a.storage[i]) vs \(want)")
            }
        }
    }
}

@Suite("Replacement: the law of a replaced value")
struct ReplacementLawTests {
    /// After an update at time t, inpainting replaces a known coordinate by m(t) y + √(s² − m²τ²) z
    /// (exactly the forward-noised law of the observed value; τ = 0: m y + s z). 40 000 rows, one
    /// application: the known column's mean within 5 standard errors of m y and its variance within
    /// 5 standard errors (√(2/(n − 1)) relative) of s² − m²τ²; the unknown column untouched.
    @Test("inpainting replaces known values by m y + √(s² − m²τ²) z", arguments: [0.0, 0.3])
    func replacedValueHasTheForwardLaw(tau: Double) throws {
        let n = 40_000, y = 1.5
        for sde in [try VESDE() as any ForwardSDE, try VPSDE()] {
            for t in [0.1, 0.45] {
                let (m, s) = sde.marginal(at: t)
                guard s * s > m * m * tau * tau else { continue }
                let constraint = try Inpainting(known: [0], values: [y], dimension: 2, noiseStd: tau)
                var x = Tensor(zeros: [n, 2]), mean = Tensor(zeros: [n, 2])
                for r in 0 ..< n { x.storage[2 * r + 1] = 0.25 }
                var rng = RandomSource(seed: 77)
                try constraint.apply(&x, mean: &mean, context: ConstraintContext(phase: .predictor, time: t, updateTime: t + 0.01, step: 1, steps: 10, sde: sde),
                                     using: &rng)
                let known = Moments((0 ..< n).map { x.storage[2 * $0] }), v = s * s - m * m * tau * tau
                #expect(abs(known.mean - m * y) <= zBound * (v / Double(n)).squareRoot(), "\(sde) t \(t) τ \(tau): mean \(known.mean) vs \(m * y)")
                #expect(abs(known.variance / v - 1) <= zBound * (2 / Double(n - 1)).squareRoot(), "\(sde) t \(t) τ \(tau): variance \(known.variance) vs \(v)")
                #expect((0 ..< n).allSatisfy { x.storage[2 * $0 + 1] == 0.25 })
            }
        }
    }
}

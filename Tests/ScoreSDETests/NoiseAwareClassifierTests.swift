import Foundation
import Testing
@testable import ScoreSDE

// Noise-aware classifiers and classifier guidance with them: the hand-written input and parameter
// gradients against central differences; files and exact resumes; the exact mixture classifier
// guiding the few-step samplers (ε-form = score form, w = 1 samples the class-conditional
// mixture); a classifier learned on the labelled ring (accuracy on noisy inputs falls with t and
// stays near the Bayes accuracy; guided samples land in the requested component); bad input.

private let vp = SDESpec.vp(betaMin: 0.1, betaMax: 20)

@Suite("Noise-aware classifiers and classifier guidance")
struct NoiseAwareClassifierTests {
    /// A small random classifier with weights large enough that every layer is non-linear.
    static func tiny(seed: UInt64 = 3) throws -> NoiseAwareClassifier {
        let arch = NoiseAwareClassifier.Architecture(rowShape: [3], classCount: 4, hiddenWidth: 6, residualBlocks: 2, fourierFeatures: 3, fourierScale: 2)
        var c = try NoiseAwareClassifier(architecture: arch, sde: vp, seed: seed)
        for i in c.parameters.indices where c.specs.first(where: { $0.range.contains(i) })!.trainable { c.parameters[i] *= 3 }
        return c
    }

    @Test("input gradient ∇ₓ log p_t(y|x) and cross-entropy gradient match central differences")
    func gradientsMatchFiniteDifferences() throws {
        let c = try Self.tiny()
        var rng = RandomSource(seed: 4)
        let x = Tensor.standardNormal(shape: [5, 3], using: &rng)
        let labels = [0, 3, 1, 2, 3]
        for t in [0.05, 0.4, 0.9] {
            let g = try c.logProbabilityGradient(x, at: t, labels: labels)
            let h = 1e-6
            for r in 0 ..< 5 {
                for j in 0 ..< 3 {
                    var xp = x, xm = x
                    xp.storage[3 * r + j] += h; xm.storage[3 * r + j] -= h
                    let up = try c.logProbabilities(xp, at: t).storage[4 * r + labels[r]]
                    let down = try c.logProbabilities(xm, at: t).storage[4 * r + labels[r]]
                    let fd = (up - down) / (2 * h)
                    #expect(abs(fd - g.storage[3 * r + j]) <= 1e-7 * max(1, abs(fd)), "t \(t) row \(r) x[\(j)]: \(g.storage[3 * r + j]) vs \(fd)")
                }
            }
            // One label for all rows = that label repeated.
            #expect(try c.logProbabilityGradient(x, at: t, labels: [2]) == c.logProbabilityGradient(x, at: t, labels: [Int](repeating: 2, count: 5)))
        }
        // Probabilities sum to one.
        let lp = try c.logProbabilities(x, at: 0.3)
        for r in 0 ..< 5 { #expect(abs((0 ..< 4).reduce(0.0) { $0 + exp(lp.storage[4 * r + $1]) } - 1) < 1e-12) }
        // Parameter gradient of the mean cross-entropy, with per-row times and with one time for
        // all rows (the broadcast time-embedding path).
        var m = c
        for times in [[0.1, 0.3, 0.5, 0.7, 0.95], [Double](repeating: 0.4, count: 5)] {
            let (value, grad) = try m.crossEntropyAndGradient(x, times: times, labels: labels)
            for spec in m.specs {
                for i in spec.range {
                    let theta = m.parameters[i], h = 1e-5
                    m.parameters[i] = theta + h
                    let up = try m.crossEntropyAndGradient(x, times: times, labels: labels).loss
                    m.parameters[i] = theta - h
                    let down = try m.crossEntropyAndGradient(x, times: times, labels: labels).loss
                    m.parameters[i] = theta
                    let fd = spec.trainable ? (up - down) / (2 * h) : 0
                    #expect(abs(grad[i] - fd) <= 1e-6 * max(abs(grad[i]), abs(fd)) + 1e-9 * abs(value), "\(spec.name)[\(i - spec.offset)]: \(grad[i]) vs \(fd)")
                }
            }
        }
        // The broadcast embedding (one shared time) equals the per-row one (mixed times), and one row alone.
        let shared = try c.logProbabilities(x, at: 0.4), mixed = try c.logProbabilities(x, times: [0.4, 0.4, 0.4, 0.4, 0.7])
        for i in 0 ..< 16 { #expect(abs(shared.storage[i] - mixed.storage[i]) <= 1e-12) }
        let single = try c.logProbabilities(x.rows(1 ..< 2), at: 0.4)
        for j in 0 ..< 4 { #expect(abs(single.storage[j] - shared.storage[4 + j]) <= 1e-12) }
    }

    @Test("weights files round-trip; a resumed checkpoint continues bitwise; bad files and labels throw")
    func filesAndResume() throws {
        var rng = RandomSource(seed: 8)
        let data = Tensor.standardNormal(shape: [40, 3], using: &rng)
        let labels = (0 ..< 40).map { $0 % 4 }
        let arch = NoiseAwareClassifier.Architecture(rowShape: [3], classCount: 4, hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4)
        let config = ClassifierTrainingConfiguration(sde: vp, architecture: arch, seed: 2, batchSize: 16, warmup: 2, emaRate: 0.9)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ck = dir.appendingPathComponent("ck.safetensors").path, w = dir.appendingPathComponent("w.safetensors").path

        let straight = try ClassifierTrainer(configuration: config, data: data, labels: labels)
        try straight.train(steps: 6)
        let first = try ClassifierTrainer(configuration: config, data: data, labels: labels)
        try first.train(steps: 3)
        try first.save(to: ck)
        let resumed = try ClassifierTrainer.resume(from: ck, data: data, labels: labels)
        #expect(resumed.completedSteps == 3 && resumed.configuration == config)
        try resumed.train(steps: 3)
        #expect(resumed.classifier.parameters == straight.classifier.parameters && resumed.ema.values == straight.ema.values)
        #expect(throws: ScoreSDEError.self) { _ = try ClassifierTrainer.resume(from: ck, data: data, labels: labels.map { ($0 + 1) % 4 }) }

        try straight.emaClassifier.save(to: w)
        let back = try NoiseAwareClassifier.load(from: w)
        #expect(back.parameters == straight.emaClassifier.parameters && back.architecture == arch && back.sdeSpec == vp)
        #expect(try NoiseAwareClassifier.load(from: ck).parameters == first.emaClassifier.parameters, "a checkpoint loads its EMA weights")
        // A score model file is not a classifier; a weights file cannot be resumed.
        let score = try MLPScore(architecture: MLPArchitecture(rowShape: [3], hiddenWidth: 4, residualBlocks: 0, fourierFeatures: 2), sde: vp, seed: 1)
        let sp = dir.appendingPathComponent("score.safetensors").path
        try score.save(to: sp)
        #expect(throws: ScoreSDEError.self) { _ = try NoiseAwareClassifier.load(from: sp) }
        #expect(throws: ScoreSDEError.self) { _ = try ClassifierTrainer.resume(from: w, data: data, labels: labels) }
        // Labels: count ≠ rows, outside the classes.
        #expect(throws: ScoreSDEError.self) { _ = try ClassifierTrainer(configuration: config, data: data, labels: Array(labels.dropLast())) }
        #expect(throws: ScoreSDEError.self) { _ = try ClassifierTrainer(configuration: config, data: data, labels: labels.map { $0 + 1 }) }
    }

    @Test("compatibility with the guided model: shape, classes, SDE and scaling; bad labels and scales throw")
    func compatibility() throws {
        let c = try Self.tiny()
        func model(_ shape: [Int] = [3], classes: Int = 0, sde: SDESpec = vp, scaling: DataScaling = .identity) throws -> MLPScore {
            try MLPScore(architecture: MLPArchitecture(rowShape: shape, hiddenWidth: 4, residualBlocks: 0, fourierFeatures: 2, classCount: classes),
                         sde: sde, dataScaling: scaling, seed: 1)
        }
        _ = try model().classifierGuided(by: c, labels: [1], scale: 2)
        _ = try model(classes: 4).classifierGuided(by: c, labels: [1], scale: 2)
        #expect(throws: ScoreSDEError.self) { _ = try model([4]).classifierGuided(by: c, labels: [1], scale: 1) }
        #expect(throws: ScoreSDEError.self) { _ = try model(classes: 10).classifierGuided(by: c, labels: [1], scale: 1) }
        #expect(throws: ScoreSDEError.self) { _ = try model(sde: .subVP(betaMin: 0.1, betaMax: 20)).classifierGuided(by: c, labels: [1], scale: 1) }
        #expect(throws: ScoreSDEError.self) { _ = try model(scaling: try DataScaling(scale: 2, shift: -1)).classifierGuided(by: c, labels: [1], scale: 1) }
        #expect(throws: ScoreSDEError.self) { _ = try model().classifierGuided(by: c, labels: [4], scale: 1) }
        #expect(throws: ScoreSDEError.self) { _ = try model().classifierGuided(by: c, labels: [1], scale: .infinity) }
        let guided = try model().classifierGuided(by: c, labels: [1, 2], scale: 1)
        #expect(guided.passesPerEvaluation == 2)
        var rng = RandomSource(seed: 1)
        #expect(throws: ScoreSDEError.self) { _ = try guided.score(Tensor.standardNormal(shape: [3, 3], using: &rng), at: 0.5) }   // 2 labels, 3 rows
    }

    /// The ring with classes k mod 2; the exact noisy classifier. DDIM and DPM-Solver++ read the
    /// guided score as ADM's ε-form `ε − w σ_t ∇ log p_t(y|x)`: the two are the same numbers, and
    /// at w = 1 the few-step samplers sample the class-conditional mixture — each odd mode 1/4,
    /// even modes 0 (binomial standard errors at 5σ plus a 0.01 discretization allowance).
    @Test("exact classifier guidance in the few-step samplers: ε-form equivalence, w = 1 samples the class", arguments: ["ddim", "dpm++"])
    func exactGuidanceFewStep(_ name: String) throws {
        let sde = try VPSDE(), ring = GaussianMixture.ring(), labels = [0, 1, 0, 1, 0, 1, 0, 1]
        let base = GaussianMixtureScore(ring, diffusedBy: sde)
        let clf = try GaussianMixtureClassifier(ring, diffusedBy: sde, labels: labels, target: 1)
        let w = 2.5
        let guided = ClassifierGuidedScore(base: base, classifier: clf, scale: w)
        let epsForm = NoisePredictionScore(sde: sde) { x, t in
            let std = sde.marginal(at: t).std
            var e = try base.score(x, at: t)
            e.scale(by: -std)                                                    // ε = −σ_t s
            e.add(try clf.logLikelihoodGradient(x, at: t), scaledBy: -w * std)   // ε̂ = ε − w σ_t ∇ log p_t(y|x)
            return e
        }
        var rng = RandomSource(seed: 3)
        let x = Tensor.standardNormal(shape: [6, 2], using: &rng)
        for t in [0.01, 0.3, 0.8] {
            let a = try guided.score(x, at: t), b = try epsForm.score(x, at: t)
            for i in 0 ..< a.count { #expect(abs(a.storage[i] - b.storage[i]) <= 1e-10 * max(1, abs(a.storage[i]))) }
        }
        let eps = 1e-3
        let grid = try TimeGrid.spaced(.logSNR, steps: 40, from: 1, to: eps, sde: sde)
        let exact = ClassifierGuidedScore(base: base, classifier: clf, scale: 1)
        let n = 4000
        let samples: Tensor
        if name == "ddim" {
            samples = try PCSampler(sde: sde, score: exact, grid: grid, predictor: try DDIM(), corrector: NoCorrector(), denoising: .none)
                .sample(count: n, using: &rng).samples
        } else {
            samples = try PCSampler(sde: sde, score: exact, grid: grid, predictor: try DPMSolverPlusPlus(order: 2), corrector: NoCorrector(), denoising: .none)
                .sample(count: n, using: &rng).samples
        }
        let counts = ring.assignments(samples).reduce(into: [Int](repeating: 0, count: 8)) { $0[$1] += 1 }
        for (k, c) in counts.enumerated() {
            let p = k % 2 == 1 ? 0.25 : 0, tol = zBound * (0.25 * 0.75 / Double(n)).squareRoot() + 0.01
            #expect(abs(Double(c) / Double(n) - p) <= tol, "\(name): mode \(k) weight \(Double(c) / Double(n)) vs \(p) (tol \(tol))")
        }
    }

    /// A classifier learned on the ring labelled by component (8 classes): on fresh noisy points
    /// its accuracy falls with t (each drop well beyond the binomial standard error) and stays
    /// within 0.05 of the exact Bayes classifier's on the same points; guiding the exact
    /// unconditional score with it at w = 1 puts most samples in the requested component (the
    /// exact class-conditional: all of them; unguided: 1/8).
    @Test("learned classifier on the labelled ring: accuracy falls with t, near Bayes; guided samples hit the class")
    func learnedRing() throws {
        var dataRNG = RandomSource(seed: 0)
        let start = dataRNG
        let data = try Toy2D.ring(count: 8000, using: &dataRNG)
        let labels = try Toy2D.labels("ring", points: data, startingFrom: start)
        let arch = NoiseAwareClassifier.Architecture(rowShape: [2], classCount: 8, hiddenWidth: 48, residualBlocks: 1, fourierFeatures: 8)
        let trainer = try ClassifierTrainer(configuration: ClassifierTrainingConfiguration(sde: vp, architecture: arch, seed: 1, batchSize: 256,
                                                                                         learningRate: 3e-3, warmup: 50, emaRate: 0.99),
                                            data: data, labels: labels)
        try trainer.train(steps: 1500)
        let clf = trainer.emaClassifier
        let sde = try VPSDE(), ring = GaussianMixture.ring()
        var testRNG = RandomSource(seed: 99)
        let testStart = testRNG
        let test = try Toy2D.ring(count: 4000, using: &testRNG)
        let testLabels = try Toy2D.labels("ring", points: test, startingFrom: testStart)
        var previous = 2.0
        for t in [0.05, 0.3, 0.5, 0.7] {
            let acc = try ClassifierTrainer.accuracy(of: clf, data: test, labels: testLabels, at: t, seed: 5)
            // Bayes accuracy on the same noisy points (same seed → same noise).
            let (m, s) = sde.marginal(at: t)
            let rng = RandomSource(seed: 5).derived(ClassifierTrainer.purpose)
            var noisy = test
            for r in 0 ..< test.rows {
                var z = rng.stream(draw: 1, row: r)
                for j in 0 ..< 2 { noisy.storage[2 * r + j] = m * test.storage[2 * r + j] + s * z.normal() }
            }
            let probs = try GaussianMixtureClassifier(ring, diffusedBy: sde, labels: Array(0 ..< 8), target: 0).classProbabilities(noisy, at: t)
            let bayes = Double(zip(probs, testLabels).filter { p, y in p.indices.max { p[$0] < p[$1] } == y }.count) / Double(test.rows)
            let se = (0.25 / Double(test.rows)).squareRoot()
            // The noise above re-draws the trainer's stream (to score the same points); beside it, the
            // Bayes accuracy on independently noised points (the library's plain normals) must agree
            // within 5 standard errors of a difference of two binomial shares, √2 · se.
            var fresh = RandomSource(seed: 55 + UInt64(t * 100))
            var independent = test.scaled(by: m)
            independent.add(Tensor.standardNormal(shape: test.shape, using: &fresh), scaledBy: s)
            let probs2 = try GaussianMixtureClassifier(ring, diffusedBy: sde, labels: Array(0 ..< 8), target: 0).classProbabilities(independent, at: t)
            let bayes2 = Double(zip(probs2, testLabels).filter { p, y in p.indices.max { p[$0] < p[$1] } == y }.count) / Double(test.rows)
            #expect(abs(bayes - bayes2) <= zBound * 2.0.squareRoot() * se, "t \(t): Bayes accuracy on the trainer's noise \(bayes) vs fresh noise \(bayes2)")
            #expect(acc <= bayes + zBound * se && acc >= bayes - 0.05, "t \(t): accuracy \(acc) vs Bayes \(bayes)")
            #expect(acc < previous - 5 * se, "t \(t): accuracy \(acc) should fall below \(previous)")
            previous = acc
        }
        let guided = ClassifierGuidedScore(base: GaussianMixtureScore(ring, diffusedBy: sde), classifier: try clf.targeting([2]), scale: 1)
        var rng = RandomSource(seed: 6)
        let run = try PCSampler(sde: sde, score: guided, grid: try TimeGrid.spaced(.logSNR, steps: 60, from: 1, to: 1e-3, sde: sde),
                                predictor: try DPMSolverPlusPlus(order: 2), corrector: NoCorrector(), denoising: .none).sample(count: 1000, using: &rng)
        let hit = Double(ring.assignments(run.samples).filter { $0 == 2 }.count) / 1000
        #expect(hit >= 0.9, "guided samples in component 2: \(hit) (exact conditional 1, unguided 0.125)")
    }
}

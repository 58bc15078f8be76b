import Foundation
import Testing
@testable import ScoreSDE

// Class-conditional score networks: the label embedding's hand-written gradient, per-row labels,
// label checks and files; classifier-free guidance with the exact labelled mixture (w = 1 samples
// the class-conditional mixture) and with a network trained on the labelled ring (its null label
// learns the unconditional score, in the DSM-loss sense); labelled training data and resumes.

private let vp = SDESpec.vp(betaMin: 0.1, betaMax: 20)

@Suite("Class-conditional models and guidance")
struct ClassConditionalTests {
    @Test("label embedding and bounded output: backward pass matches central finite differences")
    func labelGradient() throws {
        let arch = MLPArchitecture(rowShape: [3], hiddenWidth: 5, residualBlocks: 2, fourierFeatures: 3, fourierScale: 2, classCount: 3)
        #expect(arch.parameterSpecs.last?.name == "label.embedding" && arch.parameterSpecs.last?.shape == [4, 5])
        var model = try MLPScore(architecture: arch, sde: vp, parameterization: .boundedNoisePrediction, noiseFloor: 0.05, seed: 5)
        // A larger output so that the tanh bound is in its non-linear range.
        for i in model.specs.first(where: { $0.name == "output.weight" })!.range { model.parameters[i] *= 40 }
        let loss = try DSMLoss(sde: vp.make(), likelihoodWeighting: true, eps: 1e-3, timeSampling: .importance)
        var rng = RandomSource(seed: 9)
        let x0 = Tensor.standardNormal(shape: [6, 3], using: &rng)
        var batch = try loss.drawBatch(step: 2, seed: 17, batchSize: 6, dataRows: 6, rowShape: [3])
        batch.labels = [0, 1, 2, 3, 1, 3]   // 3 is the null label
        let (value, grad) = try model.dsmLossAndGradient(loss, data: x0, batch: batch)
        for name in ["label.embedding", "output.weight", "embed.dense.weight", "blocks.1.temb.bias"] {
            let spec = model.specs.first { $0.name == name }!
            for i in spec.range {
                let theta = model.parameters[i], h = 1e-5
                model.parameters[i] = theta + h
                let up = try model.dsmLossAndGradient(loss, data: x0, batch: batch).loss
                model.parameters[i] = theta - h
                let down = try model.dsmLossAndGradient(loss, data: x0, batch: batch).loss
                model.parameters[i] = theta
                let fd = (up - down) / (2 * h)
                let tol = 1e-6 * max(abs(grad[i]), abs(fd)) + 1e-9 * abs(value)
                #expect(abs(grad[i] - fd) <= tol, "\(name)[\(i - spec.offset)]: backward \(grad[i]) vs finite difference \(fd)")
            }
        }
        // All-null labels: the training path equals the ScoreModel (null-label) path.
        batch.labels = [Int](repeating: 3, count: 6)
        let training = try model.dsmLossAndGradient(loss, data: x0, batch: batch).loss
        let generic = try loss.loss(of: model, data: x0, times: batch.times, noise: batch.noise)
        #expect(abs(training - generic) <= 1e-11 * abs(generic))
    }

    @Test("per-row labels equal one-label calls; nil is the null label; bad labels throw")
    func perRowLabels() throws {
        let arch = MLPArchitecture(rowShape: [2], hiddenWidth: 6, residualBlocks: 1, fourierFeatures: 3, classCount: 4)
        let model = try MLPScore(architecture: arch, sde: vp, seed: 3)
        var rng = RandomSource(seed: 2)
        let x = Tensor.standardNormal(shape: [5, 2], using: &rng), v = Tensor.standardNormal(shape: [5, 2], using: &rng)
        let labels: [Int?] = [2, nil, 0, 2, 3]
        let (s, j) = try model.scoreAndJVP(x, at: 0.4, direction: v, labels: labels)
        for (r, y) in labels.enumerated() {
            let (one, jone) = try model.scoreAndJVP(x.rows(r ..< r + 1), at: 0.4, direction: v.rows(r ..< r + 1), labels: [y])
            #expect(one.storage == Array(s.storage[2 * r ..< 2 * r + 2]))
            #expect(jone.storage == Array(j.storage[2 * r ..< 2 * r + 2]))
        }
        #expect(try model.score(x, at: 0.4) == model.score(x, at: 0.4, labels: [nil]))
        #expect(try model.score(x, at: 0.4, labels: [1]) != model.score(x, at: 0.4, labels: [2]))
        #expect(try model.conditioned(on: [1]).score(x, at: 0.4) == model.score(x, at: 0.4, labels: [1]))
        #expect(throws: ScoreSDEError.self) { try model.score(x, at: 0.4, labels: [4]) }
        #expect(throws: ScoreSDEError.self) { try model.score(x, at: 0.4, labels: [-1]) }
        #expect(throws: ScoreSDEError.self) { try model.score(x, at: 0.4, labels: [1, 2]) }
        #expect(throws: ScoreSDEError.self) { try model.classifierFreeGuided(labels: [1], guidanceScale: .nan) }
        let unconditional = try MLPScore(architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 6, residualBlocks: 1, fourierFeatures: 3), sde: vp, seed: 3)
        #expect(throws: ScoreSDEError.self) { try unconditional.conditioned(on: [0]) }
        #expect(throws: ScoreSDEError.self) { try unconditional.classifierFreeGuided(labels: [0], guidanceScale: 2) }
        #expect(try unconditional.score(x, at: 0.4, labels: [nil]) == unconditional.score(x, at: 0.4))
    }

    @Test("weights files keep the class count, noise floor and dequantization levels")
    func fileRoundTrip() throws {
        let arch = MLPArchitecture(rowShape: [1, 2, 2], hiddenWidth: 6, residualBlocks: 1, fourierFeatures: 3, classCount: 10)
        var model = try MLPScore(architecture: arch, sde: vp, parameterization: .boundedNoisePrediction, noiseFloor: 0.034,
                                 dataScaling: try DataScaling(scale: 2.0 / 17, shift: -1), seed: 1)
        model.dequantizationLevels = 17
        model.likelihoodEps = 0.01
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cc-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try model.save(to: path)
        let back = try MLPScore.load(from: path)
        #expect(back.architecture.classCount == 10 && back.noiseFloor == 0.034 && back.dequantizationLevels == 17 && back.likelihoodEps == 0.01)
        #expect(back.parameterization == .boundedNoisePrediction && back.parameters == model.parameters)
        let x = try Tensor(shape: [1, 1, 2, 2], storage: [0.1, -0.2, 0.3, 0.9])
        #expect(try back.score(x, at: 0.2, labels: [7]) == model.score(x, at: 0.2, labels: [7]))
    }

    /// Guidance in GLIDE form `s_∅ + w (s_y − s_∅)` with the exact labelled ring (classes: even
    /// and odd components): `w = 1` samples the class-conditional mixture exactly.
    @Test("classifier-free guidance at w = 1 with the exact pair samples the class-conditional mixture")
    func exactGuidanceSamplesClass() throws {
        let sde = try VPSDE(), ring = GaussianMixture.ring()
        let classOne = try ring.restricted(to: [1, 3, 5, 7])
        let cfg = ClassifierFreeGuidance(conditional: GaussianMixtureScore(classOne, diffusedBy: sde),
                                         unconditional: GaussianMixtureScore(ring, diffusedBy: sde), guidanceScale: 1)
        #expect(cfg.guidanceScale == 1 && cfg.passesPerEvaluation == 1)
        let guided = ClassifierFreeGuidance(conditional: GaussianMixtureScore(classOne, diffusedBy: sde),
                                            unconditional: GaussianMixtureScore(ring, diffusedBy: sde), guidanceScale: 3)
        #expect(guided.passesPerEvaluation == 2)
        let x = try Tensor(shape: [2, 2], storage: [0.3, 4.2, -3, 3])
        let c = try GaussianMixtureScore(classOne, diffusedBy: sde).score(x, at: 0.3), u = try GaussianMixtureScore(ring, diffusedBy: sde).score(x, at: 0.3)
        let g = try guided.score(x, at: 0.3)
        for i in 0 ..< g.count { #expect(abs(g.storage[i] - (u.storage[i] + 3 * (c.storage[i] - u.storage[i]))) < 1e-12) }
        var rng = RandomSource(seed: 31)
        let run = try PCSampler(sde: sde, score: cfg, grid: try .uniform(steps: 1000, from: 1, to: 1e-3),
                                predictor: EulerMaruyama(), corrector: NoCorrector()).sample(count: 4000, using: &rng)
        expectMatches(run.samples, truthAtEps(classOne, .vp, eps: 1e-3),
                      bias: BiasAllowance(weight: 0.003, mean: 0.005, variance: 0.008), "CFG w = 1, class 1")
    }

    /// One network trained on the ring labelled by component, labels dropped with p = 0.2:
    /// - its null-label score is the unconditional score in the DSM sense (paired draws): its loss
    ///   is below that of a perturbed exact score (the ring at radius 4.6), and its excess over the
    ///   exact score (the minimum) is a small fraction of that of one of its class scores used as
    ///   if unconditional (an untrained null label fails both);
    /// - guided sampling at w = 1 puts the class's component first (the exact conditional: 100%).
    @Test("learned: null label ≈ unconditional score (DSM loss); CFG samples the requested component")
    func learnedConditionalRing() throws {
        var dataRNG = RandomSource(seed: 0)
        let start = dataRNG
        let data = try Toy2D.ring(count: 8000, using: &dataRNG)
        let labels = try Toy2D.labels("ring", points: data, startingFrom: start)
        #expect(labels == GaussianMixture.ring().assignments(data), "ring labels are the generating components")
        let arch = MLPArchitecture(rowShape: [2], hiddenWidth: 64, residualBlocks: 2, fourierFeatures: 16, classCount: 8)
        let config = TrainingConfiguration(sde: vp, architecture: arch, seed: 1, batchSize: 256, learningRate: 2e-3,
                                           warmup: 100, emaRate: 0.995, labelDropout: 0.2)
        let trainer = try Trainer(configuration: config, data: data, labels: labels)
        try trainer.train(steps: 3000)
        let model = try trainer.emaModel
        let sde = try VPSDE()
        let exact = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let perturbed = GaussianMixtureScore(try .ring(radius: 4.6), diffusedBy: sde)
        let classZero = try model.conditioned(on: [0])
        let loss = try DSMLoss(sde: sde, eps: 1e-3)
        // Per batch (10 independent batches of 400, the four scores on the same rows, times and
        // noise): paired differences, each ordering by more than 5 standard errors of its mean.
        var a = [Double](), b = [Double](), c = [Double](), w = [Double]()
        for step in 0 ..< 10 {
            let batch = try loss.drawBatch(step: step, seed: 77, batchSize: 400, dataRows: data.rows, rowShape: [2])
            a.append(try loss.loss(of: model, data: data, batch: batch))
            b.append(try loss.loss(of: exact, data: data, batch: batch))
            c.append(try loss.loss(of: perturbed, data: data, batch: batch))
            w.append(try loss.loss(of: classZero, data: data, batch: batch))
        }
        func paired(_ d: [Double]) -> (mean: Double, se: Double) {
            let m = Moments(d)
            return (m.mean, (m.variance / Double(d.count)).squareRoot())
        }
        let beatsPerturbed = paired((0 ..< 10).map { c[$0] - a[$0] })
        #expect(beatsPerturbed.mean > 5 * beatsPerturbed.se, "perturbed − null-label loss \(beatsPerturbed) (exact \(b.reduce(0, +) / 10))")
        let excess = paired((0 ..< 10).map { 0.1 * (w[$0] - b[$0]) - (a[$0] - b[$0]) })
        #expect(excess.mean > 5 * excess.se, "0.1 × class-0 excess − null-label excess: \(excess)")
        // The conditional model (w = 1) for class 2 samples component 2.
        var rng = RandomSource(seed: 5)
        let guided = try model.classifierFreeGuided(labels: [2], guidanceScale: 1)
        let run = try PCSampler(sde: sde, score: guided, grid: try .uniform(steps: 500, from: 1, to: 1e-3),
                                predictor: EulerMaruyama(), corrector: NoCorrector()).sample(count: 1000, using: &rng)
        let assigned = GaussianMixture.ring().assignments(run.samples)
        let share = Double(assigned.filter { $0 == 2 }.count) / 1000
        #expect(share > 0.9, "share of class-2 samples in component 2: \(share)")
    }

    @Test("labelled, dequantized, importance-sampled training resumes exactly; bad labels are refused")
    func labelledTrainingResumes() throws {
        let digits = try Digits.load(split: .train).subset(0 ..< 64)
        let arch = MLPArchitecture(rowShape: [1, 8, 8], hiddenWidth: 16, residualBlocks: 1, fourierFeatures: 4, classCount: 10)
        let scale = try DataNormalization.symmetric.dequantizedScaling(levels: 17)
        let config = TrainingConfiguration(sde: vp, architecture: arch, parameterization: .boundedNoisePrediction, dataScaling: scale,
                                           seed: 3, batchSize: 16, learningRate: 1e-3, warmup: 2, likelihoodWeighting: true, eps: 1e-2,
                                           timeSampling: .importance, noiseFloor: 0.034, dequantizationLevels: 17, labelDropout: 0.2)
        let full = try Trainer(configuration: config, data: digits.images, labels: digits.labels)
        try full.train(steps: 8)
        let half = try Trainer(configuration: config, data: digits.images, labels: digits.labels)
        try half.train(steps: 4)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cc-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try half.save(to: path)
        let resumed = try Trainer.resume(from: path, data: digits.images, labels: digits.labels)
        #expect(resumed.configuration == config)
        try resumed.train(steps: 4)
        #expect(resumed.parameters == full.parameters && resumed.ema.values == full.ema.values)
        #expect(try resumed.emaModel.dequantizationLevels == 17 && resumed.emaModel.likelihoodEps == 1e-2)
        // Label dropout: about 20% of the labels of a batch are the null label (10).
        var dropped = 0
        for step in 0 ..< 50 { dropped += try full.batch(forStep: step).labels!.filter { $0 == 10 }.count }
        #expect(abs(Double(dropped) / 800 - 0.2) < 4 * (0.2 * 0.8 / 800).squareRoot())
        // Other labels are other data; wrong counts, ranges and missing labels are refused.
        #expect(throws: ScoreSDEError.self) { try Trainer.resume(from: path, data: digits.images, labels: digits.labels.map { ($0 + 1) % 10 }) }
        #expect(throws: ScoreSDEError.self) { try Trainer(configuration: config, data: digits.images, labels: Array(digits.labels.dropLast())) }
        #expect(throws: ScoreSDEError.self) { try Trainer(configuration: config, data: digits.images, labels: digits.labels.map { $0 + 1 }) }
        #expect(throws: ScoreSDEError.self) { try Trainer(configuration: config, data: digits.images) }
        var halfLevels = digits.images
        halfLevels.storage[3] = 2.5
        #expect(throws: ScoreSDEError.self) { try Trainer(configuration: config, data: halfLevels, labels: digits.labels) }
    }

    @Test("toy labels: moons arms, swiss-roll halves and checkerboard squares")
    func toyLabels() throws {
        for name in ["moons", "swissroll", "checkerboard"] {
            let set = try Dataset.named(name, count: 2000, seed: 4)
            let labels = try #require(set.labels)
            #expect(set.classCount == (try Toy2D.classCount(name)))
            #expect(labels.allSatisfy { $0 >= 0 && $0 < set.classCount })
            #expect(Set(labels).count == set.classCount, "\(name): every class occurs")
        }
        // Moons: the upper arm (0) lies above the lower one (1) on average.
        let moons = try Dataset.named("moons", count: 2000, seed: 4)
        var y = [0.0, 0.0], n = [0.0, 0.0]
        for (r, l) in moons.labels!.enumerated() { y[l] += moons.data.storage[2 * r + 1]; n[l] += 1 }
        #expect(y[0] / n[0] > y[1] / n[1] + 0.5)
        // Checkerboard: a point's class is its square.
        let board = try Dataset.named("checkerboard", count: 500, seed: 1)
        for (r, l) in board.labels!.enumerated() {
            let i = Int(floor(board.data.storage[2 * r])), j = Int(floor(board.data.storage[2 * r + 1]))
            #expect(l == 2 * (i + 2) + (j + 2) / 2)
        }
        // Digits carry their own labels; digits-test is the held-out split.
        let test = try Dataset.named("digits-test")
        let heldOut = try Digits.load(split: .heldOut)
        #expect(test.count == 297 && test.labels == heldOut.labels)
    }
}

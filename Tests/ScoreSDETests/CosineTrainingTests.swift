import Foundation
import Testing
@testable import ScoreSDE

// Training on the cosine VP schedule (improved DDPM; `SDESpec.cosineVP`): the schedule is recorded
// in model files and read back (files without `sde.schedule`, i.e. every file written before it,
// read as the linear schedule); a short training run on a 3-mode mixture approaches the DSM loss of
// the exact mixture score — the irreducible floor — while untrained, perturbed and wrong-schedule
// scores stay measurably above it; checkpoints resume exactly; noise-aware classifiers record it too.

/// Three unequal, well-separated modes in 2-D.
private let mixture = try! GaussianMixture(weights: [0.5, 0.3, 0.2], means: [[-2, -1], [2, -1], [0, 2]],
                                           isotropicStds: [0.35, 0.35, 0.35])
private let cosine = SDESpec.defaultCosineVP

/// A fresh directory for one test's files; removed by `defer { remove(dir) }`.
private func tempDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-cosine-train-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

private func remove(_ dir: URL) { try? FileManager.default.removeItem(at: dir) }

/// `factor · base`.
private struct ScaledScore: ScoreModel {
    let base: any ScoreModel
    let factor: Double
    var rowShape: [Int]? { [2] }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { try base.score(x, at: t).scaled(by: factor) }
}

/// Per-row DSM losses of `model` on the rows of `batch` (each the loss of a one-row batch, so
/// their mean is the batch loss and their spread gives its standard error).
private func rowLosses(_ loss: DSMLoss, _ model: some ScoreModel, data: Tensor, batch: DSMBatch) throws -> [Double] {
    let x0 = batch.gather(data)
    return try (0 ..< x0.rows).map { r in
        try loss.loss(of: model, data: x0.rows(r ..< r + 1), times: [batch.times[r]], noise: batch.noise.rows(r ..< r + 1))
    }
}

/// Mean and standard error of the paired differences `a − b`.
private func pairedGap(_ a: [Double], _ b: [Double]) -> (mean: Double, se: Double) {
    let m = Moments(zip(a, b).map { $0 - $1 })
    return (m.mean, (m.variance / Double(m.n)).squareRoot())
}

@Suite("Cosine schedule: training and model files")
struct CosineTrainingTests {
    @Test("SDESpec.cosineVP: make, init from the SDE, kind, schedule, eps, parameterization, metadata round trip")
    func specRoundTrip() throws {
        let sde = try cosine.make()
        let c = try #require(sde as? CosineVPSDE)
        #expect(c == (try CosineVPSDE()), "improved DDPM's s = 0.008, DPM-Solver's T = 0.9946")
        #expect(try SDESpec(CosineVPSDE(s: 0.01, T: 0.99)) == .cosineVP(s: 0.01, T: 0.99))
        #expect(cosine.kind == "vp" && cosine.schedule == "cosine" && SDESpec.vp(betaMin: 0.1, betaMax: 20).schedule == "linear")
        #expect(SDESpec.subVP(betaMin: 0.1, betaMax: 20).schedule == nil && SDESpec.ve(sigmaMin: 0.01, sigmaMax: 50).schedule == nil)
        #expect(cosine.defaultParameterization == .noisePrediction && cosine.samplingEps == 1e-3)
        #expect(cosine.description.contains("cosine"))
        #expect(throws: ScoreSDEError.self) { _ = try SDESpec.cosineVP(s: 0.008, T: 1).make() }
        #expect(throws: ScoreSDEError.self) { _ = try SDESpec.cosineVP(s: 0, T: 0.9946).make() }

        let meta = cosine.metadata
        #expect(meta["sde"] == "vp" && meta["sde.schedule"] == "cosine" && meta["sde.beta_min"] == nil)
        func read(_ m: [String: String]) throws -> SDESpec { try SDESpec(metadata: MetadataReader(map: m, path: "test.safetensors")) }
        for spec: SDESpec in [cosine, .cosineVP(s: 0.01, T: 0.99), .vp(betaMin: 0.1, betaMax: 20), .subVP(betaMin: 0.2, betaMax: 10),
                              .ve(sigmaMin: 0.01, sigmaMax: 50)] {
            #expect(try read(spec.metadata) == spec, "\(spec)")
        }
        // The linear schedule writes no schedule key (its files are as before) and reads with or without one.
        #expect(SDESpec.vp(betaMin: 0.1, betaMax: 20).metadata["sde.schedule"] == nil)
        let linear = ["sde": "vp", "sde.beta_min": "0.1", "sde.beta_max": "20.0"]
        #expect(try read(linear) == .vp(betaMin: 0.1, betaMax: 20))
        #expect(try read(linear.merging(["sde.schedule": "linear"]) { a, _ in a }) == .vp(betaMin: 0.1, betaMax: 20))
        // Bad entries: an unknown schedule, a schedule on another SDE, missing cosine parameters.
        func ioMessage(_ m: [String: String]) -> String? {
            if case .io(_, let msg)? = scoreSDEError({ _ = try read(m) }) { return msg }
            return nil
        }
        #expect(ioMessage(linear.merging(["sde.schedule": "quadratic"]) { a, _ in a })?.contains("linear or cosine") == true)
        #expect(ioMessage(["sde": "subvp", "sde.beta_min": "0.1", "sde.beta_max": "20", "sde.schedule": "cosine"])?.contains("only the VP SDE") == true)
        #expect(ioMessage(["sde": "vp", "sde.schedule": "cosine", "sde.T": "0.9946"])?.contains("sde.cosine_s") == true)
    }

    @Test("model files: a cosine model is written and read back with its SDE; linear files (old and new) read as linear")
    func modelFiles() throws {
        let dir = try tempDirectory()
        defer { remove(dir) }
        let arch = MLPArchitecture(rowShape: [2], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4)
        let model = try MLPScore(architecture: arch, sde: .cosineVP(s: 0.01, T: 0.99), seed: 3)
        let path = dir.appendingPathComponent("cosine.safetensors").path
        try model.save(to: path)
        let meta = try Safetensors.read(path).metadata
        #expect(meta["sde"] == "vp" && meta["sde.schedule"] == "cosine" && meta["sde.cosine_s"] == "0.01" && meta["sde.T"] == "0.99")
        let back = try MLPScore.load(from: path)
        #expect(back.sdeSpec == .cosineVP(s: 0.01, T: 0.99) && back.parameters == model.parameters)
        #expect((back.sde as? CosineVPSDE) == (try CosineVPSDE(s: 0.01, T: 0.99)) && back.sde.T == 0.99)
        var rng = RandomSource(seed: 1)
        let x = Tensor.standardNormal(shape: [4, 2], using: &rng)
        #expect(try back.score(x, at: 0.5) == model.score(x, at: 0.5))

        let linearPath = dir.appendingPathComponent("linear.safetensors").path
        try MLPScore(architecture: arch, sde: .vp(betaMin: 0.1, betaMax: 20), seed: 3).save(to: linearPath)
        #expect(try Safetensors.read(linearPath).metadata["sde.schedule"] == nil)
        #expect(try MLPScore.load(from: linearPath).sdeSpec == .vp(betaMin: 0.1, betaMax: 20))
        // The shipped digits model was written before the cosine schedule existed: no schedule key, linear VP.
        #expect(try Safetensors.read(PretrainedModels.url("digits-mlp").path).metadata["sde.schedule"] == nil)
        let digits = try PretrainedModels.digitsMLP().sdeSpec
        #expect(digits.schedule == "linear", "digits: \(digits)")
    }

    /// DSM = explicit score matching + a constant: on the same (x₀, t, z), `L(s) − L(exact) =
    /// mean λ |s − s_exact|²` + a zero-mean cross term, so the exact mixture score's loss is the floor
    /// that no model can beat beyond Monte-Carlo noise. Every comparison is a paired difference on
    /// 20000 held-out rows, judged at `zBound` standard errors.
    @Test("training on the cosine SDE approaches the exact mixture score's DSM loss; untrained, perturbed and linear-schedule scores stay above it")
    func trainingApproachesTheFloor() throws {
        let steps = 500
        let config = TrainingConfiguration(sde: cosine, architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 48, residualBlocks: 2, fourierFeatures: 16),
                                           seed: 1, batchSize: 128, learningRate: 2e-3, warmup: 50, gradClip: 1, emaRate: 0.99, reduceMean: true)
        var rng = RandomSource(seed: 11)
        let trainer = try Trainer(configuration: config, data: mixture.sample(count: 4000, using: &rng))
        let untrained = try trainer.emaModel
        let losses = try trainer.train(steps: steps)
        #expect(losses.allSatisfy { $0.isFinite })
        let trained = try trainer.emaModel
        #expect(trained.sdeSpec == cosine && trained.sde is CosineVPSDE)

        // Held-out rows, times uniform on [eps, T] of the cosine SDE, fixed noise.
        let sde = try cosine.make()
        let loss = try DSMLoss(sde: sde, reduceMean: true, likelihoodWeighting: false, eps: config.eps)
        let n = 20000
        var held = RandomSource(seed: 12)
        let data = mixture.sample(count: n, using: &held)
        let batch = try loss.drawBatch(step: 0, seed: 77, batchSize: n, dataRows: n, rowShape: [2])
        #expect(batch.times.allSatisfy { $0 >= config.eps && $0 <= sde.T })
        let exact = GaussianMixtureScore(mixture, diffusedBy: sde)
        let lExact = try rowLosses(loss, exact, data: data, batch: batch)
        let lTrained = try rowLosses(loss, trained, data: data, batch: batch)
        let lUntrained = try rowLosses(loss, untrained, data: data, batch: batch)
        let lScaled = try rowLosses(loss, ScaledScore(base: exact, factor: 0.8), data: data, batch: batch)
        // The exact score of the same data under the linear schedule: what a model trained on the
        // wrong SDE would at best have learned.
        let lLinear = try rowLosses(loss, GaussianMixtureScore(mixture, diffusedBy: try VPSDE()), data: data, batch: batch)

        let trainedGap = pairedGap(lTrained, lExact), untrainedGap = pairedGap(lUntrained, lExact)
        let scaledGap = pairedGap(lScaled, lExact), linearGap = pairedGap(lLinear, lExact)
        let report = "floor \(Moments(lExact).mean); excess over it (± se): trained \(trainedGap), untrained \(untrainedGap), 0.8 × exact \(scaledGap), linear-schedule exact \(linearGap)"
        // The floor: nothing beats the exact score.
        for gap in [trainedGap, untrainedGap, scaledGap, linearGap] { #expect(gap.mean > -zBound * gap.se, "\(report)") }
        // Training moved the model towards the floor, past every reference score.
        for (name, other) in [("untrained", lUntrained), ("0.8 × exact", lScaled), ("linear-schedule exact", lLinear)] {
            let d = pairedGap(other, lTrained)
            #expect(d.mean > zBound * d.se, "the trained model must beat the \(name) score: \(d); \(report)")
        }
    }

    @Test("a cosine run resumes bitwise from its checkpoint, which records the schedule")
    func resume() throws {
        let dir = try tempDirectory()
        defer { remove(dir) }
        var rng = RandomSource(seed: 4)
        let data = mixture.sample(count: 300, using: &rng)
        let config = TrainingConfiguration(sde: cosine, architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 16, residualBlocks: 1, fourierFeatures: 4),
                                           seed: 5, batchSize: 32, learningRate: 1e-3, warmup: 5, emaRate: 0.99, reduceMean: true)
        let straight = try Trainer(configuration: config, data: data)
        let all = try straight.train(steps: 12)
        let first = try Trainer(configuration: config, data: data)
        let a = try first.train(steps: 6)
        let path = dir.appendingPathComponent("ckpt.safetensors").path
        try first.save(to: path)
        #expect(try Safetensors.read(path).metadata["sde.schedule"] == "cosine")
        let resumed = try Trainer.resume(from: path, data: data)
        #expect(resumed.configuration.sde == cosine && resumed.configuration.eps == config.eps)
        let b = try resumed.train(steps: 6)
        #expect((a + b).map(\.bitPattern) == all.map(\.bitPattern))
        #expect(resumed.parameters == straight.parameters && resumed.ema.values == straight.ema.values)
        // The training eps must lie below the cosine schedule's end time T = 0.9946, not just below 1.
        var late = config
        late.eps = 0.995
        #expect(invalidParameterText { try late.validate() }?.contains("0.9946") == true)
    }

    @Test("noise-aware classifiers on the cosine SDE: file round trip; they guide cosine models only")
    func classifier() throws {
        let dir = try tempDirectory()
        defer { remove(dir) }
        let arch = NoiseAwareClassifier.Architecture(rowShape: [2], classCount: 3, hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4)
        let c = try NoiseAwareClassifier(architecture: arch, sde: cosine, seed: 2)
        #expect(c.sde is CosineVPSDE && c.sde.T == 0.9946)
        #expect(throws: ScoreSDEError.self) { _ = try c.logProbabilities(Tensor(zeros: [1, 2]), at: 0.995) }   // beyond T
        let path = dir.appendingPathComponent("classifier.safetensors").path
        try c.save(to: path)
        let back = try NoiseAwareClassifier.load(from: path)
        #expect(back.sdeSpec == cosine && back.parameters == c.parameters)
        let scoreArch = MLPArchitecture(rowShape: [2], hiddenWidth: 4, residualBlocks: 0, fourierFeatures: 2)
        _ = try MLPScore(architecture: scoreArch, sde: cosine, seed: 1).classifierGuided(by: back, labels: [1], scale: 1)
        #expect(throws: ScoreSDEError.self) {
            _ = try MLPScore(architecture: scoreArch, sde: .vp(betaMin: 0.1, betaMax: 20), seed: 1).classifierGuided(by: back, labels: [1], scale: 1)
        }
    }
}

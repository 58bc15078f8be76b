import Foundation
import Testing
@testable import ScoreSDE

// Training: the DSM loss (its minimiser is the true score), Adam / warm-up / clipping / EMA against
// their formulas, a short training run that learns a 3-mode mixture, exact resume, and checkpoint
// files (round trip, loader, corrupt files).

/// `base + delta` (a constant vector field added to the score).
private struct ShiftedScore: ScoreModel {
    let base: GaussianMixtureScore
    let delta: [Double]
    var rowShape: [Int]? { base.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor {
        var s = try base.score(x, at: t)
        let d = delta.count
        for i in 0 ..< s.count { s.storage[i] += delta[i % d] }
        return s
    }
}

/// `factor · base`.
private struct ScaledScore: ScoreModel {
    let base: GaussianMixtureScore
    let factor: Double
    var rowShape: [Int]? { base.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { try base.score(x, at: t).scaled(by: factor) }
}

/// Three unequal, well-separated modes in 2-D.
private let threeModes = try! GaussianMixture(weights: [0.5, 0.3, 0.2], means: [[-2, -1], [2, -1], [0, 2]],
                                              isotropicStds: [0.35, 0.35, 0.35])

/// A path in a fresh per-test directory; remove it with `removeTemp`.
private func tempPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-train-\(getpid())-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

private func removeTemp(_ paths: String...) {
    for p in paths { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: p).deletingLastPathComponent().path) }
}

private func smallConfig(seed: UInt64 = 5, sde: SDESpec = .vp(betaMin: 0.1, betaMax: 20)) -> TrainingConfiguration {
    TrainingConfiguration(sde: sde, architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 16, residualBlocks: 1, fourierFeatures: 4),
                          seed: seed, batchSize: 32, learningRate: 1e-3, warmup: 5, gradClip: 1, emaRate: 0.99, reduceMean: true)
}

private func mixtureData(_ n: Int, seed: UInt64) -> Tensor {
    var rng = RandomSource(seed: seed)
    return threeModes.sample(count: n, using: &rng)
}

@Suite("Training")
struct TrainingTests {
    /// DSM = explicit score matching + a constant, so the true score minimises it. With the same
    /// (seed-fixed) t and z: the exact score beats exact ± δ and 0.8 × exact, and
    /// `(L(s+δ) + L(s−δ))/2 − L(s) = mean_r k λ(t_r) |δ|²` exactly (the cross terms cancel).
    @Test("DSM loss: the exact mixture score beats perturbed scores on the same t and z",
          arguments: [(SDESpec.vp(betaMin: 0.1, betaMax: 20), false, true), (.vp(betaMin: 0.1, betaMax: 20), true, false),
                      (.ve(sigmaMin: 0.01, sigmaMax: 10), false, false), (.ve(sigmaMin: 0.01, sigmaMax: 10), true, true),
                      (.subVP(betaMin: 0.1, betaMax: 20), false, true)])
    func exactScoreMinimizesDSM(_ spec: SDESpec, _ likelihoodWeighting: Bool, _ reduceMean: Bool) throws {
        let sde = try spec.make()
        let loss = try DSMLoss(sde: sde, reduceMean: reduceMean, likelihoodWeighting: likelihoodWeighting)
        let n = 20000
        let data = mixtureData(n, seed: 3)
        let batch = try loss.drawBatch(step: 0, seed: 99, batchSize: n, dataRows: n, rowShape: [2])
        let exact = GaussianMixtureScore(threeModes, diffusedBy: sde)
        let delta = [0.7, -0.7]
        let l0 = try loss.loss(of: exact, data: data, batch: batch)
        let lp = try loss.loss(of: ShiftedScore(base: exact, delta: delta), data: data, batch: batch)
        let lm = try loss.loss(of: ShiftedScore(base: exact, delta: delta.map { -$0 }), data: data, batch: batch)
        let ls = try loss.loss(of: ScaledScore(base: exact, factor: 0.8), data: data, batch: batch)
        #expect(l0 < lp && l0 < lm && l0 < ls, "exact \(l0), +δ \(lp), −δ \(lm), 0.8× \(ls)")
        let k = reduceMean ? 1.0 / 2 : 0.5   // mean over D = 2 values, or half their sum
        let predicted = batch.times.reduce(0.0) { acc, t in
            let lambda = likelihoodWeighting ? pow(sde.diffusion(at: t), 2) : pow(sde.marginal(at: t).std, 2)
            return acc + k * lambda * 0.98
        } / Double(n)
        let quadratic = (lp + lm) / 2 - l0
        #expect(abs(quadratic - predicted) <= 1e-9 * (abs(lp) + abs(l0)), "quadratic part \(quadratic) vs k·E[λ]·|δ|² = \(predicted)")
    }

    @Test("minibatches depend only on (seed, step): indices in range, t in [eps, T), standard normal noise")
    func batchesKeyedBySeedAndStep() throws {
        let loss = try DSMLoss(sde: VPSDE(), eps: 1e-5)
        let a = try loss.drawBatch(step: 7, seed: 1, batchSize: 500, dataRows: 13, rowShape: [3])
        _ = try loss.drawBatch(step: 3, seed: 1, batchSize: 500, dataRows: 13, rowShape: [3])
        #expect(try loss.drawBatch(step: 7, seed: 1, batchSize: 500, dataRows: 13, rowShape: [3]) == a)
        #expect(try loss.drawBatch(step: 8, seed: 1, batchSize: 500, dataRows: 13, rowShape: [3]) != a)
        #expect(try loss.drawBatch(step: 7, seed: 2, batchSize: 500, dataRows: 13, rowShape: [3]) != a)
        #expect(a.indices.allSatisfy { (0 ..< 13).contains($0) })
        #expect(Set(a.indices).count == 13, "500 draws hit all 13 rows")
        #expect(a.times.allSatisfy { $0 >= 1e-5 && $0 < 1 })
        let u = Moments(a.times)   // U(eps, 1): mean 1/2, variance 1/12; se of mean √(1/12/500) ≈ 0.013
        #expect(abs(u.mean - 0.5) < zBound * (1.0 / 12 / 500).squareRoot())
        let z = Moments(a.noise.storage)
        #expect(a.noise.shape == [500, 3])
        #expect(abs(z.mean) < zBound / 1500.0.squareRoot() && abs(z.variance - 1) < zBound * (2.0 / 1500).squareRoot())
        // A prefix of a larger batch is the smaller batch (rows are keyed by index).
        let small = try loss.drawBatch(step: 7, seed: 1, batchSize: 20, dataRows: 13, rowShape: [3])
        #expect(small.indices == Array(a.indices.prefix(20)) && small.times == Array(a.times.prefix(20)))
        #expect(invalidParameterText { _ = try loss.drawBatch(step: -1, seed: 1, batchSize: 2, dataRows: 3, rowShape: [3]) } != nil)
        #expect(invalidParameterText { _ = try loss.drawBatch(step: 0, seed: 1, batchSize: 2, dataRows: 0, rowShape: [3]) } != nil)
        #expect(invalidParameterText { _ = try DSMLoss(sde: VPSDE(), eps: 0) } != nil)
    }

    @Test("Adam, warm-up and clipping follow torch's formulas; EMA decay ramps as score_sde's")
    func optimizerFormulas() {
        var adam = AdamOptimizer(parameterCount: 2, learningRate: 0.1, warmup: 4, gradClip: -1)
        #expect(adam.learningRate(atStep: 0) == 0 && adam.learningRate(atStep: 2) == 0.05 && adam.learningRate(atStep: 9) == 0.1)
        var p = [1.0, -2.0]
        var m = [0.0, 0.0], v = [0.0, 0.0], ref = p
        for step in 0 ..< 6 {
            var g = [0.3 * Double(step + 1), -0.2]
            let gg = g
            adam.step(&p, gradient: &g, step: step, trainable: [0 ..< 2])
            let k = Double(step + 1), lr = 0.1 * min(Double(step) / 4, 1)
            for i in 0 ..< 2 {
                m[i] = 0.9 * m[i] + 0.1 * gg[i]; v[i] = 0.999 * v[i] + 0.001 * gg[i] * gg[i]
                ref[i] -= lr / (1 - pow(0.9, k)) * m[i] / (v[i].squareRoot() / (1 - pow(0.999, k)).squareRoot() + 1e-8)
            }
        }
        for i in 0 ..< 2 { #expect(abs(p[i] - ref[i]) <= 1e-14, "Adam parameter \(i): \(p[i]) vs \(ref[i])") }
        // Only trainable ranges move.
        var q = [1.0, 1.0, 1.0], gq = [1.0, 1.0, 1.0]
        var adam3 = AdamOptimizer(parameterCount: 3, learningRate: 0.1, warmup: 0, gradClip: -1)
        adam3.step(&q, gradient: &gq, step: 0, trainable: [1 ..< 3])
        #expect(q[0] == 1 && q[1] < 1 && q[2] < 1)
        // clip_grad_norm_: norm 5 clipped to 1 → factor 1/(5 + 1e-6); below the threshold: untouched.
        var g = [3.0, 4.0]
        #expect(AdamOptimizer.clipGradientNorm(&g, maxNorm: 1, ranges: [0 ..< 2]) == 5)
        #expect(abs(g[0] - 3 / (5 + 1e-6)) < 1e-15 && abs(g[1] - 4 / (5 + 1e-6)) < 1e-15)
        var small = [0.3, 0.4]
        AdamOptimizer.clipGradientNorm(&small, maxNorm: 1, ranges: [0 ..< 2])
        #expect(small == [0.3, 0.4])

        var ema = ExponentialMovingAverage(rate: 0.999, initial: [0])
        ema.update(with: [1])      // decay min(0.999, 2/11)
        #expect(abs(ema.values[0] - 9.0 / 11) < 1e-15)
        ema.update(with: [1])      // decay 3/12
        #expect(abs(ema.values[0] - (1 - 2.0 / 11 * 3 / 12)) < 1e-15)
        for _ in 0 ..< 100_000 { ema.update(with: [1]) }
        #expect(ema.nextDecay == 0.999)
    }

    /// A small network trained for 500 steps on 4000 samples of a 3-mode mixture (VP): the loss
    /// falls, and PC samples from the EMA weights put every mode's weight within [½, 2]× its truth.
    @Test("a short training run lowers the loss and learns the modes of a 3-mode mixture")
    func trainingLearnsMixture() throws {
        let steps = 500
        let spec = SDESpec.vp(betaMin: 0.1, betaMax: 20)
        let config = TrainingConfiguration(sde: spec, architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 48, residualBlocks: 2, fourierFeatures: 16),
                                           seed: 1, batchSize: 128, learningRate: 2e-3, warmup: 50, gradClip: 1, emaRate: 0.999, reduceMean: true)
        let trainer = try Trainer(configuration: config, data: mixtureData(4000, seed: 11))
        let losses = try trainer.train(steps: steps)
        let window = steps / 5
        let first = losses[0 ..< window].reduce(0, +) / Double(window), last = losses[(steps - window)...].reduce(0, +) / Double(window)
        #expect(losses.allSatisfy { $0.isFinite })
        #expect(last < 0.8 * first, "mean loss of the first \(window) steps \(first), of the last \(window) \(last)")

        let sde = try VPSDE()
        let model = try trainer.emaModel
        let sampler = PCSampler(sde: sde, score: model, grid: try .uniform(steps: 200, from: 1, to: 1e-3),
                                predictor: EulerMaruyama(), corrector: NoCorrector())
        // 4000 samples (5 s.e.: 0.040 on the 0.5 weight, 0.025 on the mean coordinates of the
        // smallest mode) against the truth plus the trained model's own bias, measured with 40 000
        // samples from the same network (SCORESDE_MEASURE_BIAS=1; 1σ of that measurement: 0.0025
        // on a weight, 0.004 on a mean, 0.0005 on the 3σ fraction): the allowances are the measured
        // |bias| + 2σ of it, rounded up. A model that learned equal weights (1/3 each) is off by
        // 0.17 on the first, 2.4 times its band (0.07).
        let n = measureBias ? 40_000 : 4000
        var rng = RandomSource(seed: 2)
        let x = try sampler.sample(count: n, using: &rng).samples
        let st = ModeStatistics(x, truth: threeModes)
        let (biasWeight, biasMean, biasNear) = (Self.trainedWeightBias, Self.trainedMeanBias, Self.trainedNearBias)
        for (k, w) in threeModes.weights.enumerated() {
            let got = Double(st.counts[k]) / Double(st.n), nk = Double(st.counts[k])
            if measureBias { print("[training-bias] mode \(k): weight \(got - w), mean \(zip(st.means[k], threeModes.means[k]).map { $0 - $1 })") }
            #expect(abs(got - w) <= zBound * (w * (1 - w) / Double(n)).squareRoot() + biasWeight, "mode \(k): weight \(got) vs \(w)")
            #expect(zip(st.means[k], threeModes.means[k]).allSatisfy { abs($0 - $1) <= zBound * 0.35 / nk.squareRoot() + biasMean },
                    "mode \(k) mean \(st.means[k]) vs \(threeModes.means[k])")
        }
        // Samples within 3σ of a mode mean: for a 2-D isotropic Gaussian P(‖z‖ < 3) = 1 − e^{−9/2}
        // = 0.98889 (the modes are ≥ 11σ apart, so the other modes add nothing).
        let near = (0 ..< x.rows).filter { r in
            let row = x.row(r)
            return threeModes.means.contains { m in ((row[0] - m[0]) * (row[0] - m[0]) + (row[1] - m[1]) * (row[1] - m[1])).squareRoot() < 3 * 0.35 }
        }.count
        let p = 1 - exp(-4.5), fraction = Double(near) / Double(n)
        if measureBias { print("[training-bias] fraction within 3σ \(fraction) vs \(p)") }
        #expect(fraction >= p - zBound * (p * (1 - p) / Double(n)).squareRoot() - biasNear, "fraction of samples within 3σ of a mode: \(fraction) vs \(p)")
    }

    /// Biases of the 500-step model above (see trainingLearnsMixture), measured with 40 000 samples:
    /// weights −0.025 / +0.0075 / +0.017, mean coordinates up to 0.086 (mode 2), 3σ fraction 0.942
    /// (truth 0.989); each allowance is the largest |bias| + 2σ of its measurement.
    static let trainedWeightBias = 0.03, trainedMeanBias = 0.095, trainedNearBias = 0.05

    @Test("resume after interruption: 2k steps equal k steps, save, resume, k steps — bitwise")
    func resumeIsExact() throws {
        let data = mixtureData(300, seed: 4)
        let config = smallConfig()
        let straight = try Trainer(configuration: config, data: data)
        let all = try straight.train(steps: 24)

        let first = try Trainer(configuration: config, data: data)
        let a = try first.train(steps: 12)
        let path = tempPath("resume.safetensors")
        defer { removeTemp(path) }
        try first.save(to: path)
        let resumed = try Trainer.resume(from: path, data: data)
        #expect(resumed.completedSteps == 12)
        #expect(resumed.configuration.seed == config.seed && resumed.configuration.batchSize == config.batchSize)
        let b = try resumed.train(steps: 12)

        #expect((a + b).map(\.bitPattern) == all.map(\.bitPattern), "loss sequences")
        #expect(resumed.parameters.map(\.bitPattern) == straight.parameters.map(\.bitPattern), "weights")
        #expect(resumed.ema.values.map(\.bitPattern) == straight.ema.values.map(\.bitPattern), "EMA weights")
        #expect(resumed.optimizer.firstMoment == straight.optimizer.firstMoment && resumed.optimizer.secondMoment == straight.optimizer.secondMoment)
        #expect(resumed.completedSteps == 24)
        // The losses are not trivially equal: training moved.
        #expect(Set(all).count > 20)
    }

    @Test("checkpoints: metadata, EMA/raw loading, weights files, other data and corrupt files")
    func checkpointFiles() throws {
        let data = mixtureData(200, seed: 8)
        var config = smallConfig(sde: .ve(sigmaMin: 0.01, sigmaMax: 8))
        config.dataScaling = try DataScaling(scale: 0.5, shift: 1)
        let trainer = try Trainer(configuration: config, data: data)
        try trainer.train(steps: 6)
        let path = tempPath("ckpt.safetensors")
        defer { removeTemp(path) }
        try trainer.save(to: path)

        let file = try Safetensors.read(path)
        let meta = file.metadata
        #expect(meta["format"] == "scoresde.mlp" && meta["format.content"] == "checkpoint" && meta["train.step"] == "6")
        #expect(meta["sde"] == "ve" && meta["sde.sigma_max"] == "8.0" && meta["sde.N"] == nil)
        #expect(meta["model.row_shape"] == "2" && meta["model.hidden_width"] == "16" && meta["model.parameterization"] == "scaled_by_sigma")
        #expect(meta["data.scale"] == "0.5" && meta["data.shift"] == "1.0" && meta["train.ema_rate"] == "0.99")
        #expect(file.tensors.allSatisfy { $0.dtype == .f64 })
        #expect(file["ema.output.weight"]?.shape == [2, 16] && file["adam.exp_avg.input.weight"] != nil && file["adam.exp_avg.embed.W"] == nil)

        let ema = try MLPScore.load(from: path)
        #expect(ema.parameters == trainer.ema.values)
        #expect(ema.sdeSpec == config.sde && ema.architecture == config.architecture && ema.dataScaling == config.dataScaling)
        #expect(try MLPScore.load(from: path, weights: .raw).parameters == trainer.parameters)
        let x = data.rows(0 ..< 5)
        #expect(try ema.score(x, at: 0.3) == trainer.emaModel.score(x, at: 0.3))
        let back = ema.dataScaling.toData(ema.dataScaling.toModel(x))
        #expect(zip(back.storage, x.storage).allSatisfy { abs($0 - $1) <= 1e-15 * max(1, abs($1)) })

        // Weights-only files, F64 exact and F32 approximate; they cannot be resumed.
        let wpath = tempPath("weights.safetensors")
        defer { removeTemp(wpath) }
        try ema.save(to: wpath)
        #expect(try MLPScore.load(from: wpath).parameters == ema.parameters)
        #expect(try Safetensors.read(wpath)["input.weight"]?.shape == [16, 2])
        try ema.save(to: wpath, dtype: .f32)
        let f32 = try MLPScore.load(from: wpath)
        #expect(zip(f32.parameters, ema.parameters).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
        if case .io(_, let m)? = scoreSDEError({ _ = try Trainer.resume(from: wpath, data: data) }) {
            #expect(m.contains("weights file"))
        } else { Issue.record("resuming from a weights file must fail with an io error") }

        // Resuming on other data is refused unless allowed.
        let other = mixtureData(200, seed: 9)
        #expect(invalidArgumentText { _ = try Trainer.resume(from: path, data: other) }?.contains("not the data") == true)
        #expect(try Trainer.resume(from: path, data: other, allowDifferentData: true).completedSteps == 6)

        // Corrupt files: truncated, a missing tensor, a wrong shape, NaN weights, no format, bad metadata.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let bad = tempPath("bad.safetensors")
        defer { removeTemp(bad) }
        func expectIO(_ label: String, _ fragment: String, _ body: () throws -> Void) {
            if case .io(let p, let m)? = scoreSDEError(body) {
                #expect(p == bad && m.contains(fragment), "\(label): \(m)")
            } else { Issue.record("\(label): expected ScoreSDEError.io") }
        }
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: bad))
        expectIO("truncated", "truncated") { _ = try MLPScore.load(from: bad) }
        try bytes.prefix(4).write(to: URL(fileURLWithPath: bad))
        expectIO("4 bytes", "truncated") { _ = try MLPScore.load(from: bad) }

        func rewrite(_ edit: (inout [SafetensorsTensor], inout [String: String]) -> Void) throws {
            var t = file.tensors, m = file.metadata
            edit(&t, &m)
            // A valid checksum, so that the check under test is the one that fires.
            m[ModelFile.checksumKey] = String(format: "%08x", ModelFile.checksum(tensors: t, metadata: m))
            try Safetensors.write(t, metadata: m, to: bad)
        }
        try rewrite { t, _ in t.removeAll { $0.name == "ema.blocks.0.dense2.bias" } }
        expectIO("missing tensor", "missing tensor 'ema.blocks.0.dense2.bias'") { _ = try MLPScore.load(from: bad) }
        try rewrite { t, _ in
            let i = t.firstIndex { $0.name == "ema.input.weight" }!
            t[i] = SafetensorsTensor(name: "ema.input.weight", shape: [2, 16], values: t[i].values)
        }
        expectIO("wrong shape", "shape [2, 16], expected [16, 2]") { _ = try MLPScore.load(from: bad) }
        try rewrite { t, _ in
            let i = t.firstIndex { $0.name == "ema.output.bias" }!
            t[i] = SafetensorsTensor(name: "ema.output.bias", shape: [2], values: [.nan, 0])
        }
        expectIO("NaN weights", "NaN") { _ = try MLPScore.load(from: bad) }
        try rewrite { _, m in m["format"] = nil }
        expectIO("no format", "not a ScoreSDE model file") { _ = try MLPScore.load(from: bad) }
        try rewrite { _, m in m["model.hidden_width"] = "wide" }
        expectIO("bad metadata", "'model.hidden_width' is 'wide'") { _ = try MLPScore.load(from: bad) }
        try rewrite { _, m in m["sde"] = "cosine" }
        expectIO("unknown SDE", "expected ve, vp or subvp") { _ = try MLPScore.load(from: bad) }
        try rewrite { _, m in m["sde.sigma_max"] = "0.001" }
        expectIO("invalid SDE parameters", "cannot be built") { _ = try MLPScore.load(from: bad) }
        try rewrite { _, m in m["train.step"] = nil }
        expectIO("no step", "'train.step'") { _ = try Trainer.resume(from: bad, data: data) }
    }

    @Test("trainer rejects bad settings and data")
    func trainerValidation() throws {
        let data = mixtureData(50, seed: 1)
        var c = smallConfig()
        c.learningRate = 0
        #expect(invalidParameterText { _ = try Trainer(configuration: c, data: data) }?.contains("learningRate") == true)
        c = smallConfig(); c.batchSize = 0
        #expect(invalidParameterText { _ = try Trainer(configuration: c, data: data) } != nil)
        c = smallConfig(); c.emaRate = 1
        #expect(invalidParameterText { _ = try Trainer(configuration: c, data: data) } != nil)
        #expect(throws: ScoreSDEError.self) { _ = try Trainer(configuration: smallConfig(), data: mixtureData(10, seed: 1).reshaped([5, 4])) }
        var nan = data; nan.storage[3] = .nan
        #expect(throws: ScoreSDEError.self) { _ = try Trainer(configuration: smallConfig(), data: nan) }
    }
}

import Foundation
import Testing
@testable import ScoreSDE

// ScoreModel with a time per row (issue 21, item 3): every model's per-row call against the
// single-time call on each row — bitwise where the arithmetic is the same (exact mixtures,
// thresholding, guidance by an exact classifier, the grouping default), to 1e-12 relative for the
// float64 MLP (a batched product rounds differently from a one-row product), to float32 rounding
// for the float32 networks. Per-row labels follow the rows through gathered and split calls.

private let vpSpec = SDESpec.vp(betaMin: 0.1, betaMax: 20)

/// Rows at distinct times, two rows sharing one (so grouping paths meet a group of two).
private func times(_ n: Int, in range: ClosedRange<Double> = 0.02 ... 0.98) -> [Double] {
    var t = (0 ..< n).map { range.lowerBound + (range.upperBound - range.lowerBound) * Double(($0 * 7) % n) / Double(max(n - 1, 1)) }
    if n > 3 { t[3] = t[1] }
    return t
}

private func inputs(rows: Int, rowShape: [Int], seed: UInt64, scale: Double = 1) -> Tensor {
    var rng = RandomSource(seed: seed)
    var x = Tensor.standardNormal(shape: [rows] + rowShape, using: &rng)
    x.scale(by: scale)
    return x
}

/// Each row of the per-row call against the single-time call on that row alone, as row `r` of the
/// batch (`tolerance` 0: bitwise; else relative to the row's largest value).
private func expectRowsMatch<M: ScoreModel>(_ model: M, _ x: Tensor, _ t: [Double], tolerance: Double = 0,
                                           _ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let batched = try model.score(x, at: t)
    #expect(batched.shape == x.shape, "\(what): shape \(batched.shape)", sourceLocation: sourceLocation)
    let d = x.rowSize
    for r in 0 ..< x.rows {
        let single = try ScoreBatch.$rows.withValue(r ..< r + 1) { try model.score(x.rows(r ..< r + 1), at: t[r]) }   // per-row labels: row r's
        let got = Array(batched.storage[r * d ..< (r + 1) * d])
        if tolerance == 0 {
            #expect(got == single.storage, "\(what): row \(r) at t = \(t[r]) differs", sourceLocation: sourceLocation)
        } else {
            let scale = max(single.storage.map(abs).max() ?? 0, 1e-300)
            let err = zip(got, single.storage).map { abs($0 - $1) }.max() ?? 0
            #expect(err <= tolerance * scale, "\(what): row \(r) at t = \(t[r]): error \(err / scale) relative", sourceLocation: sourceLocation)
        }
    }
}

/// A user model with only the single-time method: its score is `−x · (1 + t)` plus, in the last
/// value, the row's label read through ``ScoreBatch`` (so the tests see which rows a call covered).
private struct LabelledToy: ScoreModel {
    let labels: [Int]
    var rowShape: [Int]? { [3] }
    func score(_ x: Tensor, at t: Double) throws -> Tensor {
        let mine = try ScoreBatch.slice(labels, rows: x.rows)
        var s = x.scaled(by: -(1 + t))
        for r in 0 ..< x.rows { s.storage[r * 3 + 2] = Double(mine.count == 1 ? mine[0] : mine[r]) }
        return s
    }
}

/// A user model returning one value too few per call.
private struct WrongShape: ScoreModel {
    var rowShape: [Int]? { [2] }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { Tensor(zeros: [x.rows, 1]) }
}

@Suite("Score models with a time per row")
struct PerRowTimeTests {
    @Test("exact mixtures: bitwise the single-time call on each row; one time for all rows is the single-time call")
    func mixtures() throws {
        let sde = try VPSDE()
        let ring = GaussianMixtureScore(GaussianMixture.ring(), diffusedBy: sde)
        let x = inputs(rows: 37, rowShape: [2], seed: 1, scale: 3)
        let t = times(37)
        try expectRowsMatch(ring, x, t, "GaussianMixtureScore (ring)")
        let grid = GaussianMixtureScore(try GaussianMixture.grid(side: 4), diffusedBy: try VESDE())
        try expectRowsMatch(grid, x, times(37, in: 1e-4 ... 1), "GaussianMixtureScore (grid, VE)")
        #expect(try ring.score(x, at: [Double](repeating: 0.3, count: 37)) == ring.score(x, at: 0.3))
        let full = FullCovarianceMixtureScore(try FullCovarianceMixture(weights: [0.3, 0.7], means: [[1, 0], [-1, 2]],
                                                                      covariances: [[[1, 0.4], [0.4, 0.5]], [[0.3, -0.1], [-0.1, 0.8]]]),
                                              diffusedBy: sde)
        try expectRowsMatch(full, x, t, "FullCovarianceMixtureScore")
        #expect(try full.score(x, at: [Double](repeating: 0.3, count: 37)) == full.score(x, at: 0.3))
    }

    @Test("thresholding, classifier guidance, classifier-free guidance and noise prediction over exact models: bitwise")
    func combinations() throws {
        let sde = try VPSDE()
        let mixture = try GaussianMixture(weights: [0.4, 0.3, 0.2, 0.1], means: [[3, 0], [0, 3], [-3, 0], [0, -3]],
                                          isotropicStds: [0.3, 0.3, 0.3, 0.3])
        let exact = GaussianMixtureScore(mixture, diffusedBy: sde)
        let x = inputs(rows: 23, rowShape: [2], seed: 2, scale: 3)
        let t = times(23)
        try expectRowsMatch(try StaticThresholdedScore(exact, sde: sde, range: -1 ... 1), x, t, "StaticThresholdedScore")
        let classifier = try GaussianMixtureClassifier(mixture, diffusedBy: sde, labels: [0, 1, 0, 1], target: 1)
        try expectRowsMatch(ClassifierGuidedScore(base: exact, classifier: classifier, scale: 2), x, t, "ClassifierGuidedScore")
        let other = GaussianMixtureScore(GaussianMixture.ring(), diffusedBy: sde)
        try expectRowsMatch(ClassifierFreeGuidance(conditional: exact, unconditional: other, scale: 1.5), x, t, "ClassifierFreeGuidance")
        let noise = NoisePredictionScore(sde: sde, rowShape: [2]) { y, time in
            var e = try exact.score(y, at: time)
            e.scale(by: -sde.marginal(at: time).std)
            return e
        }
        try expectRowsMatch(noise, x, t, "NoisePredictionScore (grouping default)")
        // Per-row targets of the exact classifier follow the rows of each time group.
        let targets = (0 ..< 23).map { $0 % 2 }
        let perRow = ClassifierGuidedScore(base: exact, classifier: try GaussianMixtureClassifier(mixture, diffusedBy: sde, labels: [0, 1, 0, 1], targets: targets))
        let batched = try perRow.score(x, at: t)
        for r in 0 ..< 23 {
            let one = ClassifierGuidedScore(base: exact, classifier: try GaussianMixtureClassifier(mixture, diffusedBy: sde, labels: [0, 1, 0, 1], target: targets[r]))
            #expect(Array(batched.storage[r * 2 ..< r * 2 + 2]) == (try one.score(x.rows(r ..< r + 1), at: t[r])).storage, "row \(r)")
        }
    }

    @Test("the grouping default: a user model's rows, labels read through ScoreBatch, and gathered, split calls")
    func groupingDefault() throws {
        let labels = Array(100 ..< 110)
        let toy = LabelledToy(labels: labels)
        let x = inputs(rows: 10, rowShape: [3], seed: 3)
        let t = times(10)
        let s = try toy.score(x, at: t)
        for r in 0 ..< 10 {
            #expect(s.storage[r * 3] == -x.storage[r * 3] * (1 + t[r]) && s.storage[r * 3 + 2] == Double(labels[r]), "row \(r)")
        }
        // Active rows gathered from the batch, through ReverseSDE with and without a batch split.
        let active = [1, 4, 5, 8]
        for batchSize in [nil, 1, 3] as [Int?] {
            let reverse = ReverseSDE(sde: try VPSDE(), score: toy, batchSize: batchSize)
            var out = Tensor(zeros: [0])
            let xs = x.gatherRows(active)
            try reverse.score(xs, at: active.map { t[$0] }, rows: active, into: &out)
            #expect(reverse.scoreEvaluations == 1, "one batched call is one evaluation")
            for (i, r) in active.enumerated() {
                #expect(out.storage[i * 3 + 2] == Double(labels[r]) && out.storage[i * 3] == -x.storage[r * 3] * (1 + t[r]),
                        "batch size \(String(describing: batchSize)): active row \(r)")
            }
        }
        #expect(throws: ScoreSDEError.self) { _ = try toy.score(x, at: [0.5]) }
        #expect(throws: ScoreSDEError.self) { _ = try WrongShape().score(inputs(rows: 3, rowShape: [2], seed: 1), at: [0.1, 0.2, 0.3]) }
    }

    @Test("MLP: one pass with per-row time embedding, 1e-12 relative (float64) / float32 rounding; labels, base, guidance")
    func mlp() throws {
        let arch = MLPArchitecture(rowShape: [3], hiddenWidth: 16, residualBlocks: 2, fourierFeatures: 4, fourierScale: 2)
        let model = try MLPScore(architecture: arch, sde: vpSpec, seed: 3)
        let x = inputs(rows: 29, rowShape: [3], seed: 4)
        let t = times(29)
        try expectRowsMatch(model, x, t, tolerance: 1e-12, "MLPScore float64")
        #expect(try model.score(x, at: [Double](repeating: 0.3, count: 29)) == model.score(x, at: 0.3))
        try expectRowsMatch(model.withPrecision(.float32), x, t, tolerance: 2e-5, "MLPScore float32")
        let scaled = try MLPScore(architecture: arch, sde: vpSpec, parameterization: .scaledBySigma, seed: 5)
        try expectRowsMatch(scaled, x, t, tolerance: 1e-12, "MLPScore scaledBySigma")
        let bounded = try MLPScore(architecture: MLPArchitecture(rowShape: [3], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 3, timeEmbeddingInBlocks: false),
                                   sde: vpSpec, parameterization: .boundedNoisePrediction, noiseFloor: 0.05, seed: 6)
        try expectRowsMatch(bounded, x, t, tolerance: 1e-12, "MLPScore bounded, no block embedding")
        let based = try MLPScore(architecture: MLPArchitecture(rowShape: [3], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4, gaussianBase: true),
                                 sde: vpSpec, seed: 7).withGaussianBase(fittedTo: inputs(rows: 50, rowShape: [3], seed: 8, scale: 2))
        try expectRowsMatch(based, x, t, tolerance: 1e-12, "MLPScore with a Gaussian base")
        // Class-conditional: per-row labels (rows of several labels and times), and guidance.
        let conditional = try MLPScore(architecture: MLPArchitecture(rowShape: [3], hiddenWidth: 8, residualBlocks: 2, fourierFeatures: 3, classCount: 3),
                                       sde: vpSpec, seed: 9)
        let labels: [Int?] = (0 ..< 29).map { $0 % 4 == 3 ? nil : $0 % 3 }
        let perRow = try conditional.score(x, at: t, labels: labels)
        for r in 0 ..< 29 {
            let one = try conditional.score(x.rows(r ..< r + 1), at: t[r], labels: [labels[r]])
            let got = Array(perRow.storage[r * 3 ..< r * 3 + 3])
            let err = zip(got, one.storage).map { abs($0 - $1) }.max()!
            #expect(err <= 1e-12 * one.storage.map(abs).max()!, "labelled row \(r): \(err)")
        }
        try expectRowsMatch(try conditional.conditioned(on: [2]), x, t, tolerance: 1e-12, "ClassConditionedScore")
        try expectRowsMatch(try conditional.classifierFreeGuided(labels: [1], guidanceScale: 3), x, t, tolerance: 1e-12, "MLP classifier-free guidance")
    }

    @Test("U-Net and diffusers U-Net: per-image time embedding in one pass, to float32 rounding")
    func unets() throws {
        let config = UNetConfiguration(imageSize: 8, channels: 1, blockOutChannels: [4, 4], layersPerBlock: 1, midBlockAttention: false, normGroups: 2, classCount: 3)
        let unet = try UNetScore(configuration: config, sde: vpSpec, seed: 1)
        let x = inputs(rows: 7, rowShape: [1, 8, 8], seed: 5)
        let t = times(7)
        try expectRowsMatch(unet, x, t, tolerance: 1e-4, "UNetScore")
        try expectRowsMatch(try unet.conditioned(on: [0, 1, 2, nil, 0, 1, 2].map { $0 }), x, t, tolerance: 1e-4, "UNetConditionedScore")
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/diffusers").path
        let diffusers = try DiffusersUNet.load(fixtures + "/plain")
        let c = diffusers.configuration
        let xd = inputs(rows: 5, rowShape: [c.channels, c.imageSize, c.imageSize], seed: 6)
        try expectRowsMatch(diffusers, xd, times(5), tolerance: 1e-4, "DiffusersScore")
    }

    @Test("adaptive SDE: a model returning the wrong shape throws shapeMismatch")
    func adaptiveShapeMismatch() throws {
        let sampler = try AdaptiveSDESampler(sde: try VPSDE(), score: WrongShape(), eps: 1e-3)
        var rng = RandomSource(seed: 1)
        do {
            _ = try sampler.sample(count: 4, using: &rng)
            Issue.record("no error")
        } catch ScoreSDEError.shapeMismatch {
        }
    }
}

@Suite("Adaptive SDE solver: batched rows")
struct AdaptiveSDEBatchedTests {
    /// Rows advance together, so NFE (batched calls) is 2 per round and equals the largest
    /// per-sample count; the noise is keyed by (row, attempt), so the batch size changes nothing.
    @Test("NFE counts batched calls; same bytes for every batch size; per-row targets follow the active rows")
    func batchedCalls() throws {
        let sde = try VPSDE()
        let mixture = try GaussianMixture(weights: [0.4, 0.3, 0.2, 0.1], means: [[3, 0], [0, 3], [-3, 0], [0, -3]],
                                          isotropicStds: [0.3, 0.3, 0.3, 0.3])
        let exact = GaussianMixtureScore(mixture, diffusedBy: sde)
        let targets = (0 ..< 24).map { $0 % 2 }
        let guided = ClassifierGuidedScore(base: exact, classifier: try GaussianMixtureClassifier(mixture, diffusedBy: sde, labels: [0, 1, 0, 1], targets: targets))
        var reference: AdaptiveSDEResult?
        for batchSize in [nil, 1, 5, 24] as [Int?] {
            let sampler = try AdaptiveSDESampler(sde: sde, score: guided, eps: 1e-3, relativeTolerance: 0.05, denoising: .tweedie, batchSize: batchSize)
            var rng = RandomSource(seed: 8)
            let run = try sampler.sample(count: 24, using: &rng)
            #expect(run.scoreEvaluations == run.maximumPerSampleEvaluations && run.scoreEvaluations % 2 == 1)
            #expect(run.modelPasses == 2 * run.scoreEvaluations)
            #expect(Set(run.perSampleEvaluations).count > 1, "rows stop at different rounds")
            if let reference {
                #expect(run.samples == reference.samples && run.perSampleEvaluations == reference.perSampleEvaluations,
                        "batch size \(String(describing: batchSize))")
            } else {
                reference = run
            }
        }
        // Each sample is the solve of its row alone (row r of the batch: its target, its noise).
        let sampler = try AdaptiveSDESampler(sde: sde, score: guided, eps: 1e-3, relativeTolerance: 0.05, denoising: .tweedie)
        var rng = RandomSource(seed: 8)
        let prior = sde.samplePrior(rowShape: [2], count: 24, using: &rng)
        for r in [0, 7, 13] {
            var alone = rng
            alone.rowOffset += r
            let one = try ScoreBatch.$rows.withValue(r ..< r + 1) { try sampler.sample(from: prior.rows(r ..< r + 1), using: &alone) }
            #expect(one.samples.storage == Array(reference!.samples.storage[2 * r ..< 2 * r + 2]), "row \(r)")
        }
    }
}

extension AdaptiveSDEBatchedTests {
    /// Per-row class labels of a conditional MLP follow the active rows as rows stop at different
    /// rounds, with and without a batch split (the same solve up to the rounding of a batched product) (before the batched rows, a call on one row could not
    /// find its label among the batch's and the run failed).
    @Test("per-row class labels of a learned model follow the active rows")
    func perRowLabels() throws {
        let model = try MLPScore(architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 3, classCount: 3),
                                 sde: vpSpec, seed: 4)
        let labels: [Int?] = [0, 1, 2, nil, 2, 1, 0, nil]
        let conditioned = try model.conditioned(on: labels)
        let sde = try VPSDE()   // β 0.1 … 20, the model's
        var runs: [AdaptiveSDEResult] = []
        for batchSize in [nil, 3] as [Int?] {
            var rng = RandomSource(seed: 2)
            let sampler = try AdaptiveSDESampler(sde: sde, score: conditioned, eps: 1e-3, relativeTolerance: 0.1, batchSize: batchSize)
            runs.append(try sampler.sample(count: 8, using: &rng))
        }
        #expect(Set(runs[0].perSampleEvaluations).count > 1, "rows stop at different rounds")
        #expect(runs[0].perSampleEvaluations == runs[1].perSampleEvaluations)
        let err = zip(runs[0].samples.storage, runs[1].samples.storage).map { abs($0 - $1) }.max()!
        #expect(err <= 1e-6, "batch split: \(err)")   // a batched product's rounding, grown along the path (measured 6e-9)
        // Row 4 alone (label 2, its own noise) is the same solve.
        var alone = RandomSource(seed: 2)
        let prior = sde.samplePrior(rowShape: [2], count: 8, using: &alone)
        alone.rowOffset = 4
        let one = try AdaptiveSDESampler(sde: sde, score: try model.conditioned(on: [labels[4]]), eps: 1e-3, relativeTolerance: 0.1)
            .sample(from: prior.rows(4 ..< 5), using: &alone)
        let e4 = zip(one.samples.storage, runs[0].samples.storage[8 ..< 10]).map { abs($0 - $1) }.max()!
        #expect(e4 <= 1e-6, "row 4 alone: \(e4)")
        #expect(one.perSampleEvaluations[0] == runs[0].perSampleEvaluations[4])
    }
}

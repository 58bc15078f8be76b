import Foundation
import Testing
@testable import ScoreSDE

/// Issue 19, item 7: the MLP digits model's samples (`digits-mlp`, the default `digits` until
/// session 7). Its samples are
/// dequantized values `k + u` (data space, `k` the level 0…16, `u ∈ [0, 1)`), so the data range is
/// `[0, 17)` (a sample decodes to the level `⌊x⌋`); the training digits dequantized the same way
/// have none outside it (and 4.4% outside the issue's `[−0.5, 16.5]`, which is meant for values
/// that round to levels). `scoresde-bench digits-quality` prints the full figures (1000 samples).
@Suite("Digits sample quality")
struct DigitsSampleQualityTests {
    /// `count` samples of `scoresde sample --model digits-mlp`'s default sampler (reverse diffusion +
    /// Langevin at snr 0.16, 1000 uniform steps from T to the model's eps, the last predictor
    /// mean), in data space, flat rows of 64.
    static func defaultSamples(count: Int, seed: UInt64) throws -> Tensor {
        let model = try PretrainedModels.digitsMLP()
        let sde = try #require(model.sde as? VPSDE)
        let eps = try #require(model.likelihoodEps)
        let pc = PCSampler(sde: sde, score: model, grid: try .uniform(steps: 1000, from: sde.T, to: eps),
                           predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
        var rng = RandomSource(seed: seed)
        let x = model.dataScaling.toData(try pc.sample(count: count, using: &rng).samples)
        return try Tensor(shape: [count, 64], storage: x.storage)
    }

    /// Levels `⌊x⌋` clamped to 0…16.
    static func decoded(_ x: Tensor) throws -> Tensor {
        try Tensor(shape: x.shape, storage: x.storage.map { min(max($0.rounded(.down), 0), 16) })
    }

    /// The target of issue 19, item 7: fewer than 1% of the sampled values outside the data range
    /// `[0, 17)`: the observed share plus 3 standard errors (rows as the independent units: the
    /// pixels of one image are correlated) below 1%, so a model whose true share is 1% or more fails
    /// with probability below 0.2%. 160 samples (10 240 values) of the default sampler.
    /// Not met yet: the shipped model gives 12.0% (s.e. 0.14%, 1000 samples; 6.8% with
    /// ``StaticThresholdedScore``), and so did every retrained variant tried (README, "Sample
    /// quality"); enable this test with a model that meets it.
    @Test(.disabled("issue 19, item 7: the shipped digits model puts 12% of its sampled values outside [0, 17); see the README's digits sample-quality figures"))
    func samplesStayInTheDataRange() throws {
        let x = try Self.defaultSamples(count: 160, seed: 11)
        let (share, se) = shareOutside(0 ... 17.0.nextDown, of: x)
        #expect(share + 3 * se < 0.01, "share outside [0, 17): \(share) (s.e. \(se))")
    }

    /// The "own samples score 5.7–5.8 bits/dim, held-out digits 2.65" is the CLI's double
    /// data-scaling log-Jacobian (64 · log₂(17/2) / 64 = 3.09 bits/dim): through the library the
    /// model's own samples (decoded to levels, dequantized as the held-out digits are) score no
    /// worse than held-out digits — 2.52 (s.e. 0.005, 1000 samples) against 2.645 (s.e. 0.02).
    /// Here 64 samples of the default sampler against the 297 held-out digits, one Rademacher
    /// probe: own mean ≤ held-out mean + 3 combined standard errors. (The default PC sampler's
    /// samples; a 50-step UniPC's score about 2.70 on this measure, less typical under the model.)
    @Test func ownSamplesScoreNoWorseThanHeldOutDigits() throws {
        let model = try PretrainedModels.digitsMLP()
        let sde = try #require(model.sde as? VPSDE)
        let eps = try #require(model.likelihoodEps)
        let own = try Self.decoded(try Self.defaultSamples(count: 64, seed: 21))
        let heldOut = try Digits.load(split: .heldOut).images
        let likelihood = Likelihood(sde: sde, score: model, estimator: .rademacher(probes: 1), eps: eps,
                                    solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5))
        var lr = RandomSource(seed: 22)
        let a = LikelihoodSummary(bitsPerDim: try likelihood.evaluateDequantized(levels: own, topLevel: 16, scaling: model.dataScaling, draws: 1, using: &lr).bitsPerDim, threshold: log2(17))
        let b = LikelihoodSummary(bitsPerDim: try likelihood.evaluateDequantized(levels: try Tensor(shape: [heldOut.rows, 64], storage: heldOut.storage), topLevel: 16,
                                                                                 scaling: model.dataScaling, draws: 1, using: &lr).bitsPerDim, threshold: log2(17))
        let se = (a.standardError * a.standardError + b.standardError * b.standardError).squareRoot()
        #expect(a.mean <= b.mean + 3 * se, "own samples \(a.mean) ± \(a.standardError), held-out \(b.mean) ± \(b.standardError) bits/dim")
        #expect(a.mean > 1 && a.mean < 4.09, "own samples \(a.mean) bits/dim: a sane value for 17 levels (uniform guess 4.09)")
    }
}

/// A score off by a constant: `s + bias` (a model whose denoised estimates are shifted by `std² bias / m`).
private struct BiasedScore<Base: ScoreModel>: ScoreModel {
    let base: Base
    let bias: Double
    var rowShape: [Int]? { base.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor {
        var s = try base.score(x, at: t)
        for i in s.storage.indices { s.storage[i] += bias }
        return s
    }
}

@Suite("Static thresholding")
struct StaticThresholdedScoreTests {
    /// Data on a few points of the box [−1, 1]² (a mixture with negligible widths): its exact
    /// E[x₀ | x_t] is an average of those points, inside the box, so the wrapper leaves the exact
    /// score alone (to rounding); on a biased model it moves every estimate that left the box back
    /// to the box and never farther from the exact estimate (projection onto a convex set), and the
    /// implied estimates all lie in the box.
    @Test func clipsOnlyEstimatesOutsideTheRangeAndNeverMovesThemAway() throws {
        let sde = try VPSDE()
        let mixture = try GaussianMixture(means: [[-1, -1], [1, 0.5], [0.2, 1], [-0.3, 0.1]], isotropicStds: [1e-4, 1e-4, 1e-4, 1e-4])
        let exact = GaussianMixtureScore(mixture, diffusedBy: sde)
        let clippedExact = try StaticThresholdedScore(exact, sde: sde, range: -1 ... 1)
        let biased = BiasedScore(base: exact, bias: 3)
        let clippedBiased = try StaticThresholdedScore(biased, sde: sde, range: -1 ... 1)
        var rng = RandomSource(seed: 4)
        var moved = 0
        for t in [0.01, 0.1, 0.3, 0.7] {
            let (m, s) = sde.marginal(at: t)
            let x = Tensor.standardNormal(shape: [400, 2], using: &rng)   // x_t anywhere, including far outside
            let estimate = { (sc: Tensor) in zip(x.storage, sc.storage).map { ($0 + s * s * $1) / m } }
            let truth = estimate(try exact.score(x, at: t))
            // Up to the components' width: a point of width 1e-4 on the edge gives estimates within
            // m² 1e-8 / std² · |x − m μ| (< 1e-4 here) of it.
            #expect(truth.allSatisfy { $0 >= -1 - 1e-4 && $0 <= 1 + 1e-4 }, "exact estimates lie in the box at t = \(t)")
            let same = estimate(try clippedExact.score(x, at: t))
            #expect(zip(same, truth).allSatisfy { abs($0 - $1) <= 1e-4 }, "the exact score is left alone at t = \(t)")
            let raw = estimate(try biased.score(x, at: t)), clipped = estimate(try clippedBiased.score(x, at: t))
            for i in raw.indices {
                #expect(clipped[i] >= -1 - 1e-9 && clipped[i] <= 1 + 1e-9)
                #expect(abs(clipped[i] - truth[i]) <= abs(raw[i] - truth[i]) + 1e-9)
                if raw[i] > 1 || raw[i] < -1 { moved += 1 } else { #expect(abs(clipped[i] - raw[i]) <= 1e-9 * max(1, abs(raw[i]))) }
            }
        }
        #expect(moved > 100, "the bias must push estimates out of the box for the test to bite (\(moved))")
        #expect(throws: ScoreSDEError.self) { _ = try StaticThresholdedScore(exact, sde: sde, range: 1 ... 1) }
    }
}

/// Issue 19, item 6: the convolutional digits model (`digits`; `digits-unet` in session 6) draws
/// digits whose pixel levels are distributed as the data's, which the MLP (`digits-mlp`) does not. The statistic is the total
/// variation distance between the level histograms (levels `⌊x⌋` clamped to 0…16) of 160 samples
/// and of the 1500 training digits. Its noise: 160 random held-out digits give 0.027 on average and
/// 0.038 at the 99.9th percentile (200 draws); a U-Net's 1000 samples give 0.045–0.052, subsets
/// of 160 of them 0.042–0.061 (1st–99th percentile); the MLP's samples give 0.12–0.14 (the "speckle":
/// 9.6% of its pixels at level 1 against the data's 3.6%). The bound 0.09 sits between.
@Suite("Convolutional digits model")
struct DigitsUNetSampleQualityTests {
    /// `count` samples of the recommended few-step sampler (UniPC, 20 NFE, to the model's eps, the
    /// CLI's default for `sample --model digits`), data space, flat rows of 64.
    static func samples(count: Int, seed: UInt64) throws -> Tensor {
        let model = try PretrainedModels.digits()
        let sde = try VPSDE(betaMin: 0.1, betaMax: 20)
        #expect(model.sdeSpec == .vp(betaMin: 0.1, betaMax: 20))
        let eps = model.sdeSpec.samplingEps   // the CLI's: the file states no likelihood eps
        let (predictor, spacing) = try FewStepRecommendation.for(nfe: 20, dimension: 64)
        let grid = try TimeGrid.spaced(spacing, steps: 20, from: sde.T, to: eps, sde: sde)
        var rng = RandomSource(seed: seed)
        let run = try PCSampler(sde: sde, score: model, grid: grid, predictor: predictor, corrector: NoCorrector(), denoising: .none)
            .sample(count: count, rowShape: [1, 8, 8], using: &rng)
        return try Tensor(shape: [count, 64], storage: model.dataScaling.toData(run.samples).storage)
    }

    static func levelHistogram(_ x: Tensor) -> [Double] {
        var h = [Double](repeating: 0, count: 17)
        for v in x.storage { h[Int(min(max(v.rounded(.down), 0), 16))] += 1 }
        return h.map { $0 / Double(x.count) }
    }

    @Test func samplesHaveTheDataLevelHistogram() throws {
        let x = try Self.samples(count: 160, seed: 31)
        let finite = x.storage.allSatisfy { $0.isFinite }
        #expect(finite)
        let train = try Digits.load(split: .train).images
        let (p, q) = (Self.levelHistogram(x), Self.levelHistogram(train))
        let tv = zip(p, q).map { abs($0 - $1) }.reduce(0, +) / 2
        #expect(tv < 0.09, "total variation between the level histograms \(tv); level 0: \(p[0]) vs the data's \(q[0]), level 1: \(p[1]) vs \(q[1])")
        // Issue 19's range target, as for the MLP above: the share outside [0, 17) plus 3 standard
        // errors (rows as units) below 1% (1000 samples: 0.33%; subsets of 160: 0.51% median, 0.70% at
        // the 99th percentile of this bound).
        let (share, se) = shareOutside(0 ... 17.0.nextDown, of: x)
        #expect(share + 3 * se < 0.01, "share outside [0, 17): \(share) (s.e. \(se))")
        // The same statistic separates the MLP: its samples fail the bound.
        let mlp = try DigitsSampleQualityTests.defaultSamples(count: 64, seed: 31)
        let tvMLP = zip(Self.levelHistogram(mlp), q).map { abs($0 - $1) }.reduce(0, +) / 2
        #expect(tvMLP > 0.09, "the MLP's speckled samples: \(tvMLP)")
    }
}

import Foundation
import Testing
@testable import ScoreSDE

/// Per-row class labels survive a sampler's batch split: each call scores its rows with their own
/// labels (`ScoreBatch`), so a split run equals the unsplit one.
@Suite("Score batches")
struct ScoreBatchTests {
    static func sample<S: ScoreModel>(_ score: S, sde: some ForwardSDE, count: Int, batchSize: Int?) throws -> Tensor {
        var rng = RandomSource(seed: 9)
        let grid = try TimeGrid.spaced(.logSNR, steps: 4, from: sde.T, to: 1e-3, sde: sde)
        return try PCSampler(sde: sde, score: score, grid: grid, predictor: try DPMSolverPlusPlus(order: 2), corrector: NoCorrector(),
                             denoising: .none, batchSize: batchSize).sample(count: count, using: &rng).samples
    }

    static func maxRelativeDifference(_ a: Tensor, _ b: Tensor) -> Double {
        var scale = 0.0, worst = 0.0
        for (x, y) in zip(a.storage, b.storage) { scale = max(scale, abs(x)); worst = max(worst, abs(x - y)) }
        return worst / max(scale, 1e-300)
    }

    @Test func perRowLabelsWorkWithAnyBatchSizeForTheUNet() throws {
        let model = try PretrainedModels.fashion()
        let sde = try model.sdeSpec.make()
        let labels: [Int?] = (0 ..< 20).map { $0 % 10 }
        let guided = try model.classifierFreeGuided(labels: labels, guidanceScale: 2)
        let whole = try Self.sample(guided, sde: sde, count: 20, batchSize: nil)
        let split = try Self.sample(guided, sde: sde, count: 20, batchSize: 6)    // 6 + 6 + 6 + 2 rows
        // Float32 convolutions may pick another algorithm for another batch size: equal to rounding.
        #expect(Self.maxRelativeDifference(whole, split) < 1e-4)
        // Labels matter: the same noise with every label shifted gives other images.
        let shifted = try model.classifierFreeGuided(labels: labels.map { ($0! + 1) % 10 }, guidanceScale: 2)
        #expect(Self.maxRelativeDifference(whole, try Self.sample(shifted, sde: sde, count: 20, batchSize: 6)) > 0.05)
    }

    @Test func perRowLabelsWorkWithAnyBatchSizeForTheMLP() throws {
        let model = try PretrainedModels.digitsMLP()
        let sde = try model.sdeSpec.make()
        let labels: [Int?] = (0 ..< 15).map { $0 % 10 }
        let score = try model.conditioned(on: labels)
        let whole = try Self.sample(score, sde: sde, count: 15, batchSize: nil)
        let split = try Self.sample(score, sde: sde, count: 15, batchSize: 4)
        #expect(Self.maxRelativeDifference(whole, split) < 1e-12)
    }

    @Test func aMismatchOutsideASplitIsStillAnError() throws {
        #expect(throws: ScoreSDEError.self) { _ = try ScoreBatch.slice([1, 2, 3], rows: 2) }
        #expect(throws: ScoreSDEError.self, "4 labels for 2 rows with no split") { _ = try ScoreBatch.slice([1, 2, 3, 4], rows: 2) }
        let (inner, shared) = try ScoreBatch.$rows.withValue(1 ..< 3) {
            (try ScoreBatch.slice([10, 11, 12, 13], rows: 2), try ScoreBatch.slice([7], rows: 2))
        }
        #expect(inner == [11, 12])
        #expect(shared == [7], "one label is shared")
        #expect(throws: ScoreSDEError.self) {
            _ = try ScoreBatch.$rows.withValue(1 ..< 3) { try ScoreBatch.slice([10, 11], rows: 3) }
        }
    }
}

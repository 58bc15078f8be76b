import Foundation
import Testing
@testable import ScoreSDE

/// The shipped Fashion-MNIST classifiers' contract, with small fast statistics on held-out test
/// images (the full figures are in ``PretrainedClassifiers``' documentation).
@Suite("Pretrained Fashion-MNIST classifiers")
struct PretrainedFashionClassifierTests {
    /// The feature classifier: ≥ 128 features, clean, the test images' scaling; on the first 1000
    /// test images its accuracy (92.5% on all 10 000) stays above 0.88 — 5 binomial standard errors
    /// (√(0.925·0.075/1000) ≈ 0.0083) below; untrained weights are near 0.1.
    @Test func theFeatureClassifierIsAccurateOnHeldOutImages() throws {
        let c = try PretrainedClassifiers.fashionFeatures()
        #expect(c.rowShape == [1, 28, 28] && c.classCount == 10 && c.featureDimension == 256)
        #expect(c.trainingTimes == 1e-3 ... 1e-3 && c.dequantizationLevels == nil)
        #expect(try c.dataScaling == DataScaling(scale: 2.0 / 255, shift: -1))
        let test = try FashionMNIST.testSplitForEvaluation().subset(0 ..< 1000)
        let accuracy = try c.accuracy(onData: test.images, labels: test.labels)
        #expect(accuracy > 0.88, "accuracy \(accuracy) on the first 1000 test images")
        // The evaluation's default feature classifier is this one.
        let f = try FeatureClassifiers.load(nameOrPath: FeatureClassifiers.defaultName)
        let x = test.images.rows(0 ..< 3)
        #expect(try f.featuresAndLogits(of: x).features == c.featuresAndLogits(of: x).features)
    }

    /// The guidance classifier fits the shipped model and labels noisy test images: on the first
    /// 500, at t = 0.01 (84.8% on all 10 000) above 0.76 and at t = 0.5 (61.3%) above 0.50 — each
    /// 5 binomial standard errors (0.016, 0.022) below the full-set figure, and far above chance (0.1).
    @Test func theGuidanceClassifierFitsTheShippedModelAndLabelsNoisyImages() throws {
        let c = try PretrainedClassifiers.fashion()
        #expect(c.trainingTimes == 1e-3 ... 1 && c.sdeSpec == .vp(betaMin: 0.1, betaMax: 20))
        try c.checkCompatible(with: PretrainedModels.fashion())
        let test = try FashionMNIST.testSplitForEvaluation().subset(0 ..< 500)
        for (t, floor) in [(0.01, 0.76), (0.5, 0.50)] {
            let a = try ConvolutionalClassifierTrainer.accuracy(of: c, data: test.images, labels: test.labels, at: t, seed: 1)
            #expect(a > floor, "t = \(t): accuracy \(a)")
        }
    }

    /// Guidance with one target per sample survives a sampler's batch split (``ScoreBatch``): each
    /// call guides its rows towards their own classes, so a split run equals the unsplit one (to
    /// float32 rounding: the convolutions may choose other kernels for another batch size).
    @Test func perRowTargetsWorkWithAnyBatchSize() throws {
        let model = try PretrainedModels.fashion()
        let sde = try model.sdeSpec.make()
        let targets = (0 ..< 20).map { $0 % 10 }
        let guided = try model.classifierGuided(by: PretrainedClassifiers.fashion(), labels: targets, scale: 2)
        let whole = try ScoreBatchTests.sample(guided, sde: sde, count: 20, batchSize: nil)
        let split = try ScoreBatchTests.sample(guided, sde: sde, count: 20, batchSize: 6)    // 6 + 6 + 6 + 2 rows
        #expect(ScoreBatchTests.maxRelativeDifference(whole, split) < 1e-4)
        let shifted = try model.classifierGuided(by: PretrainedClassifiers.fashion(), labels: targets.map { ($0 + 1) % 10 }, scale: 2)
        #expect(ScoreBatchTests.maxRelativeDifference(whole, try ScoreBatchTests.sample(shifted, sde: sde, count: 20, batchSize: 6)) > 0.05,
                "the targets matter")
    }
}

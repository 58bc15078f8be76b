import Foundation
import Testing
@testable import ScoreSDE

/// The evaluation tasks' masks, measurements, baselines and scores, against direct computations.
@Suite("Image inverse tasks")
struct ImageInverseTaskTests {
    static func images(_ n: Int, seed: UInt64) -> Tensor {
        var rng = RandomSource(seed: seed)
        var x = Tensor.standardNormal(shape: [n, 1, 8, 8], using: &rng)
        for i in x.storage.indices { x.storage[i] = (127.5 + 40 * x.storage[i]).rounded() }
        return x
    }

    @Test func theMasksHideWhatTheTaskSays() throws {
        let x = Self.images(3, seed: 1)
        let centre = try ImageInverseTask.centreSquare.setup(truth: x, imageShape: [1, 8, 8])
        var centreTruth = [Int]()
        for i in 2 ..< 6 { for j in 2 ..< 6 { centreTruth.append(i * 8 + j) } }
        #expect(centre.scoredPixels == centreTruth, "the centre 4x4 of 8x8")
        let right = try ImageInverseTask.rightHalf.setup(truth: x, imageShape: [1, 8, 8])
        var rightTruth = [Int]()
        for i in 0 ..< 8 { for j in 4 ..< 8 { rightTruth.append(i * 8 + j) } }
        #expect(right.scoredPixels == rightTruth)
        let a = try ImageInverseTask.randomHalf.setup(truth: x, imageShape: [1, 8, 8], seed: 3)
        let b = try ImageInverseTask.randomHalf.setup(truth: x, imageShape: [1, 8, 8], seed: 3)
        let c = try ImageInverseTask.randomHalf.setup(truth: x, imageShape: [1, 8, 8], seed: 4)
        #expect(a.scoredPixels.count == 32 && a.scoredPixels == b.scoredPixels && a.scoredPixels != c.scoredPixels)
        let sr = try ImageInverseTask.superResolution2x.setup(truth: x, imageShape: [1, 8, 8])
        #expect(sr.mask == nil && sr.lowResolution?.shape == [3, 1, 4, 4] && sr.scoredPixels.count == 64)
        #expect(throws: ScoreSDEError.self) { _ = try ImageInverseTask.centreSquare.setup(truth: Tensor(zeros: [2, 63]), imageShape: [1, 7, 9]) }
    }

    @Test func theBaselinesAreTheNearestTrainingImageAndBicubic() throws {
        let truth = Self.images(4, seed: 2), train = Self.images(50, seed: 3)
        let setup = try ImageInverseTask.rightHalf.setup(truth: truth, imageShape: [1, 8, 8])
        let base = try setup.baseline(training: train)
        let known = (0 ..< 64).filter { !setup.scoredPixels.contains($0) }
        for r in 0 ..< 4 {
            // Brute force: the training image nearest on the known pixels.
            var distances = [Double]()
            for q in 0 ..< 50 {
                var s = 0.0
                for p in known { let e = train.storage[q * 64 + p] - truth.storage[r * 64 + p]; s += e * e }
                distances.append(s)
            }
            let q = distances.firstIndex(of: distances.min()!)!
            for p in setup.scoredPixels { #expect(base.storage[r * 64 + p] == train.storage[q * 64 + p]) }
            for p in known { #expect(base.storage[r * 64 + p] == truth.storage[r * 64 + p], "known pixels are kept") }
        }
        let sr = try ImageInverseTask.superResolution2x.setup(truth: truth, imageShape: [1, 8, 8])
        #expect(try sr.baseline(training: train) == SuperResolution.bicubicUpsample(sr.lowResolution!, factor: 2))
    }

    @Test func theMeasurementsObserveTheTruth() throws {
        let truth = Self.images(2, seed: 4)
        let scaling = try DataScaling(scale: 2 / 255.0, shift: -1)
        let sr = try ImageInverseTask.superResolution2x.setup(truth: truth, imageShape: [1, 8, 8])
        let m = try sr.measurement(scaling: scaling, samplesPerImage: 3)
        #expect(m.observation.rows == 6, "one observation row per sample")
        let ax = try m.apply(scaling.toModel(truth))
        for r in 0 ..< 2 { for j in 0 ..< 16 { #expect(abs(ax.storage[r * 16 + j] - m.observation.storage[(3 * r + 1) * 16 + j]) < 1e-12) } }
        let inpaint = try ImageInverseTask.centreSquare.setup(truth: truth, imageShape: [1, 8, 8]).inpainting(scaling: scaling, samplesPerImage: 2)
        #expect(inpaint.observation.rows == 4 && inpaint.mask.storage.filter { $0 == 0 }.count == 16)
    }

    @Test func scoresAreDirectAndTheMeanOfSamplesIsPerImage() throws {
        let truth = try Tensor(shape: [2, 1, 2, 2], storage: [0, 0, 0, 0, 10, 10, 10, 10])
        let est = try Tensor(shape: [2, 1, 2, 2], storage: [3, 0, 0, 4, 10, 10, 10, 12])
        let s = try ReconstructionScore(estimates: est, truth: truth, pixels: [0, 3], peak: 255)
        // Image 1: sqrt((9 + 16) / 2); image 2: sqrt((0 + 4) / 2).
        let r1: Double = (25.0 / 2).squareRoot(), r2: Double = 2.0.squareRoot()
        let meanRMSE: Double = (r1 + r2) / 2, seRMSE: Double = abs(r1 - r2) / 2
        let p1: Double = 20 * log10(255 / r1), p2: Double = 20 * log10(255 / r2)
        #expect(abs(s.rmse - meanRMSE) < 1e-12)
        #expect(abs(s.rmseStandardError - seRMSE) < 1e-12)
        #expect(abs(s.psnr - (p1 + p2) / 2) < 1e-12)
        let samples = try Tensor(shape: [4, 1], storage: [1, 3, 10, 20])
        #expect(try ReconstructionScore.meanOfSamples(samples, perImage: 2).storage == [2, 15])
        #expect(throws: ScoreSDEError.self) { _ = try ReconstructionScore.meanOfSamples(samples, perImage: 3) }
        #expect(throws: ScoreSDEError.self) { _ = try ReconstructionScore(estimates: samples, truth: truth, pixels: [0]) }
    }
}

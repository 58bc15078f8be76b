import Foundation
import Testing
@testable import ScoreSDE

/// The library's inpainting regions and the fit measures of `inpaint` and `colorize` (issue 21,
/// item 6: they moved out of the CLI), against masks and errors worked out by hand.
@Suite("Inpainting regions and fit measures")
struct InverseFitTests {
    @Test func namedRegionsHideTheStatedValues() throws {
        // 8 × 8 grey: bottom half = rows 4...7 unknown; the centre = rows and columns 2...5.
        let bottom = try InpaintingRegion.bottomHalf.mask(rowShape: [1, 8, 8], seed: 0)
        #expect(bottom.shape == [1, 1, 8, 8])
        #expect(bottom.storage == (0 ..< 64).map { $0 / 8 < 4 ? 1 : 0 })
        let centre = try InpaintingRegion.center.mask(rowShape: [8, 8], seed: 0)
        #expect(centre.storage == (0 ..< 64).map { (2 ..< 6).contains($0 / 8) && (2 ..< 6).contains($0 % 8) ? 0 : 1 })
        // RGB: every channel of a pixel alike; the right half of 4 × 4 is columns 2, 3.
        let right = try InpaintingRegion.rightHalf.mask(rowShape: [3, 4, 4], seed: 0)
        #expect(right.storage == (0 ..< 48).map { $0 % 4 >= 2 ? 0 : 1 })
        // Vectors: the second half of 5 coordinates is 2, 3, 4 (⌊5/2⌋ on).
        #expect(try InpaintingRegion.secondHalf.mask(rowShape: [5], seed: 0).storage == [1, 1, 0, 0, 0])
        #expect(try InpaintingRegion.firstHalf.mask(rowShape: [5], seed: 0).storage == [0, 0, 1, 1, 1])
        // A region of the other kind is refused, naming the ones that apply.
        #expect(throws: ScoreSDEError.self) { _ = try InpaintingRegion.bottomHalf.mask(rowShape: [5], seed: 0) }
        do { _ = try InpaintingRegion.secondHalf.mask(rowShape: [1, 8, 8], seed: 0); Issue.record("not refused") }
        catch { #expect("\(error)".contains("bottom-half")) }
    }

    /// Random pixels: each hidden with probability 1/2, all channels of a pixel together, fixed by
    /// the seed. On 28 × 28 = 784 pixels the hidden share is within 5 binomial standard errors
    /// (5 √(0.25 / 784) = 0.089) of 1/2.
    @Test func randomPixelsAreHalfAndFixedByTheSeed() throws {
        let a = try InpaintingRegion.random.mask(rowShape: [3, 28, 28], seed: 7)
        let plane = Array(a.storage[0 ..< 784])
        #expect(Array(a.storage[784 ..< 1568]) == plane && Array(a.storage[1568...]) == plane)
        let hidden = Double(plane.filter { $0 == 0 }.count) / 784
        #expect(abs(hidden - 0.5) < 5 * (0.25 / 784).squareRoot(), "hidden share \(hidden)")
        #expect(try InpaintingRegion.random.mask(rowShape: [3, 28, 28], seed: 7) == a)
        #expect(try InpaintingRegion.random.mask(rowShape: [3, 28, 28], seed: 8) != a)
    }

    /// Two inputs of 3 values, the last one unknown, 2 samples each: the errors by hand.
    @Test func inpaintingFitMeasuresTheKnownAndUnknownValues() throws {
        let truth = try Tensor(rows: [[1, 2, 3], [4, 5, 6]])
        let mask = try Tensor(rows: [[1, 1, 0]])
        let samples = try Tensor(rows: [[1, 2, 4], [1, 2.5, 2], [4, 5, 9], [4, 5, 5]])
        let fit = try InpaintingFit(samples: samples, observed: truth, truth: truth, mask: mask, perInput: 2)
        #expect(fit.knownMaxError == 0.5)
        // Unknown errors 1, −1, 3, −1: RMSE √(12/4); means 3 and 7: errors 0 and 1, RMSE √(1/2).
        #expect(abs(fit.unknownRMSE - 3.0.squareRoot()) < 1e-15)
        #expect(abs(fit.meanRMSE - 0.5.squareRoot()) < 1e-15)
        #expect(throws: ScoreSDEError.self) { _ = try InpaintingFit(samples: samples, observed: truth, truth: truth, mask: mask, perInput: 3) }
    }

    /// One 1 × 2 RGB image, grey = channel mean; samples equal to the original (k = 1) fit exactly,
    /// and the grey image as a colour guess has the RMSE of its channel deviations.
    @Test func colorizationFitAgainstTheOriginal() throws {
        let original = try Tensor(rows: [[0, 30, 60, 90, 30, 30]])   // R (0, 30), G (60, 90), B (30, 30)
        let grey = try ColorMixing.reference.grey(of: original)        // (30, 50): the channel mean, to the matrix's 7 digits
        #expect(zip(grey.storage, [30.0, 50]).allSatisfy { abs($0 - $1) < 1e-5 }, "\(grey.storage)")
        let exact = try ColorizationFit(samples: original, grey: grey, truth: original, perInput: 1, mixing: .reference, range: 0 ... 255)
        #expect(exact.greyMaxError < 1e-12 && exact.colourRMSE == 0 && exact.meanColourRMSE == 0)
        // Baseline deviations (g₀ − 0, g₁ − 30, g₀ − 60, g₁ − 90, g₀ − 30, g₁ − 30) with (g₀, g₁) the grey
        // the mixing gives (≈ 30, 50: squares ≈ 900, 400, 900, 1600, 0, 400).
        let (g0, g1) = (grey.storage[0], grey.storage[1])
        let baseline = ([g0 - 0, g1 - 30, g0 - 60, g1 - 90, g0 - 30, g1 - 30].map { $0 * $0 }.reduce(0, +) / 6).squareRoot()
        #expect(abs(try #require(exact.greyBaselineRMSE) - baseline) < 1e-12 && abs(baseline - (4200.0 / 6).squareRoot()) < 1e-4)
        // Clamping: a sample at 300 where the original is 30 counts as 255 (error 225), unclamped 270.
        let off = try Tensor(rows: [[0, 300, 60, 90, 30, 30]])
        let fit = try ColorizationFit(samples: off, grey: grey, truth: original, perInput: 1, mixing: .reference, range: 0 ... 255)
        #expect(abs(try #require(fit.colourRMSE) - (225.0 * 225 / 6).squareRoot()) < 1e-12)
        #expect(abs(try #require(fit.rawColourRMSE) - (270.0 * 270 / 6).squareRoot()) < 1e-12)
        // Grey of the sample at pixel 1 (≈ (300 + 90 + 30) / 3 = 140) against the input's g₁ (≈ 50).
        let sampleGrey = try ColorMixing.reference.grey(of: off).storage[1]
        #expect(abs(fit.greyMaxError - abs(sampleGrey - g1)) < 1e-12 && abs(fit.greyMaxError - 90) < 1e-4)
        let unknown = try ColorizationFit(samples: original, grey: grey, truth: nil, perInput: 1, mixing: .reference, range: 0 ... 255)
        #expect(unknown.colourRMSE == nil && unknown.greyBaselineRMSE == nil)
    }

    /// A = [[1, 1, 0], [0, 2, −1]], two inputs; samples that reproduce y exactly have residual 0,
    /// and moving one value by δ changes A x by (δ, 2δ) on one row: the residual RMS is
    /// √((δ² + 4δ²) / (n·k·m)); the RMSE against the inputs counts δ once.
    @Test func reconstructionFitByHand() throws {
        let a: [[Double]] = [[1, 1, 0], [0, 2, -1]]
        let x = try Tensor(rows: [[1, 2, 3], [-1, 0.5, 4]])
        let y = try Tensor(rows: [[3, 1], [-0.5, -3]])
        let k = 2
        var samples = try x.repeatingRows(k)
        let exact = try ReconstructionFit(samples: samples, matrix: a, observation: y, truth: x, perInput: k)
        #expect(exact.residualRMS == 0 && exact.rmse == 0)
        let delta = 0.25
        samples.storage[1 * 3 + 1] += delta   // sample 1 (input 0), value 1
        let off = try ReconstructionFit(samples: samples, matrix: a, observation: y, truth: nil, perInput: k)
        #expect(abs(off.residualRMS - (5 * delta * delta / 8).squareRoot()) < 1e-15 && off.rmse == nil)
        let rmse = try #require(try ReconstructionFit(samples: samples, matrix: a, observation: y, truth: x, perInput: k).rmse)
        #expect(abs(rmse - (delta * delta / 12).squareRoot()) < 1e-15)
        #expect(throws: ScoreSDEError.self) { _ = try ReconstructionFit(samples: samples, matrix: a, observation: y, truth: x, perInput: 3) }

        // Model space x' = a x + b: the observation becomes a y + b (A 1), the noise |a| σ; the
        // model-space samples a x + b then fit it exactly.
        let scaling = try DataScaling(scale: -2, shift: 0.5)
        let m = try LinearMeasurement.inModelSpace(matrix: a, observation: y, noiseStd: 0.1, scaling: scaling, repeats: k)
        #expect(m.noiseStd == 0.2 && m.observation.rows == 2 * k)
        var xModel = try x.repeatingRows(k)
        for i in xModel.storage.indices { xModel.storage[i] = -2 * xModel.storage[i] + 0.5 }
        let ax = try m.apply(xModel)
        #expect(zip(ax.storage, m.observation.storage).allSatisfy { abs($0 - $1) < 1e-12 }, "\(ax.storage) vs \(m.observation.storage)")
        #expect(throws: ScoreSDEError.self) {
            _ = try LinearMeasurement.inModelSpace(matrix: a, observation: y, noiseStd: 0, scaling: try .logit(lambda: 1e-3, levels: 17))
        }
    }
}

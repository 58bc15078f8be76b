import Foundation
import Testing
@testable import ScoreSDE

/// Super-resolution's measurement and baseline, against direct computations.
@Suite("Super-resolution")
struct SuperResolutionTests {
    static func randomImages(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RandomSource(seed: seed)
        return Tensor.standardNormal(shape: shape, using: &rng)
    }

    @Test func theMatrixIsTheBlockAverageAndHasOrthogonalRows() throws {
        let x = Self.randomImages([3, 2, 6, 4], seed: 1)
        let a = try SuperResolution.averagingMatrix(imageShape: [2, 6, 4], factor: 2)
        #expect(a.count == 2 * 3 * 2 && a[0].count == 48)
        let y = try SuperResolution.blockAverage(x, factor: 2)
        #expect(y.shape == [3, 2, 3, 2])
        // Block (channel 1, row 2, column 1) of image 2, summed by hand.
        let r = 2, ch = 1, i = 2, j = 1
        var s = 0.0
        for di in 0 ..< 2 { for dj in 0 ..< 2 { s += x.storage[((r * 2 + ch) * 6 + 2 * i + di) * 4 + 2 * j + dj] } }
        #expect(abs(y.storage[((r * 2 + ch) * 3 + i) * 2 + j] - s / 4) < 1e-14)
        let m = try SuperResolution.measurement(imageShape: [2, 6, 4], factor: 2, observation: y)
        let ax = try m.apply(x)
        #expect(zip(ax.storage, y.storage).allSatisfy { abs($0 - $1) < 1e-12 }, "A x = block averages")
        // A Aᵀ = I / 4: the rows are orthogonal with squared norm 1/4.
        for p in 0 ..< a.count { for q in 0 ..< a.count {
            let dot = zip(a[p], a[q]).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(abs(dot - (p == q ? 0.25 : 0)) < 1e-15)
        } }
        // The minimum-norm solution replicates each average over its block.
        let up = m.minimumNormSolution()
        #expect(abs(up.storage[((r * 2 + ch) * 6 + 2 * i + 1) * 4 + 2 * j] - s / 4) < 1e-12)
    }

    @Test func bicubicUpsamplingIsExactForConstantsAndLinearRamps() throws {
        // Cubic convolution (a = -0.5) reproduces polynomials of degree <= 2 away from the edges.
        let h = 6, w = 6, f = 2
        var ramp = Tensor(zeros: [1, 1, h, w])
        for i in 0 ..< h { for j in 0 ..< w { ramp.storage[i * w + j] = 3 + 0.5 * Double(i) - 0.25 * Double(j) } }
        let up = try SuperResolution.bicubicUpsample(ramp, factor: f)
        #expect(up.shape == [1, 1, 12, 12])
        for i in 3 ..< 9 { for j in 3 ..< 9 {
            // Output pixel (i, j) sits at source coordinates ((i + 0.5)/f - 0.5, (j + 0.5)/f - 0.5).
            let si = (Double(i) + 0.5) / 2 - 0.5, sj = (Double(j) + 0.5) / 2 - 0.5
            #expect(abs(up.storage[i * 12 + j] - (3 + 0.5 * si - 0.25 * sj)) < 1e-12, "(\(i), \(j))")
        } }
        let flat = try SuperResolution.bicubicUpsample(try Tensor(shape: [1, 1, 2, 2], storage: [7, 7, 7, 7]), factor: 3)
        #expect(flat.storage.allSatisfy { abs($0 - 7) < 1e-12 }, "the weights sum to 1 everywhere, edges included")
    }

    @Test func badShapesAreRefused() throws {
        #expect(throws: ScoreSDEError.self) { _ = try SuperResolution.averagingMatrix(imageShape: [1, 5, 4], factor: 2) }
        #expect(throws: ScoreSDEError.self) { _ = try SuperResolution.averagingMatrix(imageShape: [28, 28], factor: 2) }
        #expect(throws: ScoreSDEError.self) { _ = try SuperResolution.blockAverage(Tensor(zeros: [1, 1, 4, 4]), factor: 0) }
        #expect(throws: ScoreSDEError.self) { _ = try SuperResolution.bicubicUpsample(Tensor(zeros: [1, 16]), factor: 2) }
    }
}

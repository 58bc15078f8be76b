import Foundation
import Testing
@testable import ScoreSDE

// Metrics/: the sliced Wasserstein distance against independent computations — the 1-D
// Wasserstein-2 distance of sorted samples in closed form, the exact quantile integral for unequal
// sizes, and the expectation over directions of a pure translation.

private func sample1D(_ n: Int, seed: UInt64, transform: (Double) -> Double) -> Tensor {
    var rng = RandomSource(seed: seed)
    let z = Tensor.standardNormal(shape: [n, 1], using: &rng)
    return try! Tensor(shape: [n, 1], storage: z.storage.map(transform))
}

/// W₂² between two empirical 1-D measures: ∫₀¹ (F_a⁻¹(u) − F_b⁻¹(u))² du over the merged breakpoints
/// of the two step quantile functions (an algorithm of its own, not the library's grid).
private func exactW2Squared(_ a: [Double], _ b: [Double]) -> Double {
    let sa = a.sorted(), sb = b.sorted()
    var breaks = Set<Double>()
    for i in 0 ... sa.count { breaks.insert(Double(i) / Double(sa.count)) }
    for j in 0 ... sb.count { breaks.insert(Double(j) / Double(sb.count)) }
    let u = breaks.sorted()
    var total = 0.0
    for k in 0 ..< u.count - 1 {
        let mid = (u[k] + u[k + 1]) / 2
        let qa = sa[min(sa.count - 1, Int(mid * Double(sa.count)))], qb = sb[min(sb.count - 1, Int(mid * Double(sb.count)))]
        total += (u[k + 1] - u[k]) * (qa - qb) * (qa - qb)
    }
    return total
}

@Suite("Metrics")
struct MetricsTests {
    /// In 1-D every direction is ±1 and both give the same sorted pairing, so the sliced distance
    /// is the Wasserstein-2 distance of the sorted samples: √(mean (a₍ᵢ₎ − b₍ᵢ₎)²).
    @Test func oneDimensionalEqualSizesIsTheSortedSampleDistance() throws {
        let a = sample1D(1000, seed: 1) { $0 }
        let b = sample1D(1000, seed: 2) { 0.7 + 1.5 * $0 }
        let sa = a.storage.sorted(), sb = b.storage.sorted()
        let closed = (zip(sa, sb).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / 1000).squareRoot()
        for projections in [1, 7, 64] {
            let sw = try slicedWassersteinDistance(a, b, projections: projections, seed: 3)
            #expect(abs(sw - closed) <= 1e-12 * closed, "\(projections) projections: \(sw) vs \(closed)")
        }
        // For these Gaussians W₂ = √(μ² + (σa − σb)²) = √(0.49 + 0.25); 1000 samples per side land
        // within a few of its standard errors (~0.03).
        #expect(abs(closed - (0.49 + 0.25).squareRoot()) < 0.15)
        #expect(try slicedWassersteinDistance(a, a) == 0)
    }

    /// Unequal sizes: when one size divides the other, the common quantile grid is exact, so the
    /// library's value equals the quantile integral computed over merged breakpoints.
    @Test(arguments: [(250, 1000), (1000, 200), (7, 7)])
    func unequalSizesMatchTheExactQuantileIntegral(sizes: (Int, Int)) throws {
        let a = sample1D(sizes.0, seed: 4) { $0 }
        let b = sample1D(sizes.1, seed: 5) { exp($0 / 2) }
        let exact = exactW2Squared(a.storage, b.storage).squareRoot()
        let sw = try slicedWassersteinDistance(a, b, projections: 5, seed: 1)
        #expect(abs(sw - exact) <= 1e-12 * exact, "\(sw) vs \(exact)")
    }

    /// A translation by c in d dimensions: every projected quantile moves by c·u, so SW² is the mean
    /// of (c·u)² over the directions, whose expectation over uniform directions is |c|²/d. In 2-D
    /// with c = (1, 0), (c·u)² = cos²θ has variance 1/8: 4096 directions give a standard error of
    /// 0.0055 on 1/2, and the tolerance is 5 of them.
    @Test func aTranslationGivesItsLengthOverTheDimension() throws {
        var rng = RandomSource(seed: 6)
        let a = Tensor.standardNormal(shape: [300, 2], using: &rng)
        var b = a
        for r in 0 ..< b.rows { b.storage[2 * r] += 1 }
        let sw = try slicedWassersteinDistance(a, b, projections: 4096, seed: 7)
        let se = (1.0 / 8 / 4096).squareRoot()
        #expect(abs(sw * sw - 0.5) <= 5 * se, "SW² = \(sw * sw)")
        // In 5-D with c = (2, 0, 0, 0, 0): E = 4/5, and (c·u)² = 4u₁² with u₁² ~ Beta(1/2, 2):
        // variance 16 · (1/2 · 2) / (2.5² · 3.5) = 0.731; SE over 4096 directions 0.0134.
        let a5 = Tensor.standardNormal(shape: [300, 5], using: &rng)
        var b5 = a5
        for r in 0 ..< b5.rows { b5.storage[5 * r] += 2 }
        let sw5 = try slicedWassersteinDistance(a5, b5, projections: 4096, seed: 8)
        #expect(abs(sw5 * sw5 - 0.8) <= 5 * (16 * 1.0 / (6.25 * 3.5) / 4096).squareRoot(), "SW² = \(sw5 * sw5)")
    }

    @Test func badInputsThrow() {
        let a = Tensor(zeros: [3, 2]), b = Tensor(zeros: [3, 3])
        #expect(scoreSDEError { _ = try slicedWassersteinDistance(a, b) } != nil)
        #expect(scoreSDEError { _ = try slicedWassersteinDistance(a, Tensor(zeros: [0, 2])) } != nil)
        #expect(scoreSDEError { _ = try slicedWassersteinDistance(a, a, projections: 0) } != nil)
    }

    /// [2.1, 1.9, 2.3, 2.0]: mean 2.075, squared deviations summing to 0.0875, so std = √(0.0875 / 3)
    /// and the standard error std / 2; one value has no spread.
    @Test func meanEstimateByHand() {
        let e = MeanEstimate([2.1, 1.9, 2.3, 2.0])
        #expect(e.count == 4 && abs(e.mean - 2.075) < 1e-15)
        #expect(abs(e.std - (0.0875 / 3).squareRoot()) < 1e-14 && abs(e.standardError - (0.0875 / 3).squareRoot() / 2) < 1e-14)
        let one = MeanEstimate([3])
        #expect(one.mean == 3 && one.std.isNaN && one.standardError.isNaN)
    }
}

import Foundation
import Testing
@testable import ScoreSDE

// Metrics/FrechetDistance: the Fréchet (Wasserstein-2) distance between Gaussians against closed
// forms, its sample estimate against its known expectation within derived standard errors, and
// the outside-the-range share.

/// `n` rows of `N(mean, L Lᵀ)` (`l` row-major `D × D`).
private func gaussianSample(_ n: Int, mean: [Double], factor l: [Double], seed: UInt64) -> Tensor {
    let d = mean.count
    var rng = RandomSource(seed: seed)
    let z = Tensor.standardNormal(shape: [n, d], using: &rng)
    var out = [Double](repeating: 0, count: n * d)
    for r in 0 ..< n { for i in 0 ..< d {
        var s = mean[i]
        for k in 0 ... i { s += l[i * d + k] * z.storage[r * d + k] }
        out[r * d + i] = s
    } }
    return try! Tensor(shape: [n, d], storage: out)
}

/// `L Lᵀ` as rows.
private func covariance(_ l: [Double], _ d: Int) -> [[Double]] {
    var s = [[Double]](repeating: [Double](repeating: 0, count: d), count: d)
    for i in 0 ..< d { for j in 0 ..< d { for k in 0 ..< d { s[i][j] += l[i * d + k] * l[j * d + k] } } }
    return s
}

@Suite("Fréchet distance")
struct FrechetDistanceTests {
    /// Commuting (diagonal) covariances: d² = ‖μ₁ − μ₂‖² + Σ (√a_i − √b_i)².
    @Test func diagonalCovariancesGiveTheClosedForm() throws {
        let a = [4.0, 1.0, 0.25, 9.0], b = [1.0, 1.0, 2.0, 0.5]
        let m1 = [1.0, -2.0, 0.5, 0.0], m2 = [0.0, 1.0, 0.5, 3.0]
        let diag = { (v: [Double]) in (0 ..< 4).map { i in (0 ..< 4).map { $0 == i ? v[i] : 0.0 } } }
        let fd = try frechetDistance(moments: SampleMoments(mean: m1, covariance: diag(a)), SampleMoments(mean: m2, covariance: diag(b)))
        let closed = zip(m1, m2).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            + zip(a, b).reduce(0) { $0 + ($1.0.squareRoot() - $1.1.squareRoot()) * ($1.0.squareRoot() - $1.1.squareRoot()) }
        #expect(abs(fd - closed) <= 1e-12 * closed, "\(fd) vs \(closed)")
        #expect(try frechetDistance(moments: SampleMoments(mean: m1, covariance: diag(a)), SampleMoments(mean: m1, covariance: diag(a))) <= 1e-12)
    }

    /// Non-commuting 2 × 2 covariances: M = Σ₁^{1/2} Σ₂ Σ₁^{1/2} has tr M = tr(Σ₁Σ₂) and
    /// det M = det Σ₁ det Σ₂, and for a 2 × 2 PSD matrix tr √M = √(tr M + 2 √det M), so
    /// d² = ‖δ‖² + tr Σ₁ + tr Σ₂ − 2 √(tr(Σ₁Σ₂) + 2 √(det Σ₁ det Σ₂)) with no matrix root at all.
    @Test(arguments: [([2.0, 0.3, 0.3, 0.5], [1.0, -0.8, -0.8, 3.0]), ([1.0, 0.99, 0.99, 1.0], [5.0, 0.0, 0.0, 0.01]),
                      ([3.0, 1.0, 1.0, 2.0], [3.0, 1.0, 1.0, 2.0])])
    func nonCommutingTwoByTwoGivesTheClosedForm(covariances: ([Double], [Double])) throws {
        let (s1, s2) = covariances
        let rows = { (s: [Double]) in [[s[0], s[1]], [s[2], s[3]]] }
        let m1 = [0.3, -1.0], m2 = [1.3, 0.5]
        let fd = try frechetDistance(moments: SampleMoments(mean: m1, covariance: rows(s1)), SampleMoments(mean: m2, covariance: rows(s2)))
        let trProduct = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3]
        let det1 = s1[0] * s1[3] - s1[1] * s1[2], det2 = s2[0] * s2[3] - s2[1] * s2[2]
        let closed = 1.0 + 2.25 + s1[0] + s1[3] + s2[0] + s2[3] - 2 * (trProduct + 2 * (det1 * det2).squareRoot()).squareRoot()
        #expect(abs(fd - closed) <= 1e-11 * max(closed, 1), "\(fd) vs \(closed)")
    }

    /// In 6-D with non-commuting full covariances, the distance is symmetric (W₂ is), invariant
    /// under a common translation and a common rotation, and equals the closed form when Σ₂ = c² Σ₁
    /// (then (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2} = c Σ₁ and d² = ‖δ‖² + (1 − c)² tr Σ₁).
    @Test func symmetryInvarianceAndScaledCovariance() throws {
        let d = 6
        var rng = RandomSource(seed: 42)
        func randomSPD() -> [[Double]] {
            let a = Tensor.standardNormal(shape: [d, d], using: &rng).storage
            var s = [[Double]](repeating: [Double](repeating: 0, count: d), count: d)
            for i in 0 ..< d { for j in 0 ..< d {
                var v: Double = i == j ? 0.1 : 0
                for k in 0 ..< d { v += a[i * d + k] * a[j * d + k] }
                s[i][j] = v
            } }
            return s
        }
        let s1 = randomSPD(), s2 = randomSPD()
        let m1 = (0 ..< d).map { Double($0) * 0.3 }, m2 = (0 ..< d).map { 1 - Double($0) * 0.2 }
        let a = try SampleMoments(mean: m1, covariance: s1), b = try SampleMoments(mean: m2, covariance: s2)
        let ab = try frechetDistance(moments: a, b), ba = try frechetDistance(moments: b, a)
        #expect(abs(ab - ba) <= 1e-10 * ab, "\(ab) vs \(ba)")
        // A rotation Q (a product of Givens rotations) applied to both: Q Σ Qᵀ and Q μ.
        var q = [Double](repeating: 0, count: d * d)
        for i in 0 ..< d { q[i * d + i] = 1 }
        for (i, j, angle) in [(0, 3, 0.7), (1, 5, -1.1), (2, 4, 0.4), (0, 1, 2.0)] {
            let c = cos(angle), s = sin(angle)
            for k in 0 ..< d { let qi = q[i * d + k], qj = q[j * d + k]; q[i * d + k] = c * qi - s * qj; q[j * d + k] = s * qi + c * qj }
        }
        func rotated(_ m: SampleMoments, shift: Double) throws -> SampleMoments {
            let mean = (0 ..< d).map { i in (0 ..< d).reduce(shift) { $0 + q[i * d + $1] * m.mean[$1] } }
            let qs = Dense.multiply(q, m.covariance, d, d, d), qsq = Dense.multiply(qs, Dense.transpose(q, d, d), d, d, d)
            return try SampleMoments(mean: mean, covariance: matrixRows(Dense.symmetrized(qsq, d), d, d))
        }
        let moved = try frechetDistance(moments: rotated(a, shift: 5), rotated(b, shift: 5))
        #expect(abs(moved - ab) <= 1e-10 * ab, "\(moved) vs \(ab)")
        let c = 1.7
        let scaled = try SampleMoments(mean: m2, covariance: s1.map { $0.map { c * c * $0 } })
        let trace = (0 ..< d).reduce(0) { $0 + s1[$1][$1] }
        let closed = zip(m1, m2).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } + (1 - c) * (1 - c) * trace
        let fd = try frechetDistance(moments: a, scaled)
        #expect(abs(fd - closed) <= 1e-10 * closed, "\(fd) vs \(closed)")
    }

    /// From samples: the mean term ‖μ̂₁ − μ̂₂‖² of Gaussian samples has expectation
    /// ‖δ‖² + tr C and variance 2 tr C² + 4 δᵀ C δ, C = Σ₁/n₁ + Σ₂/n₂ (exact). Over R replicates the
    /// whole estimate's mean equals d² + tr C + (the covariance term's bias, O(D²/n), here below
    /// 0.005 by a second-order expansion) within 4 standard errors of the replicate mean; and a
    /// biased estimator (a sample shifted by 0.1 in one coordinate: d² grows by 0.01 + cross terms)
    /// is told apart.
    @Test func sampleEstimatesMatchTheirExpectation() throws {
        let d = 3, n1 = 4000, n2 = 3000, replicates = 40
        let l1 = [1.0, 0, 0, 0.5, 0.8, 0, -0.3, 0.2, 0.6], l2 = [0.7, 0, 0, -0.4, 1.2, 0, 0.1, 0.5, 0.9]
        let m1 = [0.0, 0.5, -0.2], m2 = [0.4, 0.3, 0.3]
        let s1 = covariance(l1, d), s2 = covariance(l2, d)
        let truth = try frechetDistance(moments: SampleMoments(mean: m1, covariance: s1), SampleMoments(mean: m2, covariance: s2))
        var c = [Double](repeating: 0, count: d * d)
        for i in 0 ..< d { for j in 0 ..< d { c[i * d + j] = s1[i][j] / Double(n1) + s2[i][j] / Double(n2) } }
        let trC = (0 ..< d).reduce(0) { $0 + c[$1 * d + $1] }
        let delta = zip(m1, m2).map { $0 - $1 }
        let trC2 = (0 ..< d * d).reduce(0) { $0 + c[$1] * c[$1] }
        var dCd = 0.0
        for i in 0 ..< d { for j in 0 ..< d { dCd += delta[i] * c[i * d + j] * delta[j] } }
        let meanTermSD = (2 * trC2 + 4 * dCd).squareRoot()
        var estimates = [Double](), meanTerms = [Double]()
        for r in 0 ..< replicates {
            let a = gaussianSample(n1, mean: m1, factor: l1, seed: 100 + UInt64(r)), b = gaussianSample(n2, mean: m2, factor: l2, seed: 900 + UInt64(r))
            let ma = try SampleMoments(of: a), mb = try SampleMoments(of: b)
            meanTerms.append(zip(ma.mean, mb.mean).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) })
            estimates.append(try frechetDistance(a, b))
        }
        let meanOf = { (v: [Double]) in v.reduce(0, +) / Double(v.count) }
        let sdOf = { (v: [Double]) -> Double in let m = meanOf(v); return (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1)).squareRoot() }
        let expectedMeanTerm = delta.reduce(0) { $0 + $1 * $1 } + trC
        #expect(abs(meanOf(meanTerms) - expectedMeanTerm) < 4 * meanTermSD / Double(replicates).squareRoot(),
                "mean term \(meanOf(meanTerms)) vs \(expectedMeanTerm) (sd \(meanTermSD))")
        #expect(abs(sdOf(meanTerms) / meanTermSD - 1) < 0.5, "replicate sd \(sdOf(meanTerms)) vs exact \(meanTermSD)")
        let se = sdOf(estimates) / Double(replicates).squareRoot()
        let expected = truth + trC
        #expect(abs(meanOf(estimates) - expected) < 4 * se + 0.005, "estimate \(meanOf(estimates)) vs \(expected) (s.e. \(se))")
        // A real difference of this size fails: the 0.1 shift moves d² by about 2 · 0.1 · (−0.4) + 0.01 = −0.07.
        let shifted = gaussianSample(n1, mean: [0.1, 0.5, -0.2], factor: l1, seed: 7)
        let other = gaussianSample(n2, mean: m2, factor: l2, seed: 8)
        let truthShifted = try frechetDistance(moments: SampleMoments(mean: [0.1, 0.5, -0.2], covariance: s1), SampleMoments(mean: m2, covariance: s2))
        #expect(abs(truthShifted - truth) > 10 * se)
        #expect(abs(try frechetDistance(shifted, other) - truthShifted - trC) < 4 * sdOf(estimates) + 0.005)
    }

    @Test func badInputIsRejected() throws {
        #expect(throws: ScoreSDEError.self) { _ = try frechetDistance(Tensor(zeros: [5, 3]), Tensor(zeros: [5, 4])) }
        #expect(throws: ScoreSDEError.self) { _ = try SampleMoments(of: Tensor(zeros: [1, 3])) }
        #expect(throws: ScoreSDEError.self) { _ = try SampleMoments(mean: [0, 0], covariance: [[1, 0.5], [0, 1]]) }
        #expect(throws: ScoreSDEError.self) { _ = try SampleMoments(mean: [0, 0], covariance: [[1, 0, 0], [0, 1, 0]]) }
        var bad = Tensor(zeros: [4, 2])
        bad.storage[3] = .nan
        #expect(throws: ScoreSDEError.self) { _ = try SampleMoments(of: bad) }
    }

    /// The share outside a range counts values (NaN as outside) and its standard error treats rows as units.
    @Test func shareOutsideCountsValuesAndRows() throws {
        let x = try Tensor(shape: [4, 2], storage: [0, 1, -1, 0.5, 2, 3, 0.2, .nan])
        let (share, se) = shareOutside(0 ... 1, of: x)
        #expect(share == 4.0 / 8)
        // Per-row shares 0, 0.5, 1, 0.5: mean 0.5, sample variance 1/6, s.e. √(1/24).
        #expect(abs(se - (1.0 / 24).squareRoot()) < 1e-15)
    }
}

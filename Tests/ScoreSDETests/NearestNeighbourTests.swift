import Foundation
import Testing
@testable import ScoreSDE

// Evaluation/NearestNeighbours: the blocked matrix-product search against brute force, and the
// memorisation check's threshold and shares exactly where they are known by construction.

/// Brute force: every distance computed directly, the smallest kept (first index on ties).
private func bruteForce(_ q: Tensor, _ r: Tensor, scale: Double) -> [(Int, Double)] {
    let d = q.rowSize
    return (0 ..< q.rows).map { i in
        var best = (0, Double.infinity)
        for j in 0 ..< r.rows {
            var s = 0.0
            for k in 0 ..< d { let e = scale * (q.storage[i * d + k] - r.storage[j * d + k]); s += e * e }
            if s.squareRoot() < best.1 { best = (j, s.squareRoot()) }
        }
        return best
    }
}

@Suite("Nearest neighbours and the memorisation check")
struct NearestNeighbourTests {
    /// Integer "pixels" 0...255 in 13 values per row; 2 500 reference rows (two reference blocks
    /// and a partial one), 1 100 queries (two query blocks), some queries exact copies of
    /// reference rows (distance 0) and some reference rows duplicated (ties). Distances agree with
    /// brute force to 1e-12; the chosen row is at exactly the brute-force distance.
    @Test func blockedSearchAgreesWithBruteForce() throws {
        var rng = RandomSource(seed: 3)
        let d = 13, m = 2500, n = 1100
        var ref = Tensor.standardNormal(shape: [m, d], using: &rng).storage.map { min(max((128 + 60 * $0).rounded(), 0), 255) }
        for j in stride(from: 0, to: 200, by: 7) { for k in 0 ..< d { ref[(j + 1) * d + k] = ref[j * d + k] } }   // duplicates
        var qs = Tensor.standardNormal(shape: [n, d], using: &rng).storage.map { min(max((128 + 60 * $0).rounded(), 0), 255) }
        for i in stride(from: 0, to: n, by: 50) { for k in 0 ..< d { qs[i * d + k] = ref[(i * 2) % m * d + k] } }   // copies
        let reference = try Tensor(shape: [m, d], storage: ref), queries = try Tensor(shape: [n, d], storage: qs)
        let nn = try NearestNeighbours(of: queries, in: reference)
        let truth = bruteForce(queries, reference, scale: 1 / 255)
        for i in 0 ..< n {
            #expect(abs(nn.distances[i] - truth[i].1) <= 1e-12, "query \(i): \(nn.distances[i]) vs \(truth[i].1)")
            var s = 0.0
            for k in 0 ..< d { let e = (qs[i * d + k] - ref[nn.indices[i] * d + k]) / 255; s += e * e }
            #expect(abs(s.squareRoot() - truth[i].1) <= 1e-12)
        }
        for i in stride(from: 0, to: n, by: 50) { #expect(nn.distances[i] == 0) }
        #expect(scoreSDEError { _ = try NearestNeighbours(of: queries, in: reference.rows(0 ..< 0)) } != nil)
        #expect(scoreSDEError { _ = try NearestNeighbours(of: Tensor([1, 2]), in: reference) } != nil)
    }

    /// Held-out distances checked against themselves: with n = 1 000 distinct distances the
    /// threshold lies between the 10th and 11th smallest, so exactly 10 (1%) are below it, and
    /// the binomial standard error is √(0.01 · 0.99 / 1000). Samples that copy training images
    /// (distance 0) are all below; samples farther than every held-out image, none.
    @Test func theHeldOutShareIsOnePercentByConstruction() throws {
        var rng = RandomSource(seed: 5)
        let distances = Tensor.standardNormal(shape: [1000], using: &rng).storage.map { 3 + abs($0) }
        let check = try MemorisationCheck(sampleDistances: distances, heldOutDistances: distances)
        let sorted = distances.sorted()
        #expect(check.threshold == 0.5 * (sorted[9] + sorted[10]))
        #expect(check.share == 0.01 && check.heldOutShare == 0.01 && check.below == 10)
        #expect(check.standardError == (0.01 * 0.99 / 1000).squareRoot())
        let copies = try MemorisationCheck(sampleDistances: [0, 0, 0], heldOutDistances: distances)
        #expect(copies.share == 1 && copies.standardError == 0)
        let far = try MemorisationCheck(sampleDistances: [100, 200], heldOutDistances: distances)
        #expect(far.share == 0)
        // p = 5: exactly 50 of 1000 below.
        #expect(try MemorisationCheck(sampleDistances: distances, heldOutDistances: distances, percentile: 5).below == 50)
        #expect(invalidParameterText { _ = try MemorisationCheck(sampleDistances: [1], heldOutDistances: distances, percentile: 0) } != nil)
        #expect(invalidParameterText { _ = try MemorisationCheck(sampleDistances: [1], heldOutDistances: [1]) } != nil)
    }
}

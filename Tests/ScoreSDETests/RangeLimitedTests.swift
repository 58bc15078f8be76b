import Foundation
import Testing
@testable import ScoreSDE

@Suite("Inverse problems: RangeLimited (the diffused data range)")
struct RangeLimitedTests {
    /// Data well inside [−1, 1] (every component ≥ 6 stds from the edges).
    static let inside = try! GaussianMixture(weights: [0.3, 0.7], means: [[-0.5, 0.2], [0.4, -0.3]], isotropicStds: [0.08, 0.08])

    @Test("the box is [m lo − a s, m hi + a s] of the SDE's marginal")
    func boxFormula() throws {
        let sde = try VPSDE()
        let c = try RangeLimited(NoOpConstraint(), lower: -1, upper: 2, margin: 3)
        for t in [1e-3, 0.1, 0.5, 1.0] {
            let (m, s) = sde.marginal(at: t), b = c.box(at: t, sde: sde)
            #expect(abs(b.lowerBound - (-m - 3 * s)) < 1e-15 && abs(b.upperBound - (2 * m + 3 * s)) < 1e-15)
        }
    }

    @Test("with the exact score of data inside the range the limit almost never acts: exact weights, the plain sampler's rows")
    func exactScoreUnchanged() throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(Self.inside, diffusedBy: sde)
        let grid = try TimeGrid.uniform(steps: 500, from: 1, to: 1e-3)
        let n = 4000
        var rng = RandomSource(seed: 11), plainRNG = RandomSource(seed: 11)
        let x = try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16),
                              constraint: try RangeLimited(NoOpConstraint(), lower: -1, upper: 1, margin: 4))
            .sample(count: n, using: &rng).samples
        let plain = try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
            .sample(count: n, using: &plainRNG).samples
        // Mode weights against the exact mixture: 4 binomial standard errors.
        let assign = Self.inside.assignments(x)
        for k in 0 ..< 2 {
            let w = Self.inside.weights[k], se = (w * (1 - w) / Double(n)).squareRoot()
            let count = assign.filter { $0 == k }.count
            #expect(abs(Double(count) / Double(n) - w) < 4 * se, "weight of component \(k): \(Double(count) / Double(n)) vs \(w)")
        }
        // Same draws (the limit adds none). A row moves only if one of its values left the box at
        // some update — under the exact process probability ≤ 2Φ(−4) ≈ 6.3e-5 per value and update
        // (2 values × 1000 updates: ≤ 0.13 per row) — or through the Langevin step size, which score_sde
        // takes from the whole population's mean gradient norm (a clipped row moves every row's step a
        // little). So: nearly every row within a tenth of a component std of the plain sampler's, and
        // under 1% further than one std.
        var close = 0, far = 0, largest = 0.0
        for r in 0 ..< n {
            let d = max(abs(x.storage[2 * r] - plain.storage[2 * r]), abs(x.storage[2 * r + 1] - plain.storage[2 * r + 1]))
            largest = max(largest, d)
            if d < 0.008 { close += 1 } else if d > 0.08 { far += 1 }
        }
        #expect(Double(close) > 0.9 * Double(n), "rows within 0.008 of the plain sampler's: \(close) of \(n) (largest move \(largest))")
        #expect(Double(far) < 0.01 * Double(n), "rows moved by more than a component std: \(far) of \(n)")
    }

    /// The box's claim itself, at the sampler: with the exact score of data inside [lo, hi] a value
    /// leaves `[m lo − a s, m hi + a s]` with probability at most 2Φ(−a) per value and update.
    /// Counted before clipping over every update: at a = 4 (2Φ(−4) = 6.3e-5) within 5 binomial
    /// standard errors of that bound; a box one noise std too narrow (a = 4 drawn as a = 3 would
    /// be 2Φ(−3) = 2.7e-3 — 40× more) fails. At a = 1 the fraction must be well above the a = 4
    /// one (the counter sees what the box is for).
    @Test("with the exact score, values leave the box no more often than 2Φ(−a) per update")
    func exitRateWithinBound() throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(Self.inside, diffusedBy: sde)
        let grid = try TimeGrid.uniform(steps: 300, from: 1, to: 1e-3)
        func rate(_ margin: Double) throws -> (Double, Int) {
            let log = ExitLog()
            let limited = try RangeLimited(NoOpConstraint(), lower: -1, upper: 1, margin: margin)
            var rng = RandomSource(seed: 21)
            _ = try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16),
                              constraint: ExitCounting(inner: limited, log: log)).sample(count: 2000, using: &rng)
            return (Double(log.outside) / Double(log.values), log.values)
        }
        let (r4, n) = try rate(4), bound = 2 * 3.167e-5
        #expect(r4 <= bound + 5 * (bound / Double(n)).squareRoot(), "a = 4: \(r4) of \(n) value-updates outside the box")
        let (r1, _) = try rate(1)
        #expect(r1 > 100 * max(r4, 1e-6), "a = 1: \(r1) against \(r4) at a = 4")
    }

    @Test("a score that pushes mass outside the range: every returned value stays inside the final box")
    func runawayIsStopped() throws {
        let sde = try VPSDE()
        // Half the model's mass at 3, far above the data range [−1, 1].
        let wrong = try GaussianMixture(weights: [0.5, 0.5], means: [[0.0], [3.0]], isotropicStds: [0.1, 0.1])
        let grid = try TimeGrid.uniform(steps: 300, from: 1, to: 1e-3)
        let c = try RangeLimited(NoOpConstraint(), lower: -1, upper: 1, margin: 4)
        var rng = RandomSource(seed: 3), plainRNG = RandomSource(seed: 3)
        let x = try PCSampler(sde: sde, score: GaussianMixtureScore(wrong, diffusedBy: sde), grid: grid, predictor: ReverseDiffusion(),
                              corrector: try Langevin(snr: 0.16), constraint: c).sample(count: 1000, using: &rng).samples
        let plain = try PCSampler(sde: sde, score: GaussianMixtureScore(wrong, diffusedBy: sde), grid: grid, predictor: ReverseDiffusion(),
                                  corrector: try Langevin(snr: 0.16)).sample(count: 1000, using: &plainRNG).samples
        let box = c.box(at: 1e-3, sde: sde)
        #expect(x.storage.allSatisfy { box.contains($0) })
        #expect(plain.storage.filter { $0 > 2 }.count > 400, "without the limit about half the samples are near 3")
    }

    @Test("composed with colorization: the grey image is still reproduced exactly")
    func colorizationStaysExact() throws {
        let grey = try Tensor(shape: [1, 2, 2], storage: [0.1, -0.4, 0.6, 0.0])
        let sde = try VPSDE()
        let prior = try GaussianMixture(means: [[Double](repeating: 0, count: 12)], isotropicStds: [0.4])
        var rng = RandomSource(seed: 6)
        let x = try PCSampler(sde: sde, score: GaussianMixtureScore(prior, diffusedBy: sde), grid: try .uniform(steps: 200, from: 1, to: 1e-3),
                              predictor: ReverseDiffusion(), corrector: try Langevin(),
                              constraint: try RangeLimited(try Colorization(grey: grey), lower: -1, upper: 1)).sample(count: 200, using: &rng).samples
        for r in 0 ..< 200 {
            for p in 0 ..< 4 {
                let g = (x.storage[r * 12 + p] + x.storage[r * 12 + 4 + p] + x.storage[r * 12 + 8 + p]) / 3
                #expect(abs(g - grey.storage[p]) < 1e-6)
            }
        }
    }

    @Test("bad parameters: empty or non-finite range, non-positive margin")
    func badParameters() throws {
        #expect(throws: ScoreSDEError.self) { try RangeLimited(NoOpConstraint(), lower: 1, upper: 1) }
        #expect(throws: ScoreSDEError.self) { try RangeLimited(NoOpConstraint(), lower: 0, upper: .infinity) }
        #expect(throws: ScoreSDEError.self) { try RangeLimited(NoOpConstraint(), lower: 0, upper: 1, margin: 0) }
        #expect(throws: ScoreSDEError.self) { try RangeLimited(NoOpConstraint(), lower: 0, upper: 1, margin: .nan) }
    }
}

/// Counts the values outside a `RangeLimited` box before it clips them.
final class ExitLog: @unchecked Sendable {
    var values = 0, outside = 0
}
struct ExitCounting<Base: SamplingConstraint>: SamplingConstraint {
    let inner: RangeLimited<Base>
    let log: ExitLog
    func apply(_ x: inout Tensor, mean: inout Tensor, context: ConstraintContext, using rng: inout RandomSource) throws {
        if context.time > 0 {
            let b = inner.box(at: context.time, sde: context.sde)
            log.values += x.count
            log.outside += x.storage.filter { !b.contains($0) }.count
        }
        try inner.apply(&x, mean: &mean, context: context, using: &rng)
    }
}

import Foundation
import Testing
@testable import ScoreSDE

/// Bitwise reproducibility: a run is a pure function of (seed, configuration). Small runs suffice
/// (bitwise equality needs no statistics), except where the parallel split must actually happen:
/// loops run inline below their grain (noise: 2048/d rows, mixture score: 8192/(K·d) rows), so the
/// thread-count test uses 5000 two-dimensional rows (≥ 2 chunks everywhere) and 600 rows of gmm64.
@Suite("Reproducibility")
struct ReproducibilityTests {
    func ringSampler(steps: Int = 30, batchSize: Int? = nil) throws -> PCSampler<VESDE, GaussianMixtureScore, ReverseDiffusion, Langevin> {
        let sde = try VESDE()
        return PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde),
                         grid: try .uniform(steps: steps, from: 1, to: 1e-5),
                         predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16), batchSize: batchSize)
    }

    func bits(_ t: Tensor) -> [UInt64] { t.storage.map(\.bitPattern) }

    @Test("same seed → bitwise equal samples; different seeds → different samples")
    func sameSeed() throws {
        let sampler = try ringSampler()
        var a = RandomSource(seed: 42), b = RandomSource(seed: 42), c = RandomSource(seed: 43)
        let x = try sampler.sample(count: 50, using: &a).samples
        let y = try sampler.sample(count: 50, using: &b).samples
        let z = try sampler.sample(count: 50, using: &c).samples
        #expect(bits(x) == bits(y))
        #expect(a == b)   // the random sources end in the same state too
        // Different seeds: no value in common (a coincidence has probability ≈ 0 for continuous draws),
        // and not a permutation of the same set either.
        #expect(zip(x.storage, z.storage).allSatisfy { $0 != $1 })
        #expect(Set(x.storage).isDisjoint(with: Set(z.storage)))
    }

    @Test("thread count does not change the samples", arguments: ["ring", "gmm64"])
    func threadCount(mixture name: String) throws {
        #expect(ProcessInfo.processInfo.activeProcessorCount < 2 || Parallel.threadCount >= 2,
                "the default run must be parallel for this comparison to mean anything")
        let g = try GaussianMixture.builtIn(name)
        let sde = try VPSDE()
        let sampler = PCSampler(sde: sde, score: GaussianMixtureScore(g, diffusedBy: sde),
                                grid: try .uniform(steps: 10, from: 1, to: 1e-3),
                                predictor: EulerMaruyama(), corrector: try Langevin(snr: 0.16))
        let count = name == "ring" ? 5000 : 600
        var r1 = RandomSource(seed: 8)
        let parallel = try sampler.sample(count: count, using: &r1).samples
        let serial = try Parallel.$threadLimit.withValue(1) {
            var r2 = RandomSource(seed: 8)
            return try sampler.sample(count: count, using: &r2).samples
        }
        #expect(bits(parallel) == bits(serial))
        // Forced uneven splits, which happen on any machine.
        for chunks in [3, 5] {
            let split = try Parallel.$chunksForTesting.withValue(chunks) {
                var r3 = RandomSource(seed: 8)
                return try sampler.sample(count: count, using: &r3).samples
            }
            #expect(bits(split) == bits(serial), "\(chunks) chunks")
        }
    }

    @Test("batchSize 1, 7 and nil give bitwise equal samples")
    func batchSizes() throws {
        var results = [[UInt64]]()
        for b in [nil, 1, 7] as [Int?] {
            var rng = RandomSource(seed: 3)
            results.append(bits(try ringSampler(batchSize: b).sample(count: 50, using: &rng).samples))
        }
        #expect(results[0] == results[1])
        #expect(results[0] == results[2])
    }

    /// Without a population-coupled corrector every row evolves on its own noise (rows numbered
    /// globally), so shards started with `rowOffset` reproduce one run exactly. (Langevin with
    /// population-mean norms couples the rows by design, so it is not shardable this way.)
    @Test("rowOffset shards of a predictor-only run reproduce the whole run")
    func sharding() throws {
        let sde = try VPSDE()
        let sampler = PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde),
                                grid: try .uniform(steps: 20, from: 1, to: 1e-3),
                                predictor: AncestralSampling(for: sde), corrector: NoCorrector())
        var whole = RandomSource(seed: 17)
        let all = try sampler.sample(count: 50, using: &whole).samples
        var lo = RandomSource(seed: 17), hi = RandomSource(seed: 17, rowOffset: 20)
        let a = try sampler.sample(count: 20, using: &lo).samples
        let b = try sampler.sample(count: 30, using: &hi).samples
        #expect(bits(try Tensor.concatenating([a, b])) == bits(all))
    }

    /// One thread against forced splits into 2, 3 and 7 concurrent chunks (uneven, so chunk
    /// borders fall mid-way): the same bits on any machine, a one-CPU one included.
    @Test("mixture sampling is reproducible and split-independent")
    func mixtureSampling() {
        let g = GaussianMixture.gaussian64()
        var r1 = RandomSource(seed: 4)
        let serial = Parallel.$threadLimit.withValue(1) { g.sample(count: 3000, using: &r1) }
        for chunks in [2, 3, 7] {
            var r2 = RandomSource(seed: 4)
            let split = Parallel.$chunksForTesting.withValue(chunks) { g.sample(count: 3000, using: &r2) }
            #expect(bits(split) == bits(serial), "\(chunks) chunks")
        }
        var r3 = RandomSource(seed: 5)
        #expect(bits(g.sample(count: 3000, using: &r3)) != bits(serial), "another seed, other samples")
    }
}

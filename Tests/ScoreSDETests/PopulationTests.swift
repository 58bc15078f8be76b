import Foundation
import Testing
@testable import ScoreSDE

/// ``Population``: a run split across processes gives the bytes of one process. The processes
/// here are threads joined by an in-process ``Communicator`` (the MPI one is tested end to end
/// under `mpirun` in CLITests/MPICommandTests), so these run everywhere.
@Suite("Population split")
struct PopulationTests {
    func bits(_ t: Tensor) -> [UInt64] { t.storage.map(\.bitPattern) }

    @Test("rows(of:) covers 0..<count in contiguous rank-ordered blocks differing by at most one")
    func rowSplit() {
        for count in [1, 2, 7, 37, 100] {
            for size in 1 ... min(count, 6) {
                let parts = (0 ..< size).map { Population.rows(of: count, rank: $0, size: size) }
                #expect(parts.first?.lowerBound == 0 && parts.last?.upperBound == count)
                #expect(zip(parts, parts.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
                #expect(parts.map(\.count).max()! - parts.map(\.count).min()! <= 1)
            }
        }
    }

    /// Runs `body` on `size` threads, each with the communicator of its rank as the world.
    func onRanks<R>(_ size: Int, _ body: @escaping @Sendable () throws -> R) throws -> [R] {
        let hub = ThreadHub(size: size)
        let results = ResultSlots<R>(size)
        let threads = (0 ..< size).map { rank in
            Thread {
                let comm = ThreadCommunicator(rank: rank, hub: hub)
                results.set(rank, Result { try Population.$communicator.withValue(comm) { try body() } })
            }
        }
        for t in threads { t.stackSize = 8 << 20; t.start() }
        return try results.wait()
    }

    @Test("PC sampling split over 1–4 ranks (counts not divisible) equals one process, for every predictor and corrector",
          arguments: [2, 3, 4])
    func pcSplit(ranks: Int) throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(try GaussianMixture.builtIn("ring"), diffusedBy: sde)
        let grid = try TimeGrid.uniform(steps: 12, from: 1, to: 1e-3)
        let count = 37
        func run(_ p: some Predictor, _ c: some Corrector, order: PCOrder = .correctorFirst,
                 denoising: FinalDenoising = .lastPredictorMean) throws {
            let sampler = PCSampler(sde: sde, score: score, grid: grid, predictor: p, corrector: c,
                                    order: order, denoising: denoising)
            var rng = RandomSource(seed: 11)
            let one = try sampler.sample(count: count, using: &rng)
            let split = try onRanks(ranks) {
                var r = RandomSource(seed: 11)
                let run = try sampler.sample(count: count, using: &r)
                return (run.samples, r.draw, run.scoreEvaluations)
            }
            for (samples, draw, nfe) in split {
                #expect(bits(samples) == bits(one.samples), "\(p) + \(c), \(ranks) ranks")
                #expect(draw == rng.draw && nfe == one.scoreEvaluations)
            }
        }
        try run(ReverseDiffusion(), try Langevin(snr: 0.16))
        try run(EulerMaruyama(), try Langevin(snr: 0.16, steps: 2), order: .predictorFirst)
        try run(AncestralSampling(for: sde), try AnnealedLangevin(snr: 0.16))
        try run(NoPredictor(), try Langevin(snr: 0.16), denoising: .none)
        try run(ReverseDiffusion(), NoCorrector(), denoising: .tweedie)
    }

    @Test("per-sample ODE systems (sampling, a Hutchinson likelihood) split over 3 ranks equal one process, NFE included")
    func odeSplit() throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let solver = ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5)
        let sampler = ODESampler(sde: sde, score: score, eps: 1e-3, solver: solver, layout: .perSample, denoise: true)
        var rng = RandomSource(seed: 4)
        let one = try sampler.sample(count: 7, rowShape: [2], using: &rng)
        let likelihood = Likelihood(sde: sde, score: score, estimator: .rademacher(probes: 2), eps: 1e-5, solver: solver, layout: .perSample)
        var lrng = RandomSource(seed: 9)
        let ll = try likelihood.evaluate(one.states, using: &lrng)
        let split = try onRanks(3) {
            var r = RandomSource(seed: 4), l = RandomSource(seed: 9)
            let s = try sampler.sample(count: 7, rowShape: [2], using: &r)
            return (s, try likelihood.evaluate(s.states, using: &l))
        }
        for (s, l) in split {
            #expect(bits(s.states) == bits(one.states))
            #expect(s.scoreEvaluations == one.scoreEvaluations && s.statistics == one.statistics)
            #expect(l.logLikelihood.map(\.bitPattern) == ll.logLikelihood.map(\.bitPattern))
            #expect(l.scoreEvaluations == ll.scoreEvaluations)
        }
    }

    @Test("without the population reduction a split Langevin run would differ (the test can fail)")
    func naiveShardsDiffer() throws {
        let sde = try VESDE()
        let sampler = PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde),
                                grid: try .uniform(steps: 12, from: 1, to: 1e-5),
                                predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
        var rng = RandomSource(seed: 5)
        let one = try sampler.sample(count: 20, using: &rng).samples
        var a = RandomSource(seed: 5), b = RandomSource(seed: 5, rowOffset: 10)
        let naive = try sampler.sample(count: 10, using: &a).samples.storage + sampler.sample(count: 10, using: &b).samples.storage
        #expect(naive.map(\.bitPattern) != bits(one))
    }

    @Test("more ranks than rows is an error on every rank")
    func tooManyRanks() throws {
        let sde = try VESDE()
        let sampler = PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde),
                                grid: try .uniform(steps: 3, from: 1, to: 1e-5),
                                predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
        let messages = try onRanks(3) { () -> String in
            var r = RandomSource(seed: 1)
            do { _ = try sampler.sample(count: 2, using: &r); return "" } catch { return "\(error)" }
        }
        #expect(messages.allSatisfy { $0.contains("at least one row") && $0.contains("-np 2") })
    }

    @Test("agree: a check failing on one rank fails on all, naming that rank")
    func agreement() throws {
        let messages = try onRanks(3) { () -> String in
            do {
                try Population.agree("cannot write the outputs") {
                    if Population.rank == 2 { throw ScoreSDEError.io(path: "out/x.npy", message: "directory 'out' does not exist") }
                }
                return ""
            } catch { return "\(error)" }
        }
        #expect(messages.allSatisfy { $0.hasPrefix("rank 2 of 3: cannot write the outputs: out/x.npy") })
    }
}

/// The meeting point of the threads of ``ThreadCommunicator``.
final class ThreadHub: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var slots: [[UInt8]]
    private var arrived = 0, generation = 0
    private var last: [[UInt8]] = []

    init(size: Int) { self.size = size; slots = Array(repeating: [], count: size) }

    func allGather(rank: Int, _ bytes: [UInt8]) -> [[UInt8]] {
        condition.lock(); defer { condition.unlock() }
        let mine = generation
        slots[rank] = bytes
        arrived += 1
        if arrived == size {
            last = slots; arrived = 0; generation += 1
            condition.broadcast()
        } else {
            while generation == mine { condition.wait() }
        }
        return last
    }
}

/// Threads as ranks (a test double of an MPI world).
struct ThreadCommunicator: Communicator {
    let rank: Int
    let hub: ThreadHub
    var size: Int { hub.size }
    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] { hub.allGather(rank: rank, bytes) }
}

/// One result per thread, and a wait for all of them.
final class ResultSlots<R>: @unchecked Sendable {
    private let condition = NSCondition()
    private var slots: [Result<R, Error>?]
    init(_ n: Int) { slots = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ r: Result<R, Error>) { condition.lock(); slots[i] = r; condition.broadcast(); condition.unlock() }
    func wait() throws -> [R] {
        condition.lock()
        while slots.contains(where: { $0 == nil }) { condition.wait() }
        let all = slots.map { $0! }
        condition.unlock()
        return try all.map { try $0.get() }
    }
}

import Foundation
import Testing
@testable import ScoreSDE

/// Data-parallel training (``GradientBlocks``, ``GradientBlockReducer``, ``Trainer`` under
/// ``Population/communicator``): K processes sharing each step end with the bits of one process.
/// The processes here are threads joined by in-process communicators (the MPI one is tested end
/// to end under `mpirun` in CLITests/MPITrainingTests), so these run everywhere.
@Suite("Data-parallel training")
struct DataParallelTrainingTests {
    static func bits(_ v: [Double]) -> [UInt64] { v.map(\.bitPattern) }

    /// Runs `body` on `size` threads, each with its rank's communicator as the world
    /// (`allToAll`: with a native all-to-all, else through the all-gather fallback).
    static func onRanks<R>(_ size: Int, allToAll: Bool = false, _ body: @escaping @Sendable () throws -> R) throws -> [R] {
        let hub = ThreadHub(size: size), exchange = ExchangeHub(size: size)
        let results = ResultSlots<R>(size)
        let threads = (0 ..< size).map { rank in
            Thread {
                let plain = ThreadCommunicator(rank: rank, hub: hub)
                let comm: any Communicator = allToAll ? ThreadAllToAllCommunicator(base: plain, exchange: exchange) : plain
                results.set(rank, Result { try Population.$communicator.withValue(comm) { try body() } })
            }
        }
        for t in threads { t.stackSize = 8 << 20; t.start() }
        return try results.wait()
    }

    /// Ring points; with `conditional`, integer points `0 ... 3` in 2-D with three classes and
    /// dequantization, so that label dropout and dequantization noise are drawn too.
    static func setup(conditional: Bool, batch: Int = 37, block: Int? = 5, seed: UInt64 = 3) throws -> (TrainingConfiguration, Tensor, [Int]?) {
        if conditional {
            let rng = RandomSource(seed: 9)
            var s = rng.stream(draw: 0, row: 0)
            let values = (0 ..< 120).map { _ in Double(s.next() % 4) }
            let labels = (0 ..< 60).map { Int(values[2 * $0] + values[2 * $0 + 1]) % 3 }
            let config = TrainingConfiguration(
                sde: .vp(betaMin: 0.1, betaMax: 20),
                architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 16, residualBlocks: 2, fourierFeatures: 4, classCount: 3),
                dataScaling: try DataNormalization.symmetric.dequantizedScaling(levels: 4), seed: seed, batchSize: batch,
                learningRate: 3e-3, warmup: 2, gradClip: 1, emaRate: 0.9, likelihoodWeighting: true, timeSampling: .importance,
                dequantizationLevels: 4, labelDropout: 0.3, gradientBlockSize: block)
            return (config, try Tensor(shape: [60, 2], storage: values), labels)
        }
        let config = TrainingConfiguration(
            sde: .ve(sigmaMin: 0.01, sigmaMax: 5),
            architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 24, residualBlocks: 1, fourierFeatures: 4),
            seed: seed, batchSize: batch, learningRate: 3e-3, warmup: 2, gradClip: 1, emaRate: 0.9, gradientBlockSize: block)
        return (config, try Dataset.load("ring", count: 300, seed: 0).data, nil)
    }

    struct State: Sendable, Equatable {
        let parameters, ema, first, second, losses: [UInt64]
        init(_ t: Trainer, losses: [Double]) {
            parameters = bits(t.parameters); ema = bits(t.ema.values)
            first = bits(t.optimizer.firstMoment); second = bits(t.optimizer.secondMoment)
            self.losses = bits(losses)
        }
    }

    @Test("blocks cover the batch in order; K processes own contiguous runs of them; more processes than blocks is refused")
    func blockLayout() throws {
        for batch in [1, 7, 37, 128] {
            for size in [1, 3, 5, 16, 200] {
                let b = GradientBlocks(batchSize: batch, blockSize: size)
                let rows = (0 ..< b.count).map(b.rows(of:))
                #expect(rows.first?.lowerBound == 0 && rows.last?.upperBound == batch)
                #expect(zip(rows, rows.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && $0.count == b.blockSize })
                #expect(abs((0 ..< b.count).map(b.weight(of:)).reduce(0, +) - 1) < 1e-12)
                for k in 1 ... b.count {
                    let owned = (0 ..< k).map { b.owned(rank: $0, size: k) }
                    #expect(owned.allSatisfy { !$0.isEmpty } && owned.last?.upperBound == b.count)
                    #expect(b.rows(of: owned[0]).lowerBound == 0 && b.rows(of: owned[k - 1]).upperBound == batch)
                    try b.checkShared(by: k)
                }
                let text = invalidArgumentText { try b.checkShared(by: b.count + 1) }
                #expect(text?.contains("(-np \(b.count))") == true, "\(text ?? "no error")")
            }
        }
    }

    @Test("a process's rows of a step (indices, times, noise, dropped labels) are the slice of the whole batch",
          arguments: [false, true])
    func rowsAreSlicesOfTheBatch(conditional: Bool) throws {
        let (config, data, labels) = try Self.setup(conditional: conditional)
        let trainer = try Trainer(configuration: config, data: data, labels: labels)
        for step in [0, 1, 17] {
            let whole = try trainer.batch(forStep: step)
            for rows in [0 ..< 37, 0 ..< 5, 5 ..< 10, 13 ..< 30, 35 ..< 37] {
                let part = trainer.batch(forStep: step, rows: rows)
                #expect(part.indices == Array(whole.indices[rows]))
                #expect(Self.bits(part.times) == Self.bits(Array(whole.times[rows])))
                #expect(Self.bits(part.noise.storage) == Self.bits(Array(whole.noise.storage[rows.lowerBound * 2 ..< rows.upperBound * 2])))
                #expect(part.labels == whole.labels.map { Array($0[rows]) })
            }
        }
    }

    /// The in-order sum of the blocks' scaled partials is the batch-mean gradient computed over the
    /// whole batch at once (the same sum in another order: equal to rounding).
    @Test("the blocked gradient and loss are the whole-batch gradient and loss (to 1e-12 relative)", arguments: [false, true])
    func blockedGradientIsTheBatchGradient(conditional: Bool) throws {
        let (config, data, labels) = try Self.setup(conditional: conditional)
        let trainer = try Trainer(configuration: config, data: data, labels: labels)
        let width = trainer.parameters.count + 1
        var sum = [Double](repeating: 0, count: width)
        let batch = try trainer.batch(forStep: 0)
        let clean = batch.gather(trainer.data)
        var offsets = [Double]()   // the blocks' dequantization noise, in units of the data scale
        for b in 0 ..< trainer.blocks.count {
            try trainer.computeBlock(b, step: 0)
            for j in 0 ..< width { sum[j] += trainer.partial[j] }
            let rows = trainer.blocks.rows(of: b)
            for (k, r) in rows.enumerated() {
                for j in 0 ..< 2 { offsets.append((trainer.x0[k * 2 + j] - clean.storage[r * 2 + j]) / config.dataScaling.scale) }
            }
        }
        // Independent truth of what the blocks fed the network: with dequantization x₀ = scale·(k + u)
        // + shift with u ~ U[0, 1) per value (every offset in [0, 1), mean ½ within 5 standard errors
        // √(1/12/N)); without, the data rows themselves.
        if config.dequantizationLevels != nil {
            #expect(offsets.allSatisfy { $0 >= -1e-12 && $0 < 1 + 1e-12 })
            let mean = offsets.reduce(0, +) / Double(offsets.count)
            #expect(abs(mean - 0.5) <= zBound * (1.0 / 12 / Double(offsets.count)).squareRoot(), "mean dequantization offset \(mean)")
        } else {
            #expect(offsets.allSatisfy { $0 == 0 })
        }
        // The whole batch in one pass, with the step's dequantized inputs (the draw written out again,
        // which pins the bits; the offsets above are its independent check).
        var x0 = clean
        if config.dequantizationLevels != nil {
            let rng = RandomSource(seed: config.seed).derived(dequantizationPurpose)
            for r in 0 ..< x0.rows {
                var st = rng.stream(draw: 0, row: r)
                for j in 0 ..< 2 { x0.storage[r * 2 + j] += config.dataScaling.scale * (Double(st.next() >> 11) * 0x1p-53) }
            }
        }
        let (loss, gradient) = try trainer.model.dsmLossAndGradient(trainer.loss, data: x0, batch: batch)
        let scale = gradient.map(abs).max()!
        #expect(scale > 0)
        #expect(zip(sum.prefix(width - 1), gradient).map { abs($0 - $1) }.max()! <= 1e-12 * scale)
        #expect(abs(sum[width - 1] - loss) <= 1e-12 * abs(loss))
    }

    @Test("K processes sharing every step end with the bits of one process (K = 2, 3, 8; 37 rows in 8 blocks)",
          arguments: [(false, 2, false), (false, 3, true), (true, 3, false), (true, 8, true)])
    func sharedTrainingEqualsOneProcess(conditional: Bool, ranks: Int, allToAll: Bool) throws {
        let (config, data, labels) = try Self.setup(conditional: conditional)
        let one = try Trainer(configuration: config, data: data, labels: labels)
        let expected = State(one, losses: try one.train(steps: 5))
        let shared = try Self.onRanks(ranks, allToAll: allToAll) { () -> State in
            let t = try Trainer(configuration: config, data: data, labels: labels)
            return State(t, losses: try t.train(steps: 5))
        }
        for (rank, state) in shared.enumerated() {
            #expect(state == expected, "rank \(rank) of \(ranks), conditional \(conditional)")
        }
    }

    @Test("one process: the same bits on one thread and on all")
    func threadCountDoesNotChangeBits() throws {
        let (config, data, labels) = try Self.setup(conditional: true)
        func run() throws -> State {
            let t = try Trainer(configuration: config, data: data, labels: labels)
            return State(t, losses: try t.train(steps: 3))
        }
        let serial = try Parallel.$threadLimit.withValue(1) { try run() }
        let split = try Parallel.$chunksForTesting.withValue(3) { try run() }
        #expect(serial == (try run()) && serial == split)
    }

    @Test("a failure on one process fails every process, naming its rank; a stop request on one stops all")
    func notes() throws {
        let blocks = GradientBlocks(batchSize: 12, blockSize: 2)
        let reducer = GradientBlockReducer(blocks: blocks, width: 5)
        // Partial of block b: [b, b, b, b, b] + 0.5.
        let outcomes = try Self.onRanks(3) { () -> String in
            let rank = Population.rank
            let partials = blocks.owned(rank: rank, size: 3).map { [Double](repeating: Double($0) + 0.5, count: 5) }
            let comm = Population.communicator!
            let (sum, stop) = try reducer.reduce(partials, note: rank == 2 ? .stop : .ok, communicator: comm)
            #expect(sum == [Double](repeating: 18, count: 5) && stop)   // Σ (b + 0.5), b < 6
            do {
                _ = try reducer.reduce(partials, note: rank == 1 ? .failure("at step 4: the training loss is nan") : .ok, communicator: comm)
                return "no error"
            } catch { return "\(error)" }
        }
        #expect(outcomes.allSatisfy { $0 == "rank 1 of 3: at step 4: the training loss is nan" }, "\(outcomes)")
    }

    @Test("shared train(until:): a signal on one rank stops every rank after the same step; rank 0 alone writes the checkpoint")
    func sharedStop() throws {
        let (config, data, _) = try Self.setup(conditional: false)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-dp-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outcomes = try Self.onRanks(3) { () -> [Int] in
            let t = try Trainer(configuration: config, data: data)
            // Each rank writes to its own path, so that a write by any rank but 0 would show.
            let schedule = try CheckpointSchedule(path: dir.appendingPathComponent("r\(Population.rank).safetensors").path, interval: nil)
            let rank = Population.rank
            let outcome = try t.train(until: 50, checkpoints: schedule, shouldStop: { rank == 1 && t.completedSteps >= 3 })
            return [outcome.stopped ? 1 : 0, outcome.checkpointStep, t.completedSteps]
        }
        #expect(outcomes.allSatisfy { $0 == [1, 4, 4] }, "\(outcomes)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }
        #expect(files == ["r0.safetensors"])
        #expect(try Safetensors.read(dir.appendingPathComponent("r0.safetensors").path).metadata["train.step"] == "4")
    }

    @Test("shared steps refuse other data or state on one rank and more ranks than blocks, on every rank")
    func refusals() throws {
        let (config, data, _) = try Self.setup(conditional: false)
        let other = try Tensor(shape: data.shape, storage: data.storage.map { $0 * 1.001 })
        let messages = try Self.onRanks(3) { () -> String in
            let t = try Trainer(configuration: config, data: Population.rank == 2 ? other : data)
            do { try t.step(); return "no error" } catch { return "\(error)" }
        }
        #expect(messages.allSatisfy { $0.hasPrefix("rank 2 of 3: its training data differ from rank 0's") }, "\(messages)")
        let states = try Self.onRanks(2) { () -> String in
            var seeded = config
            if Population.rank == 1 { seeded.seed += 1 }
            let t = try Trainer(configuration: seeded, data: data)
            do { try t.step(); return "no error" } catch { return "\(error)" }
        }
        #expect(states.allSatisfy { $0.hasPrefix("rank 1 of 2: its training state") }, "\(states)")
        var eight = config
        eight.batchSize = 8; eight.gradientBlockSize = 4   // 2 blocks
        let small = eight
        let many = try Self.onRanks(3) { () -> String in
            let t = try Trainer(configuration: small, data: data)
            do { try t.step(); return "no error" } catch { return "\(error)" }
        }
        #expect(many.allSatisfy { $0.contains("each rank needs at least one block") && $0.contains("-np 2") }, "\(many)")
    }

    @Test("checkpoints record the block size; a resumed run keeps it; files without it train as one block")
    func blockSizeIsPartOfTheRun() throws {
        let (config, data, _) = try Self.setup(conditional: false)
        let t = try Trainer(configuration: config, data: data)
        try t.train(steps: 2)
        let file = try Safetensors.decode(t.checkpointData(), path: "c.safetensors")
        #expect(file.metadata["train.gradient_block"] == "5")
        #expect(try Trainer.resume(file, data: data).configuration.gradientBlockSize == 5)
        var whole = config
        whole.gradientBlockSize = nil
        let w = try Trainer(configuration: whole, data: data)
        #expect(try Safetensors.decode(w.checkpointData(), path: "w.safetensors").metadata["train.gradient_block"] == nil)
        #expect(w.blocks.count == 1)
        #expect(invalidParameterText { var c = config; c.gradientBlockSize = 0; try c.validate() }?.contains("gradient block") == true)
    }
}

/// The meeting point of ``ThreadAllToAllCommunicator``'s threads.
final class ExchangeHub: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var posted: [[[UInt8]]]
    private var arrived = 0, generation = 0
    private var last: [[[UInt8]]] = []

    init(size: Int) { self.size = size; posted = Array(repeating: [], count: size) }

    func allToAll(rank: Int, _ parts: [[UInt8]]) -> [[UInt8]] {
        condition.lock(); defer { condition.unlock() }
        let mine = generation
        posted[rank] = parts
        arrived += 1
        if arrived == size {
            last = posted; arrived = 0; generation += 1
            condition.broadcast()
        } else {
            while generation == mine { condition.wait() }
        }
        return (0 ..< size).map { last[$0][rank] }
    }
}

/// Threads as ranks with a native all-to-all (a test double of the MPI world's `MPI_Alltoallv`).
struct ThreadAllToAllCommunicator: AllToAllCommunicator {
    let base: ThreadCommunicator
    let exchange: ExchangeHub
    var rank: Int { base.rank }
    var size: Int { base.size }
    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] { try base.allGather(bytes) }
    func allToAll(_ parts: [[UInt8]]) throws -> [[UInt8]] { exchange.allToAll(rank: rank, parts) }
}

// Data-parallel training (README "Scale-out with MPI"): what the fixed gradient blocks cost one
// process, and `train` throughput on 1 and 2 MPI ranks (whole processes under mpirun, MPI on
// loopback and shared memory only). `swift run -c release scoresde-bench mpi-train`.
import Foundation
import ScoreSDE

/// Examples/s of one-process training with gradient blocks of `block` rows (nil: the whole batch).
func trainingRate(data: Tensor, architecture: MLPArchitecture, batch: Int, block: Int?, steps: Int, repeats: Int = 3) throws -> Double {
    let config = TrainingConfiguration(sde: .vp(betaMin: 0.1, betaMax: 20), architecture: architecture,
                                       dataScaling: try DataNormalization.symmetric.dataScaling(levels: 17), seed: 1,
                                       batchSize: batch, learningRate: 1e-3, warmup: 100, gradientBlockSize: block)
    let t = best(repeats) {
        let trainer = try! Trainer(configuration: config, data: data)
        try! trainer.train(steps: steps)
    }
    return Double(steps * batch) / t
}

func mpiTrainingBenchmark() throws {
    let digits = try Dataset.load("digits", count: nil, seed: 0).data
    let arch = MLPArchitecture(rowShape: digits.rowShape, hiddenWidth: 256, residualBlocks: 2, fourierFeatures: 64)
    let p = arch.parameterCount
    print("Data-parallel training: digits (1500 rows of 64), hidden 256 x 2 blocks (\(p) parameters), batch 128")
    // Interleaved repetitions (best of 5 each), so that load from other jobs hits every block size alike.
    let sizes: [Int?] = [nil, 64, 32, 16, 8]
    var rates = [Double](repeating: 0, count: sizes.count)
    for _ in 0 ..< 5 {
        for (i, block) in sizes.enumerated() {
            rates[i] = max(rates[i], try trainingRate(data: digits, architecture: arch, batch: 128, block: block, steps: 30, repeats: 1))
        }
    }
    print("  one process, examples/s by gradient block rows (best of 5, interleaved): "
          + zip(sizes, rates).map { "\($0.map(String.init) ?? "whole batch") \(f($1, 0))" }.joined(separator: ", "))
    // Bytes per step and rank (GradientBlockReducer): sent 8·(P+1)·B/K, received 8·(P+1)·(B/K + 1).
    for perRank in [1, 8] {
        let sent = 8.0 * Double(p + 1) * Double(perRank), received = 8.0 * Double(p + 1) * Double(perRank + 1)
        print("  \(perRank) block\(perRank == 1 ? "" : "s") per rank (any K): each rank sends \(f(sent / 1e6, 2)) MB and receives \(f(received / 1e6, 2)) MB per step")
    }

    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("scoresde-mpi")
    let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
    guard FileManager.default.isExecutableFile(atPath: exe.path), let mpirun else {
        print("  mpirun: build scoresde-mpi (swift build -c release --product scoresde-mpi) and install openmpi-bin (scripts/setup.sh)")
        return
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-bench-mpi-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let args = ["train", "--data", "digits", "--steps", "150", "--batch-size", "128", "--gradient-block", "16", "--checkpoint-interval", "0", "--overwrite"]
    func run(_ ranks: Int) throws -> (rate: Double, checkpoint: Data) {
        var rate = 0.0, checkpoint = Data()
        for _ in 0 ..< 3 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            // MPI on loopback and shared memory only (REFERENCE.md §7), Open MPI's consent to run as root.
            process.arguments = ["OMPI_MCA_btl=self,vader", "OMPI_MCA_btl_tcp_if_include=lo", "OMPI_MCA_oob_tcp_if_include=lo",
                                 "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                                 mpirun, "--oversubscribe", "-np", "\(ranks)", exe.path] + args
                + ["--output", dir.appendingPathComponent("m\(ranks).safetensors").path, "--stats", dir.appendingPathComponent("s\(ranks).json").path]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw ScoreSDEError.invalidArgument("mpirun -np \(ranks) failed (\(process.terminationStatus))") }
            let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("s\(ranks).json"))) as? [String: Any]
            rate = max(rate, stats?["examples_per_second"] as? Double ?? 0)
            checkpoint = try Data(contentsOf: dir.appendingPathComponent("m\(ranks).safetensors"))
        }
        return (rate, checkpoint)
    }
    let one = try run(1), two = try run(2)
    print("  scoresde-mpi \(args.prefix(9).joined(separator: " ")) (best of 3): 1 rank \(f(one.rate, 0)) examples/s, 2 ranks \(f(two.rate, 0)) examples/s; checkpoints \(one.checkpoint == two.checkpoint ? "identical" : "DIFFERENT")")
    print("  (this machine has 2 cores and one rank already uses both with threads: 2 ranks share the same cores,")
    print("   so the 2-rank figure is oversubscribed and is not a speed-up or slow-down of scale-out)")
}

import Foundation
import Testing
@testable import ScoreSDE

// Checkpoint integrity and scheduling: CRC-32 against its published check values, damaged files
// detected and never loaded, the previous checkpoint kept, checkpoints by steps and by time, a
// stopped run resumed to the bits of an uninterrupted one, and sizes from a file bounded by its content.

private func tempDirectory() -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-ckpt-\(getpid())-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

private func tinyConfig(seed: UInt64 = 3) -> TrainingConfiguration {
    TrainingConfiguration(sde: .vp(betaMin: 0.1, betaMax: 20),
                          architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 2),
                          seed: seed, batchSize: 16, learningRate: 1e-3, warmup: 3, gradClip: 1, emaRate: 0.9)
}

private func ringData() -> Tensor {
    var rng = RandomSource(seed: 2)
    return GaussianMixture.ring().sample(count: 64, using: &rng)
}

private func ioMessage(_ body: () throws -> Void) -> String? {
    if case .io(_, let m)? = scoreSDEError(body) { return m }
    return nil
}

@Suite("Checkpoints")
struct CheckpointTests {
    /// The CRC-32 check values published with the algorithm (zlib, the PNG specification, and
    /// the "CRC RevEng" catalogue: CRC-32/ISO-HDLC check = 0xCBF43926).
    @Test func crc32MatchesItsPublishedCheckValues() {
        #expect(CRC32.checksum("123456789".utf8) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        #expect(CRC32.checksum("a".utf8) == 0xE8B7_BE43)
        #expect(CRC32.checksum("The quick brown fox jumps over the lazy dog".utf8) == 0x414F_A339)
        // Fed in pieces = fed at once.
        var c = CRC32()
        c.update("12345".utf8); c.update("6789".utf8)
        #expect(c.value == 0xCBF4_3926)
    }

    /// Every single-bit flip in the data section and a change of a metadata value are caught:
    /// resume and load refuse the file, naming the checksum, and the file is left as it is.
    @Test func aDamagedCheckpointIsDetectedAndNeverLoaded() throws {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = ringData()
        let trainer = try Trainer(configuration: tinyConfig(), data: data)
        try trainer.train(steps: 5)
        let path = dir.appendingPathComponent("c.safetensors").path
        try trainer.save(to: path)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(try Safetensors.decode(good, path: path).metadata[ModelFile.checksumKey]?.count == 8)
        #expect(try Trainer.resume(from: path, data: data).completedSteps == 5)

        // Flip one bit at 40 places spread over the tensor data (the last ~95% of the file).
        let headerEnd = 8 + Int(good.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        for k in 0 ..< 40 {
            var bad = good
            let i = headerEnd + (good.count - headerEnd - 1) * k / 39
            bad[i] ^= UInt8(1 << (k % 8))
            try bad.write(to: URL(fileURLWithPath: path))
            let m = ioMessage { _ = try Trainer.resume(from: path, data: data) }
            #expect(m?.contains("CRC-32") == true && m?.contains("not loaded") == true, "byte \(i): \(m ?? "loaded")")
            #expect(ioMessage { _ = try MLPScore.load(from: path) }?.contains("CRC-32") == true)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == bad, "a refused file is left alone")
        }
        // A metadata value changed (same length, so the file still parses): caught as well.
        // (Bytes, not text: the tensor data is not UTF-8, and a lossy round trip would change its length.)
        let needle = Data("\"train.lr\":\"0.001\"".utf8)
        let found = good.range(of: needle)
        #expect(found != nil)
        var edited = good
        if let found { edited.replaceSubrange(found, with: Data("\"train.lr\":\"0.002\"".utf8)) }
        try edited.write(to: URL(fileURLWithPath: path))
        #expect(ioMessage { _ = try Trainer.resume(from: path, data: data) }?.contains("CRC-32") == true)
        // Cut short anywhere: a typed error, never a load.
        for cut in [good.count - 1, good.count / 2, headerEnd, 9] {
            try good.prefix(cut).write(to: URL(fileURLWithPath: path))
            #expect(ioMessage { _ = try Trainer.resume(from: path, data: data) } != nil, "cut at \(cut)")
        }
        // A checkpoint without a checksum is not resumed (its integrity cannot be checked).
        var file = try Safetensors.decode(good, path: path)
        var meta = file.metadata
        meta[ModelFile.checksumKey] = nil
        try Safetensors.write(file.tensors.map { SafetensorsTensor(name: $0.name, shape: $0.shape, values: $0.values) }, metadata: meta, to: path)
        #expect(ioMessage { _ = try Trainer.resume(from: path, data: data) }?.contains("no 'checksum.crc32'") == true)
        file = try Safetensors.read(path)
        #expect(file.metadata[ModelFile.checksumKey] == nil)
    }

    /// Each save keeps the checkpoint it replaces as `NAME.prev.safetensors`; when the current one
    /// is damaged, resume names the intact previous one and how to use it.
    @Test func thePreviousCheckpointIsKeptAndNamedWhenTheCurrentOneIsDamaged() throws {
        #expect(ModelFile.previousCheckpointPath(for: "runs/a.safetensors") == "runs/a.prev.safetensors")
        #expect(ModelFile.previousCheckpointPath(for: "ckpt") == "ckpt.prev")
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = ringData()
        let path = dir.appendingPathComponent("run.safetensors").path
        let trainer = try Trainer(configuration: tinyConfig(), data: data)
        let schedule = try CheckpointSchedule(path: path, interval: nil, everySteps: 4)
        let outcome = try trainer.train(until: 10, checkpoints: schedule)
        #expect(outcome.checkpointsWritten == 3 && outcome.checkpointStep == 10 && !outcome.stopped)   // steps 4, 8, 10
        #expect(try Safetensors.read(path).metadata["train.step"] == "10")
        #expect(try Safetensors.read(schedule.previousPath).metadata["train.step"] == "8")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["run.prev.safetensors", "run.safetensors"],
                "no temporary files are left behind")

        var bad = try Data(contentsOf: URL(fileURLWithPath: path))
        bad[bad.count - 3] ^= 0x10
        try bad.write(to: URL(fileURLWithPath: path))
        let m = try #require(ioMessage { _ = try Trainer.resume(from: path, data: data) })
        #expect(m.contains("CRC-32") && m.contains("run.prev.safetensors") && m.contains("step 8") && m.contains("mv "), "\(m)")
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: schedule.previousPath, toPath: path)
        #expect(try Trainer.resume(from: path, data: data).completedSteps == 8)
    }

    /// A run stopped at any step and resumed from its checkpoint ends with bitwise the weights,
    /// EMA and Adam state of an uninterrupted run (the same file bytes).
    @Test(arguments: [1, 7, 19])
    func aStoppedRunResumesToTheBitsOfAnUninterruptedOne(stopAfter: Int) throws {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = ringData()
        let straightPath = dir.appendingPathComponent("straight.safetensors").path
        let straight = try Trainer(configuration: tinyConfig(), data: data)
        try straight.train(until: 25, checkpoints: CheckpointSchedule(path: straightPath, interval: nil))

        let path = dir.appendingPathComponent("split.safetensors").path
        let first = try Trainer(configuration: tinyConfig(), data: data)
        var asked = 0
        let stopped = try first.train(until: 25, checkpoints: CheckpointSchedule(path: path, interval: nil, everySteps: 5)) {
            asked += 1
            return asked > stopAfter   // a signal arriving during step `stopAfter`
        }
        #expect(stopped.stopped && stopped.checkpointStep == stopAfter && stopped.losses.count == stopAfter)
        #expect(try Safetensors.read(path).metadata["train.step"] == "\(stopAfter)")
        let resumed = try Trainer.resume(from: path, data: data)
        let rest = try resumed.train(until: 25, checkpoints: CheckpointSchedule(path: path, interval: nil))
        #expect(!rest.stopped && rest.losses.count == 25 - stopAfter)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: straightPath)))
    }

    /// Timed checkpoints: a checkpoint follows at the first step that ends `interval` or more after
    /// the last one. Only lower bounds on elapsed time are certain on a loaded machine, so the test
    /// makes every step last at least 60 ms (a sleep in the progress callback) against a 50 ms
    /// interval: then every one of the 9 steps before the last ends ≥ 50 ms after the previous
    /// checkpoint and writes one, plus the final one — exactly 10 whatever the load. An hour's
    /// interval writes only the final one (no step takes an hour).
    @Test func checkpointsFollowTheWallClockInterval() throws {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trainer = try Trainer(configuration: tinyConfig(), data: ringData())
        let path = dir.appendingPathComponent("t.safetensors").path
        let outcome = try trainer.train(until: 10, checkpoints: CheckpointSchedule(path: path, interval: 0.05),
                                        onProgress: { _ in usleep(60_000) })
        #expect(outcome.checkpointsWritten == 10, "\(outcome.checkpointsWritten) checkpoints")
        let none = try trainer.train(until: 20, checkpoints: CheckpointSchedule(path: path, interval: 3600))
        #expect(none.checkpointsWritten == 1, "only the final checkpoint within the hour")
        #expect(invalidParameterText { _ = try CheckpointSchedule(path: path, interval: 0) } != nil)
        #expect(invalidParameterText { _ = try CheckpointSchedule(path: path, everySteps: 0) } != nil)
        #expect(invalidArgumentText { _ = try trainer.train(until: 5, checkpoints: CheckpointSchedule(path: path)) }?.contains("already") == true)
    }

    /// Sizes recorded in a file are checked against what the file holds before anything is
    /// allocated: a hidden width of 10⁹ or 10¹² residual blocks in a small file, or a batch size of
    /// 10¹², is a typed error, not a crash or an allocation of terabytes.
    @Test func sizesInTheMetadataAreBoundedByTheFile() throws {
        let trainer = try Trainer(configuration: tinyConfig(), data: ringData())
        try trainer.train(steps: 2)
        let file = try Safetensors.decode(trainer.checkpointData(), path: "x.safetensors")
        func edited(_ key: String, _ value: String) -> SafetensorsFile {
            var m = file.metadata
            m[key] = value
            m[ModelFile.checksumKey] = String(format: "%08x", ModelFile.checksum(tensors: file.tensors, metadata: m))
            return SafetensorsFile(tensors: file.tensors, metadata: m, path: "x.safetensors")
        }
        for (key, value) in [("model.hidden_width", "1000000000"), ("model.residual_blocks", "1000000000000"),
                             ("model.row_shape", "4294967296,4294967296"), ("model.fourier_features", "\(Int.max)")] {
            let m = ioMessage { _ = try MLPScore.load(edited(key, value)) }
            #expect(m?.contains("more values than the file") == true, "\(key) = \(value): \(m ?? "loaded")")
            #expect(ioMessage { _ = try Trainer.resume(edited(key, value), data: ringData()) } != nil)
        }
        let m = ioMessage { _ = try Trainer.resume(edited("train.batch_size", "1000000000000"), data: ringData()) }
        #expect(m?.contains("workspace") == true, "\(m ?? "resumed")")
    }

    /// `AtomicFile.write(_:to:keepingPreviousAs:)`: the old file moves to `previous`, the new one is
    /// complete, and a first write (nothing to keep) makes no `previous`.
    @Test func atomicWritesKeepThePreviousFile() throws {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("f.bin").path, previous = dir.appendingPathComponent("f.old").path
        try AtomicFile.write(Data([1, 2, 3]), to: path, keepingPreviousAs: previous)
        #expect(!FileManager.default.fileExists(atPath: previous))
        try AtomicFile.write(Data([4, 5]), to: path, keepingPreviousAs: previous)
        try AtomicFile.write(Data([6]), to: path, keepingPreviousAs: previous)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([6]))
        #expect(try Data(contentsOf: URL(fileURLWithPath: previous)) == Data([4, 5]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["f.bin", "f.old"])
    }
}

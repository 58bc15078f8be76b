import Foundation
import ScoreSDE
import Testing

/// `train --model unet` (issue 20): the command trains exactly what the library's ``UNetTrainer``
/// trains, resumes exactly, writes float32 checkpoints and weights that ``UNetScore`` reads, and
/// refuses bad input with a message, a non-zero exit and no file.
@Suite struct UNetTrainCommandTests {
    /// 24 images 1×4×4 (continuous, so no data scaling), and the tiny network's options.
    static func images() throws -> Tensor {
        var s = RandomSource(seed: 21).stream(draw: 0, row: 0)
        return try Tensor(shape: [24, 1, 4, 4], storage: (0 ..< 24 * 16).map { _ in s.normal() * 0.5 })
    }
    static let tiny = ["--model", "unet", "--channels", "8,8", "--norm-groups", "4", "--batch-size", "6", "--gradient-block", "3",
                       "--checkpoint-interval", "0", "--seed", "4"]

    static func libraryTrainer(_ data: Tensor) throws -> UNetTrainer {
        let unet = UNetConfiguration(imageSize: 4, channels: 1, blockOutChannels: [8, 8], layersPerBlock: 1, attentionLevels: [false, true],
                                     midBlockAttention: true, normGroups: 4)
        let options = DSMTrainingOptions(sde: .vp(betaMin: 0.1, betaMax: 20), seed: 4, batchSize: 6, learningRate: 5e-4, warmup: 500,
                                         gradClip: 1, emaRate: 0.999, gradientBlockSize: 3)
        return try UNetTrainer(configuration: UNetTrainingConfiguration(unet: unet, options: options), data: data)
    }

    @Test func trainsTheLibrarysRunAndResumesExactly() throws {
        let ws = try Workspace()
        let data = try Self.images()
        try ws.write(Npy.encode(data), to: "x.npy")
        let a = try ws.run(["train", "--data", "x.npy", "--steps", "3", "--output", "m.safetensors"] + Self.tiny)
        try #require(a.status == 0, "\(a)")
        #expect(a.stdout.contains("U-Net channels 8,8") && a.stdout.contains("attention 2x2 + middle"), "\(a.stdout)")
        let b = try ws.run(["train", "--data", "x.npy", "--steps", "6", "--output", "m.safetensors", "--resume", "--export-weights", "w.safetensors",
                            "--stats", "s.json", "--checkpoint-interval", "0"])
        try #require(b.status == 0, "\(b)")
        let library = try Self.libraryTrainer(data)
        try library.train(steps: 6)
        let file = try Safetensors.read(ws.path("m.safetensors"))
        #expect(file.tensors.allSatisfy { $0.dtype == .f32 } && file.metadata["train.step"] == "6")
        let resumed = try UNetTrainer.resume(from: ws.path("m.safetensors"), data: data)
        #expect(resumed.parameters == library.parameters && resumed.ema.values == library.ema.values, "CLI (3 + 3 steps) vs library (6 steps)")
        let exported = try UNetScore.read(ws.path("w.safetensors"))
        #expect(exported.parameters == library.ema.values)
        #expect(try Safetensors.read(ws.path("w.safetensors")).tensors.allSatisfy { $0.dtype == .f32 })
        let stats = try ws.json("s.json")
        #expect(stats["network"] as? String == "unet" && stats["parameters"] as? Int == library.parameters.count && stats["steps_trained"] as? Int == 3)
    }

    @Test func fashionMNISTTrainsAClassConditionalUNet() throws {
        let ws = try Workspace()
        let r = try ws.run(["train", "--data", "fashion-mnist", "--count", "12", "--steps", "2", "--model", "unet", "--channels", "8,8,8",
                            "--norm-groups", "4", "--batch-size", "4", "--gradient-block", "4", "--labels", "own", "--output", "f.safetensors", "--quiet"])
        try #require(r.status == 0, "\(r)")
        let model = try UNetScore.read(ws.path("f.safetensors"))
        #expect(model.configuration.imageSize == 28 && model.configuration.classCount == 10 && model.configuration.blockOutChannels == [8, 8, 8])
        // Symmetric scaling of the 256 grey levels by default: 0 → -1, 255 → 1.
        #expect(abs(model.dataScaling.shift + 1) < 1e-12 && abs(model.dataScaling.scale * 255 - 2) < 1e-12)
        #expect(r.stdout.contains("10 classes + null label"))
    }

    @Test func badInputFailsClearlyAndWritesNothing() throws {
        let ws = try Workspace()
        try ws.write(Npy.encode(Self.images()), to: "x.npy")
        let cases: [([String], String)] = [
            (["--data", "ring", "--model", "unet"], "square images"),
            (["--data", "x.npy", "--model", "unet", "--hidden", "8"], "--hidden is an option of the MLP"),
            (["--data", "x.npy", "--channels", "8,8"], "add --model unet"),
            (["--data", "x.npy", "--model", "unet", "--channels", "8,x"], "--channels must be positive integers"),
            (["--data", "x.npy", "--model", "unet", "--channels", "8,8,8,8"], "divisible by 2^(levels − 1)"),
            (["--data", "x.npy", "--model", "unet", "--channels", "6,6"], "divisible by norm_num_groups"),
            (["--data", "x.npy", "--model", "unet", "--dtype", "f64", "--export-weights", "w.safetensors"], "float32"),
        ]
        for (args, message) in cases {
            let r = try ws.run(["train", "--steps", "1", "--output", "m.safetensors"] + args)
            #expect(r.status != 0 && r.stderr.contains(message), "\(args): \(r)")
            #expect(!ws.files().contains("m.safetensors") && !ws.files().contains("w.safetensors"), "\(args) wrote a file")
        }
        // Resuming a U-Net checkpoint as an MLP.
        let ok = try ws.run(["train", "--data", "x.npy", "--steps", "1", "--output", "u.safetensors"] + Self.tiny)
        try #require(ok.status == 0, "\(ok)")
        let r = try ws.run(["train", "--data", "x.npy", "--steps", "2", "--output", "u.safetensors", "--resume", "--model", "mlp"])
        #expect(r.status != 0 && r.stderr.contains("checkpoint of a U-Net"), "\(r)")
        let c = try ws.run(["train", "--data", "x.npy", "--steps", "2", "--output", "u.safetensors", "--resume", "--channels", "16,16"])
        #expect(c.status != 0 && c.stderr.contains("--channels [16, 16] (the checkpoint's is [8, 8])"), "\(c)")
    }

    /// A class-conditional run stopped by SIGINT prints a resume command that works as printed: the
    /// labels are part of the run's data, so the command carries `--labels`.
    @Test func anInterruptedLabelledRunResumesWithThePrintedCommand() throws {
        let ws = try Workspace()
        let data = try Self.images()
        try ws.write(Npy.encode(data), to: "x.npy")
        try ws.write(Npy.encode(try Tensor(shape: [24], storage: (0 ..< 24).map { Double($0 % 3) })), to: "y.npy")
        let executable = try #require(scoresdeExecutable)
        let process = Process()
        process.executableURL = executable
        process.arguments = ["train", "--data", "x.npy", "--labels", "y.npy", "--steps", "100000", "--output", "m.safetensors"]
            + Self.tiny.filter { $0 != "--checkpoint-interval" && $0 != "0" } + ["--checkpoint-interval", "0.2"]
        process.currentDirectoryURL = ws.url
        let err = ws.url.appendingPathComponent("stderr.txt")
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let handle = try FileHandle(forWritingTo: err)
        process.standardError = handle
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: ws.path("m.safetensors")) && process.isRunning && Date() < deadline { usleep(20_000) }
        try #require(process.isRunning, "the run ended before it could be interrupted")
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        try handle.close()
        let stderr = String(decoding: try Data(contentsOf: err), as: UTF8.self)
        #expect(process.terminationStatus == 130, "\(stderr)")
        let line = try #require(stderr.split(separator: "\n").first { $0.hasPrefix("resume with: scoresde train ") })
        var resume = line.dropFirst("resume with: scoresde ".count).split(separator: " ").map(String.init)
        #expect(resume.contains("--labels") && resume.contains("y.npy"), "\(line)")
        let stopped = try #require(Int(try Safetensors.read(ws.path("m.safetensors")).metadata["train.step"] ?? ""))
        resume[resume.firstIndex(of: "100000")!] = "\(stopped + 2)"
        let r = try ws.run(resume)
        #expect(r.status == 0 && r.stdout.contains("resumed at step \(stopped)"), "\(r)")
    }
}

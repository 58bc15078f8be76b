import Foundation
import ScoreSDE
import Testing

/// `--data fashion-mnist` and `--data fashion-mnist-test` on the command line, run as a built
/// binary: the training split trains, the test split is refused for training and accepted for
/// evaluation, and a missing package is a clean error with the set-up command.
@Suite struct FashionMNISTCommandTests {
    /// Runs `scoresde` in `ws` with extra environment variables.
    static func run(_ ws: Workspace, _ arguments: [String], environment: [String: String]) throws -> CommandResult {
        let executable = try #require(scoresdeExecutable, "scoresde not found next to the test bundle; build it first (swift build --build-tests)")
        let out = ws.path(".stdout-\(UUID().uuidString)"), err = ws.path(".stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: err) }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = ws.url
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        return CommandResult(status: process.terminationStatus,
                             stdout: String(decoding: try Data(contentsOf: URL(fileURLWithPath: out)), as: UTF8.self),
                             stderr: String(decoding: try Data(contentsOf: URL(fileURLWithPath: err)), as: UTF8.self))
    }

    static let tinyTrain = ["train", "--hidden", "16", "--blocks", "1", "--fourier-features", "4", "--batch-size", "16", "--steps", "3"]

    @Test func aMissingPackageIsACleanErrorNamingItAndTheSetupCommand() throws {
        let ws = try Workspace()
        try FileManager.default.createDirectory(atPath: ws.path("empty"), withIntermediateDirectories: true)
        let r = try Self.run(ws, Self.tinyTrain + ["--data", "fashion-mnist", "--output", "m.safetensors"],
                             environment: [FashionMNIST.directoryVariable: ws.path("empty")])
        #expect(r.status != 0, "\(r)")
        for part in ["dataset-fashion-mnist", "scripts/setup.sh", "apt-get install dataset-fashion-mnist"] {
            #expect(r.stderr.contains(part), "the error lacks '\(part)': \(r)")
        }
        #expect(ws.files() == ["empty"], "nothing written")
    }

    @Test func theTestSplitIsRefusedForTraining() throws {
        let ws = try Workspace()
        for command in [Self.tinyTrain, ["train-classifier", "--steps", "2"]] {
            let r = try ws.run(command + ["--data", "fashion-mnist-test", "--output", "m.safetensors"])
            #expect(r.status != 0 && r.stderr.contains("evaluation only") && r.stderr.contains("train on fashion-mnist"), "\(r)")
        }
        #expect(ws.files().isEmpty, "nothing written")
    }

    /// The MLP takes the 784-D images as vectors (slowly and poorly: the U-Net is the model for
    /// them); with labels, the ten classes are recorded.
    @Test func aSmallRunTrainsOnTheTrainingSplitWithLabels() throws {
        let ws = try Workspace()
        let r = try ws.run(Self.tinyTrain + ["--data", "fashion-mnist", "--count", "64", "--labels", "own", "--output", "m.safetensors"])
        try #require(r.status == 0, "\(r)")
        let model = try MLPScore.load(from: ws.path("m.safetensors"))
        #expect(model.rowShape == [1, 28, 28] && model.architecture.classCount == 10)
        #expect(model.dataScaling == (try DataScaling(scale: 1.0 / 255, shift: 0)), "unit scaling of 256 levels")

        // Demos of a 28 x 28 grey model take their inputs from the test split (evaluation data).
        let inpaint = try ws.run(["inpaint", "--model", "m.safetensors", "--count", "2", "--samples-per-input", "1",
                                  "--steps", "5", "--corrector", "none", "--output", "i.npy"])
        try #require(inpaint.status == 0, "\(inpaint)")
        #expect(inpaint.stdout.contains("the first 2 Fashion-MNIST test images"), "\(inpaint.stdout)")
        #expect(try Npy.read(ws.path("i.npy")).shape == [2, 1, 28, 28])

        // A noise-aware classifier trains on the training split's own labels too.
        let classifier = try ws.run(["train-classifier", "--data", "fashion-mnist", "--count", "64", "--steps", "2",
                                     "--hidden", "16", "--blocks", "1", "--batch-size", "16", "--output", "c.safetensors"])
        #expect(classifier.status == 0, "\(classifier)")
    }

    /// Evaluation commands load the test split and check it against the model: the shipped digits
    /// model takes 8 x 8 images, so 28 x 28 ones are a shape error, not a crash.
    @Test func evaluationLoadsTheTestSplitAndChecksItsShape() throws {
        let ws = try Workspace()
        let r = try ws.run(["likelihood", "--model", "digits-mlp", "--data", "fashion-mnist-test", "--count", "4"])
        #expect(r.status != 0 && r.stderr.contains("fashion-mnist-test") && r.stderr.lowercased().contains("shape"), "\(r)")
    }
}

import Foundation
import ScoreSDE
import Testing

/// `train-classifier` and classifier guidance in `sample`: tiny networks, short runs; bad input
/// fails with a message, a non-zero exit and no output file.
@Suite struct ClassifierCommandTests {
    static let tinyClassifier = ["train-classifier", "--hidden", "16", "--blocks", "1", "--fourier-features", "4", "--batch-size", "32", "--steps", "20"]
    static let tinyScore = ["train", "--hidden", "16", "--blocks", "1", "--fourier-features", "4", "--batch-size", "32", "--steps", "10"]

    @Test func trainClassifierWritesACheckpointAndWeightsAndResumes() throws {
        let ws = try Workspace()
        let r = try ws.run(Self.tinyClassifier + ["--data", "ring", "--output", "c.safetensors", "--export-weights", "w.safetensors"])
        try #require(r.status == 0, "\(r)")
        #expect(r.stdout.contains("training accuracy"))
        let c = try NoiseAwareClassifier.load(from: ws.path("w.safetensors"))
        #expect(c.classCount == 8 && c.rowShape == [2] && c.sdeSpec == .vp(betaMin: 0.1, betaMax: 20))
        // --resume continues to a larger --steps; setup options are refused with --resume.
        let more = try ws.run(["train-classifier", "--data", "ring", "--steps", "30", "--output", "c.safetensors", "--resume"])
        try #require(more.status == 0, "\(more)")
        #expect(try Safetensors.read(ws.path("c.safetensors")).metadata["train.step"] == "30")
        let clash = try ws.run(["train-classifier", "--data", "ring", "--steps", "40", "--output", "c.safetensors", "--resume", "--hidden", "8"])
        #expect(clash.status != 0 && clash.stderr.contains("--hidden"))
        // --like takes the digits model's SDE, scaling and dequantization.
        let like = try ws.run(Self.tinyClassifier + ["--data", "digits", "--count", "64", "--like", "digits-mlp", "--output", "d.safetensors"])
        try #require(like.status == 0, "\(like)")
        let d = try NoiseAwareClassifier.load(from: ws.path("d.safetensors"))
        let digits = try PretrainedModels.digitsMLP()
        #expect(d.dataScaling == digits.dataScaling && d.sdeSpec == digits.sdeSpec && d.classCount == 10)
        #expect(try Safetensors.read(ws.path("d.safetensors")).metadata["data.dequantization_levels"] == "17")
    }

    @Test func badClassifierTrainingInputWritesNothing() throws {
        let ws = try Workspace()
        try ws.write(Npy.encode(try Tensor(shape: [6, 2], storage: [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])), to: "x.npy")
        try ws.write(Npy.encode(try Tensor(shape: [5], storage: [0, 1, 0, 1, 2])), to: "short.npy")
        for (args, text) in [(["--data", "x.npy", "--labels", "short.npy"], "one integer label per data row"),
                             (["--data", "x.npy"], "no labels"),
                             (["--data", "ring", "--like", "digits-mlp"], "shape"),
                             (["--data", "ring", "--like", "ring"], "Gaussian mixture"),
                             (["--data", "ring", "--min-time", "nan"], "finite"),
                             (["--data", "ring", "--like", "digits-mlp", "--sde", "ve"], "--like")] {
            let bad = try ws.run(Self.tinyClassifier + args + ["--output", "bad.safetensors"])
            #expect(bad.status != 0 && bad.stderr.contains(text), "\(args): \(bad)")
            #expect(!ws.files().contains("bad.safetensors"))
        }
    }

    /// Classifier guidance steers the unconditional digits model (the conditional model's null
    /// label) towards the requested classes. Unguided, a sample is of a given class with probability
    /// about 1/10; a statistical contract (it holds for any retrained model or classifier that
    /// works): the share of the 20 guided samples that the shipped classifier (at t = 0.01) puts in
    /// their requested class exceeds 0.1 by 5 binomial standard errors under that null,
    /// 0.1 + 5 √(0.09/20) = 0.44 — and exceeds the unguided run's share (scale 0, same seed).
    @Test func sampleWithTheShippedDigitsClassifier() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--model", "digits-mlp", "--class", "0,1", "--classifier", "digits-mlp", "--classifier-scale", "2",
                            "--count", "20", "--nfe", "8", "--output", "s.npy", "--stats", "s.json", "--png", "g.png"])
        try #require(r.status == 0, "\(r)")
        let stats = try ws.json("s.json")
        #expect(stats["classifier"] as? String == "digits-mlp" && stats["classifier_scale"] as? Double == 2)
        #expect((stats["classifier_convention"] as? String)?.contains("w grad_x log p_t(y|x)") == true)
        #expect(ws.files().contains("g.png"))
        let off = try ws.run(["sample", "--model", "digits-mlp", "--class", "0,1", "--classifier", "digits-mlp", "--classifier-scale", "0",
                              "--count", "20", "--nfe", "8", "--output", "u.npy"])
        try #require(off.status == 0, "\(off)")
        let classifier = try PretrainedClassifiers.digitsMLP()
        let wanted = (0 ..< 20).map { $0 < 10 ? 0 : 1 }   // --class 0,1: the samples split evenly, in order
        func share(_ file: String) throws -> Double {
            let x = classifier.dataScaling.toModel(try Npy.read(ws.path(file)))
            return Double(zip(try classifier.predict(x, at: 0.01), wanted).filter { $0 == $1 }.count) / 20
        }
        let guided = try share("s.npy"), unguided = try share("u.npy")
        #expect(guided > 0.1 + 5 * (0.09 / 20).squareRoot() && guided > unguided, "guided share \(guided), unguided \(unguided)")
        // With the PC sampler and classifier-free guidance as the base.
        let both = try ws.run(["sample", "--model", "digits-mlp", "--class", "7", "--guidance-scale", "2", "--classifier", "digits-mlp",
                               "--count", "2", "--steps", "20", "--output", "b.npy"])
        try #require(both.status == 0, "\(both)")
    }

    @Test func classifierGuidanceBadInputWritesNothing() throws {
        let ws = try Workspace()
        // An unconditional and an 8-class 2-D model; 8-class (ring) and 2-class (moons) 2-D classifiers.
        for args in [Self.tinyScore + ["--data", "ring", "--output", "u.safetensors"],
                     Self.tinyScore + ["--data", "ring", "--labels", "own", "--output", "c8.safetensors"],
                     Self.tinyClassifier + ["--data", "ring", "--output", "ring-clf.safetensors"],
                     Self.tinyClassifier + ["--data", "moons", "--output", "moons-clf.safetensors"],
                     Self.tinyClassifier + ["--data", "ring", "--sde", "subvp", "--output", "subvp-clf.safetensors"]] {
            let r = try ws.run(args)
            try #require(r.status == 0, "\(args): \(r)")
        }
        // The unconditional model guided by the ring classifier works.
        let ok = try ws.run(["sample", "--model", "u.safetensors", "--class", "3", "--classifier", "ring-clf.safetensors", "--count", "8",
                             "--steps", "10", "--output", "ok.npy"])
        try #require(ok.status == 0, "\(ok)")
        for (args, text) in [(["--model", "digits-mlp", "--class", "1", "--classifier", "ring-clf.safetensors"], "shape"),
                             (["--model", "c8.safetensors", "--class", "1", "--classifier", "moons-clf.safetensors"], "classes"),
                             (["--model", "u.safetensors", "--class", "5", "--classifier", "moons-clf.safetensors"], "not a class of the classifier"),
                             (["--model", "u.safetensors", "--class", "1", "--classifier", "subvp-clf.safetensors"], "SDE"),
                             (["--model", "u.safetensors", "--class", "1"], "unconditional"),
                             (["--model", "digits-mlp", "--class", "10", "--classifier", "digits-mlp"], "not a class"),
                             (["--model", "digits-mlp", "--class", "1", "--classifier", "digits-mlp", "--classifier-scale", "nan"], "finite"),
                             (["--model", "digits-mlp", "--class", "1", "--classifier", "digits-mlp", "--classifier-scale", "inf"], "finite"),
                             (["--model", "digits-mlp", "--class", "1", "--classifier-scale", "2"], "--classifier"),
                             (["--model", "digits-mlp", "--classifier", "digits-mlp"], "--class"),
                             (["--model", "digits-mlp", "--class", "1", "--classifier", "u.safetensors"], "score model"),
                             (["--model", "digits-mlp", "--class", "1", "--classifier", "nope"], "shipped classifier")] {
            let bad = try ws.run(["sample"] + args + ["--steps", "10", "--count", "2", "--output", "bad.npy"])
            #expect(bad.status != 0 && bad.stderr.contains(text), "\(args): \(bad)")
            #expect(!ws.files().contains("bad.npy"))
        }
    }

    /// The ClassConditional example runs, writes its PNG and reports how many samples the
    /// classifier puts in their class; bad settings fail before any work.
    @Test func classConditionalExampleRuns() throws {
        let ws = try Workspace()
        let r = try ws.runExample("ClassConditional", ["--output", "c.png", "--per-class", "2", "--steps", "8"])
        try #require(r.status == 0, "\(r)")
        #expect(ws.files().contains("c.png") && r.stdout.contains("classified as their class"))
        // Each method's samples are mostly of their class: "k of n samples classified as their class"
        // with k/n above chance (0.1) by 5 binomial standard errors, 0.1 + 5 √(0.09/n).
        let lines = r.stdout.split(separator: "\n").filter { $0.contains("classified as their class") }
        #expect(!lines.isEmpty)
        for l in lines {
            let words = l.split(separator: " ").map(String.init)
            let j = try #require(words.indices.first { $0 >= 3 && $0 + 1 < words.count && words[$0] == "samples" && words[$0 + 1] == "classified" }, "\(l)")
            let k = try #require(Double(words[j - 3]), "\(l)"), n = try #require(Double(words[j - 1]), "\(l)")
            #expect(k / n > 0.1 + 5 * (0.09 / n).squareRoot(), "\(l)")
        }
        let bad = try ws.runExample("ClassConditional", ["--output", "bad.png", "--guidance-scale", "nan"])
        #expect(bad.status != 0 && !ws.files().contains("bad.png"))
    }

    /// SIGINT stops `train-classifier` after the step in progress: the checkpoint is written, the
    /// command that resumes is printed, exit status 130; that command (to a few more steps) continues it.
    @Test func anInterruptedClassifierRunResumes() throws {
        let ws = try Workspace()
        let executable = try #require(scoresdeExecutable)
        let process = Process()
        process.executableURL = executable
        process.arguments = ["train-classifier", "--data", "ring", "--hidden", "8", "--blocks", "1", "--fourier-features", "2",
                             "--batch-size", "8", "--steps", "10000000", "--checkpoint-interval", "0.2", "--output", "m.safetensors"]
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
        try FileManager.default.removeItem(at: err)
        #expect(process.terminationReason == .exit && process.terminationStatus == 130, "\(process.terminationStatus): \(stderr)")
        let step = try #require(Int(try Safetensors.read(ws.path("m.safetensors")).metadata["train.step"] ?? ""))
        #expect(stderr.contains("SIGINT: stopped after step \(step) of 10000000"), "\(stderr)")
        let line = try #require(stderr.split(separator: "\n").first { $0.hasPrefix("resume with: scoresde train-classifier ") })
        var resume = line.dropFirst("resume with: scoresde ".count).split(separator: " ").map(String.init)
        let i = try #require(resume.firstIndex(of: "--steps"))
        resume[i + 1] = "\(step + 5)"
        let r = try ws.run(resume)
        try #require(r.status == 0, "\(r)")
        #expect(try Safetensors.read(ws.path("m.safetensors")).metadata["train.step"] == "\(step + 5)")
    }
}

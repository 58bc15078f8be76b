import Foundation
import ScoreSDE
import ScoreSDEPlot
import Testing

/// `scoresde train` and learned models (`--model PATH.safetensors`, `--model digits`) on the
/// command line, run as a built binary. Networks are tiny and runs short, so the suite stays fast.
@Suite struct TrainCommandTests {
    /// A tiny network on the ring: trains in a fraction of a second.
    static let tiny = ["train", "--data", "ring", "--hidden", "16", "--blocks", "1", "--fourier-features", "4", "--batch-size", "32"]

    static func npy(_ shape: [Int], _ values: [Double]) throws -> Data {
        Npy.encode(try Tensor(shape: shape, storage: values))
    }

    /// Trains the tiny ring model for `steps` steps into `name` (plus `extra` options).
    static func trainTiny(_ ws: Workspace, _ name: String = "m.safetensors", steps: Int = 20, _ extra: [String] = []) throws -> CommandResult {
        let r = try ws.run(tiny + ["--steps", "\(steps)", "--output", name] + extra)
        try #require(r.status == 0, "\(r)")
        return r
    }

    // MARK: - train

    @Test func trainWritesALoadableCheckpointAndASummary() throws {
        let ws = try Workspace()
        let r = try Self.trainTiny(ws)
        #expect(ws.files() == ["m.safetensors"], "only the checkpoint is written")
        #expect(r.stderr.isEmpty, "no progress bar when stderr is not a terminal: \(r.stderr)")
        for text in ["trained 20 steps", "final loss", "examples/s", " s", "m.safetensors", "ring"] {
            #expect(r.stdout.contains(text), "the summary lacks '\(text)': \(r.stdout)")
        }
        let model = try MLPScore.load(from: ws.path("m.safetensors"))
        #expect(model.rowShape == [2])
        #expect(model.architecture.hiddenWidth == 16 && model.architecture.residualBlocks == 1 && model.architecture.fourierFeatures == 4)
        #expect(model.sdeSpec.kind == "vp", "VP is train's default SDE")
        #expect(model.dataScaling == .identity, "the toys are not scaled")
        let file = try Safetensors.read(ws.path("m.safetensors"))
        #expect(file.metadata["format.content"] == "checkpoint")
        #expect(file.metadata["train.step"] == "20")
        #expect(file.metadata["train.batch_size"] == "32")
        #expect(file["adam.exp_avg.input.weight"] != nil, "the checkpoint holds Adam's state")
        let x = try Tensor(shape: [3, 2], storage: [0, 4, -4, 0, 1, 1])
        #expect(try model.score(x, at: 0.5).isFinite)
    }

    @Test func resumingGivesTheBytesOfAnUninterruptedRun() throws {
        let ws = try Workspace()
        _ = try Self.trainTiny(ws, "full.safetensors", steps: 24)
        _ = try Self.trainTiny(ws, "split.safetensors", steps: 12)
        let r = try ws.run(["train", "--data", "ring", "--steps", "24", "--output", "split.safetensors", "--resume"])
        try #require(r.status == 0, "\(r)")
        #expect(r.stdout.contains("trained 12 steps") && r.stdout.contains("resumed at step 12"), "\(r.stdout)")
        #expect(try ws.data("split.safetensors") == ws.data("full.safetensors"), "resume must continue exactly")
        // Intermediate checkpoints change nothing either, and a run resumed from one finishes the same.
        _ = try Self.trainTiny(ws, "ckpt.safetensors", steps: 24, ["--checkpoint-every", "10"])
        #expect(try ws.data("ckpt.safetensors") == ws.data("full.safetensors"))
        // Resuming a finished run trains nothing and rewrites the same checkpoint.
        let again = try ws.run(["train", "--data", "ring", "--steps", "24", "--output", "full.safetensors", "--resume"])
        try #require(again.status == 0, "\(again)")
        #expect(again.stdout.contains("nothing to train"))
        #expect(try ws.data("ckpt.safetensors") == ws.data("full.safetensors"))
    }

    @Test func resumingWithOtherSettingsOrDataFailsAndKeepsTheCheckpoint() throws {
        let ws = try Workspace()
        _ = try Self.trainTiny(ws, steps: 10)
        let before = try ws.data("m.safetensors")
        let ring = ["--data", "ring", "--steps", "20"]
        let cases: [([String], [String])] = [
            (ring + ["--lr", "0.01"], ["--lr", "checkpoint"]),
            (ring + ["--hidden", "32"], ["--hidden"]),
            (ring + ["--sde", "ve"], ["--sde ve"]),
            (ring + ["--beta-max", "10"], ["--beta-max"]),
            (ring + ["--sigma-max", "10"], ["--sigma-max", "not a parameter"]),
            (ring + ["--seed", "3"], ["--seed"]),
            (ring + ["--reduce-mean"], ["--reduce-mean"]),
            (["--data", "moons", "--steps", "20"], ["not the data"]),
            (["--data", "ring", "--steps", "5"], ["already", "10"]),
        ]
        for (extra, keywords) in cases {
            let args = ["train", "--output", "m.safetensors", "--resume"] + extra
            let r = try ws.run(args)
            #expect(r.status != 0, "\(extra): \(r)")
            for k in keywords { #expect(r.stderr.contains(k), "\(extra): the message should name '\(k)': \(r.stderr)") }
            #expect(try ws.data("m.safetensors") == before, "\(extra): a refused resume leaves the checkpoint alone")
            #expect(ws.files() == ["m.safetensors"])
        }
        // Without --resume an existing file is not replaced, unless asked to.
        let r = try ws.run(Self.tiny + ["--steps", "5", "--output", "m.safetensors"])
        #expect(r.status != 0 && r.stderr.contains("--resume") && r.stderr.contains("--overwrite"), "\(r)")
        #expect(try ws.data("m.safetensors") == before)
        _ = try Self.trainTiny(ws, steps: 5, ["--overwrite"])
        #expect(try Safetensors.read(ws.path("m.safetensors")).metadata["train.step"] == "5")
    }

    @Test func exportedWeightsAreTheEMAWeightsInF32() throws {
        let ws = try Workspace()
        _ = try Self.trainTiny(ws, "m.safetensors", steps: 15, ["--export-weights", "w.safetensors", "--dtype", "f32"])
        #expect(ws.files() == ["m.safetensors", "w.safetensors"])
        let checkpoint = try MLPScore.load(from: ws.path("m.safetensors"))
        let weights = try MLPScore.load(from: ws.path("w.safetensors"))
        let file = try Safetensors.read(ws.path("w.safetensors"))
        #expect(file.metadata["format.content"] == "weights")
        #expect(file.tensors.allSatisfy { $0.dtype == .f32 })
        #expect(weights.architecture == checkpoint.architecture && weights.sdeSpec == checkpoint.sdeSpec)
        #expect(zip(weights.parameters, checkpoint.parameters).allSatisfy { Float($1) == Float($0) }, "the EMA weights, rounded to F32")
        #expect(try ws.data("w.safetensors").count * 4 < ws.data("m.safetensors").count, "F32 weights alone are far smaller than the F64 checkpoint")
    }

    // MARK: - Learned models in sample, encode, likelihood

    @Test func aTrainedFileDrivesSampleEncodeAndLikelihood() throws {
        let ws = try Workspace()
        _ = try Self.trainTiny(ws, steps: 20)
        try ws.write(try Self.npy([5, 2], [4, 0, 0, 4, -4, 0, 0, -4, 2.8, 2.8]), to: "x.npy")
        let m = ["--model", "m.safetensors"]

        let s = try ws.run(["sample"] + m + ["--count", "32", "--steps", "40", "--output", "s.npy", "--stats", "s.json", "--png", "s.png"])
        try #require(s.status == 0, "\(s)")
        #expect(try Npy.read(ws.path("s.npy")).shape == [32, 2])
        let stats = try ws.json("s.json")
        #expect(stats["sde"] as? String == "vp" && stats["beta_max"] as? Double == 20, "the model's own SDE")
        #expect(stats["model"] as? String == "m.safetensors")
        #expect(stats["eps"] as? Double == 1e-3, "the VP sampling eps")
        _ = try PNG.read(ws.path("s.png"))

        let o = try ws.run(["sample"] + m + ["--sampler", "ode", "--count", "8", "--output", "o.npy"])
        try #require(o.status == 0, "\(o)")
        #expect(try Npy.read(ws.path("o.npy")).shape == [8, 2])

        let e = try ws.run(["encode"] + m + ["--data", "x.npy", "--output", "z.npy"])
        try #require(e.status == 0, "\(e)")
        let z = try Npy.read(ws.path("z.npy"))
        #expect(z.shape == [5, 2] && z.isFinite)

        let l = try ws.run(["likelihood"] + m + ["--data", "x.npy", "--output", "ll.npy", "--stats", "l.json"])
        try #require(l.status == 0, "\(l)")
        let ll = try Npy.read(ws.path("ll.npy"))
        #expect(ll.shape == [5] && ll.isFinite)
        let ls = try ws.json("l.json")
        #expect(ls["log_jacobian"] as? Double == 0, "no data scaling, no Jacobian")
        #expect(ls["bits_per_dim_offset"] as? Double == 0)

        // A built-in data set as --data, and the SDE options must agree with the model's.
        let d = try ws.run(["likelihood"] + m + ["--data", "ring", "--count", "4", "--estimator", "rademacher", "--rtol", "1e-3", "--atol", "1e-3"])
        #expect(d.status == 0 && d.stdout.contains("4 samples"), "\(d)")
        let same = try ws.run(["sample"] + m + ["--sde", "vp", "--beta-min", "0.1", "--count", "4", "--steps", "30", "--output", "same.npy"])
        #expect(same.status == 0, "options that agree with the file are fine: \(same)")
        for (extra, keyword) in [(["--sde", "ve"], "--sde ve"), (["--beta-max", "10"], "--beta-max 10"), (["--sigma-max", "5"], "--sigma-max")] {
            let bad = try ws.run(["sample"] + m + extra + ["--count", "4", "--output", "bad.npy"])
            #expect(bad.status != 0 && bad.stderr.contains(keyword) && bad.stderr.contains("vp"), "\(extra): \(bad)")
        }
        let noData = try ws.run(["likelihood"] + m)
        #expect(noData.status != 0 && noData.stderr.contains("--data"), "\(noData)")
        let exactPrior = try ws.run(["likelihood"] + m + ["--data", "x.npy", "--exact-prior"])
        #expect(exactPrior.status != 0 && exactPrior.stderr.contains("--exact-prior"), "\(exactPrior)")
        #expect(!ws.files().contains("bad.npy"))
    }

    /// `--scaling logit`: the file records the transform, samples come back inside the map's range in
    /// data space, and the likelihood's stats add up: terminal + Δlog p + the (per-sample, averaged)
    /// log-Jacobian = the reported mean; the dequantized likelihood runs too. Bad combinations fail early.
    @Test func aLogitScaledModelWorksInDataSpace() throws {
        let ws = try Workspace()
        let train = ["train", "--data", "digits", "--count", "200", "--hidden", "32", "--blocks", "1", "--fourier-features", "4",
                     "--batch-size", "16", "--steps", "10", "--dequantize", "--gaussian-base"]
        let r = try ws.run(train + ["--scaling", "logit", "--logit-lambda", "0.01", "--output", "d.safetensors"])
        try #require(r.status == 0, "\(r)")
        let model = try MLPScore.load(from: ws.path("d.safetensors"))
        #expect(model.dataScaling == (try DataScaling.logit(lambda: 0.01, levels: 17)))
        let s = try ws.run(["sample", "--model", "d.safetensors", "--count", "8", "--steps", "20", "--output", "s.npy"])
        try #require(s.status == 0, "\(s)")
        let top = 17 * 0.99 / 0.98, bottom = -17 * 0.01 / 0.98
        #expect(try Npy.read(ws.path("s.npy")).storage.allSatisfy { $0 > bottom && $0 < top })

        let digits = try Digits.load(split: .heldOut).images.rows(0 ..< 5)
        try ws.write(Npy.encode(digits), to: "x.npy")
        let l = try ws.run(["likelihood", "--model", "d.safetensors", "--data", "x.npy", "--estimator", "rademacher", "--stats", "l.json"])
        try #require(l.status == 0, "\(l)")
        let j = try ws.json("l.json")
        let parts = ["mean_terminal_log_density", "mean_delta_log_p", "log_jacobian"].compactMap { j[$0] as? Double }
        try #require(parts.count == 3, "\(j)")
        let mean = try #require(j["mean_log_likelihood"] as? Double)
        #expect(abs(parts.reduce(0, +) - mean) < 1e-9 * max(1, abs(mean)), "\(parts) vs \(mean)")
        #expect(j["bits_per_dim_offset"] == nil, "no constant offset through a logit")
        let dq = try ws.run(["likelihood", "--model", "d.safetensors", "--data", "x.npy", "--dequantize", "--estimator", "rademacher", "--stats", "dq.json"])
        #expect(dq.status == 0 && (try? ws.json("dq.json"))?["mean_bits_per_dim"] is Double, "\(dq)")

        let noDequantize = try ws.run(["train", "--data", "digits", "--scaling", "logit", "--steps", "2", "--output", "e.safetensors"])
        #expect(noDequantize.status != 0 && noDequantize.stderr.contains("--dequantize"), "\(noDequantize)")
        let badLambda = try ws.run(train + ["--scaling", "logit", "--logit-lambda", "0.7", "--output", "f.safetensors"])
        #expect(badLambda.status != 0 && badLambda.stderr.contains("lambda"), "\(badLambda)")
        let reconstruct = try ws.run(["reconstruct", "--model", "d.safetensors", "--count", "1", "--output", "r.npy"])
        #expect(reconstruct.status != 0 && reconstruct.stderr.contains("affine"), "\(reconstruct)")
        #expect(!FileManager.default.fileExists(atPath: ws.path("r.npy")))
    }

    /// A model trained on scaled data (digits, unit scaling x / 16) reads and writes data space:
    /// encoding data and decoding the latents gives the data back, and the log-likelihood includes
    /// the log-Jacobian D log(1/16) of the scaling.
    @Test func aScaledModelWorksInDataSpace() throws {
        let ws = try Workspace()
        let r = try ws.run(["train", "--data", "digits", "--hidden", "64", "--blocks", "1", "--fourier-features", "4",
                            "--batch-size", "16", "--steps", "10", "--output", "d.safetensors"])
        try #require(r.status == 0, "\(r)")
        let model = try MLPScore.load(from: ws.path("d.safetensors"))
        #expect(model.rowShape == [1, 8, 8] && model.dataScaling.scale == 1.0 / 16 && model.dataScaling.shift == 0)
        let digits = try Digits.load(split: .heldOut).images.rows(0 ..< 6)
        try ws.write(Npy.encode(digits), to: "x.npy")
        let m = ["--model", "d.safetensors"]

        let tight = ["--rtol", "1e-8", "--atol", "1e-8"]
        let e = try ws.run(["encode"] + m + tight + ["--data", "x.npy", "--output", "z.npy"])
        try #require(e.status == 0, "\(e)")
        let back = try ws.run(["sample"] + m + tight + ["--latent", "z.npy", "--output", "back.npy"])
        try #require(back.status == 0, "\(back)")
        let x = try Npy.read(ws.path("back.npy"))
        #expect(x.shape == [6, 1, 8, 8])
        let err = zip(x.storage, digits.storage).map { abs($0 - $1) }.max()!
        #expect(err < 0.05, "encode then decode returns the data in data space (0...16), max error \(err)")

        let l = try ws.run(["likelihood"] + m + ["--data", "x.npy", "--estimator", "rademacher", "--stats", "l.json", "--output", "ll.npy"])
        try #require(l.status == 0, "\(l)")
        let s = try ws.json("l.json")
        let logJacobian = try #require(s["log_jacobian"] as? Double)
        #expect(abs(logJacobian - 64 * log(1.0 / 16)) < 1e-9)
        #expect(s["bits_per_dim_offset"] as? Double == 4, "-log2(1/16)")
        let ll = try Npy.read(ws.path("ll.npy")).storage
        let meanLL = ll.reduce(0, +) / Double(ll.count)
        let bpd = try #require(s["mean_bits_per_dim"] as? Double)
        #expect(abs(bpd - (-meanLL / (64 * M_LN2))) < 1e-9, "bits/dim of the data-space log-likelihood")
        #expect(abs((s["mean_log_likelihood"] as? Double ?? .nan) - meanLL) < 1e-9)
        let range = try ws.run(["likelihood"] + m + ["--data", "x.npy", "--data-range", "unit"])
        #expect(range.status != 0 && range.stderr.contains("--data-range"), "\(range)")
        let dq = try ws.run(["likelihood"] + m + ["--data", "x.npy", "--dequantize", "--estimator", "rademacher", "--stats", "dq.json"])
        #expect(dq.status == 0 && (try? ws.json("dq.json"))?["dequantize"] as? Bool == true, "\(dq)")
        try ws.write(try Self.npy([1, 64], [Double](repeating: 0.5, count: 64)), to: "frac.npy")
        let frac = try ws.run(["likelihood"] + m + ["--data", "frac.npy", "--dequantize"])
        #expect(frac.status != 0 && frac.stderr.contains("0...16"), "\(frac)")
    }

    @Test func theShippedDigitsModelSamplesAnImageGrid() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--model", "digits-mlp", "--count", "6", "--steps", "40", "--png", "g.png", "--output", "g.npy"])
        try #require(r.status == 0, "\(r)")
        let image = try PNG.read(ws.path("g.png"))
        // The 6 samples next to 6 held-out digits, 64 pixels per digit, under titles.
        let grid = try Plot.imageGrid(Tensor(zeros: [6, 1, 8, 8]), range: 0 ... 1, columns: 3, scale: 8)
        #expect(image.width == 2 * grid.width + 24 && image.height > grid.height, "\(image.width)x\(image.height)")
        let x = try Npy.read(ws.path("g.npy"))
        #expect(x.shape == [6, 1, 8, 8])
        #expect(x.storage.sorted()[x.count / 2] > 0 && x.storage.sorted()[x.count / 2] < 16, "median value inside the digit range")
        // Samples are in data space (digit values 0...16). The shipped model (Gaussian base) puts
        // about 0.45% of its values outside (-4, 20) at 40 steps (0.3% at 1000; measured on 300
        // samples, README): on 64 samples (4096 values, ~18 expected, s.d. ~4.3) allow 1% (41).
        let many = try ws.run(["sample", "--model", "digits-mlp", "--count", "64", "--steps", "40", "--output", "m.npy"])
        try #require(many.status == 0, "\(many)")
        let y = try Npy.read(ws.path("m.npy"))
        let inRange = y.storage.filter { $0 > -4 && $0 < 20 }.count
        #expect(Double(inRange) >= 0.99 * Double(y.count), "\(y.count - inRange) of \(y.count) values outside (-4, 20)")
        let p = try ws.run(["sample", "--model", "patches", "--count", "4", "--steps", "40", "--png", "p.png"])
        try #require(p.status == 0, "\(p)")
        #expect(try PNG.read(ws.path("p.png")).channels == 3, "colour patches give a colour grid")
    }

    // MARK: - Bad input

    struct BadInput: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let keyword: String
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let badInputs: [BadInput] = [
        BadInput(arguments: ["--data", "mnist"], keyword: "mnist"),
        BadInput(arguments: ["--data", "missing.npy"], keyword: "missing.npy"),
        BadInput(arguments: ["--data", "corrupt.npy"], keyword: "not a .npy file"),
        BadInput(arguments: ["--data", "nan.npy"], keyword: "NaN"),
        BadInput(arguments: ["--data", "empty.npy"], keyword: "no data"),
        BadInput(arguments: ["--data", "ring", "--steps", "0"], keyword: "--steps"),
        BadInput(arguments: ["--data", "ring", "--lr", "0"], keyword: "--lr"),
        BadInput(arguments: ["--data", "ring", "--lr", "-1e-3"], keyword: "--lr"),
        BadInput(arguments: ["--data", "ring", "--batch-size", "0"], keyword: "--batch-size"),
        BadInput(arguments: ["--data", "ring", "--ema", "1"], keyword: "--ema"),
        BadInput(arguments: ["--data", "ring", "--scaling", "unit"], keyword: "continuous"),
        BadInput(arguments: ["--data", "ring", "--sde", "ve", "--beta-min", "1"], keyword: "--beta-min"),
        BadInput(arguments: ["--data", "ring", "--sde", "ve", "--sigma-min", "5", "--sigma-max", "1"], keyword: "sigma"),
        BadInput(arguments: ["--data", "ring", "--resume", "--overwrite"], keyword: "--overwrite"),
        BadInput(arguments: ["--data", "ring", "--resume"], keyword: "nothing to resume"),
        BadInput(arguments: ["--data", "ring", "--dtype", "f32"], keyword: "--export-weights"),
        BadInput(arguments: ["--data", "x.npy", "--count", "3"], keyword: "--count"),
        BadInput(arguments: ["--data", "x.npy", "--output", "nodir/m.safetensors"], keyword: "does not exist"),
        BadInput(arguments: ["--data", "x.npy", "--export-weights", "nodir/w.safetensors"], keyword: "--export-weights"),
        BadInput(arguments: ["--data", "x.npy", "--output", "m.safetensors", "--export-weights", "./m.safetensors"], keyword: "same file"),
    ]

    /// Every bad input exits non-zero, says what is wrong, and writes nothing.
    @Test(arguments: badInputs)
    func badTrainingInputFailsClearlyAndWritesNothing(_ bad: BadInput) throws {
        let ws = try Workspace()
        try ws.write(try Self.npy([4, 2], [0.5, 1, -1, 2, 3, 0, 4, 4]), to: "x.npy")
        try ws.write(try Self.npy([2, 2], [1, .nan, 3, 4]), to: "nan.npy")
        try ws.write(try Self.npy([0, 2], []), to: "empty.npy")
        try ws.write(Data("this is not a numpy file".utf8), to: "corrupt.npy")
        let before = ws.files()
        let output = bad.arguments.contains("--output") ? [] : ["--output", "m.safetensors"]
        let r = try ws.run(["train", "--hidden", "8", "--blocks", "1", "--steps", "3"] + bad.arguments + output)
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("Error"), "\(r)")
        #expect(r.stderr.lowercased().contains(bad.keyword.lowercased()), "the message should name '\(bad.keyword)': \(r.stderr)")
        #expect(ws.files() == before, "a failed run must leave no output")
        #expect(r.stdout.isEmpty)
    }

    // MARK: - Help and the OpenBLAS kernel choice

    @Test func trainHelpListsItsOptions() throws {
        let ws = try Workspace()
        let r = try ws.run(["train", "--help"])
        #expect(r.status == 0)
        for name in ["--data", "digits", "patches", "--sde", "--steps", "--batch-size", "--lr", "--warmup", "--grad-clip", "--ema",
                     "--seed", "--hidden", "--blocks", "--fourier-features", "--reduce-mean", "--likelihood-weighting", "--scaling",
                     "--output", "--resume", "--checkpoint-every", "--export-weights", "--dtype"] {
            #expect(r.stdout.contains(name), "train --help lacks \(name)")
        }
        let top = try ws.run(["--help"])
        #expect(top.stdout.contains("train"))
        let sample = try ws.run(["sample", "--help"])
        #expect(sample.stdout.contains("safetensors") && sample.stdout.contains("digits"))
    }

    /// `scoresde` no longer re-executes itself or touches `OPENBLAS_CORETYPE`: OpenBLAS starts once
    /// (`OPENBLAS_VERBOSE=2` prints its core exactly once), and with the same environment the command
    /// uses the BLAS backend this test process uses — with the variable unset and with it set — so
    /// CLI and library runs compare bit for bit whatever the machine's environment holds.
    @Test func theCommandUsesTheLibrarysBLASChoiceWithoutReexecuting() throws {
        guard let executable = scoresdeExecutable else { Issue.record("scoresde not built"); return }
        let ws = try Workspace()
        func run(_ set: [String: String], unset: [String]) throws -> (output: String, blas: String?) {
            let process = Process()
            process.executableURL = executable
            process.arguments = ["sample", "--count", "8", "--steps", "5", "--output", ws.path("s.npy"), "--stats", ws.path("s.json")]
            var env = ProcessInfo.processInfo.environment
            for key in unset { env[key] = nil }
            env.merge(set) { _, b in b }
            process.environment = env
            let out = ws.url.appendingPathComponent("out.txt")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            let handle = try FileHandle(forWritingTo: out)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            process.waitUntilExit()
            try handle.close()
            #expect(process.terminationStatus == 0)
            return (String(decoding: try Data(contentsOf: out), as: UTF8.self), try ws.json("s.json")["blas"] as? String)
        }
        let mine = BLASBackend.current
        let here = try run(["OPENBLAS_VERBOSE": "2"], unset: [])
        #expect(here.output.components(separatedBy: "Core: ").count == 2, "OpenBLAS starts exactly once: \(here.output.prefix(300))")
        #expect(here.blas == "\(mine.library.rawValue) \(mine.kernel)", "the command's BLAS \(here.blas ?? "nil") vs this process's \(mine)")
        // With the variable removed the command still starts once and picks by the same rule.
        let bare = try run(["OPENBLAS_VERBOSE": "2"], unset: ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"])
        #expect(bare.output.components(separatedBy: "Core: ").count == 2, "\(bare.output.prefix(300))")
        #expect(bare.blas != nil)
        // A user's OPENBLAS_CORETYPE is kept: OpenBLAS with exactly that core.
        let forced = try run(["OPENBLAS_VERBOSE": "2", "OPENBLAS_CORETYPE": "Sandybridge"], unset: [])
        #expect(forced.output.contains("Core: Sandybridge"), "\(forced.output.prefix(300))")
        #expect(forced.blas == "OpenBLAS Sandybridge")
    }

    // MARK: - Options

    /// `--warmup`, `--grad-clip`, `--fourier-scale` and `--likelihood-weighting` reach the run: the
    /// command ends with the weights of a library run with the same configuration (to 1e-9
    /// relative: the two processes may pick different BLAS kernels, which changes the last bits),
    /// while leaving out any one of them moves the weights by far more than that.
    @Test func optimisationAndNetworkOptionsReachTheRun() throws {
        let ws = try Workspace()
        let options = [("--warmup", "7"), ("--grad-clip", "0.05"), ("--fourier-scale", "3"), ("--likelihood-weighting", nil)]
        let config = TrainingConfiguration(
            sde: .vp(betaMin: 0.1, betaMax: 20),
            architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 16, residualBlocks: 1, fourierFeatures: 4, fourierScale: 3),
            seed: 0, batchSize: 32, learningRate: 1e-3, warmup: 7, gradClip: 0.05, emaRate: 0.999,
            reduceMean: false, likelihoodWeighting: true)
        let library = try Trainer(configuration: config, data: Dataset.load("ring", count: nil, seed: 0).data)
        try library.train(steps: 20)
        let expected = library.parameters
        func distance(_ p: [Double]) -> Double {
            zip(p, expected).map { abs($0 - $1) }.max()! / expected.map(abs).max()!
        }
        func run(_ name: String, leaving left: String?) throws -> [Double] {
            let args = options.filter { $0.0 != left }.flatMap { [$0.0] + ($0.1.map { [$0] } ?? []) }
            _ = try Self.trainTiny(ws, name, steps: 20, args)
            return try MLPScore.load(from: ws.path(name), weights: .raw).parameters
        }
        let allDistance = distance(try run("all.safetensors", leaving: nil))
        #expect(allDistance <= 1e-9, "CLI vs library weights differ by \(allDistance) (relative)")
        let meta = try Safetensors.read(ws.path("all.safetensors")).metadata
        #expect(meta["train.warmup"] == "7" && meta["train.grad_clip"] == "0.05" && meta["model.fourier_scale"] == "3.0"
                && meta["train.likelihood_weighting"] == "true", "\(meta)")
        for (option, _) in options {
            let d = distance(try run("without\(option).safetensors", leaving: option))
            #expect(d > 1e-6, "without \(option) the weights moved by only \(d)")
        }
    }

    // MARK: - Interrupts and damaged checkpoints

    /// The tiny model for `interruptSteps` steps: ~2 s, long enough to be interrupted after its
    /// first timed checkpoint (0.2 s).
    static let interruptSteps = 30000
    static let interruptRun = tiny + ["--steps", "\(interruptSteps)", "--checkpoint-interval", "0.2"]

    /// The final checkpoint of the uninterrupted run, computed once for all signals.
    static let uninterrupted: Result<Data, Error> = Result {
        let ws = try Workspace()
        let r = try ws.run(interruptRun + ["--output", "full.safetensors"])
        guard r.status == 0 else { throw ScoreSDEError.io(path: "full.safetensors", message: "\(r)") }
        return try ws.data("full.safetensors")
    }

    /// SIGINT and SIGTERM: the step in progress finishes, the checkpoint is written, the command
    /// that resumes is printed, and the exit status is 128 + the signal. `kill -9`: the last timed
    /// checkpoint (at most 0.2 s old) survives intact. Either way, resuming ends with the bytes of
    /// the uninterrupted run.
    @Test(arguments: [SIGINT, SIGTERM, SIGKILL])
    func anInterruptedRunResumesToTheBytesOfAnUninterruptedOne(signal: Int32) throws {
        let ws = try Workspace()
        let executable = try #require(scoresdeExecutable)
        let process = Process()
        process.executableURL = executable
        process.arguments = Self.interruptRun + ["--output", "m.safetensors"]
        process.currentDirectoryURL = ws.url
        let err = ws.url.appendingPathComponent("stderr.txt")
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let handle = try FileHandle(forWritingTo: err)
        process.standardError = handle
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait for the first timed checkpoint, then signal.
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: ws.path("m.safetensors")) && process.isRunning && Date() < deadline {
            usleep(20_000)
        }
        try #require(process.isRunning, "the run ended before it could be interrupted")
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        try handle.close()
        let stderr = String(decoding: try Data(contentsOf: err), as: UTF8.self)
        try FileManager.default.removeItem(at: err)

        let step = try #require(Int(try Safetensors.read(ws.path("m.safetensors")).metadata["train.step"] ?? ""))
        #expect(step > 0 && step < Self.interruptSteps)
        let resume: [String]
        if signal == SIGKILL {
            #expect(process.terminationReason == .uncaughtSignal)
            resume = ["train", "--data", "ring", "--steps", "\(Self.interruptSteps)", "--output", "m.safetensors", "--resume"]
        } else {
            #expect(process.terminationReason == .exit && process.terminationStatus == 128 + signal, "\(process.terminationStatus): \(stderr)")
            let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
            #expect(stderr.contains("\(name): stopped after step \(step) of \(Self.interruptSteps)"), "\(stderr)")
            let line = try #require(stderr.split(separator: "\n").first { $0.hasPrefix("resume with: scoresde train ") })
            resume = line.dropFirst("resume with: scoresde ".count).split(separator: " ").map(String.init)
            #expect(resume.contains("--resume") && resume.contains("m.safetensors") && resume.contains("\(Self.interruptSteps)"))
        }
        let r = try ws.run(resume)
        try #require(r.status == 0, "\(r)")
        #expect(r.stdout.contains("resumed at step \(step)"), "\(r.stdout)")
        #expect(try ws.data("m.safetensors") == Self.uninterrupted.get(), "resume must continue exactly")
    }

    /// A damaged checkpoint is refused with the checksum named and the intact previous one offered;
    /// nothing is written.
    @Test func aDamagedCheckpointIsRefusedAndThePreviousOneOffered() throws {
        let ws = try Workspace()
        _ = try Self.trainTiny(ws, steps: 30, ["--checkpoint-every", "10"])
        #expect(ws.files() == ["m.prev.safetensors", "m.safetensors"])
        #expect(try Safetensors.read(ws.path("m.prev.safetensors")).metadata["train.step"] == "20")
        var bytes = try ws.data("m.safetensors")
        bytes[bytes.count - 5] ^= 0x01
        try ws.write(bytes, to: "m.safetensors")
        let r = try ws.run(["train", "--data", "ring", "--steps", "40", "--output", "m.safetensors", "--resume"])
        #expect(r.status != 0)
        for text in ["CRC-32", "not loaded", "m.prev.safetensors", "step 20", "mv "] {
            #expect(r.stderr.contains(text), "the message lacks '\(text)': \(r.stderr)")
        }
        #expect(try ws.data("m.safetensors") == bytes, "the damaged file is left for inspection")
        #expect(ws.files() == ["m.prev.safetensors", "m.safetensors"])
        // Sampling from it is refused too.
        let s = try ws.run(["sample", "--model", "m.safetensors", "--steps", "10", "--count", "4", "--output", "x.npy"])
        #expect(s.status != 0 && s.stderr.contains("CRC-32") && !ws.files().contains("x.npy"), "\(s)")
    }

    /// Timed checkpoints are on by default (every 60 s), configurable, and 0 turns them off.
    @Test func checkpointIntervalOption() throws {
        let ws = try Workspace()
        let help = try ws.run(["train", "--help"])
        #expect(help.stdout.contains("--checkpoint-interval") && help.stdout.contains("default: 60"), "\(help.stdout)")
        for bad in ["-1", "nan", "inf"] {
            let r = try ws.run(Self.tiny + ["--steps", "5", "--output", "m.safetensors", "--checkpoint-interval", bad])
            #expect(r.status != 0 && r.stderr.contains("--checkpoint-interval"), "\(bad): \(r)")
        }
        _ = try Self.trainTiny(ws, steps: 5, ["--checkpoint-interval", "0"])
        #expect(ws.files() == ["m.safetensors"], "only the final checkpoint")
    }
}

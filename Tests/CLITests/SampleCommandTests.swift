import Foundation
import ScoreSDE
import Testing

/// `scoresde sample`, run as a built binary: files written, stats, errors, determinism, help.
@Suite struct SampleCommandTests {
    /// A quick run's options (the samples are coarse, which is all these tests need).
    static let small = ["--count", "256", "--steps", "100"]

    // MARK: - Outputs

    @Test func smallRunWritesNpyStatsAndPNG() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample"] + Self.small + ["--output", "s.npy", "--stats", "s.json", "--png", "s.png"])
        try #require(r.status == 0, "\(r)")
        #expect(ws.files() == ["s.json", "s.npy", "s.png"])

        let samples = try Npy.read(ws.path("s.npy"))
        #expect(samples.shape == [256, 2])
        #expect(samples.isFinite)
        // float64, as numpy writes it
        #expect(String(decoding: try ws.data("s.npy").prefix(128), as: UTF8.self).contains("'descr': '<f8'"))

        let stats = try ws.json("s.json")
        for key in ["nfe", "wall_seconds", "count", "dim", "samples_per_second", "model", "sde", "sigma_min", "sigma_max",
                    "sampler", "predictor", "corrector", "snr", "corrector_steps", "steps", "eps", "batch_size",
                    "seed", "denoise", "order", "threads"] {
            #expect(stats[key] != nil, "stats JSON lacks \(key)")
        }
        let steps = try #require(stats["steps"] as? Int), correctorSteps = try #require(stats["corrector_steps"] as? Int)
        #expect(stats["nfe"] as? Int == steps * (correctorSteps + 1))
        #expect(steps == 100)
        #expect(stats["count"] as? Int == 256)
        #expect(stats["dim"] as? Int == 2)
        #expect(stats["model"] as? String == "ring")
        #expect(stats["sde"] as? String == "ve")
        #expect(stats["predictor"] as? String == "reverse-diffusion")
        #expect(stats["corrector"] as? String == "langevin")
        #expect(stats["eps"] as? Double == 1e-5)
        #expect(stats["seed"] as? Int == 0)
        #expect((stats["wall_seconds"] as? Double ?? -1) >= 0)

        let image = try PNG.read(ws.path("s.png"))
        #expect(image.width >= 256 && image.height >= 256)

        #expect(r.stdout.contains("256 samples (dim 2)") && r.stdout.contains("NFE 200") && r.stdout.contains("s.npy") && r.stdout.contains("s.png"))
        #expect(r.stdout.split(separator: "\n").count == 1, "one summary line")
        #expect(r.stderr.isEmpty, "no progress bar when stderr is not a terminal: \(r.stderr)")
    }

    /// 4096 samples x 1000 steps: about a second optimized, minutes in a debug build.
    @Test(.enabled(if: isOptimizedBuild, "the default run is too slow in a debug build"))
    func noOptionsSamplesTheRingToSamplesPNG() throws {
        let ws = try Workspace()
        let r = try ws.run([])
        try #require(r.status == 0, "\(r)")
        #expect(ws.files() == ["samples.png"])
        #expect(r.stdout.contains("4096") && r.stdout.contains("NFE 2000") && r.stdout.contains("samples.png"))
        _ = try PNG.read(ws.path("samples.png"))
    }

    @Test func onlyTheNamedOutputsAreWritten() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--count", "32", "--steps", "30", "--output", "only.npy", "--stats", "only.json"])
        try #require(r.status == 0, "\(r)")
        #expect(ws.files() == ["only.json", "only.npy"])
        // --stats does not suppress the picture: without --output and --png it goes to samples.png.
        let s = try ws.run(["sample", "--count", "32", "--steps", "30", "--stats", "s.json"])
        try #require(s.status == 0, "\(s)")
        #expect(ws.files() == ["only.json", "only.npy", "s.json", "samples.png"])
    }

    @Test func statsRecordTheSettingsOfVP() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--sde", "vp", "--beta-min", "0.2", "--beta-max", "15", "--predictor", "euler-maruyama",
                            "--corrector", "ald", "--snr", "0.1", "--corrector-steps", "2", "--steps", "60", "--count", "100",
                            "--batch-size", "30", "--seed", "7", "--denoise", "tweedie", "--order", "predictor-first",
                            "--threads", "1", "--stats", "vp.json"])
        try #require(r.status == 0, "\(r)")
        let s = try ws.json("vp.json")
        #expect(s["sde"] as? String == "vp")
        #expect(s["beta_min"] as? Double == 0.2)
        #expect(s["beta_max"] as? Double == 15)
        #expect(s["sigma_min"] == nil && s["sigma_max"] == nil, "VE parameters are not settings of a VP run")
        #expect(s["eps"] as? Double == 1e-3, "the VP default eps")
        #expect(s["predictor"] as? String == "euler-maruyama")
        #expect(s["corrector"] as? String == "ald")
        #expect(s["snr"] as? Double == 0.1)
        #expect(s["corrector_steps"] as? Int == 2)
        #expect(s["steps"] as? Int == 60)
        #expect(s["batch_size"] as? Int == 30)
        #expect(s["seed"] as? Int == 7)
        #expect(s["denoise"] as? String == "tweedie")
        #expect(s["order"] as? String == "predictor-first")
        #expect(s["threads"] as? Int == 1)
        // Predictor-first: 59 predictor steps each followed by 2 corrector steps, then Tweedie's formula
        // at eps in place of the last predictor step.
        #expect(s["nfe"] as? Int == 59 * (1 + 2) + 1)
    }

    @Test func gmm64IsSampledWithShapeAndPlottedByItsFirstTwoCoordinates() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--model", "gmm64", "--sde", "subvp", "--count", "400", "--steps", "40",
                            "--output", "g.npy", "--png", "g.png"])
        try #require(r.status == 0, "\(r)")
        let x = try Npy.read(ws.path("g.npy"))
        #expect(x.shape == [400, 64])
        _ = try PNG.read(ws.path("g.png"))
        // The samples follow gmm64: each component's share within 5 binomial standard errors
        // (√(w(1 − w)/400)) of its weight (components assigned by the exact posterior).
        let mixture = try GaussianMixture.builtIn("gmm64")
        let assigned = mixture.assignments(x)
        for (k, w) in mixture.weights.enumerated() {
            let share = Double(assigned.filter { $0 == k }.count) / 400
            #expect(abs(share - w) <= 5 * (w * (1 - w) / 400).squareRoot(), "component \(k): share \(share) vs weight \(w)")
        }
    }

    @Test func mixtureFileModel() throws {
        let ws = try Workspace()
        try ws.write(#"{"weights": [0.25, 0.75], "means": [[-2.5, 0.5], [2.5, -0.5]], "stds": [0.25, [0.5, 0.25]]}"#, to: "mix.json")
        let r = try ws.run(["sample", "--model", "gmm:mix.json", "--count", "1000", "--steps", "50", "--output", "m.npy", "--stats", "m.json"])
        try #require(r.status == 0, "\(r)")
        let x = try Npy.read(ws.path("m.npy"))
        #expect(x.shape == [1000, 2])
        // The file's mixture, not another: the components are 10 stds apart, so each sample belongs to
        // the nearer mean; the share of the second is 0.75 within 5 binomial standard errors
        // (0.0137 each), and each component's mean coordinate within 5 σ_j/√n_k of the file's
        // (plus 0.02 for PC-50's discretization, which moves a mean by < 1% of its std).
        let stds = [[0.25, 0.25], [0.5, 0.25]], means = [[-2.5, 0.5], [2.5, -0.5]]
        var rows: [[[Double]]] = [[], []]
        for r in 0 ..< x.rows { let row = x.row(r); rows[row[0] < 0 ? 0 : 1].append(row) }
        let share: Double = Double(rows[1].count) / 1000, shareBand: Double = 5 * (0.75 * 0.25 / 1000.0).squareRoot()
        #expect(abs(share - 0.75) <= shareBand, "share \(rows[1].count) of 1000")
        for k in 0 ..< 2 {
            for j in 0 ..< 2 {
                let nk = Double(rows[k].count)
                let mean: Double = rows[k].map { $0[j] }.reduce(0, +) / nk
                let band: Double = 5 * stds[k][j] / nk.squareRoot() + 0.02
                #expect(abs(mean - means[k][j]) <= band, "component \(k) mean[\(j)] \(mean)")
            }
        }
        #expect(try ws.json("m.json")["model"] as? String == "gmm:mix.json")
    }

    @Test func subcommandIsTheDefault() throws {
        let ws = try Workspace()
        let r = try ws.run(["--count", "16", "--steps", "20", "--output", "d.npy"])
        try #require(r.status == 0, "\(r)")
        #expect(try Npy.read(ws.path("d.npy")).shape == [16, 2])
    }

    // MARK: - Every SDE x predictor x corrector

    static let sdes = ["ve", "vp", "subvp"]
    static let predictors = ["euler-maruyama", "reverse-diffusion", "ancestral", "none"]

    @Test(arguments: sdes, predictors)
    func everyCombinationSamplesOrFailsClearly(sde: String, predictor: String) throws {
        let ws = try Workspace()
        for corrector in ["langevin", "ald", "none"] {
            let r = try ws.run(["sample", "--sde", sde, "--predictor", predictor, "--corrector", corrector,
                                "--count", "40", "--steps", "30", "--corrector-steps", "2", "--stats", "c.json"])
            let label = "\(sde) \(predictor) \(corrector)"
            if predictor == "ancestral" && sde == "subvp" {
                #expect(r.status != 0 && r.stderr.contains("ancestral") && r.stderr.contains("ve or vp"), "\(label): \(r)")
            } else if predictor == "none" && corrector == "none" {
                #expect(r.status != 0 && r.stderr.contains("none"), "\(label): \(r)")
            } else {
                try #require(r.status == 0, "\(label): \(r)")
                let nfe = try ws.json("c.json")["nfe"] as? Int
                #expect(nfe == 30 * ((predictor == "none" ? 0 : 1) + (corrector == "none" ? 0 : 2)), "\(label)")
            }
            try? FileManager.default.removeItem(atPath: ws.path("c.json"))
        }
    }

    // MARK: - Bad input

    /// An invalid command: the word its error must contain, and files to create first.
    struct BadInput: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let keyword: String
        var files: [String: String] = [:]
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let badInputs: [BadInput] = [
        BadInput(arguments: ["--model", "gmm:broken.json"], keyword: "JSON", files: ["broken.json": #"{"means": [[0.5, 0.5]], "stds": [0.5"#]),
        BadInput(arguments: ["--model", "gmm:huge.json"], keyword: "huge.json", files: ["huge.json": #"{"means": [[1e999, 0.5]], "stds": [0.5]}"#]),
        BadInput(arguments: ["--model", "gmm:neg.json"], keyword: "std", files: ["neg.json": #"{"means": [[0.5, 0.5]], "stds": [-0.5]}"#]),
        BadInput(arguments: ["--model", "gmm:missing.json"], keyword: "missing.json"),
        BadInput(arguments: ["--model", "moons"], keyword: "moons"),
        BadInput(arguments: ["--sde", "ou"], keyword: "sde"),
        BadInput(arguments: ["--predictor", "heun"], keyword: "predictor"),
        BadInput(arguments: ["--corrector", "hmc"], keyword: "corrector"),
        BadInput(arguments: ["--eps", "0"], keyword: "eps"),
        BadInput(arguments: ["--eps", "1.5"], keyword: "eps"),
        BadInput(arguments: ["--eps", "-0.1"], keyword: "eps"),
        BadInput(arguments: ["--steps", "0"], keyword: "steps"),
        BadInput(arguments: ["--sigma-min", "5", "--sigma-max", "1"], keyword: "sigmaMax"),
        BadInput(arguments: ["--sigma-min", "0"], keyword: "sigmaMin"),
        BadInput(arguments: ["--sde", "vp", "--beta-min", "0"], keyword: "betaMin"),
        BadInput(arguments: ["--sde", "subvp", "--beta-max", "-1"], keyword: "betaMax"),
        BadInput(arguments: ["--count", "0"], keyword: "count"),
        BadInput(arguments: ["--batch-size", "0"], keyword: "batch-size"),
        BadInput(arguments: ["--threads", "0"], keyword: "threads"),
        BadInput(arguments: ["--snr", "0"], keyword: "snr"),
        BadInput(arguments: ["--corrector-steps", "0"], keyword: "corrector-steps"),
        BadInput(arguments: ["--predictor", "ancestral", "--sde", "subvp"], keyword: "ancestral"),
        BadInput(arguments: ["--predictor", "none", "--corrector", "none"], keyword: "none"),
        BadInput(arguments: ["--output", "no-such-dir/x.npy"], keyword: "does not exist"),
        BadInput(arguments: ["--png", "no-such-dir/x.png"], keyword: "does not exist"),
        BadInput(arguments: ["--stats", "no-such-dir/x.json"], keyword: "does not exist"),
        BadInput(arguments: ["--png", "out.npy"], keyword: "same file"),
        BadInput(arguments: ["--png", "."], keyword: "directory"),
    ]

    /// Every bad input exits non-zero, says what is wrong, and writes nothing — not even the
    /// outputs that were fine.
    @Test(arguments: badInputs)
    func badInputFailsClearlyAndWritesNothing(_ bad: BadInput) throws {
        let ws = try Workspace()
        for (name, text) in bad.files { try ws.write(text, to: name) }
        let before = ws.files()
        let r = try ws.run(["sample", "--count", "64", "--steps", "30", "--output", "out.npy", "--stats", "out.json"] + bad.arguments)
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("Error"), "\(r)")
        #expect(r.stderr.lowercased().contains(bad.keyword.lowercased()), "the message should name '\(bad.keyword)': \(r.stderr)")
        #expect(ws.files() == before, "a failed run must leave no output")
        #expect(r.stdout.isEmpty)
    }

    // MARK: - Determinism

    func samples(_ ws: Workspace, _ name: String, _ arguments: [String]) throws -> Data {
        let r = try ws.run(["sample", "--output", name] + arguments)
        try #require(r.status == 0, "\(r)")
        return try ws.data(name)
    }

    @Test func sameSeedSameBytesOtherSeedOtherBytes() throws {
        let ws = try Workspace()
        let a = try samples(ws, "a.npy", Self.small + ["--seed", "3"])
        let b = try samples(ws, "b.npy", Self.small + ["--seed", "3"])
        let c = try samples(ws, "c.npy", Self.small + ["--seed", "4"])
        #expect(a == b)
        #expect(a != c)
    }

    @Test func threadCountDoesNotChangeTheBytes() throws {
        let ws = try Workspace()
        // Enough rows that the default splits the work over threads.
        let options = ["--count", "2048", "--steps", "40", "--seed", "11"]
        let all = try samples(ws, "all.npy", options)
        let one = try samples(ws, "one.npy", options + ["--threads", "1"])
        #expect(all == one)
    }

    @Test func batchSizeDoesNotChangeTheBytes() throws {
        let ws = try Workspace()
        let whole = try samples(ws, "whole.npy", Self.small)
        let batched = try samples(ws, "batched.npy", Self.small + ["--batch-size", "7"])
        #expect(whole == batched)
    }

    // MARK: - Help

    @Test func helpListsTheChoices() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--help"])
        #expect(r.status == 0)
        for name in ["euler-maruyama", "reverse-diffusion", "ancestral", "langevin", "ald", "ve", "vp", "subvp",
                     "last-mean", "tweedie", "corrector-first", "predictor-first", "ring", "grid", "gmm64", "gmm:PATH.json",
                     "--output", "--stats", "--png", "--threads", "--batch-size", "--seed", "--eps", "--steps"] {
            #expect(r.stdout.contains(name), "help lacks \(name)")
        }
        #expect(ws.files().isEmpty)
    }
}

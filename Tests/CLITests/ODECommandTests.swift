import Foundation
import ScoreSDE
import Testing

/// The probability-flow ODE on the command line: `sample --sampler ode`, `sample --latent`,
/// `encode` and `likelihood`, run as a built binary.
@Suite struct ODECommandTests {
    /// Exact samples of a built-in mixture.
    static func mixtureSamples(_ name: String = "ring", count: Int, seed: UInt64) throws -> Tensor {
        var rng = RandomSource(seed: seed)
        return try GaussianMixture.builtIn(name).sample(count: count, using: &rng)
    }

    static func npy(_ shape: [Int], _ values: [Double]) throws -> Data {
        Npy.encode(try Tensor(shape: shape, storage: values))
    }

    /// The SDE the CLI builds for `--sde name` with default parameters.
    static func sde(_ name: String) throws -> any ForwardSDE {
        switch name {
        case "ve": return try VESDE(sigmaMin: 0.01, sigmaMax: 50)
        case "vp": return try VPSDE(betaMin: 0.1, betaMax: 20)
        default: return try SubVPSDE(betaMin: 0.1, betaMax: 20)
        }
    }

    /// The value after `name` in `options`, if any.
    static func value(_ name: String, in options: [String], default value: String) -> String {
        guard let i = options.firstIndex(of: name), i + 1 < options.count else { return value }
        return options[i + 1]
    }

    // MARK: - sample --sampler ode

    @Test func odeSampleWritesShapesAndStats() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--sampler", "ode", "--count", "64", "--output", "s.npy", "--stats", "s.json", "--png", "s.png"])
        try #require(r.status == 0, "\(r)")
        #expect(ws.files() == ["s.json", "s.npy", "s.png"])
        let samples = try Npy.read(ws.path("s.npy"))
        #expect(samples.shape == [64, 2])
        #expect(samples.isFinite)
        // The samples land on the ring (radius 4), not in the prior (std 50).
        let radii = samples.rowNorms()
        #expect(radii.allSatisfy { abs($0 - 4) < 1.5 }, "\(radii.min()!)...\(radii.max()!)")

        let s = try ws.json("s.json")
        for key in ["nfe", "accepted_steps", "rejected_steps", "rhs_evaluations", "wall_seconds", "count", "dim", "model",
                    "sde", "sampler", "method", "rtol", "atol", "layout", "initial_step", "max_steps", "denoise", "eps",
                    "batch_size", "seed", "threads"] {
            #expect(s[key] != nil, "stats JSON lacks \(key)")
        }
        for key in ["predictor", "corrector", "snr", "steps", "order", "nfe_per_sample_mean"] {
            #expect(s[key] == nil, "\(key) is not a setting of a batch ODE run")
        }
        #expect(s["sampler"] as? String == "ode")
        #expect(s["method"] as? String == "rkf45", "the default method")
        #expect(s["rtol"] as? Double == 1e-5 && s["atol"] as? Double == 1e-5, "the reference's tolerances")
        #expect(s["layout"] as? String == "batch")
        #expect(s["denoise"] as? String == "none", "no denoising by default, as the reference's ODE sampler")
        #expect(s["eps"] as? Double == 1e-5, "the VE sampling eps")
        let nfe = try #require(s["nfe"] as? Int)
        #expect(nfe > 20 && nfe == s["rhs_evaluations"] as? Int)
        #expect((s["accepted_steps"] as? Int ?? 0) > 0)
        #expect((s["rejected_steps"] as? Int ?? -1) >= 0)
        #expect(r.stdout.contains("64 samples (dim 2)") && r.stdout.contains("ode rkf45") && r.stdout.contains("NFE \(nfe)"))
        #expect(r.stderr.isEmpty, "no progress when stderr is not a terminal: \(r.stderr)")
    }

    @Test func perSampleStatsAndDenoising() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--sampler", "ode", "--sde", "vp", "--per-sample", "--denoise", "last-mean", "--count", "24",
                            "--method", "rkck", "--rtol", "1e-4", "--atol", "1e-6", "--initial-step", "0.01", "--max-steps", "5000",
                            "--output", "p.npy", "--stats", "p.json"])
        try #require(r.status == 0, "\(r)")
        #expect(try Npy.read(ws.path("p.npy")).shape == [24, 2])
        let s = try ws.json("p.json")
        #expect(s["layout"] as? String == "per-sample")
        #expect(s["method"] as? String == "rkck")
        #expect(s["rtol"] as? Double == 1e-4 && s["atol"] as? Double == 1e-6)
        #expect(s["initial_step"] as? Double == 0.01 && s["max_steps"] as? Int == 5000)
        #expect(s["denoise"] as? String == "last-mean")
        #expect(s["eps"] as? Double == 1e-3, "the VP sampling eps")
        let nfe = try #require(s["nfe"] as? Int), rhs = try #require(s["rhs_evaluations"] as? Int)
        #expect(nfe == rhs + 1, "per-sample nfe is the total over samples, plus the one batched denoising evaluation")
        let mean = try #require(s["nfe_per_sample_mean"] as? Double)
        #expect(abs(mean - Double(rhs) / 24) < 1e-9)
    }

    static let methods = ["rkf45", "rkck", "rk8pd", "msadams", "rk2", "rk4", "rk1imp", "rk2imp", "rk4imp", "bsimp", "msbdf"]

    /// Every step type samples; the implicit ones get the mixture's Jacobian (one small system per sample).
    @Test(arguments: methods)
    func everyMethodSamples(_ method: String) throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--sampler", "ode", "--method", method, "--per-sample", "--count", "4", "--sde", "vp",
                            "--output", "m.npy", "--stats", "m.json"])
        try #require(r.status == 0, "\(r)")
        let x = try Npy.read(ws.path("m.npy"))
        #expect(x.shape == [4, 2] && x.isFinite)
        let s = try ws.json("m.json")
        #expect(s["method"] as? String == method)
        let implicit = ["rk1imp", "rk2imp", "rk4imp", "bsimp", "msbdf"].contains(method)
        #expect(((s["jacobian_evaluations"] as? Int ?? 0) > 0) == implicit)
    }

    @Test func implicitMethodInTheBatchLayoutForFewSamples() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--sampler", "ode", "--method", "msbdf", "--count", "8", "--output", "b.npy"])
        try #require(r.status == 0, "\(r)")
        #expect(try Npy.read(ws.path("b.npy")).shape == [8, 2])
    }

    @Test func perSampleResultsDoNotDependOnThreadsOrBatchSize() throws {
        let ws = try Workspace()
        let base = ["sample", "--sampler", "ode", "--per-sample", "--count", "64", "--seed", "3"]
        for (name, extra) in [("a", [String]()), ("b", ["--threads", "1"]), ("c", ["--batch-size", "5"])] {
            let r = try ws.run(base + extra + ["--output", "\(name).npy"])
            try #require(r.status == 0, "\(r)")
        }
        #expect(try ws.data("a.npy") == ws.data("b.npy"))
        #expect(try ws.data("a.npy") == ws.data("c.npy"))
    }

    // MARK: - encode and sample --latent

    /// Data -> latents -> data again, within a multiple of the solver tolerance that shrinks with it.
    @Test(arguments: [["--sde", "ve"], ["--sde", "vp", "--per-sample"], ["--sde", "subvp", "--method", "rk8pd"]])
    func encodeThenDecodeRoundTrips(_ options: [String]) throws {
        let ws = try Workspace()
        let x = try Self.mixtureSamples(count: 48, seed: 9)
        try Npy.write(x, to: ws.path("x.npy"))
        var errors = [Double]()
        for tol in [1e-5, 1e-7] {
            let t = options + ["--rtol", "\(tol)", "--atol", "\(tol)"]
            let e = try ws.run(["encode", "--data", "x.npy", "--output", "z.npy", "--stats", "e.json"] + t)
            try #require(e.status == 0, "\(e)")
            let d = try ws.run(["sample", "--latent", "z.npy", "--output", "y.npy", "--stats", "d.json"] + t)
            try #require(d.status == 0, "\(d)")

            let z = try Npy.read(ws.path("z.npy")), y = try Npy.read(ws.path("y.npy"))
            #expect(z.shape == [48, 2] && y.shape == [48, 2])
            let moved = zip(z.storage, x.storage).map { abs($0 - $1) }.max()!
            #expect(moved > 1, "the latents are not the data")
            let error = zip(y.storage, x.storage).map { abs($0 - $1) }.max()!
            #expect(error < 1000 * tol, "round trip error \(error) at tolerance \(tol) (\(options))")
            errors.append(error)

            let es = try ws.json("e.json"), ds = try ws.json("d.json")
            #expect(es["n"] as? Int == 48 && es["dim"] as? Int == 2 && es["rtol"] as? Double == tol)
            #expect(es["data"] as? String == "x.npy")
            #expect((es["nfe"] as? Int ?? 0) > 0 && es["accepted_steps"] != nil && es["rejected_steps"] != nil)
            #expect(es["eps"] as? Double == ds["eps"] as? Double, "encode and decode default to the same eps")
            #expect(ds["sampler"] as? String == "ode", "--latent implies the ODE sampler")
            #expect(ds["latent"] as? String == "z.npy")
            #expect(ds["count"] as? Int == 48, "the count is the latent file's rows")
            #expect(e.stdout.contains("encoded 48 samples") && d.stdout.contains("decoded from z.npy"))
        }
        #expect(errors[1] < errors[0], "a tighter tolerance gives a closer round trip: \(errors)")
    }

    @Test func encodeWithoutDataUsesModelSamples() throws {
        let ws = try Workspace()
        let r = try ws.run(["encode", "--model", "gmm64", "--sde", "vp", "--count", "10", "--output", "z.npy"])
        try #require(r.status == 0, "\(r)")
        #expect(try Npy.read(ws.path("z.npy")).shape == [10, 64])
        #expect(ws.files() == ["z.npy"])
    }

    // MARK: - likelihood

    /// With the exact divergence and the mixture's exact p_T, the ODE likelihood is the closed-form
    /// log p_eps up to the solver tolerance.
    @Test(arguments: [["--sde", "ve"], ["--sde", "vp"], ["--sde", "subvp", "--per-sample"], ["--sde", "ve", "--model", "gmm64"]])
    func exactLikelihoodWithExactPriorMatchesTheClosedForm(_ options: [String]) throws {
        let ws = try Workspace()
        let modelName = Self.value("--model", in: options, default: "ring")
        let x = try Self.mixtureSamples(modelName, count: 64, seed: 21)
        try Npy.write(x, to: ws.path("x.npy"))
        let r = try ws.run(["likelihood", "--data", "x.npy", "--estimator", "exact", "--exact-prior",
                            "--output", "ll.npy", "--stats", "ll.json"] + options)
        try #require(r.status == 0, "\(r)")

        let sde = try Self.sde(Self.value("--sde", in: options, default: "ve"))
        let truth = try GaussianMixtureScore(GaussianMixture.builtIn(modelName), diffusedBy: sde).logDensity(x, at: 1e-5)
        let ll = try Npy.read(ws.path("ll.npy"))
        #expect(ll.shape == [64], "one log-likelihood per sample")
        #expect(String(decoding: try ws.data("ll.npy").prefix(128), as: UTF8.self).contains("'descr': '<f8'"))
        let worst = zip(ll.storage, truth).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-2, "largest error \(worst) nats (\(options))")

        let s = try ws.json("ll.json")
        for key in ["mean_log_likelihood", "std_log_likelihood", "stderr_log_likelihood", "mean_bits_per_dim", "std_bits_per_dim",
                    "stderr_bits_per_dim", "bits_per_dim_convention", "bits_per_dim_offset", "nfe", "accepted_steps",
                    "rejected_steps", "wall_seconds", "n", "dim", "model", "data", "data_range", "dequantize", "sde", "estimator",
                    "probes", "exact_prior", "method", "rtol", "atol", "eps", "layout", "seed", "threads"] {
            #expect(s[key] != nil, "stats JSON lacks \(key)")
        }
        let d = Double(x.rowSize), meanTruth = truth.reduce(0, +) / Double(truth.count)
        #expect(abs((s["mean_log_likelihood"] as? Double ?? .nan) - meanTruth) < 1e-2)
        #expect(abs((s["mean_bits_per_dim"] as? Double ?? .nan) + meanTruth / (d * M_LN2)) < 1e-2)
        #expect(s["n"] as? Int == 64 && s["dim"] as? Int == x.rowSize)
        #expect(s["eps"] as? Double == 1e-5, "the likelihood eps for every SDE")
        #expect(s["estimator"] as? String == "exact" && s["exact_prior"] as? Bool == true)
        #expect(s["bits_per_dim_convention"] as? String == BitsPerDimConvention.continuous.description)
        #expect(s["bits_per_dim_offset"] as? Double == 0)
        #expect(r.stdout.contains("bits/dim convention: \(BitsPerDimConvention.continuous.description)"), "\(r.stdout)")
        #expect(r.stdout.contains("nats") && r.stdout.contains("bits/dim"))
    }

    @Test func likelihoodRunsWithNoFilesAtAll() throws {
        let ws = try Workspace()
        let r = try ws.run(["likelihood"])
        try #require(r.status == 0, "\(r)")
        #expect(ws.files().isEmpty)
        #expect(r.stdout.contains("256 samples (dim 2) drawn from ring (seed 0)"))
        #expect(r.stdout.contains("bits/dim convention: \(BitsPerDimConvention.continuous.description)"))
        #expect(r.stdout.contains("no files written"))
    }

    /// Hutchinson's estimators are unbiased: per sample they differ from the exact divergence by
    /// noise whose mean is zero within a few standard errors; they follow the seed.
    @Test(arguments: ["rademacher", "gaussian"])
    func hutchinsonEstimatorsAgreeWithTheExactDivergence(_ estimator: String) throws {
        let ws = try Workspace()
        let common = ["likelihood", "--count", "128", "--sde", "vp"]
        let exact = try ws.run(common + ["--stats", "exact.json", "--output", "exact.npy"])
        try #require(exact.status == 0, "\(exact)")
        let h = try ws.run(common + ["--estimator", estimator, "--probes", "4", "--stats", "h.json", "--output", "h.npy"])
        try #require(h.status == 0, "\(h)")
        let e = try ws.json("exact.json"), s = try ws.json("h.json")
        #expect(s["estimator"] as? String == estimator && s["probes"] as? Int == 4 && e["probes"] is NSNull)
        let noise = zip(try Npy.read(ws.path("h.npy")).storage, try Npy.read(ws.path("exact.npy")).storage).map { $0 - $1 }
        let n = Double(noise.count), mean = noise.reduce(0, +) / n
        let standardError = (noise.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1) / n).squareRoot()
        #expect(noise.contains { abs($0) > 1e-6 }, "the estimate is random")
        #expect(abs(mean) < 4 * standardError + 1e-3, "Hutchinson's mean differs from the exact one by \(mean) nats (s.e. \(standardError))")
        // Same seed, same bytes; per-sample systems use the probes of their own row.
        let again = try ws.run(common + ["--estimator", estimator, "--probes", "4", "--output", "again.npy", "--threads", "1"])
        try #require(again.status == 0, "\(again)")
        #expect(try ws.data("h.npy") == ws.data("again.npy"))
        let perSample = try ws.run(common + ["--estimator", estimator, "--probes", "4", "--per-sample", "--output", "p.npy"])
        try #require(perSample.status == 0, "\(perSample)")
        let a = try Npy.read(ws.path("h.npy")), b = try Npy.read(ws.path("p.npy"))
        #expect(zip(a.storage, b.storage).map { abs($0 - $1) }.max()! < 0.05, "the layouts see the same probes")
    }

    @Test(arguments: [("unit", 8.0), ("symmetric", 7.0)])
    func dequantizedEightBitDataUseTheirConvention(_ range: String, _ offset: Double) throws {
        let ws = try Workspace()
        try ws.write(try Self.npy([6, 2], [0, 255, 128, 7, 64, 64, 200, 30, 1, 2, 255, 255]), to: "bytes.npy")
        let args = ["likelihood", "--model", "grid", "--data", "bytes.npy", "--data-range", range, "--dequantize"]
        let r = try ws.run(args + ["--output", "q.npy", "--stats", "q.json"])
        try #require(r.status == 0, "\(r)")
        let s = try ws.json("q.json")
        let convention: BitsPerDimConvention = range == "unit" ? .unitInterval : .symmetric
        #expect(s["bits_per_dim_offset"] as? Double == offset)
        #expect(s["bits_per_dim_convention"] as? String == convention.description)
        #expect(s["dequantize"] as? Bool == true && s["data_range"] as? String == range)
        let ll = try #require(s["mean_log_likelihood"] as? Double), bpd = try #require(s["mean_bits_per_dim"] as? Double)
        #expect(abs(bpd - (-ll / (2 * M_LN2) + offset)) < 1e-9)
        #expect(r.stdout.contains("bits/dim convention: \(convention.description)"))
        // The dequantization noise follows the seed.
        _ = try ws.run(args + ["--output", "same.npy"])
        _ = try ws.run(args + ["--output", "other.npy", "--seed", "1"])
        #expect(try ws.data("q.npy") == ws.data("same.npy"))
        #expect(try ws.data("q.npy") != ws.data("other.npy"))
    }

    // MARK: - Bad input

    /// An invalid command (outputs out.npy and out.json are added unless `outputs` is false): the
    /// word its error must contain, and files to create first.
    struct BadInput: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let keyword: String
        var outputs = true
        var testDescription: String { arguments.joined(separator: " ") }
    }

    /// The input files every bad-input case starts with.
    static func inputFiles() throws -> [String: Data] {
        var files = [String: Data]()
        let good = try npy([4, 2], [0.5, 1, -1, 2, 3, 0, 4, 4])
        files["x.npy"] = good
        files["x3.npy"] = try npy([2, 3], [1, 2, 3, 4, 5, 6])
        files["flat.npy"] = try npy([4], [1, 2, 3, 4])
        files["nan.npy"] = try npy([2, 2], [1, .nan, 3, 4])
        files["inf.npy"] = try npy([2, 2], [1, 2, -.infinity, 4])
        files["empty.npy"] = try npy([0, 2], [])
        files["frac.npy"] = try npy([2, 2], [0.5, 1, 2, 3])
        files["big.npy"] = try npy([2, 2], [0, 256, 3, 4])
        files["corrupt.npy"] = Data("this is not a numpy file".utf8)
        files["truncated.npy"] = good.prefix(good.count - 5)
        return files
    }

    static let ode = ["sample", "--sampler", "ode", "--count", "16"]

    static let badInputs: [BadInput] = [
        // sample --sampler ode
        BadInput(arguments: ode + ["--rtol", "0"], keyword: "--rtol"),
        BadInput(arguments: ode + ["--atol", "-1e-5"], keyword: "--atol"),
        BadInput(arguments: ode + ["--rtol", "nan"], keyword: "--rtol"),
        BadInput(arguments: ode + ["--eps", "0"], keyword: "eps"),
        BadInput(arguments: ode + ["--eps", "1"], keyword: "eps"),
        BadInput(arguments: ode + ["--eps", "-1e-3"], keyword: "eps"),
        BadInput(arguments: ode + ["--initial-step", "0"], keyword: "--initial-step"),
        BadInput(arguments: ode + ["--max-steps", "0"], keyword: "--max-steps"),
        BadInput(arguments: ode + ["--max-steps", "3"], keyword: "maximum number of steps"),
        BadInput(arguments: ode + ["--method", "euler"], keyword: "method"),
        BadInput(arguments: ode + ["--steps", "100"], keyword: "--steps"),
        BadInput(arguments: ode + ["--predictor", "ancestral", "--snr", "0.1"], keyword: "--predictor, --snr"),
        BadInput(arguments: ode + ["--denoise", "tweedie"], keyword: "tweedie"),
        BadInput(arguments: ["sample", "--sampler", "ode", "--count", "3000", "--method", "rk4imp"], keyword: "--per-sample"),
        BadInput(arguments: ["sample", "--method", "rk4"], keyword: "--sampler ode"),
        BadInput(arguments: ["sample", "--per-sample"], keyword: "--sampler ode"),
        BadInput(arguments: ["sample", "--sampler", "pc", "--latent", "x.npy"], keyword: "--sampler ode"),
        BadInput(arguments: ["sample", "--latent", "x.npy", "--count", "4"], keyword: "--count"),
        BadInput(arguments: ["sample", "--latent", "missing.npy"], keyword: "missing.npy"),
        BadInput(arguments: ["sample", "--latent", "corrupt.npy"], keyword: "not a .npy file"),
        BadInput(arguments: ["sample", "--latent", "truncated.npy"], keyword: "truncated"),
        BadInput(arguments: ["sample", "--latent", "x3.npy"], keyword: "dimension 2"),
        BadInput(arguments: ["sample", "--latent", "flat.npy"], keyword: "dimension 2"),
        BadInput(arguments: ["sample", "--latent", "nan.npy"], keyword: "finite"),
        BadInput(arguments: ["sample", "--latent", "empty.npy"], keyword: "no rows"),
        // encode
        BadInput(arguments: ["encode", "--data", "x.npy"], keyword: "nothing to write", outputs: false),
        BadInput(arguments: ["encode", "--data", "missing.npy"], keyword: "missing.npy"),
        BadInput(arguments: ["encode", "--data", "corrupt.npy"], keyword: "not a .npy file"),
        BadInput(arguments: ["encode", "--data", "x3.npy"], keyword: "dimension 2"),
        BadInput(arguments: ["encode", "--data", "inf.npy"], keyword: "finite"),
        BadInput(arguments: ["encode", "--model", "gmm64", "--data", "x.npy"], keyword: "dimension 64"),
        BadInput(arguments: ["encode", "--data", "x.npy", "--count", "3"], keyword: "--count"),
        BadInput(arguments: ["encode", "--eps", "1.5"], keyword: "eps"),
        BadInput(arguments: ["encode", "--sde", "vp", "--eps", "0"], keyword: "eps"),
        BadInput(arguments: ["encode", "--atol", "0"], keyword: "--atol"),
        BadInput(arguments: ["encode", "--method", "bsimp", "--count", "3000"], keyword: "--per-sample"),
        BadInput(arguments: ["encode", "--count", "0"], keyword: "--count"),
        // likelihood
        BadInput(arguments: ["likelihood", "--data", "missing.npy"], keyword: "missing.npy"),
        BadInput(arguments: ["likelihood", "--data", "truncated.npy"], keyword: "truncated"),
        BadInput(arguments: ["likelihood", "--data", "nan.npy"], keyword: "finite"),
        BadInput(arguments: ["likelihood", "--data", "flat.npy"], keyword: "dimension 2"),
        BadInput(arguments: ["likelihood", "--data", "empty.npy"], keyword: "no rows"),
        BadInput(arguments: ["likelihood", "--estimator", "rademacher", "--probes", "0"], keyword: "--probes"),
        BadInput(arguments: ["likelihood", "--probes", "2"], keyword: "--probes"),
        BadInput(arguments: ["likelihood", "--estimator", "hutchinson"], keyword: "estimator"),
        BadInput(arguments: ["likelihood", "--method", "bsimp", "--per-sample", "--count", "2"], keyword: "implicit"),
        BadInput(arguments: ["likelihood", "--method", "rk1imp"], keyword: "implicit"),
        BadInput(arguments: ["likelihood", "--eps", "0"], keyword: "eps"),
        BadInput(arguments: ["likelihood", "--eps", "1"], keyword: "eps"),
        BadInput(arguments: ["likelihood", "--rtol", "-1"], keyword: "--rtol"),
        BadInput(arguments: ["likelihood", "--dequantize", "--data-range", "unit"], keyword: "--data"),
        BadInput(arguments: ["likelihood", "--dequantize", "--data", "x.npy"], keyword: "--data-range"),
        BadInput(arguments: ["likelihood", "--dequantize", "--data", "frac.npy", "--data-range", "unit"], keyword: "8-bit"),
        BadInput(arguments: ["likelihood", "--dequantize", "--data", "big.npy", "--data-range", "symmetric"], keyword: "8-bit"),
        BadInput(arguments: ["likelihood", "--data-range", "bytes"], keyword: "data-range"),
        BadInput(arguments: ["likelihood", "--output", "no-such-dir/ll.npy"], keyword: "does not exist", outputs: false),
        BadInput(arguments: ["likelihood", "--output", "same.npy", "--stats", "same.npy"], keyword: "same file", outputs: false),
    ]

    /// Every bad input exits non-zero, says what is wrong, and writes nothing.
    @Test(arguments: badInputs)
    func badInputFailsClearlyAndWritesNothing(_ bad: BadInput) throws {
        let ws = try Workspace()
        for (name, data) in try Self.inputFiles() { try ws.write(data, to: name) }
        let before = ws.files()
        let outputs = bad.outputs ? ["--output", "out.npy", "--stats", "out.json"] : []
        let r = try ws.run(bad.arguments + outputs)
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("Error"), "\(r)")
        #expect(r.stderr.lowercased().contains(bad.keyword.lowercased()), "the message should name '\(bad.keyword)': \(r.stderr)")
        #expect(ws.files() == before, "a failed run must leave no output")
        #expect(r.stdout.isEmpty)
    }

    // MARK: - Help

    @Test func helpListsMethodsAndEstimators() throws {
        let ws = try Workspace()
        let expected: [String: [String]] = [
            "likelihood": Self.methods + ["exact", "rademacher", "gaussian", "--probes", "--exact-prior", "--data-range", "continuous",
                                          "unit", "symmetric", "--dequantize", "--data", "--count", "--eps", "--rtol", "--atol",
                                          "--per-sample", "--output", "--stats", "--seed", "bits/dim", "1e-5"],
            "encode": Self.methods + ["--data", "--output", "--stats", "--eps", "--rtol", "--atol", "--per-sample", "--initial-step",
                                      "--max-steps", "--latent"],
            "sample": Self.methods + ["ode", "--sampler", "--latent", "--method", "--rtol", "--atol", "--per-sample", "last-mean"],
        ]
        for (command, names) in expected {
            let r = try ws.run([command, "--help"])
            #expect(r.status == 0)
            for name in names { #expect(r.stdout.contains(name), "\(command) --help lacks \(name)") }
        }
        let top = try ws.run(["--help"])
        #expect(top.stdout.contains("encode") && top.stdout.contains("likelihood"))
        #expect(ws.files().isEmpty)
    }
}

/// `likelihood --chunk-size`: chunk by chunk, kept in STATS.partial, resumed after an interruption.
@Suite struct ChunkedLikelihoodCommandTests {
    @Test func aChunkedRunMatchesTheClosedFormAndResumesBitwise() throws {
        let ws = try Workspace()
        let x = try ODECommandTests.mixtureSamples("ring", count: 40, seed: 5)
        try Npy.write(x, to: ws.path("x.npy"))
        let args = ["likelihood", "--data", "x.npy", "--estimator", "exact", "--exact-prior", "--sde", "vp",
                    "--chunk-size", "16", "--output", "ll.npy", "--stats", "ll.json"]
        let r = try ws.run(args)
        try #require(r.status == 0, "\(r)")
        #expect(ws.files() == ["ll.json", "ll.json.partial", "ll.npy", "x.npy"])
        // Independent truth: the closed-form log p_eps of the ring diffused by the VP SDE.
        let truth = try GaussianMixtureScore(GaussianMixture.builtIn("ring"), diffusedBy: VPSDE(betaMin: 0.1, betaMax: 20)).logDensity(x, at: 1e-5)
        let ll = try Npy.read(ws.path("ll.npy"))
        #expect(ll.shape == [40])
        let worst = zip(ll.storage, truth).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-2, "largest error \(worst) nats over three chunks (16, 16, 8 rows)")
        let first = try ws.data("ll.npy")

        // Interrupt: drop the last chunk from the partial file, rerun the same command.
        var partial = try JSONSerialization.jsonObject(with: ws.data("ll.json.partial")) as! [String: Any]
        var chunks = partial["chunks"] as! [String: Any]
        #expect(chunks.count == 3)
        chunks.removeValue(forKey: "2")
        partial["chunks"] = chunks
        try ws.write(try JSONSerialization.data(withJSONObject: partial), to: "ll.json.partial")
        try FileManager.default.removeItem(atPath: ws.path("ll.npy"))
        let again = try ws.run(args)
        try #require(again.status == 0, "\(again)")
        #expect(again.stderr.contains("resumed 2 finished chunks"), "\(again.stderr)")
        #expect(try ws.data("ll.npy") == first, "the resumed run writes the uninterrupted values")

        // Another setting with the same partial file is refused, and writes nothing new.
        let other = try ws.run(["likelihood", "--data", "x.npy", "--estimator", "exact", "--exact-prior", "--sde", "vp",
                                "--chunk-size", "10", "--output", "ll2.npy", "--stats", "ll.json"])
        #expect(other.status != 0)
        #expect(other.stderr.contains("partial results of another evaluation"), "\(other.stderr)")
        #expect(!ws.files().contains("ll2.npy"))
        // --chunk-size needs --stats.
        let noStats = try ws.run(["likelihood", "--data", "x.npy", "--chunk-size", "10"])
        #expect(noStats.status != 0 && noStats.stderr.contains("--stats"), "\(noStats)")
    }
}

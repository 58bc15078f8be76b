import Foundation
import ScoreSDE
import Testing

/// `scoresde inpaint`, `colorize` and `reconstruct`, run as built binaries: files, closed-form
/// posteriors, the built-in demos, determinism, and bad input.
@Suite struct InverseCommandTests {
    /// Ring (8 modes, radius 4, std 0.25) with x = 3.4 known: the posterior of y has three modes,
    /// at the y of modes 0, 1 and 7 (0, ±2.83), with weights ∝ exp(−(3.4 − μ_x)² / (2·0.25²)) and
    /// within-mode std 0.25 — computed here from the ring's definition, not by the library.
    static let ringModesY = [0.0, 4 * sin(Double.pi / 4), -4 * sin(Double.pi / 4)]
    static let ringWeights: [Double] = {
        let xs = [4.0, 4 * cos(Double.pi / 4), 4 * cos(Double.pi / 4)]
        let w = xs.map { exp(-(3.4 - $0) * (3.4 - $0) / (2 * 0.0625)) }
        return w.map { $0 / w.reduce(0, +) }   // the other five modes have weight < 1e-40
    }()

    /// Mode fractions (nearest posterior mode in y) and the pooled within-mode std of y.
    static func ringPosteriorFit(_ samples: Tensor) -> (tv: Double, std: Double) {
        var counts = [Double](repeating: 0, count: 3), squared = 0.0
        for r in 0 ..< samples.rows {
            let y = samples.storage[2 * r + 1]
            let k = (0 ..< 3).min { abs(y - ringModesY[$0]) < abs(y - ringModesY[$1]) }!
            counts[k] += 1
            squared += (y - ringModesY[k]) * (y - ringModesY[k])
        }
        let n = Double(samples.rows)
        let tv = zip(counts, ringWeights).reduce(0) { $0 + abs($1.0 / n - $1.1) } / 2
        return (tv, (squared / n).squareRoot())
    }

    /// The grey a colorization observes of pixel `p` of `[3, 8, 8]` row `row`: Σ_c M_c0 x_c / Σ_c M_c0
    /// with score_sde's matrix (its float32 digits, as published).
    static func observedGrey(_ x: Tensor, row: Int, pixel p: Int) -> Double {
        let col0 = [5.7735014e-01, 5.7735026e-01, 5.7735026e-01]
        return (0 ..< 3).reduce(0.0) { $0 + col0[$1] * x.storage[row * 192 + $1 * 64 + p] } / col0.reduce(0, +)
    }

    // MARK: - Against closed forms

    /// Replacement (score_sde's inpainter) on the ring with x known: the known coordinate is kept
    /// exactly, the mode weights and within-mode spread match the closed form. Tolerances: 2000
    /// samples give a mode-fraction noise of about 0.02 (TV) and 2% on the std; the method's own
    /// bias on this problem is measured at 0.04–0.06 (TV) with 300 steps, so TV < 0.1 and the std
    /// within 8%. The exact-posterior comparison the command prints must agree in kind.
    @Test func inpaintRingMatchesTheClosedFormPosterior() throws {
        let ws = try Workspace()
        try ws.write(Npy.encode(try Tensor(shape: [1, 2], storage: [3.4, 0])), to: "x.npy")
        let r = try ws.run(["inpaint", "--model", "ring", "--data", "x.npy", "--steps", "300", "--samples-per-input", "2000",
                            "--output", "s.npy", "--stats", "s.json"])
        try #require(r.status == 0, "\(r)")
        #expect(ws.files() == ["s.json", "s.npy", "x.npy"])
        let samples = try Npy.read(ws.path("s.npy"))
        #expect(samples.shape == [2000, 2])
        #expect((0 ..< 2000).allSatisfy { samples.storage[2 * $0] == 3.4 }, "the known x is kept exactly")
        let fit = Self.ringPosteriorFit(samples)
        #expect(fit.tv < 0.1, "mode weights \(Self.ringWeights): TV \(fit.tv)")
        #expect(abs(fit.std / 0.25 - 1) < 0.08, "within-mode std \(fit.std) vs 0.25")

        let stats = try ws.json("s.json")
        let exact = try #require(stats["exact_posterior"] as? [String: Any])
        let tv = try #require(exact["mode_weight_tv"] as? Double), floor = try #require(exact["mode_weight_tv_exact_samples"] as? Double)
        #expect(tv < 0.1 && floor < 0.05, "\(exact)")
        #expect(stats["nfe"] as? Int == 600 && stats["model_evaluations"] as? Int == 600)
        #expect(stats["known_max_abs_error"] as? Double == 0)
        for key in ["wall_seconds", "inputs", "samples_per_input", "unknown_rmse_vs_input", "method", "convention", "mask", "sde", "seed"] {
            #expect(stats[key] != nil, "stats lack \(key)")
        }
        #expect(r.stdout.contains("vs the exact posterior"), "\(r)")
    }

    /// The same problem as a general linear measurement A = [1, 0], y = 3.4: the projection of
    /// `reconstruct` reduces to inpainting, so it draws the same samples (to rounding).
    @Test func reconstructWithASelectionMatrixEqualsInpainting() throws {
        let ws = try Workspace()
        try ws.write(Npy.encode(try Tensor(shape: [1, 2], storage: [3.4, 0])), to: "x.npy")
        try ws.write(Npy.encode(try Tensor(shape: [1, 2], storage: [1, 0])), to: "A.npy")
        try ws.write(Npy.encode(try Tensor(shape: [1], storage: [3.4])), to: "y.npy")
        let common = ["--model", "ring", "--steps", "100", "--samples-per-input", "500"]
        let a = try ws.run(["inpaint", "--data", "x.npy", "--output", "a.npy"] + common)
        let b = try ws.run(["reconstruct", "--matrix", "A.npy", "--observation", "y.npy", "--output", "b.npy"] + common)
        try #require(a.status == 0 && b.status == 0, "\(a)\n\(b)")
        let x = try Npy.read(ws.path("a.npy")), y = try Npy.read(ws.path("b.npy"))
        #expect(x.shape == y.shape)
        #expect(zip(x.storage, y.storage).allSatisfy { abs($0 - $1) < 1e-9 })
        #expect(b.stdout.contains("RMS |A x - y| 0"), "\(b)")
    }

    /// ΠGDM (Jacobian-free) and Tweedie-moment guidance on the same closed-form posterior: no
    /// replacement, so the known coordinate is matched only as closely as the guidance pulls it
    /// (measured 5e-6); mode weights within the same tolerance as replacement (measured 0.04, 0.08).
    @Test(arguments: ["pigdm", "tweedie"])
    func guidedInpaintingOfTheRing(method: String) throws {
        let ws = try Workspace()
        try ws.write(Npy.encode(try Tensor(shape: [1, 2], storage: [3.4, 0])), to: "x.npy")
        let r = try ws.run(["inpaint", "--model", "ring", "--data", "x.npy", "--method", method, "--steps", "300",
                            "--samples-per-input", "2000", "--output", "s.npy", "--stats", "s.json"])
        try #require(r.status == 0, "\(r)")
        let samples = try Npy.read(ws.path("s.npy"))
        #expect((0 ..< 2000).allSatisfy { abs(samples.storage[2 * $0] - 3.4) < 1e-3 })
        let fit = Self.ringPosteriorFit(samples)
        #expect(fit.tv < 0.12, "mode weights \(Self.ringWeights): TV \(fit.tv)")
        #expect(abs(fit.std / 0.25 - 1) < 0.1, "within-mode std \(fit.std)")
        let stats = try ws.json("s.json")
        let nfe = try #require(stats["nfe"] as? Int), passes = try #require(stats["model_evaluations"] as? Int)
        // Per call: the score, then one JVP (tweedie: plus one per measured value) — ΠGDM here needs no JVP.
        #expect(nfe == 600 && passes == (method == "pigdm" ? 600 : 600 * 3), "nfe \(nfe), passes \(passes)")
    }

    /// gmm64 (10 modes in 64-D) with a random half of the coordinates known: the exact posterior
    /// puts all its weight on one mode (exact samples: TV ~1e-40). Replacement sends a sizeable
    /// fraction of samples to wrong modes (measured TV 0.12–0.18 over seeds 0 and 3, 400–1000
    /// steps: the known bias, asserted > 0.05), RePaint fixes most of it (measured 0.004–0.031,
    /// asserted < 0.1; 400 samples per input give a TV noise of about 0.02).
    @Test func gmm64InpaintingRePaintBeatsReplacement() throws {
        let ws = try Workspace()
        func tv(_ method: String) throws -> Double {
            let r = try ws.run(["inpaint", "--model", "gmm64", "--mask", "random", "--count", "2", "--samples-per-input", "400",
                                "--steps", "400", "--seed", "3", "--method", method, "--stats", "\(method).json"])
            try #require(r.status == 0, "\(r)")
            let exact = try #require(try ws.json("\(method).json")["exact_posterior"] as? [String: Any])
            #expect(try #require(exact["mode_weight_tv_exact_samples"] as? Double) < 1e-6)
            return try #require(exact["mode_weight_tv"] as? Double)
        }
        let replace = try tv("replace"), repaint = try tv("repaint")
        #expect(replace > 0.05, "replacement's known bias: TV \(replace)")
        #expect(repaint < 0.1 && repaint < replace, "RePaint TV \(repaint), replacement \(replace)")
    }

    // MARK: - Built-in demos and image files

    @Test func inpaintDigitsDemoWritesTheGridAndKeepsKnownPixels() throws {
        let ws = try Workspace()
        let r = try ws.run(["inpaint", "--count", "3", "--samples-per-input", "2", "--steps", "60", "--output", "s.npy", "--stats", "s.json", "--png", "s.png"])
        try #require(r.status == 0, "\(r)")
        let samples = try Npy.read(ws.path("s.npy"))
        #expect(samples.shape == [6, 1, 8, 8])
        let held = try Digits.load(split: .heldOut).images
        // Bottom half unknown: rows 0-3 of every sample equal the held-out digit's.
        for s in 0 ..< 6 {
            for p in 0 ..< 32 { #expect(abs(samples.storage[s * 64 + p] - held.storage[(s / 2) * 64 + p]) < 1e-12) }
        }
        let stats = try ws.json("s.json")
        #expect(stats["known_fraction"] as? Double == 0.5 && stats["mask"] as? String == "bottom-half")
        // One row per input: observed | 2 samples | original, 64 pixels per image, under a title,
        // column headers, and a legend line for the hatched unknown pixels.
        let image = try PNG.read(ws.path("s.png"))
        #expect(image.width >= 4 * 64 + 2 * 24 && image.height >= 3 * 64 + 3 * 18 && image.height < 3 * 64 + 300, "\(image.width)x\(image.height)")
    }

    @Test func inpaintReadsPNGInputAndMask() throws {
        let ws = try Workspace()
        let digit = try RasterImage(tensor: try Digits.load(split: .heldOut).images.rows(0 ..< 1), range: 0 ... 16)
        try ws.write(try PNG.encode(digit), to: "digit.png")
        let mask = try RasterImage(width: 8, height: 8, channels: 1, pixels: (0 ..< 64).map { $0 % 8 < 4 ? 0 : 255 })   // left half unknown
        try ws.write(try PNG.encode(mask), to: "mask.png")
        let r = try ws.run(["inpaint", "--data", "digit.png", "--mask", "mask.png", "--steps", "40", "--samples-per-input", "3", "--output", "s.npy"])
        try #require(r.status == 0, "\(r)")
        let samples = try Npy.read(ws.path("s.npy")), input = try digit.tensor(range: 0 ... 16)
        #expect(samples.shape == [3, 1, 8, 8])
        for s in 0 ..< 3 {
            for y in 0 ..< 8 { for x in 4 ..< 8 { #expect(abs(samples.storage[s * 64 + y * 8 + x] - input.storage[y * 8 + x]) < 1e-12) } }
        }
    }

    @Test func colorizeDemoKeepsTheGreyImage() throws {
        let ws = try Workspace()
        let r = try ws.run(["colorize", "--count", "2", "--samples-per-input", "2", "--steps", "60", "--output", "c.npy", "--stats", "c.json", "--png", "c.png"])
        try #require(r.status == 0, "\(r)")
        let samples = try Npy.read(ws.path("c.npy"))
        #expect(samples.shape == [4, 3, 8, 8])
        let stats = try ws.json("c.json")
        // The grey channel is replaced exactly after the last step (up to rounding of 0...255 values).
        #expect((stats["grey_max_abs_error"] as? Double ?? 1) < 1e-9, "\(stats)")
        #expect((stats["colour_rmse_vs_original"] as? Double)?.isFinite == true)
        // The observed grey of every sample equals its input's (pairs of samples share one), exactly:
        // the grey direction is score_sde's column 0, Σ_c M_c0 x_c / Σ_c M_c0. It is the channel mean
        // only to ~1e-5 at 255 (the matrix's float32 digits), which is checked too.
        for s in stride(from: 0, to: 4, by: 2) {
            for p in 0 ..< 64 {
                let g = (0 ..< 2).map { k in Self.observedGrey(samples, row: s + k, pixel: p) }
                #expect(abs(g[0] - g[1]) < 1e-9)
                let means = (0 ..< 2).map { k in (0 ..< 3).reduce(0.0) { $0 + samples.storage[(s + k) * 192 + $1 * 64 + p] } / 3 }
                #expect(abs(means[0] - means[1]) < 1e-5)
            }
        }
        let image = try PNG.read(ws.path("c.png"))
        // grey input | 2 samples | original, 64 pixels per image, two rows.
        #expect(image.channels == 3 && image.width >= 4 * 64 + 2 * 24 && image.height >= 2 * 64 + 2 * 18 && image.height < 2 * 64 + 300,
                "\(image.width)x\(image.height)")
    }

    @Test func colorizeAGreyPNG() throws {
        let ws = try Workspace()
        let grey = try RasterImage(width: 8, height: 8, channels: 1, pixels: (0 ..< 64).map { UInt8($0 * 4) })
        try ws.write(try PNG.encode(grey), to: "g.png")
        let r = try ws.run(["colorize", "--data", "g.png", "--steps", "40", "--samples-per-input", "2", "--output", "c.npy", "--stats", "c.json"])
        try #require(r.status == 0, "\(r)")
        let samples = try Npy.read(ws.path("c.npy"))
        for s in 0 ..< 2 {
            for p in 0 ..< 64 {
                #expect(abs(Self.observedGrey(samples, row: s, pixel: p) - Double(p * 4)) < 1e-9)
                let mean = (0 ..< 3).reduce(0.0) { $0 + samples.storage[s * 192 + $1 * 64 + p] } / 3
                #expect(abs(mean - Double(p * 4)) < 1e-5)   // the mixing matrix's float32 digits, as above
            }
        }
        #expect(try ws.json("c.json")["colour_rmse_vs_original"] is NSNull)
    }

    @Test func reconstructSuperResolvesDigits() throws {
        let ws = try Workspace()
        let r = try ws.run(["reconstruct", "--model", "digits-mlp", "--count", "2", "--samples-per-input", "2", "--steps", "60",
                            "--output", "s.npy", "--stats", "s.json", "--png", "s.png"])
        try #require(r.status == 0, "\(r)")
        let samples = try Npy.read(ws.path("s.npy")), held = try Digits.load(split: .heldOut).images
        // Every 2x2 block mean of every sample equals the input's.
        for s in 0 ..< 4 {
            for by in 0 ..< 4 {
                for bx in 0 ..< 4 {
                    func block(_ t: Tensor, _ row: Int) -> Double {
                        let top = row * 64 + 2 * by * 8 + 2 * bx
                        let sum: Double = t.storage[top] + t.storage[top + 1] + t.storage[top + 8] + t.storage[top + 9]
                        return sum / 4
                    }
                    #expect(abs(block(samples, s) - block(held, s / 2)) < 1e-9)
                }
            }
        }
        #expect(try ws.json("s.json")["measurements"] as? Int == 16)
    }

    // MARK: - Reproducibility

    @Test func sameSeedSameSamplesWhateverThreadsAndBatches() throws {
        let ws = try Workspace()
        let common = ["inpaint", "--model", "ring", "--steps", "50", "--samples-per-input", "300", "--seed", "7", "--method", "repaint", "--jump", "5", "--resample", "2"]
        let a = try ws.run(common + ["--output", "a.npy", "--threads", "1"])
        let b = try ws.run(common + ["--output", "b.npy", "--threads", "2", "--batch-size", "64"])
        try #require(a.status == 0 && b.status == 0, "\(a)\n\(b)")
        #expect(try ws.data("a.npy") == ws.data("b.npy"))
    }

    // MARK: - Bad input

    /// Each bad input: non-zero exit, a message naming the problem, and no file written.
    @Test func badInputFailsClearlyAndWritesNothing() throws {
        let ws = try Workspace()
        try ws.write(Npy.encode(try Tensor(shape: [3, 3], storage: Array(repeating: 1, count: 9))), to: "mask33.npy")
        try ws.write(Npy.encode(try Tensor(shape: [1, 8, 8], storage: (0 ..< 64).map { $0 % 2 == 0 ? 1 : 0.5 })), to: "halfmask.npy")
        let greyMask = try RasterImage(width: 8, height: 8, channels: 1, pixels: (0 ..< 64).map { $0 == 9 ? 128 : 255 })
        try ws.write(try PNG.encode(greyMask), to: "greymask.png")
        try ws.write(try PNG.encode(try RasterImage(width: 10, height: 8, channels: 1)), to: "wide.png")
        let colour = try RasterImage(width: 8, height: 8, channels: 3, pixels: (0 ..< 192).map { $0 == 0 ? 0 : 255 })
        try ws.write(try PNG.encode(colour), to: "colour.png")
        try ws.write(Npy.encode(try Tensor(shape: [1, 2], storage: [.nan, 0])), to: "nan.npy")
        try ws.write(Npy.encode(try Tensor(shape: [2, 5], storage: Array(repeating: 1, count: 10))), to: "rows5.npy")
        try ws.write(Npy.encode(try Tensor(shape: [1, 3], storage: [1, 0, 0])), to: "A3.npy")
        try ws.write(Npy.encode(try Tensor(shape: [2, 2], storage: [1, 1, 2, 2])), to: "Adep.npy")
        try ws.write(Npy.encode(try Tensor(shape: [3], storage: [1, 2, 3])), to: "y3.npy")
        try ws.write(Npy.encode(try Tensor(shape: [2, 2], storage: [1, 0, 0, 1])), to: "A2.npy")
        try ws.write("[[1, 0, 0], [0, 1, 0], [0, 0, 2]]", to: "mixing.json")
        try ws.write("{}", to: "bad.json")
        try ws.write("[[true, 0, 0], [0, true, 0], [0, 0, true]]", to: "bool.json")   // the identity, spelled with booleans
        let cases: [([String], String)] = [
            (["inpaint", "--mask", "mask33.npy"], "has shape [3, 3]"),
            (["inpaint", "--mask", "halfmask.npy"], "only 0 (unknown) and 1 (known)"),
            (["inpaint", "--mask", "greymask.png"], "grey level 128"),
            (["inpaint", "--mask", "wide.png"], "10x8 pixels"),
            (["inpaint", "--data", "wide.png"], "10x8 pixels"),
            (["inpaint", "--data", "colour.png"], "colour image"),
            (["inpaint", "--mask", "left-half", "--model", "ring"], "second-half"),
            (["inpaint", "--model", "ring", "--data", "nan.npy"], "finite"),
            (["inpaint", "--model", "ring", "--data", "rows5.npy"], "dimension 2"),
            (["inpaint", "--model", "ring", "--mask", "first-half", "--data", "nan.npy"], "finite"),
            (["inpaint", "--resample", "3"], "belongs to --method repaint"),
            (["inpaint", "--sampler", "ode"], "not available"),
            (["inpaint", "--noise-std", "-1"], "--noise-std"),
            (["inpaint", "--data", "missing.npy"], "missing.npy"),
            (["colorize", "--model", "digits-mlp"], "RGB"),
            (["colorize", "--data", "rows5.npy"], "rows of shape [5]"),
            (["colorize", "--data", "wide.png"], "10x8 pixels"),
            (["colorize", "--mixing", "mixing.json"], "orthonormal"),
            (["colorize", "--mixing", "bad.json"], "JSON matrix"),
            (["colorize", "--mixing", "bool.json"], "non-number (true)"),
            (["reconstruct", "--matrix", "A3.npy"], "3 columns"),
            (["reconstruct", "--matrix", "A2.npy", "--observation", "y3.npy"], "A has 2 rows"),
            (["reconstruct", "--matrix", "Adep.npy"], "linearly dependent"),
            (["reconstruct", "--data", "nan.npy"], "finite"),
        ]
        for (args, message) in cases {
            let r = try ws.run(args + ["--steps", "30", "--output", "out.npy", "--stats", "out.json", "--png", "out.png"])
            #expect(r.status != 0, "\(args): \(r)")
            #expect(r.stderr.contains(message), "\(args): expected '\(message)' in: \(r.stderr)")
            #expect(!ws.files().contains { $0.hasPrefix("out") }, "\(args) wrote \(ws.files())")
        }
    }

    /// Guidance through the shipped MLP digits model (digits-mlp). Tweedie-moment guidance costs exactly 2 + m model
    /// passes per evaluation (score, then one JVP per known value: m = 32 for the bottom half), so
    /// the stats must say nfe × 34. ΠGDM (Jacobian-free, one pass per evaluation) must keep the known
    /// half to its observation and predict the unknown half better than the best guess that ignores
    /// the observation — the training digits' mean image (RMSE ≈ 4.5 on these inputs): its 4-sample
    /// mean is measured at 2.86. (Tweedie-moment guidance at 30 steps diverges on this model —
    /// unknown-half RMSE ~1e8 — which is why it is only checked for its accounting here; noted in
    /// the session note, not hidden by a band.)
    @Test func guidanceThroughALearnedModelCountsPassesAndPiGDMBeatsTheMeanImage() throws {
        let ws = try Workspace()
        let r = try ws.run(["inpaint", "--model", "digits-mlp", "--method", "tweedie", "--steps", "30", "--count", "2", "--output", "t.npy", "--stats", "t.json"])
        try #require(r.status == 0, "\(r)")
        let stats = try ws.json("t.json")
        let nfe = try #require(stats["nfe"] as? Int), passes = try #require(stats["model_evaluations"] as? Int)
        #expect(passes == nfe * (2 + 32), "tweedie guidance makes 2 + 32 passes per evaluation: \(passes) passes for \(nfe) NFE")
        let ok = try ws.run(["inpaint", "--model", "digits-mlp", "--method", "pigdm", "--steps", "100", "--count", "8", "--output", "s.npy", "--stats", "s.json"])
        try #require(ok.status == 0, "\(ok)")
        let x = try Npy.read(ws.path("s.npy"))
        #expect(x.shape == [32, 1, 8, 8] && x.isFinite)
        let s = try ws.json("s.json")
        #expect(try #require(s["model_evaluations"] as? Int) == (try #require(s["nfe"] as? Int)))
        #expect(try #require(s["known_max_abs_error"] as? Double) < 1e-3)
        // The observation-blind baseline on the same 8 inputs (the first held-out digits).
        let train = try Digits.load(split: .train).images, inputs = try Digits.load(split: .heldOut).images
        var mean = [Double](repeating: 0, count: 64)
        for r in 0 ..< train.rows { for j in 0 ..< 64 { mean[j] += train.storage[r * 64 + j] / Double(train.rows) } }
        var sq = 0.0
        for r in 0 ..< 8 { for j in 32 ..< 64 { let e = inputs.storage[r * 64 + j] - mean[j]; sq += e * e } }
        let baseline = (sq / (8 * 32)).squareRoot()
        let guided = try #require(s["unknown_rmse_of_sample_mean"] as? Double)
        #expect(guided < 0.85 * baseline, "ΠGDM's posterior-mean RMSE \(guided) vs the mean image's \(baseline)")
    }

    // MARK: - Guidance options

    /// Mode counts of ring samples (nearest mode of the 8).
    static func ringModeCounts(_ x: Tensor) -> [Int] {
        var counts = [Int](repeating: 0, count: 8)
        for k in GaussianMixture.ring().assignments(x) { counts[k] += 1 }
        return counts
    }

    /// Whether counts over 8 modes are within 5 standard deviations of the prior's equal weights
    /// (each count ~ Binomial(n, 1/8): sd = √(n · 1/8 · 7/8), 10.5 for n = 1000).
    static func looksLikeThePrior(_ counts: [Int]) -> Bool {
        let n = Double(counts.reduce(0, +)), sd = (n / 8 * 7 / 8).squareRoot()
        return counts.allSatisfy { abs(Double($0) - n / 8) <= 5 * sd }
    }

    /// `--guidance-weight 0` removes the measurement term, so dps, pigdm and tweedie all sample the
    /// prior (8 equal modes); `--dps-scale` near 0 does the same for dps. With the defaults the
    /// measurement x + y concentrates the samples on a few modes, far outside the prior's spread.
    @Test(arguments: [["--method", "dps", "--guidance-weight", "0"], ["--method", "pigdm", "--guidance-weight", "0"],
                      ["--method", "tweedie", "--guidance-weight", "0"], ["--method", "dps", "--dps-scale", "1e-9"],
                      ["--method", "dps"], ["--method", "pigdm", "--guidance-weight", "1"]])
    func guidanceOptionsReachTheSampler(options: [String]) throws {
        let ws = try Workspace()
        let r = try ws.run(["reconstruct", "--model", "ring", "--steps", "200", "--output", "s.npy", "--stats", "s.json"] + options)
        try #require(r.status == 0, "\(r)")
        let counts = Self.ringModeCounts(try Npy.read(ws.path("s.npy")))
        #expect(counts.reduce(0, +) == 1000)
        let stats = try ws.json("s.json")
        let off = options.contains("0") || options.contains("1e-9")
        #expect(Self.looksLikeThePrior(counts) == off, "\(options): mode counts \(counts)")
        if let i = options.firstIndex(of: "--guidance-weight") {
            #expect(stats["guidance_weight"] as? Double == Double(options[i + 1]))
        }
        if let i = options.firstIndex(of: "--dps-scale") { #expect(stats["dps_scale"] as? Double == Double(options[i + 1])) }
    }

    /// ΠGDM is exact for a Gaussian prior when --data-variance is the prior's variance:
    /// p(x₀ | x_t) is then exactly the Gaussian it assumes. Prior N((1, −1), 0.5² I), y = x₁ + x₂ + n
    /// with n ~ N(0, 0.5²) (`--noise-std 0.5`), y = 0.3: along a = (1, 1)/√2 the posterior is
    /// N(v·√2·y/σ_y², v) with v = 1/(1/0.25 + 2/0.25) = 1/12; along u = (1, −1)/√2 it is the prior's
    /// N(√2, 0.25). 2000 samples: means within 5 standard errors, variances within 5 standard errors
    /// of a variance (v·√(2/(n−1))). Another --data-variance reaches the sampler (other bytes).
    @Test func pigdmWithNoiseAndTheTrueVarianceSamplesTheExactGaussianPosterior() throws {
        let ws = try Workspace()
        try ws.write(#"{"means": [[1, -1]], "stds": [0.5]}"#, to: "gauss.json")
        try ws.write(Npy.encode(try Tensor(shape: [1, 2], storage: [1, 1])), to: "A.npy")
        try ws.write(Npy.encode(try Tensor(shape: [1], storage: [0.3])), to: "y.npy")
        let base = ["reconstruct", "--model", "gmm:gauss.json", "--matrix", "A.npy", "--observation", "y.npy", "--method", "pigdm",
                    "--noise-std", "0.5", "--samples-per-input", "2000", "--steps", "500"]
        let r = try ws.run(base + ["--data-variance", "0.25", "--output", "s.npy", "--stats", "s.json"])
        try #require(r.status == 0, "\(r)")
        let x = try Npy.read(ws.path("s.npy"))
        let n = Double(x.rows)
        let root2 = 2.0.squareRoot(), v0 = x.storage
        let a: [Double] = (0 ..< x.rows).map { r in (v0[2 * r] + v0[2 * r + 1]) / root2 }
        let u: [Double] = (0 ..< x.rows).map { r in (v0[2 * r] - v0[2 * r + 1]) / root2 }
        func meanVar(_ z: [Double]) -> (Double, Double) {
            let m = z.reduce(0, +) / Double(z.count)
            return (m, z.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(z.count - 1))
        }
        let v = 1.0 / (1 / 0.25 + 2 / 0.25), meanA = v * 2.0.squareRoot() * 0.3 / 0.25
        let (ma, va) = meanVar(a), (mu, vu) = meanVar(u)
        #expect(abs(ma - meanA) <= 5 * (v / n).squareRoot(), "mean along a: \(ma) vs \(meanA)")
        #expect(abs(va - v) <= 5 * v * (2 / (n - 1)).squareRoot(), "variance along a: \(va) vs \(v)")
        #expect(abs(mu - 2.0.squareRoot()) <= 5 * (0.25 / n).squareRoot(), "mean along u: \(mu)")
        #expect(abs(vu - 0.25) <= 5 * 0.25 * (2 / (n - 1)).squareRoot(), "variance along u: \(vu)")
        let stats = try ws.json("s.json")
        #expect(stats["data_variance"] as? Double == 0.25 && stats["noise_std"] as? Double == 0.5)
        let other = try ws.run(base + ["--data-variance", "4", "--output", "t.npy"])
        try #require(other.status == 0, "\(other)")
        #expect(try ws.data("t.npy") != ws.data("s.npy"), "--data-variance must reach the guidance")
    }
}

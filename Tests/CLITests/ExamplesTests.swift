import Foundation
import ScoreSDE
import ScoreSDEPlot
import Testing

/// The built example executable `name` (`Toy2D`, `Digits`, `CustomSampler`, `Inpainting`, `Colorization`,
/// `PosteriorComparison`), found where
/// `scoresde` is (next to the test bundle: `swift build --build-tests` builds them all).
func exampleExecutable(_ name: String) -> URL? {
    let fm = FileManager.default
    var directories = [URL]()
    if let scoresde = scoresdeExecutable { directories.append(scoresde.deletingLastPathComponent()) }
    if let exe = Bundle.main.executableURL { directories.append(exe.deletingLastPathComponent()) }
    if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        directories.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    for bundle in [Bundle.main] + Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
        directories.append(bundle.bundleURL.deletingLastPathComponent())
    }
    directories.append(Bundle.main.bundleURL)
    return directories.map { $0.appendingPathComponent(name) }.first { fm.isExecutableFile(atPath: $0.path) }
}

extension Workspace {
    /// Runs the example `name` with `arguments` in this directory (output through files, as `run`).
    func runExample(_ name: String, _ arguments: [String]) throws -> CommandResult {
        let executable = try #require(exampleExecutable(name), "example \(name) not found next to the test bundle; build it first (swift build --build-tests)")
        return try run(executable, arguments)
    }
}

/// The size `Plot.titled` gives an image of `width × height` (the title band depends on the width).
func titledSize(_ width: Int, _ height: Int) throws -> (width: Int, height: Int) {
    let image = Plot.titled(try RasterImage(width: width, height: height, channels: 3), "title")
    return (image.width, image.height)
}

/// The size of `Plot.imageGrid` for `n` 8 × 8 images at `scale`, padding 2, near-square.
func digitGridSize(_ n: Int, scale: Int) -> (width: Int, height: Int) {
    let cols = min(Int(Double(n).squareRoot().rounded(.up)), n), rows = (n + cols - 1) / cols
    return (cols * 8 * scale + (cols + 1) * 2, rows * 8 * scale + (rows + 1) * 2)
}

/// The size of `Plot.imageGrid` for `rows × columns` 8 × 8 images at `scale`, padding 2.
func imageGridSize(columns: Int, rows: Int, scale: Int) -> (width: Int, height: Int) {
    (columns * 8 * scale + (columns + 1) * 2, rows * 8 * scale + (rows + 1) * 2)
}

/// The number after `label` in `text` (e.g. `"RMSE unknown 3.21 ..."`), or nil.
func number(after label: String, in text: some StringProtocol) -> Double? {
    guard let range = text.range(of: label) else { return nil }
    return Double(text[range.upperBound...].drop { $0 == " " }.prefix { !$0.isWhitespace && $0 != ")" && $0 != "," })
}

/// The first line of `output` starting with `prefix`.
func line(_ output: String, startingWith prefix: String) -> Substring? {
    output.split(separator: "\n").first { $0.hasPrefix(prefix) }
}

/// Each example runs end to end with small settings, exits 0 and writes the PNG it promises,
/// so that the examples in the README cannot silently rot.
@Suite(.serialized) struct ExamplesTests {
    @Test func toy2DTrainsSamplesFourWaysAndPlots() throws {
        let ws = try Workspace()
        let r = try ws.runExample("Toy2D", ["--output", "toy.png", "--train-steps", "1000", "--steps", "30", "--count", "1000"])
        #expect(r.status == 0, "\(r)")
        let image = try PNG.read(ws.path("toy.png"))
        // Five titled 320-pixel scatter panels with axes and legends (four samplers and the data) in a row.
        #expect(image.width > 5 * 320 + 4 * 16 && image.height > 320 && image.height < 2 * 320, "got \(image.width)x\(image.height)")
        for name in ["Euler-Maruyama", "Reverse diffusion + Langevin", "Ancestral", "Probability-flow ODE"] {
            #expect(r.stdout.contains(name), "\(r)")
        }
        #expect(r.stdout.components(separatedBy: "sliced W2").count - 1 == 5, "four samplers and the floor: \(r)")
        // Each sampler's samples are nearer the moons than the SDE's prior is: its sliced W2 to fresh
        // moons data is below that of 1000 standard normal points (the untrained starting point) to
        // 1000 moons points minus 5 standard deviations of that distance over seeds (measured here
        // from 16 seeds). (1000 training steps and 1000 samples: at 100 steps and 200 samples the
        // model and the Monte-Carlo floor, 0.27, were both too close to the prior's 0.37.)
        var baselines = [Double]()
        for seed in 0 ..< 16 {
            var rng = RandomSource(seed: 700 + UInt64(seed))
            let moons = try Toy2D.moons(count: 1000, using: &rng)
            baselines.append(try slicedWassersteinDistance(Tensor.standardNormal(shape: [1000, 2], using: &rng), moons))
        }
        let mean = baselines.reduce(0, +) / 16
        let sd = (baselines.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 15).squareRoot()
        let floorLine = try #require(line(r.stdout, startingWith: "1000 fresh moons"), "\(r)")
        let floor = try #require(number(after: "sliced W2", in: floorLine))
        for name in ["Euler-Maruyama", "Reverse diffusion + Langevin", "Ancestral", "Probability-flow ODE"] {
            let l = try #require(line(r.stdout, startingWith: name), "\(r)")
            let sw = try #require(number(after: "sliced W2", in: l), "\(l)")
            #expect(sw < mean - 5 * sd && sw > 0, "\(l): prior's distance \(mean) ± \(sd), floor \(floor)")
        }
        #expect(r.stdout.contains("NFE 30 ") && r.stdout.contains("NFE 60 "), "PC NFE: steps, 2 x steps with Langevin: \(r)")
    }

    @Test func digitsSamplesAGridAndReportsBitsPerDim() throws {
        let ws = try Workspace()
        // The shipped U-Net with the recommended few-step sampler (default, 20 NFE) ...
        let r = try ws.runExample("Digits", ["--output", "digits.png", "--count", "6", "--likelihood-count", "8"])
        #expect(r.status == 0, "\(r)")
        let image = try PNG.read(ws.path("digits.png"))
        // Samples next to as many held-out digits, 64 pixels per digit, under titles.
        let grid = digitGridSize(6, scale: 8)
        #expect(image.width == 2 * grid.width + 24 && image.height > grid.height, "got \(image.width)x\(image.height)")
        #expect(r.stdout.contains("UniPC") && r.stdout.contains("NFE 20"), "\(r)")
        // ... and the MLP with the PC sampler (2 NFE per step).
        let mlp = try ws.runExample("Digits", ["--model", "digits-mlp", "--output", "mlp.png", "--count", "6", "--steps", "30", "--likelihood-count", "0"])
        #expect(mlp.status == 0 && mlp.stdout.contains("NFE 60"), "\(mlp)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("bits/dim: ") }, "\(r)")
        let bpd = try #require(Double(line.dropFirst("bits/dim: ".count).prefix { $0 != " " }), "\(line)")
        let se = try #require(number(after: "+-", in: line), "\(line)")
        // A trained model beats the uniform guess over the 17 levels, log2 17 = 4.09 bits per pixel
        // (a statistical contract of any retrained model: its mean over the held-out digits is below
        // that by 5 of its printed standard errors); bits/dim of dequantized data are positive.
        #expect(bpd > 0 && bpd + 5 * se < log2(17.0), "\(line)")
    }

    @Test func customSamplerRunsUserTypesOnTheRingAndDigits() throws {
        let ws = try Workspace()
        let r = try ws.runExample("CustomSampler", ["--output", "custom.png", "--steps", "30", "--count", "512", "--digits", "4"])
        #expect(r.status == 0, "\(r)")
        let image = try PNG.read(ws.path("custom.png"))
        // The ring's 384-pixel scatter plot (axes, legend) next to a 64-pixels-per-digit grid.
        let g = digitGridSize(4, scale: 8)
        #expect(image.width > 384 + 24 + g.width && image.height > 384, "got \(image.width)x\(image.height)")
        // Heun: 2 NFE per step but 1 on the last (to t = 0); the corrector: 1 per step.
        #expect(r.stdout.contains("NFE \(3 * 30 - 1)"), "\(r)")
        let weights = try #require(r.stdout.split(separator: "\n").first { $0.contains("mode weights:") }, "\(r)")
        let values = weights.split(separator: ":")[1].split(separator: " ").compactMap { Double($0) }
        // Against the truth, 1/8 each: within 5 binomial standard errors at 512 samples
        // (5 √(0.125 · 0.875/512) = 0.073) plus the print's rounding (0.0005). (That they sum to 1
        // holds by construction and tests nothing.)
        #expect(values.count == 8, "\(weights)")
        for v in values { #expect(abs(v - 0.125) <= 5 * (0.125 * 0.875 / 512).squareRoot() + 0.0005, "\(weights)") }
    }

    @Test func inpaintingFillsHeldOutDigitsBetterThanTheMeanDigit() throws {
        let ws = try Workspace()
        let r = try ws.runExample("Inpainting", ["--output", "inpainting.png", "--mask", "random", "--digits", "6", "--samples", "2",
                                                 "--steps", "60", "--resample", "2", "--guidance", "none"])
        #expect(r.status == 0, "\(r)")
        // Per digit a row: observed | K samples per method (two methods) | original, 64 pixels per digit.
        let image = try PNG.read(ws.path("inpainting.png"))
        #expect(image.width >= (1 + 2 * 2 + 1) * 64 && image.height > 6 * 64, "got \(image.width)x\(image.height)")
        let baseline = try #require(number(after: "mean training digit RMSE", in: r.stdout), "\(r)")
        for (method, nfe) in [("replacement", 120), ("RePaint 2x10", 240)] {
            let l = try #require(line(r.stdout, startingWith: method), "\(r)")
            #expect(l.contains("NFE \(nfe) "), "\(l)")
            let rmse = try #require(number(after: "RMSE unknown", in: l)), meanOfK = try #require(number(after: "mean of 2:", in: l))
            let known = try #require(number(after: "known pixels max error", in: l))
            // Replacement puts the observation itself into the known pixels of the output (the last
            // step ends at t = 0, m(0) = 1): exact up to the k/8 - 1 round trip.
            #expect(known <= 1e-9, "\(l)")
            // The sampled unknown pixels beat the mean training digit (4.2-4.6 levels): with this
            // random mask, 6 digits and 60 steps the ratio was 0.62-0.79 for seeds 1-4, so 1 leaves a
            // margin of > 5 standard deviations of the seed-to-seed spread.
            #expect(rmse < baseline && meanOfK < baseline, "\(l) vs baseline \(baseline)")
            // Mean of the K samples vs each sample: ||mean - t||² <= mean ||s_k - t||² (convexity), always.
            #expect(meanOfK <= rmse + 1e-3, "\(l)")
        }
        // Jacobian-free PiGDM as a third method (needs enough steps to stay stable: checked only to run).
        let g = try ws.runExample("Inpainting", ["--output", "pigdm.png", "--digits", "2", "--samples", "1", "--steps", "250",
                                                 "--resample", "1", "--guidance", "pigdm"])
        #expect(g.status == 0, "\(g)")
        let l = try #require(line(g.stdout, startingWith: "guidance (PiGDM)"), "\(g)")
        #expect(l.contains("NFE 500 ") && number(after: "RMSE unknown", in: l).map { $0.isFinite } == true, "\(l)")
    }

    /// The shipped Fashion-MNIST U-Net end to end: class rows, inpainting and bits/dim.
    @Test func fashionSamplesInpaintsAndReportsBitsPerDim() throws {
        let ws = try Workspace()
        let r = try ws.runExample("Fashion", ["--output", "f.png", "--per-class", "2", "--steps", "10", "--inpaint", "2",
                                              "--inpaint-steps", "40", "--likelihood", "1"])
        try #require(r.status == 0, "\(r)")
        let image = try PNG.read(ws.path("f.png"))
        #expect(image.width > 2 * 56 && image.height > 10 * 56, "ten class rows of 56-pixel images: \(image.width)x\(image.height)")
        let l = try #require(line(r.stdout, startingWith: "  one sample"), "\(r)")
        let meanOfK = try #require(number(after: "mean of 4 samples", in: l)), meanImage = try #require(number(after: "mean training image", in: l))
        // The hole is the centre of the garment, where the mean image is a blur of every class:
        // the model's conditional mean must beat it.
        #expect(meanOfK < meanImage, "\(l)")
        let b = try #require(line(r.stdout, startingWith: "bits/dim of 1 random test images"), "\(r)")
        let bpd = try #require(number(after: "mean", in: b))
        #expect(bpd > 0 && bpd < 8, "a test image scores better than a uniform guess over 256 levels: \(b)")
    }

    @Test func colorizationKeepsTheGreyAndReportsColourErrors() throws {
        let ws = try Workspace()
        let r = try ws.runExample("Colorization", ["--output", "colorization.png", "--patches", "3", "--samples", "2",
                                                   "--steps", "60", "--resample", "2"])
        #expect(r.status == 0, "\(r)")
        let image = try PNG.read(ws.path("colorization.png"))
        #expect(image.width >= (1 + 2 * 2 + 1) * 64 && image.height > 3 * 64 && image.channels == 3,
                "grey | two methods' samples | original: got \(image.width)x\(image.height)")
        // The printed baseline is the truth's own chroma: recompute it from the same patches.
        var rng = RandomSource(seed: 1)
        let truth = try ImagePatches.random(count: 3, split: .heldOut, using: &rng), grey = try ImagePatches.toGrey(truth, replicate: true)
        let expected = (zip(truth.storage, grey.storage).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(truth.count)).squareRoot()
        let baseline = try #require(number(after: "grey replicated into R, G, B: RMSE", in: r.stdout), "\(r)")
        #expect(abs(baseline - expected) < 0.01, "printed \(baseline), recomputed \(expected)")
        for (method, nfe) in [("replacement", 120), ("RePaint 2x10", 240)] {
            let l = try #require(line(r.stdout, startingWith: method), "\(r)")
            #expect(l.contains("NFE \(nfe) "), "\(l)")
            let rmse = try #require(number(after: "RMSE", in: l)), meanOfK = try #require(number(after: "mean of 2:", in: l))
            let raw = try #require(number(after: "max: raw", in: l)), clamped = try #require(number(after: "clamped", in: l))
            let bytes = try #require(number(after: "8-bit", in: l))
            // The constraint fixes (R+G+B)/sqrt(3) exactly; the channel mean follows to ~2e-7 of the
            // chroma (the reference matrix is float32): ~1e-5 levels measured, 1e-3 allowed.
            #expect(raw < 1e-3, "\(l)")
            // 8-bit rounding moves a channel mean by at most 0.5 beyond what clamping did.
            #expect(bytes <= clamped + 0.5 + 1e-9, "\(l)")
            #expect(meanOfK <= rmse + 0.01, "convexity: \(l)")
            // Colour samples, not noise: 21-58 levels over seeds 1-8 at these settings (6 patches);
            // uniformly random colours would be >= 74 off (the std of U[0, 255]).
            #expect(rmse.isFinite && rmse < 74, "\(l)")
        }
    }

    @Test func posteriorComparisonMeasuresMethodsAgainstTheExactPosterior() throws {
        let ws = try Workspace()
        let r = try ws.runExample("PosteriorComparison", ["--output", "posterior.png", "--count", "2000", "--steps", "100", "--resample", "2"])
        #expect(r.status == 0, "\(r)")
        // Two rows of four titled 300-pixel scatter panels with axes and legends.
        let image = try PNG.read(ws.path("posterior.png"))
        #expect(image.width > 4 * 300 && image.height > 2 * 300, "got \(image.width)x\(image.height)")
        func tv(_ method: String) throws -> Double {
            let l = try #require(line(r.stdout, startingWith: method), "\(r)")
            let fields = l.dropFirst(32).split(separator: " ")
            return try #require(Double(fields[1]), "\(l)")
        }
        // Exact posterior weights 0.695 / 0.305: one binomial standard error of a weight at n = 2000
        // is 0.0103, and for two modes the TV is the error of one weight.
        #expect(try tv("exact, another seed") < 0.05, "5 standard errors: \(r)")
        #expect(try tv("PC on exact posterior score") < 0.06, "MC plus the sampler's discretisation: \(r)")
        // The documented bias of replacement: about 0.60 / 0.40, i.e. TV 0.08-0.13 at these settings
        // (seeds 1-5, 1000 samples); >= 0.04 is that bias minus 5 standard errors.
        let replacement = try tv("replacement (paper)")
        #expect(replacement >= 0.04 && replacement < 0.2, "\(r)")
        // Tweedie-moment guidance: TV 0.074-0.10 measured at these settings (seeds 1-5, 1000 samples;
        // that spread is the Monte-Carlo error, one standard error 0.0146 there). The band is the
        // largest measured value plus 5 standard errors at the 2000 samples here (0.0103 each):
        // 0.10 + 0.052 = 0.152.
        #expect(try tv("Tweedie-moment") < 0.152, "\(r)")
        for method in ["replacement (reference)", "RePaint 2x10", "DPS", "PiGDM"] { #expect(r.stdout.contains(method), "\(r)") }
        #expect(r.stdout.contains("NFE") && r.stdout.contains("closest to the exact posterior:"), "\(r)")
    }

    @Test func examplesRejectBadSettingsBeforeWork() throws {
        let ws = try Workspace()
        for (name, args) in [("Toy2D", ["--count", "1"]), ("Toy2D", ["--steps", "0"]), ("Digits", ["--likelihood-count", "1000"]),
                             ("CustomSampler", ["--steps", "0"]), ("Inpainting", ["--samples", "11"]), ("Inpainting", ["--mask", "middle"]),
                             ("Colorization", ["--steps", "0"]), ("PosteriorComparison", ["--noise=-1"])] {
            let r = try ws.runExample(name, args + ["--output", "x.png"])
            #expect(r.status != 0, "\(name) \(args): \(r)")
            #expect(!r.stderr.isEmpty, "\(name) \(args): \(r)")
            #expect(!FileManager.default.fileExists(atPath: ws.path("x.png")), "\(name) \(args) wrote a file")
        }
    }
}

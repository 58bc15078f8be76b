import Foundation
import ScoreSDE
import Testing

/// `sample`, `likelihood` and `inpaint` with a U-Net model file (`model = unet` in its metadata):
/// a tiny random U-Net on 8×8 grey images, data values 0...16 (scaling 0.125 x − 1, as digits).
/// Time scale 1 (τ = t) keeps the random network smooth in t, so likelihood solves stay short.
@Suite struct UNetModelCommandTests {
    static let config = UNetConfiguration(imageSize: 8, channels: 1, blockOutChannels: [8, 8], layersPerBlock: 1, normGroups: 4)
    static let sde = SDESpec.vp(betaMin: 0.1, betaMax: 20)

    static func model(classes: Int = 0) throws -> UNetScore {
        var c = config
        c.classCount = classes
        var m = try UNetScore(configuration: c, sde: sde, timeScale: 1, seed: 7)
        m.dataScaling = try DataScaling(scale: 0.125, shift: -1)
        return m
    }

    /// Three 8×8 images with values in 0...16.
    static func images() throws -> Tensor {
        var s = RandomSource(seed: 4).stream(draw: 0, row: 0)
        return try Tensor(shape: [3, 1, 8, 8], storage: (0 ..< 192).map { _ in 16 * Double(s.next() >> 11) * 0x1p-53 })
    }

    static func workspace(classes: Int = 0) throws -> Workspace {
        let ws = try Workspace()
        try model(classes: classes).write(to: ws.path("u.safetensors"))
        try ws.write(Npy.encode(try images()), to: "x.npy")
        return ws
    }

    @Test func sampleWritesImagesAndRepeatsItsBytes() throws {
        let ws = try Self.workspace()
        let args = ["sample", "--model", "u.safetensors", "--count", "4", "--steps", "20", "--seed", "3", "--threads", "1"]
        let r = try ws.run(args + ["--output", "s.npy", "--stats", "s.json", "--png", "s.png"])
        try #require(r.status == 0, "\(r)")
        let s = try Npy.read(ws.path("s.npy"))
        #expect(s.shape == [4, 1, 8, 8])
        #expect(s.storage.allSatisfy { $0.isFinite })
        let png = try PNG.read(ws.path("s.png"))
        #expect(png.width >= 2 * 8 && png.height >= 2 * 8, "\(png.width)x\(png.height)")
        let stats = try ws.json("s.json")
        #expect(stats["shape"] as? [Int] == [4, 1, 8, 8] && stats["sde"] as? String == "vp")
        // Same seed, same bytes.
        let again = try ws.run(args + ["--output", "s2.npy"])
        try #require(again.status == 0, "\(again)")
        #expect(try ws.data("s.npy") == ws.data("s2.npy"))
    }

    /// 28×28 grey rows (Fashion-MNIST's shape) render as an image grid, 2×2 for 4 samples.
    @Test func fashionSizedSamplesRenderAsImages() throws {
        let ws = try Workspace()
        var c = Self.config
        c.imageSize = 28
        var m = try UNetScore(configuration: c, sde: Self.sde, timeScale: 1, seed: 3)
        m.dataScaling = try DataScaling(scale: 2, shift: -1)
        try m.write(to: ws.path("f.safetensors"))
        let r = try ws.run(["sample", "--model", "f.safetensors", "--count", "4", "--steps", "5", "--output", "f.npy", "--png", "f.png"])
        try #require(r.status == 0, "\(r)")
        #expect(try Npy.read(ws.path("f.npy")).shape == [4, 1, 28, 28])
        let png = try PNG.read(ws.path("f.png"))
        #expect(png.width >= 2 * 28 && png.height >= 2 * 28, "\(png.width)x\(png.height)")
    }

    /// `--class` and classifier-free guidance on a class-conditional U-Net: one grid row per class.
    @Test func classConditionalSampling() throws {
        let ws = try Self.workspace(classes: 2)
        let r = try ws.run(["sample", "--model", "u.safetensors", "--class", "0,1", "--guidance-scale", "2", "--count", "4", "--steps", "10",
                            "--output", "c.npy", "--stats", "c.json", "--png", "c.png"])
        try #require(r.status == 0, "\(r)")
        #expect(try Npy.read(ws.path("c.npy")).shape == [4, 1, 8, 8])
        let stats = try ws.json("c.json")
        #expect(stats["class"] as? String == "0,1" && stats["guidance_scale"] as? Double == 2)
        let bad = try ws.run(["sample", "--model", "u.safetensors", "--class", "2", "--count", "2", "--steps", "5", "--output", "bad.npy"])
        #expect(bad.status != 0 && bad.stderr.contains("not a class"), "\(bad)")
        #expect(!ws.files().contains("bad.npy"))
    }

    /// The command's log-likelihoods are the library's (Hutchinson through VJPs, probes from the
    /// seed, data space): the same bytes. (The exact divergence, 64 VJPs per evaluation here, is
    /// the same code path; NetworksUNetLikelihoodTests checks it on a 16-value U-Net.)
    @Test func likelihoodMatchesTheLibrary() throws {
        let ws = try Self.workspace()
        let common = ["likelihood", "--model", "u.safetensors", "--eps", "1e-3", "--rtol", "1e-4", "--atol", "1e-4"]
        let r = try ws.run(common + ["--data", "x.npy", "--estimator", "rademacher", "--probes", "2", "--seed", "5",
                                     "--output", "ll.npy", "--stats", "l.json"])
        try #require(r.status == 0, "\(r)")
        let ll = try Npy.read(ws.path("ll.npy")).storage
        let model = try Self.model()
        var rng = RandomSource(seed: 5)
        let want = try Likelihood(sde: try VPSDE(), score: model, estimator: .rademacher(probes: 2), eps: 1e-3,
                                  solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-4, relativeTolerance: 1e-4),
                                  convention: .dataSpace(model.dataScaling))
            .evaluate(model.dataScaling.toModel(try Self.images()), using: &rng)
        #expect(ll == want.logLikelihood)
        let stats = try ws.json("l.json")
        #expect(stats["dim"] as? Int == 64 && stats["n"] as? Int == 3)
        #expect(stats["nfe"] as? Int == 2 * (stats["rhs_evaluations"] as? Int ?? -1), "two probes per right-hand side: \(stats)")
    }

    /// Inpainting keeps the known (top) half of each input; ΠGDM (Jacobian-free) works too.
    @Test func inpaintKeepsTheKnownPixels() throws {
        let ws = try Self.workspace()
        let r = try ws.run(["inpaint", "--model", "u.safetensors", "--data", "x.npy", "--steps", "20", "--samples-per-input", "2",
                            "--output", "i.npy", "--png", "i.png"])
        try #require(r.status == 0, "\(r)")
        let samples = try Npy.read(ws.path("i.npy")), x = try Self.images()
        #expect(samples.shape == [6, 1, 8, 8])
        for s in 0 ..< 6 {
            for p in 0 ..< 32 { #expect(abs(samples.storage[s * 64 + p] - x.storage[(s / 2) * 64 + p]) < 1e-12) }
        }
        #expect(ws.files().contains("i.png"))
        let g = try ws.run(["inpaint", "--model", "u.safetensors", "--data", "x.npy", "--steps", "10", "--method", "pigdm", "--output", "g.npy"])
        try #require(g.status == 0, "\(g)")
        #expect(try Npy.read(ws.path("g.npy")).storage.allSatisfy { $0.isFinite })
    }

    /// Classifier guidance of an unconditional U-Net by a noise-aware classifier trained `--like` it.
    @Test func classifierGuidedSampling() throws {
        let ws = try Self.workspace()
        let c = try ws.run(["train-classifier", "--hidden", "16", "--blocks", "1", "--fourier-features", "4", "--batch-size", "32", "--steps", "5",
                            "--data", "digits", "--count", "64", "--like", "u.safetensors", "--output", "c.safetensors"])
        try #require(c.status == 0, "\(c)")
        let r = try ws.run(["sample", "--model", "u.safetensors", "--class", "0,1", "--classifier", "c.safetensors", "--classifier-scale", "2",
                            "--count", "4", "--steps", "5", "--output", "g.npy", "--stats", "g.json"])
        try #require(r.status == 0, "\(r)")
        #expect(try Npy.read(ws.path("g.npy")).shape == [4, 1, 8, 8])
        #expect(try ws.json("g.json")["classifier_scale"] as? Double == 2)
    }

    /// Issue 20's "done when", end to end at toy size: `train --data fashion-mnist --model unet
    /// --labels own` writes a checkpoint that `sample` (with --class and guidance), `likelihood` (on
    /// the test split) and `inpaint` (the test split's first images) accept.
    @Test func aTrainedFashionMNISTCheckpointIsAcceptedEverywhere() throws {
        let ws = try Workspace()
        let t = try ws.run(["train", "--data", "fashion-mnist", "--count", "12", "--steps", "2", "--model", "unet", "--channels", "8,8,8",
                            "--norm-groups", "4", "--batch-size", "4", "--gradient-block", "4", "--labels", "own", "--output", "f.safetensors", "--quiet"])
        try #require(t.status == 0, "\(t)")
        let s = try ws.run(["sample", "--model", "f.safetensors", "--class", "0,1", "--guidance-scale", "2", "--count", "4", "--steps", "5",
                            "--output", "s.npy", "--png", "s.png"])
        try #require(s.status == 0, "\(s)")
        #expect(try Npy.read(ws.path("s.npy")).shape == [4, 1, 28, 28])
        let l = try ws.run(["likelihood", "--model", "f.safetensors", "--data", "fashion-mnist-test", "--count", "2", "--estimator", "rademacher",
                            "--eps", "1e-3", "--rtol", "1e-3", "--atol", "1e-3", "--output", "l.npy"])
        try #require(l.status == 0, "\(l)")
        #expect(try Npy.read(ws.path("l.npy")).storage.count == 2)
        let i = try ws.run(["inpaint", "--model", "f.safetensors", "--count", "2", "--samples-per-input", "1", "--steps", "5", "--output", "i.npy"])
        try #require(i.status == 0, "\(i)")
        #expect(try Npy.read(ws.path("i.npy")).shape == [2, 1, 28, 28])
    }

    @Test func badInputFailsClearlyAndWritesNothing() throws {
        let ws = try Self.workspace()
        try ws.write(Npy.encode(try Tensor(shape: [2, 1, 7, 7], storage: Array(repeating: 1, count: 98))), to: "x7.npy")
        var nan = try Self.images()
        nan.storage[10] = .nan
        try ws.write(Npy.encode(nan), to: "nan.npy")
        let cases: [([String], String)] = [
            (["likelihood", "--data", "x7.npy"], "[1, 7, 7]"),
            (["likelihood", "--data", "nan.npy"], "finite"),
            (["inpaint", "--data", "x7.npy"], "[1, 7, 7]"),
            (["inpaint", "--data", "nan.npy"], "finite"),
            (["sample", "--sde", "ve"], "trained with the SDE"),
        ]
        for (args, message) in cases {
            let extra = args[0] == "likelihood" ? ["--output", "out.npy", "--stats", "out.json"]
                : ["--steps", "5", "--output", "out.npy", "--stats", "out.json", "--png", "out.png"]
            let r = try ws.run([args[0], "--model", "u.safetensors"] + args.dropFirst() + extra)
            #expect(r.status != 0, "\(args): \(r)")
            #expect(r.stderr.contains(message), "\(args): expected '\(message)' in: \(r.stderr)")
            #expect(!ws.files().contains { $0.hasPrefix("out") }, "\(args) wrote \(ws.files())")
        }
    }
}

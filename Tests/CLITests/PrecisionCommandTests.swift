import Foundation
import ScoreSDE
import Testing

/// `train --precision f32` (issue 20, item 3): the MLP trains in float32 against float64 weights, the
/// model file records it, and `sample --model` computes in float32 from that record alone.
@Suite struct PrecisionCommandTests {
    static let tiny = ["--data", "ring", "--hidden", "16", "--blocks", "1", "--fourier-features", "4", "--batch-size", "32"]

    @Test func aFloat32RunRecordsItsPrecisionAndSamplesWithIt() throws {
        let ws = try Workspace()
        let t = try ws.run(["train"] + Self.tiny + ["--precision", "f32", "--steps", "20", "--output", "m.safetensors"])
        try #require(t.status == 0, "\(t)")
        #expect(try Safetensors.read(ws.path("m.safetensors")).metadata["model.precision"] == "float32")
        let model = try MLPScore.load(from: ws.path("m.safetensors"))
        #expect(model.precision == .float32)

        // The library's float32 run with the command's settings (its defaults: warm-up 100, clip 1,
        // one gradient block) ends with the same raw weights, to 1e-9 relative as in
        // TrainCommandTests (the processes may pick other float64 BLAS kernels for the loss's
        // surroundings; the float32 network's sgemm is the same).
        let config = TrainingConfiguration(sde: .vp(betaMin: 0.1, betaMax: 20),
                                           architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 16, residualBlocks: 1, fourierFeatures: 4),
                                           seed: 0, batchSize: 32, learningRate: 1e-3, warmup: 100, gradClip: 1, emaRate: 0.999,
                                           gradientBlockSize: 64, precision: .float32)
        let library = try Trainer(configuration: config, data: Dataset.load("ring", count: nil, seed: 0).data)
        try library.train(steps: 20)
        let raw = try MLPScore.load(from: ws.path("m.safetensors"), weights: .raw)
        #expect(raw.precision == .float32)
        let distance = zip(raw.parameters, library.parameters).map { abs($0 - $1) }.max()! / library.parameters.map(abs).max()!
        #expect(distance <= 1e-9, "CLI vs library float32 weights differ by \(distance) (relative)")

        // sample --model: the same bytes as the library's sampler on the loaded (float32) model.
        let sde = try VPSDE()
        var rng = RandomSource(seed: 5)
        let z = sde.samplePrior(rowShape: [2], count: 32, using: &rng)
        try ws.write(Npy.encode(z), to: "z.npy")
        let s = try ws.run(["sample", "--model", "m.safetensors", "--latent", "z.npy", "--sampler", "dpm-solver++", "--order", "3",
                            "--skip", "logsnr", "--nfe", "10", "--denoise", "none", "--output", "y.npy"])
        try #require(s.status == 0, "\(s)")
        let grid = try TimeGrid.spaced(.logSNR, steps: 10, from: sde.T, to: 1e-3, sde: sde)
        let expected = try PCSampler(sde: sde, score: model, grid: grid, predictor: try DPMSolverPlusPlus(order: 3),
                                     corrector: NoCorrector(), denoising: .none).sample(from: z, using: &rng)
        let got = try Npy.read(ws.path("y.npy")).storage
        #expect(got == expected.samples.storage)
        // ... and not the float64 model's samples.
        let f64 = try PCSampler(sde: sde, score: model.withPrecision(.float64), grid: grid, predictor: try DPMSolverPlusPlus(order: 3),
                                corrector: NoCorrector(), denoising: .none).sample(from: z, using: &rng)
        #expect(got != f64.samples.storage)

        // The default stays float64 and records nothing.
        let d = try ws.run(["train"] + Self.tiny + ["--steps", "5", "--output", "d.safetensors"])
        try #require(d.status == 0, "\(d)")
        #expect(try Safetensors.read(ws.path("d.safetensors")).metadata["model.precision"] == nil)
        #expect(try MLPScore.load(from: ws.path("d.safetensors")).precision == .float64)

        // Resume: the checkpoint's precision continues; a different --precision is a conflict.
        let r = try ws.run(["train"] + Self.tiny + ["--steps", "30", "--output", "m.safetensors", "--resume"])
        try #require(r.status == 0, "\(r)")
        #expect(try MLPScore.load(from: ws.path("m.safetensors")).precision == .float32)
        let c = try ws.run(["train"] + Self.tiny + ["--precision", "f64", "--steps", "40", "--output", "m.safetensors", "--resume"])
        #expect(c.status != 0 && c.stderr.contains("--precision"), "\(c)")
    }

    @Test func precisionIsAnMLPOption() throws {
        let ws = try Workspace()
        let r = try ws.run(["train", "--data", "fashion-mnist", "--model", "unet", "--precision", "f32", "--steps", "1", "--output", "u.safetensors"])
        #expect(r.status != 0 && r.stderr.contains("--precision"), "\(r)")
        let bad = try ws.run(["train"] + Self.tiny + ["--precision", "f16", "--steps", "1", "--output", "b.safetensors"])
        #expect(bad.status != 0)
        #expect(ws.files().isEmpty, "\(ws.files())")
    }
}

import Foundation
import ScoreSDE
import Testing

/// `train --schedule cosine` and `train-classifier --schedule cosine`, and the commands that then
/// use the trained model with its own (cosine) SDE and no SDE option: `sample`, `encode`,
/// `likelihood`, classifier guidance. Tiny networks, short runs; bad input fails with a message, a
/// non-zero exit and no file.
@Suite struct CosineTrainCommandTests {
    static let tiny = ["--data", "ring", "--hidden", "16", "--blocks", "1", "--fourier-features", "4", "--batch-size", "32"]

    @Test func aCosineModelRecordsItsScheduleAndSamplesWithIt() throws {
        let ws = try Workspace()
        let t = try ws.run(["train"] + Self.tiny + ["--schedule", "cosine", "--steps", "20", "--output", "m.safetensors", "--stats", "t.json"])
        try #require(t.status == 0, "\(t)")
        #expect(t.stdout.contains("cosine"), "the summary names the SDE: \(t.stdout)")
        let meta = try Safetensors.read(ws.path("m.safetensors")).metadata
        #expect(meta["sde"] == "vp" && meta["sde.schedule"] == "cosine" && meta["sde.cosine_s"] == "0.008" && meta["sde.T"] == "0.9946")
        #expect(meta["sde.beta_min"] == nil)
        let ts = try ws.json("t.json")
        #expect(ts["sde"] as? String == "vp" && ts["schedule"] as? String == "cosine" && ts["T"] as? Double == 0.9946)
        let model = try MLPScore.load(from: ws.path("m.safetensors"))
        #expect(model.sdeSpec == .defaultCosineVP)

        // sample --model with no SDE option decodes with the cosine SDE: the same bytes as the library
        // run of DPM-Solver++ 3M on the cosine SDE's logSNR grid from its T = 0.9946 to 1e-3.
        let sde = try CosineVPSDE()
        var rng = RandomSource(seed: 5)
        let z = sde.samplePrior(rowShape: [2], count: 32, using: &rng)
        try ws.write(Npy.encode(z), to: "z.npy")
        let s = try ws.run(["sample", "--model", "m.safetensors", "--latent", "z.npy", "--sampler", "dpm-solver++", "--order", "3",
                            "--skip", "logsnr", "--nfe", "10", "--denoise", "none", "--output", "y.npy", "--stats", "y.json"])
        try #require(s.status == 0, "\(s)")
        let grid = try TimeGrid.spaced(.logSNR, steps: 10, from: sde.T, to: 1e-3, sde: sde)
        let expected = try PCSampler(sde: sde, score: model, grid: grid, predictor: try DPMSolverPlusPlus(order: 3),
                                     corrector: NoCorrector(), denoising: .none).sample(from: z, using: &rng)
        #expect(try Npy.read(ws.path("y.npy")).storage == expected.samples.storage)
        let ys = try ws.json("y.json")
        #expect(ys["sde"] as? String == "vp" && ys["schedule"] as? String == "cosine" && ys["T"] as? Double == 0.9946 && ys["nfe"] as? Int == 10)
        // The default sampler (PC) and --sde vp --schedule cosine (agreeing with the model) work too.
        let pc = try ws.run(["sample", "--model", "m.safetensors", "--sde", "vp", "--schedule", "cosine", "--count", "16", "--steps", "20",
                             "--output", "pc.npy", "--stats", "pc.json"])
        try #require(pc.status == 0, "\(pc)")
        #expect(try Npy.read(ws.path("pc.npy")).storage.allSatisfy { $0.isFinite })
        #expect(try ws.json("pc.json")["schedule"] as? String == "cosine")

        // encode and likelihood build the same SDE from the file.
        try ws.write(Npy.encode(try Tensor(shape: [4, 2], storage: [1, 0, 0, 1, -1, 0, 0, -1])), to: "x.npy")
        let e = try ws.run(["encode", "--model", "m.safetensors", "--data", "x.npy", "--output", "ze.npy", "--stats", "e.json"])
        try #require(e.status == 0, "\(e)")
        let es = try ws.json("e.json")
        #expect(es["schedule"] as? String == "cosine")
        // The latents are the cosine flow's image of x: the same solve in this process (same eps,
        // method, tolerances, and — the BLAS being chosen by one rule — the same kernels) gives the
        // same bytes.
        do {
            let eps = try #require(es["eps"] as? Double), rtol = try #require(es["rtol"] as? Double), atol = try #require(es["atol"] as? Double)
            let x = try Npy.read(ws.path("x.npy")), z = try Npy.read(ws.path("ze.npy"))
            let options = ODESolverOptions(.rkf45, absoluteTolerance: atol, relativeTolerance: rtol)
            let cosine = try ODESampler(sde: sde, score: model, eps: eps, solver: options).encode(x).states.storage
            #expect(z.storage == cosine, "CLI latents \(z.storage) vs the library's cosine encode \(cosine)")
        }
        let l = try ws.run(["likelihood", "--model", "m.safetensors", "--data", "x.npy", "--output", "ll.npy", "--stats", "l.json"])
        try #require(l.status == 0, "\(l)")
        let ls = try ws.json("l.json")
        #expect(ls["schedule"] as? String == "cosine")
        // The command's log-likelihoods are the library's on the cosine SDE (the same model, eps,
        // estimator and tolerances), up to the two solves' errors — not bitwise: the BLAS kernels of
        // two processes may differ, and an adaptive solver's step sequence follows the rounding. Each
        // solve is within steps · tol · (1 + |log p|) (the header of ODESamplerTests), so the two
        // within twice that.
        let eps = try #require(ls["eps"] as? Double), rtol = try #require(ls["rtol"] as? Double), atol = try #require(ls["atol"] as? Double)
        let steps = (ls["accepted_steps"] as? Int ?? 0) + (ls["rejected_steps"] as? Int ?? 0)
        let x = try Npy.read(ws.path("x.npy")), ll = try Npy.read(ws.path("ll.npy")).storage
        func inProcess(_ sde: some ForwardSDE) throws -> [Double] {
            var r = RandomSource(seed: 0)
            return try Likelihood(sde: sde, score: model, estimator: .exact, eps: eps,
                                  solver: ODESolverOptions(.rkf45, absoluteTolerance: atol, relativeTolerance: rtol)).evaluate(x, using: &r).logLikelihood
        }
        let cosine = try inProcess(sde)
        let bound = 2 * Double(max(steps, 1)) * max(rtol, atol) * (1 + ll.map(abs).max()!)
        #expect(zip(ll, cosine).map { abs($0 - $1) }.max()! <= bound, "CLI \(ll) vs library \(cosine) (bound \(bound))")
        let i = try ws.run(["inpaint", "--model", "m.safetensors", "--data", "x.npy", "--steps", "20", "--samples-per-input", "3",
                            "--output", "in.npy", "--stats", "in.json"])
        try #require(i.status == 0, "\(i)")
        #expect(try ws.json("in.json")["schedule"] as? String == "cosine")

        // Options that contradict the model's SDE are refused, naming the conflict.
        for (args, text) in [(["--schedule", "linear"], "the cosine schedule"), (["--beta-max", "10"], "not a parameter"),
                             (["--sde", "ve"], "--sde ve")] {
            let r = try ws.run(["sample", "--model", "m.safetensors", "--count", "4", "--steps", "5", "--output", "bad.npy"] + args)
            #expect(r.status != 0 && r.stderr.contains(text), "\(args): \(r)")
        }
        #expect(!ws.files().contains("bad.npy"))

        // Resuming keeps the schedule; a different one is a conflict.
        let more = try ws.run(["train", "--data", "ring", "--steps", "30", "--output", "m.safetensors", "--resume", "--schedule", "cosine"])
        try #require(more.status == 0, "\(more)")
        let clash = try ws.run(["train", "--data", "ring", "--steps", "40", "--output", "m.safetensors", "--resume", "--schedule", "linear"])
        #expect(clash.status != 0 && clash.stderr.contains("--schedule linear"), "\(clash)")
        #expect(try Safetensors.read(ws.path("m.safetensors")).metadata["train.step"] == "30")
    }

    @Test func aCosineClassifierGuidesACosineModel() throws {
        let ws = try Workspace()
        let m = try ws.run(["train"] + Self.tiny + ["--schedule", "cosine", "--steps", "10", "--output", "m.safetensors"])
        try #require(m.status == 0, "\(m)")
        let c = try ws.run(["train-classifier"] + Self.tiny + ["--schedule", "cosine", "--steps", "10", "--output", "c.safetensors"])
        try #require(c.status == 0, "\(c)")
        #expect(try NoiseAwareClassifier.load(from: ws.path("c.safetensors")).sdeSpec == .defaultCosineVP)
        let like = try ws.run(["train-classifier"] + Self.tiny + ["--like", "m.safetensors", "--steps", "10", "--output", "like.safetensors"])
        try #require(like.status == 0, "\(like)")
        #expect(try NoiseAwareClassifier.load(from: ws.path("like.safetensors")).sdeSpec == .defaultCosineVP)
        let g = try ws.run(["sample", "--model", "m.safetensors", "--class", "3", "--classifier", "c.safetensors", "--count", "8",
                            "--steps", "10", "--output", "g.npy"])
        try #require(g.status == 0, "\(g)")
        // A linear-VP classifier cannot guide the cosine model.
        let lin = try ws.run(["train-classifier"] + Self.tiny + ["--steps", "10", "--output", "lin.safetensors"])
        try #require(lin.status == 0, "\(lin)")
        let bad = try ws.run(["sample", "--model", "m.safetensors", "--class", "3", "--classifier", "lin.safetensors", "--count", "8",
                              "--steps", "10", "--output", "bad.npy"])
        #expect(bad.status != 0 && bad.stderr.contains("SDE") && !ws.files().contains("bad.npy"), "\(bad)")
    }

    @Test func scheduleCosineWithAnotherSDEIsRefusedAndWritesNothing() throws {
        let ws = try Workspace()
        let cases: [([String], String)] = [
            (["train", "--sde", "ve", "--schedule", "cosine"], "--schedule cosine is an option of --sde vp, not of --sde ve"),
            (["train", "--sde", "subvp", "--schedule", "cosine"], "not of --sde subvp"),
            (["train", "--schedule", "cosine", "--beta-max", "10"], "not a parameter of the cosine schedule"),
            (["train", "--schedule", "cosine", "--sigma-min", "0.01"], "not a parameter of the cosine schedule"),
            (["train-classifier", "--sde", "ve", "--schedule", "cosine"], "--schedule cosine is an option of --sde vp, not of --sde ve"),
            (["train-classifier", "--like", "digits-mlp", "--schedule", "cosine"], "--like takes the SDE"),
        ]
        for (args, text) in cases {
            let r = try ws.run(args + Self.tiny + ["--steps", "5", "--output", "bad.safetensors", "--export-weights", "w.safetensors"])
            #expect(r.status != 0 && r.stderr.contains(text), "\(args): \(r)")
            #expect(ws.files().isEmpty, "\(args) wrote \(ws.files())")
        }
        let stats = try ws.run(["train"] + Self.tiny + ["--sde", "ve", "--schedule", "cosine", "--steps", "5", "--output", "bad.safetensors", "--stats", "s.json"])
        #expect(stats.status != 0 && ws.files().isEmpty, "\(stats)")
    }
}

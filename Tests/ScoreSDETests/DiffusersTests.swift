import Foundation
import Testing
@testable import ScoreSDE

// diffusers UNet2DModel folders: parity with diffusers' forward pass (fixtures written by
// Benchmarks/peers/diffusers_parity.py), the scheduler → SDE and time maps, the writer, bad input.

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/diffusers").path

private func tempDir(_ name: String) -> String {
    let d = NSTemporaryDirectory() + "scoresde-diffusers-\(name)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// `max |ours − diffusers| / max |diffusers|` over the fixture's timesteps and images.
private func parityError(_ name: String) throws -> (float32: Double, float64: Double) {
    let folder = fixtures + "/" + name
    let model = try DiffusersUNet.load(folder)
    let io = try Safetensors.read(folder + "/parity.safetensors")
    let xT = try io.tensor(named: "x"), taus = try io.tensor(named: "timesteps").values, out = try io.tensor(named: "out")
    let labels = io["labels"]?.values.map { Int($0) }
    let B = xT.shape[0], rowSize = xT.values.count / B
    // The float64 network on the same weights (the loader's float32 values), fed NHWC.
    let c = model.configuration, C = c.channels, P = c.imageSize * c.imageSize
    let ref = try UNet<Double>(c)
    for i in 0 ..< ref.parameterCount { ref.parameters[i] = Double(model.network.parameters[i]) }
    var worst32 = 0.0, worst64 = 0.0, scale = 0.0
    for (k, tau) in taus.enumerated() {
        for b in 0 ..< B {
            let row = Array(xT.values[b * rowSize ..< (b + 1) * rowSize])
            let m = labels == nil ? model : try model.conditioned(on: labels![b])
            let y = try m.networkOutput(try Tensor(shape: [1, rowSize], storage: row), tau: tau)
            var xn = [Double](repeating: 0, count: rowSize)
            for ch in 0 ..< C { for q in 0 ..< P { xn[q * C + ch] = model.centerInputSample ? 2 * row[ch * P + q] - 1 : row[ch * P + q] } }
            let y64 = ref.forward(xn, tau: [tau], labels: labels.map { [$0[b]] } ?? (c.classCount > 0 ? [c.classCount] : nil))
            for ch in 0 ..< C { for q in 0 ..< P {
                let want = out.values[(k * B + b) * rowSize + ch * P + q]
                worst32 = max(worst32, abs(y[ch * P + q] - want))
                worst64 = max(worst64, abs(y64[q * C + ch] - want))
                scale = max(scale, abs(want))
            } }
        }
    }
    return (worst32 / scale, worst64 / scale)
}

@Suite("diffusers UNet2DModel checkpoints") struct DiffusersTests {
    /// Our forward pass through the loader against diffusers' (torch 2.15, diffusers 0.42.1, float32)
    /// on six configurations, τ ∈ {0, 17, 500, 999}. Measured: at most 1.1e-6 of the output scale
    /// (max |ours − diffusers| / max |diffusers|); bound 1e-5: both sides round every layer to float32
    /// (unit roundoff 6e-8, amplified by a few dozen layers, the GroupNorm divisions and the softmax)
    /// and PyTorch computes the sinusoid's phase `τ · f` in float32 (up to `999 · 2⁻²⁴ ≈ 6e-5` rad in a
    /// feature) where we use float64. The float64 network on the same weights is held to the same
    /// bound (its difference is diffusers' rounding alone, and measures the same).
    @Test(arguments: ["plain", "attention", "classes", "centered", "heads", "ddpm"])
    func forwardMatchesDiffusers(_ name: String) throws {
        let e = try parityError(name)
        print("diffusers parity \(name): float32 \(e.float32), float64 network \(e.float64)")
        #expect(e.float32 <= 1e-5, "\(name): relative error \(e.float32)")
        #expect(e.float64 <= 1e-5, "\(name): relative error (float64 network) \(e.float64)")
    }

    /// A tiny UNet2DModel trained with diffusers (peer script `trained`), sampled by diffusers'
    /// DDIMScheduler (10 steps 900 … 0, η = 0, no clipping, final ᾱ = 1) and by our PCSampler with
    /// the DDIM predictor on the scheduler's own steps (`time(ofStep:)`, then to t = 0) from the same
    /// latents: the same samples to 1e-4 of their scale (float32 network and scheduler arithmetic in
    /// diffusers over 10 steps; our DDIM coefficients are float64).
    @Test func ddimOnSchedulerStepsMatchesDiffusers() throws {
        let folder = fixtures + "/trained"
        let model = try DiffusersUNet.load(folder)
        let ref = try Safetensors.read(folder + "/ddim.safetensors")
        let latents = try ref.tensor(named: "latents"), steps = try ref.tensor(named: "timesteps").values.map { Int($0) }
        let want = try ref.tensor(named: "samples").values
        let times = try steps.map { try #require(model.time(ofStep: $0)) } + [0]
        let n = latents.shape[0], size = latents.values.count / n
        let sampler = PCSampler(sde: try VPSDE(betaMin: 0.1, betaMax: 20), score: model, grid: try TimeGrid(times),
                                predictor: try DDIM(eta: 0), corrector: NoCorrector(), denoising: .none)
        var rng = RandomSource(seed: 1)
        let got = try sampler.sample(from: try Tensor(shape: [n, size], storage: latents.values), using: &rng).samples.storage
        let err = zip(got, want).map { abs($0 - $1) }.max()!, scale = want.map(abs).max()!
        print("diffusers DDIM parity (trained model, 10 steps): max error \(err), scale \(scale)")
        #expect(err <= 1e-4 * scale, "max error \(err), scale \(scale)")
    }

    /// A bare folder with a `scheduler_config.json` beside it: cosine betas → our cosine VP, v-prediction.
    @Test func schedulerConfigBesideTheModel() throws {
        let m = try DiffusersUNet.load(fixtures + "/centered")
        #expect(m.scheduler.betaSchedule == .squaredcosCapV2)
        #expect(m.scheduler.prediction == .vPrediction)
        #expect(m.sde == .defaultCosineVP)
        #expect(m.centerInputSample)
        let plain = try DiffusersUNet.load(fixtures + "/plain")
        #expect(plain.sde == .vp(betaMin: 0.1, betaMax: 20))
        #expect(plain.scheduler.prediction == .epsilon)
    }

    /// ᾱ-matched time: at `time(ofStep: i)` the network sees τ = i and σ = √(1 − ᾱ_i), for the linear
    /// and the cosine schedule; τ increases with t; steps beyond the cosine VP's T = 0.9946 are nil.
    @Test func alphaBarMatchedTimeIsExactOnSchedulerSteps() throws {
        for folder in ["plain", "centered"] {
            let m = try DiffusersUNet.load(fixtures + "/" + folder)
            let ab = m.scheduler.alphasCumprod, sde = try m.sde.make()
            for i in [0, 1, 10, 250, 500, 900, 990] {
                let t = try #require(m.time(ofStep: i))
                #expect(abs(m.networkTime(at: t) - Double(i)) <= 1e-6, "\(folder) step \(i): τ = \(m.networkTime(at: t))")
                let std = sde.marginal(at: t).std
                #expect(abs(std - (1 - ab[i]).squareRoot()) <= 1e-9, "\(folder) step \(i)")
            }
            var last = -2.0
            for t in stride(from: 1e-4, through: sde.T, by: 0.01) { let tau = m.networkTime(at: t); #expect(tau > last); last = tau }
        }
        let cos = try DiffusersUNet.load(fixtures + "/centered")
        #expect(cos.time(ofStep: 993) != nil)
        #expect(cos.time(ofStep: 995) == nil)
        #expect(cos.time(ofStep: 999) == nil)
    }

    /// ε-, v- and x₀-prediction → score: s = −ε̂/σ with ε̂ = o, σ x + m o, (x − m o)/σ.
    @Test func predictionTypesGiveTheScore() throws {
        let base = try DiffusersUNet.load(fixtures + "/plain")
        let c = base.configuration, n = 2, size = c.channels * c.imageSize * c.imageSize
        let x = try Tensor(shape: [n, size], storage: testValues(n * size, seed: 3))
        let t = 0.42
        let (m, std) = try base.sde.make().marginal(at: t)
        let o = try base.networkOutput(x, tau: base.networkTime(at: t))
        for p in DiffusersScheduler.Prediction.allCases {
            var s = base.scheduler; s.prediction = p
            let model = try DiffusersScore(network: base.network, scheduler: s)
            let score = try model.score(x, at: t)
            for i in 0 ..< x.count {
                let e: Double
                switch p {
                case .epsilon: e = o[i]
                case .vPrediction: e = std * x.storage[i] + m * o[i]
                case .sample: e = (x.storage[i] - m * o[i]) / std
                }
                #expect(abs(score.storage[i] + e / std) <= 1e-12 * max(1, abs(e / std)))
            }
        }
    }

    /// The vector–Jacobian product against central differences of the score (float32 network: step
    /// 1e-2 on inputs of order 1, tolerance 2e-3 of the scale), for ε-, v- and x₀-prediction and
    /// `center_input_sample`; the score part equals ``DiffusersScore/score(_:at:)``.
    @Test func vectorJacobianProductMatchesDifferences() throws {
        for folder in ["attention", "centered"] {
            let base = try DiffusersUNet.load(fixtures + "/" + folder)
            let c = base.configuration, size = c.channels * c.imageSize * c.imageSize
            let x = try Tensor(shape: [1, size], storage: testValues(size, seed: 13))
            let u = try Tensor(shape: [1, size], storage: testValues(size, seed: 14))
            for p in DiffusersScheduler.Prediction.allCases {
                var s = base.scheduler; s.prediction = p
                let model = try DiffusersScore(network: base.network, scheduler: s, timeMap: base.timeMap, centerInputSample: base.centerInputSample)
                let t = 0.3
                let (score, vjp) = try model.scoreAndVJP(x, at: t, cotangent: u)
                #expect(score.storage == (try model.score(x, at: t)).storage)
                // uᵀ s(x + h e_i) differences for a few coordinates.
                var worst = 0.0, scale = 0.0
                for i in Swift.stride(from: 0, to: size, by: max(1, size / 6)) {
                    let h = 1e-2
                    var xp = x, xm = x
                    xp.storage[i] += h; xm.storage[i] -= h
                    let sp = try model.score(xp, at: t).storage, sm = try model.score(xm, at: t).storage
                    let num = (0 ..< size).reduce(0.0) { $0 + u.storage[$1] * (sp[$1] - sm[$1]) } / (2 * h)
                    worst = max(worst, abs(num - vjp.storage[i])); scale = max(scale, abs(num))
                }
                #expect(worst <= 2e-3 * max(scale, 1), "\(folder) \(p): \(worst) of \(scale)")
            }
        }
    }

    /// Our U-Net written as a diffusers pipeline folder and read back: the same network output and
    /// score (the writer's time scale 999 is restored from our metadata). The folder and its expected
    /// outputs stay in `/tmp/scoresde-diffusers-roundtrip` for `diffusers_parity.py check`.
    @Test func writerFolderForDiffusers() throws {
        let c = UNetConfiguration(imageSize: 8, channels: 3, blockOutChannels: [8, 16], layersPerBlock: 1,
                                  attentionLevels: [false, true], normGroups: 4, classCount: 3, flipSinToCos: false, freqShift: 1)
        let model = try UNetScore(configuration: c, sde: .vp(betaMin: 0.1, betaMax: 20), seed: 11).conditioned(on: 2)
        let dir = "/tmp/scoresde-diffusers-roundtrip"
        try? FileManager.default.removeItem(atPath: dir)
        try DiffusersUNet.write(model, to: dir)
        for f in ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/" + f), "\(f)")
        }
        let back = try DiffusersUNet.load(dir).conditioned(on: 2)
        #expect(back.configuration == c)
        #expect(back.network.parameters == model.parameters)
        #expect(back.timeMap == .affine(scale: 999, shift: 0))
        let n = 2, size = 3 * 8 * 8
        let x = try Tensor(shape: [n, size], storage: testValues(n * size, seed: 5))
        for t in [0.01, 0.5, 1.0] {
            // −o/σ here, o · (−1/σ) in UNetScore: the same float32 network output, rounded differently.
            let a = try back.score(x, at: t).storage, b = try model.score(x, at: t).storage
            #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-14 * max(1, abs($1)) }, "t = \(t)")
        }
        // Expected outputs for the peer script: diffusers' model(x, τ, class_labels) must give these.
        let taus = [0.0, 17, 500, 999]
        var outs: [Double] = []
        for tau in taus { outs += try back.networkOutput(x, tau: tau) }
        try Safetensors.write([SafetensorsTensor(name: "x", shape: [n, 3, 8, 8], values: x.storage),
                               SafetensorsTensor(name: "timesteps", shape: [4], values: taus),
                               SafetensorsTensor(name: "labels", shape: [n], values: [2, 2]),
                               SafetensorsTensor(name: "out", shape: [4, n, 3, 8, 8], values: outs)],
                              dtype: .f32, to: dir + "/expected.safetensors")
        // Cosine: squaredcos_cap_v2.
        let cosModel = try UNetScore(configuration: c, sde: .defaultCosineVP, seed: 1)
        let d2 = tempDir("cos")
        defer { try? FileManager.default.removeItem(atPath: d2) }
        try DiffusersUNet.write(cosModel, to: d2)
        #expect(try DiffusersUNet.load(d2).scheduler.betaSchedule == .squaredcosCapV2)
    }

    /// What diffusers cannot express is refused, naming the option, and nothing is written.
    @Test func writerRefusesWhatDiffusersCannotExpress() throws {
        let c = UNetConfiguration(imageSize: 8, channels: 1, blockOutChannels: [8], layersPerBlock: 1, normGroups: 4)
        let cases: [(UNetScore, String)] = [
            (try UNetScore(configuration: c, sde: .vp(betaMin: 0.1, betaMax: 20), parameterization: .scaledScore, seed: 1), "scaled_score"),
            (try UNetScore(configuration: c, sde: .ve(sigmaMin: 0.01, sigmaMax: 50), seed: 1), "variance-preserving"),
            (try UNetScore(configuration: c, sde: .subVP(betaMin: 0.1, betaMax: 20), seed: 1), "variance-preserving"),
            (try UNetScore(configuration: c, sde: .vp(betaMin: 0.1, betaMax: 20), timeScale: 99.5, seed: 1), "timeScale"),
        ]
        for (model, word) in cases {
            let d = NSTemporaryDirectory() + "scoresde-diffusers-refused-\(UUID().uuidString)"
            do { try DiffusersUNet.write(model, to: d); Issue.record("written: \(word)") }
            catch let ScoreSDEError.invalidArgument(m) { #expect(m.contains(word), "\(m)") }
            #expect(!FileManager.default.fileExists(atPath: d))
        }
    }

    /// Bad folders: missing files, unsupported options (named, with the supported list), weights that
    /// disagree with the config (the tensor named).
    @Test func badFoldersAreTypedErrors() throws {
        func copy(_ name: String) throws -> String {
            let d = tempDir("bad")
            for f in ["config.json", "diffusion_pytorch_model.safetensors"] {
                try FileManager.default.copyItem(atPath: fixtures + "/\(name)/" + f, toPath: d + "/" + f)
            }
            return d
        }
        func edit(_ d: String, _ body: (inout [String: Any]) -> Void) throws {
            var o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/config.json"))) as! [String: Any]
            body(&o)
            try JSONSerialization.data(withJSONObject: o).write(to: URL(fileURLWithPath: d + "/config.json"))
        }
        func expectIO(_ d: String, _ words: [String], scheduler: DiffusersScheduler? = nil) {
            do { _ = try DiffusersUNet.load(d, scheduler: scheduler); Issue.record("loaded: \(words)") }
            catch let ScoreSDEError.io(_, m) { for w in words { #expect(m.contains(w), "\(m)") } }
            catch { Issue.record("\(error)") }
        }
        let missing = try copy("plain")
        try FileManager.default.removeItem(atPath: missing + "/diffusion_pytorch_model.safetensors")
        expectIO(missing, ["diffusion_pytorch_model.safetensors"])
        let noConfig = try copy("plain")
        try FileManager.default.removeItem(atPath: noConfig + "/config.json")
        expectIO(noConfig, ["config.json"])
        let block = try copy("plain")
        try edit(block) { $0["down_block_types"] = ["DownBlock2D", "CrossAttnDownBlock2D"] }
        expectIO(block, ["CrossAttnDownBlock2D", "Supported", "AttnDownBlock2D"])
        let pad = try copy("plain")
        try edit(pad) { $0["downsample_padding"] = 2 }
        expectIO(pad, ["downsample_padding"])
        let heads = try copy("attention")
        try edit(heads) { $0["attention_head_dim"] = 3 }
        expectIO(heads, ["attention_head_dim", "does not divide"])
        let option = try copy("plain")
        try edit(option) { $0["resnet_time_scale_shift"] = "scale_shift" }
        expectIO(option, ["resnet_time_scale_shift"])
        let shape = try copy("plain")
        try edit(shape) { $0["block_out_channels"] = [8, 32] }
        expectIO(shape, ["tensor", "disagree"])
        let layers = try copy("plain")
        try edit(layers) { $0["layers_per_block"] = 2 }
        expectIO(layers, ["missing tensor", "disagree"])
    }
}

import Foundation
import Testing
@testable import ScoreSDE

// The MLP's float32 compute option (issue 20, item 3): score, JVP and the training pass in float32
// against the float64 network on the same weights, to float32 rounding; float32 training against
// float64 training on the ring; model files and checkpoints keep the precision; exact resume.
//
// Tolerances. Float32's unit roundoff is u = 2⁻²⁴ ≈ 6e-8. The network rounds its inputs and weights
// once (relative u each) and then runs about 2L + 3 matrix products of inner length ≤ max(H, 2F, D)
// with float32 accumulation: rounding errors add like a random walk, ≈ √K · u relative per product
// (K · u in the worst case). For H = 64, L = 2 that is ≈ 7 · 8 · 6e-8 ≈ 3e-6 of the output's scale
// (typical), so relative 2e-5 of the largest |output| is a bound with margin that float64 rounding
// (1e-16) meets trivially and a wrong kernel (any error of order 1e-3 or more) fails by far. The
// backward pass adds as many products again plus the batch sums (√128 · u ≈ 7e-7): the gradient is
// checked norm-wise at 5e-5, the whole vector and each tensor. Measured: score and JVP 0.6–3.6e-7,
// gradients 1.2–3.0e-7 (about 4u): the bounds have a margin of 50–100.

private let vp = SDESpec.vp(betaMin: 0.1, betaMax: 20)

/// max |a − b| / max |b|.
private func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).map { abs($0 - $1) }.max()! / b.map(abs).max()!
}

/// ‖a − b‖ / ‖b‖.
private func normError(_ a: [Double], _ b: [Double]) -> Double {
    let d = zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }, n = b.reduce(0) { $0 + $1 * $1 }
    return (d / n).squareRoot()
}

private func tempPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-f32-\(getpid())-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

private func removeTemp(_ path: String) {
    try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
}

@Suite("MLP float32")
struct MLPFloat32Tests {
    /// A plain network, and a class-conditional one with the bounded output and a Gaussian base
    /// (every branch of the forward pass and the JVP).
    static func networks() throws -> [(String, MLPScore)] {
        let plain = try MLPScore(architecture: MLPArchitecture(rowShape: [1, 4, 4], hiddenWidth: 64, residualBlocks: 2, fourierFeatures: 16),
                                 sde: vp, seed: 3)
        var rng = RandomSource(seed: 8)
        let data = Tensor.standardNormal(shape: [200, 16], using: &rng)
        let rich = try MLPScore(architecture: MLPArchitecture(rowShape: [16], hiddenWidth: 64, residualBlocks: 2, fourierFeatures: 16,
                                                              classCount: 3, gaussianBase: true),
                                sde: vp, parameterization: .boundedNoisePrediction, noiseFloor: 0.05, seed: 4)
            .withGaussianBase(fittedTo: data, dequantizationLevels: nil)
        return [("plain", plain), ("conditional, bounded, Gaussian base", rich)]
    }

    @Test("score and JVP in float32 match float64 on the same weights to float32 rounding")
    func scoreAndJVPMatchFloat64() throws {
        for (name, m64) in try Self.networks() {
            let m32 = m64.withPrecision(.float32)
            #expect(m32.precision == .float32 && m64.precision == .float64)
            var rng = RandomSource(seed: 5)
            let x = Tensor.standardNormal(shape: [300] + m64.architecture.rowShape, using: &rng)
            let v = Tensor.standardNormal(shape: x.shape, using: &rng)
            for t in [1e-3, 0.1, 0.5, 1.0] {
                let labels: [Int?] = m64.architecture.classCount > 0 ? (0 ..< 300).map { $0 % 4 == 3 ? nil : $0 % 4 } : [nil]
                let (s64, j64) = try m64.scoreAndJVP(x, at: t, direction: v, labels: labels)
                let (s32, j32) = try m32.scoreAndJVP(x, at: t, direction: v, labels: labels)
                let s32b = try m32.score(x, at: t, labels: labels)
                let es = relativeError(s32.storage, s64.storage), ej = relativeError(j32.storage, j64.storage)
                if measureBias { print("[f32] \(name) t=\(t): score \(es), jvp \(ej)") }
                #expect(es <= 2e-5, "\(name), t = \(t): score relative error \(es)")
                #expect(ej <= 2e-5, "\(name), t = \(t): JVP relative error \(ej)")
                // It really is float32 (not the float64 path), and score alone = the score of scoreAndJVP.
                #expect(es > 1e-12, "\(name), t = \(t): float32 result equals float64 (\(es))")
                #expect(s32b.storage == s32.storage)
            }
        }
    }

    @Test("the float32 training pass: loss and gradient match float64 to float32 rounding")
    func trainingPassMatchesFloat64() throws {
        for (name, m64) in try Self.networks() {
            let m32 = m64.withPrecision(.float32)
            let loss = try DSMLoss(sde: vp.make(), reduceMean: false)
            var rng = RandomSource(seed: 6)
            let x0 = Tensor.standardNormal(shape: [128] + m64.architecture.rowShape, using: &rng)
            var batch = try loss.drawBatch(step: 3, seed: 9, batchSize: 128, dataRows: 128, rowShape: m64.architecture.rowShape)
            if m64.architecture.classCount > 0 { batch.labels = (0 ..< 128).map { $0 % 4 } }
            let data = batch.gather(x0)
            let (l64, g64) = try m64.dsmLossAndGradient(loss, data: data, batch: batch)
            let (l32, g32) = try m32.dsmLossAndGradient(loss, data: data, batch: batch)
            #expect(abs(l32 - l64) <= 2e-5 * abs(l64), "\(name): loss \(l32) vs \(l64)")
            let e = normError(g32, g64)
            if measureBias { print("[f32] \(name): loss \(abs(l32 - l64) / abs(l64)), gradient \(e)") }
            #expect(e <= 5e-5, "\(name): gradient relative error \(e) (norm-wise)")
            #expect(e > 1e-12, "\(name): the float32 gradient equals the float64 one")
            // Every tensor's gradient, not only the largest ones.
            for spec in m64.specs where spec.trainable {
                let a = Array(g32[spec.range]), b = Array(g64[spec.range])
                let eb = normError(a, b)
                if measureBias { print("[f32] \(name): \(spec.name) \(eb)") }
                #expect(eb <= 5e-5, "\(name): \(spec.name) gradient relative error \(eb)")
            }
        }
    }

    /// Two runs on the ring (same seed, so the same minibatches, times and noise), one per
    /// precision, 600 steps. Their mean losses over the last 150 steps agree within 3 standard
    /// errors (of each window's mean, combined), and on 4096 fresh `(x₀, t, z)` shared by both
    /// networks and the ring's exact score, the two networks' excess DSM loss over the exact
    /// score's agree within 3 standard errors (combined). Measured (SCORESDE_MEASURE_BIAS=1): window
    /// means 0.35948 ± 0.0043 for both (equal to 1e-9), excess 0.06490 ± 0.0046 for both over a
    /// floor of 0.288 (a float64 run with seed 2: 0.06493): float32 rounding moves the trained
    /// network far less than the evaluation's own noise.
    @Test("float32 training on the ring reaches the float64 run's loss")
    func float32TrainingMatchesFloat64() throws {
        var rng = RandomSource(seed: 12)
        let ring = GaussianMixture.ring()
        let data = ring.sample(count: 4000, using: &rng)
        func run(_ precision: MLPPrecision, seed: UInt64 = 1) throws -> (losses: [Double], model: MLPScore) {
            let config = TrainingConfiguration(sde: vp, architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 64, residualBlocks: 2, fourierFeatures: 16, fourierScale: 4),
                                               seed: seed, batchSize: 128, learningRate: 2e-3, warmup: 50, emaRate: 0.99, reduceMean: true,
                                               eps: 1e-3, precision: precision)
            let trainer = try Trainer(configuration: config, data: data)
            let losses = try trainer.train(steps: 600)
            return (losses, try trainer.emaModel)
        }
        let (l64, m64) = try run(.float64), (l32, m32) = try run(.float32)
        let other = measureBias ? try run(.float64, seed: 2).model : m64
        #expect(m32.precision == .float32)
        func window(_ l: [Double]) -> (mean: Double, se: Double) {
            let w = Array(l.suffix(150)), n = Double(w.count), mean = w.reduce(0, +) / n
            let v = w.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
            return (mean, (v / n).squareRoot())
        }
        let (a, b) = (window(l32), window(l64))
        if measureBias { print("[f32] window float32 \(a), float64 \(b)") }
        #expect(abs(a.mean - b.mean) <= 3 * (a.se * a.se + b.se * b.se).squareRoot(),
                "last-150-step mean loss: float32 \(a.mean) ± \(a.se), float64 \(b.mean) ± \(b.se)")
        #expect(l32.allSatisfy(\.isFinite) && a.mean < 0.8 * window(Array(l32.prefix(150))).mean)

        // Excess over the exact score on shared fresh rows.
        let sde = try vp.make(), exact = GaussianMixtureScore(ring, diffusedBy: sde)
        var diffs32 = [Double](), diffs64 = [Double](), diffsOther = [Double](), floor = 0.0
        var erng = RandomSource(seed: 99)
        for k in 0 ..< 16 {
            let t = 1e-3 + (Double(k) + 0.5) / 16 * (1 - 1e-3)
            let (m, s) = sde.marginal(at: t)
            let x0 = ring.sample(count: 256, using: &erng)
            var z = Tensor(zeros: [256, 2]); z.fillStandardNormal(draw: UInt64(k), erng.derived(7))
            var xt = x0; for i in 0 ..< xt.count { xt.storage[i] = m * x0.storage[i] + s * z.storage[i] }
            let s32 = try m32.score(xt, at: t), s64 = try m64.score(xt, at: t), se = try exact.score(xt, at: t)
            let so = try other.score(xt, at: t)
            for r in 0 ..< 256 {
                var la = 0.0, lb = 0.0, lc = 0.0, lo = 0.0
                for j in 0 ..< 2 {
                    let zz = z.storage[r * 2 + j]
                    let ea = s32.storage[r * 2 + j] * s + zz, eb = s64.storage[r * 2 + j] * s + zz, ec = se.storage[r * 2 + j] * s + zz
                    let eo = so.storage[r * 2 + j] * s + zz
                    la += ea * ea; lb += eb * eb; lc += ec * ec; lo += eo * eo
                }
                diffs32.append(0.5 * (la - lc)); diffs64.append(0.5 * (lb - lc)); diffsOther.append(0.5 * (lo - lc)); floor += 0.5 * lc
            }
        }
        func meanSE(_ d: [Double]) -> (mean: Double, se: Double) {
            let n = Double(d.count), mean = d.reduce(0, +) / n
            return (mean, (d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1) / n).squareRoot())
        }
        let (e32, e64) = (meanSE(diffs32), meanSE(diffs64))
        floor /= Double(diffs32.count)
        if measureBias { print("[f32] excess float32 \(e32), float64 \(e64), float64 seed 2 \(meanSE(diffsOther)), floor \(floor)") }
        #expect(abs(e32.mean - e64.mean) <= 3 * (e32.se * e32.se + e64.se * e64.se).squareRoot(),
                "excess over the exact score's DSM loss (floor \(floor)): float32 \(e32.mean) ± \(e32.se), float64 \(e64.mean) ± \(e64.se)")
    }

    @Test("model files and checkpoints keep the precision; float64 files carry no precision key")
    func filesKeepThePrecision() throws {
        let (_, m64) = try Self.networks()[0]
        let m32 = m64.withPrecision(.float32)
        let path = tempPath("m.safetensors")
        defer { removeTemp(path) }
        var rng = RandomSource(seed: 2)
        let x = Tensor.standardNormal(shape: [20, 1, 4, 4], using: &rng)
        for dtype in [Safetensors.DType.f64, .f32] {
            try m32.save(to: path, dtype: dtype)
            #expect(try Safetensors.read(path).metadata["model.precision"] == "float32")
            let back = try MLPScore.load(from: path)
            #expect(back.precision == .float32)
            if dtype == .f64 { #expect(try back.score(x, at: 0.3).storage == m32.score(x, at: 0.3).storage) }
        }
        try m64.save(to: path)
        #expect(try Safetensors.read(path).metadata["model.precision"] == nil)
        #expect(try MLPScore.load(from: path).precision == .float64)

        // A float32 run's checkpoint: its configuration and both models are float32.
        let config = TrainingConfiguration(sde: vp, architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 16, residualBlocks: 1, fourierFeatures: 4),
                                           seed: 5, batchSize: 32, learningRate: 1e-3, warmup: 5, emaRate: 0.99, reduceMean: true, precision: .float32)
        let data = GaussianMixture.ring().sample(count: 100, using: &rng)
        let trainer = try Trainer(configuration: config, data: data)
        try trainer.train(steps: 3)
        #expect(try trainer.model.precision == .float32 && trainer.emaModel.precision == .float32)
        try trainer.save(to: path)
        let resumed = try Trainer.resume(from: path, data: data)
        #expect(resumed.configuration.precision == .float32 && resumed.configuration.architecture == config.architecture)
        #expect(try MLPScore.load(from: path).precision == .float32)

        // An unknown precision is a corrupt file, named.
        var file = try Safetensors.read(path)
        var meta = file.metadata
        meta["model.precision"] = "float16"
        meta[ModelFile.checksumKey] = String(format: "%08x", ModelFile.checksum(tensors: file.tensors, metadata: meta))
        try Safetensors.encode(file.tensors, metadata: meta).write(to: URL(fileURLWithPath: path))
        file = try Safetensors.read(path)
        do { _ = try MLPScore.load(file); Issue.record("float16 loaded") }
        catch ScoreSDEError.io(_, let message) { #expect(message.contains("model.precision"), "\(message)") }
    }

    @Test("resume of a float32 run is exact: 2k steps equal k steps, save, resume, k steps — bitwise")
    func float32ResumeIsExact() throws {
        var rng = RandomSource(seed: 4)
        let data = GaussianMixture.ring().sample(count: 300, using: &rng)
        let config = TrainingConfiguration(sde: vp, architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 32, residualBlocks: 2, fourierFeatures: 8),
                                           seed: 5, batchSize: 64, learningRate: 1e-3, warmup: 5, emaRate: 0.99, reduceMean: true,
                                           gradientBlockSize: 32, precision: .float32)
        let straight = try Trainer(configuration: config, data: data)
        let all = try straight.train(steps: 24)
        let first = try Trainer(configuration: config, data: data)
        let a = try first.train(steps: 12)
        let path = tempPath("resume.safetensors")
        defer { removeTemp(path) }
        try first.save(to: path)
        let resumed = try Trainer.resume(from: path, data: data)
        let b = try resumed.train(steps: 12)
        #expect((a + b).map(\.bitPattern) == all.map(\.bitPattern), "loss sequences")
        #expect(resumed.parameters.map(\.bitPattern) == straight.parameters.map(\.bitPattern), "weights")
        #expect(resumed.ema.values.map(\.bitPattern) == straight.ema.values.map(\.bitPattern), "EMA weights")
        #expect(resumed.optimizer.firstMoment == straight.optimizer.firstMoment && resumed.optimizer.secondMoment == straight.optimizer.secondMoment)
        // And the float32 run is not the float64 one.
        var c64 = config
        c64.precision = .float64
        let f64 = try Trainer(configuration: c64, data: data)
        let l64 = try f64.train(steps: 24)
        #expect(l64 != all)
        #expect(zip(l64, all).allSatisfy { abs($0 - $1) <= 1e-3 * abs($1) }, "float32 and float64 losses of the first steps should agree closely")
    }
}

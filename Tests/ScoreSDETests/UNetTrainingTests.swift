import Foundation
import Testing
@testable import ScoreSDE

// Training a U-Net (issue 20 item 5/6): the float32 DSM pass against the per-row loss and central
// differences, exact resume from F32 checkpoints, and the DSM floor on an exact-score mixture.

@Suite("U-Net training") struct UNetTrainingTests {
    static let sde = SDESpec.vp(betaMin: 0.1, betaMax: 20)
    static let unet = UNetConfiguration(imageSize: 4, channels: 1, blockOutChannels: [16, 16], layersPerBlock: 1,
                                        normGroups: 4)

    /// Two Gaussians in image shape 1×4×4: means ±0.8 · checkerboard, isotropic std 0.3.
    static func mixture() throws -> GaussianMixture {
        let board = (0 ..< 16).map { q in ((q / 4 + q % 4) % 2 == 0 ? 0.8 : -0.8) }
        return try GaussianMixture(means: [board, board.map { -$0 }], isotropicStds: [0.3, 0.3])
    }

    static func trainingData(_ rows: Int, seed: UInt64) throws -> Tensor {
        var rng = RandomSource(seed: seed)
        return try mixture().sample(count: rows, using: &rng).reshaped([rows, 1, 4, 4])
    }

    static func options(seed: UInt64 = 3, batch: Int = 64, block: Int? = nil) -> DSMTrainingOptions {
        DSMTrainingOptions(sde: sde, seed: seed, batchSize: batch, learningRate: 2e-3, warmup: 20, emaRate: 0.99,
                           eps: 1e-3, gradientBlockSize: block)
    }

    /// Per-row DSM terms `½ Σ (s·std + z)²` of `model` and of the exact mixture score on the same
    /// `(x₀, t, z)`: `evalRows` rows at 16 stratified times in [1e-3, 1].
    static func pairedExcess(_ model: some ScoreModel, evalRows: Int = 4096, seed: UInt64 = 99) throws -> (mean: Double, se: Double, floor: Double) {
        let sdeF = try sde.make(), exact = GaussianMixtureScore(try mixture(), diffusedBy: sdeF)
        let perTime = evalRows / 16
        var rng = RandomSource(seed: seed)
        var diffs = [Double](), floors = [Double]()
        for k in 0 ..< 16 {
            let t = 1e-3 + (Double(k) + 0.5) / 16 * (1 - 1e-3)
            let (m, s) = sdeF.marginal(at: t)
            let x0 = try mixture().sample(count: perTime, using: &rng)
            var z = Tensor(zeros: [perTime, 16]); z.fillStandardNormal(draw: UInt64(k), rng.derived(7))
            var xt = x0; for i in 0 ..< xt.count { xt.storage[i] = m * x0.storage[i] + s * z.storage[i] }
            let a = try model.score(xt.reshaped([perTime, 1, 4, 4]), at: t), b = try exact.score(xt, at: t)
            for r in 0 ..< perTime {
                var la = 0.0, lb = 0.0
                for j in 0 ..< 16 {
                    let ea = a.storage[r * 16 + j] * s + z.storage[r * 16 + j], eb = b.storage[r * 16 + j] * s + z.storage[r * 16 + j]
                    la += ea * ea; lb += eb * eb
                }
                diffs.append(0.5 * (la - lb)); floors.append(0.5 * lb)
            }
        }
        let n = Double(diffs.count), mean = diffs.reduce(0, +) / n
        let v = diffs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        return (mean, (v / n).squareRoot(), floors.reduce(0, +) / n)
    }

    /// The float32 DSM pass against the library's per-row loss (``DSMLoss/loss(of:data:times:noise:)``,
    /// which scores one row at a time through ``UNetScore/score(_:at:)``), and its gradient against
    /// central differences of that pass along two directions (the gradient's own and a random one).
    /// Float32 rounding of a loss of order 10 is ~1e-6, so with h = 1e-2 the differences carry
    /// ~1e-4 of noise on derivatives of order 1–100: 1e-3 relative is the tolerance.
    @Test func dsmPassMatchesPerRowLossAndCentralDifferences() throws {
        let c = UNetConfiguration(imageSize: 4, channels: 2, blockOutChannels: [8, 8], layersPerBlock: 1, attentionLevels: [false, true],
                                  normGroups: 4, classCount: 2)
        let model = try UNetScore(configuration: c, sde: Self.sde, seed: 5)
        let sdeF = try Self.sde.make()
        let loss = try DSMLoss(sde: sdeF, likelihoodWeighting: true)
        let n = 6, d = 32
        var rng = RandomSource(seed: 11).stream(draw: 0, row: 0)
        let x0 = try Tensor(shape: [n, 2, 4, 4], storage: (0 ..< n * d).map { _ in rng.normal() * 0.7 })
        var noise = Tensor(zeros: [n, 2, 4, 4]); noise.fillStandardNormal(draw: 1, RandomSource(seed: 11))
        let times = (0 ..< n).map { 0.05 + 0.9 * Double($0) / Double(n - 1) }
        let labels = [Int](repeating: 1, count: n)
        let ws = model.makeTrainingWorkspace(rows: n)
        func pass(_ p: [Float], gradient: inout [Float]) throws -> Double {
            try p.withUnsafeBufferPointer { pp in
                try x0.storage.withUnsafeBufferPointer { xp in
                    try noise.storage.withUnsafeBufferPointer { zp in
                        try gradient.withUnsafeMutableBufferPointer { gp in
                            try model.addDSMGradient(loss, parameters: pp.baseAddress!, x0: xp.baseAddress!, times: times, noise: zp.baseAddress!,
                                                     labels: labels, randomSeed: 0, workspace: ws, gradient: gp.baseAddress!)
                        }
                    }
                }
            }
        }
        var g = [Float](repeating: 0, count: model.parameters.count)
        let value = try pass(model.parameters, gradient: &g)
        let perRow = try loss.loss(of: model.conditioned(on: 1), data: x0, times: times, noise: noise)
        #expect(abs(value - perRow) <= 1e-5 * abs(perRow), "batched \(value) vs per-row \(perRow)")
        let gNorm = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(gNorm > 0)
        let random = (0 ..< g.count).map { _ in rng.normal() }
        let rNorm = random.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for direction in [g.map { Double($0) / gNorm }, random.map { $0 / rNorm }] {
            let h = 1e-2
            var scratch = g
            let plus = try pass(zip(model.parameters, direction).map { Float(Double($0) + h * $1) }, gradient: &scratch)
            let minus = try pass(zip(model.parameters, direction).map { Float(Double($0) - h * $1) }, gradient: &scratch)
            let numeric = (plus - minus) / (2 * h)
            let analytic = zip(g, direction).reduce(0.0) { $0 + Double($1.0) * $1.1 }
            #expect(abs(numeric - analytic) <= 1e-3 * max(abs(analytic), 1e-2 * gNorm), "directional derivative \(analytic) vs central difference \(numeric)")
        }
    }

    /// k steps, a checkpoint (F32: the network's precision), a resume and k more steps give the
    /// bits of 2k uninterrupted steps; the checkpoint's EMA weights load as the model.
    @Test func resumeFromFloat32CheckpointIsExact() throws {
        let data = try Self.trainingData(256, seed: 2)
        let config = UNetTrainingConfiguration(unet: Self.unet, options: Self.options(batch: 16, block: 8))
        let straight = try UNetTrainer(configuration: config, data: data)
        let lossesStraight = try straight.train(steps: 8)
        let first = try UNetTrainer(configuration: config, data: data)
        let lossesA = try first.train(steps: 4)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("unet-resume-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try first.save(to: path)
        let file = try Safetensors.read(path)
        #expect(file.tensors.allSatisfy { $0.dtype == .f32 } && file.metadata["model"] == "unet" && file.metadata["format.content"] == "checkpoint")
        let resumed = try UNetTrainer.resume(from: path, data: data)
        #expect(resumed.completedSteps == 4 && resumed.configuration == config)
        let lossesB = try resumed.train(steps: 4)
        #expect((lossesA + lossesB).map(\.bitPattern) == lossesStraight.map(\.bitPattern))
        #expect(resumed.parameters.map(\.bitPattern) == straight.parameters.map(\.bitPattern))
        #expect(resumed.ema.values.map(\.bitPattern) == straight.ema.values.map(\.bitPattern))
        #expect(resumed.optimizer.secondMoment.map(\.bitPattern) == straight.optimizer.secondMoment.map(\.bitPattern))
        try first.save(to: path)
        let loaded = try UNetScore.read(path)
        #expect(loaded.parameters == first.ema.values && loaded.parameters != first.parameters)
        #expect(try UNetScore.read(path, weights: .raw).parameters == first.parameters)
        // A damaged checkpoint is refused by its checksum.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 3] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(throws: ScoreSDEError.self) { try UNetTrainer.resume(from: path, data: data) }
        #expect(throws: ScoreSDEError.self) { try UNetScore.read(path) }
    }

    /// Three processes (threads with in-process communicators) sharing each step's gradient blocks
    /// end with the bits of one process, as the MLP does (``GradientBlockReducer``).
    @Test func dataParallelStepsMatchOneProcess() throws {
        let data = try Self.trainingData(128, seed: 4)
        let config = UNetTrainingConfiguration(unet: Self.unet, options: Self.options(batch: 24, block: 8))
        let one = try UNetTrainer(configuration: config, data: data)
        let losses = try one.train(steps: 3)
        let shared = try DataParallelTrainingTests.onRanks(3) {
            let t = try UNetTrainer(configuration: config, data: data)
            let l = try t.train(steps: 3)
            return (l.map(\.bitPattern), t.parameters.map(\.bitPattern), t.ema.values.map(\.bitPattern))
        }
        for (r, s) in shared.enumerated() {
            #expect(s.0 == losses.map(\.bitPattern), "rank \(r) losses")
            #expect(s.1 == one.parameters.map(\.bitPattern), "rank \(r) weights")
            #expect(s.2 == one.ema.values.map(\.bitPattern), "rank \(r) EMA")
        }
    }

    @Test func badInputsThrowTypedErrors() throws {
        let good = try Self.trainingData(32, seed: 5)
        let config = UNetTrainingConfiguration(unet: Self.unet, options: Self.options())
        // Images of another size or channel count.
        do { _ = try UNetTrainer(configuration: config, data: Tensor(zeros: [8, 1, 8, 8])); Issue.record("8x8 images accepted") }
        catch ScoreSDEError.shapeMismatch {} catch { Issue.record("\(error)") }
        do { _ = try UNetTrainer(configuration: config, data: Tensor(zeros: [8, 3, 4, 4])); Issue.record("3 channels accepted") }
        catch ScoreSDEError.shapeMismatch {} catch { Issue.record("\(error)") }
        var nan = good; nan.storage[7] = .nan
        do { _ = try UNetTrainer(configuration: config, data: nan); Issue.record("NaN data accepted") }
        catch ScoreSDEError.nonFinite {} catch { Issue.record("\(error)") }
        // A class-conditional U-Net without labels, and labels for an unconditional one.
        var conditional = Self.unet; conditional.classCount = 2
        #expect(throws: ScoreSDEError.self) { try UNetTrainer(configuration: UNetTrainingConfiguration(unet: conditional, options: Self.options()), data: good) }
        #expect(throws: ScoreSDEError.self) { try UNetTrainer(configuration: config, data: good, labels: [Int](repeating: 0, count: 32)) }
        // An MLP checkpoint is not a U-Net checkpoint, and a U-Net weights file is not a checkpoint.
        let dir = FileManager.default.temporaryDirectory
        let mlpPath = dir.appendingPathComponent("mlp-\(UUID().uuidString).safetensors").path
        let weightsPath = dir.appendingPathComponent("unet-w-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: mlpPath); try? FileManager.default.removeItem(atPath: weightsPath) }
        let mlp = try Trainer(configuration: TrainingConfiguration(sde: Self.sde, architecture: MLPArchitecture(rowShape: [1, 4, 4], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4)), data: good)
        try mlp.save(to: mlpPath)
        do { _ = try UNetTrainer.resume(from: mlpPath, data: good); Issue.record("MLP checkpoint resumed as a U-Net") }
        catch ScoreSDEError.io(_, let message) { #expect(message.contains("not a U-Net checkpoint")) } catch { Issue.record("\(error)") }
        try UNetScore(configuration: Self.unet, sde: Self.sde, seed: 1).write(to: weightsPath)
        do { _ = try UNetTrainer.resume(from: weightsPath, data: good); Issue.record("weights file resumed") }
        catch ScoreSDEError.io(_, let message) { #expect(message.contains("not a training checkpoint")) } catch { Issue.record("\(error)") }
    }

    /// The DSM floor (issue 20, item 6): for data from an exact mixture, the expected DSM loss of a
    /// network exceeds that of the exact score by `E = E_t[λ(t) E‖s_θ − s*‖²] / 2 ≥ 0`. Estimated
    /// on 4096 fresh `(x₀, t, z)` shared by both scores (paired differences, standard error from
    /// their spread). Criterion: "at the floor" means `E + 3 s.e. ≤ 5%` of the floor (a finite
    /// network trained briefly is not exact; 5% of the loss is far below the untrained excess,
    /// ~65% here). The model trained 400 steps meets it; the same run stopped at 40 steps (10×
    /// fewer) fails it by many standard errors — both are asserted, so the criterion has power.
    @Test func reachesTheDSMFloorAndTenTimesFewerStepsDoesNot() throws {
        let data = try Self.trainingData(2048, seed: 1)
        let trainer = try UNetTrainer(configuration: UNetTrainingConfiguration(unet: Self.unet, options: Self.options()), data: data)
        try trainer.train(steps: 40)
        let early = try Self.pairedExcess(trainer.emaModel)
        try trainer.train(steps: 360)
        let late = try Self.pairedExcess(trainer.emaModel)
        let tolerance = 0.05 * late.floor
        #expect(late.mean + 3 * late.se <= tolerance, "400 steps: excess \(late.mean) ± \(late.se) over the floor \(late.floor)")
        #expect(early.mean - 3 * early.se > tolerance, "40 steps: excess \(early.mean) ± \(early.se) should fail the criterion")
    }
}

import Foundation
import Testing
@testable import ScoreSDE

// UNetScore: the Double ↔ Float32 boundary, the NCHW ↔ NHWC layout, the parameterizations, typed
// errors and the model file.

@Suite("U-Net score model") struct NetworksUNetScoreTests {
    static let config = UNetConfiguration(imageSize: 8, channels: 2, blockOutChannels: [8, 16], layersPerBlock: 1,
                                          attentionLevels: [false, true], normGroups: 4, classCount: 3)

    /// The score against a float64 network on the same (float32) weights, fed NHWC by hand:
    /// s = −ε̂/std for ε-prediction and +out/std for the scaled score; tolerance as in
    /// float32NetworkMatchesFloat64 (1e-4 of the output scale).
    @Test func scoreMatchesFloat64Network() throws {
        let c = Self.config, n = 3, S = c.imageSize, C = c.channels
        let sde = SDESpec.vp(betaMin: 0.1, betaMax: 20)
        let model = try UNetScore(configuration: c, sde: sde, seed: 4).conditioned(on: 1)
        let ref = try UNet<Double>(c)
        for i in 0 ..< ref.parameterCount { ref.parameters[i] = Double(model.parameters[i]) }
        let x = try Tensor(shape: [n, C, S, S], storage: testValues(n * C * S * S, seed: 8))
        let t = 0.37
        let s = try model.score(x, at: t)
        var xn = [Double](repeating: 0, count: x.count)
        for b in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< S * S { xn[(b * S * S + q) * C + ch] = x.storage[(b * C + ch) * S * S + q] } } }
        let y = ref.forward(xn, tau: [Double](repeating: 999 * t, count: n), labels: [1, 1, 1])
        let std = try sde.make().marginal(at: t).std
        var worst = 0.0, scale = 0.0
        for b in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< S * S {
            let want = -y[(b * S * S + q) * C + ch] / std
            worst = max(worst, abs(s.storage[(b * C + ch) * S * S + q] - want)); scale = max(scale, abs(want))
        } } }
        #expect(worst <= 1e-4 * scale, "max error \(worst), scale \(scale)")
        let scaled = try UNetScore(configuration: c, sde: sde, parameterization: .scaledScore, parameters: model.parameters).conditioned(on: 1)
        let s2 = try scaled.score(x, at: t)
        #expect(zip(s2.storage, s.storage).allSatisfy { abs($0 + $1) <= 1e-12 * max(1, abs($1)) })
    }

    /// Concurrent calls (each borrows its own network and oneDNN stream) give the serial bytes.
    @Test func concurrentCallsMatchSerial() throws {
        let c = Self.config
        let model = try UNetScore(configuration: c, sde: .vp(betaMin: 0.1, betaMax: 20), seed: 6)
        let x = try Tensor(shape: [64, 2, 8, 8], storage: testValues(64 * 128, seed: 9))
        let serial = try model.score(x, at: 0.3)
        let results = LockedResults(4)
        DispatchQueue.concurrentPerform(iterations: 4) { i in results.set(i, try? model.score(x, at: 0.3)) }
        for i in 0 ..< 4 { #expect(results.get(i) == serial) }
    }

    @Test func badInputsThrowTypedErrors() throws {
        let c = Self.config
        let model = try UNetScore(configuration: c, sde: .vp(betaMin: 0.1, betaMax: 20), seed: 1)
        #expect(throws: ScoreSDEError.self) { try model.score(Tensor(zeros: [2, 1, 8, 8]), at: 0.5) }   // wrong channels
        #expect(throws: ScoreSDEError.self) { try model.score(Tensor(zeros: [2, 2, 7, 7]), at: 0.5) }   // wrong size
        var bad = Tensor(zeros: [1, 2, 8, 8]); bad.storage[5] = .nan
        do { _ = try model.score(bad, at: 0.5); Issue.record("NaN input accepted") } catch ScoreSDEError.nonFinite {} catch { Issue.record("\(error)") }
        var p = model.parameters; p[3] = .infinity
        do { _ = try UNetScore(configuration: c, sde: .vp(betaMin: 0.1, betaMax: 20), parameters: p); Issue.record("Inf weight accepted") }
        catch ScoreSDEError.nonFinite {} catch { Issue.record("\(error)") }
        #expect(throws: ScoreSDEError.self) { try UNetScore(configuration: UNetConfiguration(imageSize: 28, blockOutChannels: [32, 64, 64, 64]), sde: .vp(betaMin: 0.1, betaMax: 20), seed: 1) }
        #expect(throws: ScoreSDEError.self) { try UNetScore(configuration: UNetConfiguration(blockOutChannels: [30, 60]), sde: .vp(betaMin: 0.1, betaMax: 20), seed: 1) }
        #expect(throws: ScoreSDEError.self) { try model.conditioned(on: 3) }
    }

    @Test func fileRoundTripAndInconsistentFiles() throws {
        let c = Self.config
        let model = try UNetScore(configuration: c, sde: .ve(sigmaMin: 0.01, sigmaMax: 50), parameterization: .scaledScore, seed: 2)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        try model.write(to: path)
        let back = try UNetScore.read(path)
        #expect(back.parameters == model.parameters)
        #expect(back.configuration == c && back.sde == model.sde && back.parameterization == .scaledScore && back.timeScale == 999)
        // Configuration inconsistent with the weights: one fewer level in the metadata.
        let file = try Safetensors.read(path)
        var meta = file.metadata
        meta["unet.block_out_channels"] = "8,16,16"; meta["unet.attention_levels"] = "0,1,1"
        let badPath = dir.appendingPathComponent("bad.safetensors").path
        try Safetensors.write(file.tensors, metadata: meta, dtype: .f32, to: badPath)
        do { _ = try UNetScore.read(badPath); Issue.record("inconsistent file accepted") } catch ScoreSDEError.io {} catch { Issue.record("\(error)") }
        // NaN weight in the file.
        var tensors = file.tensors
        let v = tensors[0].values.enumerated().map { $0.offset == 0 ? Double.nan : $0.element }
        tensors[0] = SafetensorsTensor(name: tensors[0].name, shape: tensors[0].shape, values: v)
        let nanPath = dir.appendingPathComponent("nan.safetensors").path
        try Safetensors.write(tensors, metadata: file.metadata, dtype: .f32, to: nanPath)
        do { _ = try UNetScore.read(nanPath); Issue.record("NaN weights accepted") } catch ScoreSDEError.nonFinite {} catch { Issue.record("\(error)") }
    }
}

final class LockedResults: @unchecked Sendable {
    private var v: [Tensor?]
    private let lock = NSLock()
    init(_ n: Int) { v = [Tensor?](repeating: nil, count: n) }
    func set(_ i: Int, _ t: Tensor?) { lock.lock(); v[i] = t; lock.unlock() }
    func get(_ i: Int) -> Tensor? { lock.lock(); defer { lock.unlock() }; return v[i] }
}

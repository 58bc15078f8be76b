import Foundation
import Testing
@testable import ScoreSDE

// The learned score network: parameter table and init, the hand-written backward pass and
// Jacobian–vector product against central finite differences, and consistency between the
// inference path (time folded into biases, chunked rows) and the training path.

private let vp = SDESpec.vp(betaMin: 0.1, betaMax: 20)
private let ve = SDESpec.ve(sigmaMin: 0.01, sigmaMax: 50)
private let subvp = SDESpec.subVP(betaMin: 0.1, betaMax: 20)

/// Standard normals of one draw, `shape`.
private func normals(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = RandomSource(seed: seed)
    return Tensor.standardNormal(shape: shape, using: &rng)
}

@Suite("MLP score network")
struct MLPTests {
    @Test("parameter table: names, shapes, order and PyTorch-default init bounds")
    func parameterTable() throws {
        let arch = MLPArchitecture(rowShape: [3], hiddenWidth: 8, residualBlocks: 2, fourierFeatures: 4)
        let specs = arch.parameterSpecs
        let expected: [(String, [Int])] = [
            ("embed.W", [4]), ("embed.dense.weight", [8, 8]), ("embed.dense.bias", [8]),
            ("input.weight", [8, 3]), ("input.bias", [8]),
            ("blocks.0.dense1.weight", [8, 8]), ("blocks.0.dense1.bias", [8]),
            ("blocks.0.temb.weight", [8, 8]), ("blocks.0.temb.bias", [8]),
            ("blocks.0.dense2.weight", [8, 8]), ("blocks.0.dense2.bias", [8]),
            ("blocks.1.dense1.weight", [8, 8]), ("blocks.1.dense1.bias", [8]),
            ("blocks.1.temb.weight", [8, 8]), ("blocks.1.temb.bias", [8]),
            ("blocks.1.dense2.weight", [8, 8]), ("blocks.1.dense2.bias", [8]),
            ("output.weight", [3, 8]), ("output.bias", [3]),
        ]
        #expect(specs.map(\.name) == expected.map(\.0))
        #expect(specs.map(\.shape) == expected.map(\.1))
        var offset = 0
        for s in specs { #expect(s.offset == offset); offset += s.count }
        #expect(arch.parameterCount == offset)
        #expect(specs.filter { !$0.trainable }.map(\.name) == ["embed.W"])

        let noTemb = MLPArchitecture(rowShape: [3], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4, timeEmbeddingInBlocks: false)
        #expect(!noTemb.parameterSpecs.contains { $0.name.contains("temb") })

        let model = try MLPScore(architecture: arch, sde: vp, seed: 3)
        for s in specs where s.trainable {
            let bound = 1 / Double(s.fanIn).squareRoot()
            let v = model.tensor(named: s.name)!
            #expect(v.allSatisfy { abs($0) <= bound }, "\(s.name) outside ±1/√\(s.fanIn)")
            #expect(v.contains { abs($0) > 0.5 * bound }, "\(s.name) suspiciously small")
        }
        // Same seed, same weights; another seed, other weights.
        #expect(try MLPScore(architecture: arch, sde: vp, seed: 3).parameters == model.parameters)
        #expect(try MLPScore(architecture: arch, sde: vp, seed: 4).parameters != model.parameters)
    }

    @Test("Fourier frequencies are N(0, 16²) and uniform init has the PyTorch variance")
    func initStatistics() throws {
        let arch = MLPArchitecture(rowShape: [4], hiddenWidth: 64, residualBlocks: 1, fourierFeatures: 2000)
        let model = try MLPScore(architecture: arch, sde: ve, seed: 11)
        let w = Moments(model.tensor(named: "embed.W")!)
        // n = 2000: se(mean) = 16/√2000 ≈ 0.36, se(var)/var = √(2/1999) ≈ 0.032.
        #expect(abs(w.mean) < zBound * 16 / 2000.0.squareRoot())
        #expect(abs(w.variance / 256 - 1) < zBound * (2.0 / 1999).squareRoot())
        // U(−b, b) has variance b²/3; 64·64 values, se of the ratio ≈ √(0.8/4096) ≈ 0.014.
        let d1 = Moments(model.tensor(named: "blocks.0.dense1.weight")!)
        #expect(abs(d1.variance / (1.0 / 64 / 3) - 1) < zBound * (0.8 / 4096).squareRoot())
        #expect(model.parameterization == .scaledBySigma)
        #expect(try MLPScore(architecture: arch, sde: vp, seed: 11).parameterization == .noisePrediction)
    }

    /// Every trainable tensor's gradient against central differences of the same loss, on a tiny net.
    @Test("backward pass matches central finite differences for every parameter tensor",
          arguments: [(vp, false, true, true), (vp, true, false, true), (ve, false, false, true),
                      (ve, true, true, false), (subvp, false, true, false), (subvp, true, false, true)])
    func gradientMatchesFiniteDifferences(_ sde: SDESpec, _ likelihoodWeighting: Bool, _ reduceMean: Bool, _ embedInBlocks: Bool) throws {
        let arch = MLPArchitecture(rowShape: [3], hiddenWidth: 5, residualBlocks: 2, fourierFeatures: 3,
                                   fourierScale: 2, timeEmbeddingInBlocks: embedInBlocks)
        var model = try MLPScore(architecture: arch, sde: sde, seed: 5)
        let loss = try DSMLoss(sde: sde.make(), reduceMean: reduceMean, likelihoodWeighting: likelihoodWeighting)
        let n = 6
        let data = normals([n, 3], seed: 9)
        let batch = try loss.drawBatch(step: 2, seed: 17, batchSize: n, dataRows: n, rowShape: [3])
        let x0 = batch.gather(data)
        let (value, grad) = try model.dsmLossAndGradient(loss, data: x0, batch: batch)

        // The training forward agrees with the inference path (row-by-row ScoreModel calls).
        let generic = try loss.loss(of: model, data: x0, times: batch.times, noise: batch.noise)
        #expect(abs(generic - value) <= 1e-11 * abs(value), "training-path loss \(value) vs inference-path loss \(generic)")

        var rng = RandomSource(seed: 23)
        var checked = 0
        for spec in arch.parameterSpecs {
            if !spec.trainable {
                #expect(grad[spec.range].allSatisfy { $0 == 0 }, "\(spec.name) is a buffer and gets no gradient")
                continue
            }
            var s = rng.stream(draw: rng.nextDraw(), row: 0)
            var picks = Set([spec.offset, spec.offset + spec.count - 1])
            while picks.count < min(4, spec.count) { picks.insert(spec.offset + Int(s.next() % UInt64(spec.count))) }
            for i in picks.sorted() {
                let theta = model.parameters[i], h = 1e-5
                model.parameters[i] = theta + h
                let up = try model.dsmLossAndGradient(loss, data: x0, batch: batch).loss
                model.parameters[i] = theta - h
                let down = try model.dsmLossAndGradient(loss, data: x0, batch: batch).loss
                model.parameters[i] = theta
                let fd = (up - down) / (2 * h)
                // Central differences: truncation O(h²) ≈ 1e-10 relative, rounding ≈ 1e-16 |loss| / h ≈ 1e-11 |loss|.
                let tol = 1e-6 * max(abs(grad[i]), abs(fd)) + 1e-9 * abs(value)
                #expect(abs(grad[i] - fd) <= tol, "\(spec.name)[\(i - spec.offset)]: backward \(grad[i]) vs finite difference \(fd) (tol \(tol))")
                checked += 1
            }
        }
        #expect(checked >= 30)
    }

    /// `J v` from the forward-mode pass against the central difference `(s(x + h v) − s(x − h v)) / 2h`.
    @Test("Jacobian-vector product matches finite differences of the score", arguments: [vp, ve, subvp])
    func jvpMatchesFiniteDifferences(_ sde: SDESpec) throws {
        let arch = MLPArchitecture(rowShape: [4], hiddenWidth: 16, residualBlocks: 2, fourierFeatures: 8)
        let model = try MLPScore(architecture: arch, sde: sde, seed: 8)
        let scale = sde.kind == "ve" ? 3.0 : 1.0
        let x = normals([7, 4], seed: 1).scaled(by: scale), v = normals([7, 4], seed: 2)
        for t in [0.05, 0.4, 0.9] {
            let (s, jv) = try model.scoreAndJVP(x, at: t, direction: v)
            #expect(s == (try model.score(x, at: t)), "scoreAndJVP's score equals score")
            let h = 1e-5 * scale
            let up = try model.score(x.adding(v, scaledBy: h), at: t), down = try model.score(x.adding(v, scaledBy: -h), at: t)
            let fd = up.adding(down, scaledBy: -1).scaled(by: 1 / (2 * h))
            let size = jv.storage.map(abs).max()!
            for i in 0 ..< jv.count {
                // O(h²) truncation and ≈ 1e-16·|s|/h rounding: 1e-7 of the largest entry is ample.
                #expect(abs(jv.storage[i] - fd.storage[i]) <= 1e-7 * size, "t = \(t), entry \(i): JVP \(jv.storage[i]) vs FD \(fd.storage[i])")
            }
        }
    }

    @Test("output parameterization: VP score = −out/std, VE score = out/σ; time input t vs log σ")
    func outputParameterization() throws {
        let arch = MLPArchitecture(rowShape: [2], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4)
        let x = normals([5, 2], seed: 3)
        for spec in [vp, ve, subvp] {
            let model = try MLPScore(architecture: arch, sde: spec, seed: 1)
            let t = 0.3, std = try spec.make().marginal(at: t).std
            let out = try model.networkOutput(x, at: t), s = try model.score(x, at: t)
            let c = spec.kind == "ve" ? 1 / std : -1 / std
            for i in 0 ..< s.count { #expect(abs(s.storage[i] - c * out.storage[i]) <= 1e-12 * abs(s.storage[i]) + 1e-300) }
            #expect(try model.conditioning(at: t).tau == (spec.kind == "ve" ? log(std) : t))
        }
    }

    @Test("chunked inference equals the training forward; any row shape of the right size")
    func inferenceMatchesTrainingForward() throws {
        let arch = MLPArchitecture(rowShape: [1, 2, 2], hiddenWidth: 12, residualBlocks: 2, fourierFeatures: 5)
        let model = try MLPScore(architecture: arch, sde: vp, seed: 2)
        let n = MLPScore.chunkRows + 37    // two chunks
        let x = try normals([n, 4], seed: 4).reshaped([n, 1, 2, 2])
        let t = 0.37
        let out = try model.networkOutput(x, at: t)
        #expect(out.shape == x.shape)
        let ws = MLPTrainingWorkspace(layout: model.layout, capacity: n)
        x.storage.withUnsafeBufferPointer { ws.x.update(from: $0.baseAddress!, count: x.count) }
        for r in 0 ..< n { ws.tau[r] = t }
        model.parameters.withUnsafeBufferPointer { ws.forward($0.baseAddress!, rows: n) }
        var worst = 0.0
        for i in 0 ..< x.count { worst = max(worst, abs(out.storage[i] - ws.out[i]) / (1 + abs(ws.out[i]))) }
        #expect(worst <= 1e-12, "inference vs training forward: max relative difference \(worst)")
        // Rows are independent: the second chunk alone gives the same values.
        let tail = try model.networkOutput(x.rows(MLPScore.chunkRows ..< n), at: t)
        #expect(zip(tail.storage, out.storage[(MLPScore.chunkRows * 4)...]).allSatisfy { abs($0 - $1) <= 1e-12 * (1 + abs($1)) })
    }

    @Test("invalid inputs: wrong sample size, t outside (0, T], bad architecture")
    func invalidInputs() throws {
        let model = try MLPScore(architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 4, residualBlocks: 0, fourierFeatures: 2), sde: vp, seed: 0)
        #expect(throws: ScoreSDEError.self) { try model.score(normals([3, 3], seed: 0), at: 0.5) }
        let x = normals([3, 2], seed: 0)
        #expect(invalidParameterText { _ = try model.score(x, at: 0) } != nil)
        #expect(invalidParameterText { _ = try model.score(x, at: 1.5) } != nil)
        #expect(invalidParameterText { _ = try model.score(x, at: .nan) } != nil)
        #expect(try model.score(x, at: 1).isFinite)
        #expect(invalidParameterText { _ = try MLPScore(architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 0), sde: vp, seed: 0) } != nil)
        #expect(invalidParameterText { _ = try MLPScore(architecture: MLPArchitecture(rowShape: [2], fourierScale: -1), sde: vp, seed: 0) } != nil)
        #expect(throws: ScoreSDEError.self) { _ = try model.withParameters([1, 2, 3]) }
        var bad = model.parameters; bad[5] = .nan
        #expect(throws: ScoreSDEError.self) { _ = try model.withParameters(bad) }
    }

    @Test("likelihood runs on a learned model through its JVP (exact divergence = D JVPs)")
    func likelihoodWithLearnedModel() throws {
        let sde = try VPSDE()
        let model = try MLPScore(architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 16, residualBlocks: 1, fourierFeatures: 4),
                                 sde: SDESpec(sde), seed: 1)
        let x = normals([4, 2], seed: 6)
        var rng = RandomSource(seed: 1)
        let solver = ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5)
        let exact = try Likelihood(sde: sde, score: model, estimator: .exact, eps: 1e-3, solver: solver).evaluate(x, using: &rng)
        #expect(exact.logLikelihood.allSatisfy { $0.isFinite })
        // Hutchinson agrees with the exact divergence on average: with the probe v fixed along the
        // solve, E[vᵀ J v] = tr J at every t, and the trajectory x(t) does not depend on v, so the
        // estimate of log p is unbiased. 32 independent one-probe runs per point: their mean is within
        // 5 standard errors (from their own spread) of the exact value, plus 1e-3 nats for the
        // solvers' different step sequences at tolerance 1e-5.
        var runs = [[Double]](repeating: [], count: x.rows)
        for seed in 0 ..< 32 {
            var r = RandomSource(seed: 1000 + UInt64(seed))
            let hutch = try Likelihood(sde: sde, score: model, estimator: .gaussian(probes: 1), eps: 1e-3, solver: solver).evaluate(x, using: &r)
            for i in 0 ..< x.rows { runs[i].append(hutch.logLikelihood[i]) }
        }
        for i in 0 ..< x.rows {
            let m = Moments(runs[i]), se = (m.variance / 32).squareRoot()
            #expect(se > 0 && abs(m.mean - exact.logLikelihood[i]) <= zBound * se + 1e-3,
                    "point \(i): exact \(exact.logLikelihood[i]) vs Hutchinson mean \(m.mean) ± \(se)")
        }
    }
}

/// Throughput figures (prints only). `SCORESDE_MLP_BENCH=1 swift test -c release --filter MLPBenchmark`.
@Suite("MLP benchmark", .enabled(if: ProcessInfo.processInfo.environment["SCORESDE_MLP_BENCH"] != nil))
struct MLPBenchmark {
    static func best(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        var b = Double.infinity
        for _ in 0 ..< repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            b = min(b, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        return b
    }

    @Test("gemm, forward pass and training throughput")
    func throughput() throws {
        let env = ProcessInfo.processInfo.environment
        let B = Int(env["B"] ?? "") ?? 512, D = Int(env["D"] ?? "") ?? 64, H = Int(env["H"] ?? "") ?? 256, L = Int(env["L"] ?? "") ?? 3
        let a = normals([B, H], seed: 1), w = normals([H, H], seed: 2)
        var c = Tensor(zeros: [B, H])
        let reps = 50
        let tg = Self.best(3) {
            a.storage.withUnsafeBufferPointer { ap in w.storage.withUnsafeBufferPointer { wp in c.storage.withUnsafeMutableBufferPointer { cp in
                for _ in 0 ..< reps {
                    BLAS.gemm(transB: true, m: B, n: H, k: H, a: ap.baseAddress!, lda: H, b: wp.baseAddress!, ldb: H, c: cp.baseAddress!, ldc: H)
                }
            } } }
        } / Double(reps)
        print("gemm \(B)x\(H)·\(H)x\(H): \(String(format: "%.3f", tg * 1e3)) ms, \(String(format: "%.1f", 2.0 * Double(B * H * H) / tg / 1e9)) GFLOP/s")

        let arch = MLPArchitecture(rowShape: [D], hiddenWidth: H, residualBlocks: L, fourierFeatures: 64)
        let model = try MLPScore(architecture: arch, sde: vp, seed: 1)
        let x = normals([B, D], seed: 3)
        let tf = try Self.best(3) { for _ in 0 ..< 20 { _ = try model.score(x, at: 0.5) } } / 20
        let flopsF = 2.0 * Double(B) * Double(D * H + L * 2 * H * H + H * D)
        print("score (forward) B=\(B) D=\(D) H=\(H) L=\(L): \(String(format: "%.3f", tf * 1e3)) ms, \(String(format: "%.1f", flopsF / tf / 1e9)) GFLOP/s")
        let v = normals([B, D], seed: 4)
        let tj = try Self.best(3) { for _ in 0 ..< 20 { _ = try model.scoreAndJVP(x, at: 0.5, direction: v) } } / 20
        print("score + JVP: \(String(format: "%.3f", tj * 1e3)) ms")

        let config = TrainingConfiguration(sde: vp, architecture: arch, seed: 1, batchSize: B, learningRate: 1e-4, warmup: 0)
        let trainer = try Trainer(configuration: config, data: normals([4096, D], seed: 5))
        try trainer.train(steps: 2)
        let steps = 20
        let tt = try Self.best(2) { try trainer.train(steps: steps) } / Double(steps)
        let flopsT = 2.0 * Double(B) * Double(128 * H + D * H + L * 3 * H * H + H * D) * 3
        print("training step B=\(B): \(String(format: "%.3f", tt * 1e3)) ms, \(String(format: "%.0f", Double(B) / tt)) examples/s, ≈\(String(format: "%.1f", flopsT / tt / 1e9)) GFLOP/s (fwd+bwd)")
    }
}

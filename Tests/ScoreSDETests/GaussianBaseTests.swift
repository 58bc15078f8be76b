import Foundation
import Testing
@testable import ScoreSDE

// The Gaussian base of MLPScore (MLPArchitecture.gaussianBase): with a silent network the model is
// exactly the Gaussian fitted to the data, diffused by the SDE — score, Jacobian and likelihood
// against closed forms written here; the training pass with the base against finite differences
// and the inference path; the base survives a weights file.

private let vpSpec = SDESpec.vp(betaMin: 0.1, betaMax: 20)

/// Solves `A x = b` (`n × n`, row-major) by Gaussian elimination with partial pivoting.
private func solve(_ a: [Double], _ b: [Double], _ n: Int) -> [Double] {
    var m = a, x = b
    for c in 0 ..< n {
        let p = (c ..< n).max { abs(m[$0 * n + c]) < abs(m[$1 * n + c]) }!
        if p != c { for j in 0 ..< n { m.swapAt(c * n + j, p * n + j) }; x.swapAt(c, p) }
        for r in c + 1 ..< n {
            let f = m[r * n + c] / m[c * n + c]
            for j in c ..< n { m[r * n + j] -= f * m[c * n + j] }
            x[r] -= f * x[c]
        }
    }
    for c in stride(from: n - 1, through: 0, by: -1) {
        var s = x[c]
        for j in c + 1 ..< n { s -= m[c * n + j] * x[j] }
        x[c] = s / m[c * n + c]
    }
    return x
}

/// `log det A` of a symmetric positive-definite `A` (Cholesky, written here).
private func logDet(_ a: [Double], _ n: Int) -> Double {
    var l = [Double](repeating: 0, count: n * n)
    for i in 0 ..< n {
        for j in 0 ... i {
            var s = a[i * n + j]
            for k in 0 ..< j { s -= l[i * n + k] * l[j * n + k] }
            l[i * n + j] = i == j ? s.squareRoot() : s / l[j * n + j]
        }
    }
    return 2 * (0 ..< n).reduce(0) { $0 + log(l[$1 * n + $1]) }
}

@Suite("Gaussian base of the MLP score")
struct GaussianBaseTests {
    /// Integer data (levels 0...7) with correlated coordinates, 3-D.
    static func levels(rows: Int) -> Tensor {
        var rng = RandomSource(seed: 4)
        let z = Tensor.standardNormal(shape: [rows, 3], using: &rng)
        var v = [Double](repeating: 0, count: rows * 3)
        for r in 0 ..< rows {
            let a = z.storage[3 * r], b = z.storage[3 * r + 1], c = z.storage[3 * r + 2]
            let raw = [3.5 + 1.2 * a, 3 + 0.8 * a + 0.9 * b, 4 - 0.5 * b + 1.1 * c]
            for j in 0 ..< 3 { v[3 * r + j] = min(max(raw[j].rounded(.down), 0), 7) }
        }
        return try! Tensor(shape: [rows, 3], storage: v)
    }

    /// The model with the base fitted to `data` and its network silenced (output layer zero).
    static func silentModel(_ data: Tensor, scaling: DataScaling) throws -> MLPScore {
        let arch = MLPArchitecture(rowShape: [3], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4, gaussianBase: true)
        var model = try MLPScore(architecture: arch, sde: vpSpec, dataScaling: scaling, seed: 3)
            .withGaussianBase(fittedTo: data, dequantizationLevels: 8)
        for spec in arch.parameterSpecs where spec.name.hasPrefix("output.") {
            for i in spec.range { model.parameters[i] = 0 }
        }
        return model
    }

    @Test("a silent network leaves the exact diffused Gaussian of k + u: score, JVP and log p_eps")
    func silentNetworkIsExactGaussian() throws {
        let data = Self.levels(rows: 400)
        let scaling = try DataScaling(scale: 0.25, shift: -1)
        let model = try Self.silentModel(data, scaling: scaling)
        let sde = try VPSDE()
        // Moments of k + u (u ~ U[0, 1)) in model space, computed here: mean + 1/2, covariance + I/12.
        let n = data.rows, d = 3, a = 0.25
        let (mu, cov): ([Double], [Double]) = {
            var mu = [Double](repeating: 0, count: d), cov = [Double](repeating: 0, count: d * d)
            for r in 0 ..< n { for j in 0 ..< d { mu[j] += data.storage[r * d + j] / Double(n) } }
            for r in 0 ..< n {
                for i in 0 ..< d { for j in 0 ..< d { cov[i * d + j] += (data.storage[r * d + i] - mu[i]) * (data.storage[r * d + j] - mu[j]) / Double(n - 1) } }
            }
            for i in 0 ..< d { cov[i * d + i] += 1.0 / 12 }
            return (mu.map { a * ($0 + 0.5) - 1 }, cov.map { a * a * $0 })
        }()

        @Sendable func marginalCov(_ t: Double) -> (m: Double, c: [Double]) {
            let (m, s) = sde.marginal(at: t)
            var c = cov.map { m * m * $0 }
            for i in 0 ..< d { c[i * d + i] += s * s }
            return (m, c)
        }
        var rng = RandomSource(seed: 8)
        let x = Tensor.standardNormal(shape: [5, 3], using: &rng).scaled(by: 0.6)
        let v = Tensor.standardNormal(shape: [5, 3], using: &rng)
        for t in [1e-3, 0.05, 0.4, 1.0] {
            let (m, c) = marginalCov(t)
            let (s, jv) = try model.scoreAndJVP(x, at: t, direction: v)
            for r in 0 ..< 5 {
                let dx = (0 ..< d).map { x.storage[r * d + $0] - m * mu[$0] }
                let want = solve(c, dx, d).map { -$0 }, wantJ = solve(c, Array(v.storage[r * d ..< (r + 1) * d]), d).map { -$0 }
                for j in 0 ..< d {
                    #expect(abs(s.storage[r * d + j] - want[j]) <= 1e-10 * max(1, abs(want[j])), "t = \(t) row \(r): score \(s.storage[r * d + j]) vs \(want[j])")
                    #expect(abs(jv.storage[r * d + j] - wantJ[j]) <= 1e-10 * max(1, abs(wantJ[j])), "t = \(t) row \(r): JVP \(jv.storage[r * d + j]) vs \(wantJ[j])")
                }
            }
        }
        // The probability-flow likelihood at eps is the Gaussian's closed-form log N(x; m μ, m² Σ + std² I).
        let eps = 1e-2
        @Sendable func logN(_ x: Tensor, at t: Double) -> [Double] {
            let (m, c) = marginalCov(t)
            let ld = logDet(c, d)
            return (0 ..< x.rows).map { r in
                let dx = (0 ..< d).map { x.storage[r * d + $0] - m * mu[$0] }
                let q = zip(dx, solve(c, dx, d)).reduce(0) { $0 + $1.0 * $1.1 }
                return -0.5 * (q + ld + Double(d) * log(2 * Double.pi))
            }
        }
        let solver = ODESolverOptions(.rkf45, absoluteTolerance: 1e-9, relativeTolerance: 1e-9)
        let likelihood = Likelihood(sde: sde, score: model, estimator: .exact, eps: eps, solver: solver,
                                    terminalLogDensity: { z in logN(z, at: sde.T) })
        let r = try likelihood.evaluate(x, using: &rng)
        let want = logN(x, at: eps)
        for i in 0 ..< x.rows { #expect(abs(r.logLikelihood[i] - want[i]) < 1e-5, "row \(i): \(r.logLikelihood[i]) vs closed form \(want[i])") }
    }

    @Test("training pass with the base: backward matches finite differences; buffers get no gradient; same loss as the ScoreModel path",
          arguments: [false, true])
    func gradientWithBase(_ likelihoodWeighting: Bool) throws {
        let arch = MLPArchitecture(rowShape: [3], hiddenWidth: 5, residualBlocks: 1, fourierFeatures: 3, fourierScale: 2, gaussianBase: true)
        let data = Self.levels(rows: 50)
        var model = try MLPScore(architecture: arch, sde: vpSpec, parameterization: .boundedNoisePrediction, noiseFloor: 0.07,
                                 dataScaling: DataScaling(scale: 0.25, shift: -1), seed: 5)
            .withGaussianBase(fittedTo: data, dequantizationLevels: 8)
        let loss = try DSMLoss(sde: vpSpec.make(), likelihoodWeighting: likelihoodWeighting, eps: 1e-2,
                               timeSampling: likelihoodWeighting ? .importance : .uniform)
        let n = 6
        let x0 = model.dataScaling.toModel(try data.rows(0 ..< n))
        let batch = try loss.drawBatch(step: 1, seed: 3, batchSize: n, dataRows: n, rowShape: [3])
        let (value, grad) = try model.dsmLossAndGradient(loss, data: x0, batch: batch)
        let generic = try loss.loss(of: model, data: x0, times: batch.times, noise: batch.noise)
        #expect(abs(generic - value) <= 1e-11 * abs(value), "training-path loss \(value) vs inference-path loss \(generic)")
        var checked = 0
        for spec in arch.parameterSpecs {
            if !spec.trainable {
                #expect(grad[spec.range].allSatisfy { $0 == 0 }, "\(spec.name) is a buffer and gets no gradient")
                continue
            }
            for i in Set([spec.offset, spec.offset + spec.count / 2, spec.offset + spec.count - 1]).sorted() {
                let theta = model.parameters[i], h = 1e-5
                model.parameters[i] = theta + h
                let up = try model.dsmLossAndGradient(loss, data: x0, batch: batch).loss
                model.parameters[i] = theta - h
                let down = try model.dsmLossAndGradient(loss, data: x0, batch: batch).loss
                model.parameters[i] = theta
                let fd = (up - down) / (2 * h)
                let tol = 1e-6 * max(abs(grad[i]), abs(fd)) + 1e-9 * abs(value)
                #expect(abs(grad[i] - fd) <= tol, "\(spec.name)[\(i - spec.offset)]: backward \(grad[i]) vs finite difference \(fd)")
                checked += 1
            }
        }
        #expect(checked >= 15)
    }

    @Test("the base is written with the weights and read back; a network without it rejects fitting")
    func roundTrip() throws {
        let data = Self.levels(rows: 60)
        let model = try Self.silentModel(data, scaling: DataScaling(scale: 0.25, shift: -1))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gbase-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        try model.save(to: path)
        let back = try MLPScore.load(from: path)
        #expect(back.architecture.gaussianBase)
        var rng = RandomSource(seed: 2)
        let x = Tensor.standardNormal(shape: [4, 3], using: &rng)
        #expect(try back.score(x, at: 0.3) == model.score(x, at: 0.3))
        let plain = try MLPScore(architecture: MLPArchitecture(rowShape: [3], hiddenWidth: 8), sde: vpSpec, seed: 1)
        #expect(throws: ScoreSDEError.self) { try plain.withGaussianBase(fittedTo: data) }
        #expect(plain.architecture.parameterSpecs.allSatisfy { !$0.name.hasPrefix("base.") })
    }
}

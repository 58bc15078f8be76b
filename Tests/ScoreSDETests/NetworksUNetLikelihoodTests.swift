import Foundation
import Testing
@testable import ScoreSDE

// UNetScore's vector–Jacobian products (ScoreVJPProviding) and the likelihoods they make possible:
// the product against a float64 network and central differences, the trace estimators against the
// exact trace, and the library's likelihood with exact and Hutchinson divergences.

@Suite("U-Net likelihoods (vector-Jacobian products)") struct NetworksUNetLikelihoodTests {
    /// Two channels, so that an NCHW ↔ NHWC mix-up in the product cannot hide.
    static let config = UNetConfiguration(imageSize: 4, channels: 2, blockOutChannels: [8, 8], layersPerBlock: 1, normGroups: 4)
    static let sde = SDESpec.vp(betaMin: 0.1, betaMax: 20)

    /// NCHW `[n, C, S, S]` ↔ NHWC, as UNetScore converts.
    static func nhwc(_ v: [Double], n: Int, c: Int, p: Int) -> [Double] {
        var out = [Double](repeating: 0, count: v.count)
        for b in 0 ..< n { for ch in 0 ..< c { for q in 0 ..< p { out[(b * p + q) * c + ch] = v[(b * c + ch) * p + q] } } }
        return out
    }
    static func nchw(_ v: [Double], n: Int, c: Int, p: Int) -> [Double] {
        var out = [Double](repeating: 0, count: v.count)
        for b in 0 ..< n { for ch in 0 ..< c { for q in 0 ..< p { out[(b * c + ch) * p + q] = v[(b * p + q) * c + ch] } } }
        return out
    }

    /// The float32 model's `Jᵀu` against the float64 network on the same weights (whose backward
    /// is itself checked against central differences of its score here, h = 1e-5 in float64):
    /// agreement to 1e-4 of the product's scale, the float32 rounding bound the forward test uses
    /// (activations carry ~1e-7 relative error through ~20 layers; the backward doubles the path).
    @Test func vjpMatchesFloat64NetworkAndCentralDifferences() throws {
        let c = Self.config, n = 3, C = c.channels, P = c.imageSize * c.imageSize, D = C * P
        let model = try UNetScore(configuration: c, sde: Self.sde, seed: 11)
        let ref = try UNet<Double>(c)
        for i in 0 ..< ref.parameterCount { ref.parameters[i] = Double(model.parameters[i]) }
        let x = try Tensor(shape: [n, C, 4, 4], storage: testValues(n * D, seed: 3))
        let u = try Tensor(shape: [n, C, 4, 4], storage: testValues(n * D, seed: 5))
        let t = 0.4
        let std = try Self.sde.make().marginal(at: t).std, factor = -1 / std
        let tau = [Double](repeating: 999 * t, count: n)
        // The float64 score (NCHW) and its VJP.
        func refScore(_ xs: [Double]) -> [Double] {
            let y = ref.forward(Self.nhwc(xs, n: n, c: C, p: P), tau: tau)
            return Self.nchw(Array(UnsafeBufferPointer(start: y, count: n * D)), n: n, c: C, p: P).map { $0 * factor }
        }
        _ = refScore(x.storage)
        let dx = ref.backward(Self.nhwc(u.storage, n: n, c: C, p: P))
        let refVJP = Self.nchw(Array(UnsafeBufferPointer(start: dx, count: n * D)), n: n, c: C, p: P).map { $0 * factor }
        // Float64: uᵀ s(x) by central differences along every input coordinate.
        let h = 1e-5
        var worstFD = 0.0, scale = 0.0
        for i in 0 ..< n * D {
            var xp = x.storage, xm = x.storage
            xp[i] += h; xm[i] -= h
            let fd = (zip(u.storage, refScore(xp)).reduce(0) { $0 + $1.0 * $1.1 } - zip(u.storage, refScore(xm)).reduce(0) { $0 + $1.0 * $1.1 }) / (2 * h)
            worstFD = max(worstFD, abs(fd - refVJP[i])); scale = max(scale, abs(refVJP[i]))
        }
        #expect(scale > 0)
        #expect(worstFD <= 1e-6 * scale, "float64 VJP vs central differences: max error \(worstFD), scale \(scale)")
        // Float32 model against the float64 reference.
        let (s, vjp) = try model.scoreAndVJP(x, at: t, cotangent: u)
        #expect(s == (try model.score(x, at: t)))
        let worst = zip(vjp.storage, refVJP).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-4 * scale, "float32 VJP vs float64: max error \(worst), scale \(scale)")
    }

    /// Per-row labels: each row scores as the model conditioned on its own label, and the
    /// classifier-free guided VJP is `(1 + w') Jᵀ_c u − w' Jᵀ_∅ u`.
    @Test func perRowLabelsAndGuidedVJP() throws {
        var c = Self.config
        c.classCount = 3
        let model = try UNetScore(configuration: c, sde: Self.sde, seed: 2)
        let n = 3, D = 32
        let x = try Tensor(shape: [n, 2, 4, 4], storage: testValues(n * D, seed: 7))
        let u = try Tensor(shape: [n, 2, 4, 4], storage: testValues(n * D, seed: 8))
        let labels: [Int?] = [0, 2, nil]
        let (s, j) = try model.conditioned(on: labels).scoreAndVJP(x, at: 0.3, cotangent: u)
        for (r, l) in labels.enumerated() {
            let (sr, jr) = try model.conditioned(on: [l]).scoreAndVJP(x, at: 0.3, cotangent: u)
            #expect(s.row(r) == sr.row(r) && j.row(r) == jr.row(r), "row \(r)")
        }
        let guided = try model.classifierFreeGuided(labels: labels, guidanceScale: 2.5)
        let (sg, jg) = try guided.scoreAndVJP(x, at: 0.3, cotangent: u)
        let (su, ju) = try model.conditioned(on: [nil]).scoreAndVJP(x, at: 0.3, cotangent: u)
        for i in 0 ..< n * D {
            #expect(abs(sg.storage[i] - (su.storage[i] + 2.5 * (s.storage[i] - su.storage[i]))) <= 1e-12 * max(1, abs(sg.storage[i])))
            #expect(abs(jg.storage[i] - (ju.storage[i] + 2.5 * (j.storage[i] - ju.storage[i]))) <= 1e-12 * max(1, abs(jg.storage[i])))
        }
        #expect(guided.passesPerEvaluation == 2)
        #expect(throws: ScoreSDEError.self) { try model.conditioned(on: [3]) }
        #expect(throws: ScoreSDEError.self) { try model.conditioned(on: [0, 1]).score(x, at: 0.3) }   // 2 labels for 3 rows
        let plain = try UNetScore(configuration: Self.config, sde: Self.sde, seed: 2)
        #expect(throws: ScoreSDEError.self) { try plain.conditioned(on: [1]) }
        #expect(throws: ScoreSDEError.self) { try plain.classifierFreeGuided(labels: [nil], guidanceScale: 2) }
    }

    /// Hutchinson's `E[vᵀ Jᵀ v]` over 4000 Rademacher probes (one batched call: the image repeated
    /// per probe) equals the exact trace `Σ_j (Jᵀ e_j)_j` within 4 standard errors of the probes' mean.
    @Test func hutchinsonWithManyProbesEqualsTheExactTrace() throws {
        let c = Self.config, D = 32, t = 0.5
        let model = try UNetScore(configuration: c, sde: Self.sde, seed: 5)
        let x0 = testValues(D, seed: 21)
        // Exact trace, one VJP per coordinate (batched over the D unit vectors: row j gets e_j).
        let xs = try Tensor(shape: [D, 2, 4, 4], storage: (0 ..< D).flatMap { _ in x0 })
        var e = Tensor(zeros: xs.shape)
        for j in 0 ..< D { e.storage[j * D + j] = 1 }
        let diagonal = try model.scoreAndVJP(xs, at: t, cotangent: e).vjp
        let exact = (0 ..< D).reduce(0.0) { $0 + diagonal.storage[$1 * D + $1] }
        let k = 4000
        var rng = RandomSource(seed: 9)
        let xk = try Tensor(shape: [k, 2, 4, 4], storage: (0 ..< k).flatMap { _ in x0 })
        let v = Tensor.rademacher(shape: xk.shape, using: &rng)
        let q = v.rowDots(try model.scoreAndVJP(xk, at: t, cotangent: v).vjp)
        let mean = q.reduce(0, +) / Double(k)
        let se = (q.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(k - 1) / Double(k)).squareRoot()
        #expect(se > 0)
        #expect(abs(mean - exact) <= 4 * se, "Hutchinson \(mean) ± \(se) vs exact trace \(exact)")
    }

    /// The library's likelihood runs on a U-Net (no Jacobian–vector products, only VJPs), counts a
    /// VJP as two passes, and its Hutchinson estimate agrees with the exact divergence: 32 copies of
    /// one image, 4 Rademacher probes each (independent per row), differ from the exact
    /// log-likelihood by a mean within 4 standard errors (about 1 nat here) plus 0.1 nats for the
    /// solver (tolerances 1e-4; its error measured against 1e-8 is 0.02 nats, and the two solves
    /// take different steps). Time scale 1 (τ = t) keeps the random network smooth in t, so the
    /// solve takes ~200 right-hand sides rather than ~1000.
    @Test func libraryLikelihoodExactAndHutchinsonAgree() throws {
        let c = UNetConfiguration(imageSize: 4, channels: 1, blockOutChannels: [8, 8], layersPerBlock: 1, normGroups: 4)
        var model = try UNetScore(configuration: c, sde: Self.sde, timeScale: 1, seed: 13)
        model.dataScaling = try DataScaling(scale: 2, shift: -1)
        let sde = try VPSDE()
        let solver = ODESolverOptions(.rkf45, absoluteTolerance: 1e-4, relativeTolerance: 1e-4)
        let image = try Tensor(shape: [1, 1, 4, 4], storage: testValues(16, seed: 31, scale: 0.8))
        var rng = RandomSource(seed: 1)
        let exact = try Likelihood(sde: sde, score: model, estimator: .exact, eps: 1e-3, solver: solver).evaluate(image, using: &rng)
        #expect(exact.logLikelihood.allSatisfy { $0.isFinite })
        #expect(exact.statistics.modelPasses == 2 * exact.statistics.scoreEvaluations, "a VJP is a forward and a backward pass")
        let copies = 32
        let x = try Tensor(shape: [copies, 1, 4, 4], storage: (0 ..< copies).flatMap { _ in image.storage })
        let hutchinson = try Likelihood(sde: sde, score: model, estimator: .rademacher(probes: 4), eps: 1e-3, solver: solver)
            .evaluate(x, using: &rng)
        #expect(hutchinson.statistics.modelPasses == 2 * hutchinson.statistics.scoreEvaluations)
        let diffs = hutchinson.logLikelihood.map { $0 - exact.logLikelihood[0] }
        let mean = diffs.reduce(0, +) / Double(copies)
        let se = (diffs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(copies - 1) / Double(copies)).squareRoot()
        #expect(se > 0, "the probes must vary between rows")
        #expect(abs(mean) <= 4 * se + 0.1, "Hutchinson − exact: \(mean) ± \(se) nats")
        // A model with neither JVPs nor VJPs is still refused.
        struct Plain: ScoreModel {
            var rowShape: [Int]? { nil }
            func score(_ x: Tensor, at t: Double) throws -> Tensor { x }
        }
        #expect(throws: ScoreSDEError.self) {
            try Likelihood(sde: sde, score: Plain(), estimator: .exact, eps: 1e-3, solver: solver).evaluate(image, using: &rng)
        }
    }

    /// Both learned models are reachable through `LearnedScoreModel`.
    @Test func learnedScoreModelExposesBothNetworks() throws {
        var unet = try UNetScore(configuration: Self.config, sde: Self.sde, seed: 1)
        unet.dataScaling = try DataScaling(scale: 2, shift: -1)
        unet.dequantizationLevels = 256
        let mlp = try MLPScore(architecture: MLPArchitecture(rowShape: [1, 4, 4], hiddenWidth: 8, classCount: 2), sde: Self.sde, seed: 1)
        let models: [any LearnedScoreModel] = [unet, mlp]
        #expect(models.map(\.sampleShape) == [[2, 4, 4], [1, 4, 4]])
        #expect(models.map(\.sdeSpec) == [Self.sde, Self.sde])
        #expect(models.map(\.classCount) == [0, 2])
        #expect(models[0].dataScaling == unet.dataScaling && models[0].dequantizationLevels == 256 && models[0].likelihoodEps == nil)
        #expect(try models[1].conditionedScore(on: [1]) is ClassConditionedScore)
        #expect(throws: ScoreSDEError.self) { try models[0].classifierFreeGuidedScore(labels: [0], guidanceScale: 2) }
    }

    /// Measurement guidance through a U-Net (ΠGDM with the model's Jacobian, differentiated by its
    /// VJP): the guidance term `guided − s` must be `∇ₓ log p̃(y | x)` with
    /// `log p̃ = −½ rᵀ C⁻¹ r`, `r = y − A x̂₀(x)`, `x̂₀ = (x + std² s(x))/m`, `C = σ_y² I + r_t² A Aᵀ`
    /// (fixed at `t`), checked against central differences of that log-density computed from the
    /// model's score alone (h = 1e-3; float32 scores put ~1e-4 of noise on the differences).
    @Test func measurementGuidanceDifferentiatesThroughTheVJP() throws {
        let c = UNetConfiguration(imageSize: 4, channels: 1, blockOutChannels: [8, 8], layersPerBlock: 1, normGroups: 4)
        let model = try UNetScore(configuration: c, sde: Self.sde, timeScale: 1, seed: 3)
        let sdeF = try Self.sde.make()
        let pixels = [0, 5, 10, 15]
        let a = pixels.map { p in (0 ..< 16).map { $0 == p ? 1.0 : 0.0 } }
        let y = [0.3, -0.2, 0.5, 0.1], sigmaY = 0.5, v = 0.4, t = 0.3
        let ms = try LinearMeasurement(matrix: a, observation: y, noiseStd: sigmaY)
        let guided = try MeasurementGuidedScore(base: model, sde: sdeF, measurement: ms, likelihood: .pseudoinverse(dataVariance: v))
        var st = RandomSource(seed: 4).stream(draw: 0, row: 0)
        let x = try Tensor(shape: [1, 1, 4, 4], storage: (0 ..< 16).map { _ in st.normal() * 0.5 })
        let term = try guided.score(x, at: t).storage.enumerated().map { $0.element - (try model.score(x, at: t)).storage[$0.offset] }
        let (m, s) = sdeF.marginal(at: t)
        let r2 = v * s * s / (s * s + m * m * v), cdiag = sigmaY * sigmaY + r2   // A Aᵀ = I for a pixel selection
        func logLikelihood(_ z: Tensor) throws -> Double {
            let sc = try model.score(z, at: t)
            return pixels.enumerated().reduce(0.0) { acc, e in
                let xhat = (z.storage[e.element] + s * s * sc.storage[e.element]) / m
                let r = y[e.offset] - xhat
                return acc - 0.5 * r * r / cdiag
            }
        }
        let h = 1e-3
        for j in [0, 3, 5, 12] {
            var plus = x, minus = x
            plus.storage[j] += h; minus.storage[j] -= h
            let numeric = (try logLikelihood(plus) - logLikelihood(minus)) / (2 * h)
            #expect(abs(term[j] - numeric) <= 2e-3 * max(abs(numeric), 1), "coordinate \(j): guidance term \(term[j]) vs central difference \(numeric)")
        }
    }
}

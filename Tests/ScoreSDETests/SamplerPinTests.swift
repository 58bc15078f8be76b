import Foundation
import Testing
@testable import ScoreSDE

// Regression pins (issue 21: "a test pins each sampler's output on a fixed seed before the rebuild
// and compares after, bitwise"). Every sampler runs on exact Gaussian mixtures with a fixed seed and
// its output bytes are hashed (FNV-1a over the float64 bit patterns, plus the NFE). The pinned
// hashes were computed by the code *before* the allocation-free rewrite of the few-step predictors,
// AdaptiveUniPC and the constrained loop (branch `layout`, base 518e5c7): these tests assert that
// nothing changed a bit, not that the numbers are right (the closed-form tests do that).
// To re-derive after an intended change: SCORESDE_PRINT_PINS=1 swift test --filter SamplerPinTests.

/// FNV-1a 64 over the bit patterns of `x`'s values, then the NFE.
func pinHash(_ x: Tensor, nfe: Int) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ v: UInt64) {
        var v = v
        for _ in 0 ..< 8 { h ^= v & 0xff; h = h &* 0x100_0000_01b3; v >>= 8 }
    }
    for s in x.shape { mix(UInt64(s)) }
    for v in x.storage { mix(v.bitPattern) }
    mix(UInt64(nfe))
    return String(h, radix: 16)
}

struct PinCase: Sendable, CustomTestStringConvertible {
    let name: String
    let run: @Sendable () throws -> (Tensor, Int)
    var testDescription: String { name }
}

enum SamplerPins {
    static let ring = GaussianMixture.ring()
    static let rows = 96

    /// A PC / few-step run from the prior with seed 7 (PCSampler.sample: prior draw included).
    static func pc<SDE: ForwardSDE, P: Predictor, C: Corrector>(
        _ sde: SDE, _ mixture: GaussianMixture = ring, count: Int = rows, grid: TimeGrid, _ p: P, _ c: C,
        order: PCOrder = .correctorFirst, denoising: FinalDenoising = .lastPredictorMean, batchSize: Int? = nil,
        constraint: (any SamplingConstraint)? = nil, resampling: Resampling = .none
    ) throws -> (Tensor, Int) {
        let score = GaussianMixtureScore(mixture, diffusedBy: sde)
        let sampler = PCSampler(sde: sde, score: score, grid: grid, predictor: p, corrector: c, order: order,
                                denoising: denoising, batchSize: batchSize, constraint: constraint, resampling: resampling)
        var rng = RandomSource(seed: 7)
        let run = try sampler.sample(count: count, using: &rng)
        // The random source's position after the run is part of the behaviour too.
        var tail = rng
        let probe = Tensor.standardNormal(shape: [1, 2], using: &tail)
        return (Tensor(uncheckedShape: [run.samples.count + 2], storage: run.samples.storage + probe.storage), run.scoreEvaluations)
    }

    /// An adaptive SDE run from the prior: the samples, the random source's position after the run,
    /// each row's evaluations and rejections; NFE.
    static func adaptiveSDE<SDE: ForwardSDE, Score: ScoreModel>(_ sampler: AdaptiveSDESampler<SDE, Score>, count: Int,
                                                                seed: UInt64) throws -> (Tensor, Int) {
        var rng = RandomSource(seed: seed)
        let run = try sampler.sample(count: count, using: &rng)
        var tail = rng
        let probe = Tensor.standardNormal(shape: [1, 2], using: &tail)
        let values = run.samples.storage + probe.storage + run.perSampleEvaluations.map(Double.init) + run.perSampleRejections.map(Double.init)
        return (Tensor(uncheckedShape: [values.count], storage: values), run.scoreEvaluations)
    }

    static func uniform(_ n: Int, _ sde: some ForwardSDE, eps: Double = 1e-3) throws -> TimeGrid {
        try .uniform(steps: n, from: sde.T, to: eps)
    }

    static func spaced(_ s: TimeSpacing, _ n: Int, _ sde: some ForwardSDE, eps: Double = 1e-3) throws -> TimeGrid {
        try .spaced(s, steps: n, from: sde.T, to: eps, sde: sde)
    }

    static let cases: [PinCase] = [
        // Predictor-corrector samplers (Song et al. 2021).
        PinCase(name: "vp rd+langevin") { let s = try VPSDE(); return try pc(s, grid: try uniform(40, s), ReverseDiffusion(), try Langevin(snr: 0.16)) },
        PinCase(name: "ve rd+langevin") { let s = try VESDE(); return try pc(s, grid: try uniform(40, s, eps: 1e-5), ReverseDiffusion(), try Langevin(snr: 0.16)) },
        PinCase(name: "subvp em+langevin2") { let s = try SubVPSDE(); return try pc(s, grid: try uniform(30, s), EulerMaruyama(), try Langevin(snr: 0.1, steps: 2)) },
        PinCase(name: "vp em flow") { let s = try VPSDE(); return try pc(s, grid: try uniform(40, s), EulerMaruyama(probabilityFlow: true), NoCorrector()) },
        PinCase(name: "vp rd flow") { let s = try VPSDE(); return try pc(s, grid: try uniform(40, s), ReverseDiffusion(probabilityFlow: true), NoCorrector()) },
        PinCase(name: "ve ancestral") { let s = try VESDE(); return try pc(s, grid: try uniform(40, s, eps: 1e-5), AncestralSampling(for: s), NoCorrector()) },
        PinCase(name: "vp ancestral+langevin cumulative") {
            let s = try VPSDE(); return try pc(s, grid: try uniform(40, s), AncestralSampling(for: s), try Langevin(snr: 0.16, alpha: .cumulative))
        },
        PinCase(name: "vp langevin per-sample") {
            let s = try VPSDE(); return try pc(s, grid: try uniform(30, s), ReverseDiffusion(), try Langevin(snr: 0.16, norms: .perSample))
        },
        PinCase(name: "ve annealed langevin only") { let s = try VESDE(); return try pc(s, grid: try uniform(30, s, eps: 1e-5), NoPredictor(), try AnnealedLangevin(snr: 0.1, steps: 2)) },
        PinCase(name: "vp predictor-first tweedie batch 7") {
            let s = try VPSDE()
            return try pc(s, grid: try uniform(30, s), ReverseDiffusion(), try Langevin(snr: 0.16), order: .predictorFirst, denoising: .tweedie, batchSize: 7)
        },
        PinCase(name: "vp em no denoising gmm64") {
            let s = try VPSDE(); return try pc(s, .gaussian64(), count: 24, grid: try uniform(30, s), EulerMaruyama(), try Langevin(snr: 0.16), denoising: .none)
        },
        // Few-step predictors.
        PinCase(name: "vp ddim") { let s = try VPSDE(); return try pc(s, grid: try spaced(.logSNR, 12, s), try DDIM(), NoCorrector()) },
        PinCase(name: "ve ddim eta 1") { let s = try VESDE(); return try pc(s, grid: try spaced(.logSNR, 12, s, eps: 1e-5), try DDIM(eta: 1), NoCorrector()) },
        PinCase(name: "vp dpm++ 1") { let s = try VPSDE(); return try pc(s, grid: try spaced(.logSNR, 10, s), try DPMSolverPlusPlus(order: 1), NoCorrector()) },
        PinCase(name: "vp dpm++ 2") { let s = try VPSDE(); return try pc(s, grid: try spaced(.logSNR, 10, s), try DPMSolverPlusPlus(order: 2), NoCorrector()) },
        PinCase(name: "vp dpm++ 3") { let s = try VPSDE(); return try pc(s, grid: try spaced(.logSNR, 10, s), try DPMSolverPlusPlus(order: 3), NoCorrector()) },
        PinCase(name: "vp dpm++ 3 to zero") { let s = try VPSDE(); return try pc(s, grid: try uniform(10, s), try DPMSolverPlusPlus(order: 3), NoCorrector()) },
        PinCase(name: "ve dpm++ 3 lower-final threshold gmm64") {
            let s = try VESDE()
            return try pc(s, .gaussian64(), count: 24, grid: try spaced(.karras(rho: 7), 12, s, eps: 1e-5),
                          try DPMSolverPlusPlus(order: 3, orders: DPMSolverPlusPlus.lowerOrderFinal(order: 3, steps: 12), threshold: try DynamicThresholding(percentile: 0.9)),
                          NoCorrector())
        },
        PinCase(name: "subvp dpm++ 2 batch 5") { let s = try SubVPSDE(); return try pc(s, grid: try spaced(.timeQuadratic, 10, s), try DPMSolverPlusPlus(order: 2), NoCorrector(), batchSize: 5) },
        PinCase(name: "vp unipc 1 bh1") { let s = try VPSDE(); return try pc(s, grid: try spaced(.logSNR, 10, s), try UniPC(order: 1, variant: .bh1), NoCorrector()) },
        PinCase(name: "vp unipc 2") { let s = try VPSDE(); return try pc(s, grid: try spaced(.logSNR, 10, s), try UniPC(order: 2), NoCorrector()) },
        PinCase(name: "vp unipc 3") { let s = try VPSDE(); return try pc(s, grid: try spaced(.timePower(1.25), 10, s), try UniPC(order: 3), NoCorrector()) },
        PinCase(name: "vp unipc 3 to zero") { let s = try VPSDE(); return try pc(s, grid: try uniform(8, s), try UniPC(order: 3), NoCorrector()) },
        PinCase(name: "ve unipc 3 bh1 lower-final threshold gmm64") {
            let s = try VESDE()
            return try pc(s, .gaussian64(), count: 24, grid: try spaced(.karras(rho: 7), 12, s, eps: 1e-5),
                          try UniPC(order: 3, variant: .bh1, orders: DPMSolverPlusPlus.lowerOrderFinal(order: 3, steps: 12),
                                    threshold: try DynamicThresholding(percentile: 0.9)), NoCorrector())
        },
        PinCase(name: "vp heun") { let s = try VPSDE(); return try pc(s, grid: try spaced(.karras(rho: 7), 8, s), EDMHeun(), NoCorrector()) },
        PinCase(name: "ve heun to zero") { let s = try VESDE(); return try pc(s, grid: try uniform(8, s, eps: 1e-5), EDMHeun(), NoCorrector()) },
        PinCase(name: "vp sde-dpm++ 1") { let s = try VPSDE(); return try pc(s, grid: try spaced(.logSNR, 15, s), try SDEDPMSolverPlusPlus(order: 1), NoCorrector()) },
        PinCase(name: "vp sde-dpm++ 2") { let s = try VPSDE(); return try pc(s, grid: try spaced(.logSNR, 15, s), try SDEDPMSolverPlusPlus(order: 2), NoCorrector()) },
        PinCase(name: "vp sde-dpm++ 2 to zero") { let s = try VPSDE(); return try pc(s, grid: try uniform(10, s), try SDEDPMSolverPlusPlus(order: 2), NoCorrector()) },
        PinCase(name: "cosine unipc 3 dpm++ tweedie") {
            let s = try CosineVPSDE(); return try pc(s, grid: try spaced(.logSNR, 10, s), try DPMSolverPlusPlus(order: 3), NoCorrector(), denoising: .tweedie)
        },
        // Adaptive UniPC (both norms) from fixed latents.
        PinCase(name: "adaptive unipc batch") {
            let s = try VPSDE()
            var rng = RandomSource(seed: 7)
            let run = try AdaptiveUniPC(sde: s, score: GaussianMixtureScore(ring, diffusedBy: s), eps: 1e-3, tolerance: 1e-3).sample(count: rows, using: &rng)
            return (run.states, run.scoreEvaluations * 1000 + run.rejectedSteps)
        },
        PinCase(name: "adaptive unipc worst-row order 2 gmm64") {
            let s = try VESDE()
            var rng = RandomSource(seed: 7)
            let sampler = try AdaptiveUniPC(sde: s, score: GaussianMixtureScore(.gaussian64(), diffusedBy: s), eps: 1e-5, order: 2,
                                            absoluteTolerance: 2e-3, relativeTolerance: 2e-3, batchSize: 5, norm: .worstRow)
            let run = try sampler.sample(count: 24, using: &rng)
            return (run.states, run.scoreEvaluations * 1000 + run.rejectedSteps)
        },
        // The adaptive SDE solver (issue 21, init/step): pinned before its loop became init → step → solve
        // (branch issue21-controller, base 54992c3). The samples, the random source's position after
        // the run, and every row's evaluation and rejection counts.
        PinCase(name: "adaptive sde vp ring") {
            let s = try VPSDE()
            return try adaptiveSDE(try AdaptiveSDESampler(sde: s, score: GaussianMixtureScore(ring, diffusedBy: s), eps: 1e-3), count: rows, seed: 7)
        },
        PinCase(name: "adaptive sde ve gmm64 tweedie batch 5") {
            let s = try VESDE()
            return try adaptiveSDE(try AdaptiveSDESampler(sde: s, score: GaussianMixtureScore(.gaussian64(), diffusedBy: s), eps: 1e-5,
                                                          absoluteTolerance: 0.02, relativeTolerance: 0.05, denoising: .tweedie, batchSize: 5),
                                   count: 24, seed: 7)
        },
        PinCase(name: "adaptive sde subvp redraw") {
            let s = try SubVPSDE()
            return try adaptiveSDE(try AdaptiveSDESampler(sde: s, score: GaussianMixtureScore(ring, diffusedBy: s), eps: 1e-3, rejectedNoise: .redraw),
                                   count: rows, seed: 11)
        },
        PinCase(name: "adaptive sde cosine ring tight") {
            let s = try CosineVPSDE()
            return try adaptiveSDE(try AdaptiveSDESampler(sde: s, score: GaussianMixtureScore(ring, diffusedBy: s), eps: 1e-3,
                                                          absoluteTolerance: 0.002, relativeTolerance: 0.01),
                                   count: 48, seed: 12)
        },
        // Constrained runs (inpainting, RePaint, colorization, linear measurements).
        PinCase(name: "ve inpainting paper") {
            let s = try VESDE()
            return try pc(s, grid: try uniform(30, s, eps: 1e-5), ReverseDiffusion(), try Langevin(snr: 0.16),
                          constraint: try Inpainting(known: [0], values: [2.5], dimension: 2))
        },
        PinCase(name: "vp inpainting reference") {
            let s = try VPSDE()
            return try pc(s, grid: try uniform(30, s), ReverseDiffusion(), try Langevin(snr: 0.16),
                          constraint: try Inpainting(known: [1], values: [-1.5], dimension: 2, convention: .reference))
        },
        PinCase(name: "vp noisy inpainting repaint 3x4 tweedie") {
            let s = try VPSDE()
            return try pc(s, grid: try uniform(24, s), ReverseDiffusion(), try Langevin(snr: 0.16), denoising: .tweedie,
                          constraint: try Inpainting(known: [0], values: [2.0], dimension: 2, noiseStd: 0.3),
                          resampling: try Resampling(count: 3, jumpLength: 4))
        },
        PinCase(name: "ve inpainting dpm++ 2 gmm64") {
            let s = try VESDE()
            return try pc(s, .gaussian64(), count: 24, grid: try spaced(.logSNR, 12, s, eps: 1e-5), try DPMSolverPlusPlus(order: 2), NoCorrector(),
                          constraint: try Inpainting(known: Array(0 ..< 32), values: (0 ..< 32).map { Double($0 % 5) - 2 }, dimension: 64))
        },
        PinCase(name: "vp colorization") {
            let s = try VPSDE()
            let mixture = try GaussianMixture(means: [[1, 0, -1, 0.5, 0.5, 0.5], [-1, 1, 0, 0, -0.5, 1]], isotropicStds: [0.3, 0.2])
            let grey = try Tensor(shape: [1, 1, 2], storage: [0.2, -0.1])
            return try pc(s, mixture, count: 32, grid: try uniform(30, s), ReverseDiffusion(), try Langevin(snr: 0.16),
                          constraint: try Colorization(grey: grey, noiseStd: 0.05))
        },
        PinCase(name: "ve linear measurement noisy") {
            let s = try VESDE()
            let m = try LinearMeasurement(matrix: [[0.6, 0.8]], observation: [1.0], noiseStd: 0.2)
            return try pc(s, grid: try uniform(30, s, eps: 1e-5), ReverseDiffusion(), try Langevin(snr: 0.16),
                          constraint: LinearMeasurementConstraint(m, convention: .reference))
        },
        PinCase(name: "vp linear measurement unipc") {
            let s = try VPSDE()
            let m = try LinearMeasurement(matrix: [[1, -1]], observation: [0.5])
            return try pc(s, grid: try spaced(.logSNR, 12, s), try UniPC(order: 3), NoCorrector(), constraint: LinearMeasurementConstraint(m))
        },
        PinCase(name: "vp inpainting heun") {
            let s = try VPSDE()
            return try pc(s, grid: try spaced(.karras(rho: 7), 8, s), EDMHeun(), NoCorrector(),
                          constraint: try Inpainting(known: [0], values: [-3.0], dimension: 2))
        },
    ]

    /// Hashes computed by the code before the rewrite (see the header); the adaptive SDE ones by the
    /// code before its init/step API (54992c3).
    static let pinned: [String: String] = [
        "adaptive sde cosine ring tight": "70aface39390072b",
        "adaptive sde subvp redraw": "72980a6058208b66",
        "adaptive sde ve gmm64 tweedie batch 5": "560131308320e7ea",
        "adaptive sde vp ring": "e6ba20a76faadc50",
        "adaptive unipc batch": "4c3bc2e581349a40",
        "adaptive unipc worst-row order 2 gmm64": "7e71f0045ccd622",
        "cosine unipc 3 dpm++ tweedie": "d1d3b5532faccc4",
        "subvp dpm++ 2 batch 5": "d5c12ad6bc3fb390",
        "subvp em+langevin2": "2038fbaf1e3a6e21",
        "ve ancestral": "8e5404de83d8673a",
        "ve annealed langevin only": "52be9b0765878354",
        "ve ddim eta 1": "4ea0f1363d16441",
        "ve dpm++ 3 lower-final threshold gmm64": "74a7c4e42a70aced",
        "ve heun to zero": "48da2f4582d23dd3",
        "ve inpainting dpm++ 2 gmm64": "789a422ee290d93a",
        "ve inpainting paper": "5e7c87d2f4ee3df2",
        "ve linear measurement noisy": "651490fe231ecb2e",
        "ve rd+langevin": "bb2ddf26f00cb5a6",
        "ve unipc 3 bh1 lower-final threshold gmm64": "29b54a16a3b3e6e2",
        "vp ancestral+langevin cumulative": "1b3c9a363e5b95c9",
        "vp colorization": "376df338aed5c333",
        "vp ddim": "cb3e06721fcc05ae",
        "vp dpm++ 1": "d9bef2b9bda5f821",
        "vp dpm++ 2": "d25ea02a9faf3fd4",
        "vp dpm++ 3 to zero": "8e266dbdc1e98d60",
        "vp dpm++ 3": "34206a1ec35b51ed",
        "vp em flow": "362669048772a449",
        "vp em no denoising gmm64": "b91c9b6eac5b580e",
        "vp heun": "f0821c5dd2924ef7",
        "vp inpainting heun": "21166eea372587de",
        "vp inpainting reference": "cff2feb1b1650660",
        "vp langevin per-sample": "eb05e48e2de01ad3",
        "vp linear measurement unipc": "f780097f988352e",
        "vp noisy inpainting repaint 3x4 tweedie": "45b9848d3da2691",
        "vp predictor-first tweedie batch 7": "11f5402d83d2ea4",
        "vp rd flow": "66fc5e73f4e0c6a7",
        "vp rd+langevin": "c5c2962d1739d10d",
        "vp sde-dpm++ 1": "41ec5ec6938d842d",
        "vp sde-dpm++ 2 to zero": "aaa6f6744b7632f2",
        "vp sde-dpm++ 2": "f44d811c6b67c677",
        "vp unipc 1 bh1": "43f26913b912f70b",
        "vp unipc 2": "2cc9a259a940ebad",
        "vp unipc 3 to zero": "4f5efd126992f936",
        "vp unipc 3": "e2c79dd348b07216",
    ]
}

@Suite("Sampler output pins (bitwise, exact mixtures)")
struct SamplerPinTests {
    @Test(arguments: SamplerPins.cases)
    func outputBytesUnchanged(_ c: PinCase) throws {
        let (x, nfe) = try c.run()
        let hash = pinHash(x, nfe: nfe)
        if ProcessInfo.processInfo.environment["SCORESDE_PRINT_PINS"] != nil { print("PIN \"\(c.name)\": \"\(hash)\",") }
        #expect(hash == SamplerPins.pinned[c.name], "\(c.name): output bytes changed (hash \(hash))")
    }

    /// Same bytes on one thread as on all of them (the pins above run on all).
    @Test func pinsHoldOnOneThread() throws {
        for c in SamplerPins.cases.filter({ $0.name.contains("dpm++ 3") || $0.name.contains("adaptive") || $0.name.contains("colorization") }) {
            let (x, nfe) = try Parallel.$threadLimit.withValue(1) { try c.run() }
            #expect(pinHash(x, nfe: nfe) == SamplerPins.pinned[c.name], "\(c.name) on 1 thread")
        }
    }
}

import Foundation
import ScoreSDE

// MARK: - Digits sample quality (issue 19, item 7)

/// The sample-quality figures of issue 19 for a digits model (default: the shipped one; pass paths
/// of model files to compare, e.g. the previous weights from git history):
///
/// * 1000 samples of `scoresde sample --model digits`'s default sampler through the library
///   (reverse diffusion + Langevin at snr 0.16, 1000 uniform steps T → eps = the model's
///   likelihood eps, score_sde's denoising by the last predictor mean; NFE 2000; seed 0);
/// * the share of their values (data space) outside `[−0.5, 16.5]` (the measure) and
///   outside `[0, 17)`, the range of the dequantized values `k + u` a dequantized model is trained
///   on (its samples decode to levels by `floor`), with both shares of the training digits
///   dequantized the same way for reference (what a perfect model of `k + u` would give);
/// * the Fréchet distance in pixel space (64-D) to the 297 held-out digits of the samples decoded
///   to levels (`floor`, clamped to 0...16), against that of the 1500 training digits and of 1000
///   training digits (the same size as the samples: the estimate's upward bias depends on it);
/// * bits/dim (the library's ``Likelihood/evaluateDequantized(levels:topLevel:scaling:draws:using:)``,
///   one dequantization, 4 Rademacher probes, RKF45 rtol = atol = 1e-5, at the model's likelihood
///   eps) of the decoded samples and of the held-out digits, and of the samples' continuous values
///   (``Likelihood/evaluate(_:using:)`` in data space: no dequantization).
func digitsQualityBenchmark(paths: [String], count: Int = 1000, likelihoodRows: Int = 1000) throws {
    let train = try Digits.load(split: .train).images, heldOut = try Digits.load(split: .heldOut).images
    let flat = { (x: Tensor) -> Tensor in try! Tensor(shape: [x.rows, x.rowSize], storage: x.storage) }
    let (trainFlat, heldFlat) = (flat(train), flat(heldOut))
    var dq = RandomSource(seed: 5)
    let trainDequantized = try UniformDequantization.sample(levels: trainFlat, topLevel: 16, using: &dq)
    let fdTrain = try frechetDistance(trainFlat, heldFlat)
    let fdTrain1000 = try frechetDistance(trainFlat.rows(0 ..< 1000), heldFlat)
    print("  FD(first 1000 training digits, held-out) bootstrap s.e. \(f(try bootstrapSE(trainFlat.rows(0 ..< 1000), heldFlat), 2))")
    print("Digits sample quality (issue 19): \(count) samples, \(Parallel.threadCount) threads")
    print("  reference: training digits dequantized (k + u): outside [-0.5, 16.5] \(pct(shareOutside(-0.5 ... 16.5, of: trainDequantized).share)), outside [0, 17) \(pct(shareOutside(0 ... 16.999_999_999, of: trainDequantized).share))")
    print("  reference: FD(1500 training digits, 297 held-out) \(f(fdTrain, 2)); FD(first 1000 training digits, held-out) \(f(fdTrain1000, 2))")
    for path in paths.isEmpty ? ["digits-mlp"] : paths {
        let model = (path == "digits" || path == "digits-mlp") ? try PretrainedModels.digitsMLP() : try MLPScore.load(from: path)
        guard let sde = model.sde as? VPSDE else { print("  \(path): not a VP model; skipped"); continue }
        let eps = model.likelihoodEps ?? 1e-2   // the digits models here are all trained on [1e-2, 1]
        let pc = PCSampler(sde: sde, score: model, grid: try .uniform(steps: 1000, from: sde.T, to: eps),
                           predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
        var rng = RandomSource(seed: 0)
        var result: SamplingResult?
        let wall = try seconds { result = try pc.sample(count: count, using: &rng) }
        let x = flat(model.dataScaling.toData(result!.samples))
        let decoded = try Tensor(shape: x.shape, storage: x.storage.map { min(max(($0).rounded(.down), 0), 16) })
        let fd = try frechetDistance(decoded, heldFlat)
        print("  \(path): PC reverse diffusion + Langevin snr 0.16, 1000 steps, eps \(eps), denoise last-mean: NFE \(result!.scoreEvaluations), \(f(wall, 1)) s")
        print("    FD bootstrap s.e. (samples and held-out resampled, 50 times): \(f(try bootstrapSE(decoded, heldFlat), 2))")
        let a = shareOutside(-0.5 ... 16.5, of: x), b = shareOutside(0 ... 16.999_999_999, of: x)
        print("    outside [-0.5, 16.5]: \(pct(a.share)) (s.e. \(pct(a.standardError))); outside [0, 17): \(pct(b.share)) (s.e. \(pct(b.standardError))); min \(f(x.storage.min()!, 2)), max \(f(x.storage.max()!, 2))")
        print("    FD(samples decoded to levels, held-out) \(f(fd, 2)) vs training digits \(f(fdTrain, 2)) (1000 of them: \(f(fdTrain1000, 2)))")
        // evaluateDequantized adds the data scaling's log-Jacobian itself: its Likelihood must work in
        // model space (.continuous); the continuous values' data-space density takes .dataSpace.
        // The same sampler on the statically thresholded score (StaticThresholdedScore: the denoised
        // estimate clipped to the data range [0, 17), model space [-1, 1]).
        let clipped = try StaticThresholdedScore(model, sde: sde, range: -1 ... 1)
        let pcClipped = PCSampler(sde: sde, score: clipped, grid: try .uniform(steps: 1000, from: sde.T, to: eps),
                                  predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
        var crng = RandomSource(seed: 0)
        let xc = flat(model.dataScaling.toData(try pcClipped.sample(count: count, using: &crng).samples))
        let dc = try Tensor(shape: xc.shape, storage: xc.storage.map { min(max(($0).rounded(.down), 0), 16) })
        let ac = shareOutside(-0.5 ... 16.5, of: xc), bc = shareOutside(0 ... 16.999_999_999, of: xc)
        print("    same sampler, static thresholding to [0, 17): outside [-0.5, 16.5] \(pct(ac.share)), outside [0, 17) \(pct(bc.share)) (s.e. \(pct(bc.standardError))), "
              + "below -1 \(pct(Double(xc.storage.filter { $0 < -1 }.count) / Double(xc.count))) (default: \(pct(Double(x.storage.filter { $0 < -1 }.count) / Double(x.count)))); "
              + "FD \(f(try frechetDistance(dc, heldFlat), 2)) (s.e. \(f(try bootstrapSE(dc, heldFlat), 2)))")
        let ll = Likelihood(sde: sde, score: model, estimator: .rademacher(probes: 4), eps: model.likelihoodEps ?? eps,
                            solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5))
        var dataSpace = ll
        dataSpace.convention = .dataSpace(model.dataScaling)
        let rows = min(likelihoodRows, count)
        var lr = RandomSource(seed: 3)
        let own = try ll.evaluateDequantized(levels: decoded.rows(0 ..< rows), topLevel: 16, scaling: model.dataScaling, draws: 1, using: &lr)
        let held = try ll.evaluateDequantized(levels: heldFlat, topLevel: 16, scaling: model.dataScaling, draws: 1, using: &lr)
        let continuous = try dataSpace.evaluate(model.dataScaling.toModel(x.rows(0 ..< min(rows, 300))), using: &lr)
        print("    bits/dim (dequantized, 1 draw): own decoded samples (\(rows)) \(meanSE(own.bitsPerDim)), held-out (297) \(meanSE(held.bitsPerDim)); "
              + "continuous values of \(min(rows, 300)) samples, data space \(meanSE(continuous.bitsPerDim))")
    }
}

/// The bootstrap standard error of the Fréchet distance of two samples (both resampled with replacement).
func bootstrapSE(_ a: Tensor, _ b: Tensor, replicates: Int = 50) throws -> Double {
    var rng = RandomSource(seed: 77)
    var s = rng.stream(draw: rng.nextDraw(), row: 0)
    func resample(_ x: Tensor) throws -> Tensor {
        let d = x.rowSize
        var out = [Double]()
        for _ in 0 ..< x.rows { let i = Int(s.next() % UInt64(x.rows)); out.append(contentsOf: x.storage[i * d ..< (i + 1) * d]) }
        return try Tensor(shape: x.shape, storage: out)
    }
    var v = [Double]()
    for _ in 0 ..< replicates { v.append(try frechetDistance(resample(a), resample(b))) }
    let m = v.reduce(0, +) / Double(v.count)
    return (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1)).squareRoot()
}

private func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }

private func meanSE(_ v: [Double]) -> String {
    let n = Double(v.count), m = v.reduce(0, +) / n
    let s = (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / max(n - 1, 1) / n).squareRoot()
    return "\(f(m, 3)) (s.e. \(f(s, 3)))"
}

/// What the digits model's samples depend on (issue 19, item 7, the search for the speckles): one
/// model file, `count` samples per variant (same seed), each variant's shares below 0, above 17,
/// outside `[−0.5, 16.5]` and its FD to the held-out digits (decoded to levels). Variants: the
/// default PC sampler; without the Langevin corrector; its final denoising (Tweedie, none); the
/// probability-flow ODE; sampling down to 10⁻³ instead of the training eps; and the Gaussian base
/// alone (the network's output layer zeroed).
func digitsQualityExplore(path: String, count: Int = 500, only: [String]? = nil) throws {
    // PATH:raw loads a training checkpoint's raw (not EMA) weights.
    let model = (path == "digits" || path == "digits-mlp") ? try PretrainedModels.digitsMLP()
        : path.hasSuffix(":raw") ? try MLPScore.load(from: String(path.dropLast(4)), weights: .raw) : try MLPScore.load(from: path)
    guard let sde = model.sde as? VPSDE else { print("not a VP model"); return }
    let heldOut = try Digits.load(split: .heldOut).images
    let heldFlat = try Tensor(shape: [heldOut.rows, 64], storage: heldOut.storage)
    let eps = model.likelihoodEps ?? 1e-2   // the digits models here are all trained on [1e-2, 1]
    var zeroed = model.parameters
    for spec in model.architecture.parameterSpecs where spec.name.hasPrefix("output.") { for i in spec.range { zeroed[i] = 0 } }
    let gaussianOnly = try model.withParameters(zeroed)
    func report(_ name: String, _ samples: Tensor, nfe: Int, wall: Double, _ m: MLPScore = model) throws {
        let x = try Tensor(shape: [samples.rows, 64], storage: m.dataScaling.toData(samples).storage)
        let below = x.storage.filter { $0 < 0 }.count, above = x.storage.filter { $0 >= 17 }.count
        let n = Double(x.storage.count)
        let decoded = try Tensor(shape: x.shape, storage: x.storage.map { min(max($0.rounded(.down), 0), 16) })
        let rows = (0 ..< x.rows).filter { r in (0 ..< 64).contains { x.storage[r * 64 + $0] < -0.5 || x.storage[r * 64 + $0] > 16.5 } }.count
        print("  \(name): NFE \(nfe), \(f(wall, 0)) s: below 0 \(f(100 * Double(below) / n, 2))%, >= 17 \(f(100 * Double(above) / n, 2))%, "
              + "outside [-0.5, 16.5] \(f(100 * shareOutside(-0.5 ... 16.5, of: x).share, 2))% (rows with any: \(rows)), "
              + "< -1 \(f(100 * Double(x.storage.filter { $0 < -1 }.count) / n, 2))%, FD \(f(try frechetDistance(decoded, heldFlat), 2))")
    }
    func pc<S: ScoreModel, P: Predictor, C: Corrector>(_ name: String, _ m: MLPScore = model, score: S, predictor: P, corrector: C,
                                                       denoising: FinalDenoising = .lastPredictorMean, steps: Int = 1000, to end: Double = eps) throws {
        if let only, !only.contains(where: { name.hasPrefix($0) }) { return }
        let sampler = PCSampler(sde: sde, score: score, grid: try .uniform(steps: steps, from: sde.T, to: end), predictor: predictor,
                                corrector: corrector, denoising: denoising)
        var rng = RandomSource(seed: 0), r: SamplingResult?
        let wall = try seconds { r = try sampler.sample(count: count, using: &rng) }
        try report(name, r!.samples, nfe: r!.scoreEvaluations, wall: wall, m)
    }
    func pc<P: Predictor, C: Corrector>(_ name: String, _ m: MLPScore = model, predictor: P, corrector: C, denoising: FinalDenoising = .lastPredictorMean,
                                        steps: Int = 1000, to end: Double = eps) throws {
        try pc(name, m, score: m, predictor: predictor, corrector: corrector, denoising: denoising, steps: steps, to: end)
    }
    if model.architecture.classCount > 0 {
        // Labels of the first `count` training digits (file order: all classes, in their frequencies):
        // ancestral sampling of p(x) = Σ_y p(y) p(x | y) through the conditional score.
        let labels: [Int?] = Array(try Digits.load(split: .train).labels.prefix(count))
        try pc("conditional on training labels pc", score: try model.conditioned(on: labels), predictor: ReverseDiffusion(),
               corrector: try Langevin(snr: 0.16))
    }
    print("Digits explore: \(path), \(count) samples, eps \(eps)")
    try pc("pc (default)", predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
    try pc("rd only", predictor: ReverseDiffusion(), corrector: NoCorrector())
    try pc("pc tweedie", predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16), denoising: .tweedie)
    try pc("pc none", predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16), denoising: .none)
    try pc("pc snr 0.075", predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.075))
    try pc("pc eps 1e-3", predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16), to: 1e-3)
    let lo = model.dataScaling.toModel(try Tensor(shape: [1, 1], storage: [0])).storage[0]
    let hi = model.dataScaling.toModel(try Tensor(shape: [1, 1], storage: [Double(model.dequantizationLevels ?? 17)])).storage[0]
    let clipped = try StaticThresholdedScore(model, sde: sde, range: min(lo, hi) ... max(lo, hi))
    try pc("static pc", score: clipped, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
    try pc("static rd only", score: clipped, predictor: ReverseDiffusion(), corrector: NoCorrector())
    if only?.contains(where: { "static unipc".hasPrefix($0) }) ?? true {
        let sampler = PCSampler(sde: sde, score: clipped, grid: try .spaced(.logSNR, steps: 50, from: sde.T, to: eps, sde: sde),
                                predictor: try UniPC(order: 3), corrector: NoCorrector(), denoising: .none)
        var rng = RandomSource(seed: 0), r: SamplingResult?
        let wall = try seconds { r = try sampler.sample(count: count, using: &rng) }
        try report("static unipc-3 50", r!.samples, nfe: r!.scoreEvaluations, wall: wall)
    }
    for stop in [0.02, 0.03, 0.05, 0.08] {
        try pc("pc to \(stop) tweedie", predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16), denoising: .tweedie, to: stop)
        try pc("pc to \(stop) last-mean", predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16), to: stop)
    }
    try pc("gaussian base only pc", gaussianOnly, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
    for (name, predictor, nfe) in [("unipc-3 50", try UniPC(order: 3) as any Predictor, 50),
                                   ("unipc-3 50 threshold 0.995", try UniPC(order: 3, threshold: try DynamicThresholding(percentile: 0.995)), 50),
                                   ("sde-dpm++2 200", try SDEDPMSolverPlusPlus(order: 2), 200),
                                   ("sde-dpm++2 200 threshold 0.995", try SDEDPMSolverPlusPlus(order: 2, threshold: try DynamicThresholding(percentile: 0.995)), 200)] {
        if let only, !only.contains(where: { name.hasPrefix($0) }) { continue }
        func run<P: Predictor>(_ predictor: P) throws -> (SamplingResult, Double) {
            let sampler = PCSampler(sde: sde, score: model, grid: try .spaced(.logSNR, steps: nfe, from: sde.T, to: eps, sde: sde),
                                    predictor: predictor, corrector: NoCorrector(), denoising: .none)
            var rng = RandomSource(seed: 0), r: SamplingResult?
            let wall = try seconds { r = try sampler.sample(count: count, using: &rng) }
            return (r!, wall)
        }
        let (r, wall) = try run(predictor)
        try report(name, r.samples, nfe: r.scoreEvaluations, wall: wall)
    }
    if only == nil || only!.contains(where: { "ode".hasPrefix($0) }) {
        let ode = ODESampler(sde: sde, score: model, eps: eps, solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5))
        var rng = RandomSource(seed: 0), r: ODEResult?
        let wall = try seconds { r = try ode.sample(count: count, using: &rng) }
        try report("ode rkf45 1e-5", r!.states, nfe: r!.scoreEvaluations, wall: wall)
    }
}

/// Tweedie's denoiser `E[x₀ | x_t] = (x_t + std² s(x_t, t)) / m` of a digits model applied to real
/// noisy data (held-out digits, dequantized, diffused to `t`): the share of denoised values outside
/// `[0, 17)` and the RMSE to the clean values (levels). A model whose denoiser keeps real noisy
/// data in range but whose samples leave it has its errors upstream (larger t); one that fails
/// here has them at small t.
func digitsDenoiseDiagnostic(paths: [String]) throws {
    let heldOut = try Digits.load(split: .heldOut).images
    var rng = RandomSource(seed: 9)
    let clean = try UniformDequantization.sample(levels: try Tensor(shape: [heldOut.rows, 64], storage: heldOut.storage), topLevel: 16, using: &rng)
    for path in paths {
        let model = (path == "digits" || path == "digits-mlp") ? try PretrainedModels.digitsMLP() : try MLPScore.load(from: path)
        print("Tweedie denoising of held-out digits: \(path)")
        for t in [0.01, 0.02, 0.05, 0.1, 0.2, 0.4] {
            let (m, s) = model.sde.marginal(at: t)
            var noise = RandomSource(seed: 10)
            let z = Tensor.standardNormal(shape: [clean.rows, 1, 8, 8], using: &noise)
            let x0 = model.dataScaling.toModel(try Tensor(shape: [clean.rows, 1, 8, 8], storage: clean.storage))
            let xt = try Tensor(shape: x0.shape, storage: zip(x0.storage, z.storage).map { m * $0 + s * $1 })
            let score = try model.score(xt, at: t)
            let den = try Tensor(shape: x0.shape, storage: zip(xt.storage, score.storage).map { ($0 + s * s * $1) / m })
            let d = model.dataScaling.toData(den).storage, naive = model.dataScaling.toData(try Tensor(shape: x0.shape, storage: xt.storage.map { $0 / m })).storage
            let out = Double(d.filter { !($0 >= 0 && $0 < 17) }.count) / Double(d.count)
            let outNoisy = Double(naive.filter { !($0 >= 0 && $0 < 17) }.count) / Double(d.count)
            let rmse = (zip(d, clean.storage).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(d.count)).squareRoot()
            print("  t \(t): noise std \(f(s / model.dataScaling.scale, 2)) levels; x_t/m outside [0, 17) \(f(100 * outNoisy, 2))%; denoised outside \(f(100 * out, 2))%, RMSE \(f(rmse, 3)) levels")
        }
    }
}

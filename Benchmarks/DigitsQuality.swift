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
    print("Digits sample quality (issue 19): \(count) samples, \(Parallel.threadCount) threads")
    print("  reference: training digits dequantized (k + u): outside [-0.5, 16.5] \(pct(shareOutside(-0.5 ... 16.5, of: trainDequantized).share)), outside [0, 17) \(pct(shareOutside(0 ... 16.999_999_999, of: trainDequantized).share))")
    print("  reference: FD(1500 training digits, 297 held-out) \(f(fdTrain, 2)); FD(first 1000 training digits, held-out) \(f(fdTrain1000, 2))")
    for path in paths.isEmpty ? ["digits"] : paths {
        let model = path == "digits" ? try PretrainedModels.digits() : try MLPScore.load(from: path)
        guard let sde = model.sde as? VPSDE else { print("  \(path): not a VP model; skipped"); continue }
        let eps = max(1e-3, model.likelihoodEps ?? 0)
        let pc = PCSampler(sde: sde, score: model, grid: try .uniform(steps: 1000, from: sde.T, to: eps),
                           predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
        var rng = RandomSource(seed: 0)
        var result: SamplingResult?
        let wall = try seconds { result = try pc.sample(count: count, using: &rng) }
        let x = flat(model.dataScaling.toData(result!.samples))
        let decoded = try Tensor(shape: x.shape, storage: x.storage.map { min(max(($0).rounded(.down), 0), 16) })
        let fd = try frechetDistance(decoded, heldFlat)
        print("  \(path): PC reverse diffusion + Langevin snr 0.16, 1000 steps, eps \(eps), denoise last-mean: NFE \(result!.scoreEvaluations), \(f(wall, 1)) s")
        let a = shareOutside(-0.5 ... 16.5, of: x), b = shareOutside(0 ... 16.999_999_999, of: x)
        print("    outside [-0.5, 16.5]: \(pct(a.share)) (s.e. \(pct(a.standardError))); outside [0, 17): \(pct(b.share)) (s.e. \(pct(b.standardError))); min \(f(x.storage.min()!, 2)), max \(f(x.storage.max()!, 2))")
        print("    FD(samples decoded to levels, held-out) \(f(fd, 2)) vs training digits \(f(fdTrain, 2)) (1000 of them: \(f(fdTrain1000, 2)))")
        // evaluateDequantized adds the data scaling's log-Jacobian itself: its Likelihood must work in
        // model space (.continuous); the continuous values' data-space density takes .dataSpace.
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

private func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }

private func meanSE(_ v: [Double]) -> String {
    let n = Double(v.count), m = v.reduce(0, +) / n
    let s = (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / max(n - 1, 1) / n).squareRoot()
    return "\(f(m, 3)) (s.e. \(f(s, 3)))"
}

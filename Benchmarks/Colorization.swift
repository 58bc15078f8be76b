import Foundation
import ScoreSDE

// MARK: - Colorization on held-out patches (issue 12, item 6)

/// Colour RMSE of the shipped patches model on held-out photograph patches (the right quarter of
/// each photograph, ``ImagePatches/Split/heldOut``; the model saw only the left three quarters):
/// one colorization sample, the mean of k samples (the posterior-mean estimate), against the
/// grey image returned unchanged, and the share of samples that run away (colour RMSE above 60
/// before clamping). Replacement colorization (Song et al. 2021, App. I.3), reverse diffusion +
/// Langevin (snr 0.16), 1000 steps, as `scoresde colorize`: plain replacement (the previous
/// default), replacement with the state kept inside the diffused data range (``RangeLimited``,
/// margin 4 noise stds, the command's default), and RePaint resampling (Lugmayr et al. 2022;
/// 4 runs of blocks of 10 steps, `--method repaint`, 4x the NFE) without and with it; two seeds
/// (patches seed s, sampler seed s + 1). Levels 0...255, samples clamped.
func colorizationBenchmark() throws {
    let model = try PretrainedModels.patches()
    let sde = try model.sdeSpec.make()
    print("Colorization: 256 held-out patches (right quarter) x 4 samples, RD + Langevin (snr 0.16), 1000 steps; colour RMSE in levels 0...255, samples clamped")
    print("  | method | patches seed / sampler seed | grey image | one sample | mean of 4 | runaway samples | NFE | s |")
    for seed: UInt64 in [0, 1] {
        for (margin, repaint) in [(nil, false), (4.0, false), (nil, true), (4.0, true)] as [(Double?, Bool)] {
            try colorize(model, sde: sde, seed: seed, rangeMargin: margin, repaint: repaint)
        }
    }
}

func colorize<SDE: ForwardSDE>(_ model: MLPScore, sde: SDE, seed: UInt64, rangeMargin: Double?, repaint: Bool) throws {
    let n = 256, k = 4, plane = 64, d = 3 * plane, steps = 1000
    var rng = RandomSource(seed: seed)
    let truth = try ImagePatches.random(count: n, split: .heldOut, using: &rng)
    let grey = try ImagePatches.toGrey(truth)
    var greyRows = Tensor(zeros: [n * k, 1, 8, 8])
    for i in 0 ..< n * k { for j in 0 ..< plane { greyRows.storage[i * plane + j] = grey.storage[(i / k) * plane + j] } }
    let colorization = try Colorization(grey: model.dataScaling.toModel(greyRows), mixing: .reference)
    let constraint: any SamplingConstraint
    if let rangeMargin {
        // The data range 0...255 in model units.
        let ends = try model.dataScaling.toModel(Tensor(shape: [1, 2], storage: [0, 255])).storage
        constraint = try RangeLimited(colorization, lower: ends.min()!, upper: ends.max()!, margin: rangeMargin)
    } else {
        constraint = colorization
    }
    let grid = try TimeGrid.uniform(steps: steps, from: sde.T, to: model.sdeSpec.samplingEps)
    let sampler = PCSampler(sde: sde, score: model, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16),
                            constraint: constraint, resampling: repaint ? try Resampling(count: 4, jumpLength: 10) : .none)
    var out: SamplingResult?
    let wall = try seconds { var r = RandomSource(seed: seed + 1); out = try sampler.sample(count: n * k, using: &r) }
    let samples = model.dataScaling.toData(out!.samples)
    var single = 0.0, mean = 0.0, baseline = 0.0, runaway = 0
    for i in 0 ..< n {
        for r in i * k ..< (i + 1) * k {
            var raw = 0.0
            for j in 0 ..< d { let e = samples.storage[r * d + j] - truth.storage[i * d + j]; raw += e * e }
            if (raw / Double(d)).squareRoot() > 60 { runaway += 1 }
        }
        for j in 0 ..< d {
            let t = truth.storage[i * d + j]
            var m = 0.0
            for r in i * k ..< (i + 1) * k {
                let x = min(max(samples.storage[r * d + j], 0), 255)
                single += (x - t) * (x - t); m += x / Double(k)
            }
            mean += (m - t) * (m - t)
            let g = grey.storage[i * plane + j % plane] - t
            baseline += g * g
        }
    }
    let values = Double(n * d)
    let method = (repaint ? "RePaint 4x10" : "replacement") + (rangeMargin.map { ", range-limited (margin \(f($0, 0)))" } ?? "")
    print("  | \(method) | \(seed) / \(seed + 1) | \(f((baseline / values).squareRoot(), 2)) | \(f((single / (values * Double(k))).squareRoot(), 2)) | "
        + "\(f((mean / values).squareRoot(), 2)) | \(runaway) of \(n * k) | \(out!.scoreEvaluations) | \(f(wall, 1)) |")
}

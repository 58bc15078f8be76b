import Foundation
import ScoreSDE

// MARK: - Colorization on held-out patches (issue 12, item 6)

/// Colour RMSE of the shipped patches model on held-out photograph patches (the right quarter of
/// each photograph, ``ImagePatches/Split/heldOut``; the model saw only the left three quarters):
/// one colorization sample, the mean of k samples (the posterior-mean estimate), against the
/// grey image returned unchanged. Replacement colorization (Song et al. 2021, App. I.3), reverse
/// diffusion + Langevin (snr 0.16), 1000 steps, as `scoresde colorize`. Levels 0...255, samples clamped.
func colorizationBenchmark() throws {
    let model = try PretrainedModels.patches()
    try colorize(model, sde: model.sdeSpec.make())
}

func colorize<SDE: ForwardSDE>(_ model: MLPScore, sde: SDE) throws {
    let n = 256, k = 4, plane = 64, d = 3 * plane, steps = 1000
    var rng = RandomSource(seed: 0)
    let truth = try ImagePatches.random(count: n, split: .heldOut, using: &rng)
    let grey = try ImagePatches.toGrey(truth)
    var greyRows = Tensor(zeros: [n * k, 1, 8, 8])
    for i in 0 ..< n * k { for j in 0 ..< plane { greyRows.storage[i * plane + j] = grey.storage[(i / k) * plane + j] } }
    let constraint = try Colorization(grey: model.dataScaling.toModel(greyRows), mixing: .reference)
    let grid = try TimeGrid.uniform(steps: steps, from: sde.T, to: model.sdeSpec.samplingEps)
    let sampler = PCSampler(sde: sde, score: model, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16),
                            constraint: constraint)
    var out: SamplingResult?
    let wall = try seconds { var r = RandomSource(seed: 1); out = try sampler.sample(count: n * k, using: &r) }
    let samples = model.dataScaling.toData(out!.samples)
    var single = 0.0, mean = 0.0, baseline = 0.0
    for i in 0 ..< n {
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
    print("Colorization: \(n) held-out patches (right quarter, seed 0) x \(k) samples, replacement, RD + Langevin, \(steps) steps, NFE \(out!.scoreEvaluations), \(f(wall, 1)) s")
    print("  colour RMSE (levels 0...255): grey image unchanged \(f((baseline / values).squareRoot(), 2)), one sample \(f((single / (values * Double(k))).squareRoot(), 2)), mean of \(k) samples \(f((mean / values).squareRoot(), 2))")
}

import Foundation
import ScoreSDE

// MARK: - Inverse problems on Fashion-MNIST test images (issue 22, item 5)

/// `scoresde-bench fashion-inverse [--images N] [--samples K] [--steps S] [--tasks a,b] [--methods a,b] [--seed s]`:
/// the shipped Fashion-MNIST U-Net on the first N test images (never seen in training) for each
/// ``ImageInverseTask`` — centre 14×14 square, right half, a random half of the pixels, 2×
/// super-resolution by 2×2 averaging — with each method: replacement / projection (Song et al.
/// 2021, App. I.2 and I.4), RePaint (Lugmayr et al. 2022; 2 runs of blocks of 10 steps), DPS (Chung
/// et al. 2023; ζ = 1, through the U-Net's vector–Jacobian products) and ΠGDM (Song et al. 2023;
/// v = the training images' mean per-pixel variance in model units). Reverse diffusion, S steps
/// from T to 1e-3, the unconditional (null-label) score, K samples per image. Prints RMSE (levels
/// 0...255, on the unknown pixels; every pixel for super-resolution) and PSNR, each with its
/// standard error over images, of one sample and of the mean of K, next to the task's baseline
/// (the training image nearest on the known pixels; bicubic up-sampling), NFE and wall time.
func fashionInverseBenchmark(arguments: [String]) throws {
    func value(_ name: String) -> String? {
        guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
        return arguments[i + 1]
    }
    let n = Int(value("--images") ?? "") ?? 500, k = Int(value("--samples") ?? "") ?? 4
    let steps = Int(value("--steps") ?? "") ?? 100, seed = UInt64(value("--seed") ?? "") ?? 0
    let tasks = try (value("--tasks")?.split(separator: ",").map(String.init) ?? ImageInverseTask.allCases.map(\.rawValue)).map { name in
        guard let t = ImageInverseTask(rawValue: name) else {
            throw ScoreSDEError.unknownName("--tasks: '\(name)' is not one of \(ImageInverseTask.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return t
    }
    let methods = value("--methods")?.split(separator: ",").map(String.init) ?? ["replace", "repaint", "dps", "pigdm"]
    for m in methods where !["replace", "repaint", "dps", "pigdm"].contains(m) {
        throw ScoreSDEError.unknownName("--methods: '\(m)' is not one of replace, repaint, dps, pigdm")
    }
    guard n >= 2, k >= 1, steps >= 2 else { throw ScoreSDEError.invalidArgument("need --images >= 2, --samples >= 1, --steps >= 2") }
    let model = try PretrainedModels.fashion()
    let score = try model.conditioned(on: nil)
    try fashionInverse(model: model, score: score, sde: model.sdeSpec.make(), n: n, k: k, steps: steps, seed: seed, tasks: tasks, methods: methods)
}

func fashionInverse<SDE: ForwardSDE>(model: UNetScore, score: UNetScore, sde: SDE, n: Int, k: Int, steps: Int, seed: UInt64,
                                    tasks: [ImageInverseTask], methods: [String]) throws {
        let test = try FashionMNIST.testSplitForEvaluation(), train = try FashionMNIST.trainingSplit()
    let truth = test.images.rows(0 ..< n)
    // ΠGDM's prior variance per value: the training images' mean per-pixel variance, model units.
    let xm = model.dataScaling.toModel(train.images)
    let d = xm.rowSize
    var v = 0.0
    for j in 0 ..< d {
        var s = 0.0, s2 = 0.0
        for r in 0 ..< xm.rows { let a = xm.storage[r * d + j]; s += a; s2 += a * a }
        let mean = s / Double(xm.rows)
        v += (s2 / Double(xm.rows) - mean * mean) / Double(d)
    }
    print("Fashion-MNIST inverse problems: the first \(n) test images x \(k) samples, reverse diffusion, \(steps) steps (T -> 1e-3), "
          + "null-label score; RMSE in levels 0...255 and PSNR (dB, peak 255), mean over images ± s.e.; PiGDM v = \(String(format: "%.3f", v))")
    print("| task | method | one sample RMSE | mean of \(k) RMSE | mean of \(k) PSNR | NFE | passes | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    func f(_ s: ReconstructionScore, psnr: Bool = false) -> String {
        psnr ? String(format: "%.2f ± %.2f", s.psnr, s.psnrStandardError) : String(format: "%.2f ± %.2f", s.rmse, s.rmseStandardError)
    }
    for task in tasks {
        let setup = try task.setup(truth: truth, imageShape: [1, 28, 28], seed: seed)
        let base = try ReconstructionScore(estimates: setup.baseline(training: train.images), truth: setup.truth, pixels: setup.scoredPixels)
        print("| \(task.rawValue) | baseline (\(task == .superResolution2x ? "bicubic" : "nearest training image on the known pixels")) | \(f(base)) | | \(f(base, psnr: true)) | | | |")
        let grid = try TimeGrid.spaced(.timeUniform, steps: steps, from: sde.T, to: 1e-3, sde: sde)
        for method in methods {
            var rng = RandomSource(seed: seed).derived(7)
            let start = Date()
            let result: SamplingResult
            let constraint: any SamplingConstraint = task == .superResolution2x
                ? LinearMeasurementConstraint(try setup.measurement(scaling: model.dataScaling, samplesPerImage: k))
                : try setup.inpainting(scaling: model.dataScaling, samplesPerImage: k)
            switch method {
            case "replace", "repaint":
                result = try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: NoCorrector(),
                                       denoising: .lastPredictorMean, constraint: constraint,
                                       resampling: method == "repaint" ? try Resampling(count: 2, jumpLength: 10) : .none)
                    .sample(count: n * k, rowShape: [1, 28, 28], using: &rng)
            default:
                let likelihood: MeasurementLikelihood = method == "dps" ? .dps(stepScale: 1) : .pseudoinverse(dataVariance: v)
                let guided = try MeasurementGuidedScore(base: score, sde: sde, measurement: setup.measurement(scaling: model.dataScaling, samplesPerImage: k),
                                                        likelihood: likelihood)
                result = try PCSampler(sde: sde, score: guided, grid: grid, predictor: ReverseDiffusion(), corrector: NoCorrector(),
                                       denoising: .lastPredictorMean)
                    .sample(count: n * k, rowShape: [1, 28, 28], using: &rng)
            }
            var samples = model.dataScaling.toData(result.samples)
            for i in samples.storage.indices { samples.storage[i] = min(max(samples.storage[i], 0), 255) }
            let first = try Tensor(shape: [n, 1, 28, 28], storage: (0 ..< n).flatMap { samples.row($0 * k) })
            let one = try ReconstructionScore(estimates: first, truth: setup.truth, pixels: setup.scoredPixels)
            let mean = try ReconstructionScore(estimates: ReconstructionScore.meanOfSamples(samples, perImage: k), truth: setup.truth, pixels: setup.scoredPixels)
            print("| \(task.rawValue) | \(method) | \(f(one)) | \(f(mean)) | \(f(mean, psnr: true)) | \(result.scoreEvaluations) | \(result.modelPasses) | "
                  + String(format: "%.0f", Date().timeIntervalSince(start)) + " |")
        }
    }
}

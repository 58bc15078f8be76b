// Fashion: the shipped Fashion-MNIST U-Net (PretrainedModels.fashion()) — samples per class,
// inpainting of held-out test images, and bits/dim of test images.
//
//     swift run -c release Fashion --output fashion.png
//
// The model is a class-conditional U-Net (1.1 M float32 parameters, VP SDE, ε-prediction, trained
// by `scoresde train --data fashion-mnist --labels own`; the README's model card). It works in
// x' = 2k/255 − 1 (its dataScaling): test images go in through toModel, samples come out in pixel
// levels 0 ... 255 through toData.
//
// 1. Samples `--per-class` images of every class with classifier-free guidance (GLIDE / diffusers
//    scale w, the model card's 2 by default: s(x,t,∅) + w (s(x,t,y) − s(x,t,∅)), two network
//    passes per score) and DPM-Solver++(2M) on a logSNR grid of `--steps` steps.
// 2. Inpaints the centre 14 × 14 square of the first `--inpaint` test images (never seen in
//    training) by replacement (Song et al. 2021, App. I.2: after every reverse-diffusion step the
//    known pixels are overwritten with a forward-noised copy of the observation), 4 samples each,
//    and prints the root-mean-square error on the unknown pixels (levels 0 ... 255) of one sample
//    and of the mean of the 4 against the task's baseline, the training image nearest on the
//    visible pixels (ImageInverseTask.centreSquare: mask, baseline and ReconstructionScore), and
//    the mean training image.
// 3. Computes the bits/dim of `--likelihood` random test images: uniform dequantization k + u, the
//    probability-flow ODE on GSL's rkf45 (rtol = atol = 1e-4) from t = 1e-5, Hutchinson's
//    estimator with one Rademacher probe (vector–Jacobian products through the U-Net), in
//    data space (8 = a uniform guess over the 256 levels).
import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

struct FashionExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Fashion",
        abstract: "Sample by class, inpaint test images and compute bits/dim with the shipped Fashion-MNIST U-Net.")

    @Option(help: "Where to write the PNG (samples, one row per class; inpainting table).")
    var output = "fashion.png"
    @Option(help: "Samples per class.")
    var perClass = 8
    @Option(help: "DPM-Solver++(2M) steps for the class samples.")
    var steps = 20
    @Option(help: "Classifier-free guidance scale w (default: the model card's).")
    var guidanceScale: Double?
    @Option(help: "Test images to inpaint (centre 14 x 14 square unknown; 0 skips).")
    var inpaint = 4
    @Option(help: "Reverse-diffusion steps of the inpainting sampler.")
    var inpaintSteps = 100
    @Option(help: "Random test images whose bits/dim to compute (0 skips).")
    var likelihood = 2
    @Option(help: "Seed of every random draw.")
    var seed: UInt64 = 0

    func validate() throws {
        guard perClass >= 1, steps >= 1, inpaint >= 0, inpaintSteps >= 2, likelihood >= 0 else {
            throw ValidationError("--per-class and --steps must be >= 1, --inpaint-steps >= 2, --inpaint and --likelihood >= 0")
        }
        if let w = guidanceScale, !w.isFinite { throw ValidationError("--guidance-scale must be finite") }
    }

    func run() throws {
        let model = try PretrainedModels.fashion()
        try run(model, sde: model.sdeSpec.make())
    }

    func run<SDE: ForwardSDE>(_ model: UNetScore, sde: SDE) throws {
        let names = FashionMNIST.classNames
        let eps = model.sdeSpec.samplingEps
        var panels = [RasterImage]()

        // 1. Samples per class.
        let w = guidanceScale ?? PretrainedModels.recommendedGuidanceScale("fashion") ?? 1
        let labels = (0 ..< 10 * perClass).map { $0 / perClass }
        let guided = try model.classifierFreeGuided(labels: labels, guidanceScale: w)
        let grid = try TimeGrid.spaced(.logSNR, steps: steps, from: sde.T, to: eps, sde: sde)
        var rng = RandomSource(seed: seed)
        let start = Date()
        let run = try PCSampler(sde: sde, score: guided, grid: grid, predictor: try DPMSolverPlusPlus(order: 2),
                                corrector: NoCorrector(), denoising: .none)
            .sample(count: labels.count, rowShape: [1, 28, 28], using: &rng)
        let samples = model.dataScaling.toData(run.samples)
        print("class samples: \(labels.count) with w = \(w), NFE \(run.scoreEvaluations) (\(guided.passesPerEvaluation) network passes each), "
              + String(format: "%.1f s", Date().timeIntervalSince(start)))
        var rows = [RasterImage]()
        for c in 0 ..< 10 {
            rows.append(Plot.titled(try Plot.imageGrid(samples.rows(c * perClass ..< (c + 1) * perClass), range: 0 ... 255,
                                                       columns: perClass, scale: 2), "\(c): \(names[c])"))
        }
        panels.append(Plot.titled(Plot.stacked(rows, padding: 4), "samples, w = \(w), DPM-Solver++(2M) \(steps) steps"))

        let test = try FashionMNIST.testSplitForEvaluation()
        // 2. Inpainting of the centre square: the library's ImageInverseTask (mask, baseline, scoring).
        if inpaint > 0 {
            let k = 4, n = inpaint
            let setup = try ImageInverseTask.centreSquare.setup(truth: test.images.rows(0 ..< n), imageShape: [1, 28, 28])
            // One observation row per sample (each input repeated k times), in model space.
            let constraint = try setup.inpainting(scaling: model.dataScaling, samplesPerImage: k)
            let unconditional = try model.conditioned(on: nil)
            let igrid = try TimeGrid.spaced(.timeUniform, steps: inpaintSteps, from: sde.T, to: eps, sde: sde)
            var irng = RandomSource(seed: seed).derived(1)
            let irun = try PCSampler(sde: sde, score: unconditional, grid: igrid, predictor: ReverseDiffusion(), corrector: NoCorrector(),
                                     constraint: constraint).sample(count: n * k, rowShape: [1, 28, 28], using: &irng)
            var filled = model.dataScaling.toData(irun.samples)
            for i in filled.storage.indices { filled.storage[i] = min(max(filled.storage[i], 0), 255) }
            let one = try ReconstructionScore(estimates: try Tensor(shape: [n, 1, 28, 28], storage: (0 ..< n).flatMap { filled.row($0 * k) }),
                                              truth: setup.truth, pixels: setup.scoredPixels)
            let mean = try ReconstructionScore(estimates: ReconstructionScore.meanOfSamples(filled, perImage: k),
                                               truth: setup.truth, pixels: setup.scoredPixels)
            let train = try FashionMNIST.trainingSplit().images
            let baseline = try ReconstructionScore(estimates: setup.baseline(training: train), truth: setup.truth, pixels: setup.scoredPixels)
            // A weaker reference: the mean training image copied into the hole.
            let meanImage = try ReconstructionScore.meanOfSamples(train, perImage: train.rows)
            var meanFilled = setup.truth
            for r in 0 ..< n { for p in setup.scoredPixels { meanFilled.storage[r * 784 + p] = meanImage.storage[p] } }
            let blur = try ReconstructionScore(estimates: meanFilled, truth: setup.truth, pixels: setup.scoredPixels)
            print("inpainting (centre 14x14, \(n) test images, \(k) samples each, NFE \(irun.scoreEvaluations)): RMSE on the hole, levels 0...255, ± s.e. over images:")
            print(String(format: "  one sample %.1f ± %.1f, mean of %d samples %.1f ± %.1f; baselines: the training image nearest on the visible pixels %.1f ± %.1f, mean training image %.1f ± %.1f",
                         one.rmse, one.rmseStandardError, k, mean.rmse, mean.rmseStandardError, baseline.rmse, baseline.rmseStandardError,
                         blur.rmse, blur.rmseStandardError))
            var shown = setup.truth
            for r in 0 ..< n { for p in setup.scoredPixels { shown.storage[r * 784 + p] = 127.5 } }
            panels.append(Plot.titled(try Plot.imageTable([
                Plot.ImageColumn("observed", shown), Plot.ImageColumn("samples", filled, perRow: k), Plot.ImageColumn("original", setup.truth),
            ], range: 0 ... 255, scale: 2), "inpainting, replacement, \(inpaintSteps) steps"))
        }

        // 3. Bits/dim of a seeded random subset of the test images.
        if likelihood > 0 {
            let x = try Dataset.named("fashion-mnist-test", count: likelihood, seed: seed).data
            var lrng = RandomSource(seed: seed).derived(2)
            let solver = ODESolverOptions(.rkf45, absoluteTolerance: 1e-4, relativeTolerance: 1e-4)
            let lik = Likelihood(sde: sde, score: try model.conditioned(on: nil), estimator: .rademacher(probes: 1), eps: 1e-5, solver: solver)
            let t0 = Date()
            let r = try lik.evaluateDequantized(levels: x, topLevel: 255, scaling: model.dataScaling, draws: 1, using: &lrng)
            let mean = r.bitsPerDim.reduce(0, +) / Double(r.bitsPerDim.count)
            print(String(format: "bits/dim of %d random test images: mean %.3f (each: %@), NFE %d, %.1f s",
                         likelihood, mean, r.bitsPerDim.map { String(format: "%.3f", $0) }.joined(separator: ", "),
                         r.scoreEvaluations, Date().timeIntervalSince(t0)))
        }

        try PNG.write(Plot.sideBySide(panels, padding: 24, alignment: .top), to: output)
        print("wrote \(output)")
    }
}

FashionExample.main()

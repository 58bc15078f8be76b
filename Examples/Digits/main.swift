// Digits: sample the shipped digits score model and measure its bits/dim on held-out digits.
//
//     swift run -c release Digits --output digits.png
//
// 1. Loads the trained 8 x 8 digits model that ships with the package (PretrainedModels.digits(), a
//    U-Net; --model digits-mlp the earlier MLP), or any weights file or checkpoint given with --model.
// 2. Draws a grid of digits with the recommended few-step sampler (FewStepRecommendation: UniPC,
//    20 NFE by default), or with the predictor-corrector sampler (reverse diffusion + Langevin,
//    --steps N), and writes it as a PNG.
// 3. Computes bits/dim of the 297 held-out digits (never seen in training) with the exact
//    likelihood of the probability-flow ODE, the divergence by Hutchinson's estimator (or exactly,
//    from 64 Jacobian-vector products, with --exact-divergence).
//
// Bits/dim convention (the reference's uniform dequantization, for any data scaling). The digits
// take L = 17 raw levels k = 0...16, and the model was trained on m = scale * k + shift (its
// recorded data scaling; a model trained without dequantization: m = k / 8 - 1, i.e. [-1, 1]). As the reference maps
// 8-bit images to (k + u) / 256 in [0, 1), the digits are dequantized onto the model's range,
//     m = shift + scale * (L - 1) * (k + u) / L,    u ~ U[0, 1) per pixel,
// so each level owns a model-space bin of width w = |scale| (L - 1) / L, and
//     log P(k) >= E_u log p(m) + D log w               (Jensen)
//     bits/dim  = -log p(m) / (D ln 2) - log2 w         (offset log2(17/2) = 3.09 for [-1, 1];
//                                                       for 8-bit images this is the reference's 7, or 8 for [0, 1]).
// A uniform guess over the 17 levels scores log2(17) = 4.09 bits/dim. The shipped models are trained
// on dequantized digits (the U-Net through a logit of (k + u) / 17, the MLP m = 2 (k + u) / 17 - 1,
// which states its likelihood at its training eps, 1e-2): Likelihood.evaluateDequantized gives bits
// per level directly, the scaling's log-Jacobian included.
import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

struct DigitsExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Digits",
        abstract: "Sample the shipped digits model (recommended few-step sampler) and compute bits/dim of held-out digits.")

    @Option(help: "Where to write the PNG grid of sampled digits.")
    var output = "digits.png"
    @Option(help: "digits (the shipped U-Net, default), digits-mlp (the shipped MLP), or a weights file or checkpoint from `scoresde train`.")
    var model = "digits"
    @Option(help: "Digits to sample (a near-square grid).")
    var count = 64
    @Option(help: "Score evaluations of the recommended few-step sampler (without --steps).")
    var nfe = 20
    @Option(help: "Use the PC sampler with this many steps instead (reverse diffusion + Langevin: 2 NFE per step; VP needs > 20).")
    var steps: Int?
    @Option(help: "Held-out digits to evaluate (at most 297; 0 skips the likelihood).")
    var likelihoodCount = Digits.heldOutCount
    @Flag(help: "Exact divergence (64 Jacobian-vector products per ODE step) instead of Hutchinson's estimator (1 Rademacher probe).")
    var exactDivergence = false
    @Option(help: "Seed of the sampler, the dequantization noise and the Hutchinson probes.")
    var seed: UInt64 = 1

    func validate() throws {
        guard count >= 1, (steps ?? 1) >= 1 else { throw ValidationError("--count and --steps must be >= 1") }
        guard nfe >= 2 else { throw ValidationError("--nfe must be >= 2") }
        guard (0 ... Digits.heldOutCount).contains(likelihoodCount) else {
            throw ValidationError("--likelihood-count must be in 0...\(Digits.heldOutCount)")
        }
    }

    func run() throws {
        let model = PretrainedModels.names.contains(PretrainedModels.canonicalName(self.model))
            ? try PretrainedModels.learned(self.model) : try ModelFile.loadScoreModel(self.model)
        print("model: \(self.model) (\(type(of: model))), \(model.sdeSpec), trained on m = \(model.dataScaling)")
        // The sampler takes the SDE's concrete type, which Swift opens from the existential when calling run.
        try run(model, sde: model.sdeSpec.make(), eps: model.sdeSpec.samplingEps)
    }

    func run<SDE: ForwardSDE, Model: LearnedScoreModel>(_ model: Model, sde: SDE, eps: Double) throws {
        let clock = ContinuousClock()

        // MARK: Sample
        var t0 = clock.now
        var rng = RandomSource(seed: seed)
        let run: SamplingResult, how: String
        if let steps {
            run = try PCSampler(sde: sde, score: model, grid: try .uniform(steps: steps, from: sde.T, to: eps),
                                predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16)).sample(count: count, using: &rng)
            how = "reverse diffusion + Langevin (snr 0.16), \(steps) steps"
        } else {
            let (predictor, spacing) = try FewStepRecommendation.for(nfe: nfe, dimension: 64)
            run = try PCSampler(sde: sde, score: model, grid: try .spaced(spacing, steps: nfe, from: sde.T, to: eps, sde: sde),
                                predictor: predictor, corrector: NoCorrector(), denoising: .none).sample(count: count, using: &rng)
            how = "recommended few-step sampler (UniPC-\(predictor.order), \(spacing))"
        }
        let digits = model.dataScaling.toData(run.samples)             // raw levels 0...16 (not rounded)
        // Samples next to as many held-out digits, 64 pixels per digit.
        let range = 0 ... Double(Digits.levels - 1), columns = Int(Double(count).squareRoot().rounded(.up))
        let real = try Digits.load(split: .heldOut).subset(0 ..< min(count, Digits.heldOutCount)).images
        let figure = Plot.sideBySide([
            Plot.titled(try Plot.imageGrid(digits, range: range, columns: columns, scale: 8), "samples"),
            Plot.titled(try Plot.imageGrid(real, range: range, columns: columns, scale: 8), "held-out digits"),
        ], padding: 24)
        try PNG.write(Plot.titled(figure, "Digits: \(steps == nil ? "UniPC" : "PC"), NFE \(run.scoreEvaluations)"), to: output)
        print("sampled \(count) digits: \(how), NFE \(run.scoreEvaluations), \(seconds(clock.now - t0)) s -> \(output)")

        // MARK: Bits/dim of held-out digits
        guard likelihoodCount > 0 else { return }
        t0 = clock.now
        let heldOut = try Digits.load(split: .heldOut).subset(0 ..< likelihoodCount).images
        let levels = Double(Digits.levels)
        // A model trained on dequantized digits (the shipped ones) records its levels (and the MLP the
        // eps its likelihood is stated at); its data scaling already maps k + u in [0, 17) to model space.
        let eps = model.likelihoodEps ?? 1e-5
        let likelihood = Likelihood(sde: sde, score: model,
                                    estimator: exactDivergence ? .exact : .rademacher(probes: 1), eps: eps,
                                    solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5))
        let bpd: [Double], nfe: Int, what: String
        if model.dequantizationLevels == Digits.levels {
            let r = try likelihood.evaluateDequantized(levels: heldOut, topLevel: Digits.levels - 1, scaling: model.dataScaling,
                                                       draws: 1, using: &rng)
            (bpd, nfe) = (r.bitsPerDim, r.scoreEvaluations)
            what = "dequantized k + u, \(model.dataScaling) with x = k + u, bits/dim = -log p(k + u) / (64 ln 2)"
        } else {
            let bin = model.dataScaling.scale * (levels - 1) / levels                   // model-space width of one level
            let kPlusU = try DataNormalization.none.dequantize(heldOut, levels: Digits.levels, using: &rng)   // k + u
            let x = try DataScaling(scale: bin, shift: model.dataScaling.shift).toModel(kPlusU)
            let result = try likelihood.evaluate(x, using: &rng)           // convention .continuous: no offset yet
            let offset = -log2(abs(bin))
            (bpd, nfe) = (result.bitsPerDim.map { $0 + offset }, result.scoreEvaluations)
            what = "dequantized m = \(affine(bin, "(k + u)", model.dataScaling.shift)), bits/dim = -log p(m) / (64 ln 2) + \(fmt(offset, 3))"
        }
        let summary = LikelihoodSummary(bitsPerDim: bpd, threshold: log2(levels))
        print("held-out digits: \(likelihoodCount), \(what)")
        print("bits/dim: \(fmt(summary.mean, 3)) +- \(fmt(summary.standardError, 3)) (mean +- standard error); median \(fmt(summary.median, 3)); max \(fmt(summary.max, 3)); \(summary.countAboveThreshold) of \(bpd.count) above a uniform guess over the 17 levels (\(fmt(log2(levels), 3)))")
        print("likelihood: \(exactDivergence ? "exact divergence (64 JVPs per right-hand side)" : "Hutchinson, 1 Rademacher probe"), RKF45 rtol = atol = 1e-5, eps \(eps), NFE \(nfe), \(seconds(clock.now - t0)) s")
    }
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
/// `"a x + b"` with the sign of `b` written as an operator.
func affine(_ a: Double, _ x: String, _ b: Double) -> String {
    "\(String(format: "%.4g", a)) \(x) \(b < 0 ? "-" : "+") \(String(format: "%.4g", abs(b)))"
}
func seconds(_ d: Duration) -> String {
    let (s, atto) = d.components
    return fmt(Double(s) + Double(atto) * 1e-18, 1)
}

DigitsExample.main()

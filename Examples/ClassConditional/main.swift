// ClassConditional: digits of a chosen class from the shipped class-conditional digits model, with
// classifier-free guidance and with classifier guidance.
//
//     swift run -c release ClassConditional --output classes.png
//
// 1. Loads the shipped digits score model (class-conditional, trained with label dropout 0.2, so
//    its null label gives the unconditional score) and the shipped noise-aware digits classifier.
// 2. Samples one row per class 0...9 with DPM-Solver++(2M) (30 steps, logSNR grid, T → 1e-2):
//    - classifier-free guidance (Ho & Salimans 2022) in score form with the GLIDE / diffusers
//      scale w: s(x,t,∅) + w (s(x,t,y) − s(x,t,∅)) — w = 1 the conditional model;
//    - classifier guidance (Dhariwal & Nichol 2021): s(x,t) + w ∇ₓ log p_t(y | x), with s the
//      unconditional score and p_t the noise-aware classifier; DPM-Solver++ reads it as ADM's
//      ε-form ε − w σ_t ∇ log p_t(y | x).
// 3. Prints, for each, the fraction of samples the classifier (at the final time) puts in the
//    requested class, and writes both grids side by side.
import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

struct ClassConditionalExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ClassConditional",
        abstract: "Sample digits by class with classifier-free and classifier guidance (shipped digits model and classifier).")

    @Option(help: "Where to write the PNG (one row per class).")
    var output = "classes.png"
    @Option(help: "Classifier-free guidance scale w (GLIDE / diffusers form; 1 = the conditional model).")
    var guidanceScale = 2.0
    @Option(help: "Classifier guidance scale w (score form s + w ∇ log p_t(y|x); 1 = Bayes' rule).")
    var classifierScale = 2.0
    @Option(help: "Samples per class.")
    var perClass = 8
    @Option(help: "DPM-Solver++(2M) steps.")
    var steps = 30
    @Option(help: "Seed of the prior draws.")
    var seed: UInt64 = 1

    func validate() throws {
        guard perClass >= 1, steps >= 1 else { throw ValidationError("--per-class and --steps must be >= 1") }
        guard guidanceScale.isFinite, classifierScale.isFinite else { throw ValidationError("guidance scales must be finite") }
    }

    func run() throws {
        let model = try PretrainedModels.digitsMLP()
        let classifier = try PretrainedClassifiers.digitsMLP()
        try run(model, classifier, sde: model.sdeSpec.make())
    }

    func run<SDE: ForwardSDE>(_ model: MLPScore, _ classifier: NoiseAwareClassifier, sde: SDE) throws {
        let eps = model.likelihoodEps ?? model.sdeSpec.samplingEps
        let labels = (0 ..< 10 * perClass).map { $0 / perClass }       // one label per sample row
        let grid = try TimeGrid.spaced(.logSNR, steps: steps, from: sde.T, to: eps, sde: sde)
        let cfg = try model.classifierFreeGuided(labels: labels, guidanceScale: guidanceScale)
        let guided = try model.classifierGuided(by: classifier, labels: labels, scale: classifierScale)

        func sample(_ score: some ScoreModel, _ name: String) throws -> Tensor {
            var rng = RandomSource(seed: seed)
            let run = try PCSampler(sde: sde, score: score, grid: grid, predictor: try DPMSolverPlusPlus(order: 2),
                                    corrector: NoCorrector(), denoising: .none).sample(count: labels.count, using: &rng)
            let predicted = try classifier.predict(run.samples, at: eps)
            let hits = zip(predicted, labels).filter { $0 == $1 }.count
            print("\(name): NFE \(run.scoreEvaluations), \(score.passesPerEvaluation) network passes each; "
                  + "\(hits) of \(labels.count) samples classified as their class (classifier at t = \(eps))")
            return model.dataScaling.toData(run.samples)                 // levels 0...16
        }
        let a = try sample(cfg, "classifier-free guidance, w = \(guidanceScale)")
        let b = try sample(guided, "classifier guidance, w = \(classifierScale)")
        let range = 0 ... Double(Digits.levels - 1)
        let figure = Plot.sideBySide([
            Plot.titled(try Plot.imageGrid(a, range: range, columns: perClass, scale: 6), "classifier-free, w = \(guidanceScale)"),
            Plot.titled(try Plot.imageGrid(b, range: range, columns: perClass, scale: 6), "classifier, w = \(classifierScale)"),
        ], padding: 24)
        try PNG.write(Plot.titled(figure, "Digits 0-9 (one row per class), DPM-Solver++(2M), \(steps) steps"), to: output)
        print("wrote \(output)")
    }
}

ClassConditionalExample.main()

import Foundation
import ScoreSDE
import ScoreSDEPlot

// MARK: - Class-conditional digits: the fidelity–diversity trade-off of guidance

/// For the shipped class-conditional digits model, per guidance kind (classifier-free with the
/// model's own null label; classifier guidance of its unconditional score with the shipped
/// noise-aware digits classifier) and scale w ∈ {0, 1, 2, 4} (score form: CFG `s_∅ + w (s_y − s_∅)`,
/// classifier `s + w ∇ log p_t(y|x)`), samples `perClass` digits of each class with DPM-Solver++(2M),
/// 30 steps on a logSNR grid from T to the model's eps 1e-2, and reports:
/// - accuracy: the fraction a judge — a classifier trained on clean digits (t fixed at 1e-2, the
///   first 1500 digits, dequantized like the model) — assigns to the requested class; the judge's
///   own accuracy on the 297 held-out digits is printed first;
/// - diversity: the mean pairwise Euclidean distance (data space, levels 0...16) between the
///   samples of one class, averaged over classes, and its ratio to the real digits' (all 1797).
/// Writes `classes.png` (rows: classes; columns: kind and w) next to the working directory.
func classesBenchmark(perClass: Int = 100, output: String = "classes.png") throws {
    print("\n== Class-conditional digits: guidance kind and scale vs accuracy and diversity ==")
    let model = try PretrainedModels.digitsMLP()
    let noisy = try PretrainedClassifiers.digitsMLP()
    let sde = try model.sdeSpec.make()
    let eps = model.likelihoodEps ?? 1e-2
    let train = try Digits.load(split: .train), heldOut = try Digits.load(split: .heldOut), all = try Digits.load(split: .all)

    // The judge: the same classifier network trained on (almost) clean digits.
    let judgeArch = NoiseAwareClassifier.Architecture(rowShape: [1, 8, 8], classCount: 10, hiddenWidth: 128, residualBlocks: 2, fourierFeatures: 16)
    let judgeConfig = ClassifierTrainingConfiguration(sde: model.sdeSpec, architecture: judgeArch, dataScaling: model.dataScaling, seed: 7,
                                                      batchSize: 128, learningRate: 1e-3, warmup: 100, emaRate: 0.999,
                                                      minTime: eps, maxTime: eps, dequantizationLevels: model.dequantizationLevels)
    let trainer = try ClassifierTrainer(configuration: judgeConfig, data: train.images, labels: train.labels)
    let trainSeconds = try seconds { try trainer.train(steps: 3000) }
    let judge = trainer.emaClassifier
    let judgeAccuracy = try ClassifierTrainer.accuracy(of: judge, data: heldOut.images, labels: heldOut.labels, at: eps, seed: 1,
                                                       dequantizationLevels: model.dequantizationLevels)
    let noisyAccuracy = try [eps, 0.25, 0.5, 0.75].map {
        try ClassifierTrainer.accuracy(of: noisy, data: heldOut.images, labels: heldOut.labels, at: $0, seed: 1, dequantizationLevels: model.dequantizationLevels)
    }
    print("judge: clean-digit classifier (t = \(eps), 3000 steps, \(f(trainSeconds, 1)) s): held-out accuracy \(f(judgeAccuracy)) on the last \(heldOut.images.rows) digits")
    print("shipped noise-aware classifier, held-out accuracy at t = \(eps), 0.25, 0.5, 0.75: \(noisyAccuracy.map { f($0) }.joined(separator: ", "))")

    func meanPairwise(_ x: Tensor) -> Double {
        let n = x.rows, d = x.rowSize
        var sum = 0.0
        for i in 0 ..< n { for j in i + 1 ..< n {
            var s = 0.0
            for k in 0 ..< d { let a = x.storage[i * d + k] - x.storage[j * d + k]; s += a * a }
            sum += s.squareRoot()
        } }
        return sum / Double(n * (n - 1) / 2)
    }
    let realDiversity = (0 ..< 10).map { c in meanPairwise(all.subset(all.labels.indices.filter { all.labels[$0] == c }).images) }
        .reduce(0, +) / 10
    print("real digits: mean within-class pairwise distance \(f(realDiversity, 2)) (levels 0...16)")

    let rows = (0 ..< 10 * perClass).map { $0 / perClass }
    let grid = try TimeGrid.spaced(.logSNR, steps: 30, from: sde.T, to: eps, sde: sde)
    var columns = [Plot.ImageColumn]()
    print("kind        w    accuracy  worst class    diversity  vs real   s/run  passes/NFE")
    for kind in ["classifier-free", "classifier"] {
        for w in [0.0, 1, 2, 4] {
            let score: any ScoreModel = kind == "classifier-free"
                ? try model.classifierFreeGuided(labels: rows, guidanceScale: w)
                : try model.classifierGuided(by: noisy, labels: rows, scale: w)
            var rng = RandomSource(seed: 11)
            var samples = Tensor(zeros: [1])
            let s = try seconds {
                samples = try sampleGuided(sde, score, grid: grid, count: rows.count, using: &rng)
            }
            let predicted = try judge.predict(samples, at: eps)
            let perClassAccuracy = (0 ..< 10).map { c in Double((0 ..< perClass).filter { predicted[c * perClass + $0] == c }.count) / Double(perClass) }
            let data = model.dataScaling.toData(samples)
            let diversity = (0 ..< 10).map { c in meanPairwise(data.rows(c * perClass ..< (c + 1) * perClass)) }.reduce(0, +) / 10
            let worst = perClassAccuracy.indices.min { perClassAccuracy[$0] < perClassAccuracy[$1] }!
            let acc = perClassAccuracy.reduce(0, +) / 10
            print("\(kind.padding(toLength: 16, withPad: " ", startingAt: 0)) \(f(w, 0))    \(f(acc))     \(worst): \(f(perClassAccuracy[worst], 2))       \(f(diversity, 2))      \(f(diversity / realDiversity, 2))    \(f(s, 1))    \(score.passesPerEvaluation)")
            print("    per class: " + perClassAccuracy.map { f($0, 2) }.joined(separator: " "))
            // Four samples per class for the figure.
            let shown = (0 ..< 10).flatMap { c in (0 ..< 4).map { c * perClass + $0 } }
            var storage = [Double]()
            for r in shown { storage += data.row(r) }
            columns.append(Plot.ImageColumn("\(kind == "classifier" ? "classifier" : "CFG") w=\(f(w, 0)) acc \(f(acc, 2)) div \(f(diversity / realDiversity, 2))",
                                            try Tensor(shape: [shown.count, 8, 8], storage: storage), perRow: 4))
        }
    }
    let table = try Plot.imageTable(columns, range: 0 ... 16, scale: 4, padding: 2)
    try PNG.write(Plot.titled(table, "Digits by class (rows 0-9): guidance kind and scale w (score form); accuracy by a clean-digit judge, diversity vs real"), to: output)
    print("wrote \(output)")
}

/// DPM-Solver++(2M) without a corrector, on the concrete types (the existentials are opened here).
func sampleGuided<S: ForwardSDE, M: ScoreModel>(_ sde: S, _ score: M, grid: TimeGrid, count: Int, using rng: inout RandomSource) throws -> Tensor {
    try PCSampler(sde: sde, score: score, grid: grid, predictor: try DPMSolverPlusPlus(order: 2), corrector: NoCorrector(), denoising: .none)
        .sample(count: count, using: &rng).samples
}

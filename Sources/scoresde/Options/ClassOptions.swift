import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

/// `sample`'s class-conditional options: `--class`, classifier-free `--guidance-scale`, and
/// classifier guidance (`--classifier`, `--classifier-scale`).
struct ClassOptions: ParsableArguments {
    @Option(name: .customLong("class"), help: ArgumentHelp(
        "Sample a class-conditional model (trained with `train --labels`, such as the shipped digits) at this class, or at each class of a comma-separated list (e.g. 0,1,2,3,4,5,6,7,8,9): the samples are split evenly between the listed classes in order (--count must be a multiple of the list's length; without --count: 8 per class for image models, 4096 rounded down to a multiple of it otherwise), and --png draws one row per class. Without --class a conditional model samples unconditionally (its null label).",
        valueName: "y|y1,y2,..."))
    var classes: String?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Classifier-free guidance scale w in the GLIDE / diffusers convention: score = s(x,t,null) + w (s(x,t,y) - s(x,t,null)); 0 unconditional, 1 the plain conditional model (default; the shipped fashion model: 2, fixed by its model card), > 1 guided (Ho & Salimans' w is this w - 1). Two network passes per score evaluation when w != 1.",
        valueName: "w"))
    var guidanceScale: Double?

    @Option(help: ArgumentHelp(
        "Classifier guidance with a noise-aware classifier: 'digits' (shipped MLP, for --model digits), 'digits-mlp' (for --model digits-mlp), 'fashion' (shipped convolutional, for --model fashion or any Fashion-MNIST model with VP 0.1...20 and scaling 2x/255 - 1) or a PATH.safetensors from `scoresde train-classifier` (MLP or convolutional, trained with the model's SDE and scaling: `--like MODEL`). Needs --class. The base score is the model's unconditional one (a conditional model's null label), or the classifier-free guided score when --guidance-scale is given too.",
        valueName: "digits|digits-mlp|fashion|PATH.safetensors"))
    var classifier: String?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Classifier guidance scale w in score form: score = s(x,t) + w grad_x log p_t(y|x) (default 1, Bayes' rule; 0 no guidance; > 1 sharper classes). Few-step samplers read it in ADM's eps-form eps - w std(t) grad log p_t(y|x), the same thing.",
        valueName: "w"))
    var classifierScale: Double?

    /// The parsed class list.
    var labels: [Int]? {
        get throws {
            guard let classes else { return nil }
            let parts = classes.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let values = parts.map { Int($0) }
            guard !parts.isEmpty, values.allSatisfy({ $0 != nil }) else {
                throw ValidationError("--class takes a class label or a comma-separated list of them, e.g. 3 or 0,1,2 (got '\(classes)')")
            }
            return values.map { $0! }
        }
    }

    func validate() throws {
        _ = try labels
        if let w = guidanceScale {
            if !w.isFinite { throw ValidationError("--guidance-scale must be finite (got \(w))") }
            if classes == nil { throw ValidationError("--guidance-scale guides towards a class; add --class") }
        }
        if let w = classifierScale {
            if !w.isFinite { throw ValidationError("--classifier-scale must be finite (got \(w))") }
            if classifier == nil { throw ValidationError("--classifier-scale is the weight of classifier guidance; add --classifier digits|PATH.safetensors") }
        }
        if classifier != nil, classes == nil { throw ValidationError("--classifier guides towards a class; add --class") }
    }

    /// Samples per listed class for `count` samples (throws unless `count` splits evenly).
    func perClass(count: Int) throws -> Int {
        guard let l = try labels, l.count > 1 else { return count }
        guard count % l.count == 0 else {
            throw ScoreSDEError.invalidArgument("--count \(count) does not split evenly between the \(l.count) classes of --class; give a multiple of \(l.count) (e.g. \(l.count * max(1, count / l.count)))")
        }
        return count / l.count
    }

    /// The default number of samples with a list of L classes: 8 per class for image models (one
    /// PNG row each), else `fallback` rounded down to a multiple of L (so it splits evenly).
    func defaultCount(image: Bool, fallback: Int) throws -> Int? {
        guard let l = try labels, l.count > 1 else { return nil }
        return image ? 8 * l.count : max(l.count, fallback / l.count * l.count)
    }

    /// The score to sample: the model's own without --class, else the classifier-free guided score
    /// of a class-conditional learned model (one label per sample row).
    func score(_ data: DataModel, diffusedBy sde: any ForwardSDE, count: Int) throws -> any ScoreModel {
        guard let list = try labels else { return data.score(diffusedBy: sde) }
        guard let model = data.learned else {
            throw ScoreSDEError.invalidArgument("--class needs a class-conditional learned model (trained with `scoresde train --labels`, e.g. --model digits); \(data.name) is a Gaussian mixture without class labels")
        }
        let per = try perClass(count: count)
        let rows: [Int] = list.count == 1 ? [list[0]] : (0 ..< count).map { list[$0 / per] }
        if let name = classifier {
            let clf = try loadClassifier(name)
            do { try clf.checkCompatible(with: model, name: data.name) } catch ScoreSDEError.invalidArgument(let message) {
                // Another class count, SDE or data scaling: the CLI's way to match them is --like.
                throw ScoreSDEError.invalidArgument("--classifier \(name): \(message) (`scoresde train-classifier --like \(data.name)`)")
            }
            if let bad = list.first(where: { $0 < 0 || $0 >= clf.classCount }) {
                throw ScoreSDEError.invalidArgument("--class \(bad) is not a class of the classifier \(name), whose classes are 0...\(clf.classCount - 1)")
            }
            if case .conv(let c) = clf, c.trainingTimes.upperBound < 0.5 * c.sde.T {
                fputs("note: the classifier \(name) was trained on t in [\(c.trainingTimes.lowerBound), \(c.trainingTimes.upperBound)] only; guidance needs a noise-aware classifier trained on all noise levels (train-classifier without --max-time)\n", stderr)
            }
            let w = classifierScale ?? 1
            if guidanceScale != nil {
                let base = try classifierFree(model, data: data, list: list, rows: rows)
                return try clf.guided(base, labels: rows, scale: w)
            }
            if case .mlp(let m) = clf, let mlp = model as? MLPScore { return try mlp.classifierGuided(by: m, labels: rows, scale: w) }
            try requireFinite(w)
            return try clf.guided(model, labels: rows, scale: w)
        }
        return try classifierFree(model, data: data, list: list, rows: rows)
    }

    private func requireFinite(_ w: Double) throws {
        guard w.isFinite else { throw ScoreSDEError.invalidArgument("the classifier guidance scale must be finite (got \(w))") }
    }

    /// The classifier-free guided score at `rows` (checks that the model is conditional and knows the classes).
    func classifierFree(_ model: any LearnedScoreModel, data: DataModel, list: [Int], rows: [Int]) throws -> any ScoreModel {
        guard model.classCount > 0 else {
            throw ScoreSDEError.invalidArgument("--class: the model \(data.name) is unconditional (trained without --labels); train one with `scoresde train --labels own`, guide it with a classifier (--classifier), or drop --class")
        }
        if let bad = list.first(where: { $0 < 0 || $0 >= model.classCount }) {
            throw ScoreSDEError.invalidArgument("--class \(bad) is not a class of \(data.name), whose classes are 0...\(model.classCount - 1)")
        }
        return try model.classifierFreeGuidedScore(labels: rows, guidanceScale: guidanceScale(for: data.name))
    }

    /// `--classifier`: the shipped classifier of that name, or a file (MLP or convolutional, by its `classifier.kind`).
    func loadClassifier(_ name: String) throws -> LoadedClassifier {
        if !FileManager.default.fileExists(atPath: name) {
            if PretrainedClassifiers.names.contains(name) { return .mlp(try PretrainedClassifiers.named(name)) }
            if PretrainedClassifiers.convolutionalNames.contains(name) { return .conv(try PretrainedClassifiers.convolutional(named: name)) }
        }
        guard FileManager.default.fileExists(atPath: name) || name.hasSuffix(".safetensors") else {
            throw ScoreSDEError.unknownName("--classifier '\(name)' is neither a shipped classifier (\((PretrainedClassifiers.names + PretrainedClassifiers.convolutionalNames).joined(separator: ", "))) nor a .safetensors file from `scoresde train-classifier`")
        }
        let file = try Safetensors.read(name)
        if file.metadata[ClassifierFile.kindKey] == "conv" { return .conv(try ConvolutionalClassifier.load(file)) }
        return .mlp(try NoiseAwareClassifier.load(file))
    }

    /// `--guidance-scale`, else the shipped model's recommended scale, else 1 (the conditional model).
    func guidanceScale(for model: String) -> Double {
        guidanceScale ?? PretrainedModels.recommendedGuidanceScale(model) ?? 1
    }

    /// Settings for the stats file.
    func stats(model: String) -> RunStats {
        var s = RunStats()
        s["class"] = classes.map { .string($0) } ?? .null
        s["guidance_scale"] = classes == nil || (classifier != nil && guidanceScale == nil) ? .null : .double(guidanceScale(for: model))
        s["classifier"] = classifier.map { .string($0) } ?? .null
        s["classifier_scale"] = classifier == nil ? .null : .double(classifierScale ?? 1)
        s["classifier_convention"] = classifier == nil ? .null : .string("s(x,t) + w grad_x log p_t(y|x) (score form; eps-form eps - w std(t) grad log p_t(y|x))")
        s["guidance_convention"] = classes == nil ? .null : .string("s(x,t,null) + w (s(x,t,y) - s(x,t,null)) (GLIDE / diffusers w; Ho & Salimans' w is w - 1)")
        return s
    }

    /// Image samples of a class list: one grid row per listed class, each under its label and,
    /// for a shipped model that knows them, its class name (e.g. "3: Dress").
    func figure(_ samples: Tensor, model: DataModel, title: String) throws -> RasterImage? {
        guard let l = try labels, !l.isEmpty, SampleFigure.isImage(samples.rowShape) else { return nil }
        let names = PretrainedModels.classNames(model.name)
        func caption(_ c: Int) -> String { names.flatMap { c < $0.count ? "\(c): \($0[c])" : nil } ?? "class \(c)" }
        guard l.count > 1 else {
            return try SampleFigure.render(samples, model: model, title: title + " | " + caption(l[0]))
        }
        let per = samples.rows / l.count, shown = min(per, 16)
        var rows = [RasterImage]()
        for (i, c) in l.enumerated() {
            let picked = samples.rows(i * per ..< i * per + shown)
            rows.append(Plot.titled(try Plot.imageGrid(picked, range: model.imageRange, columns: shown,
                                                      scale: max(2, SampleFigure.imageScale(samples.rowShape) / 2)), caption(c)))
        }
        return Plot.titled(Plot.stacked(rows, padding: 4), title + " | one row per class")
    }
}

/// A `--classifier` of either network.
enum LoadedClassifier {
    case mlp(NoiseAwareClassifier)
    case conv(ConvolutionalClassifier)

    var classCount: Int {
        switch self {
        case .mlp(let c): return c.classCount
        case .conv(let c): return c.classCount
        }
    }

    func checkCompatible(with model: any LearnedScoreModel, name: String) throws {
        switch self {
        case .mlp(let c): try c.checkCompatible(with: model, name: name)
        case .conv(let c): try c.checkCompatible(with: model, name: name)
        }
    }

    /// ``ClassifierGuidedScore`` of `base` towards `labels` (Swift opens the existential).
    func guided(_ base: any ScoreModel, labels: [Int], scale w: Double) throws -> any ScoreModel {
        switch self {
        case .mlp(let c): return try Self.guided(base, c.targeting(labels), w)
        case .conv(let c): return try Self.guided(base, c.targeting(labels), w)
        }
    }

    private static func guided<B: ScoreModel, C: NoisyClassifier>(_ base: B, _ classifier: C, _ w: Double) -> any ScoreModel {
        ClassifierGuidedScore(base: base, classifier: classifier, scale: w)
    }
}

import ArgumentParser
import Foundation
import ScoreSDE

extension ScoreSDECommand {
    /// `scoresde train-classifier`: a noise-aware classifier for classifier guidance.
    struct TrainClassifier: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train-classifier",
            abstract: "Train a noise-aware classifier p_t(y | x) for classifier guidance (or, clean, a feature classifier).",
            discussion: """
                Trains a time-conditioned classifier with cross-entropy on noisy samples \
                x_t = m(t) x0 + std(t) z of labelled data at times t uniform on [--min-time, --max-time] \
                (ADM's noisy classifier, Dhariwal & Nichol 2021), with Adam, warm-up, gradient clipping \
                and an EMA of the weights. Guide a score model with it: \
                `scoresde sample --model M --class 3 --classifier FILE --classifier-scale 2`. \
                With --max-time equal to --min-time it is an ordinary (clean) classifier, whose \
                penultimate features serve the sample-quality metrics.

                --model conv (the default for images of at least 16 x 16, such as fashion-mnist) is the \
                U-Net's encoder with the time embedding, global average pooling, Linear(C -> F) + SiLU \
                features and the logits, float32 on oneDNN (--channels, --layers-per-block, --features, \
                --mid-attention, --norm-groups); --model mlp (the default otherwise) is the MLP \
                (--hidden, --blocks, --fourier-features).

                The classifier must see the noisy data of the model it guides: --like MODEL takes the \
                SDE, data scaling and dequantization of that score model (a shipped name or a \
                .safetensors); without it, --sde (default vp) and --scaling (default: the data set's) \
                decide. Checkpoints, --resume, Ctrl-C and --export-weights behave as in `train`. \
                --test-split also reports the accuracy on the data set's held-out test split.
                """
        )

        @OptionGroup(title: "Progress") var progressOptions: ProgressOptions

        @Option(help: ArgumentHelp("The labelled training data: a built-in data set (digits, fashion-mnist, or a 2-D toy: ring, moons, swissroll, checkerboard) or a .npy file with --labels PATH.npy; the test splits (digits-test, fashion-mnist-test) are refused.", valueName: "name|PATH.npy"))
        var data: String

        @Option(help: ArgumentHelp("'own' (default): the built-in data set's labels; PATH.npy: one integer label per data row.", valueName: "own|PATH.npy"))
        var labels: String = "own"

        @Option(parsing: .unconditional, help: ArgumentHelp("Built-in data sets: use this many rows (default: all).", valueName: "n"))
        var count: Int?

        @Option(help: ArgumentHelp("Take the SDE, data scaling and dequantization of this score model (shipped name or PATH.safetensors): the model the classifier will guide.", valueName: "name|PATH.safetensors"))
        var like: String?

        @Option(help: "Without --like: the forward SDE, ve, vp (default) or subvp (default parameters).")
        var sde: SDEName?

        // `schedule` would be shadowed by run()'s checkpoint schedule.
        @Option(name: .customLong("schedule"), help: "Without --like: VP's noise schedule, linear (default) or cosine (improved DDPM's, s = 0.008, T = 0.9946).")
        var noiseSchedule: ScheduleName?

        @Option(help: ArgumentHelp("Without --like: the data scaling, unit, symmetric or none (default: the data set's).", valueName: "unit|symmetric|none"))
        var scaling: ScalingName?

        @Flag(help: "Without --like: uniformly dequantize integer data (k + u) as a model trained with `train --dequantize`.")
        var dequantize = false

        @Option(parsing: .unconditional, help: ArgumentHelp("Smallest training time (default: the SDE's sampling eps, or the --like model's likelihood eps).", valueName: "t"))
        var minTime: Double?

        @Option(parsing: .unconditional, help: ArgumentHelp("Largest training time (default: T). Near --min-time: an (almost) clean classifier.", valueName: "t"))
        var maxTime: Double?

        @Option(help: "The network: mlp or conv (default: the network whose options are given, else conv for images [C, H, W] with H, W >= 16 and mlp otherwise).")
        var model: ClassifierModelName?

        @OptionGroup(title: "Convolutional classifier (--model conv)") var conv: ConvClassifierOptions

        @Option(parsing: .unconditional, help: "--model mlp: hidden width (default: 128).") var hidden: Int?
        @Option(parsing: .unconditional, help: "--model mlp: residual blocks (default: 2).") var blocks: Int?
        @Option(parsing: .unconditional, help: "--model mlp: random Fourier features of the time embedding (default: 16).") var fourierFeatures: Int?
        @Option(parsing: .unconditional, help: "Total training steps of the run (with --resume: including the checkpoint's).") var steps: Int = 2000
        @Option(parsing: .unconditional, help: "Examples per step (default: 128).") var batchSize: Int?
        @Option(name: .customLong("lr"), parsing: .unconditional, help: "Adam learning rate (default: 1e-3).") var learningRate: Double?
        @Option(parsing: .unconditional, help: "Warm-up steps (default: 100).") var warmup: Int?
        @Option(name: .customLong("ema"), parsing: .unconditional, help: "EMA decay in [0, 1) (default: 0.999).") var emaRate: Double?
        @Option(parsing: .unconditional, help: "Seed of the weights and of every step's batch, times and noise (default: 0).") var seed: UInt64?

        @Option(help: ArgumentHelp("The checkpoint to write (F64, checksummed), atomically.", valueName: "path.safetensors"))
        var output: String
        @Flag(help: "Continue the --output checkpoint (same data; settings come from the checkpoint).") var resume = false
        @Flag(help: "Start a new run even though --output exists.") var overwrite = false
        @Option(parsing: .unconditional, help: "Also write the checkpoint every n steps.") var checkpointEvery: Int?
        @Option(parsing: .unconditional, help: "Seconds between timed checkpoints (default: 60; 0: none).")
        var checkpointInterval: Double = CheckpointSchedule.defaultInterval
        @Option(help: ArgumentHelp("At the end, also write the EMA weights alone (for --classifier).", valueName: "path.safetensors"))
        var exportWeights: String?
        @Option(help: "Element type of --export-weights: f32 (default) or f64.") var dtype: DTypeName?
        @Option(help: ArgumentHelp("Times at which to report the accuracy, comma-separated (default: the smallest training time, T/4, T/2, 3T/4).", valueName: "t1,t2,..."))
        var accuracyAt: String?
        @Flag(help: "Also report the accuracy on the held-out test split of the data set (digits-test, fashion-mnist-test), all its rows.")
        var testSplit = false

        /// Options of the MLP network.
        var mlpOptions: [String] {
            [("--hidden", hidden != nil), ("--blocks", blocks != nil), ("--fourier-features", fourierFeatures != nil)].filter(\.1).map(\.0)
        }

        /// Options that set up a new run (a resumed run takes them from its checkpoint).
        var setupOptions: [String] {
            let named: [(String, Bool)] = [("--like", like != nil), ("--sde", sde != nil), ("--schedule", noiseSchedule != nil), ("--scaling", scaling != nil),
                                           ("--dequantize", dequantize), ("--min-time", minTime != nil), ("--max-time", maxTime != nil),
                                           ("--hidden", hidden != nil), ("--blocks", blocks != nil), ("--fourier-features", fourierFeatures != nil),
                                           ("--batch-size", batchSize != nil), ("--lr", learningRate != nil), ("--warmup", warmup != nil),
                                           ("--ema", emaRate != nil), ("--seed", seed != nil), ("--model", model != nil)]
            return named.filter(\.1).map(\.0) + conv.given
        }

        func validate() throws {
            if steps < 1 { throw ValidationError("--steps must be >= 1 (got \(steps))") }
            if let count, count < 1 { throw ValidationError("--count must be >= 1 (got \(count))") }
            if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be >= 1 (got \(b))") }
            if let lr = learningRate, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be finite and > 0 (got \(lr))") }
            if let w = warmup, w < 0 { throw ValidationError("--warmup must be >= 0 (got \(w))") }
            if let e = emaRate, !(e >= 0 && e < 1) { throw ValidationError("--ema must be in [0, 1) (got \(e))") }
            if let h = hidden, h < 1 { throw ValidationError("--hidden must be >= 1 (got \(h))") }
            if let b = blocks, b < 0 { throw ValidationError("--blocks must be >= 0 (got \(b))") }
            if let f = fourierFeatures, f < 1 { throw ValidationError("--fourier-features must be >= 1 (got \(f))") }
            for (name, v) in [("--min-time", minTime), ("--max-time", maxTime)] {
                if let v, !(v.isFinite && v > 0) { throw ValidationError("\(name) must be finite and > 0 (got \(v))") }
            }
            if let n = checkpointEvery, n < 1 { throw ValidationError("--checkpoint-every must be >= 1 (got \(n))") }
            if !(checkpointInterval.isFinite && checkpointInterval >= 0) {
                throw ValidationError("--checkpoint-interval must be finite and >= 0 seconds (got \(checkpointInterval))")
            }
            if resume && overwrite { throw ValidationError("--resume continues the --output checkpoint and --overwrite replaces it; give one of them") }
            if resume, !setupOptions.isEmpty {
                throw ValidationError("\(setupOptions.joined(separator: ", ")) set up a new run; --resume continues with the checkpoint's settings, so remove \(setupOptions.count == 1 ? "it" : "them")")
            }
            if like != nil {
                let clash = [("--sde", sde != nil), ("--schedule", noiseSchedule != nil), ("--scaling", scaling != nil), ("--dequantize", dequantize)].filter(\.1).map(\.0)
                if !clash.isEmpty { throw ValidationError("--like takes the SDE, scaling and dequantization from the model; remove \(clash.joined(separator: ", "))") }
            }
            if dtype != nil && exportWeights == nil { throw ValidationError("--dtype sets the element type of --export-weights; add --export-weights PATH") }
            if model == .mlp, !conv.given.isEmpty {
                throw ValidationError("\(conv.given.joined(separator: ", ")) shape the convolutional classifier; remove \(conv.given.count == 1 ? "it" : "them") or use --model conv")
            }
            if model == .conv, !mlpOptions.isEmpty {
                throw ValidationError("\(mlpOptions.joined(separator: ", ")) shape the MLP classifier; remove \(mlpOptions.count == 1 ? "it" : "them") or use --model mlp (--model conv takes --channels, --layers-per-block, --features)")
            }
            _ = try accuracyTimes()
            if testSplit, data.hasSuffix(".npy") { throw ValidationError("--test-split needs a built-in data set with a test split (digits, fashion-mnist)") }
        }

        /// `--accuracy-at` parsed.
        func accuracyTimes() throws -> [Double]? {
            guard let accuracyAt else { return nil }
            let v = accuracyAt.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !v.isEmpty, v.allSatisfy({ ($0 ?? 0) > 0 && $0!.isFinite }) else {
                throw ValidationError("--accuracy-at takes positive times separated by commas, e.g. 0.01,0.1,0.5 (got '\(accuracyAt)')")
            }
            return v.map { $0! }
        }

        func run() throws {
            // Everything that can be wrong with the input fails here, before any work.
            let set = try loadData()
            guard let ys = set.labels else {
                throw ScoreSDEError.invalidArgument("--data \(data) has no labels; give --labels PATH.npy with one integer per row")
            }
            var outputs = RunOutputs()
            outputs.add(output, for: "--output")
            outputs.add(exportWeights, for: "--export-weights")
            try outputs.check()
            if resume {
                guard FileManager.default.fileExists(atPath: output) else {
                    throw ScoreSDEError.io(path: output, message: "nothing to resume: the file does not exist; drop --resume to start a new run")
                }
                // The network kind is the checkpoint's (a damaged file fails in resume with its message).
                if (try? Safetensors.read(output))?.metadata[ClassifierFile.kindKey] == "conv" {
                    try train(ConvolutionalClassifierTrainer.resume(from: output, data: set.data, labels: ys), set: set, labels: ys)
                } else {
                    try train(ClassifierTrainer.resume(from: output, data: set.data, labels: ys), set: set, labels: ys)
                }
                return
            }
            if FileManager.default.fileExists(atPath: output) && !overwrite {
                throw ScoreSDEError.io(path: output, message: "the file exists; add --resume to continue training it, --overwrite to start a new run in its place, or choose another --output")
            }
            // Options of one network choose it; otherwise the data decide (conv for images of 16 x 16 or more).
            if model == nil, !conv.given.isEmpty, !mlpOptions.isEmpty {
                throw ScoreSDEError.invalidArgument("\(mlpOptions.joined(separator: ", ")) shape the MLP classifier and \(conv.given.joined(separator: ", ")) the convolutional one; give the options of one network (or --model mlp|conv)")
            }
            let kind = model ?? (!conv.given.isEmpty ? .conv : !mlpOptions.isEmpty ? .mlp : ClassifierModelName.defaultKind(for: set.rowShape))
            let settings = try settings(set)
            let k = max(set.classCount, (ys.max() ?? 0) + 1)
            switch kind {
            case .mlp:
                let arch = NoiseAwareClassifier.Architecture(rowShape: set.rowShape, classCount: k, hiddenWidth: hidden ?? 128,
                                                             residualBlocks: blocks ?? 2, fourierFeatures: fourierFeatures ?? 16)
                try train(ClassifierTrainer(configuration: settings.configuration(arch), data: set.data, labels: ys), set: set, labels: ys)
            case .conv:
                let arch = try conv.architecture(rowShape: set.rowShape, classCount: k)
                try train(ConvolutionalClassifierTrainer(configuration: settings.configuration(arch), data: set.data, labels: ys), set: set, labels: ys)
            }
        }

        /// The run loop, the exported weights and the report, for either network.
        func train<N: NoisyClassifierNetwork>(_ trainer: NoisyClassifierTrainer<N>, set: Dataset, labels ys: [Int]) throws {
            let start = trainer.completedSteps
            if start > steps {
                throw ScoreSDEError.invalidArgument("the checkpoint \(output) has already trained \(start) steps, more than --steps \(steps); give --steps \(start) or more")
            }
            let c = trainer.configuration
            let T = try c.sde.make().T
            let times = try accuracyTimes() ?? [c.minTime, 0.25 * T, 0.5 * T, 0.75 * T]
            if let bad = times.first(where: { $0 > T }) { throw ScoreSDEError.invalidArgument("--accuracy-at \(bad) is beyond the SDE's end time T = \(T)") }
            let test: Dataset? = try testSplit ? Dataset.load(data + "-test") : nil

            let schedule = try CheckpointSchedule(path: output, interval: checkpointInterval > 0 ? checkpointInterval : nil, everySteps: checkpointEvery)
            let losses = LossWindow(size: 100)
            let progress = ProgressBar(total: steps, start: start)
            let stop = StopRequest()
            let clock = ContinuousClock(), t0 = clock.now
            let outcome: TrainingOutcome
            do {
                defer { progress?.finish(); stop.restore() }
                outcome = try trainer.train(until: steps, checkpoints: schedule, shouldStop: { stop.requested }) { p in
                    losses.add(p.loss)
                    progress?.update(step: p.step) { _ in "cross-entropy \(String(format: "%.4g", losses.mean))" }
                }
            }
            if outcome.stopped, let signal = stop.signal {
                var words = ["scoresde", "train-classifier", "--data", data, "--labels", labels]
                if let count { words += ["--count", "\(count)"] }
                words += ["--steps", "\(steps)", "--output", output, "--resume"]
                if let exportWeights { words += ["--export-weights", exportWeights] }
                fputs("\(StopRequest.name(signal)): stopped after step \(outcome.checkpointStep) of \(steps); the checkpoint is in \(output)\n"
                      + "resume with: \(words.map(shellQuoted).joined(separator: " "))\n", stderr)
                throw ExitCode(128 + signal)
            }
            let elapsed = t0.duration(to: clock.now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            let classifier = trainer.emaClassifier
            if let exportWeights {
                let dt = (dtype ?? .f32).dtype
                let bytes: Data
                switch classifier {
                case let m as NoiseAwareClassifier: bytes = try m.weightsData(dtype: dt)
                case let cv as ConvolutionalClassifier: bytes = try cv.weightsData(dtype: dt)
                default: throw ScoreSDEError.invalidArgument("no weights file for \(N.self)")
                }
                do { try AtomicFile.write(bytes, to: exportWeights) } catch {
                    throw ScoreSDEError.io(path: exportWeights, message: "the checkpoint was written to \(output), but the exported weights could not be: \(error)")
                }
            }
            let trained = steps - start
            let network: String
            switch c.architecture {
            case let a as NoiseAwareClassifier.Architecture:
                network = "noise-aware MLP classifier (hidden \(a.hiddenWidth) x \(a.residualBlocks) blocks)"
            case let a as ConvolutionalClassifier.Architecture:
                network = "convolutional classifier (channels \(a.blockOutChannels.map(String.init).joined(separator: ",")), \(a.layersPerBlock) per level, \(a.midBlockAttention ? "middle attention, " : "")\(a.featureDimension) features)"
            default: network = "classifier"
            }
            print("trained \(trained) steps of a \(c.architecture.classCount)-class \(network) on \(set.name) (\(set.count) rows) "
                  + "with \(c.sde), t in [\(formatted(c.minTime)), \(formatted(c.maxTime ?? T))], "
                  + "\(classifier.flatParameters.count) parameters, \(String(format: "%.2f", seconds)) s"
                  + (trained > 0 ? String(format: ", %.1f images/s", Double(trained * c.batchSize) / max(seconds, 1e-9)) : ""))
            if trained > 0 { print("final cross-entropy \(formatted(losses.mean)) (mean of the last \(losses.count) steps)") }
            // Accuracy at a few noise levels (dequantized like training).
            let probe = set.data.rows > 2000 ? set.data.rows(0 ..< 2000) : set.data
            let probeLabels = Array(ys.prefix(probe.rows))
            func report(_ x: Tensor, _ y: [Int]) throws -> String {
                try times.map { t in
                    "t=\(formatted(t)): \(String(format: "%.4f", try NoisyClassifierTrainer<N>.accuracy(of: classifier, data: x, labels: y, at: t, seed: 1, dequantizationLevels: c.dequantizationLevels)))"
                }.joined(separator: ", ")
            }
            print("training accuracy (EMA weights, \(probe.rows) rows) " + (try report(probe, probeLabels)))
            if let test, let testLabels = test.labels {
                print("test accuracy (EMA weights, \(test.name), \(test.data.rows) rows) " + (try report(test.data, testLabels)))
            }
            print("wrote the checkpoint to \(output)" + (exportWeights.map { ", EMA weights (\((dtype ?? .f32).rawValue)) to \($0)" } ?? ""))
        }

        func loadData() throws -> Dataset {
            if count != nil, data.hasSuffix(".npy") {
                throw ScoreSDEError.invalidArgument("--count selects rows of a built-in data set; a .npy file is used whole")
            }
            var set = try Dataset.forTraining(data, count: count, seed: 0)
            if labels != "own" {
                guard labels.hasSuffix(".npy") else {
                    throw ScoreSDEError.invalidArgument("--labels must be 'own' or a PATH.npy of one integer label per data row (got '\(labels)')")
                }
                set = try set.withLabels(fromNpy: labels)
            }
            try set.data.checkFinite("the training data \(data)")
            return set
        }

        /// The settings every network shares (SDE, scaling, dequantization, times, optimiser).
        struct Settings {
            var sde: SDESpec, scaling: DataScaling, levels: Int?, minTime: Double, maxTime: Double?
            var seed: UInt64, batchSize: Int, learningRate: Double, warmup: Int, emaRate: Double

            func configuration<A: ClassifierArchitecture>(_ arch: A) throws -> NoisyClassifierTrainingConfiguration<A> {
                let c = NoisyClassifierTrainingConfiguration(
                    sde: sde, architecture: arch, dataScaling: scaling, seed: seed, batchSize: batchSize,
                    learningRate: learningRate, warmup: warmup, gradClip: 1, emaRate: emaRate,
                    minTime: minTime, maxTime: maxTime, dequantizationLevels: levels)
                try c.validate()
                return c
            }
        }

        func settings(_ set: Dataset) throws -> Settings {
            let spec: SDESpec, scale: DataScaling, levels: Int?, eps: Double
            if let like {
                let model = try DataModel.load(like)
                guard let score = model.learned else {
                    throw ScoreSDEError.invalidArgument("--like \(like) is a Gaussian mixture; give a learned score model (a shipped name such as digits, or a .safetensors from `scoresde train`)")
                }
                guard score.sampleShape.reduce(1, *) == set.data.rowSize else {
                    throw ScoreSDEError.shapeMismatch("--like \(like) takes samples of shape \(score.sampleShape) but --data \(data) has rows of shape \(set.rowShape)")
                }
                (spec, scale, levels) = (score.sdeSpec, score.dataScaling, score.dequantizationLevels)
                eps = score.likelihoodEps ?? score.sdeSpec.samplingEps
            } else {
                let kind = sde ?? .vp
                try SDEOptions.checkSchedule(noiseSchedule, kind: kind, kindGiven: sde != nil, sigmaMin: nil, sigmaMax: nil, betaMin: nil, betaMax: nil)
                switch kind {
                case .ve: spec = .ve(sigmaMin: SDEOptions.defaultSigmaMin, sigmaMax: try VESDE.suggestedSigmaMax(for: set.data))
                case .vp where noiseSchedule == .cosine: spec = .defaultCosineVP
                case .vp: spec = .vp(betaMin: SDEOptions.defaultBetaMin, betaMax: SDEOptions.defaultBetaMax)
                case .subvp: spec = .subVP(betaMin: SDEOptions.defaultBetaMin, betaMax: SDEOptions.defaultBetaMax)
                }
                if scaling == .logit {
                    throw ScoreSDEError.invalidArgument("--scaling logit: train the classifier with --like MODEL, which takes a logit-scaled model's data transform")
                }
                let normalization = scaling?.normalization ?? set.normalization
                if dequantize && set.levels == nil {
                    throw ScoreSDEError.invalidArgument("--dequantize is for discrete data (digits, patches); \(set.name) is continuous")
                }
                if normalization == .none { scale = .identity } else {
                    guard let l = set.levels else {
                        throw ScoreSDEError.invalidArgument("--scaling \(normalization.rawValue) is for discrete levels; \(set.name) is continuous, use --scaling none")
                    }
                    scale = dequantize ? try normalization.dequantizedScaling(levels: l) : try normalization.dataScaling(levels: l)
                }
                levels = dequantize ? set.levels : nil
                eps = spec.samplingEps
            }
            return Settings(sde: spec, scaling: scale, levels: levels, minTime: minTime ?? eps, maxTime: maxTime,
                            seed: seed ?? 0, batchSize: batchSize ?? 128, learningRate: learningRate ?? 1e-3,
                            warmup: warmup ?? 100, emaRate: emaRate ?? 0.999)
        }
    }
}

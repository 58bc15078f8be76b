import ArgumentParser
import Foundation
import ScoreSDE

extension ScoreSDECommand {
    /// `scoresde evaluate`: the sample-quality evaluation of image samples on the held-out test
    /// split (``SampleQualityEvaluation``), resumable through its stats file.
    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate image samples against the held-out test split (Fréchet distance, class accuracy, memorisation, baselines).",
            discussion: """
                Computes, on the Fashion-MNIST test split: the Fréchet distance between the samples and \
                the test images in the feature space of a classifier trained on the training split \
                (--classifier), next to the same distance for as many training images (the floor) and, \
                with --baselines, for samples of the Gaussian baselines in logit space (one \
                full-covariance Gaussian, one per class); for class-conditional samples (--classes) \
                the per-class distances and the classifier's accuracy on them; the share of samples \
                closer to their nearest training image (L2 over pixels / 255) than the 1st percentile \
                of the test images' distances (1% for test images themselves); with --baselines, the \
                baselines' test bits/dim.

                Samples are data-space rows (pixel levels 0...255), e.g. from `scoresde sample --model \
                M --output s.npy`; --classes s.json reads the --class list from that run's --stats.

                Resuming: --stats is written after every section. Rerun the same command (same \
                samples, classes and settings) and the finished sections are kept, not recomputed; \
                changed inputs start over. --classifier none computes the pixel-space sections only.
                """
        )

        @Option(help: ArgumentHelp("The samples: a .npy of data-space images (pixel levels 0...255), shape [n, 1, 28, 28], [n, 28, 28] or [n, 784].", valueName: "PATH.npy"))
        var samples: String

        @Option(help: ArgumentHelp("The intended class of each sample (class-conditional samples): a .npy of n integers, the --stats JSON of `scoresde sample --class ...` (its class list, split evenly in order as sample does), or a list 'c' / 'c1,c2,...' split the same way.", valueName: "PATH.npy|PATH.json|c1,c2,..."))
        var classes: String?

        @Option(help: ArgumentHelp("The feature classifier: a shipped name, a classifier .safetensors, or 'none' (skip the feature-space sections).", valueName: "name|PATH.safetensors|none"))
        var classifier: String = FeatureClassifiers.defaultName

        @Option(help: ArgumentHelp("The data set whose test split is the reference: fashion-mnist (the only one supported).", valueName: "name"))
        var data: String = "fashion-mnist"

        @Option(parsing: .unconditional, help: ArgumentHelp("Training images (and baseline samples) in the reference Fréchet distances (default: the sample count, at most \(SampleQualityEvaluation.Settings.defaultReferenceCap)).", valueName: "n"))
        var referenceCount: Int?

        @Flag(help: "Also compute the Gaussian baselines in logit space (lambda = 1e-6): their test bits/dim and their samples' Fréchet distances.")
        var baselines = false

        @Option(parsing: .unconditional, help: ArgumentHelp("Dequantization draws of the test images for the baselines' bits/dim (default: 1).", valueName: "k"))
        var baselineDraws: Int = 1

        @Option(parsing: .unconditional, help: "Seed of the training subset and of the baselines' dequantization and samples.")
        var seed: UInt64 = 0

        @Option(help: ArgumentHelp("The results as JSON, written after every section; rerunning with the same inputs resumes from it.", valueName: "PATH.json"))
        var stats: String

        @Option(parsing: .unconditional, help: "Rows per classifier call (default: 500). Results do not depend on it.")
        var batchSize: Int = 500

        @Option(parsing: .unconditional, help: "Threads to use (default: all cores). Results do not depend on it.")
        var threads: Int?

        @OptionGroup(title: "Progress") var progressOptions: ProgressOptions

        func validate() throws {
            if data != "fashion-mnist" {
                throw ValidationError("--data \(data): the evaluation supports fashion-mnist only (its test split is the reference and its training split the floor)")
            }
            if let n = referenceCount, n < 2 || n > FashionMNIST.trainCount {
                throw ValidationError("--reference-count must be in 2...\(FashionMNIST.trainCount) (got \(n))")
            }
            if baselineDraws < 1 { throw ValidationError("--baseline-draws must be >= 1 (got \(baselineDraws))") }
            if batchSize < 1 { throw ValidationError("--batch-size must be >= 1 (got \(batchSize))") }
            if let t = threads, t < 1 { throw ValidationError("--threads must be >= 1 (got \(t))") }
        }

        func run() throws {
            let started = DispatchTime.now().uptimeNanoseconds
            // Everything that can be wrong with the input fails here, before any work or output.
            var outputs = RunOutputs()
            outputs.add(stats, for: "--stats")
            try outputs.check()
            if FileManager.default.fileExists(atPath: stats) { _ = try SampleQualityReport.read(stats) }
            let x = try readSamples()
            let labels = try readClasses(count: x.rows)
            let model: (any FeatureClassifier)? = classifier == "none" ? nil : try FeatureClassifiers.load(nameOrPath: classifier)
            let identity = try classifierIdentity()
            if let model, model.rowShape.reduce(1, *) != x.rowSize {
                throw ScoreSDEError.shapeMismatch("--classifier \(classifier) takes rows of shape \(model.rowShape), not Fashion-MNIST's 1 x 28 x 28")
            }
            if let labels, let model, let bad = labels.first(where: { $0 >= model.classCount }) {
                throw ScoreSDEError.invalidArgument("--classes: class \(bad) is not a class of the classifier, whose classes are 0...\(model.classCount - 1)")
            }

            let test = try FashionMNIST.testSplitForEvaluation(), training = try FashionMNIST.trainingSplit()
            let settings = SampleQualityEvaluation.Settings(referenceCount: referenceCount, seed: seed, baselines: baselines,
                                                           baselineDraws: baselineDraws, batchSize: batchSize)
            let evaluation = SampleQualityEvaluation(classifier: model, classifierIdentity: identity, test: .init(test),
                                                     training: .init(training), classNames: FashionMNIST.classNames, settings: settings)
            try evaluation.validate(samples: x, classes: labels)

            var extra = RunStats()
            extra["command"] = "evaluate"
            extra["samples"] = .string(samples)
            extra["sample_count"] = .int(x.rows)
            extra["classes"] = classes.map { .string($0) } ?? .null
            extra["feature_classifier"] = .string(classifier)
            extra["feature_classifier_identity"] = .string(identity)
            extra["data"] = .string(data)
            extra["reference_count"] = .int(evaluation.referenceCount(samples: x.rows))
            extra["baselines"] = .bool(baselines)
            extra["baseline_draws"] = .int(baselineDraws)
            extra["seed"] = seedValue(seed)
            extra["batch_size"] = .int(batchSize)

            var resumed = [String]()
            let (report, threadCount) = try Parallel.$threadLimit.withValue(threads) { () throws -> (SampleQualityReport, Int) in
                var extraWithThreads = extra
                extraWithThreads["threads"] = .int(Parallel.threadCount)
                extraWithThreads["blas"] = .string(BLASBackend.current.library.rawValue + " " + BLASBackend.current.kernel)
                let report = try evaluation.run(samples: x, classes: labels, statsPath: stats, extra: extraWithThreads) { event in
                    switch event {
                    case .replacing(let old): note("\(stats) holds results of other inputs (\(old)); computing them anew")
                    case .skipped(let s): resumed.append(s.rawValue); note("\(s.rawValue): already in \(stats), kept")
                    case .started(let s): note("\(s.rawValue) ...")
                    case .finished(let s, let seconds): note("\(s.rawValue): done in \(ProgressBar.seconds(seconds)), written to \(stats)")
                    }
                }
                return (report, Parallel.threadCount)
            }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            print(summary(report, samples: x.rows, classesGiven: labels != nil, threads: threadCount, wall: wall, resumed: resumed))
        }

        /// Progress on standard error, unless --quiet.
        private func note(_ message: String) {
            guard !ProgressReporting.quiet else { return }
            FileHandle.standardError.write(Data("evaluate: \(message)\n".utf8))
        }

        /// `--samples` as `[n, 1, 28, 28]`, checked for shape and finiteness.
        func readSamples() throws -> Tensor {
            let x = try Npy.read(samples)
            let d = FashionMNIST.side * FashionMNIST.side
            guard x.shape.count >= 2, x.rowSize == d else {
                throw ScoreSDEError.shapeMismatch("--samples \(samples) has shape \(x.shape); Fashion-MNIST samples are rows of \(d) pixels: [n, 1, 28, 28], [n, 28, 28] or [n, 784]")
            }
            guard x.rows >= 2 else { throw ScoreSDEError.shapeMismatch("--samples \(samples) has \(x.rows) row; the evaluation needs >= 2 samples") }
            if let bad = x.storage.firstIndex(where: { !$0.isFinite }) {
                throw ScoreSDEError.nonFinite("--samples \(samples): sample \(bad / d) has the value \(x.storage[bad]) (pixel \(bad % d)); all samples must be finite")
            }
            return try x.reshaped([x.rows, 1, FashionMNIST.side, FashionMNIST.side])
        }

        /// `--classes` as one class per sample, or nil.
        func readClasses(count n: Int) throws -> [Int]? {
            guard let classes else { return nil }
            let k = FashionMNIST.classNames.count
            let perRow: [Int]
            if classes.hasSuffix(".npy") {
                let t = try Npy.read(classes)
                guard t.count == n else {
                    throw ScoreSDEError.shapeMismatch("--classes \(classes) has \(t.count) values for \(n) samples; give one class per sample")
                }
                if let bad = t.storage.firstIndex(where: { !($0.rounded() == $0 && $0.isFinite) }) {
                    throw ScoreSDEError.invalidArgument("--classes \(classes): value \(bad) is \(t.storage[bad]), not an integer class")
                }
                perRow = t.storage.map { Int($0) }
            } else if classes.hasSuffix(".json") {
                let data = try Data(contentsOf: URL(fileURLWithPath: classes))
                guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                    throw ScoreSDEError.io(path: classes, message: "not a JSON object; give the --stats file of `scoresde sample --class ...`")
                }
                guard let list = object["class"] as? String else {
                    throw ScoreSDEError.io(path: classes, message: "has no 'class' list (was `scoresde sample` run with --class?); give the classes as a .npy or a list instead")
                }
                if let count = object["count"] as? Int, count != n {
                    throw ScoreSDEError.shapeMismatch("--classes \(classes) describes \(count) samples, but --samples has \(n)")
                }
                perRow = try Self.split(list, count: n, option: "--classes \(classes) (its 'class' list)")
            } else {
                perRow = try Self.split(classes, count: n, option: "--classes")
            }
            if let bad = perRow.firstIndex(where: { $0 < 0 || $0 >= k }) {
                throw ScoreSDEError.invalidArgument("--classes: sample \(bad) has class \(perRow[bad]); Fashion-MNIST's classes are 0...\(k - 1)")
            }
            return perRow
        }

        /// A class list `c1,...,cL` split evenly over `n` rows in order (as `sample --class` does).
        static func split(_ list: String, count n: Int, option: String) throws -> [Int] {
            let parts = list.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
                throw ScoreSDEError.invalidArgument("\(option) takes a .npy, a sample --stats .json, or a class list such as 3 or 0,1,2 (got '\(list)')")
            }
            let l = parts.map { $0! }
            guard n % l.count == 0 else {
                throw ScoreSDEError.shapeMismatch("\(option): \(l.count) classes do not split \(n) samples evenly; give one class per sample in a .npy")
            }
            let per = n / l.count
            return (0 ..< n).map { l[$0 / per] }
        }

        /// What identifies the classifier: `none`, or the file's name, size and CRC-32.
        func classifierIdentity() throws -> String {
            guard classifier != "none" else { return "none" }
            guard FileManager.default.fileExists(atPath: classifier) else { return classifier }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: classifier))
            let crc = bytes.withUnsafeBytes { p -> UInt32 in var c = CRC32(); c.update(p); return c.value }
            return "\((classifier as NSString).lastPathComponent) \(bytes.count) bytes crc32 \(String(crc, radix: 16))"
        }

        /// The summary table.
        func summary(_ r: SampleQualityReport, samples n: Int, classesGiven: Bool, threads: Int, wall: Double, resumed: [String]) -> String {
            var lines = ["Sample quality of \(samples) (\(n) samples\(classesGiven ? ", class-conditional" : "")) on the Fashion-MNIST test split"]
            func f(_ x: Double, _ digits: Int = 4) -> String { formatted(x, digits) }
            if let c = r.classifier {
                lines.append("classifier \(classifier): \(c.featureDimension) features, test accuracy \(String(format: "%.2f%%", 100 * c.testAccuracy)) (\(c.testCount) images)")
            }
            if let s = r.frechetSamples {
                lines.append("Fréchet distance to the \(s.testCount) test images (feature space)   value   rows   / training")
                let floor = r.frechetTraining?.frechetDistance
                func row(_ name: String, _ v: Double, _ rows: Int) {
                    let ratio = floor.map { $0 > 0 ? String(format: "%.1fx", v / $0) : "-" } ?? "-"
                    lines.append("  " + name.padding(toLength: 36, withPad: " ", startingAt: 0) + f(v).rightAligned(10) + String(rows).rightAligned(7) + ratio.rightAligned(8))
                }
                row("samples", s.frechetDistance, s.count)
                if let t = r.frechetTraining { row("training images", t.frechetDistance, t.count) }
                for b in r.frechetBaselines?.baselines ?? [] {
                    row(LogitGaussianBaseline.Kind(rawValue: b.baseline)?.label ?? b.baseline, b.frechetDistance, b.count)
                }
            }
            if let p = r.frechetPerClass {
                lines.append("per class (samples vs test images of the class; training images of the class for reference):")
                for e in p.classes {
                    let name = e.name ?? "class \(e.label)"
                    lines.append("  \(e.label) \(name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(f(e.frechetDistance)) (\(e.count) samples, \(e.testCount) test)   training \(e.trainingFrechetDistance.map { f($0) } ?? "-") (\(e.trainingCount))")
                }
                if !p.skipped.isEmpty { lines.append("  skipped (fewer than 2 samples): \(p.skipped.map(String.init).joined(separator: ", "))") }
            }
            if let a = r.classAccuracy {
                lines.append("class accuracy of the samples: \(String(format: "%.2f%% ± %.2f%%", 100 * a.accuracy, 100 * a.standardError)) (\(a.correct) of \(a.count))")
            }
            if let m = r.memorisation {
                let c = m.check
                lines.append("memorisation: \(String(format: "%.2f%% ± %.2f%%", 100 * c.share, 100 * c.standardError)) of samples are closer to a training image than \(f(m.threshold)) (the test images' \(ordinal(m.percentile)) percentile; test: \(String(format: "%.2f%%", 100 * c.heldOutShare))); median distance \(f(m.medianDistance)) (test \(f(m.testMedianDistance)))")
            }
            if let b = r.baselineBitsPerDim {
                lines.append("Gaussian baselines in logit space (lambda = \(b.lambda)), test bits/dim:")
                for e in b.baselines {
                    let name = LogitGaussianBaseline.Kind(rawValue: e.baseline)?.label ?? e.baseline
                    lines.append("  " + name.padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: "%.4f ± %.4f (over test images)", e.bitsPerDim, e.standardError))
                }
            }
            let kept = resumed.isEmpty ? "" : "; kept from the previous run: \(resumed.joined(separator: ", "))"
            lines.append("wrote \(stats) (\(String(format: "%.1f", wall)) s, \(threads) threads\(kept))")
            return lines.joined(separator: "\n")
        }
    }
}

/// `1st`, `2nd`, `5th`, `2.5th`: a percentile's name.
private func ordinal(_ p: Double) -> String {
    guard p == p.rounded(), p >= 1, p < 100 else { return formatted(p, 3) + "th" }
    let n = Int(p)
    let suffix = (11 ... 13).contains(n % 100) ? "th" : [1: "st", 2: "nd", 3: "rd"][n % 10] ?? "th"
    return "\(n)\(suffix)"
}

private extension String {
    /// The string right-aligned in `width` characters.
    func rightAligned(_ width: Int) -> String { String(repeating: " ", count: Swift.max(1, width - count)) + self }
}

import Foundation

/// The sample-quality evaluation of an image model on a held-out test split (issue 22): in the
/// feature space of a ``FeatureClassifier`` trained on the training split, the Fréchet distance
/// of the samples to the test images, beside the same distance for as many training images (the
/// floor) and for the Gaussian baselines' samples (the ceiling); per-class distances and class
/// accuracy of class-conditional samples; and, in pixel space, the nearest-training-image
/// memorisation check. Every distance is reported with its counts.
///
///     let evaluation = SampleQualityEvaluation(
///         classifier: classifier, classifierIdentity: "fashion-classifier",
///         test: .init(try FashionMNIST.testSplitForEvaluation()),
///         training: .init(try FashionMNIST.trainingSplit()),
///         classNames: FashionMNIST.classNames, settings: .init(seed: 0, baselines: true))
///     let report = try evaluation.run(samples: samples, classes: classes, statsPath: "eval.json")
///     report.frechetSamples?.frechetDistance
///
/// **Resuming.** With a `statsPath`, the report (``SampleQualityReport/stats``, plus the caller's
/// `extra` fields) is written there atomically after every section. A run that finds a report
/// there computed from the same inputs — the same ``inputsHash(samples:classes:)``: samples'
/// bytes, classes, settings, classifier identity and data — keeps its finished sections and
/// computes only the others, so an evaluation stopped at any point (a session ending, Ctrl-C)
/// continues where it stopped. A report of other inputs is replaced; a file that is not such a
/// report throws before any work rather than being overwritten.
///
/// **Counts.** The reference sets have `n` = ``Settings/referenceCount`` rows (default: the
/// sample count, capped at ``Settings/defaultReferenceCap``): `n` training images drawn at random
/// without replacement (seeded), `n` samples of each baseline. Fréchet distances from `n` rows
/// are biased upwards by `O(1/n)` (``frechetDistance(_:_:)``), so distances are comparable at
/// equal counts, which the report records.
public struct SampleQualityEvaluation: Sendable {
    /// Images (data-space rows, e.g. pixel levels `0 ... 255`) with their class labels.
    public struct Split: Sendable {
        /// Rows `[n] + rowShape`.
        public let images: Tensor
        /// One label `0 ... K−1` per row.
        public let labels: [Int]

        /// Images and their labels.
        public init(images: Tensor, labels: [Int]) { self.images = images; self.labels = labels }
        /// A Fashion-MNIST split.
        public init(_ data: FashionMNIST) { self.init(images: data.images, labels: data.labels) }
    }

    /// What to compute and how; every field is part of the inputs' identity except ``batchSize``.
    public struct Settings: Sendable, Equatable {
        /// Rows `n` of the training and baseline reference sets (nil: the sample count, capped at
        /// ``defaultReferenceCap``).
        public var referenceCount: Int?
        /// Seed of the training subset, the baselines' dequantization and their samples.
        public var seed: UInt64
        /// Whether to compute the Gaussian baselines' bits/dim and Fréchet distances.
        public var baselines: Bool
        /// Dequantization draws of the test images for the baselines' bits/dim.
        public var baselineDraws: Int
        /// The baselines' logit transform.
        public var lambda: Double
        /// Pixel levels of the images (256: values `0 ... 255`).
        public var levels: Int
        /// The percentile of the memorisation check's threshold.
        public var percentile: Double
        /// Rows per classifier call (results do not depend on it).
        public var batchSize: Int

        /// The cap of the default reference count.
        public static let defaultReferenceCap = 10_000

        /// Settings; the defaults are issue 22's.
        public init(referenceCount: Int? = nil, seed: UInt64 = 0, baselines: Bool = false, baselineDraws: Int = 1,
                    lambda: Double = 1e-6, levels: Int = 256, percentile: Double = 1, batchSize: Int = 500) {
            self.referenceCount = referenceCount; self.seed = seed; self.baselines = baselines
            self.baselineDraws = baselineDraws; self.lambda = lambda; self.levels = levels
            self.percentile = percentile; self.batchSize = batchSize
        }
    }

    /// The feature classifier; nil computes only the pixel-space sections (memorisation, baseline bits/dim).
    public let classifier: (any FeatureClassifier)?
    /// What identifies the classifier (a file's checksum, a shipped name): part of the inputs' hash.
    public let classifierIdentity: String
    /// The held-out images.
    public let test: Split
    /// The training images (the classifier's and the baselines' training data; the memorisation reference).
    public let training: Split
    /// Class names by label, for the report (empty: none).
    public let classNames: [String]
    /// The settings.
    public let settings: Settings

    /// An evaluation of samples against `test`, with `training` as reference.
    public init(classifier: (any FeatureClassifier)?, classifierIdentity: String, test: Split, training: Split,
                classNames: [String] = [], settings: Settings = Settings()) {
        self.classifier = classifier; self.classifierIdentity = classifier == nil ? "none" : classifierIdentity
        self.test = test; self.training = training; self.classNames = classNames; self.settings = settings
    }

    /// The sections a run with (or without) sample classes computes, in order.
    public func sections(withClasses: Bool) -> [SampleQualitySection] {
        var s = [SampleQualitySection]()
        if classifier != nil {
            s += [.classifier, .frechetSamples, .frechetTraining]
            if withClasses { s += [.frechetPerClass, .classAccuracy] }
        }
        s.append(.memorisation)
        if settings.baselines {
            s.append(.baselineBitsPerDim)
            if classifier != nil { s.append(.frechetBaselines) }
        }
        return s
    }

    /// The reference count `n` for `sampleCount` samples.
    public func referenceCount(samples sampleCount: Int) -> Int {
        settings.referenceCount ?? Swift.min(sampleCount, Settings.defaultReferenceCap, training.images.rows)
    }

    /// Checks the samples, classes and settings against the data and the classifier, before any work.
    ///
    /// - Throws: `shapeMismatch` for samples whose rows are not the images' shape, fewer than 2
    ///   samples, or a class list of another length; `nonFinite` for NaN or infinite samples;
    ///   `invalidArgument` for classes outside the classifier's, or settings out of range.
    public func validate(samples: Tensor, classes: [Int]?) throws {
        let d = test.images.rowSize
        guard training.images.rowSize == d, test.images.rows == test.labels.count, training.images.rows == training.labels.count else {
            throw ScoreSDEError.shapeMismatch("the test and training splits must have rows of one size and one label per image")
        }
        guard samples.rowSize == d else {
            throw ScoreSDEError.shapeMismatch("the samples have rows of \(samples.rowSize) values (shape \(samples.shape)); the images have \(d) (\(test.images.rowShape.map(String.init).joined(separator: " x ")))")
        }
        guard samples.rows >= 2 else { throw ScoreSDEError.shapeMismatch("the evaluation needs >= 2 samples (got \(samples.rows))") }
        if let bad = samples.storage.firstIndex(where: { !$0.isFinite }) {
            throw ScoreSDEError.nonFinite("sample \(bad / d) has the value \(samples.storage[bad]) (pixel \(bad % d)); all samples must be finite")
        }
        if let classes {
            guard classes.count == samples.rows else {
                throw ScoreSDEError.shapeMismatch("\(classes.count) classes for \(samples.rows) samples; give one class per sample")
            }
            let k = classifier?.classCount ?? ((test.labels.max() ?? 0) + 1)
            if let bad = classes.firstIndex(where: { $0 < 0 || $0 >= k }) {
                throw ScoreSDEError.invalidArgument("sample \(bad) has class \(classes[bad]); the classes are 0...\(k - 1)")
            }
        }
        if let c = classifier {
            guard c.rowShape.reduce(1, *) == d else {
                throw ScoreSDEError.shapeMismatch("the classifier takes rows of shape \(c.rowShape); the images have \(d) values")
            }
        }
        let n = referenceCount(samples: samples.rows)
        guard n >= 2, n <= training.images.rows else {
            throw ScoreSDEError.invalid("referenceCount", n, must: "in 2...\(training.images.rows), the training images")
        }
        guard settings.baselineDraws >= 1 else { throw ScoreSDEError.invalid("baselineDraws", settings.baselineDraws, must: ">= 1") }
        guard settings.batchSize >= 1 else { throw ScoreSDEError.invalid("batchSize", settings.batchSize, must: ">= 1") }
        _ = try LogitPixelTransform(lambda: settings.lambda, levels: settings.levels)
        _ = try MemorisationCheck.threshold([0, 1], percentile: settings.percentile)
    }

    /// The identity of a run's inputs: 64-bit FNV-1a over the samples' shape and float64 bits, the
    /// classes, every setting but the batch size, the classifier identity and the data's shapes
    /// and labels, as `fnv1a64:` and 16 hex digits.
    public func inputsHash(samples: Tensor, classes: [Int]?) -> String {
        var h = FNV1a()
        h.add(text: "scoresde sample-quality v1")
        h.add(ints: samples.shape)
        samples.storage.withUnsafeBytes { h.add($0) }
        h.add(ints: classes.map { [$0.count] + $0 } ?? [-1])
        h.add(ints: [referenceCount(samples: samples.rows), settings.baselines ? 1 : 0, settings.baselineDraws, settings.levels])
        h.add(text: "\(settings.seed) \(settings.lambda.bitPattern) \(settings.percentile.bitPattern)")
        h.add(text: classifierIdentity)
        h.add(ints: test.images.shape); h.add(ints: test.labels); h.add(ints: training.images.shape); h.add(ints: training.labels)
        return "fnv1a64:" + String(h.value, radix: 16).leftPadded(to: 16)
    }

    /// Computes every section of ``sections(withClasses:)`` not already finished in the report at
    /// `statsPath` (see the type's discussion), writing the report there after each.
    ///
    /// - Parameters:
    ///   - samples: data-space rows with the images' row size (any row shape).
    ///   - classes: the intended class of each sample (class-conditional samples), or nil.
    ///   - statsPath: the stats JSON to resume from and write, or nil (compute all, write nothing).
    ///   - extra: fields written after the report's (settings, wall time ...); keys that name a
    ///     section, `inputs_hash` or `sections_done` are not written.
    ///   - progress: called with each section's name when it starts (`false`: skipped, already done) and ends.
    /// - Returns: the full report.
    /// - Throws: as ``validate(samples:classes:)``; ``ScoreSDEError/io(path:message:)`` when
    ///   `statsPath` holds something else or cannot be written; the classifier's errors.
    public func run(samples: Tensor, classes: [Int]?, statsPath: String? = nil, extra: RunStats = RunStats(),
                    progress: (SampleQualityProgress) -> Void = { _ in }) throws -> SampleQualityReport {
        try validate(samples: samples, classes: classes)
        let hash = inputsHash(samples: samples, classes: classes)
        var report = SampleQualityReport(inputsHash: hash)
        if let statsPath, FileManager.default.fileExists(atPath: statsPath) {
            let previous = try SampleQualityReport.read(statsPath)
            if previous.inputsHash == hash { report = previous } else { progress(.replacing(previousHash: previous.inputsHash)) }
        }
        func save() throws {
            guard let statsPath else { return }
            var s = report.stats
            let reserved = Set(["inputs_hash", "sections_done"] + SampleQualitySection.allCases.map(\.rawValue))
            for k in extra.keys where !reserved.contains(k) { s[k] = extra[k] }
            try AtomicFile.write(s.jsonData(), to: statsPath)
        }
        var work = Work(evaluation: self, samples: samples, classes: classes)
        for section in sections(withClasses: classes != nil) {
            if report.isFinished(section) { progress(.skipped(section)); continue }
            progress(.started(section))
            let start = DispatchTime.now().uptimeNanoseconds
            func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
            switch section {
            case .classifier: report.classifier = try work.classifierCheck(seconds)
            case .frechetSamples: report.frechetSamples = try work.frechetSamples(seconds)
            case .frechetTraining: report.frechetTraining = try work.frechetTraining(seconds)
            case .frechetPerClass: report.frechetPerClass = try work.frechetPerClass(seconds)
            case .classAccuracy: report.classAccuracy = try work.classAccuracy(seconds)
            case .memorisation: report.memorisation = try work.memorisation(seconds)
            case .baselineBitsPerDim: report.baselineBitsPerDim = try work.baselineBits(seconds)
            case .frechetBaselines: report.frechetBaselines = try work.frechetBaselines(seconds)
            }
            try save()
            progress(.finished(section, seconds: seconds()))
        }
        return report
    }
}

/// What ``SampleQualityEvaluation/run(samples:classes:statsPath:extra:progress:)`` is doing.
public enum SampleQualityProgress: Sendable, Equatable {
    /// The stats file held a report of other inputs, which this run replaces.
    case replacing(previousHash: String)
    /// A section already finished in the stats file: not recomputed.
    case skipped(SampleQualitySection)
    /// A section starts.
    case started(SampleQualitySection)
    /// A section is done (and written).
    case finished(SampleQualitySection, seconds: Double)
}

// MARK: - The work of one run (features computed once, on first need)

extension SampleQualityEvaluation {
    struct Work {
        let evaluation: SampleQualityEvaluation
        let samples: Tensor
        let classes: [Int]?
        private var cache = [String: (features: Tensor, logits: Tensor)]()
        private var trainingCache = [Int: Int]()          // training index → row of trainingFeatures
        private var trainingFeatures = [Double](), trainingFeatureRows = 0
        private var fitted: (full: LogitGaussianBaseline, classWise: LogitGaussianBaseline, logits: Tensor)?

        init(evaluation: SampleQualityEvaluation, samples: Tensor, classes: [Int]?) {
            self.evaluation = evaluation; self.samples = samples; self.classes = classes
        }

        var classifier: any FeatureClassifier { evaluation.classifier! }
        var test: Split { evaluation.test }
        var training: Split { evaluation.training }
        var n: Int { evaluation.referenceCount(samples: samples.rows) }
        var seed: UInt64 { evaluation.settings.seed }

        /// Features and logits of `x`'s rows, in batches, checked.
        func classify(_ x: Tensor) throws -> (features: Tensor, logits: Tensor) {
            let f = classifier.featureDimension, k = classifier.classCount, rows = x.rows
            var features = [Double](), logits = [Double]()
            features.reserveCapacity(rows * f); logits.reserveCapacity(rows * k)
            let batch = evaluation.settings.batchSize
            for start in stride(from: 0, to: rows, by: batch) {
                let part = try x.rows(start ..< Swift.min(start + batch, rows)).reshaped([Swift.min(batch, rows - start)] + classifier.rowShape)
                let (a, b) = try classifier.featuresAndLogits(of: part)
                guard a.rows == part.rows, a.rowSize == f, b.rows == part.rows, b.rowSize == k else {
                    throw ScoreSDEError.shapeMismatch("the classifier returned features \(a.shape) and logits \(b.shape) for \(part.rows) rows; expected [\(part.rows), \(f)] and [\(part.rows), \(k)]")
                }
                try a.checkFinite("the classifier's features"); try b.checkFinite("the classifier's logits")
                features += a.storage; logits += b.storage
            }
            return (Tensor(uncheckedShape: [rows, f], storage: features), Tensor(uncheckedShape: [rows, k], storage: logits))
        }

        mutating func cached(_ key: String, _ x: Tensor) throws -> (features: Tensor, logits: Tensor) {
            if let c = cache[key] { return c }
            let c = try classify(x)
            cache[key] = c
            return c
        }

        mutating func testFeatures() throws -> (features: Tensor, logits: Tensor) { try cached("test", test.images) }
        mutating func sampleFeatures() throws -> (features: Tensor, logits: Tensor) { try cached("samples", samples) }

        /// Features of the training images at `indices` (each computed once per run).
        mutating func trainingFeatures(_ indices: [Int]) throws -> Tensor {
            let missing = Array(Set(indices.filter { trainingCache[$0] == nil })).sorted()
            if !missing.isEmpty {
                let (f, _) = try classify(training.images.gatherRows(missing))
                for (i, index) in missing.enumerated() { trainingCache[index] = trainingFeatureRows + i }
                trainingFeatures += f.storage; trainingFeatureRows += missing.count
            }
            let fd = classifier.featureDimension
            let all = Tensor(uncheckedShape: [trainingFeatureRows, fd], storage: trainingFeatures)
            return all.gatherRows(indices.map { trainingCache[$0]! })
        }

        /// A seeded permutation of `0 ..< count` (Fisher–Yates on the seed's stream `purpose`).
        func permutation(_ count: Int, purpose: UInt64) -> [Int] {
            let rng = RandomSource(seed: seed).derived(purpose)
            var s = rng.stream(draw: 0, row: 0)
            var p = Array(0 ..< count)
            for i in stride(from: count - 1, to: 0, by: -1) {
                let j = Int((Double(s.next() >> 11) * 0x1p-53 * Double(i + 1)).rounded(.down))
                p.swapAt(i, Swift.min(j, i))
            }
            return p
        }

        /// The `n` training images of the reference set.
        var trainingSubset: [Int] { Array(permutation(training.images.rows, purpose: 1).prefix(n)).sorted() }

        static func argmax(_ logits: Tensor, _ r: Int) -> Int {
            let k = logits.rowSize
            var best = 0
            for j in 1 ..< k where logits.storage[r * k + j] > logits.storage[r * k + best] { best = j }
            return best
        }

        // MARK: Sections

        mutating func classifierCheck(_ seconds: () -> Double) throws -> ClassifierCheck {
            let (_, logits) = try testFeatures()
            let correct = (0 ..< logits.rows).filter { Self.argmax(logits, $0) == test.labels[$0] }.count
            return ClassifierCheck(featureDimension: classifier.featureDimension, classCount: classifier.classCount,
                                   testCount: logits.rows, testAccuracy: Double(correct) / Double(logits.rows), seconds: seconds())
        }

        mutating func frechetSamples(_ seconds: () -> Double) throws -> FeatureFrechet {
            let t = try testFeatures().features, s = try sampleFeatures().features
            return FeatureFrechet(frechetDistance: try frechetDistance(s, t), count: s.rows, testCount: t.rows, seconds: seconds())
        }

        mutating func frechetTraining(_ seconds: () -> Double) throws -> FeatureFrechet {
            let t = try testFeatures().features, r = try trainingFeatures(trainingSubset)
            return FeatureFrechet(frechetDistance: try frechetDistance(r, t), count: r.rows, testCount: t.rows, seconds: seconds())
        }

        mutating func frechetPerClass(_ seconds: () -> Double) throws -> PerClassFrechet {
            let classes = self.classes!
            let t = try testFeatures().features, s = try sampleFeatures().features
            var entries = [PerClassFrechet.Entry](), skipped = [Int]()
            let subset = trainingSubset, subsetSet = Set(subset)
            let order = permutation(training.images.rows, purpose: 2)
            for c in Set(classes).sorted() {
                let sampleRows = classes.indices.filter { classes[$0] == c }
                let testRows = test.labels.indices.filter { test.labels[$0] == c }
                guard sampleRows.count >= 2, testRows.count >= 2 else { skipped.append(c); continue }
                // Training reference of the class: its members of the reference subset first, then
                // further random images of the class, as many as the class's samples.
                let inSubset = subset.filter { training.labels[$0] == c }
                let more = order.filter { training.labels[$0] == c && !subsetSet.contains($0) }
                let reference = Array((inSubset + more).prefix(sampleRows.count))
                let tc = t.gatherRows(testRows)
                let fd = try frechetDistance(s.gatherRows(sampleRows), tc)
                var fdTraining: Double?
                if reference.count >= 2 { fdTraining = try frechetDistance(trainingFeatures(reference), tc) }
                entries.append(.init(label: c, name: c < evaluation.classNames.count ? evaluation.classNames[c] : nil,
                                     count: sampleRows.count, testCount: testRows.count, frechetDistance: fd,
                                     trainingFrechetDistance: fdTraining, trainingCount: reference.count))
            }
            return PerClassFrechet(classes: entries, skipped: skipped, seconds: seconds())
        }

        mutating func classAccuracy(_ seconds: () -> Double) throws -> ClassAccuracy {
            let classes = self.classes!
            let logits = try sampleFeatures().logits
            var perClass = [Int: (count: Int, correct: Int)]()
            for r in classes.indices {
                let hit = Self.argmax(logits, r) == classes[r]
                perClass[classes[r], default: (0, 0)].count += 1
                if hit { perClass[classes[r]]!.correct += 1 }
            }
            let entries = perClass.keys.sorted().map { ClassAccuracy.Entry(label: $0, count: perClass[$0]!.count, correct: perClass[$0]!.correct) }
            return ClassAccuracy(count: classes.count, correct: entries.reduce(0) { $0 + $1.correct }, perClass: entries, seconds: seconds())
        }

        func memorisation(_ seconds: () -> Double) throws -> Memorisation {
            let scale = 1 / Double(evaluation.settings.levels - 1)
            let testNN = try NearestNeighbours(of: test.images, in: training.images, scale: scale)
            let sampleNN = try NearestNeighbours(of: samples, in: training.images, scale: scale)
            let check = try MemorisationCheck(sampleDistances: sampleNN.distances, heldOutDistances: testNN.distances,
                                              percentile: evaluation.settings.percentile)
            func median(_ v: [Double]) -> Double {
                let s = v.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
            }
            return Memorisation(percentile: check.percentile, threshold: check.threshold, testCount: check.heldOutCount,
                                testBelow: check.heldOutBelow, count: check.count, below: check.below,
                                medianDistance: median(sampleNN.distances), testMedianDistance: median(testNN.distances),
                                trainingCount: training.images.rows, seconds: seconds())
        }

        /// The training images' logits (one dequantization, seeded) and the two full-covariance baselines.
        mutating func baselines() throws -> (full: LogitGaussianBaseline, classWise: LogitGaussianBaseline, logits: Tensor) {
            if let fitted { return fitted }
            let transform = try LogitPixelTransform(lambda: evaluation.settings.lambda, levels: evaluation.settings.levels)
            var rng = RandomSource(seed: seed).derived(3)
            let v = try UniformDequantization.sample(levels: training.images, topLevel: transform.levels - 1, using: &rng)
            let z = try transform.logits(ofDequantized: v).z
            let full = try LogitGaussianBaseline(.fullCovariance, fittedToLogits: z, transform: transform)
            let classWise = try LogitGaussianBaseline(.classWise, fittedToLogits: z, labels: training.labels, transform: transform)
            fitted = (full, classWise, z)
            return fitted!
        }

        mutating func baselineBits(_ seconds: () -> Double) throws -> BaselineBits {
            let (full, classWise, z) = try baselines()
            let independent = try LogitGaussianBaseline(.independentPixels, fittedToLogits: z, transform: full.transform)
            var entries = [BaselineBits.Entry]()
            for model in [independent, full, classWise] {
                var rng = RandomSource(seed: seed).derived(4)   // the same test dequantizations for each
                let b = try model.bitsPerDim(ofLevels: test.images, draws: evaluation.settings.baselineDraws, using: &rng)
                let se = b.dequantizationStandardError
                entries.append(.init(baseline: model.kind.rawValue, bitsPerDim: b.mean, standardError: b.standardError,
                                     dequantizationStandardError: se.isFinite ? se : nil, draws: b.draws))
            }
            return BaselineBits(baselines: entries, lambda: full.transform.lambda, trainingCount: training.images.rows,
                                testCount: test.images.rows, seconds: seconds())
        }

        mutating func frechetBaselines(_ seconds: () -> Double) throws -> BaselineFrechet {
            let (full, classWise, _) = try baselines()
            let t = try testFeatures().features
            var entries = [BaselineFrechet.Entry]()
            for (i, model) in [full, classWise].enumerated() {
                let x = try model.sample(count: n, seed: RandomSource(seed: seed).derived(5 + UInt64(i)).seed)
                let f = try classify(x).features
                entries.append(.init(baseline: model.kind.rawValue, frechetDistance: try frechetDistance(f, t), count: f.rows))
            }
            return BaselineFrechet(baselines: entries, testCount: t.rows, seconds: seconds())
        }
    }
}

/// 64-bit FNV-1a (Fowler–Noll–Vo), over bytes.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var h = value
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        value = h
    }

    /// The UTF-8 bytes of `text`, then a 0xFF separator (never part of UTF-8).
    mutating func add(text: String) {
        var bytes = Array(text.utf8)
        bytes.append(0xff)
        bytes.withUnsafeBytes { add($0) }
    }

    /// The count, then each value as 8 little-endian bytes.
    mutating func add(ints: [Int]) {
        ([ints.count] + ints).map { Int64($0).littleEndian }.withUnsafeBytes { add($0) }
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: Swift.max(0, width - count)) + self }
}

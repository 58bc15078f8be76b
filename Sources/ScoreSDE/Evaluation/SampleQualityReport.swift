import Foundation

/// The results of a ``SampleQualityEvaluation``, section by section: what a paper reports about
/// samples of an image model, in the feature space of a ``FeatureClassifier`` and in pixel space.
/// A section is nil until computed; the stats JSON holds each finished section under its
/// ``SampleQualitySection`` name, so an interrupted evaluation resumes where it stopped.
public struct SampleQualityReport: Sendable, Equatable, Codable {
    /// The identity of the inputs the sections were computed from (samples, classes, settings,
    /// classifier, data): ``SampleQualityEvaluation/inputsHash(samples:classes:)``.
    public var inputsHash: String
    /// The classifier on the test images (its accuracy: the feature space is only as good as it).
    public var classifier: ClassifierCheck?
    /// Fréchet distance between the samples and the test images.
    public var frechetSamples: FeatureFrechet?
    /// Fréchet distance between training images (as many as ``FeatureFrechet/count`` of the
    /// samples, at most the reference count) and the test images: the floor a perfect model reaches.
    public var frechetTraining: FeatureFrechet?
    /// Per class: samples of class `c` against test images of class `c` (class-conditional samples).
    public var frechetPerClass: PerClassFrechet?
    /// The classifier's accuracy on class-conditional samples (their intended classes).
    public var classAccuracy: ClassAccuracy?
    /// Nearest-training-image distances of the samples against those of the test images.
    public var memorisation: Memorisation?
    /// Test bits/dim of the three Gaussian baselines (``LogitGaussianBaseline``).
    public var baselineBitsPerDim: BaselineBits?
    /// Fréchet distances of the Gaussian baselines' samples to the test images.
    public var frechetBaselines: BaselineFrechet?

    /// An empty report for inputs with this hash.
    public init(inputsHash: String) { self.inputsHash = inputsHash }

    /// The sections computed so far, in evaluation order.
    public var finished: [SampleQualitySection] { SampleQualitySection.allCases.filter(isFinished) }

    /// Whether `section` has been computed.
    public func isFinished(_ section: SampleQualitySection) -> Bool {
        switch section {
        case .classifier: return classifier != nil
        case .frechetSamples: return frechetSamples != nil
        case .frechetTraining: return frechetTraining != nil
        case .frechetPerClass: return frechetPerClass != nil
        case .classAccuracy: return classAccuracy != nil
        case .memorisation: return memorisation != nil
        case .baselineBitsPerDim: return baselineBitsPerDim != nil
        case .frechetBaselines: return frechetBaselines != nil
        }
    }

    /// The report as JSON fields, in evaluation order (unfinished sections absent).
    public var stats: RunStats {
        var s = RunStats()
        s["inputs_hash"] = .string(inputsHash)
        s["sections_done"] = .array(finished.map { .string($0.rawValue) })
        if let v = classifier { s[SampleQualitySection.classifier.rawValue] = .object(v.stats) }
        if let v = frechetSamples { s[SampleQualitySection.frechetSamples.rawValue] = .object(v.stats) }
        if let v = frechetTraining { s[SampleQualitySection.frechetTraining.rawValue] = .object(v.stats) }
        if let v = frechetPerClass { s[SampleQualitySection.frechetPerClass.rawValue] = .object(v.stats) }
        if let v = classAccuracy { s[SampleQualitySection.classAccuracy.rawValue] = .object(v.stats) }
        if let v = memorisation { s[SampleQualitySection.memorisation.rawValue] = .object(v.stats) }
        if let v = baselineBitsPerDim { s[SampleQualitySection.baselineBitsPerDim.rawValue] = .object(v.stats) }
        if let v = frechetBaselines { s[SampleQualitySection.frechetBaselines.rawValue] = .object(v.stats) }
        return s
    }

    /// Reads the report from a stats JSON written by ``SampleQualityEvaluation`` (other keys are ignored).
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` when the file cannot be read or is not such a file.
    public static func read(_ path: String) throws -> SampleQualityReport {
        let data = try AtomicFile.read(path)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(SampleQualityReport.self, from: data) } catch {
            throw ScoreSDEError.io(path: path, message: "not the stats file of a sample-quality evaluation (scoresde evaluate): \(Self.reason(error)); give another path or remove the file")
        }
    }

    private static func reason(_ error: Error) -> String {
        /// A field's path as the file spells it (snake case).
        func path(_ keys: [CodingKey]) -> String {
            keys.map { key in
                key.intValue.map(String.init) ?? key.stringValue.reduce(into: "") { out, c in
                    if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
                }
            }.joined(separator: ".")
        }
        switch error {
        case DecodingError.keyNotFound(let key, let c): return "no '\(path(c.codingPath + [key]))' field"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "the field '\(path(c.codingPath))' has the wrong type"
        case DecodingError.dataCorrupted: return "not valid JSON"
        default: return "\(error)"
        }
    }
}

/// The sections of a sample-quality evaluation, in the order they are computed (their names in
/// the stats JSON).
public enum SampleQualitySection: String, Sendable, CaseIterable, Codable {
    case classifier
    case frechetSamples = "frechet_samples"
    case frechetTraining = "frechet_training"
    case frechetPerClass = "frechet_per_class"
    case classAccuracy = "class_accuracy"
    case memorisation
    case baselineBitsPerDim = "baseline_bits_per_dim"
    case frechetBaselines = "frechet_baselines"
}

/// The feature classifier on the test images.
public struct ClassifierCheck: Sendable, Equatable, Codable {
    /// Dimension of the features the distances are computed in.
    public var featureDimension: Int
    /// Number of classes.
    public var classCount: Int
    /// Number of test images.
    public var testCount: Int
    /// Share of test images whose largest logit is their label.
    public var testAccuracy: Double
    /// Wall time of the section.
    public var seconds: Double

    var stats: RunStats {
        var s = RunStats()
        s["test_accuracy"] = .double(testAccuracy); s["test_count"] = .int(testCount)
        s["feature_dimension"] = .int(featureDimension); s["class_count"] = .int(classCount)
        s["seconds"] = .double(seconds)
        return s
    }
}

/// A Fréchet distance in feature space between `count` rows and `testCount` test images.
public struct FeatureFrechet: Sendable, Equatable, Codable {
    /// The squared Fréchet distance (as FID reports it).
    public var frechetDistance: Double
    /// Rows of the compared set (samples, training images, a baseline's samples).
    public var count: Int
    /// Test images.
    public var testCount: Int
    /// Wall time of the section.
    public var seconds: Double

    var stats: RunStats {
        var s = RunStats()
        s["frechet_distance"] = .double(frechetDistance); s["count"] = .int(count); s["test_count"] = .int(testCount)
        s["seconds"] = .double(seconds)
        return s
    }
}

/// Per-class Fréchet distances of class-conditional samples.
public struct PerClassFrechet: Sendable, Equatable, Codable {
    /// One class.
    public struct Entry: Sendable, Equatable, Codable {
        /// The class label.
        public var label: Int
        /// Its name, when the data set has names.
        public var name: String?
        /// Samples of this class, and test images of it.
        public var count: Int, testCount: Int
        /// Samples of the class against test images of the class.
        public var frechetDistance: Double
        /// As many training images of the class (at random) against the same test images: the
        /// reference (nil when the training split has fewer than 2 images of the class).
        public var trainingFrechetDistance: Double?
        /// Training images in the reference.
        public var trainingCount: Int

        enum CodingKeys: String, CodingKey {
            case label = "class", name, count, testCount, frechetDistance, trainingFrechetDistance, trainingCount
        }

        var stats: RunStats {
            var s = RunStats()
            s["class"] = .int(label); s["name"] = name.map { .string($0) } ?? .null
            s["count"] = .int(count); s["test_count"] = .int(testCount)
            s["frechet_distance"] = .double(frechetDistance)
            s["training_count"] = .int(trainingCount); s["training_frechet_distance"] = trainingFrechetDistance.map { .double($0) } ?? .null
            return s
        }
    }

    /// The classes with at least 2 samples and 2 test images, ascending.
    public var classes: [Entry]
    /// Classes of the samples left out (fewer than 2 samples or test images of the class).
    public var skipped: [Int]
    /// Wall time of the section.
    public var seconds: Double

    var stats: RunStats {
        var s = RunStats()
        s["classes"] = .array(classes.map { .object($0.stats) })
        s["skipped"] = .ints(skipped)
        s["seconds"] = .double(seconds)
        return s
    }
}

/// The classifier's accuracy on class-conditional samples.
public struct ClassAccuracy: Sendable, Equatable, Codable {
    /// One class.
    public struct Entry: Sendable, Equatable, Codable {
        /// The intended class.
        public var label: Int
        /// Samples of it, and how many the classifier put in it.
        public var count: Int, correct: Int

        enum CodingKeys: String, CodingKey { case label = "class", count, correct }

        /// The share classified as intended.
        public var accuracy: Double { Double(correct) / Double(count) }

        var stats: RunStats {
            var s = RunStats()
            s["class"] = .int(label); s["count"] = .int(count); s["correct"] = .int(correct); s["accuracy"] = .double(accuracy)
            return s
        }
    }

    /// All samples, and those classified as intended.
    public var count: Int, correct: Int
    /// Per intended class, ascending.
    public var perClass: [Entry]
    /// Wall time of the section.
    public var seconds: Double

    /// The share of samples classified as intended.
    public var accuracy: Double { Double(correct) / Double(count) }
    /// Its binomial standard error `√(a (1 − a) / n)`.
    public var standardError: Double { (accuracy * (1 - accuracy) / Double(count)).squareRoot() }

    var stats: RunStats {
        var s = RunStats()
        s["accuracy"] = .double(accuracy); s["standard_error"] = .double(standardError)
        s["count"] = .int(count); s["correct"] = .int(correct)
        s["per_class"] = .array(perClass.map { .object($0.stats) })
        s["seconds"] = .double(seconds)
        return s
    }
}

/// The memorisation check (``MemorisationCheck``) with the distances' medians.
public struct Memorisation: Sendable, Equatable, Codable {
    /// The percentile of the test images' distances used as the threshold.
    public var percentile: Double
    /// The threshold (L2 over pixels scaled to `[0, 1]`).
    public var threshold: Double
    /// Test images, and those below the threshold.
    public var testCount: Int, testBelow: Int
    /// Samples, and those below the threshold.
    public var count: Int, below: Int
    /// Median nearest-training distance of the samples and of the test images.
    public var medianDistance: Double, testMedianDistance: Double
    /// Training images searched.
    public var trainingCount: Int
    /// Wall time of the section.
    public var seconds: Double

    /// The check itself.
    public var check: MemorisationCheck {
        MemorisationCheck(percentile: percentile, threshold: threshold, heldOutCount: testCount, heldOutBelow: testBelow, count: count, below: below)
    }

    var stats: RunStats {
        let c = check
        var s = RunStats()
        s["share"] = .double(c.share); s["standard_error"] = .double(c.standardError)
        s["count"] = .int(count); s["below"] = .int(below)
        s["percentile"] = .double(percentile); s["threshold"] = .double(threshold)
        s["test_share"] = .double(c.heldOutShare); s["test_count"] = .int(testCount); s["test_below"] = .int(testBelow)
        s["median_distance"] = .double(medianDistance); s["test_median_distance"] = .double(testMedianDistance)
        s["training_count"] = .int(trainingCount)
        s["distance"] = .string("L2 over pixels / 255, to the nearest training image")
        s["seconds"] = .double(seconds)
        return s
    }
}

/// Test bits/dim of the Gaussian baselines.
public struct BaselineBits: Sendable, Equatable, Codable {
    /// One baseline.
    public struct Entry: Sendable, Equatable, Codable {
        /// ``LogitGaussianBaseline/Kind`` raw value.
        public var baseline: String
        /// Mean test bits/dim, its standard error over test images, and (with > 1 draw) over draws.
        public var bitsPerDim: Double, standardError: Double, dequantizationStandardError: Double?
        /// Dequantization draws of the test images.
        public var draws: Int

        var stats: RunStats {
            var s = RunStats()
            s["baseline"] = .string(baseline); s["bits_per_dim"] = .double(bitsPerDim)
            s["standard_error"] = .double(standardError)
            s["dequantization_standard_error"] = dequantizationStandardError.map { .double($0) } ?? .null
            s["draws"] = .int(draws)
            return s
        }
    }

    /// Independent pixels, one full-covariance Gaussian, one per class.
    public var baselines: [Entry]
    /// The logit transform's λ.
    public var lambda: Double
    /// Training images fitted, test images evaluated.
    public var trainingCount: Int, testCount: Int
    /// Wall time of the section (fits included).
    public var seconds: Double

    var stats: RunStats {
        var s = RunStats()
        s["baselines"] = .array(baselines.map { .object($0.stats) })
        s["lambda"] = .double(lambda); s["training_count"] = .int(trainingCount); s["test_count"] = .int(testCount)
        s["convention"] = .string("x = (k + u) / 256, z = logit(lambda + (1 - 2 lambda) x); bits/dim = -log2 p(k + u) / D in 8-bit units (8 = uniform); Gaussians fitted to one dequantization of the training images")
        s["seconds"] = .double(seconds)
        return s
    }
}

/// Fréchet distances of the Gaussian baselines' samples.
public struct BaselineFrechet: Sendable, Equatable, Codable {
    /// One baseline.
    public struct Entry: Sendable, Equatable, Codable {
        /// ``LogitGaussianBaseline/Kind`` raw value.
        public var baseline: String
        /// Its samples against the test images.
        public var frechetDistance: Double
        /// Its samples.
        public var count: Int

        var stats: RunStats {
            var s = RunStats()
            s["baseline"] = .string(baseline); s["frechet_distance"] = .double(frechetDistance); s["count"] = .int(count)
            return s
        }
    }

    /// One full-covariance Gaussian and one per class.
    public var baselines: [Entry]
    /// Test images.
    public var testCount: Int
    /// Wall time of the section (fits and sampling included).
    public var seconds: Double

    var stats: RunStats {
        var s = RunStats()
        s["baselines"] = .array(baselines.map { .object($0.stats) })
        s["test_count"] = .int(testCount)
        s["seconds"] = .double(seconds)
        return s
    }
}

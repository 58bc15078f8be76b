import Foundation
import Testing
@testable import ScoreSDE

// Evaluation/SampleQuality: the feature-space Fréchet distance against the closed form of the
// features' Gaussians, class accuracy and per-class counts against direct computation, and the
// resumable stats file (finished sections kept, changed samples recomputed, an interrupted run
// completed to the uninterrupted result).

/// A simple, honest feature classifier for tests: features are a fixed linear map of the row
/// (`W x`, `W` chosen by the test), logits the negative squared distances of the features to
/// each class's mean feature on the training rows (nearest class mean). Counts its calls.
final class ProjectionClassifier: FeatureClassifier, @unchecked Sendable {
    let rowShape: [Int]
    let classCount: Int
    let featureDimension: Int
    let projection: [Double]          // F × D, row-major
    let classMeans: [[Double]]        // K × F
    private let lock = NSLock()
    private var callsMade = 0
    /// Throw after this many calls (a run interrupted part-way), nil never.
    var failAfter: Int?

    var calls: Int { lock.lock(); defer { lock.unlock() }; return callsMade }

    init(rowShape: [Int], projection: [Double], featureDimension f: Int, training: Tensor, labels: [Int]) {
        self.rowShape = rowShape; self.projection = projection; featureDimension = f
        classCount = (labels.max() ?? 0) + 1
        var means = [[Double]](repeating: [Double](repeating: 0, count: f), count: classCount), counts = [Double](repeating: 0, count: classCount)
        let d = training.rowSize
        for r in 0 ..< training.rows {
            for i in 0 ..< f { var s = 0.0; for j in 0 ..< d { s += projection[i * d + j] * training.storage[r * d + j] }; means[labels[r]][i] += s }
            counts[labels[r]] += 1
        }
        classMeans = means.enumerated().map { k, m in m.map { $0 / max(counts[k], 1) } }
    }

    /// A random projection (standard normals / √D).
    convenience init(rowShape: [Int], featureDimension f: Int, seed: UInt64, training: Tensor, labels: [Int]) {
        var rng = RandomSource(seed: seed)
        let d = rowShape.reduce(1, *)
        let w = Tensor.standardNormal(shape: [f, d], using: &rng).storage.map { $0 / Double(d).squareRoot() }
        self.init(rowShape: rowShape, projection: w, featureDimension: f, training: training, labels: labels)
    }

    func featuresAndLogits(of x: Tensor) throws -> (features: Tensor, logits: Tensor) {
        lock.lock(); callsMade += 1; let c = callsMade; lock.unlock()
        if let failAfter, c > failAfter { throw CancellationError() }
        let d = x.rowSize, f = featureDimension
        var features = [Double](repeating: 0, count: x.rows * f), logits = [Double](repeating: 0, count: x.rows * classCount)
        for r in 0 ..< x.rows {
            for i in 0 ..< f { var s = 0.0; for j in 0 ..< d { s += projection[i * d + j] * x.storage[r * d + j] }; features[r * f + i] = s }
            for k in 0 ..< classCount {
                var s = 0.0
                for i in 0 ..< f { let e = features[r * f + i] - classMeans[k][i]; s += e * e }
                logits[r * classCount + k] = -s
            }
        }
        return (try Tensor(shape: [x.rows, f], storage: features), try Tensor(shape: [x.rows, classCount], storage: logits))
    }
}

/// `n` rows of 6 independent coordinates `N(mean_i, variance_i)`, as `[n, 1, 2, 3]` "images".
private func gaussianRows(_ n: Int, mean: [Double], variance: [Double], seed: UInt64) -> Tensor {
    var rng = RandomSource(seed: seed)
    var z = Tensor.standardNormal(shape: [n, 6], using: &rng).storage
    for r in 0 ..< n { for i in 0 ..< 6 { z[r * 6 + i] = mean[i] + variance[i].squareRoot() * z[r * 6 + i] } }
    return try! Tensor(shape: [n, 1, 2, 3], storage: z)
}

/// Three classes of 8-value rows around different centres, labels in blocks of `n / 3`.
private func classRows(_ n: Int, seed: UInt64, spread: Double = 1) -> (Tensor, [Int]) {
    var rng = RandomSource(seed: seed)
    let z = Tensor.standardNormal(shape: [n, 8], using: &rng).storage
    var values = [Double](), labels = [Int]()
    for r in 0 ..< n {
        let c = r * 3 / n
        for j in 0 ..< 8 { values.append(100 + 30 * Double(c) * (j % 2 == 0 ? 1 : -1) + 10 * spread * z[r * 8 + j]) }
        labels.append(c)
    }
    return (try! Tensor(shape: [n, 1, 2, 4], storage: values), labels)
}

@Suite("Sample quality")
struct SampleQualityTests {
    /// Features `W x` with `W` picking coordinates 0, 2, 4 of Gaussian rows with diagonal
    /// covariances: the features' Gaussians are known, and their Fréchet distance is
    /// `Σ δᵢ² + Σ (√aᵢ − √bᵢ)²` over the picked coordinates. The estimate from n₁ = n₂ = 20 000 rows
    /// is within 5 standard errors (delta method: Var δ̂ᵢ² ≈ 4δᵢ² (aᵢ/n₁ + bᵢ/n₂),
    /// Var (√âᵢ − √b̂ᵢ)² ≈ 4 (√aᵢ − √bᵢ)² (aᵢ/2n₁ + bᵢ/2n₂)) plus twice the mean term's exact bias
    /// `Σ (aᵢ/n₁ + bᵢ/n₂)`. Training rows from the test law give the bias-sized floor.
    @Test func featureFrechetDistanceMatchesTheClosedForm() throws {
        let n = 20_000
        let ma = [1.0, 0, -0.5, 0, 2, 0], va = [2.0, 1, 0.5, 1, 1.5, 1]
        let mb = [0.0, 0, 0, 0, 1, 0], vb = [1.0, 1, 1, 1, 1, 1]
        let samples = gaussianRows(n, mean: ma, variance: va, seed: 1)
        let test = gaussianRows(n, mean: mb, variance: vb, seed: 2), training = gaussianRows(n, mean: mb, variance: vb, seed: 3)
        var w = [Double](repeating: 0, count: 18)
        for (i, j) in [0, 2, 4].enumerated() { w[i * 6 + j] = 1 }
        let labels = [Int](repeating: 0, count: n)
        let classifier = ProjectionClassifier(rowShape: [1, 2, 3], projection: w, featureDimension: 3, training: training, labels: labels)
        let evaluation = SampleQualityEvaluation(classifier: classifier, classifierIdentity: "projection", test: .init(images: test, labels: labels),
                                                 training: .init(images: training, labels: labels), settings: .init(batchSize: 7000))
        let report = try evaluation.run(samples: samples, classes: nil)
        var closed = 0.0, variance = 0.0, bias = 0.0
        for i in [0, 2, 4] {
            let delta = ma[i] - mb[i], root = va[i].squareRoot() - vb[i].squareRoot()
            closed += delta * delta + root * root
            variance += 4 * delta * delta * (va[i] + vb[i]) / Double(n) + 4 * root * root * (va[i] + vb[i]) / Double(2 * n)
            bias += (va[i] + vb[i]) / Double(n)
        }
        let fd = try #require(report.frechetSamples)
        #expect(fd.count == n && fd.testCount == n)
        #expect(abs(fd.frechetDistance - closed) <= 5 * variance.squareRoot() + 2 * bias, "\(fd.frechetDistance) vs \(closed) ± \(5 * variance.squareRoot() + 2 * bias)")
        let floor = try #require(report.frechetTraining)
        #expect(floor.count == min(n, SampleQualityEvaluation.Settings.defaultReferenceCap))
        #expect(floor.frechetDistance <= 4 * 6 / Double(floor.count), "training vs test: \(floor.frechetDistance)")
        #expect(report.classAccuracy == nil && report.frechetPerClass == nil && report.memorisation != nil)
    }

    /// Class-conditional samples: accuracy and per-class counts equal a direct computation from
    /// the classifier's logits; each class's distance compares the class's samples with the class's
    /// test images, and samples drawn like the data sit near the training reference.
    @Test func classAccuracyAndPerClassDistances() throws {
        let (training, trainLabels) = classRows(3000, seed: 1)
        let (test, testLabels) = classRows(1500, seed: 2)
        let (samples, intended) = classRows(900, seed: 3, spread: 2.5)   // wider: some misclassified
        let classifier = ProjectionClassifier(rowShape: [1, 2, 4], featureDimension: 5, seed: 9, training: training, labels: trainLabels)
        let evaluation = SampleQualityEvaluation(classifier: classifier, classifierIdentity: "projection", test: .init(images: test, labels: testLabels),
                                                 training: .init(images: training, labels: trainLabels), classNames: ["a", "b", "c"])
        let report = try evaluation.run(samples: samples, classes: intended)
        let (_, logits) = try classifier.featuresAndLogits(of: samples)
        var correct = [0, 0, 0]
        for r in 0 ..< samples.rows {
            let row = (0 ..< 3).map { logits.storage[r * 3 + $0] }
            if row.firstIndex(of: row.max()!)! == intended[r] { correct[intended[r]] += 1 }
        }
        let accuracy = try #require(report.classAccuracy)
        #expect(accuracy.correct == correct.reduce(0, +) && accuracy.count == 900)
        #expect(accuracy.perClass.map(\.correct) == correct && accuracy.perClass.map(\.count) == [300, 300, 300])
        #expect(accuracy.accuracy < 1 && accuracy.accuracy > 0.5, "\(accuracy.accuracy)")
        #expect(abs(accuracy.standardError - (accuracy.accuracy * (1 - accuracy.accuracy) / 900).squareRoot()) < 1e-15)
        let perClass = try #require(report.frechetPerClass)
        #expect(perClass.classes.map(\.label) == [0, 1, 2] && perClass.classes.map(\.name) == ["a", "b", "c"])
        #expect(perClass.classes.allSatisfy { $0.count == 300 && $0.testCount == 500 && $0.trainingCount == 300 })
        for e in perClass.classes { #expect(e.frechetDistance > 3 * (e.trainingFrechetDistance ?? .infinity), "wider samples are farther: \(e)") }
        #expect(try #require(report.classifier).testAccuracy > 0.9)
    }

    /// The stats file resumes: a second run with the same inputs computes nothing (no classifier
    /// call) and returns the same report; changed samples are recomputed; a run interrupted after
    /// some sections is completed by the next to the uninterrupted result (seconds aside); a file
    /// that is not such a report is refused, untouched.
    @Test func theStatsFileResumes() throws {
        let (training, trainLabels) = classRows(600, seed: 1)
        let (test, testLabels) = classRows(300, seed: 2)
        let (samples, intended) = classRows(150, seed: 3)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("eval.json").path
        func evaluation(_ c: ProjectionClassifier) -> SampleQualityEvaluation {
            SampleQualityEvaluation(classifier: c, classifierIdentity: "projection 9", test: .init(images: test, labels: testLabels),
                                    training: .init(images: training, labels: trainLabels), settings: .init(seed: 4, batchSize: 50))
        }
        func classifier() -> ProjectionClassifier {
            ProjectionClassifier(rowShape: [1, 2, 4], featureDimension: 5, seed: 9, training: training, labels: trainLabels)
        }
        func withoutSeconds(_ r: SampleQualityReport) -> RunStats {
            var s = r.stats
            for k in s.keys { if case .object(var o)? = s[k] { o["seconds"] = nil; s[k] = .object(o) } }
            return s
        }
        var extra = RunStats(); extra["note"] = "caller's field"
        let first = try evaluation(classifier()).run(samples: samples, classes: intended, statsPath: path, extra: extra)
        let all = evaluation(classifier()).sections(withClasses: true)
        #expect(first.finished == all)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        #expect(json?["note"] as? String == "caller's field" && json?["inputs_hash"] as? String == first.inputsHash)

        let idle = classifier()
        var events = [SampleQualityProgress]()
        let second = try evaluation(idle).run(samples: samples, classes: intended, statsPath: path) { events.append($0) }
        #expect(idle.calls == 0 && second == first)
        #expect(events == all.map { .skipped($0) })

        var changed = samples
        changed.storage[0] += 1
        events = []
        let third = try evaluation(classifier()).run(samples: changed, classes: intended, statsPath: path) { events.append($0) }
        #expect(third.inputsHash != first.inputsHash && events.first == .replacing(previousHash: first.inputsHash))
        #expect(third.frechetSamples != first.frechetSamples)

        // Interrupted: the classifier fails after its first calls (test images, 6 batches of 50,
        // and the samples, 3), i.e. during the training reference: two sections are written.
        try FileManager.default.removeItem(atPath: path)
        let failing = classifier()
        failing.failAfter = 9
        #expect(throws: CancellationError.self) { _ = try evaluation(failing).run(samples: samples, classes: intended, statsPath: path) }
        #expect(try SampleQualityReport.read(path).finished == [.classifier, .frechetSamples])
        events = []
        let resumed = try evaluation(classifier()).run(samples: samples, classes: intended, statsPath: path) { events.append($0) }
        #expect(events.prefix(2) == [.skipped(.classifier), .skipped(.frechetSamples)] && events.count == 2 + 2 * (all.count - 2))
        #expect(withoutSeconds(resumed) == withoutSeconds(first))

        let other = folder.appendingPathComponent("other.json").path
        try Data("{\"nfe\": 3}\n".utf8).write(to: URL(fileURLWithPath: other))
        let error = scoreSDEError { _ = try evaluation(classifier()).run(samples: samples, classes: intended, statsPath: other) }
        guard case .io(_, let message)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(message.contains("not the stats file") && message.contains("inputs_hash"), "\(message)")
        #expect(try String(contentsOfFile: other, encoding: .utf8) == "{\"nfe\": 3}\n")
    }

    /// Bad inputs are refused before any work, naming the problem.
    @Test func badInputsAreRefused() throws {
        let (training, trainLabels) = classRows(300, seed: 1)
        let (test, testLabels) = classRows(150, seed: 2)
        let evaluation = SampleQualityEvaluation(classifier: nil, classifierIdentity: "", test: .init(images: test, labels: testLabels),
                                                 training: .init(images: training, labels: trainLabels))
        var nan = test
        nan.storage[17] = .nan
        #expect({ if case .nonFinite(let m)? = scoreSDEError({ try evaluation.validate(samples: nan, classes: nil) }) { return m.contains("sample 2") }; return false }())
        #expect({ if case .shapeMismatch(let m)? = scoreSDEError({ try evaluation.validate(samples: test, classes: [0, 1]) }) { return m.contains("2 classes for 150 samples") }; return false }())
        #expect(invalidArgumentText { try evaluation.validate(samples: test, classes: [Int](repeating: 3, count: 150)) } != nil)
        #expect({ if case .shapeMismatch? = scoreSDEError({ try evaluation.validate(samples: Tensor([1, 2, 3]), classes: nil) }) { return true }; return false }())
        #expect(evaluation.sections(withClasses: true) == [.memorisation])
    }
}

/// The whole evaluation on the real Fashion-MNIST, timed section by section (opt-in:
/// `SCORESDE_EVALUATION_BENCH=1`; about two minutes on 2 cores). The classifier is the test
/// target's random projection to 256 features (cheap), so the times are the evaluation's own;
/// a real classifier adds its forward passes (test images, samples, the training reference and,
/// with baselines, their samples: about 5 × 10 000 rows). The samples are 10 000 draws of the
/// class-wise Gaussian baseline with their classes.
@Suite("Sample quality on Fashion-MNIST (benchmark)", .enabled(if: ProcessInfo.processInfo.environment["SCORESDE_EVALUATION_BENCH"] != nil))
struct SampleQualityBenchmark {
    @Test func timeEverySection() throws {
        let clock = ContinuousClock()
        var start = clock.now
        let train = try FashionMNIST.trainingSplit(), test = try FashionMNIST.testSplitForEvaluation()
        print("load: \(clock.now - start)")
        start = clock.now
        let classifier = ProjectionClassifier(rowShape: [1, 28, 28], featureDimension: 256, seed: 1, training: train.images, labels: train.labels)
        print("stand-in classifier fitted: \(clock.now - start)")
        var rng = RandomSource(seed: 2)
        let mixture = try LogitGaussianBaseline.fit(.classWise, toLevels: train.images, labels: train.labels, transform: LogitPixelTransform(), using: &rng)
        let classes = (0 ..< 10_000).map { $0 / 1000 }
        let samples = try mixture.sample(classes: classes, seed: 3)
        let evaluation = SampleQualityEvaluation(classifier: classifier, classifierIdentity: "projection", test: .init(test), training: .init(train),
                                                 classNames: FashionMNIST.classNames, settings: .init(seed: 0, baselines: true))
        let report = try evaluation.run(samples: samples, classes: classes) { event in
            if case .finished(let s, let seconds) = event { print("\(s.rawValue): \(String(format: "%.1f", seconds)) s") }
        }
        print(String(decoding: report.stats.jsonData(), as: UTF8.self))
    }
}

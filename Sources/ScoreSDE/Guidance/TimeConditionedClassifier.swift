import Foundation

// MARK: - Time-conditioned classifiers

/// A classifier of noisy inputs `p_t(y | x)` (Song et al. 2021, App. I.1; Dhariwal & Nichol
/// 2021): what classifier guidance needs. ``NoiseAwareClassifier`` (an MLP) and
/// ``ConvolutionalClassifier`` (the U-Net's encoder) conform; the extension gives every conformer
/// the same label checks, single-time log-probabilities, predictions and ``targeting(_:)``.
///
///     let classifier = try PretrainedClassifiers.fashion()
///     let guided = ClassifierGuidedScore(base: score, classifier: try classifier.targeting([3]), scale: 1)
public protocol TimeConditionedClassifier: Sendable {
    /// The number of classes `K`.
    var classCount: Int { get }
    /// `log p_{t_r}(y | x_r)` with one time per row: shape `[rows, K]`.
    func logProbabilities(_ x: Tensor, times: [Double]) throws -> Tensor
    /// `∇ₓ log p_t(y | x)` for each row (labels: one for all rows, or one per row of the whole
    /// batch, of which a sampler's split call takes its rows' slice, ``ScoreBatch``).
    func logProbabilityGradient(_ x: Tensor, at t: Double, labels: [Int]) throws -> Tensor
}

extension TimeConditionedClassifier {
    /// `log p_t(y | x)` for every row and class: shape `[rows, K]`.
    public func logProbabilities(_ x: Tensor, at t: Double) throws -> Tensor {
        try logProbabilities(x, times: [Double](repeating: t, count: x.rows))
    }

    /// The most probable class of every row at time `t`.
    public func predict(_ x: Tensor, at t: Double) throws -> [Int] {
        let lp = try logProbabilities(x, at: t), k = classCount
        return (0 ..< x.rows).map { r in (0 ..< k).max { lp.storage[r * k + $0] < lp.storage[r * k + $1] }! }
    }

    /// The ``NoisyClassifier`` for guidance towards `labels` (one for all rows, or one per row).
    /// - Throws: `invalidParameter` for no label or a label outside `0 ..< K`.
    public func targeting(_ labels: [Int]) throws -> TargetedClassifier<Self> {
        guard !labels.isEmpty else { throw ScoreSDEError.invalid("labels", labels, must: "non-empty", advice: "give at least one target class") }
        try checkLabels(labels, rows: labels.count)
        return TargetedClassifier(classifier: self, targets: labels)
    }

    /// Throws unless there is one label for all rows or one per row, each in `0 ..< K`.
    func checkLabels(_ labels: [Int], rows: Int) throws {
        guard labels.count == 1 || labels.count == rows else {
            throw ScoreSDEError.shapeMismatch("\(labels.count) class labels for \(rows) rows: give one label for all rows, or one per row")
        }
        if let bad = labels.first(where: { $0 < 0 || $0 >= classCount }) {
            throw ScoreSDEError.invalid("labels", bad, must: "a class of this classifier, 0...\(classCount - 1)")
        }
    }
}

/// A classifier aimed at target classes: the ``NoisyClassifier`` whose gradient
/// ``ClassifierGuidedScore`` adds to the score.
public struct TargetedClassifier<Classifier: TimeConditionedClassifier>: NoisyClassifier {
    /// The classifier.
    public let classifier: Classifier
    /// One class for all rows, or one per row.
    public let targets: [Int]

    /// `∇ₓ log p_t(y | x)` at the targets.
    public func logLikelihoodGradient(_ x: Tensor, at t: Double) throws -> Tensor {
        try classifier.logProbabilityGradient(x, at: t, labels: targets)
    }
}

/// ``NoiseAwareClassifier`` aimed at target classes.
public typealias TargetedNoiseAwareClassifier = TargetedClassifier<NoiseAwareClassifier>
/// ``ConvolutionalClassifier`` aimed at target classes.
public typealias TargetedConvolutionalClassifier = TargetedClassifier<ConvolutionalClassifier>

import Foundation

/// A trained classifier whose penultimate layer defines the feature space of sample-quality
/// metrics: the Fréchet distance between samples and held-out images (FID's construction,
/// Heusel et al. 2017, with a classifier trained on the data set's own training split in place of
/// Inception) and the class accuracy of class-conditional samples.
///
///     let (features, logits) = try classifier.featuresAndLogits(of: images)   // [n, F], [n, K]
///
/// `x` holds rows in the data space of the data set (Fashion-MNIST: pixel levels `0 ... 255`, shape
/// ``rowShape``); the classifier applies its own data scaling. Rows are independent: the result
/// for a row does not depend on the other rows of the batch.
public protocol FeatureClassifier: Sendable {
    /// The shape of one input row (e.g. `[1, 28, 28]`).
    var rowShape: [Int] { get }
    /// Number `K` of classes.
    var classCount: Int { get }
    /// Dimension `F` of the penultimate features.
    var featureDimension: Int { get }
    /// The penultimate features `[rows, F]` and the logits `[rows, K]` of data-space rows.
    func featuresAndLogits(of x: Tensor) throws -> (features: Tensor, logits: Tensor)
}

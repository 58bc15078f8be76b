import Foundation

/// The shipped convolutional classifiers of Fashion-MNIST (``ConvolutionalClassifier``), trained
/// on the 60 000 training images only (``FashionMNIST/trainingSplit(directory:)``).
///
/// | name | use | times | file |
/// |---|---|---|---|
/// | `fashion` | feature space of the sample-quality metrics (``FeatureClassifier``), class accuracy of samples | clean: `t = 10⁻³` | `fashion-classifier.safetensors` |
/// | `fashion-noisy` | classifier guidance of a Fashion-MNIST score model (VP β 0.1 … 20, scaling `2x/255 − 1`) | `t ∈ [10⁻³, 1]` | `fashion-noisy-classifier.safetensors` |
///
/// FASHION_RECORD
extension PretrainedClassifiers {
    /// The names of the shipped convolutional classifiers (what `--classifier` accepts besides ``names``).
    public static let convolutionalNames = ["fashion", "fashion-noisy"]

    /// The clean Fashion-MNIST classifier whose penultimate features define the metrics' feature space.
    ///
    ///     let clf = try PretrainedClassifiers.fashion()
    ///     let (features, logits) = try clf.featuresAndLogits(of: FashionMNIST.testSplitForEvaluation().images)
    public static func fashion() throws -> ConvolutionalClassifier { try convolutional(named: "fashion") }

    /// The noise-aware Fashion-MNIST classifier for classifier guidance.
    public static func fashionNoisy() throws -> ConvolutionalClassifier { try convolutional(named: "fashion-noisy") }

    /// A shipped convolutional classifier by name (read once per process and cached).
    ///
    /// - Throws: ``ScoreSDEError/unknownName(_:)`` for a name not in ``convolutionalNames``;
    ///   ``ScoreSDEError/io(path:message:)`` when the resource is missing or corrupt.
    public static func convolutional(named name: String) throws -> ConvolutionalClassifier {
        switch name {
        case "fashion": return try cachedFashion.get()
        case "fashion-noisy": return try cachedFashionNoisy.get()
        default:
            throw ScoreSDEError.unknownName("'\(name)' is not a shipped convolutional classifier; choose one of \(convolutionalNames.joined(separator: ", ")) or give a .safetensors file from `scoresde train-classifier`")
        }
    }

    private static func loadResource(_ file: String) -> Result<ConvolutionalClassifier, ScoreSDEError> {
        do { return .success(try ConvolutionalClassifier.load(from: PackagedData.url(file).path)) }
        catch let e as ScoreSDEError { return .failure(e) }
        catch { return .failure(.io(path: file, message: "\(error)")) }
    }

    private static let cachedFashion = loadResource("fashion-classifier.safetensors")
    private static let cachedFashionNoisy = loadResource("fashion-noisy-classifier.safetensors")
}

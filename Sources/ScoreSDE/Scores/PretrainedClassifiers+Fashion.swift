import Foundation

/// The shipped convolutional classifiers of Fashion-MNIST (``ConvolutionalClassifier``), trained
/// on the 60 000 training images only (``FashionMNIST/trainingSplit(directory:)``).
///
/// | name | accessor | use | times | file |
/// |---|---|---|---|---|
/// | `fashion` | ``fashion()`` | classifier guidance of ``PretrainedModels/fashion()`` or any Fashion-MNIST score model with VP β 0.1 … 20 and scaling `2x/255 − 1` (as `digits` guides the digits model) | `t ∈ [10⁻³, 1]` | `fashion-noisy-classifier.safetensors` |
/// | `fashion-features` | ``fashionFeatures()`` | the feature space of the sample-quality metrics (``FeatureClassifier``; ``FeatureClassifiers``' `fashion-classifier`), class accuracy of samples | clean: `t = 10⁻³` | `fashion-classifier.safetensors` |
///
/// Both are the default ``ConvolutionalClassifier/Architecture`` (channels 32, 64, 64, one residual
/// block per level, 28 → 14 → 7, no attention, 256 features: 340 042 parameters, F32 EMA weights of
/// 1.37 MB), trained with batch 128, Adam 1e-3 (100 warm-up steps), EMA 0.999, seed 0, on one
/// thread (`OMP_NUM_THREADS=1`: the machine was shared) of a 2-core machine. Measured on the 10 000
/// held-out test images (``FashionMNIST/testSplitForEvaluation(directory:)``) with
/// ``NoisyClassifierTrainer/accuracy(of:data:labels:at:seed:dequantizationLevels:)`` (seed 1):
///
/// | classifier | steps (epochs) | wall time | test accuracy |
/// |---|---|---|---|
/// | `fashion-features` | 2400 (5.1) | 856 s (359 images/s, beside other jobs) | 92.51% at `t = 10⁻³`, and 92.51% clean (``ConvolutionalClassifier/accuracy(onData:labels:)``) |
/// | `fashion` | 3000 (6.4) | 525 s (732 images/s) | 84.76% at `t = 10⁻³` (84.73% clean), 84.75% at 0.01, 83.93% at 0.1, 61.25% at 0.5, 11.14% at 1 (chance: 10%) |
///
///     OMP_NUM_THREADS=1 scoresde train-classifier --data fashion-mnist --model conv --scaling symmetric --max-time 1e-3 \
///         --channels 32,64,64 --features 256 --steps 2400 --batch-size 128 --lr 1e-3 --warmup 100 --ema 0.999 --seed 0 \
///         --output fashion-clf-run.safetensors --export-weights Sources/ScoreSDE/Resources/fashion-classifier.safetensors \
///         --test-split --accuracy-at 1e-3
///     OMP_NUM_THREADS=1 scoresde train-classifier --data fashion-mnist --model conv --like fashion-unet-step3088.safetensors \
///         --channels 32,64,64 --features 256 --steps 3000 --batch-size 128 --lr 1e-3 --warmup 100 --ema 0.999 --seed 0 \
///         --output fashion-noisy-clf-run.safetensors --export-weights Sources/ScoreSDE/Resources/fashion-noisy-classifier.safetensors \
///         --test-split --accuracy-at 0.001,0.01,0.1,0.5,1
///
/// `--like` took a checkpoint of the Fashion-MNIST U-Net's training run (step 3088) for its SDE,
/// scaling and smallest time only (VP β 0.1 … 20, `2x/255 − 1`, `t ∈ [10⁻³, 1]`); `--scaling
/// symmetric` without `--like` gives the same settings, and the shipped ``PretrainedModels/fashion()``
/// has them too. Same machine and thread count: the same bits.
extension PretrainedClassifiers {
    /// The names of the shipped convolutional classifiers (what `--classifier` accepts besides ``names``).
    public static let convolutionalNames = ["fashion", "fashion-features"]

    /// The noise-aware Fashion-MNIST classifier for classifier guidance.
    ///
    ///     let guided = try PretrainedModels.fashion().classifierGuided(by: PretrainedClassifiers.fashion(), labels: [3], scale: 2)
    public static func fashion() throws -> ConvolutionalClassifier { try convolutional(named: "fashion") }

    /// The clean Fashion-MNIST classifier whose penultimate features define the metrics' feature space.
    ///
    ///     let clf = try PretrainedClassifiers.fashionFeatures()
    ///     let (features, logits) = try clf.featuresAndLogits(of: FashionMNIST.testSplitForEvaluation().images)
    public static func fashionFeatures() throws -> ConvolutionalClassifier { try convolutional(named: "fashion-features") }

    /// A shipped convolutional classifier by name (read once per process and cached).
    ///
    /// - Throws: ``ScoreSDEError/unknownName(_:)`` for a name not in ``convolutionalNames``;
    ///   ``ScoreSDEError/io(path:message:)`` when the resource is missing or corrupt.
    public static func convolutional(named name: String) throws -> ConvolutionalClassifier {
        switch name {
        case "fashion": return try cachedFashion.get()
        case "fashion-features": return try cachedFashionFeatures.get()
        default:
            throw ScoreSDEError.unknownName("'\(name)' is not a shipped convolutional classifier; choose one of \(convolutionalNames.joined(separator: ", ")) or give a .safetensors file from `scoresde train-classifier`")
        }
    }

    private static func loadResource(_ file: String) -> Result<ConvolutionalClassifier, ScoreSDEError> {
        do { return .success(try ConvolutionalClassifier.load(from: PackagedData.url(file).path)) }
        catch let e as ScoreSDEError { return .failure(e) }
        catch { return .failure(.io(path: file, message: "\(error)")) }
    }

    private static let cachedFashion = loadResource("fashion-noisy-classifier.safetensors")
    private static let cachedFashionFeatures = loadResource("fashion-classifier.safetensors")
}

import Foundation

/// Small trained score models shipped in the package's resources, so that learned-model sampling
/// works with nothing to download (`scoresde sample --model digits`).
///
///     let digits = try PretrainedModels.digits()        // MLPScore, row shape [1, 8, 8]
///     let x = digits.dataScaling.toData(modelSpaceSamples)   // raw digit values 0...16
///
/// | name | data | row shape | data scaling | file |
/// |---|---|---|---|---|
/// | `digits` | the 1500 training digits (``Digits/Split/train``), labelled | `[1, 8, 8]` | dequantized, symmetric: `2 (k + u) / 17 − 1` | `digits.safetensors` |
/// | `digits-unet` | the same digits, labelled: a U-Net (``digitsUNet()``) | `[1, 8, 8]` | dequantized, logit: `logit(10⁻³ + 0.998 (k + u) / 17) / logit(1 − 10⁻³)` | `digits-unet.safetensors` |
/// | `patches` | 8 × 8 colour patches of the left three quarters of the photographs (``ImagePatches/Split/train``) | `[3, 8, 8]` | symmetric: `2x / 255 − 1` | `patches.safetensors` |
///
/// Both use the VP SDE (β 0.1 ... 20) and are EMA weights stored as F32 weights files (see
/// ``ModelFile``), written by `scoresde train` (bitwise reproducible on the same machine and
/// thread count). The digits model is class-conditional (10 classes and the null label, label
/// dropout 0.2: ``MLPScore/conditioned(on:)``, ``MLPScore/classifierFreeGuided(labels:guidanceScale:)``;
/// its ``ScoreModel`` score is the unconditional one) and likelihood-grade: trained on uniformly
/// dequantized digits with likelihood weighting and importance-sampled times on `[10⁻², 1]`, the
/// bounded noise-prediction output (floor `δ = (2/17)/√12`) and a Gaussian base
/// (``MLPArchitecture/gaussianBase``: the exact score of the Gaussian fitted to the training digits
/// plus the network), its likelihood stated at its ``MLPScore/likelihoodEps`` `10⁻²` (held out:
/// 2.65 bits/dim). Its samples are less clean than the data: 12% of their values fall outside the
/// dequantized range `[0, 17)` (the model's density is the data's blurred by about a level per
/// pixel; README, "Sample quality"; ``StaticThresholdedScore`` halves it). The patches model is trained on the left three quarters of the photographs only
/// (the right quarter is held out for colorization), with a Gaussian base and the bounded output:
///
///     scoresde train --data digits --labels own --label-dropout 0.2 --dequantize --likelihood-weighting \
///         --time-sampling importance --parameterization noise-bounded --train-eps 1e-2 --gaussian-base \
///         --sde vp --scaling symmetric --hidden 176 --blocks 2 --fourier-features 32 \
///         --batch-size 256 --lr 1e-3 --warmup 100 --ema 0.999 --seed 0 --steps 5000 \
///         --output digits-run.safetensors --export-weights Sources/ScoreSDE/Resources/digits.safetensors --dtype f32
///     scoresde train --data patches --count 60000 --gaussian-base --parameterization noise-bounded --noise-floor 0.01 \
///         --sde vp --scaling symmetric --hidden 216 --blocks 1 --fourier-features 32 \
///         --batch-size 128 --lr 1e-3 --warmup 100 --ema 0.999 --seed 0 --steps 5000 \
///         --output patches-run.safetensors --export-weights Sources/ScoreSDE/Resources/patches.safetensors --dtype f32
///
/// (227 312 values — 1 936 of them the label embedding, 4 224 the Gaussian base's buffers — and
/// 275 288, 37 248 of them the base; the patch network is wider than its 192 inputs, which it must
/// be to carry them through.) Each file records its SDE, network and data scaling, so nothing
/// else is needed to use it. The files are read once per process and cached.
public enum PretrainedModels {
    /// The names of the shipped models (what `--model` accepts).
    public static let names = ["digits", "digits-unet", "patches", "fashion"]

    /// The shipped U-Nets (``fashion()``, ``digitsUNet()``).
    public static let unetNames = ["digits-unet", "fashion"]

    /// The names of the shipped MLP models (``named(_:)``); `fashion` and `digits-unet` are U-Nets.
    public static let mlpNames = ["digits", "patches"]

    /// The digits model: 8 × 8 grey digits, samples in raw values `0 ... 16` after ``MLPScore/dataScaling``.
    public static func digits() throws -> MLPScore { try named("digits") }

    /// The colour-patch model: 8 × 8 RGB patches, samples in raw values `0 ... 255` after ``MLPScore/dataScaling``.
    public static func patches() throws -> MLPScore { try named("patches") }

    /// The Fashion-MNIST model: a class-conditional U-Net on 28 × 28 grey images (10 classes,
    /// ``FashionMNIST/classNames``, and the null label 10 for classifier-free guidance); samples in
    /// pixel levels `0 ... 255` after ``UNetScore/dataScaling``. Its model card (command, wall time, measured figures) is in the README.
    public static func fashion() throws -> UNetScore { try cachedFashion.get() }

    /// The convolutional digits model: a class-conditional U-Net (channels 32, 64: 8 → 4, attention
    /// at 4 × 4 and in the middle; 702 753 float32 parameters) trained on the same 1500 dequantized
    /// training digits, objective and times as ``digits()``, through the logit transform
    /// (``DataScaling/logit(lambda:levels:)``, λ = 10⁻³). Its samples are what the MLP's are not: clean
    /// backgrounds and the data's level histogram, 0.33% of values outside `[0, 17)` (README, "Sample
    /// quality": FD 98 to the held-out digits against the MLP's 114–125, the training digits' own 95),
    /// and held-out digits score 1.77 bits/dim (the MLP 2.65). 4000 steps, 19 min on 2 shared cores:
    ///
    ///     scoresde train --data digits --model unet --labels own --label-dropout 0.2 --dequantize \
    ///         --likelihood-weighting --time-sampling importance --train-eps 1e-2 --scaling logit --logit-lambda 1e-3 \
    ///         --channels 32,64 --attention-levels 0,1 --batch-size 128 --lr 1e-3 --warmup 100 --ema 0.999 \
    ///         --seed 0 --steps 4000 --output digits-unet-run.safetensors \
    ///         --export-weights Sources/ScoreSDE/Resources/digits-unet.safetensors
    public static func digitsUNet() throws -> UNetScore { try cachedDigitsUNet.get() }

    /// A shipped MLP model by name (``mlpNames``).
    ///
    /// - Throws: ``ScoreSDEError/unknownName(_:)`` for a name not in ``mlpNames``;
    ///   ``ScoreSDEError/io(path:message:)`` when the resource is missing or corrupt.
    public static func named(_ name: String) throws -> MLPScore {
        switch name {
        case "digits": return try cachedDigits.get()
        case "patches": return try cachedPatches.get()
        case "fashion", "digits-unet":
            throw ScoreSDEError.unknownName("'\(name)' is a U-Net, not an MLP: use PretrainedModels.learned(\"\(name)\")")
        default:
            throw ScoreSDEError.unknownName("'\(name)' is not a shipped model; choose one of \(names.joined(separator: ", "))")
        }
    }

    /// Any shipped model by name (``names``), MLP or U-Net.
    ///
    /// - Throws: ``ScoreSDEError/unknownName(_:)`` for a name not in ``names``;
    ///   ``ScoreSDEError/io(path:message:)`` when the resource is missing or corrupt.
    public static func learned(_ name: String) throws -> any LearnedScoreModel {
        switch name {
        case "fashion": return try fashion()
        case "digits-unet": return try digitsUNet()
        default: return try named(name)
        }
    }

    /// The classifier-free guidance scale a shipped class-conditional model recommends (GLIDE /
    /// diffusers form, `s(x,t,∅) + w (s(x,t,y) − s(x,t,∅))`): `fashion` 2, fixed by its model card
    /// before its evaluation; `nil` (use 1, the plain conditional model) for the others.
    public static func recommendedGuidanceScale(_ name: String) -> Double? {
        name == "fashion" ? 2 : nil
    }

    /// The measurement guidance a shipped model recommends for inpainting and other linear inverse
    /// problems: `fashion` DPS (Chung et al. 2023) with weight ζ = 30 — chosen on 20 test images
    /// (ζ = 3, 10, 30, 100) and measured on 500 in the model card, where it beats replacement,
    /// RePaint and ΠGDM on the three inpainting tasks; `nil` (replacement, the command's default) for the
    /// others.
    public static func recommendedMeasurementGuidance(_ name: String) -> MeasurementLikelihood? {
        name == "fashion" ? .dps(stepScale: 30) : nil
    }

    /// The class names of a shipped class-conditional model, in label order (`nil` for `patches`).
    public static func classNames(_ name: String) -> [String]? {
        switch name {
        case "digits", "digits-unet": return (0 ... 9).map(String.init)
        case "fashion": return FashionMNIST.classNames
        default: return nil
        }
    }

    /// The file of a shipped model in the resource bundle.
    public static func url(_ name: String) throws -> URL {
        guard names.contains(name) else {
            throw ScoreSDEError.unknownName("'\(name)' is not a shipped model; choose one of \(names.joined(separator: ", "))")
        }
        return try PackagedData.url(name + ".safetensors")
    }

    private static func load(_ name: String) -> Result<MLPScore, ScoreSDEError> {
        do { return .success(try MLPScore.load(from: url(name).path)) }
        catch let e as ScoreSDEError { return .failure(e) }
        catch { return .failure(.io(path: name + ".safetensors", message: "\(error)")) }
    }

    private static func loadUNet(_ name: String) -> Result<UNetScore, ScoreSDEError> {
        do { return .success(try UNetScore.read(url(name).path)) }
        catch let e as ScoreSDEError { return .failure(e) }
        catch { return .failure(.io(path: name + ".safetensors", message: "\(error)")) }
    }
    private static let cachedFashion = loadUNet("fashion")
    private static let cachedDigitsUNet = loadUNet("digits-unet")
    private static let cachedDigits = load("digits")
    private static let cachedPatches = load("patches")
}

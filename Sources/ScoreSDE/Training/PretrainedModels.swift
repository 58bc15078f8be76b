import Foundation

/// Small trained score models shipped in the package's resources, so that learned-model sampling
/// works with nothing to download (`scoresde sample --model digits`).
///
///     let digits = try PretrainedModels.digits()        // UNetScore, row shape [1, 8, 8]
///     let x = digits.dataScaling.toData(modelSpaceSamples)   // raw digit values in [0, 17)
///
/// | name | data | network | row shape | data scaling | file |
/// |---|---|---|---|---|---|
/// | `digits` | the 1500 training digits (``Digits/Split/train``), labelled | U-Net (``digits()``) | `[1, 8, 8]` | dequantized, logit: `logit(10⁻³ + 0.998 (k + u) / 17) / logit(1 − 10⁻³)` | `digits.safetensors` |
/// | `digits-mlp` | the same digits, labelled | MLP (``digitsMLP()``) | `[1, 8, 8]` | dequantized, symmetric: `2 (k + u) / 17 − 1` | `digits-mlp.safetensors` |
/// | `patches` | 8 × 8 colour patches of the left three quarters of the photographs (``ImagePatches/Split/train``) | MLP | `[3, 8, 8]` | symmetric: `2x / 255 − 1` | `patches.safetensors` |
/// | `fashion` | the 60 000 Fashion-MNIST training images, labelled | U-Net (``fashion()``) | `[1, 28, 28]` | symmetric: `2x / 255 − 1` | `fashion.safetensors` |
///
/// (`digits-unet`, the `digits` model's name before it became the default, is still accepted.)
/// All use the VP SDE (β 0.1 ... 20) and are EMA weights stored as F32 weights files (see
/// ``ModelFile``), written by `scoresde train` (bitwise reproducible on the same machine and
/// thread count). Both digits models are class-conditional (10 classes and the null label, label
/// dropout 0.2; their ``ScoreModel`` score is the unconditional one) and likelihood-grade: trained on
/// uniformly dequantized digits with likelihood weighting and importance-sampled times on
/// `[10⁻², 1]`. The MLP `digits-mlp` — the bounded noise-prediction output (floor
/// `δ = (2/17)/√12`) and a Gaussian base (``MLPArchitecture/gaussianBase``), likelihood stated at
/// its ``MLPScore/likelihoodEps`` `10⁻²` (held out: 2.65 bits/dim) — draws samples less clean than
/// the data: 12% of their values fall outside the dequantized range `[0, 17)` (the model's density
/// is the data's blurred by about a level per pixel; README, "Sample quality"). The U-Net `digits`
/// replaced it as the default for that reason (0.33% outside, held out 1.77 bits/dim). The patches
/// model is trained on the left three quarters of the photographs only (the right quarter is held
/// out for colorization), with a Gaussian base and the bounded output:
///
///     scoresde train --data digits --model unet --labels own --label-dropout 0.2 --dequantize \
///         --likelihood-weighting --time-sampling importance --train-eps 1e-2 --scaling logit --logit-lambda 1e-3 \
///         --channels 32,64 --attention-levels 0,1 --batch-size 128 --lr 1e-3 --warmup 100 --ema 0.999 \
///         --seed 0 --steps 4000 --output digits-run.safetensors \
///         --export-weights Sources/ScoreSDE/Resources/digits.safetensors
///     scoresde train --data digits --labels own --label-dropout 0.2 --dequantize --likelihood-weighting \
///         --time-sampling importance --parameterization noise-bounded --train-eps 1e-2 --gaussian-base \
///         --sde vp --scaling symmetric --hidden 176 --blocks 2 --fourier-features 32 \
///         --batch-size 256 --lr 1e-3 --warmup 100 --ema 0.999 --seed 0 --steps 5000 \
///         --output digits-mlp-run.safetensors --export-weights Sources/ScoreSDE/Resources/digits-mlp.safetensors --dtype f32
///     scoresde train --data patches --count 60000 --gaussian-base --parameterization noise-bounded --noise-floor 0.01 \
///         --sde vp --scaling symmetric --hidden 216 --blocks 1 --fourier-features 32 \
///         --batch-size 128 --lr 1e-3 --warmup 100 --ema 0.999 --seed 0 --steps 5000 \
///         --output patches-run.safetensors --export-weights Sources/ScoreSDE/Resources/patches.safetensors --dtype f32
///
/// (The MLPs: 227 312 values — 1 936 of them the label embedding, 4 224 the Gaussian base's
/// buffers — and 275 288, 37 248 of them the base; the patch network is wider than its 192 inputs,
/// which it must be to carry them through.) Each file records its SDE, network and data scaling, so
/// nothing else is needed to use it. The files are read once per process and cached.
public enum PretrainedModels {
    /// The names of the shipped models (what `--model` accepts; `digits-unet` is also accepted, as `digits`).
    public static let names = ["digits", "digits-mlp", "patches", "fashion"]

    /// The shipped U-Nets (``fashion()``, ``digits()``).
    public static let unetNames = ["digits", "fashion"]

    /// The names of the shipped MLP models (``named(_:)``); `fashion` and `digits` are U-Nets.
    public static let mlpNames = ["digits-mlp", "patches"]

    /// A shipped model's name as listed in ``names``: `digits-unet` (the `digits` model's earlier name) is `digits`.
    public static func canonicalName(_ name: String) -> String { name == "digits-unet" ? "digits" : name }

    /// The MLP digits model (`digits-mlp`, the default before the U-Net): 8 × 8 grey digits, samples
    /// in raw values `0 ... 17` after ``MLPScore/dataScaling``.
    public static func digitsMLP() throws -> MLPScore { try named("digits-mlp") }

    /// The colour-patch model: 8 × 8 RGB patches, samples in raw values `0 ... 255` after ``MLPScore/dataScaling``.
    public static func patches() throws -> MLPScore { try named("patches") }

    /// The Fashion-MNIST model: a class-conditional U-Net on 28 × 28 grey images (10 classes,
    /// ``FashionMNIST/classNames``, and the null label 10 for classifier-free guidance); samples in
    /// pixel levels `0 ... 255` after ``UNetScore/dataScaling``. Its model card (command, wall time, measured figures) is in the README.
    public static func fashion() throws -> UNetScore { try cachedFashion.get() }

    /// The digits model (`--model digits`): a class-conditional U-Net (channels 32, 64: 8 → 4,
    /// attention at 4 × 4 and in the middle; 702 753 float32 parameters) trained on the 1500
    /// dequantized training digits, with likelihood weighting and importance-sampled times on
    /// `[10⁻², 1]`, through the logit transform (``DataScaling/logit(lambda:levels:)``, λ = 10⁻³). Its
    /// samples are what the MLP's (``digitsMLP()``) are not: clean backgrounds and the data's level
    /// histogram, 0.33% of values outside `[0, 17)` (README, "Sample quality": FD 98 to the held-out
    /// digits against the MLP's 114–125, the training digits' own 95), and held-out digits score
    /// 1.77 bits/dim (the MLP 2.65). 4000 steps, 19 min on 2 shared cores (command above).
    public static func digits() throws -> UNetScore { try cachedDigits.get() }

    /// The digits U-Net under its earlier name: ``digits()``.
    @available(*, deprecated, renamed: "digits()")
    public static func digitsUNet() throws -> UNetScore { try digits() }

    /// A shipped MLP model by name (``mlpNames``).
    ///
    /// - Throws: ``ScoreSDEError/unknownName(_:)`` for a name not in ``mlpNames``;
    ///   ``ScoreSDEError/io(path:message:)`` when the resource is missing or corrupt.
    public static func named(_ name: String) throws -> MLPScore {
        switch name {
        case "digits-mlp": return try cachedDigitsMLP.get()
        case "patches": return try cachedPatches.get()
        case "fashion", "digits", "digits-unet":
            throw ScoreSDEError.unknownName("'\(name)' is a U-Net, not an MLP: use PretrainedModels.learned(\"\(name)\")")
        default:
            throw ScoreSDEError.unknownName("'\(name)' is not a shipped model; choose one of \(names.joined(separator: ", "))")
        }
    }

    /// Any shipped model by name (``names``, or `digits-unet` for `digits`), MLP or U-Net.
    ///
    /// - Throws: ``ScoreSDEError/unknownName(_:)`` for a name not in ``names``;
    ///   ``ScoreSDEError/io(path:message:)`` when the resource is missing or corrupt.
    public static func learned(_ name: String) throws -> any LearnedScoreModel {
        switch canonicalName(name) {
        case "fashion": return try fashion()
        case "digits": return try digits()
        default: return try named(name)
        }
    }

    /// The classifier-free guidance scale a shipped class-conditional model recommends (GLIDE /
    /// diffusers form, `s(x,t,∅) + w (s(x,t,y) − s(x,t,∅))`): `fashion` 2, fixed by its model card
    /// before its evaluation; `nil` (use 1, the plain conditional model) for the others.
    public static func recommendedGuidanceScale(_ name: String) -> Double? {
        name == "fashion" ? 2 : nil
    }

    /// The score-evaluation budget a shipped model's card recommends for sampling with the
    /// recommended few-step sampler (``FewStepRecommendation``: UniPC on its spacing): 20 for the
    /// U-Nets `digits` and `fashion` (on `fashion`, FD to the test images 0.237 at 20 NFE against
    /// 0.273–0.277 for 50–145 NFE of UniPC, adaptive UniPC and the GSL ODE solve: README, model card);
    /// `nil` for the MLPs, sampled by the predictor-corrector sampler by default (what their figures
    /// were measured with). `scoresde sample` uses it when no sampler is named.
    public static func recommendedNFE(_ name: String) -> Int? {
        unetNames.contains(canonicalName(name)) ? 20 : nil
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
        switch canonicalName(name) {
        case "digits", "digits-mlp": return (0 ... 9).map(String.init)
        case "fashion": return FashionMNIST.classNames
        default: return nil
        }
    }

    /// The file of a shipped model in the resource bundle.
    public static func url(_ name: String) throws -> URL {
        let name = canonicalName(name)
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
    private static let cachedDigits = loadUNet("digits")
    private static let cachedDigitsMLP = load("digits-mlp")
    private static let cachedPatches = load("patches")
}

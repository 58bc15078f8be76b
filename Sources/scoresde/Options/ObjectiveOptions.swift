import ArgumentParser
import Foundation
import ScoreSDE

/// Network outputs by CLI name.
enum ParameterizationName: String, CaseIterable, ExpressibleByArgument {
    case noise, scaledBySigma = "scaled-by-sigma", noiseBounded = "noise-bounded"

    var value: MLPOutputParameterization {
        switch self {
        case .noise: return .noisePrediction
        case .scaledBySigma: return .scaledBySigma
        case .noiseBounded: return .boundedNoisePrediction
        }
    }
}

extension TrainingTimeSampling: ExpressibleByArgument {}

/// `train`'s likelihood-grade and class-conditional settings: dequantization, importance sampling
/// of t, the output parameterization, the training eps, labels and label dropout.
struct ObjectiveOptions: ParsableArguments {
    static let defaultLabelDropout = 0.15

    @Flag(help: ArgumentHelp("Uniform dequantization during training: add fresh U[0, 1) noise to the integer levels (digits 0...16, patches 0...255) at every step, and scale the dequantized range [0, levels) onto the --scaling target (the reference's (k + u) / 256 for 8-bit data), so the model learns a density whose likelihood bounds that of the discrete data."))
    var dequantize = false

    @Option(help: ArgumentHelp("How training times are drawn: uniform (default) or importance (t ~ g^2/std^2 with weights, Song, Durkan, Murray & Ermon 2021; needs --likelihood-weighting).", valueName: "uniform|importance"))
    var timeSampling: TrainingTimeSampling?

    @Option(help: ArgumentHelp("The network output: noise (VP/sub-VP default: score = -out/std), scaled-by-sigma (VE default: out/sigma), noise-bounded (score = -out/sqrt(std^2 + floor^2), bounded as t -> 0).", valueName: "noise|scaled-by-sigma|noise-bounded"))
    var parameterization: ParameterizationName?

    @Option(parsing: .unconditional, help: ArgumentHelp("noise-bounded: the floor in model-space units (default with --dequantize: the std of the dequantization noise, one level's width / sqrt(12)).", valueName: "delta"))
    var noiseFloor: Double?

    @Option(name: .customLong("train-eps"), parsing: .unconditional, help: ArgumentHelp("Smallest training time, in (0, 1) (default: 1e-5, the reference's).", valueName: "t"))
    var trainEps: Double?

    @Option(help: ArgumentHelp("Train a class-conditional network: 'own' takes the built-in data set's labels (digits: their digit; ring: its component; moons: the arm; swissroll: inner/outer half; checkerboard: the square); PATH.npy gives one integer label per data row.", valueName: "own|PATH.npy"))
    var labels: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("With --labels: the probability of replacing a label by the null label, so one network also learns the unconditional score (classifier-free guidance; default: 0.15).", valueName: "p"))
    var labelDropout: Double?

    func validate() throws {
        if let f = noiseFloor, !(f.isFinite && f > 0) { throw ValidationError("--noise-floor must be finite and > 0 (got \(f))") }
        if noiseFloor != nil, parameterization != .noiseBounded {
            throw ValidationError("--noise-floor is the floor of --parameterization noise-bounded; add that option or drop --noise-floor")
        }
        if let e = trainEps, !(e.isFinite && e > 0 && e < 1) { throw ValidationError("--train-eps must be in (0, 1) (got \(e))") }
        if let p = labelDropout {
            if !(p >= 0 && p < 1) { throw ValidationError("--label-dropout must be in [0, 1) (got \(p)); 0.1-0.2 is usual") }
            if labels == nil { throw ValidationError("--label-dropout is for class-conditional training; add --labels own or --labels PATH.npy") }
        }
    }

    /// The data set with the labels `--labels` asks for (unchanged without it).
    func labelled(_ set: Dataset) throws -> Dataset {
        // Without --labels the run is unconditional, even for a data set that carries labels.
        guard let labels else {
            return Dataset(name: set.name, data: set.data, normalization: set.normalization, levels: set.levels, description: set.description)
        }
        if labels == "own" {
            guard set.labels != nil else {
                throw ScoreSDEError.invalidArgument("--labels own: \(set.name) has no labels of its own (digits, fashion-mnist and the 2-D toys do); give --labels PATH.npy with one integer per row")
            }
            return set
        }
        guard labels.hasSuffix(".npy") else {
            throw ScoreSDEError.invalidArgument("--labels must be 'own' (the built-in data set's labels) or a PATH.npy of one integer label per data row (got '\(labels)')")
        }
        return try set.withLabels(fromNpy: labels)
    }

    /// The noise floor for a new run (model-space units).
    func floor(scale: DataScaling) throws -> Double {
        guard parameterization == .noiseBounded else { return 0 }
        if let noiseFloor { return noiseFloor }
        guard dequantize else {
            throw ScoreSDEError.invalidArgument("--parameterization noise-bounded needs --noise-floor (model-space units), or --dequantize, whose noise sets the default floor")
        }
        return abs(scale.scale) / 12.0.squareRoot()
    }
}

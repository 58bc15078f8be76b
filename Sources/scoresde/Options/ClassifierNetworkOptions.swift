import ArgumentParser
import ScoreSDE

/// `train-classifier --model`: which classifier network to train.
enum ClassifierModelName: String, CaseIterable, ExpressibleByArgument {
    /// The time-conditioned MLP (``NoiseAwareClassifier``; any data shape).
    case mlp
    /// The U-Net encoder with a pooled head (``ConvolutionalClassifier``; images `[C, H, W]`), float32 on oneDNN.
    case conv

    /// The default for rows of `rowShape`: `conv` for images `[C, H, W]` with `H, W ≥ 16` (Fashion-MNIST),
    /// `mlp` otherwise (2-D toys; the 8 × 8 digits, where two down-samplings leave 2 × 2 pixels and
    /// the MLP is the shipped digits classifier's network).
    static func defaultKind(for rowShape: [Int]) -> ClassifierModelName {
        rowShape.count == 3 && rowShape[1] >= 16 && rowShape[2] >= 16 ? .conv : .mlp
    }
}

/// The shape of a convolutional classifier (``ConvolutionalClassifier/Architecture``).
struct ConvClassifierOptions: ParsableArguments {
    static let defaultChannels = [32, 64, 64], defaultNormGroups = 8, defaultFeatures = 256

    @Option(name: .customLong("channels"), parsing: .unconditional, help: ArgumentHelp("--model conv: channels per level, comma-separated (default: 32,64,64; the image is halved after every level but the last: 28 → 14 → 7).", valueName: "c1,c2,..."))
    var channels: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("--model conv: residual blocks per level (default: 1).", valueName: "n"))
    var layersPerBlock: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("--model conv: width F of the penultimate features, Linear(C -> F) + SiLU before the logits (default: 256).", valueName: "F"))
    var features: Int?

    @Flag(help: "--model conv: self-attention after the middle residual block (default: none).")
    var midAttention = false

    @Option(parsing: .unconditional, help: ArgumentHelp("--model conv: GroupNorm groups (every channel count must be divisible by it; default: 8).", valueName: "n"))
    var normGroups: Int?

    /// The options given, by flag name (to refuse them for the MLP and with --resume).
    var given: [String] {
        [("--channels", channels != nil), ("--layers-per-block", layersPerBlock != nil), ("--features", features != nil),
         ("--mid-attention", midAttention), ("--norm-groups", normGroups != nil)].filter(\.1).map(\.0)
    }

    func validate() throws {
        if let l = layersPerBlock, l < 1 { throw ValidationError("--layers-per-block must be >= 1 (got \(l))") }
        if let f = features, f < 1 { throw ValidationError("--features must be >= 1 (got \(f))") }
        if let g = normGroups, g < 1 { throw ValidationError("--norm-groups must be >= 1 (got \(g))") }
        _ = try channelList()
    }

    func channelList() throws -> [Int]? {
        guard let channels else { return nil }
        let v = channels.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--channels must be positive integers separated by commas, e.g. 32,64,64 (got '\(channels)')")
        }
        return v.map { $0! }
    }

    /// The architecture for images of shape `rowShape` and `classCount` classes.
    /// - Throws: `shapeMismatch` for rows that are not images `[C, H, W]`; `invalidArgument` for an
    ///   inconsistent architecture (the library's message).
    func architecture(rowShape: [Int], classCount: Int) throws -> ConvolutionalClassifier.Architecture {
        guard rowShape.count == 3 else {
            throw ScoreSDEError.shapeMismatch("--model conv trains on images of shape [channels, height, width]; the data rows have shape \(rowShape) (use --model mlp for other data)")
        }
        let a = ConvolutionalClassifier.Architecture(rowShape: rowShape, classCount: classCount,
                                                     blockOutChannels: try channelList() ?? Self.defaultChannels,
                                                     layersPerBlock: layersPerBlock ?? 1, midBlockAttention: midAttention,
                                                     normGroups: normGroups ?? Self.defaultNormGroups, featureDimension: features ?? Self.defaultFeatures)
        try a.validate()
        return a
    }
}

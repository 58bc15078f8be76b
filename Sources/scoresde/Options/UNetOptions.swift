import ArgumentParser
import ScoreSDE

/// `train --model`: which score network to train.
enum NetworkKindName: String, CaseIterable, ExpressibleByArgument {
    /// The fully connected MLP (any data shape).
    case mlp
    /// The convolutional U-Net (images `[C, S, S]`), float32 on oneDNN.
    case unet
}

/// The shape of a U-Net trained by `train --model unet` (``UNetConfiguration``; diffusers'
/// `UNet2DModel` names in brackets).
struct UNetOptions: ParsableArguments {
    static let defaultChannels = [32, 64, 64], defaultNormGroups = 8

    @Option(parsing: .unconditional, help: ArgumentHelp("U-Net: channels per level, comma-separated (block_out_channels; default: 32,64,64 — three levels, 28 → 14 → 7 for Fashion-MNIST). The image side must be divisible by 2^(levels − 1).", valueName: "c1,c2,..."))
    var channels: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("U-Net: residual blocks per down level (layers_per_block; up levels have one more; default: 1).", valueName: "n"))
    var layersPerBlock: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("U-Net: self-attention per level, comma-separated 0/1 (AttnDownBlock2D / AttnUpBlock2D; default: attention at the lowest resolution only, e.g. 0,0,1).", valueName: "0|1,..."))
    var attentionLevels: String?

    @Flag(inversion: .prefixedNo, help: "U-Net: self-attention in the middle block (add_attention; default: yes).")
    var midAttention: Bool?

    @Option(parsing: .unconditional, help: ArgumentHelp("U-Net: GroupNorm groups (norm_num_groups; every channel count must be divisible by it; default: 8).", valueName: "n"))
    var normGroups: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("U-Net: dropout probability in the residual blocks during training (default: 0).", valueName: "p"))
    var dropout: Double?

    /// The options given, by flag name (to refuse them for the MLP).
    var given: [String] {
        [("--channels", channels != nil), ("--layers-per-block", layersPerBlock != nil), ("--attention-levels", attentionLevels != nil),
         ("--mid-attention", midAttention != nil), ("--norm-groups", normGroups != nil), ("--dropout", dropout != nil)]
            .filter(\.1).map(\.0)
    }

    func validate() throws {
        if let l = layersPerBlock, l < 1 { throw ValidationError("--layers-per-block must be >= 1 (got \(l))") }
        if let g = normGroups, g < 1 { throw ValidationError("--norm-groups must be >= 1 (got \(g))") }
        if let p = dropout, !(p >= 0 && p < 1) { throw ValidationError("--dropout must be in [0, 1) (got \(p))") }
        _ = try channelList()
        _ = try attentionList()
    }

    func channelList() throws -> [Int]? {
        guard let channels else { return nil }
        let v = channels.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--channels must be positive integers separated by commas, e.g. 32,64,64 (got '\(channels)')")
        }
        return v.map { $0! }
    }

    func attentionList() throws -> [Bool]? {
        guard let attentionLevels else { return nil }
        let v = attentionLevels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !v.isEmpty, v.allSatisfy({ $0 == "0" || $0 == "1" }) else {
            throw ValidationError("--attention-levels must be 0 or 1 per level separated by commas, e.g. 0,0,1 (got '\(attentionLevels)')")
        }
        return v.map { $0 == "1" }
    }

    /// The configuration for images of shape `rowShape` (`[C, S, S]`) and `classCount` classes.
    /// - Throws: `shapeMismatch` for data that are not square images; `invalidArgument` for an
    ///   inconsistent configuration (the library's message).
    func configuration(rowShape: [Int], classCount: Int) throws -> UNetConfiguration {
        guard rowShape.count == 3, rowShape[1] == rowShape[2], rowShape.allSatisfy({ $0 >= 1 }) else {
            throw ScoreSDEError.shapeMismatch("--model unet trains on square images of shape [channels, side, side]; the data rows have shape \(rowShape) (use --model mlp for other data)")
        }
        let levels = try channelList() ?? Self.defaultChannels
        let attention = try attentionList() ?? levels.indices.map { $0 == levels.count - 1 && levels.count > 1 }
        let c = UNetConfiguration(imageSize: rowShape[1], channels: rowShape[0], blockOutChannels: levels,
                                  layersPerBlock: layersPerBlock ?? 1, attentionLevels: attention,
                                  midBlockAttention: midAttention ?? true, normGroups: normGroups ?? Self.defaultNormGroups,
                                  classCount: classCount, dropout: dropout ?? 0)
        try c.validate()
        return c
    }
}

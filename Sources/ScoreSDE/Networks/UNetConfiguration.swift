/// The shape of a ``UNet``: every configuration is a diffusers `UNet2DModel` (Ho et al. 2020's DDPM
/// U-Net), with `down_block_types` `DownBlock2D` / `AttnDownBlock2D` per level, `up_block_types` the
/// mirror, `mid_block_type` `UNetMidBlock2D`, `attention_head_dim = None` (one head), `act_fn = silu`,
/// `time_embedding_type = positional`, `resnet_time_scale_shift = default`, `downsample_padding = 1`.
///
/// 28×28 images (Fashion-MNIST) take two down-samplings, 28 → 14 → 7, with three levels: the
/// stride-2 3×3 convolution with padding 1 maps 28 → 14 → 7 and nearest ×2 maps back exactly, so no
/// padding to 32 is needed (padding would cost (32/28)² ≈ 1.31× the work on pixels that carry no data).
public struct UNetConfiguration: Sendable, Equatable {
    /// Image height = width (`sample_size`).
    public var imageSize: Int
    /// Channels of the input and of the output (`in_channels = out_channels`).
    public var channels: Int
    /// Channels per level (`block_out_channels`).
    public var blockOutChannels: [Int]
    /// Residual blocks per down level (`layers_per_block`; up levels have one more).
    public var layersPerBlock: Int
    /// Per level: whether its blocks carry self-attention (`AttnDownBlock2D` / `AttnUpBlock2D`).
    public var attentionLevels: [Bool]
    /// Whether the middle block has its attention (`add_attention`).
    public var midBlockAttention: Bool
    /// GroupNorm groups (`norm_num_groups`) and epsilon (`norm_eps`).
    public var normGroups: Int
    public var normEpsilon: Double
    /// `K` class labels `0..<K` (0: unconditional). The embedding has `K + 1` rows (`num_class_embeds`),
    /// the last the null label of classifier-free guidance (Ho & Salimans 2022).
    public var classCount: Int
    /// Dropout probability in the residual blocks (training only).
    public var dropout: Double
    /// `flip_sin_to_cos` and `freq_shift` of the sinusoidal embedding.
    public var flipSinToCos: Bool
    public var freqShift: Double
    /// `attention_head_dim`: channels per attention head (each attention block has `channels / d`
    /// heads); nil: one head per block (diffusers' `attention_head_dim = None`).
    public var attentionHeadDim: Int? = nil
    /// `downsample_padding`: 1 (symmetric) or 0 (one zero row and column at the bottom and right, as
    /// the published DDPM checkpoints use).
    public var downsamplePadding: Int = 1

    /// Heads of an attention block on `channels` channels.
    public func attentionHeads(channels: Int) -> Int { attentionHeadDim.map { channels / $0 } ?? 1 }

    public init(imageSize: Int = 28, channels: Int = 1, blockOutChannels: [Int] = [32, 64, 64], layersPerBlock: Int = 1,
                attentionLevels: [Bool]? = nil, midBlockAttention: Bool = true, normGroups: Int = 8,
                normEpsilon: Double = 1e-5, classCount: Int = 0, dropout: Double = 0,
                flipSinToCos: Bool = true, freqShift: Double = 0) {
        self.imageSize = imageSize; self.channels = channels; self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        self.attentionLevels = attentionLevels ?? [Bool](repeating: false, count: blockOutChannels.count)
        self.midBlockAttention = midBlockAttention; self.normGroups = normGroups; self.normEpsilon = normEpsilon
        self.classCount = classCount; self.dropout = dropout; self.flipSinToCos = flipSinToCos; self.freqShift = freqShift
    }

    /// Number of levels; the image is halved `levels − 1` times.
    public var levels: Int { blockOutChannels.count }
    /// Width `E = 4 C₀` of the time embedding.
    public var embeddingWidth: Int { 4 * blockOutChannels[0] }

    /// - Throws: ``ScoreSDEError/invalidParameter(_:)`` naming the first setting out of its domain.
    public func validate() throws {
        try requireParameter(imageSize >= 1, name: "imageSize", value: imageSize, requirement: ">= 1")
        try requireParameter(channels >= 1, name: "channels", value: channels, requirement: ">= 1")
        try requireParameter(!blockOutChannels.isEmpty && blockOutChannels.allSatisfy { $0 >= 1 }, name: "blockOutChannels", value: blockOutChannels,
                             requirement: "non-empty and positive (block_out_channels)")
        try requireParameter(layersPerBlock >= 1, name: "layersPerBlock", value: layersPerBlock, requirement: ">= 1 (layers_per_block)")
        try requireParameter(attentionLevels.count == levels, name: "attentionLevels", value: attentionLevels,
                             requirement: "one attention flag per level (\(levels) levels, as blockOutChannels has)")
        try requireParameter(normGroups >= 1 && blockOutChannels.allSatisfy { $0 % normGroups == 0 }, name: "normGroups", value: normGroups,
                             requirement: ">= 1 and such that every channel count \(blockOutChannels) is divisible by norm_num_groups")
        try requireParameter(imageSize % (1 << (levels - 1)) == 0, name: "imageSize", value: imageSize,
                             requirement: "divisible by 2^(levels − 1) = \(1 << (levels - 1)) so that up-sampling restores it", advice: "28 allows 3 levels (28 → 14 → 7)")
        try requireParameter(normEpsilon.isFinite && normEpsilon > 0, name: "normEpsilon", value: normEpsilon, requirement: "finite and > 0 (norm_eps)")
        try requireParameter(classCount >= 0, name: "classCount", value: classCount, requirement: ">= 0")
        try requireParameter(dropout >= 0 && dropout < 1, name: "dropout", value: dropout, requirement: "in [0, 1)")
        try requireParameter(freqShift.isFinite && Double(blockOutChannels[0] / 2) - freqShift != 0 && blockOutChannels[0] >= 2, name: "freqShift", value: freqShift,
                             requirement: "finite and ≠ \(blockOutChannels[0] / 2) (half the \(blockOutChannels[0]) embedding channels, which must be >= 2), or the embedding has no frequencies")
        try requireParameter(downsamplePadding == 0 || downsamplePadding == 1, name: "downsamplePadding", value: downsamplePadding, requirement: "0 or 1 (downsample_padding)")
        if let d = attentionHeadDim {
            var attentionChannels = zip(blockOutChannels, attentionLevels).filter(\.1).map(\.0)
            if midBlockAttention { attentionChannels.append(blockOutChannels.last!) }
            try requireParameter(d >= 1 && attentionChannels.allSatisfy { $0 % d == 0 }, name: "attentionHeadDim", value: d,
                                 requirement: "a divisor of the channels of every attention block (\(attentionChannels)) (attention_head_dim)")
        }
    }

    /// Metadata entries `unet.*` (written with the weights).
    public var metadata: [String: String] {
        ["unet.sample_size": "\(imageSize)", "unet.channels": "\(channels)",
         "unet.block_out_channels": blockOutChannels.map(String.init).joined(separator: ","),
         "unet.layers_per_block": "\(layersPerBlock)",
         "unet.attention_levels": attentionLevels.map { $0 ? "1" : "0" }.joined(separator: ","),
         "unet.mid_block_attention": "\(midBlockAttention)",
         "unet.norm_num_groups": "\(normGroups)", "unet.norm_eps": "\(normEpsilon)",
         "unet.class_count": "\(classCount)", "unet.dropout": "\(dropout)",
         "unet.flip_sin_to_cos": "\(flipSinToCos)", "unet.freq_shift": "\(freqShift)"]
            .merging(attentionHeadDim.map { ["unet.attention_head_dim": "\($0)"] } ?? [:]) { a, _ in a }
            .merging(downsamplePadding != 1 ? ["unet.downsample_padding": "\(downsamplePadding)"] : [:]) { a, _ in a }
    }

    init(metadata m: MetadataReader) throws {
        func ints(_ key: String) throws -> [Int] {
            let s = try m.string(key)
            let v = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else { throw m.fail("metadata '\(key)' is '\(s)'; expected integers separated by commas") }
            return v.map { $0! }
        }
        self.init(imageSize: try m.int("unet.sample_size"), channels: try m.int("unet.channels"),
                  blockOutChannels: try ints("unet.block_out_channels"), layersPerBlock: try m.int("unet.layers_per_block"),
                  attentionLevels: try ints("unet.attention_levels").map { $0 != 0 },
                  midBlockAttention: try m.bool("unet.mid_block_attention"), normGroups: try m.int("unet.norm_num_groups"),
                  normEpsilon: try m.double("unet.norm_eps"), classCount: try m.int("unet.class_count"),
                  dropout: try m.double("unet.dropout"), flipSinToCos: try m.bool("unet.flip_sin_to_cos"),
                  freqShift: try m.double("unet.freq_shift"))
        if m.map["unet.attention_head_dim"] != nil { attentionHeadDim = try m.int("unet.attention_head_dim") }
        if m.map["unet.downsample_padding"] != nil { downsamplePadding = try m.int("unet.downsample_padding") }
        do { try validate() } catch let error as ScoreSDEError where error.argumentMessage != nil { throw m.fail("metadata describes an invalid U-Net: \(error.argumentMessage ?? "")") }
    }

    /// The diffusers `config.json` fields this configuration corresponds to.
    public var diffusersConfig: [String: String] {
        let down = attentionLevels.map { $0 ? "\"AttnDownBlock2D\"" : "\"DownBlock2D\"" }
        let up = attentionLevels.reversed().map { $0 ? "\"AttnUpBlock2D\"" : "\"UpBlock2D\"" }
        return ["sample_size": "\(imageSize)", "in_channels": "\(channels)", "out_channels": "\(channels)",
                "block_out_channels": "[\(blockOutChannels.map(String.init).joined(separator: ", "))]",
                "layers_per_block": "\(layersPerBlock)", "down_block_types": "[\(down.joined(separator: ", "))]",
                "up_block_types": "[\(up.joined(separator: ", "))]", "add_attention": "\(midBlockAttention)",
                "norm_num_groups": "\(normGroups)", "norm_eps": "\(normEpsilon)", "attention_head_dim": attentionHeadDim.map(String.init) ?? "null",
                "downsample_padding": "\(downsamplePadding)",
                "num_class_embeds": classCount > 0 ? "\(classCount + 1)" : "null", "dropout": "\(dropout)",
                "flip_sin_to_cos": "\(flipSinToCos)", "freq_shift": "\(freqShift)"]
    }
}

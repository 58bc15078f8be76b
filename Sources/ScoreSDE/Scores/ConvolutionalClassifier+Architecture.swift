import Foundation

/// What a classifier trainer needs to know of a network's shape (``NoiseAwareClassifier/Architecture``,
/// ``ConvolutionalClassifier/Architecture``).
public protocol ClassifierArchitecture: Sendable, Equatable {
    /// Shape of one sample.
    var rowShape: [Int] { get }
    /// Number `K ≥ 2` of classes `0 ..< K`.
    var classCount: Int { get }
    /// - Throws: `invalidParameter` naming the first setting out of its domain.
    func validate() throws
}

extension NoiseAwareClassifier.Architecture: ClassifierArchitecture {}

extension ConvolutionalClassifier {
    /// The shape of a ``ConvolutionalClassifier``: the encoder of a ``UNetConfiguration`` (channels
    /// per level, residual blocks per level, GroupNorm, the sinusoidal time embedding and its
    /// network time `τ = timeScale · t`) and the head's feature width.
    ///
    ///     let arch = ConvolutionalClassifier.Architecture(rowShape: [1, 28, 28], classCount: 10)
    ///     // channels 32, 64, 64; 28 → 14 → 7; 256 features; 491 k parameters
    public struct Architecture: ClassifierArchitecture {
        /// `[C, H, W]` of one image.
        public var rowShape: [Int]
        /// Number `K ≥ 2` of classes `0 ..< K`.
        public var classCount: Int
        /// Channels per level (`block_out_channels`); the image is halved after every level but the last.
        public var blockOutChannels: [Int]
        /// Residual blocks per level.
        public var layersPerBlock: Int
        /// Whether the middle block ends with self-attention.
        public var midBlockAttention: Bool
        /// GroupNorm groups and epsilon.
        public var normGroups: Int
        /// GroupNorm epsilon.
        public var normEpsilon: Double
        /// Width `F` of the penultimate features (`Linear(C → F)` + SiLU after the pooled encoder).
        public var featureDimension: Int
        /// `flip_sin_to_cos` of the sinusoidal time embedding (as ``UNetConfiguration/flipSinToCos``).
        public var flipSinToCos: Bool
        /// `freq_shift` of the sinusoidal time embedding.
        public var freqShift: Double
        /// Network time `τ = timeScale · t` (999: the DDPM step index, as ``UNetScore/timeScale``).
        public var timeScale: Double

        /// - Parameters:
        ///   - rowShape: `[C, H, W]`.
        ///   - classCount: `K ≥ 2`.
        ///   - blockOutChannels: channels per level (default 32, 64, 64: 28 → 14 → 7 for Fashion-MNIST).
        ///   - layersPerBlock: residual blocks per level (default 1).
        ///   - midBlockAttention: self-attention after the middle residual block (default off).
        ///   - normGroups: GroupNorm groups; every channel count must be divisible by it (default 8).
        ///   - normEpsilon: GroupNorm epsilon (default 10⁻⁵).
        ///   - featureDimension: width of the penultimate features (default 256).
        ///   - flipSinToCos: order of the sinusoid's halves (default `cos, sin`, as the U-Net's).
        ///   - freqShift: frequency shift of the sinusoid (default 0).
        ///   - timeScale: network time per unit of `t` (default 999).
        public init(rowShape: [Int], classCount: Int, blockOutChannels: [Int] = [32, 64, 64], layersPerBlock: Int = 1,
                    midBlockAttention: Bool = false, normGroups: Int = 8, normEpsilon: Double = 1e-5,
                    featureDimension: Int = 256, flipSinToCos: Bool = true, freqShift: Double = 0, timeScale: Double = 999) {
            self.rowShape = rowShape; self.classCount = classCount; self.blockOutChannels = blockOutChannels
            self.layersPerBlock = layersPerBlock; self.midBlockAttention = midBlockAttention; self.normGroups = normGroups
            self.normEpsilon = normEpsilon; self.featureDimension = featureDimension; self.flipSinToCos = flipSinToCos
            self.freqShift = freqShift; self.timeScale = timeScale
        }

        /// Image channels `C`.
        public var channels: Int { rowShape.first ?? 0 }
        /// Number of levels.
        public var levels: Int { blockOutChannels.count }
        /// Width `E = 4 C₀` of the time embedding.
        public var embeddingWidth: Int { 4 * (blockOutChannels.first ?? 0) }
        /// `(height, width)` at each level: a stride-2 3×3 convolution with padding 1 maps `s → ⌈s/2⌉`.
        var levelSizes: [(Int, Int)] {
            var out: [(Int, Int)] = [], h = rowShape.count == 3 ? rowShape[1] : 1, w = rowShape.count == 3 ? rowShape[2] : 1
            for _ in 0 ..< levels { out.append((h, w)); h = (h + 1) / 2; w = (w + 1) / 2 }
            return out
        }

        /// Number of parameters.
        public var parameterCount: Int { get throws { try ConvolutionalClassifierNetwork<Float>(self).parameterCount } }

        /// - Throws: `invalidParameter` naming the first setting out of its domain.
        public func validate() throws {
            try requireParameter(rowShape.count == 3 && rowShape.allSatisfy { $0 >= 1 && $0 <= 1 << 14 }, name: "rowShape", value: rowShape,
                                 requirement: "[C, H, W] with sizes in 1...16384 (a convolutional classifier takes images)")
            try requireParameter(classCount >= 2 && classCount <= 1 << 20, name: "classCount", value: classCount, requirement: "in 2...1048576 (a classifier)")
            try requireParameter(!blockOutChannels.isEmpty && blockOutChannels.count <= 16 && blockOutChannels.allSatisfy { $0 >= 2 && $0 <= 4096 },
                                 name: "blockOutChannels", value: blockOutChannels, requirement: "1 to 16 channel counts in 2...4096 (one per level)")
            try requireParameter(layersPerBlock >= 1 && layersPerBlock <= 64, name: "layersPerBlock", value: layersPerBlock, requirement: "in 1...64")
            try requireParameter(normGroups >= 1 && blockOutChannels.allSatisfy { $0 % normGroups == 0 }, name: "normGroups", value: normGroups,
                                 requirement: ">= 1 and such that every channel count \(blockOutChannels) is divisible by the GroupNorm groups")
            try requireParameter(normEpsilon.isFinite && normEpsilon > 0, name: "normEpsilon", value: normEpsilon, requirement: "finite and > 0 (the GroupNorm epsilon)")
            try requireParameter(featureDimension >= 1 && featureDimension <= 1 << 16, name: "featureDimension", value: featureDimension, requirement: "in 1...65536")
            try requireParameter(freqShift.isFinite && Double(blockOutChannels[0] / 2) - freqShift != 0, name: "freqShift", value: freqShift,
                                 requirement: "finite and ≠ \(blockOutChannels[0] / 2) (half the \(blockOutChannels[0]) embedding channels), or the embedding has no frequencies")
            try requireParameter(timeScale.isFinite && timeScale > 0, name: "timeScale", value: timeScale, requirement: "finite and > 0")
        }

        /// Metadata entries `classifier.row_shape`, `classifier.class_count` and `conv.*`.
        var metadata: [String: String] {
            ["classifier.row_shape": rowShape.map(String.init).joined(separator: ","), "classifier.class_count": "\(classCount)",
             "conv.block_out_channels": blockOutChannels.map(String.init).joined(separator: ","),
             "conv.layers_per_block": "\(layersPerBlock)", "conv.mid_block_attention": "\(midBlockAttention)",
             "conv.norm_num_groups": "\(normGroups)", "conv.norm_eps": "\(normEpsilon)", "conv.feature_dim": "\(featureDimension)",
             "conv.flip_sin_to_cos": "\(flipSinToCos)", "conv.freq_shift": "\(freqShift)", "conv.time_scale": "\(timeScale)"]
        }

        init(metadata m: MetadataReader) throws {
            func ints(_ key: String) throws -> [Int] {
                let s = try m.string(key)
                let v = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else { throw m.fail("metadata '\(key)' is '\(s)'; expected integers separated by commas") }
                return v.map { $0! }
            }
            self.init(rowShape: try ints("classifier.row_shape"), classCount: try m.int("classifier.class_count"),
                      blockOutChannels: try ints("conv.block_out_channels"), layersPerBlock: try m.int("conv.layers_per_block"),
                      midBlockAttention: try m.bool("conv.mid_block_attention"), normGroups: try m.int("conv.norm_num_groups"),
                      normEpsilon: try m.double("conv.norm_eps"), featureDimension: try m.int("conv.feature_dim"),
                      flipSinToCos: try m.bool("conv.flip_sin_to_cos"), freqShift: try m.double("conv.freq_shift"),
                      timeScale: try m.double("conv.time_scale"))
            do { try validate() } catch let error as ScoreSDEError where error.argumentMessage != nil { throw m.fail("metadata describes an invalid convolutional classifier: \(error.argumentMessage ?? "")") }
        }
    }
}

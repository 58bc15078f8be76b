import Foundation

/// Named regions to inpaint — what `scoresde inpaint --mask NAME` accepts: for images (`[C, H, W]`
/// or `[H, W]`, all channels of a pixel together) the halves, the centre and random pixels; for
/// vectors the first or second half of the coordinates and random ones.
///
///     let mask = try InpaintingRegion.bottomHalf.mask(rowShape: [1, 8, 8], seed: 0)   // [1, 1, 8, 8], 1 = known
///     let constraint = try Inpainting(observation: x, mask: mask)
public enum InpaintingRegion: String, CaseIterable, Sendable {
    case bottomHalf = "bottom-half", topHalf = "top-half", leftHalf = "left-half", rightHalf = "right-half", center, random
    case secondHalf = "second-half", firstHalf = "first-half"

    /// The regions of an image.
    public static let imageRegions: [InpaintingRegion] = [.bottomHalf, .topHalf, .leftHalf, .rightHalf, .center, .random]
    /// The regions of a vector.
    public static let vectorRegions: [InpaintingRegion] = [.secondHalf, .firstHalf, .random]

    /// The regions that apply to samples of `rowShape`: an image's when it is `[H, W]`, `[1, H, W]`
    /// or `[3, H, W]`, else a vector's.
    public static func regions(for rowShape: [Int]) -> [InpaintingRegion] {
        imageSize(rowShape) != nil ? imageRegions : vectorRegions
    }

    /// Whether value `(y, x)` of an `h × w` image (or value `y` of a vector: `x = 0`, `w = 1`) is unknown.
    /// The centre is the middle half in each direction (`⌈h/2⌉ × ⌈w/2⌉` pixels from `(h/4, w/4)`).
    public func isUnknown(y: Int, x: Int, h: Int, w: Int, coin: () -> Bool) -> Bool {
        switch self {
        case .bottomHalf, .secondHalf: return y >= h / 2
        case .topHalf, .firstHalf: return y < h / 2
        case .leftHalf: return x < w / 2
        case .rightHalf: return x >= w / 2
        case .center: return y >= h / 4 && y < h / 4 + (h + 1) / 2 && x >= w / 4 && x < w / 4 + (w + 1) / 2
        case .random: return coin()
        }
    }

    /// The mask of this region for samples of `rowShape`, shape `[1] + rowShape`, 1 where a value is
    /// known and 0 where it is to be inpainted. `.random` hides each pixel (all its channels) with
    /// probability 1/2, drawn from `seed` (the same seed, the same mask).
    ///
    /// - Throws: `invalidArgument` when the region does not apply to `rowShape` (an image region
    ///   for a vector or the reverse), naming the regions that do.
    public func mask(rowShape: [Int], seed: UInt64) throws -> Tensor {
        let allowed = Self.regions(for: rowShape)
        let image = Self.imageSize(rowShape)
        guard allowed.contains(self) else {
            throw ScoreSDEError.invalidArgument("the region \(rawValue) is a region of \(image != nil ? "a vector" : "an image"), but the samples have shape \(rowShape) (\(image != nil ? "images" : "vectors")): use one of \(allowed.map(\.rawValue).joined(separator: ", "))")
        }
        let d = rowShape.reduce(1, *)
        let (c, h, w) = image ?? (1, d, 1)
        var stream = RandomSource(seed: seed).derived(0x3A5C).stream(draw: 0, row: 0)
        var values = [Double](repeating: 1, count: d)
        for y in 0 ..< h {
            for x in 0 ..< w where isUnknown(y: y, x: x, h: h, w: w, coin: { stream.next() >> 63 == 1 }) {
                for ch in 0 ..< c { values[ch * h * w + y * w + x] = 0 }
            }
        }
        return try Tensor(shape: [1] + rowShape, storage: values)
    }

    /// `(channels, height, width)` of image-shaped samples, nil for vectors.
    static func imageSize(_ rowShape: [Int]) -> (Int, Int, Int)? {
        switch rowShape.count {
        case 2: return (1, rowShape[0], rowShape[1])
        case 3 where rowShape[0] == 1 || rowShape[0] == 3: return (rowShape[0], rowShape[1], rowShape[2])
        default: return nil
        }
    }
}

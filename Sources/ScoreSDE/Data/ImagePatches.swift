import Foundation

/// 8 × 8 RGB patches of the two packaged photographs (`china.png`, `flower.png`, 640 × 427 each):
/// a small natural-image data set with 256 levels per channel.
///
/// Patches are tensors `[n, 3, 8, 8]` (channels first, rows top to bottom) of raw 8-bit values `0 ... 255`.
/// ``Split`` divides each photograph by columns: `.train` (left three quarters) for training,
/// `.heldOut` (right quarter) for the colorization demo and benchmark; no patch of one overlaps one of the other.
///
///     let all = try ImagePatches.all()                       // [8480, 3, 8, 8]
///     var rng = RandomSource(seed: 3)
///     let some = try ImagePatches.random(count: 1000, using: &rng)
///     let grey = try ImagePatches.toGrey(some)               // [1000, 1, 8, 8], (R + G + B) / 3
///     let train = try ImagePatches.all(split: .train)        // [6360, 3, 8, 8], columns 0 ..< 480
public enum ImagePatches {
    /// Side of a patch in pixels.
    public static let size = 8
    /// Intensity levels of the raw values (`0 ... 255`).
    public static let levels = 256
    /// The packaged source photographs, in the order used by ``all(split:)`` and ``random(count:split:using:)``.
    public static let sourceNames = ["china.png", "flower.png"]

    /// The source photographs as RGB images, in ``sourceNames`` order.
    public static func sourceImages() throws -> [RasterImage] {
        try cached.get()
    }

    /// Which part of each photograph patches come from. The split is by columns, so that no patch
    /// of one part shares a pixel with a patch of the other: the model is trained on the left three
    /// quarters and the colorization demo and benchmark use the right quarter.
    public enum Split: String, Sendable, CaseIterable {
        /// The whole photograph.
        case all
        /// Columns `0 ..< 3W/4` (`W/4` rounded down to whole patches: 0 ..< 480 of 640).
        case train
        /// Columns `3W/4 ..< W` (480 ..< 640): held out from training.
        case heldOut
    }

    /// Where a patch lies: photograph `image` (index into ``ImagePatches/sourceNames``), top-left pixel `(x, y)`.
    public struct Location: Sendable, Hashable {
        public let image: Int, x: Int, y: Int
        public init(image: Int, x: Int, y: Int) { self.image = image; self.x = x; self.y = y }
        /// Whether the two `size × size` patches share a pixel.
        public func overlaps(_ other: Location) -> Bool {
            image == other.image && abs(x - other.x) < size && abs(y - other.y) < size
        }
    }

    /// The pixel columns of a photograph of width `width` that `split` covers (the boundary
    /// `3W/4` rounded down to a multiple of ``size``).
    public static func columns(_ split: Split, width: Int) -> Range<Int> {
        let boundary = (3 * width / 4) / size * size
        switch split {
        case .all: return 0 ..< width
        case .train: return 0 ..< boundary
        case .heldOut: return boundary ..< width
        }
    }

    /// Every non-overlapping patch of `split`: for each image in ``sourceNames`` order, the
    /// patches at `(x, y) = (x₀ + 8 i, 8 j)` (`x₀` the split's first column) row by row (`j`
    /// outer, `i` inner), dropping incomplete ones. `.all`: 2 · 80 · 53 = 8480 patches;
    /// `.train` 6360; `.heldOut` 2120.
    public static func locations(_ split: Split = .all) throws -> [Location] {
        var out = [Location]()
        for (k, image) in try sourceImages().enumerated() {
            let cols = columns(split, width: image.width)
            let nx = cols.count / size, ny = image.height / size
            for j in 0 ..< ny { for i in 0 ..< nx { out.append(Location(image: k, x: cols.lowerBound + i * size, y: j * size)) } }
        }
        return out
    }

    /// The patches at `locations`, `[n, 3, 8, 8]`.
    public static func patches(at locations: [Location]) throws -> Tensor {
        let images = try sourceImages()
        let p = size, plane = p * p
        var t = Tensor(zeros: [locations.count, 3, p, p])
        for l in locations {
            guard images.indices.contains(l.image), l.x >= 0, l.y >= 0,
                  l.x + p <= images[l.image].width, l.y + p <= images[l.image].height else {
                throw ScoreSDEError.invalid("locations", l, must: "inside a \(p)x\(p) window of a packaged photograph")
            }
        }
        t.storage.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            for (r, l) in locations.enumerated() { copyPatch(images[l.image], x0: l.x, y0: l.y, into: base + r * 3 * plane) }
        }
        return t
    }

    /// Every non-overlapping 8 × 8 patch of `split` (``locations(_:)``), `[n, 3, 8, 8]`.
    public static func all(split: Split = .all) throws -> Tensor {
        try patches(at: locations(split))
    }

    /// The number of patches ``all(split:)`` returns (8480 for `.all`).
    public static func allCount(split: Split = .all) throws -> Int {
        try locations(split).count
    }

    /// `count` locations at random positions (any pixel offset) of `split`, on a photograph
    /// chosen with equal probability, one draw of `rng`: location `r` uses stream `(draw, r)`.
    public static func randomLocations(count: Int, split: Split = .all, using rng: inout RandomSource) throws -> [Location] {
        guard count >= 0 else { throw ScoreSDEError.invalid("count", count, must: ">= 0 (the number of patches)") }
        let images = try sourceImages()
        let draw = rng.nextDraw(), source = rng
        let p = size
        return (0 ..< count).map { r in
            var s = source.stream(draw: draw, row: r)
            let k = uniformInt(&s, images.count)
            let cols = columns(split, width: images[k].width)
            let x0 = cols.lowerBound + uniformInt(&s, cols.count - p + 1), y0 = uniformInt(&s, images[k].height - p + 1)
            return Location(image: k, x: x0, y: y0)
        }
    }

    /// `count` patches at random positions of `split` (``randomLocations(count:split:using:)``).
    public static func random(count: Int, split: Split = .all, using rng: inout RandomSource) throws -> Tensor {
        try patches(at: randomLocations(count: count, split: split, using: &rng))
    }

    /// All non-overlapping `size × size` patches of an RGB or grey image, shaped `[n, C, size, size]`,
    /// in the order of ``all(split:)`` (patch rows top to bottom, left to right within a row).
    public static func grid(of image: RasterImage, size p: Int = ImagePatches.size) -> Tensor {
        precondition(p >= 1, "ImagePatches.grid: patch size must be >= 1")
        let nx = image.width / p, ny = image.height / p, c = image.channels
        var t = Tensor(zeros: [nx * ny, c, p, p])
        t.storage.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            for j in 0 ..< ny {
                for i in 0 ..< nx {
                    copyPatch(image, x0: i * p, y0: j * p, size: p, into: base + (j * nx + i) * c * p * p)
                }
            }
        }
        return t
    }

    /// Grey versions of RGB images `[n, 3, H, W]`: the channel mean `(R + G + B) / 3`, either as one
    /// channel `[n, 1, H, W]` or replicated into three `[n, 3, H, W]`.
    ///
    /// This is the grey image of the colorization task of Song et al. (2021): their orthogonal
    /// decoupling keeps `(R + G + B) / √3`, which is this mean times √3.
    public static func toGrey(_ images: Tensor, replicate: Bool = false) throws -> Tensor {
        let s = images.shape
        guard s.count == 4, s[1] == 3 else {
            throw ScoreSDEError.shapeMismatch("toGrey needs RGB images shaped [N, 3, H, W], got \(s)")
        }
        let n = s[0], plane = s[2] * s[3], outC = replicate ? 3 : 1
        var out = Tensor(zeros: [n, outC, s[2], s[3]])
        images.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for r in 0 ..< n {
                    let a = r * 3 * plane, b = r * outC * plane
                    for i in 0 ..< plane {
                        let g = (src[a + i] + src[a + plane + i] + src[a + 2 * plane + i]) / 3
                        for c in 0 ..< outC { dst[b + c * plane + i] = g }
                    }
                }
            }
        }
        return out
    }

    // MARK: - Helpers

    /// Uniform integer in `0 ..< n` (multiply-shift; bias below n / 2⁶⁴).
    @inline(__always) static func uniformInt(_ s: inout PhiloxStream, _ n: Int) -> Int {
        Int(s.next().multipliedFullWidth(by: UInt64(n)).high)
    }

    /// Copies the `size × size` patch at `(x0, y0)` channel-planar into `out`.
    static func copyPatch(_ image: RasterImage, x0: Int, y0: Int, size p: Int = ImagePatches.size,
                          into out: UnsafeMutablePointer<Double>) {
        let c = image.channels, w = image.width
        image.pixels.withUnsafeBufferPointer { px in
            for y in 0 ..< p {
                for x in 0 ..< p {
                    let src = ((y0 + y) * w + x0 + x) * c
                    for ch in 0 ..< c { out[ch * p * p + y * p + x] = Double(px[src + ch]) }
                }
            }
        }
    }

    private static let cached: Result<[RasterImage], ScoreSDEError> = {
        do {
            return .success(try sourceNames.map { name in
                let path = try PackagedData.url(name).path
                let image = try PNG.read(path, as: 3)
                guard image.width >= size, image.height >= size else {
                    throw ScoreSDEError.io(path: path, message: "image of \(image.width)x\(image.height) is smaller than one \(size)x\(size) patch")
                }
                return image
            })
        } catch let e as ScoreSDEError { return .failure(e) }
        catch { return .failure(.io(path: "ImagePatches", message: "\(error)")) }
    }()
}

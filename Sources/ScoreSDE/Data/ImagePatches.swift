import Foundation

/// 8 × 8 RGB patches of the two packaged photographs (`china.png`, `flower.png`, 640 × 427 each):
/// a small natural-image data set with 256 levels per channel.
///
/// Patches are tensors `[n, 3, 8, 8]` (channels first, rows top to bottom) of raw 8-bit values `0 ... 255`.
///
///     let all = try ImagePatches.all()                       // [8480, 3, 8, 8]
///     var rng = RandomSource(seed: 3)
///     let some = try ImagePatches.random(count: 1000, using: &rng)
///     let grey = try ImagePatches.toGrey(some)               // [1000, 1, 8, 8], (R + G + B) / 3
public enum ImagePatches {
    /// Side of a patch in pixels.
    public static let size = 8
    /// Intensity levels of the raw values (`0 ... 255`).
    public static let levels = 256
    /// The packaged source photographs, in the order used by ``all()`` and ``random(count:using:)``.
    public static let sourceNames = ["china.png", "flower.png"]

    /// The source photographs as RGB images, in ``sourceNames`` order.
    public static func sourceImages() throws -> [RasterImage] {
        try cached.get()
    }

    /// Every non-overlapping 8 × 8 patch of both photographs: for each image in ``sourceNames``
    /// order, the patches at `(x, y) = (8 i, 8 j)` row by row (`j` outer, `i` inner), dropping the
    /// incomplete last row and column. Two 640 × 427 images give 2 · 80 · 53 = 8480 patches.
    public static func all() throws -> Tensor {
        try Tensor.concatenating(sourceImages().map { grid(of: $0) })
    }

    /// The number of patches ``all()`` returns (8480).
    public static func allCount() throws -> Int {
        try sourceImages().reduce(0) { $0 + ($1.width / size) * ($1.height / size) }
    }

    /// `count` patches at random positions (any pixel offset) of a photograph chosen with equal
    /// probability, one draw of `rng`: patch `r` uses stream `(draw, r)`.
    public static func random(count: Int, using rng: inout RandomSource) throws -> Tensor {
        guard count >= 0 else { throw ScoreSDEError.invalidArgument("the number of patches must be >= 0, got \(count)") }
        let images = try sourceImages()
        let draw = rng.nextDraw(), source = rng
        let p = size, plane = p * p
        var t = Tensor(zeros: [count, 3, p, p])
        t.storage.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            Parallel.forEachChunk(count, grain: 128) { range in
                for r in range {
                    var s = source.stream(draw: draw, row: r)
                    let image = images[uniformInt(&s, images.count)]
                    let x0 = uniformInt(&s, image.width - p + 1), y0 = uniformInt(&s, image.height - p + 1)
                    copyPatch(image, x0: x0, y0: y0, into: base + r * 3 * plane)
                }
            }
        }
        return t
    }

    /// All non-overlapping `size × size` patches of an RGB or grey image, shaped `[n, C, size, size]`,
    /// in the order of ``all()`` (patch rows top to bottom, left to right within a row).
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

import CPNG
import Foundation

/// An 8-bit raster image: grey (1 channel) or RGB (3 channels), rows top to bottom, channels
/// interleaved (`pixels[(y * width + x) * channels + c]`).
///
///     let image = try RasterImage(tensor: samples, row: 0, range: -1 ... 1)
///     try PNG.write(image, to: "sample0.png")
public struct RasterImage: Equatable, Sendable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// 1 (grey) or 3 (RGB).
    public let channels: Int
    /// `height * width * channels` bytes, row-major, channels interleaved.
    public package(set) var pixels: [UInt8]

    /// An image from its pixel bytes; throws when the sizes disagree or `channels` is not 1 or 3.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        try Self.validate(width: width, height: height, channels: channels)
        guard pixels.count == width * height * channels else {
            throw ScoreSDEError.shapeMismatch("a \(width)x\(height) image with \(channels) channel(s) needs \(width * height * channels) bytes, got \(pixels.count)")
        }
        self.init(unchecked: width, height, channels, pixels)
    }

    /// An image of one colour (`fill` in every channel; 255 is white).
    public init(width: Int, height: Int, channels: Int, fill: UInt8 = 255) throws {
        try Self.validate(width: width, height: height, channels: channels)
        self.init(unchecked: width, height, channels, [UInt8](repeating: fill, count: width * height * channels))
    }

    package init(unchecked width: Int, _ height: Int, _ channels: Int, _ pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels)
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    private static func validate(width: Int, height: Int, channels: Int) throws {
        guard channels == 1 || channels == 3 else {
            throw ScoreSDEError.invalid("channels", channels, must: "1 (grey) or 3 (RGB)")
        }
        guard width >= 0 else { throw ScoreSDEError.invalid("width", width, must: ">= 0") }
        guard height >= 0 else { throw ScoreSDEError.invalid("height", height, must: ">= 0") }
    }

    /// Channel `channel` of the pixel at column `x`, row `y` (row 0 at the top).
    public subscript(x: Int, y: Int, channel: Int) -> UInt8 {
        get { pixels[(y * width + x) * channels + channel] }
        set { pixels[(y * width + x) * channels + channel] = newValue }
    }

    /// The channel values of the pixel at column `x`, row `y`.
    public func pixel(x: Int, y: Int) -> [UInt8] {
        let i = (y * width + x) * channels
        return Array(pixels[i ..< i + channels])
    }

    /// The same image with 1 (grey, ITU-R BT.601 luma) or 3 (RGB) channels.
    public func converting(toChannels newChannels: Int) throws -> RasterImage {
        guard newChannels == 1 || newChannels == 3 else {
            throw ScoreSDEError.invalid("channels", newChannels, must: "1 (grey) or 3 (RGB)")
        }
        if newChannels == channels { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * newChannels)
        if newChannels == 3 {
            for i in 0 ..< n { let v = pixels[i]; out[3 * i] = v; out[3 * i + 1] = v; out[3 * i + 2] = v }
        } else {
            for i in 0 ..< n {
                let luma = 0.299 * Double(pixels[3 * i]) + 0.587 * Double(pixels[3 * i + 1]) + 0.114 * Double(pixels[3 * i + 2])
                out[i] = UInt8(min(255, luma.rounded()))
            }
        }
        return RasterImage(unchecked: width, height, newChannels, out)
    }
}

// MARK: - Tensor <-> image

extension RasterImage {
    /// Image `row` of a batch shaped `[N, H, W]` (grey) or `[N, C, H, W]` with C = 1 (grey) or 3 (RGB),
    /// mapping `range` linearly onto 0...255 (values outside are clamped, NaN becomes 0, results rounded).
    ///
    ///     let img = try RasterImage(tensor: x, row: 3, range: 0 ... 1)   // CIFAR-style data in [0, 1]
    public init(tensor: Tensor, row: Int = 0, range: ClosedRange<Double>) throws {
        let (c, h, w) = try Self.imageLayout(of: tensor)
        try Self.checkRange(range)
        guard row >= 0, row < tensor.rows else {
            throw ScoreSDEError.invalid("row", row, must: "in 0..<\(tensor.rows), an image of the batch")
        }
        let plane = h * w
        var out = [UInt8](repeating: 0, count: plane * c)
        let base = row * plane * c
        let q = Quantizer(range)
        tensor.storage.withUnsafeBufferPointer { s in
            for ch in 0 ..< c {
                for i in 0 ..< plane { out[i * c + ch] = q(s[base + ch * plane + i]) }
            }
        }
        self.init(unchecked: w, h, c, out)
    }

    /// This image as a tensor shaped `[1, C, H, W]`, mapping 0...255 linearly onto `range`.
    /// Round-trips exactly with ``init(tensor:row:range:)``.
    public func tensor(range: ClosedRange<Double>) throws -> Tensor {
        try Self.checkRange(range)
        let plane = width * height
        let (lo, span) = (range.lowerBound, range.upperBound - range.lowerBound)
        var storage = [Double](repeating: 0, count: plane * channels)
        for ch in 0 ..< channels {
            for i in 0 ..< plane { storage[ch * plane + i] = lo + Double(pixels[i * channels + ch]) / 255 * span }
        }
        return Tensor(uncheckedShape: [1, channels, height, width], storage: storage)
    }

    /// `(C, H, W)` of a batch of images shaped `[N, H, W]` or `[N, C, H, W]` with C = 1 or 3.
    package static func imageLayout(of tensor: Tensor) throws -> (channels: Int, height: Int, width: Int) {
        let s = tensor.shape
        if s.count == 3 { return (1, s[1], s[2]) }
        if s.count == 4, s[1] == 1 || s[1] == 3 { return (s[1], s[2], s[3]) }
        throw ScoreSDEError.shapeMismatch("images must be shaped [N, H, W] or [N, C, H, W] with C = 1 or 3, got \(s)")
    }

    package static func checkRange(_ range: ClosedRange<Double>) throws {
        guard range.lowerBound.isFinite, range.upperBound.isFinite, range.lowerBound < range.upperBound else {
            throw ScoreSDEError.invalid("range", range, must: "finite and non-empty (the value range of an image)", advice: "e.g. 0...1 or -1...1")
        }
    }

    /// Maps a value range linearly to 0...255 with clamping and rounding; NaN maps to 0.
    package struct Quantizer {
        let lo: Double, scale: Double
        package init(_ range: ClosedRange<Double>) {
            lo = range.lowerBound
            scale = 255 / (range.upperBound - range.lowerBound)
        }
        @inline(__always) package func callAsFunction(_ v: Double) -> UInt8 {
            let p = ((v - lo) * scale).rounded()
            return p >= 255 ? 255 : (p > 0 ? UInt8(p) : 0)   // NaN fails both tests -> 0
        }
    }
}

// MARK: - PNG files

/// PNG files through libpng's simplified API: 8-bit grey or RGB, properly compressed.
///
///     try PNG.write(Plot.scatter(samples), to: "samples.png")   // Plot: import ScoreSDEPlot
///     let img = try PNG.read("digit.png", as: 1)     // any PNG, converted to grey
public enum PNG {
    /// The largest decoded image ``decode(_:path:as:)`` accepts: 256 MiB (e.g. 9000 x 9000 8-bit
    /// RGB; 16-bit files count 2 bytes per sample plus alpha).
    public static let maxDecodedBytes = 1 << 28

    /// Writes `image` as an 8-bit PNG, atomically (see ``AtomicFile``).
    public static func write(_ image: RasterImage, to path: String) throws {
        try AtomicFile.write(encode(image, path: path), to: path)
    }

    /// The bytes of a PNG file holding `image`; `path` is only used in error messages.
    public static func encode(_ image: RasterImage, path: String = "<memory>") throws -> Data {
        guard image.width > 0, image.height > 0 else {
            throw ScoreSDEError.io(path: path, message: "cannot write an empty \(image.width)x\(image.height) image as PNG")
        }
        guard image.width <= 0x7FFF_FFFF / max(1, image.channels), image.height <= 0x7FFF_FFFF else {
            throw ScoreSDEError.io(path: path, message: "image of \(image.width)x\(image.height) pixels is too large for PNG")
        }
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        png.width = UInt32(image.width)
        png.height = UInt32(image.height)
        png.format = image.channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        var size: png_alloc_size_t = 0
        let sized = image.pixels.withUnsafeBytes { png_image_write_to_memory(&png, nil, &size, 0, $0.baseAddress, 0, nil) }
        guard sized != 0, size > 0 else {
            let m = message(&png)
            png_image_free(&png)
            throw ScoreSDEError.io(path: path, message: "PNG encoding failed: libpng: \(m)")
        }
        var data = Data(count: Int(size))
        let ok = data.withUnsafeMutableBytes { out in
            image.pixels.withUnsafeBytes { png_image_write_to_memory(&png, out.baseAddress, &size, 0, $0.baseAddress, 0, nil) }
        }
        guard ok != 0 else {
            let m = message(&png)
            png_image_free(&png)
            throw ScoreSDEError.io(path: path, message: "PNG encoding failed: libpng: \(m)")
        }
        data.count = Int(size)
        return data
    }

    /// Reads a PNG file (any bit depth, palette, alpha or interlacing) as an 8-bit image.
    ///
    /// - Parameters:
    ///   - path: the file to read.
    ///   - channels: 1 to convert to grey, 3 to convert to RGB, `nil` to keep grey files grey
    ///     and read colour files as RGB. Transparency is composited onto white.
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a missing or corrupt file, with libpng's message.
    public static func read(_ path: String, as channels: Int? = nil) throws -> RasterImage {
        if let c = channels, c != 1, c != 3 {
            throw ScoreSDEError.invalid("channels", c, must: "1 (grey), 3 (RGB) or nil (PNG.read)")
        }
        return try decode(AtomicFile.read(path), path: path, as: channels)
    }

    /// Decodes the bytes of a PNG file; `path` is only used in error messages.
    public static func decode(_ data: Data, path: String = "<memory>", as channels: Int? = nil) throws -> RasterImage {
        if let c = channels, c != 1, c != 3 {
            throw ScoreSDEError.invalid("channels", c, must: "1 (grey), 3 (RGB) or nil (PNG.decode)")
        }
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        let begun = data.withUnsafeBytes { png_image_begin_read_from_memory(&png, $0.baseAddress, $0.count) }
        guard begun != 0 else {
            let m = message(&png)
            png_image_free(&png)
            throw ScoreSDEError.io(path: path, message: "not a readable PNG image (libpng: \(m))")
        }
        let isColour = png.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let c = channels ?? (isColour ? 3 : 1)
        let (w, h) = (Int(png.width), Int(png.height))
        // Decoded sizes are bounded before anything is allocated: by `maxDecodedBytes`, and by what
        // the file can hold (deflate expands at most 1032:1, and one bit of a 1-bit image becomes
        // at most 3 bytes, so no valid PNG decodes to more than 32768 bytes per file byte).
        let sixteenBit = png.format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0
        let output = Double(w) * Double(h) * Double(c)
        let decoded = sixteenBit ? output / Double(c) * Double(c + 1) * 2 : output   // 16-bit: read with alpha first
        guard w > 0, h > 0, decoded <= Double(maxDecodedBytes) else {
            png_image_free(&png)
            throw ScoreSDEError.io(path: path, message: "PNG image of \(w)x\(h) pixels is too large to read (limit \(maxDecodedBytes >> 20) MiB decoded)")
        }
        guard output <= 32768 * Double(data.count) else {
            png_image_free(&png)
            throw ScoreSDEError.io(path: path, message: "corrupt PNG image: the header says \(w)x\(h) pixels, more than a file of \(data.count) bytes can hold")
        }
        if sixteenBit {
            // A 16-bit file. libpng's simplified API reads interlaced 16-bit files into 8-bit formats
            // with rows out of place (libpng 1.6.39), and takes 16-bit samples for linear light (it
            // would gamma-encode them: 30000 would read as 179). Its 16-bit "linear" output is a
            // plain copy of the samples (premultiplied by alpha): composite onto white here and
            // scale v -> round(v / 257), the PNG convention for reducing the bit depth.
            png.format = UInt32(PNG_FORMAT_FLAG_LINEAR) | UInt32(PNG_FORMAT_FLAG_ALPHA) | (c == 3 ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0)
            var wide = [UInt16](repeating: 0, count: w * h * (c + 1))
            let finished = wide.withUnsafeMutableBytes { png_image_finish_read(&png, nil, $0.baseAddress, 0, nil) }
            guard finished != 0 else {
                let m = message(&png)
                png_image_free(&png)
                throw ScoreSDEError.io(path: path, message: "corrupt PNG image (libpng: \(m))")
            }
            var pixels = [UInt8](repeating: 0, count: w * h * c)
            for i in 0 ..< w * h {
                let transparency = 65535 - UInt32(wide[i * (c + 1) + c])
                for k in 0 ..< c {
                    let v = min(65535, UInt32(wide[i * (c + 1) + k]) + transparency)
                    pixels[i * c + k] = UInt8((v + 128) / 257)
                }
            }
            return RasterImage(unchecked: w, h, c, pixels)
        }
        png.format = c == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        var pixels = [UInt8](repeating: 255, count: w * h * c)
        var white = png_color(red: 255, green: 255, blue: 255)
        let finished = pixels.withUnsafeMutableBytes { png_image_finish_read(&png, &white, $0.baseAddress, 0, nil) }
        guard finished != 0 else {
            let m = message(&png)
            png_image_free(&png)
            throw ScoreSDEError.io(path: path, message: "corrupt PNG image (libpng: \(m))")
        }
        return RasterImage(unchecked: w, h, c, pixels)
    }

    private static func message(_ png: inout png_image) -> String {
        let text = withUnsafeBytes(of: &png.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return text.isEmpty ? "unknown error" : text
    }
}

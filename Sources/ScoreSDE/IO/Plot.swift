import Foundation

/// A tiny rasterizer for looking at results without a plotting library: scatter plots of 2-D
/// samples, grids of image samples, titles, and panels side by side. Every function returns a
/// ``RasterImage``; save it with ``PNG/write(_:to:)``.
///
///     let panel = Plot.scatter(samples, reference: exact, title: "Euler-Maruyama, 1000 steps")
///     try PNG.write(Plot.sideBySide([panel, Plot.scatter(data, title: "data")]), to: "compare.png")
public enum Plot {
    /// Plot bounds in data coordinates.
    public typealias Bounds = (xmin: Double, xmax: Double, ymin: Double, ymax: Double)

    /// A scatter plot of the rows of `points` (shape `[N, 2]`) as small semi-transparent dots, so
    /// that overlapping dots show density.
    ///
    /// - Parameters:
    ///   - points: the samples; column 0 is x, column 1 is y. Rows with NaN or ±Inf are skipped.
    ///     A tensor with more columns is projected on its first two; one column is drawn at y = 0.
    ///   - reference: optional points in another colour: up to 64 are drawn as markers on top
    ///     (e.g. mixture means), more as dots underneath the samples (e.g. exact samples).
    ///   - size: width and height of the plot area in pixels (at least 32).
    ///   - bounds: the visible region; `nil` (or an empty or non-finite region) fits all finite points
    ///     with a 5% margin and equal aspect ratio.
    ///   - title: optional text drawn in a band above the plot (ASCII; other characters show as `?`).
    /// - Returns: an RGB image, white background, light grid lines and axes, thin frame.
    public static func scatter(_ points: Tensor, reference: Tensor? = nil, size: Int = 512,
                               bounds: Bounds? = nil, title: String? = nil) -> RasterImage {
        let side = max(size, 32)
        let pts = xy(points)
        let ref = reference.map(xy) ?? []
        let b = usable(bounds) ?? fit(pts + ref)
        var canvas = Canvas(width: side, height: side)
        let sx = Double(side - 1) / (b.xmax - b.xmin)
        let sy = Double(side - 1) / (b.ymax - b.ymin)
        @inline(__always) func pixel(_ p: (Double, Double)) -> (Int, Int)? {
            let px = ((p.0 - b.xmin) * sx).rounded(), py = ((b.ymax - p.1) * sy).rounded()
            guard px.isFinite, py.isFinite, px > -8, py > -8, px < Double(side + 8), py < Double(side + 8) else { return nil }
            return (Int(px), Int(py))
        }

        // Grid, axes.
        let gridStep = Plot.gridStep(span: max(b.xmax - b.xmin, b.ymax - b.ymin))
        let grid: RGB = (233, 233, 233), axis: RGB = (185, 185, 185)
        for (lo, hi, vertical) in [(b.xmin, b.xmax, true), (b.ymin, b.ymax, false)] {
            var k = (lo / gridStep).rounded(.up)
            while k * gridStep <= hi {
                let v = k * gridStep
                let colour = abs(v) < gridStep * 1e-9 ? axis : grid
                if vertical {
                    if let (px, _) = pixel((v, b.ymin)) { canvas.vline(x: px, colour) }
                } else {
                    if let (_, py) = pixel((b.xmin, v)) { canvas.hline(y: py, colour) }
                }
                k += 1
            }
        }

        // Points.
        let sampleColour: RGB = (22, 72, 160), referenceColour: RGB = (230, 85, 13)
        let markers = ref.count <= 64
        if !markers {
            let a = dotAlpha(ref.count)
            for p in ref { if let (x, y) = pixel(p) { canvas.dot(x, y, referenceColour, alpha: a) } }
        }
        let a = dotAlpha(pts.count)
        canvas.rgb.withUnsafeMutableBufferPointer { buffer in
            for p in pts { if let (x, y) = pixel(p) { Canvas.dot(buffer, side, side, x, y, sampleColour, alpha: a) } }
        }
        if markers {
            let r = max(3, side / 128)
            for p in ref { if let (x, y) = pixel(p) { canvas.disc(x, y, radius: r + 1, (255, 255, 255)); canvas.disc(x, y, radius: r, referenceColour) } }
        }

        // Frame.
        let frame: RGB = (70, 70, 70)
        canvas.hline(y: 0, frame); canvas.hline(y: side - 1, frame)
        canvas.vline(x: 0, frame); canvas.vline(x: side - 1, frame)

        let image = canvas.image()
        if let title { return titled(image, title) }
        return image
    }

    /// Panels in a row, top-aligned, `padding` white pixels apart. The result is RGB unless every
    /// panel is grey; an empty list gives a 0x0 image.
    public static func sideBySide(_ panels: [RasterImage], padding: Int = 8) -> RasterImage {
        let pad = max(padding, 0)
        guard !panels.isEmpty else { return RasterImage(unchecked: 0, 0, 3, []) }
        let channels = panels.allSatisfy { $0.channels == 1 } ? 1 : 3
        let width = panels.reduce(0) { $0 + $1.width } + pad * (panels.count - 1)
        let height = panels.map(\.height).max()!
        var out = RasterImage(unchecked: width, height, channels, [UInt8](repeating: 255, count: width * height * channels))
        var x0 = 0
        for panel in panels {
            out.blit((try? panel.converting(toChannels: channels)) ?? panel, x: x0, y: 0)
            x0 += panel.width + pad
        }
        return out
    }

    /// A grid of images from a batch shaped `[N, H, W]` (grey) or `[N, C, H, W]` (C = 1 grey,
    /// C = 3 RGB), each upscaled `scale` times (nearest neighbour) and separated by `padding` white pixels
    /// (also around the border). Values are mapped from `range` to 0...255 and clamped; NaN shows black.
    ///
    /// - Parameter columns: images per row; `nil` gives a near-square grid (`ceil(sqrt(N))` columns).
    /// - Returns: an image `cols * W * scale + (cols + 1) * padding` wide and
    ///   `rows * H * scale + (rows + 1) * padding` tall.
    /// - Throws: ``ScoreSDEError/shapeMismatch(_:)`` for another shape or an empty batch,
    ///   ``ScoreSDEError/invalidArgument(_:)`` for a bad range, `columns`, `scale` or `padding`.
    public static func imageGrid(_ images: Tensor, range: ClosedRange<Double>, columns: Int? = nil,
                                 scale: Int = 4, padding: Int = 2) throws -> RasterImage {
        let (c, h, w) = try RasterImage.imageLayout(of: images)
        try RasterImage.checkRange(range)
        let n = images.rows
        guard n > 0, h > 0, w > 0 else {
            throw ScoreSDEError.shapeMismatch("imageGrid needs at least one non-empty image, got shape \(images.shape)")
        }
        guard scale >= 1, padding >= 0 else {
            throw ScoreSDEError.invalidArgument("imageGrid: scale must be >= 1 and padding >= 0 (got scale \(scale), padding \(padding))")
        }
        if let columns, columns < 1 {
            throw ScoreSDEError.invalidArgument("imageGrid: columns must be >= 1 (got \(columns))")
        }
        let cols = min(columns ?? Int(Double(n).squareRoot().rounded(.up)), n)
        let rows = (n + cols - 1) / cols
        let (cellW, cellH) = (w * scale, h * scale)
        let width = cols * cellW + (cols + 1) * padding
        let height = rows * cellH + (rows + 1) * padding
        var pixels = [UInt8](repeating: 255, count: width * height * c)
        let q = RasterImage.Quantizer(range)
        let plane = h * w
        images.storage.withUnsafeBufferPointer { s in
            pixels.withUnsafeMutableBufferPointer { out in
                var line = [UInt8](repeating: 0, count: cellW * c)
                for k in 0 ..< n {
                    let x0 = padding + (k % cols) * (cellW + padding)
                    let y0 = padding + (k / cols) * (cellH + padding)
                    let base = k * plane * c
                    for y in 0 ..< h {
                        for x in 0 ..< w {
                            for ch in 0 ..< c {
                                let v = q(s[base + ch * plane + y * w + x])
                                for r in 0 ..< scale { line[(x * scale + r) * c + ch] = v }
                            }
                        }
                        for r in 0 ..< scale {
                            let start = ((y0 + y * scale + r) * width + x0) * c
                            for i in 0 ..< line.count { out[start + i] = line[i] }
                        }
                    }
                }
            }
        }
        return RasterImage(unchecked: width, height, c, pixels)
    }

    /// `image` with `title` centred in a white band above it (built-in 5x7 pixel font, ASCII only).
    public static func titled(_ image: RasterImage, _ title: String) -> RasterImage {
        let glyphs = title.unicodeScalars.map { Font.index(of: $0) }
        var scale = min(3, max(1, image.width / 256))
        while scale > 1, Font.width(glyphs.count, scale: scale) > image.width - 4 { scale -= 1 }
        let fitting = max(0, min(glyphs.count, (image.width - 4 + scale) / (6 * scale)))
        let margin = 3 * scale
        let band = 7 * scale + 2 * margin
        let width = max(image.width, 1)
        var out = RasterImage(unchecked: width, image.height + band, image.channels,
                              [UInt8](repeating: 255, count: width * (image.height + band) * image.channels))
        out.blit(image, x: 0, y: band)
        let x0 = max(0, (width - Font.width(fitting, scale: scale)) / 2)
        for (k, g) in glyphs.prefix(fitting).enumerated() {
            Font.draw(g, into: &out, x: x0 + k * 6 * scale, y: margin, scale: scale, value: 25)
        }
        return out
    }

    // MARK: - Helpers

    typealias RGB = (UInt8, UInt8, UInt8)

    /// Columns 0 and 1 of each row (y = 0 for a single column); rows with non-finite values dropped.
    static func xy(_ t: Tensor) -> [(Double, Double)] {
        let d = t.rowSize
        guard d >= 1, t.rows > 0 else { return [] }
        var out = [(Double, Double)]()
        out.reserveCapacity(t.rows)
        t.storage.withUnsafeBufferPointer { s in
            for i in 0 ..< t.rows {
                let x = s[i * d], y = d >= 2 ? s[i * d + 1] : 0
                if x.isFinite && y.isFinite { out.append((x, y)) }
            }
        }
        return out
    }

    static func usable(_ b: Bounds?) -> Bounds? {
        guard let b, b.xmin.isFinite, b.xmax.isFinite, b.ymin.isFinite, b.ymax.isFinite,
              b.xmin < b.xmax, b.ymin < b.ymax else { return nil }
        return b
    }

    /// The square region holding all points with a 5% margin on each side; (-1, 1) squared for none.
    static func fit(_ points: [(Double, Double)]) -> Bounds {
        guard let first = points.first else { return (-1, 1, -1, 1) }
        var (x0, x1, y0, y1) = (first.0, first.0, first.1, first.1)
        for p in points {
            x0 = min(x0, p.0); x1 = max(x1, p.0); y0 = min(y0, p.1); y1 = max(y1, p.1)
        }
        let span = max(x1 - x0, y1 - y0)
        var half = span * 0.55
        if !(half > 0) || !half.isFinite { half = span.isFinite && span > 0 ? span : max(1, abs(x0) * 0.1, abs(y0) * 0.1) }
        let (cx, cy) = (x0 / 2 + x1 / 2, y0 / 2 + y1 / 2)
        return (cx - half, cx + half, cy - half, cy + half)
    }

    /// Grid spacing: 1 when that gives a readable number of lines, else 1, 2 or 5 times a power of ten.
    static func gridStep(span: Double) -> Double {
        if span >= 2.5 && span <= 16 { return 1 }
        let raw = span / 8
        let p = pow(10, (log10(raw)).rounded(.down))
        let m = raw / p
        return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p
    }

    /// Opacity of one dot: opaque-ish for a few points, faint for many so that density shows.
    static func dotAlpha(_ n: Int) -> Float {
        min(0.75, max(0.06, 40 / Float(max(n, 1)).squareRoot()))
    }

    /// An RGB float canvas with alpha blending.
    struct Canvas {
        let width: Int, height: Int
        var rgb: [Float]

        init(width: Int, height: Int) {
            self.width = width
            self.height = height
            rgb = [Float](repeating: 255, count: width * height * 3)
        }

        mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            let i = (y * width + x) * 3
            rgb[i] = Float(c.0); rgb[i + 1] = Float(c.1); rgb[i + 2] = Float(c.2)
        }

        mutating func hline(y: Int, _ c: RGB) { for x in 0 ..< width { set(x, y, c) } }
        mutating func vline(x: Int, _ c: RGB) { for y in 0 ..< height { set(x, y, c) } }

        mutating func disc(_ cx: Int, _ cy: Int, radius r: Int, _ c: RGB) {
            for dy in -r ... r { for dx in -r ... r where dx * dx + dy * dy <= r * r + r / 2 { set(cx + dx, cy + dy, c) } }
        }

        mutating func dot(_ x: Int, _ y: Int, _ c: RGB, alpha: Float) {
            let (w, h) = (width, height)
            rgb.withUnsafeMutableBufferPointer { Canvas.dot($0, w, h, x, y, c, alpha: alpha) }
        }

        /// A plus-shaped dot: full `alpha` at the centre, half at the four neighbours.
        @inline(__always)
        static func dot(_ p: UnsafeMutableBufferPointer<Float>, _ width: Int, _ height: Int,
                        _ x: Int, _ y: Int, _ c: RGB, alpha: Float) {
            @inline(__always) func blend(_ x: Int, _ y: Int, _ a: Float) {
                guard x >= 0, y >= 0, x < width, y < height else { return }
                let i = (y &* width &+ x) &* 3
                p[i] += (Float(c.0) - p[i]) * a
                p[i &+ 1] += (Float(c.1) - p[i &+ 1]) * a
                p[i &+ 2] += (Float(c.2) - p[i &+ 2]) * a
            }
            blend(x, y, alpha)
            let half = alpha * 0.5
            blend(x - 1, y, half); blend(x + 1, y, half); blend(x, y - 1, half); blend(x, y + 1, half)
        }

        func image() -> RasterImage {
            RasterImage(unchecked: width, height, 3, rgb.map { UInt8(max(0, min(255, $0.rounded()))) })
        }
    }

    /// The classic 5x7 LCD font for ASCII 32...126: five column bytes per glyph, bit 0 = top row.
    enum Font {
        static let table: [UInt8] = {
            let hex = "000000000000005f00000007000700147f147f14242a7f2a12231308646236495522500005030000001c2241000041221c00"
                + "14083e081408083e080800503000000808080808006060000020100804023e5149453e00427f400042615149462141454b31"
                + "1814127f1027454545393c4a49493001710905033649494936064949291e0036360000005636000008142241001414141414"
                + "00412214080201510906324979413e7e1111117e7f494949363e414141227f4141221c7f494949417f090909013e4149497a"
                + "7f0808087f00417f41002040413f017f081422417f404040407f020c027f7f0408107f3e4141413e7f090909063e4151215e"
                + "7f09192946464949493101017f01013f4040403f1f2040201f3f4038403f631408146307087008076151494543007f414100"
                + "02040810200041417f0004020102044040404040000102040020545454787f484444383844444420384444487f3854545418"
                + "087e0901020c5252523e7f0804047800447d40002040443d007f1028440000417f40007c041804787c080404783844444438"
                + "7c14141408081414187c7c080404084854545420043f4440203c4040207c1c2040201c3c4030403c44281028440c5050503c"
                + "4464544c44000836410000007f000000413608001008081008"
            let digits = Array(hex.utf8)
            return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0 ..< $0 + 2], as: UTF8.self), radix: 16)! }
        }()

        /// Glyph index of a character; `?` for anything outside printable ASCII.
        static func index(of s: Unicode.Scalar) -> Int {
            (32 ... 126).contains(s.value) ? Int(s.value) - 32 : Int(("?" as Unicode.Scalar).value) - 32
        }

        /// Width in pixels of `n` glyphs (5 columns plus 1 space each, no trailing space).
        static func width(_ n: Int, scale: Int) -> Int { n == 0 ? 0 : (6 * n - 1) * scale }

        static func draw(_ glyph: Int, into image: inout RasterImage, x: Int, y: Int, scale: Int, value: UInt8) {
            for col in 0 ..< 5 {
                let bits = table[glyph * 5 + col]
                for row in 0 ..< 7 where bits & (1 << row) != 0 {
                    for dy in 0 ..< scale {
                        for dx in 0 ..< scale {
                            let px = x + col * scale + dx, py = y + row * scale + dy
                            guard px >= 0, py >= 0, px < image.width, py < image.height else { continue }
                            for c in 0 ..< image.channels { image[px, py, c] = value }
                        }
                    }
                }
            }
        }
    }
}

extension RasterImage {
    /// Copies `source` (same channel count) with its top-left corner at (`x`, `y`), clipped.
    mutating func blit(_ source: RasterImage, x: Int, y: Int) {
        precondition(source.channels == channels)
        let x0 = max(0, x), x1 = min(width, x + source.width)
        guard x0 < x1 else { return }
        for sy in 0 ..< source.height {
            let ty = y + sy
            guard ty >= 0, ty < height else { continue }
            let srcStart = (sy * source.width + (x0 - x)) * channels
            let dstStart = (ty * width + x0) * channels
            let n = (x1 - x0) * channels
            pixels.replaceSubrange(dstStart ..< dstStart + n, with: source.pixels[srcStart ..< srcStart + n])
        }
    }
}

import Foundation
import ScoreSDE

// Grids and tables of image samples (grey or RGB), with hatched unknown pixels.

extension Plot {
    /// A grid of images from a batch shaped `[N, H, W]` (grey) or `[N, C, H, W]` (C = 1 grey,
    /// C = 3 RGB), each upscaled `scale` times (nearest neighbour) and separated by `padding` white pixels
    /// (also around the border). Values are mapped from `range` to 0...255 and clamped; NaN shows black.
    ///
    /// - Parameters:
    ///   - images: the batch.
    ///   - range: the values shown black and white.
    ///   - columns: images per row; `nil` gives a near-square grid (`ceil(sqrt(N))` columns).
    ///   - scale: pixels per image pixel along each axis.
    ///   - padding: white pixels between images and around the grid.
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

    /// A column of an ``imageTable(_:range:scale:padding:)``: a header and `perRow` images per row.
    public struct ImageColumn {
        /// Text above the column (wrapped; the column widens for a long word).
        public var header: String
        /// `[rows · perRow, H, W]` or `[rows · perRow, C, H, W]` (C = 1 or 3): row `i` shows
        /// images `i·perRow ..< (i+1)·perRow`.
        public var images: Tensor
        public var perRow: Int
        /// Optional mask of the values to hatch as unknown (non-zero = unknown): shaped like one
        /// image (shared by all rows) or like `images` with one image per row (`[rows, ...]`).
        public var unknown: Tensor?

        public init(_ header: String, _ images: Tensor, perRow: Int = 1, unknown: Tensor? = nil) {
            self.header = header; self.images = images; self.perRow = perRow; self.unknown = unknown
        }
    }

    /// A table of images: one row per input, `columns` side by side under their headers, each
    /// image upscaled `scale` times (8 makes an 8x8 image 64 pixels wide). Values are mapped from
    /// `range` to 0...255 and clamped. Pixels a column marks unknown are hatched in magenta (which
    /// no grey value shows) and a legend line says so.
    ///
    /// - Throws: ``ScoreSDEError/shapeMismatch(_:)`` when the columns disagree on the number of
    ///   rows or the image size, ``ScoreSDEError/invalidArgument(_:)`` for a bad range or scale.
    public static func imageTable(_ columns: [ImageColumn], range: ClosedRange<Double>, scale: Int = 8,
                                  padding: Int = 2) throws -> RasterImage {
        try RasterImage.checkRange(range)
        guard let first = columns.first else { throw ScoreSDEError.invalidArgument("imageTable needs at least one column") }
        guard scale >= 1, padding >= 0 else {
            throw ScoreSDEError.invalidArgument("imageTable: scale must be >= 1 and padding >= 0 (got scale \(scale), padding \(padding))")
        }
        let (_, h, w) = try RasterImage.imageLayout(of: first.images)
        guard first.perRow >= 1, first.images.rows % first.perRow == 0, first.images.rows > 0 else {
            throw ScoreSDEError.shapeMismatch("imageTable: column \"\(first.header)\" has \(first.images.rows) images, not a positive multiple of \(first.perRow) per row")
        }
        let rows = first.images.rows / first.perRow
        for col in columns {
            let (_, ch, cw) = try RasterImage.imageLayout(of: col.images)
            guard ch == h, cw == w, col.perRow >= 1, col.images.rows == rows * col.perRow else {
                throw ScoreSDEError.shapeMismatch("imageTable: column \"\(col.header)\" holds \(col.images.rows) images of \(cw)x\(ch); expected \(rows) rows of \(col.perRow) images of \(w)x\(h)")
            }
            let plane = h * w, c = col.images.rowSize / plane
            if let u = col.unknown, ![plane, c * plane, rows * plane, rows * c * plane].contains(u.count) {
                throw ScoreSDEError.shapeMismatch("imageTable: the unknown mask of column \"\(col.header)\" has shape \(u.shape); give one image's shape or one per row")
            }
        }
        let s = textScale, cellW = w * scale, cellH = h * scale, groupGap = 24
        let groupWidths = columns.map { col -> Int in
            let imagesWidth = col.perRow * cellW + (col.perRow - 1) * padding
            let longestWord = col.header.split(separator: " ").map { PlotFont.width(String($0), scale: s) }.max() ?? 0
            return max(imagesWidth, longestWord)
        }
        let headers = zip(columns, groupWidths).map { PlotFont.wrap($0.header, width: $1, scale: s) }
        let headerH = (headers.map(\.count).max() ?? 1) * PlotFont.lineHeight * s + 6
        let width = groupWidths.reduce(0, +) + groupGap * (columns.count - 1) + 2 * padding
        let tableH = headerH + rows * cellH + (rows + 1) * padding
        var out = RasterImage(unchecked: width, tableH, 3, [UInt8](repeating: 255, count: width * tableH * 3))
        let q = RasterImage.Quantizer(range)
        var x0 = padding
        for (ci, col) in columns.enumerated() {
            let gw = groupWidths[ci]
            for (li, line) in headers[ci].enumerated() {
                PlotFont.draw(line, into: &out, x: x0 + (gw - PlotFont.width(line, scale: s)) / 2, y: 2 + li * PlotFont.lineHeight * s,
                              scale: s, colour: (25, 25, 25))
            }
            let c = col.images.rowSize / (h * w), plane = h * w
            let imagesWidth = col.perRow * cellW + (col.perRow - 1) * padding
            let start = x0 + (gw - imagesWidth) / 2
            let unknownPer = col.unknown.map { u in u.count == plane || u.count == c * plane ? u.count : u.count / rows }
            for r in 0 ..< rows {
                for k in 0 ..< col.perRow {
                    let index = r * col.perRow + k, base = index * c * plane
                    let ix = start + k * (cellW + padding), iy = headerH + padding + r * (cellH + padding)
                    for y in 0 ..< h {
                        for x in 0 ..< w {
                            var unknown = false
                            if let u = col.unknown, let per = unknownPer {
                                let ub = u.count == per ? 0 : r * per
                                unknown = (0 ..< per / plane).contains { u.storage[ub + $0 * plane + y * w + x] != 0 }
                            }
                            let rgb: RGB = c == 3
                                ? (q(col.images.storage[base + y * w + x]), q(col.images.storage[base + plane + y * w + x]), q(col.images.storage[base + 2 * plane + y * w + x]))
                                : { let v = q(col.images.storage[base + y * w + x]); return (v, v, v) }()
                            for dy in 0 ..< scale {
                                for dx in 0 ..< scale {
                                    let px = ix + x * scale + dx, py = iy + y * scale + dy
                                    let colour = unknown ? hatchColour(px, py) : rgb
                                    out[px, py, 0] = colour.0; out[px, py, 1] = colour.1; out[px, py, 2] = colour.2
                                }
                            }
                        }
                    }
                }
            }
            x0 += gw + groupGap
        }
        guard columns.contains(where: { $0.unknown != nil }) else { return out }
        return stacked([out, legend([LegendEntry(label: "unknown (not observed)", swatch: .hatch)], width: width)], padding: 0)
    }

    /// The hatching of unknown pixels: magenta diagonal stripes on pale pink.
    static func hatchColour(_ x: Int, _ y: Int) -> RGB {
        (x + y) % 8 < 3 ? (200, 30, 150) : (250, 222, 240)
    }
}

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

    /// The one text size of every figure (titles, headers, tick labels, legends): the 5x9 font
    /// drawn at twice its size, 18 pixels per line of capitals and descenders.
    public static let textScale = 2

    /// A marker for a few highlighted points.
    public enum Marker: Sendable {
        /// A thick plus sign with a white halo (e.g. the true input of an inverse problem).
        case cross
        /// A filled disc with a white rim (e.g. mixture means).
        case disc
    }

    /// Something drawn on a scatter plot besides the samples, with its legend entry.
    public enum Overlay {
        /// A few points as markers on top of the samples.
        case points(Tensor, label: String, marker: Marker = .cross, colour: (UInt8, UInt8, UInt8) = (200, 20, 40))
        /// The line a·x + b·y = c (e.g. the values a measurement y = a x₁ + b x₂ leaves possible).
        case line(a: Double, b: Double, c: Double, label: String)
        /// A 2-D Gaussian mixture's density as green shading under the samples (opacity grows
        /// with the square root of the density). Every covariance is widened by a pixel-sized
        /// isotropic Gaussian (3 pixels' std), so that a density concentrated on a line shows as a band.
        case density(FullCovarianceMixture, label: String)
    }

    /// A scatter plot of the rows of `points` (shape `[N, 2]`) as small semi-transparent dots, so
    /// that overlapping dots show density, with axes (ticks, tick labels, axis labels) and a legend.
    ///
    /// - Parameters:
    ///   - points: the samples; column 0 is x, column 1 is y. Rows with NaN or ±Inf are skipped.
    ///     A tensor with more columns is projected on its first two; one column is drawn at y = 0.
    ///   - reference: optional points in another colour: up to 64 are drawn as disc markers on
    ///     top (e.g. mixture means), more as dots underneath the samples (e.g. exact samples).
    ///   - size: width and height of the plot area in pixels (at least 32).
    ///   - bounds: the visible region; `nil` (or an empty or non-finite region) fits all finite
    ///     points, reference points and overlay points with a margin and equal aspect ratio.
    ///   - title: optional text in a band above the plot, wrapped to its width (ASCII; other
    ///     characters show as `?`).
    ///   - xLabel: the label of the horizontal axis.
    ///   - yLabel: the label of the vertical axis.
    ///   - pointsLabel: the legend entry of `points`.
    ///   - referenceLabel: the legend entry of `reference`.
    ///   - overlays: markers, lines and densities drawn with the samples, each with a legend entry.
    /// - Returns: an RGB image, white background, light grid lines, ticks on the frame.
    public static func scatter(_ points: Tensor, reference: Tensor? = nil, size: Int = 512,
                               bounds: Bounds? = nil, title: String? = nil,
                               xLabel: String = "x1", yLabel: String = "x2",
                               pointsLabel: String = "samples", referenceLabel: String = "mixture means",
                               overlays: [Overlay] = []) -> RasterImage {
        let side = max(size, 32)
        let pts = xy(points)
        let ref = reference.map(xy) ?? []
        var marked = [(Double, Double)]()
        for case .points(let t, _, _, _) in overlays { marked += xy(t) }
        let b = usable(bounds) ?? fit(pts + ref + marked)
        var canvas = Canvas(width: side, height: side)
        let sx = Double(side - 1) / (b.xmax - b.xmin)
        let sy = Double(side - 1) / (b.ymax - b.ymin)
        @inline(__always) func pixel(_ p: (Double, Double)) -> (Int, Int)? {
            let px = ((p.0 - b.xmin) * sx).rounded(), py = ((b.ymax - p.1) * sy).rounded()
            guard px.isFinite, py.isFinite, px > -8, py > -8, px < Double(side + 8), py < Double(side + 8) else { return nil }
            return (Int(px), Int(py))
        }

        // Densities underneath everything.
        for case .density(let mixture, _) in overlays {
            canvas.shade(density: mixture, bounds: b, colour: densityColour)
        }

        // Grid, the axes through 0.
        let xStep = Plot.readableStep(lo: b.xmin, hi: b.xmax, pixels: side, horizontal: true)
        let yStep = Plot.readableStep(lo: b.ymin, hi: b.ymax, pixels: side, horizontal: false)
        let xTicks = ticks(b.xmin, b.xmax, xStep), yTicks = ticks(b.ymin, b.ymax, yStep)
        let grid: RGB = (225, 225, 225), axis: RGB = (170, 170, 170)
        for v in xTicks { if let (px, _) = pixel((v, b.ymin)) { canvas.vline(x: px, abs(v) < xStep * 1e-9 ? axis : grid, alpha: 0.6) } }
        for v in yTicks { if let (_, py) = pixel((b.xmin, v)) { canvas.hline(y: py, abs(v) < yStep * 1e-9 ? axis : grid, alpha: 0.6) } }

        // Lines.
        for case .line(let la, let lb, let lc, _) in overlays {
            canvas.line(a: la, b: lb, c: lc, bounds: b, colour: lineColour, width: 1, dashed: true)
        }

        // Points.
        let markers = ref.count <= 64
        if !markers {
            let a = dotAlpha(ref.count)
            for p in ref { if let (x, y) = pixel(p) { canvas.dot(x, y, referenceColour, alpha: a) } }
        }
        let a = dotAlpha(pts.count)
        canvas.rgb.withUnsafeMutableBufferPointer { buffer in
            for p in pts { if let (x, y) = pixel(p) { Canvas.dot(buffer, side, side, x, y, sampleColour, alpha: a) } }
        }
        let r = markerRadius(side)
        if markers {
            for p in ref { if let (x, y) = pixel(p) { canvas.marker(.disc, x, y, radius: r, referenceColour) } }
        }
        for case .points(let t, _, let marker, let colour) in overlays {
            for p in xy(t) { if let (x, y) = pixel(p) { canvas.marker(marker, x, y, radius: r + 2, colour) } }
        }

        // Frame, margins with ticks and labels, legend.
        let frame: RGB = (70, 70, 70)
        canvas.hline(y: 0, frame); canvas.hline(y: side - 1, frame)
        canvas.vline(x: 0, frame); canvas.vline(x: side - 1, frame)
        let plot = canvas.image()

        let s = textScale, textH = PlotFont.rows * s, tick = 5
        let xLabels = xTicks.map { tickLabel($0, step: xStep) }, yLabels = yTicks.map { tickLabel($0, step: yStep) }
        let yTickWidth = yLabels.map { PlotFont.width($0, scale: s) }.max() ?? 0
        let left = 6 + textH + 8 + yTickWidth + 4 + tick
        let lastX = xLabels.last.map { PlotFont.width($0, scale: s) } ?? 0
        let right = max(12, lastX / 2 + 4), top = textH / 2 + 2
        let bottom = tick + 4 + textH + 8 + textH + 6
        let width = left + side + right

        var entries: [LegendEntry] = [.init(label: pointsLabel, swatch: .dots(sampleColour))]
        if reference != nil { entries.append(.init(label: referenceLabel, swatch: markers ? .marker(.disc, referenceColour) : .dots(referenceColour))) }
        for overlay in overlays {
            switch overlay {
            case .points(_, let label, let marker, let colour): entries.append(.init(label: label, swatch: .marker(marker, colour)))
            case .line(_, _, _, let label): entries.append(.init(label: label, swatch: .line(lineColour)))
            case .density(_, let label): entries.append(.init(label: label, swatch: .box(densityColour)))
            }
        }
        let legendImage = legend(entries, width: width)
        let height = top + side + bottom + legendImage.height
        var out = RasterImage(unchecked: width, height, 3, [UInt8](repeating: 255, count: width * height * 3))
        out.blit(plot, x: left, y: top)
        let ink: RGB = (40, 40, 40)
        for (v, label) in zip(xTicks, xLabels) {
            guard let (px, _) = pixel((v, b.ymin)) else { continue }
            out.fill(x: left + px, y: top + side, width: 1, height: tick, ink)
            PlotFont.draw(label, into: &out, x: left + px - PlotFont.width(label, scale: s) / 2, y: top + side + tick + 4, scale: s, colour: ink)
        }
        for (v, label) in zip(yTicks, yLabels) {
            guard let (_, py) = pixel((b.xmin, v)) else { continue }
            out.fill(x: left - tick, y: top + py, width: tick, height: 1, ink)
            PlotFont.draw(label, into: &out, x: left - tick - 4 - PlotFont.width(label, scale: s), y: top + py - 7 * s / 2, scale: s, colour: ink)
        }
        PlotFont.draw(xLabel, into: &out, x: left + (side - PlotFont.width(xLabel, scale: s)) / 2,
                      y: top + side + tick + 4 + textH + 8, scale: s, colour: ink)
        PlotFont.draw(yLabel, into: &out, x: 6, y: top + (side + PlotFont.width(yLabel, scale: s)) / 2, scale: s, colour: ink, vertical: true)
        out.blit(legendImage, x: 0, y: top + side + bottom)

        if let title { return titled(out, title) }
        return out
    }

    static let sampleColour: RGB = (22, 72, 160), referenceColour: RGB = (230, 85, 13)
    static let lineColour: RGB = (120, 30, 170), densityColour: RGB = (60, 170, 80)

    /// The radius of a disc marker on a plot `side` pixels wide.
    static func markerRadius(_ side: Int) -> Int { max(3, side / 110) }

    /// A grid step (1, 2 or 5 times a power of ten, from ``gridStep(span:)`` up) whose tick labels
    /// do not crowd: along x each label's width plus a gap fits between ticks, along y a line of text.
    static func readableStep(lo: Double, hi: Double, pixels: Int, horizontal: Bool) -> Double {
        var step = gridStep(span: hi - lo)
        for _ in 0 ..< 12 {
            let perStep = Double(pixels) * step / (hi - lo)
            let labels = ticks(lo, hi, step).map { tickLabel($0, step: step) }
            let need = horizontal ? Double((labels.map { PlotFont.width($0, scale: textScale) }.max() ?? 0) + 10)
                                  : Double(PlotFont.lineHeight * textScale + 4)
            if perStep >= need || !perStep.isFinite { return step }
            let p = pow(10, log10(step).rounded(.down)), m = (step / p).rounded()
            step = (m < 2 ? 2 : m < 5 ? 5 : 10) * p
        }
        return step
    }

    /// Multiples of `step` in `lo...hi`.
    static func ticks(_ lo: Double, _ hi: Double, _ step: Double) -> [Double] {
        var out = [Double](), k = (lo / step).rounded(.up)
        while k * step <= hi + step * 1e-9, out.count < 100 { out.append(k * step); k += 1 }
        return out
    }

    /// `v` with as many decimals as `step` needs ("-2", "0.5", "0"; never "-0").
    static func tickLabel(_ v: Double, step: Double) -> String {
        let decimals = max(0, Int((-log10(step)).rounded(.up)))
        let text = String(format: "%.\(min(decimals, 8))f", v)
        return Double(text) == 0 ? String(format: "%.\(min(decimals, 8))f", 0.0) : text
    }

    /// One entry of a legend: a swatch and its label.
    struct LegendEntry {
        enum Swatch { case dots(RGB), marker(Marker, RGB), line(RGB), box(RGB), hatch }
        let label: String, swatch: Swatch
    }

    /// Legend entries flowed into rows of at most `width` pixels (an entry wider than that gets a row).
    static func legend(_ entries: [LegendEntry], width: Int) -> RasterImage {
        let s = textScale, textH = PlotFont.rows * s, swatch = 22, gap = 24, rowH = textH + 8
        var rows: [[(LegendEntry, Int)]] = [[]], x = 12
        for e in entries {
            let w = swatch + 8 + PlotFont.width(e.label, scale: s)
            if x + w > width - 6, !rows[rows.count - 1].isEmpty { rows.append([]); x = 12 }
            rows[rows.count - 1].append((e, x)); x += w + gap
        }
        let fullWidth = max(width, rows.flatMap { $0 }.map { $0.1 + swatch + 8 + PlotFont.width($0.0.label, scale: s) + 6 }.max() ?? 0)
        var out = RasterImage(unchecked: fullWidth, rows.count * rowH + 4, 3, [UInt8](repeating: 255, count: fullWidth * (rows.count * rowH + 4) * 3))
        for (i, row) in rows.enumerated() {
            let y0 = 2 + i * rowH, cy = y0 + 7 * s / 2
            for (e, x0) in row {
                var c = Canvas(width: swatch, height: swatch)
                let m = swatch / 2
                switch e.swatch {
                case .dots(let colour):
                    for (dx, dy) in [(-5, -4), (4, -5), (0, 0), (-4, 5), (5, 4), (-7, 1), (7, -1)] { c.dot(m + dx, m + dy, colour, alpha: 0.85) }
                case .marker(let marker, let colour): c.marker(marker, m, m, radius: marker == .disc ? 5 : 6, colour)
                case .line(let colour): c.fillRect(x: 0, y: m - 1, width: swatch, height: 3, colour)
                case .box(let colour): c.fillRect(x: 2, y: 2, width: swatch - 4, height: swatch - 4, colour, alpha: 0.5)
                case .hatch: c.hatch(x: 2, y: 2, width: swatch - 4, height: swatch - 4)
                }
                out.blit(c.image(), x: x0, y: cy - m)
                PlotFont.draw(e.label, into: &out, x: x0 + swatch + 8, y: y0, scale: s, colour: (40, 40, 40))
            }
        }
        return out
    }

    /// How ``sideBySide(_:padding:alignment:)`` places panels of different heights.
    public enum Alignment: Sendable {
        /// Tops in line.
        case top
        /// Bottoms in line: plots with titles of different lengths but equal legends line up.
        case bottom
    }

    /// Panels in a row, `padding` white pixels apart, top- or bottom-aligned. The result is RGB
    /// unless every panel is grey; an empty list gives a 0x0 image.
    public static func sideBySide(_ panels: [RasterImage], padding: Int = 8, alignment: Alignment = .top) -> RasterImage {
        let pad = max(padding, 0)
        guard !panels.isEmpty else { return RasterImage(unchecked: 0, 0, 3, []) }
        let channels = panels.allSatisfy { $0.channels == 1 } ? 1 : 3
        let width = panels.reduce(0) { $0 + $1.width } + pad * (panels.count - 1)
        let height = panels.map(\.height).max()!
        var out = RasterImage(unchecked: width, height, channels, [UInt8](repeating: 255, count: width * height * channels))
        var x0 = 0
        for panel in panels {
            out.blit((try? panel.converting(toChannels: channels)) ?? panel, x: x0, y: alignment == .top ? 0 : height - panel.height)
            x0 += panel.width + pad
        }
        return out
    }

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

    /// `image` with `title` centred in a white band above it, in ``textScale`` and wrapped at
    /// spaces to the image's width (the image is widened, centred, when a word is wider).
    public static func titled(_ image: RasterImage, _ title: String) -> RasterImage {
        banded(image, title, above: true)
    }

    /// `image` with `note` in a white band below it, wrapped like a title (e.g. what a figure shows).
    public static func noted(_ image: RasterImage, _ note: String) -> RasterImage {
        banded(image, note, above: false)
    }

    static func banded(_ image: RasterImage, _ text: String, above: Bool) -> RasterImage {
        let s = textScale
        let words = text.split(separator: " ").map { PlotFont.width(String($0), scale: s) }
        let width = max(image.width, (words.max() ?? 0) + 8, 1)
        // Balanced lines: the narrowest wrap with as few lines as the widest one.
        var lines = PlotFont.wrap(text, width: width - 8, scale: s)
        if lines.count > 1 {
            var lo = (words.max() ?? 0), hi = width - 8
            while lo < hi {
                let mid = (lo + hi) / 2
                if PlotFont.wrap(text, width: mid, scale: s).count <= lines.count { hi = mid } else { lo = mid + 1 }
            }
            lines = PlotFont.wrap(text, width: lo, scale: s)
        }
        let band = lines.count * PlotFont.lineHeight * s + 8
        let channels = image.channels
        var out = RasterImage(unchecked: width, image.height + band, channels,
                              [UInt8](repeating: 255, count: width * (image.height + band) * channels))
        out.blit(image, x: (width - image.width) / 2, y: above ? band : 0)
        for (i, line) in lines.enumerated() {
            let y = (above ? 0 : image.height) + 5 + i * PlotFont.lineHeight * s
            PlotFont.draw(line, into: &out, x: (width - PlotFont.width(line, scale: s)) / 2, y: y, scale: s, colour: (25, 25, 25))
        }
        return out
    }

    /// Panels one under another, left-aligned, `padding` white pixels apart (RGB unless all grey).
    public static func stacked(_ panels: [RasterImage], padding: Int = 8) -> RasterImage {
        let pad = max(padding, 0)
        guard !panels.isEmpty else { return RasterImage(unchecked: 0, 0, 3, []) }
        let channels = panels.allSatisfy { $0.channels == 1 } ? 1 : 3
        let width = panels.map(\.width).max()!
        let height = panels.reduce(0) { $0 + $1.height } + pad * (panels.count - 1)
        var out = RasterImage(unchecked: width, height, channels, [UInt8](repeating: 255, count: width * height * channels))
        var y0 = 0
        for panel in panels {
            out.blit((try? panel.converting(toChannels: channels)) ?? panel, x: 0, y: y0)
            y0 += panel.height + pad
        }
        return out
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

    /// The square region (equal aspect) holding the finite rows of `points` (`[N, 2]`, more columns
    /// ignored) with an 8% margin on each side, as ``scatter(_:reference:size:bounds:title:xLabel:yLabel:pointsLabel:referenceLabel:overlays:)``
    /// fits them; use it to give several panels the same axes.
    public static func bounds(fitting points: Tensor) -> Bounds { fit(xy(points)) }

    /// The square region holding all points with an 8% margin on each side; (-1, 1) squared for none.
    static func fit(_ points: [(Double, Double)]) -> Bounds {
        guard let first = points.first else { return (-1, 1, -1, 1) }
        var (x0, x1, y0, y1) = (first.0, first.0, first.1, first.1)
        for p in points {
            x0 = min(x0, p.0); x1 = max(x1, p.0); y0 = min(y0, p.1); y1 = max(y1, p.1)
        }
        let span = max(x1 - x0, y1 - y0)
        var half = span * 0.58
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
        mutating func hline(y: Int, _ c: RGB, alpha: Float) { for x in 0 ..< width { blend(x, y, c, alpha) } }
        mutating func vline(x: Int, _ c: RGB, alpha: Float) { for y in 0 ..< height { blend(x, y, c, alpha) } }

        mutating func blend(_ x: Int, _ y: Int, _ c: RGB, _ a: Float) {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            let i = (y * width + x) * 3
            rgb[i] += (Float(c.0) - rgb[i]) * a
            rgb[i + 1] += (Float(c.1) - rgb[i + 1]) * a
            rgb[i + 2] += (Float(c.2) - rgb[i + 2]) * a
        }

        mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, _ c: RGB, alpha: Float = 1) {
            for yy in y ..< y + h { for xx in x ..< x + w { blend(xx, yy, c, alpha) } }
        }

        mutating func hatch(x: Int, y: Int, width w: Int, height h: Int) {
            for yy in y ..< y + h { for xx in x ..< x + w { set(xx, yy, Plot.hatchColour(xx, yy)) } }
        }

        /// A marker centred at (`cx`, `cy`) with a white halo.
        mutating func marker(_ kind: Marker, _ cx: Int, _ cy: Int, radius r: Int, _ c: RGB) {
            switch kind {
            case .disc:
                disc(cx, cy, radius: r + 1, (255, 255, 255)); disc(cx, cy, radius: r, c)
            case .cross:
                let t = max(1, r / 4)
                fillRect(x: cx - r - 1, y: cy - t - 1, width: 2 * r + 3, height: 2 * t + 3, (255, 255, 255))
                fillRect(x: cx - t - 1, y: cy - r - 1, width: 2 * t + 3, height: 2 * r + 3, (255, 255, 255))
                fillRect(x: cx - r, y: cy - t, width: 2 * r + 1, height: 2 * t + 1, c)
                fillRect(x: cx - t, y: cy - r, width: 2 * t + 1, height: 2 * r + 1, c)
            }
        }

        /// The line a·x + b·y = c over `bounds`, `width` pixels thick.
        mutating func line(a: Double, b: Double, c: Double, bounds: Bounds, colour: RGB, width lw: Int, dashed: Bool = false) {
            guard a.isFinite, b.isFinite, c.isFinite, a != 0 || b != 0 else { return }
            let sx = Double(width - 1) / (bounds.xmax - bounds.xmin), sy = Double(height - 1) / (bounds.ymax - bounds.ymin)
            let half = lw / 2
            if abs(b * sy) >= abs(a * sx) {   // flatter than 45 degrees on screen: one point per column
                for px in 0 ..< width {
                    let x = bounds.xmin + Double(px) / sx, y = (c - a * x) / b
                    let py = ((bounds.ymax - y) * sy).rounded()
                    guard py.isFinite, py > -10, py < Double(height + 10), !dashed || px % 10 < 6 else { continue }
                    for k in -half ..< lw - half { set(px, Int(py) + k, colour) }
                }
            } else {
                for py in 0 ..< height {
                    let y = bounds.ymax - Double(py) / sy, x = (c - b * y) / a
                    let px = ((x - bounds.xmin) * sx).rounded()
                    guard px.isFinite, px > -10, px < Double(width + 10), !dashed || py % 10 < 6 else { continue }
                    for k in -half ..< lw - half { set(Int(px) + k, py, colour) }
                }
            }
        }

        /// Shades every pixel by the density of the 2-D `mixture` there, smoothed by a Gaussian of
        /// 3 pixels' std (so that singular components show as bands): opacity 0.7·sqrt(p / max p).
        mutating func shade(density mixture: FullCovarianceMixture, bounds: Bounds, colour: RGB) {
            guard mixture.dimension == 2 else { return }
            let px = max((bounds.xmax - bounds.xmin) / Double(width), (bounds.ymax - bounds.ymin) / Double(height))
            let v = (3 * px) * (3 * px)
            let widened = mixture.covariances.map { c in [[c[0][0] + v, c[0][1]], [c[1][0], c[1][1] + v]] }
            guard let smooth = try? FullCovarianceMixture(weights: mixture.weights, means: mixture.means, covariances: widened) else { return }
            var centres = [Double]()
            centres.reserveCapacity(width * height * 2)
            let sx = (bounds.xmax - bounds.xmin) / Double(width - 1), sy = (bounds.ymax - bounds.ymin) / Double(height - 1)
            for y in 0 ..< height { for x in 0 ..< width { centres.append(bounds.xmin + Double(x) * sx); centres.append(bounds.ymax - Double(y) * sy) } }
            guard let grid = try? Tensor(shape: [width * height, 2], storage: centres),
                  let logp = try? smooth.logDensity(grid), let top = logp.filter(\.isFinite).max() else { return }
            for i in 0 ..< logp.count where logp[i].isFinite {
                let a = Float(0.7 * exp(0.5 * (logp[i] - top)))
                if a > 0.004 { blend(i % width, i / width, colour, a) }
            }
        }

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

}

extension RasterImage {
    /// Fills a rectangle (clipped) with `colour` (its mean for grey images).
    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ colour: (UInt8, UInt8, UInt8)) {
        let grey = UInt8((Int(colour.0) + Int(colour.1) + Int(colour.2)) / 3)
        for yy in max(0, y) ..< min(height, y + h) {
            for xx in max(0, x) ..< min(width, x + w) {
                if channels >= 3 { self[xx, yy, 0] = colour.0; self[xx, yy, 1] = colour.1; self[xx, yy, 2] = colour.2 }
                else { for c in 0 ..< channels { self[xx, yy, c] = grey } }
            }
        }
    }

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

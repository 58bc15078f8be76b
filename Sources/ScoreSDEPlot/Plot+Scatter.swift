import Foundation
import ScoreSDE

// Scatter plots of 2-D samples: markers, overlays, axes, ticks and the legend.

extension Plot {
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
}

import Foundation
import ScoreSDE

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
}

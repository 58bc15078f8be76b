import Foundation
import ScoreSDE

// The RGB float canvas every plot draws on, and raster helpers (fill, blit).

extension Plot {
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

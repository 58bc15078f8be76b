import Foundation
import ScoreSDE

// Reading the inputs of `inpaint`, `colorize` and `reconstruct` (images, arrays, built-in demos)
// and writing their results.

/// The layout of an image model's samples: `[H, W]` and `[1, H, W]` are grey, `[3, H, W]` RGB.
struct ImageLayout: Equatable {
    let channels: Int, height: Int, width: Int
    var pixels: Int { height * width }

    init?(_ rowShape: [Int]) {
        switch rowShape.count {
        case 2: (channels, height, width) = (1, rowShape[0], rowShape[1])
        case 3 where rowShape[0] == 1 || rowShape[0] == 3: (channels, height, width) = (rowShape[0], rowShape[1], rowShape[2])
        default: return nil
        }
    }

    var description: String { "\(width)x\(height) \(channels == 1 ? "grey" : "RGB")" }
}

extension DataModel {
    /// The model's image layout, if its samples are images.
    var imageLayout: ImageLayout? { ImageLayout(rowShape) }

    /// Built-in inputs for the demos, in data space: held-out digits for a model of 8x8 grey
    /// images, random photograph patches for 8x8 RGB, exact samples of a mixture. Nil when the
    /// model has no such data (the caller asks for `--data`). Drawn from a source independent of
    /// the sampler's (seeded with the same `seed`).
    func demoInputs(count: Int, seed: UInt64) throws -> (inputs: Tensor, description: String)? {
        var rng = RandomSource(seed: seed).derived(0xDA7A)
        switch source {
        case .mixture(let m):
            return (m.sample(count: count, using: &rng), "\(count) exact sample\(count == 1 ? "" : "s") of \(name) (seed \(seed))")
        case .learned:
            guard let layout = imageLayout, layout.height == 8, layout.width == 8 else { return nil }
            if layout.channels == 1 {
                let held = try Digits.load(split: .heldOut)
                let n = min(count, held.images.rows)
                return (try held.images.rows(0 ..< n).reshaped([n] + rowShape), "the first \(n) held-out digits")
            }
            return (try ImagePatches.random(count: count, using: &rng).reshaped([count] + rowShape),
                    "\(count) random photograph patches (seed \(seed))")
        }
    }

    /// The observation a demo makes of `truth`: `truth + sigma·z` (data units), `z` from `seed`.
    static func observed(_ truth: Tensor, noiseStd sigma: Double, seed: UInt64) -> Tensor {
        guard sigma > 0 else { return truth }
        var rng = RandomSource(seed: seed).derived(0x0B5E)
        var y = truth
        y.add(Tensor.standardNormal(shape: truth.shape, using: &rng), scaledBy: sigma)
        return y
    }

    /// A PNG as one row of this image model in data space (0...255 mapped onto ``imageRange``).
    /// A colour PNG for a grey model is accepted only when its channels are equal.
    func readImage(_ path: String, option: String) throws -> Tensor {
        guard let layout = imageLayout else {
            throw ScoreSDEError.invalidArgument("\(option) \(path): the model \(name) takes samples of shape \(rowShape), not images; give a .npy of shape [n, \(rowShape.map(String.init).joined(separator: ", "))]")
        }
        let image = try PNG.read(path)
        try checkSize(image, layout: layout, what: "\(option) \(path)")
        if image.channels != layout.channels {
            if layout.channels == 1 && isGrey(image) {
                return try image.converting(toChannels: 1).tensor(range: imageRange).reshaped([1] + rowShape)
            }
            throw ScoreSDEError.shapeMismatch("\(option) \(path) is a \(image.channels == 1 ? "grey" : "colour") image but the model \(name) takes \(layout.description) images; convert it to \(layout.channels == 1 ? "grey" : "RGB") first")
        }
        return try image.tensor(range: imageRange).reshaped([1] + rowShape)
    }
}

/// Throws unless `image` is `layout`'s size.
func checkSize(_ image: RasterImage, layout: ImageLayout, what: String) throws {
    guard image.width == layout.width, image.height == layout.height else {
        throw ScoreSDEError.shapeMismatch("\(what) is \(image.width)x\(image.height) pixels but the model takes \(layout.width)x\(layout.height) images; crop or resize it to \(layout.width)x\(layout.height)")
    }
}

/// Whether every pixel of `image` has equal channels.
func isGrey(_ image: RasterImage) -> Bool {
    guard image.channels == 3 else { return image.channels == 1 }
    let p = image.pixels
    for i in stride(from: 0, to: p.count, by: 3) where p[i] != p[i + 1] || p[i] != p[i + 2] { return false }
    return true
}

/// A figure of conditional samples of an image model: one row per input (at most `maxRows`),
/// `leading` images first (e.g. the input and what is observed of it), then its `k` samples.
func conditionalGrid(leading: [Tensor], samples: Tensor, perInput k: Int, model: DataModel, title: String,
                     maxRows: Int = 16) throws -> RasterImage {
    let inputs = samples.rows / k, shown = min(inputs, maxRows)
    let columns = leading.count + k, d = samples.rowSize
    guard let layout = model.imageLayout else { throw ScoreSDEError.invalidArgument("not an image model") }
    var storage = [Double]()
    storage.reserveCapacity(shown * columns * d)
    for i in 0 ..< shown {
        for t in leading { storage.append(contentsOf: t.storage[i * d ..< (i + 1) * d]) }
        storage.append(contentsOf: samples.storage[i * k * d ..< (i + 1) * k * d])
    }
    let images = try Tensor(shape: [shown * columns, layout.channels, layout.height, layout.width], storage: storage)
    let grid = try Plot.imageGrid(images, range: model.imageRange, columns: columns, scale: 6)
    let more = inputs > shown ? " (first \(shown) of \(inputs) inputs)" : ""
    return Plot.titled(grid, title + more)
}

/// A figure of conditional samples of a vector model: the samples, next to exact posterior
/// samples when known, on the same axes (the first two coordinates).
func conditionalScatter(samples: Tensor, exact: Tensor?, model: DataModel, title: String) -> RasterImage {
    let d = samples.rowSize
    let what = d == 2 ? "" : d == 1 ? " (1-D)" : " (coordinates 1-2 of \(d))"
    let reference = model.referencePoints.flatMap { $0.rowSize == d ? $0 : nil }
    guard let exact else { return Plot.scatter(samples, reference: reference, size: 384, title: title + what) }
    let all = try! Tensor(shape: [samples.rows + exact.rows, d], storage: samples.storage + exact.storage)
    let bounds = fittedBounds(all)
    return Plot.sideBySide([
        Plot.scatter(samples, reference: reference, size: 384, bounds: bounds, title: title + what),
        Plot.scatter(exact, reference: reference, size: 384, bounds: bounds, title: "exact posterior" + what),
    ])
}

/// Equal-aspect bounds around the first two coordinates of `x`, with a 10% margin.
private func fittedBounds(_ x: Tensor) -> Plot.Bounds? {
    let d = x.rowSize
    guard d >= 2 else { return nil }
    var (x0, x1, y0, y1) = (Double.infinity, -Double.infinity, Double.infinity, -Double.infinity)
    for r in 0 ..< x.rows {
        let a = x.storage[r * d], b = x.storage[r * d + 1]
        guard a.isFinite, b.isFinite else { continue }
        x0 = min(x0, a); x1 = max(x1, a); y0 = min(y0, b); y1 = max(y1, b)
    }
    guard x0 <= x1, y0 <= y1 else { return nil }
    let half = max(x1 - x0, y1 - y0, 1e-3) * 0.55, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2
    return (cx - half, cx + half, cy - half, cy + half)
}

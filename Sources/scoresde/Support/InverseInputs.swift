import Foundation
import ScoreSDE
import ScoreSDEPlot

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
    /// images, random held-out photograph patches (``ImagePatches.Split.heldOut``) for 8x8 RGB, the
    /// first Fashion-MNIST test images for 28x28 grey, exact samples of a mixture. Nil when the
    /// model has no such data (the caller asks for `--data`). Drawn from a source independent of
    /// the sampler's (seeded with the same `seed`).
    func demoInputs(count: Int, seed: UInt64) throws -> (inputs: Tensor, description: String)? {
        var rng = RandomSource(seed: seed).derived(0xDA7A)
        switch source {
        case .mixture(let m):
            return (m.sample(count: count, using: &rng), "\(count) exact sample\(count == 1 ? "" : "s") of \(name) (seed \(seed))")
        case .learned:
            if let layout = imageLayout, layout.channels == 1, layout.height == FashionMNIST.side, layout.width == FashionMNIST.side {
                // Evaluation inputs: the test split (the training split is the model's own data).
                let test = try FashionMNIST.testSplitForEvaluation()
                let n = min(count, test.images.rows)
                return (try test.images.rows(0 ..< n).reshaped([n] + rowShape), "the first \(n) Fashion-MNIST test images")
            }
            guard let layout = imageLayout, layout.height == 8, layout.width == 8 else { return nil }
            if layout.channels == 1 {
                let held = try Digits.load(split: .heldOut)
                let n = min(count, held.images.rows)
                return (try held.images.rows(0 ..< n).reshaped([n] + rowShape), "the first \(n) held-out digits")
            }
            return (try ImagePatches.random(count: count, split: .heldOut, using: &rng).reshaped([count] + rowShape),
                    "\(count) random held-out photograph patches (right quarter; seed \(seed))")
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

/// A figure of conditional samples of an image model, in the column order every inverse-problem
/// command shares: what the sampler sees (`observed`, unknown values hatched) | the `k` samples
/// of each input | the original (when known). One row per input, at most `maxRows`.
/// The column headers ``conditionalTable(observed:samples:perInput:original:model:title:maxRows:)``
/// draws, left to right: what was observed, the samples, and the original when it is known. The
/// commands write them to their stats (`figure_columns`) and their help names them in this order.
func conditionalTableHeaders(observed: String, perInput k: Int, hasOriginal: Bool) -> [String] {
    ["\(observed)", "samples (\(k) per input)"] + (hasOriginal ? ["original"] : [])
}

func conditionalTable(observed: Plot.ImageColumn, samples: Tensor, perInput k: Int, original: Tensor?,
                      model: DataModel, title: String, maxRows: Int = 16) throws -> RasterImage {
    let inputs = samples.rows / k, shown = min(inputs, maxRows)
    guard let layout = model.imageLayout else { throw ScoreSDEError.invalidArgument("not an image model") }
    let shape = [layout.channels, layout.height, layout.width]
    func first(_ t: Tensor, _ rows: Int) throws -> Tensor { try t.rows(0 ..< rows).reshaped([rows] + shape) }
    var observed = observed
    observed.images = try first(observed.images, shown)
    if let u = observed.unknown, u.rows > 1 { observed.unknown = try first(u, shown) }
    let titles = conditionalTableHeaders(observed: observed.header, perInput: k, hasOriginal: original != nil)
    var columns = [observed, Plot.ImageColumn(titles[1], try first(samples, shown * k), perRow: k)]
    if let original { columns.append(Plot.ImageColumn(titles[2], try first(original, shown))) }
    let table = try Plot.imageTable(columns, range: model.imageRange, scale: SampleFigure.imageScale(shape))
    let more = inputs > shown ? " (first \(shown) of \(inputs) inputs)" : ""
    return Plot.titled(table, title + more)
}

/// What a conditional scatter plot of a mixture model marks besides the samples.
struct ConditionalMarks {
    /// The coordinates drawn on x and y (0-based).
    var coordinates: (Int, Int) = (0, 1)
    /// The true input, when known (a full row).
    var truth: [Double]?
    /// The line the measurement leaves possible in the plotted coordinates: a·x + b·y = c.
    var line: (a: Double, b: Double, c: Double, label: String)?
}

/// A figure of conditional samples of a mixture model for the first input: its samples (left) and
/// as many exact posterior samples (right), both over the exact posterior density (green), with
/// the true input, the measured line and the mixture means, in the coordinates `marks` names.
/// Below: how the samples compare with the exact posterior, and a warning when they miss it.
func conditionalScatter(samples: Tensor, perInput k: Int, comparison: PosteriorComparison?, model: DataModel,
                        marks: ConditionalMarks, method: ConditioningMethod, title: String) -> RasterImage {
    let d = samples.rowSize, (i, j) = marks.coordinates, inputs = samples.rows / k
    func pick(_ t: Tensor) -> Tensor {
        let rows = min(t.rows, k)
        var out = [Double]()
        for r in 0 ..< rows { out.append(t.storage[r * d + i]); out.append(d > 1 ? t.storage[r * d + j] : 0) }
        return try! Tensor(shape: [rows, 2], storage: out)
    }
    let reference = model.referencePoints.flatMap { $0.rowSize == d ? pick($0) : nil }
    var overlays = [Plot.Overlay]()
    if let posterior = comparison?.posteriors.first, d > 1, let marginal = try? posterior.marginal([i, j]) {
        overlays.append(.density(marginal, label: "exact posterior density"))
    }
    if let line = marks.line { overlays.append(.line(a: line.a, b: line.b, c: line.c, label: line.label)) }
    if let truth = marks.truth, let t = try? Tensor(shape: [1, d], storage: truth) { overlays.append(.points(pick(t), label: "true input")) }
    let (xLabel, yLabel) = ("x\(i + 1)", d > 1 ? "x\(j + 1)" : "")
    let what = d == 2 ? "" : " (coordinates \(i + 1) and \(j + 1) of \(d))"
    let which = inputs > 1 ? "input 1 of \(inputs): " : ""
    let mine = pick(samples)
    var all = [Double](mine.storage)
    if let exact = comparison?.exactSamples { all += pick(exact).storage }
    if let reference { all += reference.storage }
    if let truth = marks.truth { all += [truth[i], d > 1 ? truth[j] : 0] }
    let bounds = Plot.bounds(fitting: try! Tensor(shape: [all.count / 2, 2], storage: all))
    var panels = [Plot.scatter(mine, reference: reference, size: 420, bounds: bounds, title: "\(which)\(method.rawValue) samples\(what)",
                               xLabel: xLabel, yLabel: yLabel, pointsLabel: "samples (\(mine.rows))", overlays: overlays)]
    if let exact = comparison?.exactSamples {
        panels.append(Plot.scatter(pick(exact), reference: reference, size: 420, bounds: bounds, title: "\(which)exact posterior samples\(what)",
                                   xLabel: xLabel, yLabel: yLabel, pointsLabel: "exact samples (\(mine.rows))", overlays: overlays))
    }
    var figure = Plot.titled(Plot.sideBySide(panels, padding: 24, alignment: .bottom), title)
    if let comparison, let first = comparison.inputs.first {
        var note = "Mode-weight TV to the exact posterior: \(String(format: "%.3f", first.modeWeightTV)) (exact samples of the same size: \(String(format: "%.3f", first.modeWeightTVFloor)))."
        if first.modeWeightTV > max(0.1, 3 * first.modeWeightTVFloor) {
            note += " These \(method.rawValue) samples put mass where the exact posterior (shaded) has little or none"
                + (method == .tweedie ? "." : "; --method tweedie or repaint follow it more closely here.")
        }
        figure = Plot.noted(figure, note)
    }
    return figure
}

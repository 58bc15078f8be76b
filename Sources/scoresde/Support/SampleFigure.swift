import ScoreSDE
import ScoreSDEPlot

/// A picture of samples: image-shaped rows (`[H, W]`, `[1, H, W]`, `[3, H, W]`) as an image grid
/// next to a grid of real data (held-out digits, photograph patches), anything else as a scatter
/// plot of the first two coordinates over the model's exact density (mixtures), under a title.
enum SampleFigure {
    /// Most images shown in a grid.
    static let maxImages = 64
    /// Upscaling of image samples: an 8x8 image is drawn 64 pixels wide, a 28x28 one 56.
    static func imageScale(_ rowShape: [Int]) -> Int { max(2, 64 / max(rowShape.last ?? 8, 1)) }

    /// Whether samples of this shape are drawn as images: `[H, W]`, `[1, H, W]` or `[3, H, W]`.
    static func isImage(_ rowShape: [Int]) -> Bool {
        rowShape.count == 2 || (rowShape.count == 3 && (rowShape[0] == 1 || rowShape[0] == 3))
    }

    static func render(_ samples: Tensor, model: DataModel, title: String) throws -> RasterImage {
        if isImage(samples.rowShape) {
            let shown = samples.rows(0 ..< min(samples.rows, maxImages))
            let columns = Int(Double(shown.rows).squareRoot().rounded(.up))
            var panels = [Plot.titled(try Plot.imageGrid(shown, range: model.imageRange, columns: columns, scale: imageScale(samples.rowShape)),
                                      "samples (\(shown.rows) of \(samples.rows))")]
            if let data = try? model.demoInputs(count: shown.rows, seed: 0), data.inputs.rows > 0 {
                let images = try data.inputs.reshaped([data.inputs.rows] + samples.rowShape)
                panels.append(Plot.titled(try Plot.imageGrid(images, range: model.imageRange, columns: columns, scale: imageScale(samples.rowShape)),
                                          "real data: \(data.description)"))
            }
            return Plot.titled(Plot.sideBySide(panels, padding: 24, alignment: .bottom), title)
        }
        let d = samples.rowSize
        let flat = try samples.reshaped([samples.rows, d])
        let reference = model.referencePoints.flatMap { ref in ref.rowSize == d ? ref : nil }
        var overlays = [Plot.Overlay]()
        if case .mixture(let m) = model.source, d >= 2, let marginal = try? FullCovarianceMixture(m).marginal([0, 1]) {
            overlays.append(.density(marginal, label: "model density (exact)"))
        }
        let what = d == 2 ? "" : d == 1 ? " (1-D, drawn at y = 0)" : " (coordinates 1-2 of \(d))"
        return Plot.scatter(flat, reference: reference, title: title + what, xLabel: "x1", yLabel: d == 1 ? "" : "x2",
                            pointsLabel: "samples (\(samples.rows))", overlays: overlays)
    }
}

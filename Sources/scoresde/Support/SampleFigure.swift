import ScoreSDE

/// A picture of samples: image-shaped rows (`[H, W]`, `[1, H, W]`, `[3, H, W]`) as an image grid,
/// anything else as a scatter plot of the first two coordinates with the model's reference points
/// (the mixture means), under a title.
enum SampleFigure {
    /// Most images shown in a grid.
    static let maxImages = 64

    /// Whether samples of this shape are drawn as images: `[H, W]`, `[1, H, W]` or `[3, H, W]`.
    static func isImage(_ rowShape: [Int]) -> Bool {
        rowShape.count == 2 || (rowShape.count == 3 && (rowShape[0] == 1 || rowShape[0] == 3))
    }

    static func render(_ samples: Tensor, model: DataModel, title: String) throws -> RasterImage {
        if isImage(samples.rowShape) {
            let shown = samples.rows(0 ..< min(samples.rows, maxImages))
            let grid = try Plot.imageGrid(shown, range: model.imageRange)
            return Plot.titled(grid, title)
        }
        let d = samples.rowSize
        let flat = try samples.reshaped([samples.rows, d])
        let reference = model.referencePoints.flatMap { ref in ref.rowSize == d ? ref : nil }
        let what = d == 2 ? "" : d == 1 ? " (1-D, drawn at y = 0)" : " (coordinates 1-2 of \(d))"
        return Plot.scatter(flat, reference: reference, title: title + what)
    }
}

import Foundation

/// The image inverse problems a model is evaluated on, each with the simple baseline it must beat
/// (issue 22's protocol; DPS, ΠGDM and RePaint report the same tasks): inpainting of a centre
/// square, of the right half, of a random half of the pixels, and 2× super-resolution by
/// block averaging.
///
///     let task = ImageInverseTask.centreSquare
///     let setup = try task.setup(truth: testImages, imageShape: [1, 28, 28], seed: 0)   // data space
///     let baseline = try setup.baseline(training: trainImages)          // nearest visible / bicubic
///     let score = try ReconstructionScore(estimates: baseline, truth: testImages, pixels: setup.scoredPixels, peak: 255)
///
/// Images are rows `[C, H, W]` in data space (pixel levels). Errors are measured where the task
/// hides information: the unknown pixels for inpainting, every pixel for super-resolution.
public enum ImageInverseTask: String, CaseIterable, Sendable {
    /// The centre `H/2 × W/2` square unknown (14 × 14 of a 28 × 28 image).
    case centreSquare = "centre-square"
    /// The right half unknown.
    case rightHalf = "right-half"
    /// A random half of the pixels unknown (one mask for every image, drawn from the seed).
    case randomHalf = "random-half"
    /// `y = A x`, `A` the 2 × 2 block average (``SuperResolution``).
    case superResolution2x = "super-resolution-2x"

    /// What a task observes of a set of images, and how it is scored.
    public struct Setup: Sendable {
        public let task: ImageInverseTask
        /// The images observed (data space), one per row.
        public let truth: Tensor
        /// Inpainting: 1 where a pixel is known, shape `[1, C, H, W]`; `nil` for super-resolution.
        public let mask: Tensor?
        /// Super-resolution: the block averages `[n, C, H/2, W/2]` (data space); `nil` for inpainting.
        public let lowResolution: Tensor?
        /// The pixel indices (within a row) the error is measured on.
        public let scoredPixels: [Int]

        /// The task's simple baseline: for inpainting the training image nearest on the known
        /// pixels, its values copied into the unknown ones; for super-resolution bicubic
        /// up-sampling (``SuperResolution/bicubicUpsample(_:factor:)``).
        public func baseline(training: Tensor) throws -> Tensor {
            if let low = lowResolution { return try SuperResolution.bicubicUpsample(low, factor: 2) }
            guard let mask else { throw ScoreSDEError.invalidArgument("an inpainting setup needs a mask") }
            let known = mask.storage.indices.filter { mask.storage[$0] == 1 }
            let nearest = try NearestOnPixels.indices(of: truth, in: training, pixels: known)
            var out = truth
            let d = truth.rowSize
            for r in 0 ..< truth.rows {
                for p in scoredPixels { out.storage[r * d + p] = training.storage[nearest[r] * d + p] }
            }
            return out
        }

        /// The linear measurement of the model-space images (`scaling` maps data to model space),
        /// one observation row per sample when each image is repeated `samplesPerImage` times —
        /// what ``MeasurementGuidedScore`` and ``LinearMeasurementConstraint`` take.
        public func measurement(scaling: DataScaling, samplesPerImage k: Int) throws -> LinearMeasurement {
            let model = scaling.toModel(truth)
            if lowResolution != nil {
                let y = try SuperResolution.blockAverage(model, factor: 2)
                return try SuperResolution.measurement(imageShape: truth.rowShape, factor: 2, observation: try y.repeatingRows(k))
            }
            return try inpainting(scaling: scaling, samplesPerImage: k).measurement()
        }

        /// Inpainting as a sampling constraint on model-space images, each image repeated `k` times.
        public func inpainting(scaling: DataScaling, samplesPerImage k: Int) throws -> Inpainting {
            guard let mask else { throw ScoreSDEError.invalidArgument("\(task.rawValue) is not an inpainting task") }
            return try Inpainting(observation: try scaling.toModel(truth).repeatingRows(k), mask: mask.reshaped([1, truth.rowSize]))
        }
    }

    /// The setup of this task for `truth` (rows of `imageShape`, data space); `seed` draws the random mask.
    ///
    /// - Throws: `shapeMismatch` unless the rows are `[C, H, W]` with even `H`, `W`.
    public func setup(truth: Tensor, imageShape: [Int], seed: UInt64 = 0) throws -> Setup {
        guard imageShape.count == 3, imageShape[1] % 2 == 0, imageShape[2] % 2 == 0, truth.rowSize == imageShape.reduce(1, *) else {
            throw ScoreSDEError.shapeMismatch("the inverse-problem tasks take [C, H, W] images with even H and W (got rows of \(truth.rowSize) values for a shape \(imageShape))")
        }
        let x = try truth.reshaped([truth.rows] + imageShape)
        let (c, h, w) = (imageShape[0], imageShape[1], imageShape[2])
        let plane = h * w
        if self == .superResolution2x {
            return Setup(task: self, truth: x, mask: nil, lowResolution: try SuperResolution.blockAverage(x, factor: 2),
                         scoredPixels: Array(0 ..< c * plane))
        }
        var known = [Double](repeating: 1, count: plane)
        switch self {
        case .centreSquare:
            for i in h / 4 ..< h / 4 + h / 2 { for j in w / 4 ..< w / 4 + w / 2 { known[i * w + j] = 0 } }
        case .rightHalf:
            for i in 0 ..< h { for j in w / 2 ..< w { known[i * w + j] = 0 } }
        case .randomHalf:
            // A seeded random permutation: exactly half of the pixels unknown.
            var rng = RandomSource(seed: seed).derived(0x4D41_534B)
            var stream = rng.stream(draw: rng.nextDraw(), row: 0)
            var order = Array(0 ..< plane)
            for i in stride(from: plane - 1, to: 0, by: -1) {
                let j = Int(stream.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
            for p in order.prefix(plane / 2) { known[p] = 0 }
        case .superResolution2x: break
        }
        var mask = [Double]()
        for _ in 0 ..< c { mask += known }
        let scored = mask.indices.filter { mask[$0] == 0 }
        return Setup(task: self, truth: x, mask: try Tensor(shape: [1] + imageShape, storage: mask), lowResolution: nil, scoredPixels: scored)
    }
}

/// Root-mean-square error and PSNR of reconstructions, per image then averaged, with standard
/// errors over images (the images are the independent units).
public struct ReconstructionScore: Sendable, Equatable {
    /// Mean over images of each image's RMSE over the scored pixels (data units).
    public let rmse: Double
    public let rmseStandardError: Double
    /// Mean over images of `20 log₁₀(peak / RMSE)` (dB).
    public let psnr: Double
    public let psnrStandardError: Double
    public let images: Int

    /// - Throws: `shapeMismatch` unless estimates and truth have the same shape; `invalidArgument`
    ///   for no pixels or images.
    public init(estimates: Tensor, truth: Tensor, pixels: [Int], peak: Double = 255) throws {
        guard estimates.shape == truth.shape else {
            throw ScoreSDEError.shapeMismatch("estimates \(estimates.shape) and truth \(truth.shape) differ in shape")
        }
        try requireParameter(!pixels.isEmpty && truth.rows >= 1, "a reconstruction score needs pixels and images")
        let d = truth.rowSize
        var rmses = [Double](), psnrs = [Double]()
        for r in 0 ..< truth.rows {
            var s = 0.0
            for p in pixels { let e = estimates.storage[r * d + p] - truth.storage[r * d + p]; s += e * e }
            let v = (s / Double(pixels.count)).squareRoot()
            rmses.append(v)
            psnrs.append(20 * Foundation.log10(peak / Swift.max(v, 1e-12)))
        }
        func meanAndError(_ v: [Double]) -> (Double, Double) {
            let n = Double(v.count), m = v.reduce(0, +) / n
            guard v.count > 1 else { return (m, .nan) }
            return (m, (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1) / n).squareRoot())
        }
        (rmse, rmseStandardError) = meanAndError(rmses)
        (psnr, psnrStandardError) = meanAndError(psnrs)
        images = truth.rows
    }

    /// The mean of `k` consecutive samples per image (rows `i·k ..< (i+1)·k`): the posterior-mean
    /// estimate to score against a baseline.
    public static func meanOfSamples(_ samples: Tensor, perImage k: Int) throws -> Tensor {
        try requireParameter(k >= 1 && samples.rows % k == 0, "the samples (\(samples.rows) rows) are not a multiple of \(k) per image")
        let n = samples.rows / k, d = samples.rowSize
        var out = Tensor(zeros: [n] + samples.rowShape)
        for i in 0 ..< n { for q in 0 ..< k { for j in 0 ..< d { out.storage[i * d + j] += samples.storage[(i * k + q) * d + j] / Double(k) } } }
        return out
    }
}

/// The training row nearest to each query row on a subset of pixels (squared L2, ties to the lower index).
enum NearestOnPixels {
    static func indices(of queries: Tensor, in reference: Tensor, pixels: [Int]) throws -> [Int] {
        guard queries.rowSize == reference.rowSize else {
            throw ScoreSDEError.shapeMismatch("queries have rows of \(queries.rowSize) values, the reference \(reference.rowSize)")
        }
        guard reference.rows >= 1 else { throw ScoreSDEError.invalidArgument("no reference rows") }
        let d = queries.rowSize
        return (0 ..< queries.rows).map { r in
            var best = 0, bestD = Double.infinity
            for q in 0 ..< reference.rows {
                var s = 0.0
                for p in pixels { let e = reference.storage[q * d + p] - queries.storage[r * d + p]; s += e * e }
                if s < bestD { bestD = s; best = q }
            }
            return best
        }
    }
}

extension Tensor {
    /// Every row repeated `k` times in place: rows `r, r, …, r` (k times), then `r + 1`, ….
    func repeatingRows(_ k: Int) throws -> Tensor {
        var storage = [Double]()
        storage.reserveCapacity(self.storage.count * k)
        for r in 0 ..< rows { let row = self.row(r); for _ in 0 ..< k { storage += row } }
        return try Tensor(shape: [rows * k] + rowShape, storage: storage)
    }
}

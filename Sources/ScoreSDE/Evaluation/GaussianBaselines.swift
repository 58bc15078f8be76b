import Foundation

/// Gaussian density baselines for 8-bit images in logit space: the floor a generative model's
/// bits/dim should beat and the "far from the data" end of sample-quality scales. Three kinds,
/// each fitted by maximum likelihood (means; unbiased covariances, `n − 1`) to uniformly
/// dequantized training pixels mapped through ``LogitPixelTransform``:
///
/// - ``Kind/independentPixels``: one Gaussian per pixel (a diagonal covariance);
/// - ``Kind/fullCovariance``: one Gaussian with a full `D × D` covariance;
/// - ``Kind/classWise``: one full-covariance Gaussian per class, mixed with the classes' shares of
///   the training labels as weights, `p(z) = Σ_k π_k N(z; μ_k, Σ_k)` (the label is not used at
///   evaluation).
///
/// On Fashion-MNIST (fitted to the 60 000 training images, one dequantization draw; λ = 1e-6;
/// evaluated on the 10 000 test images) they give 5.309, 4.231 and 4.006 bits/dim, with a spread of
/// about 0.0005 between dequantization seeds: issue 22's 5.31, 4.23 and 4.00 (the class-wise
/// figure lands just above the rounding interval of 4.00; the tests hold all three to the stated
/// figures within their rounding plus 3 spreads).
///
///     var rng = RandomSource(seed: 0)
///     let train = try FashionMNIST.trainingSplit(), test = try FashionMNIST.testSplitForEvaluation()
///     let t = try LogitPixelTransform(lambda: 1e-6, levels: 256)
///     let mixture = try LogitGaussianBaseline.fit(.classWise, toLevels: train.images, labels: train.labels,
///                                                 transform: t, using: &rng)
///     let bits = try mixture.bitsPerDim(ofLevels: test.images, draws: 1, using: &rng)   // bits.mean ≈ 4.01
///     let images = try mixture.sample(classes: [3, 3, 7], seed: 1)       // pixel levels 0...255
///
/// Covariances are factored by LAPACK's Cholesky (`dpotrf`); a covariance that is not positive
/// definite (fewer images than pixels, or constant pixels without dequantization) throws
/// ``ScoreSDEError/notPositiveDefinite(_:)``, and `ridge` adds to the diagonal to fix it.
public struct LogitGaussianBaseline: Sendable {
    /// The three baselines.
    public enum Kind: String, Sendable, CaseIterable {
        /// Independent pixels: a diagonal covariance.
        case independentPixels = "independent-pixels"
        /// One Gaussian with a full covariance.
        case fullCovariance = "full-covariance"
        /// One full-covariance Gaussian per class, mixed by the classes' training shares.
        case classWise = "class-wise"

        /// A phrase for tables: "independent pixels", "one full-covariance Gaussian", ...
        public var label: String {
            switch self {
            case .independentPixels: return "independent pixels"
            case .fullCovariance: return "one full-covariance Gaussian"
            case .classWise: return "one full-covariance Gaussian per class"
            }
        }
    }

    /// One Gaussian of the model, in logit space.
    public struct Component: Sendable {
        /// Its mixture weight `π_k` (1 for a single Gaussian).
        public let weight: Double
        /// The class it was fitted to (``Kind/classWise``), else nil.
        public let label: Int?
        /// Its mean, `D` logits.
        public let mean: [Double]
        /// Diagonal: the `D` standard deviations. Full: the lower Cholesky factor, row-major `D × D`.
        let factor: [Double]
        /// `Σ log L_ii` (`½ log det Σ`).
        let halfLogDeterminant: Double
        /// The number of training images it was fitted to.
        public let count: Int
    }

    /// Which baseline.
    public let kind: Kind
    /// The map from dequantized pixels to logits.
    public let transform: LogitPixelTransform
    /// The shape of one image (e.g. `[1, 28, 28]`).
    public let rowShape: [Int]
    /// The Gaussians (one, or one per class in ascending label order).
    public let components: [Component]
    /// The ridge added to every covariance's diagonal.
    public let ridge: Double

    /// The number `D` of pixels.
    public var dimension: Int { rowShape.reduce(1, *) }

    /// Fits `kind` to integer pixel levels `0 ... L−1` (`L` = `transform.levels`), dequantized with
    /// one draw of `rng` (``UniformDequantization/sample(levels:topLevel:using:)``).
    ///
    /// - Parameters:
    ///   - kind: which baseline.
    ///   - images: the training images, integer levels, rows of `D` pixels (any row shape).
    ///   - labels: one class label `≥ 0` per image; required for ``Kind/classWise`` (ignored otherwise).
    ///   - transform: the logit transform (its `levels` is `L`).
    ///   - ridge: added to each covariance's diagonal (logit units²; 0 for the plain fit).
    ///   - rng: the dequantization noise (one draw).
    /// - Throws: `invalidArgument` for non-integer or out-of-range levels, missing or mismatched
    ///   labels, a negative ridge; ``ScoreSDEError/notPositiveDefinite(_:)`` for a singular covariance.
    public static func fit(_ kind: Kind, toLevels images: Tensor, labels: [Int]? = nil, transform: LogitPixelTransform,
                           ridge: Double = 0, using rng: inout RandomSource) throws -> LogitGaussianBaseline {
        let v = try UniformDequantization.sample(levels: images, topLevel: transform.levels - 1, using: &rng)
        let (z, _) = try transform.logits(ofDequantized: v)
        return try LogitGaussianBaseline(kind, fittedToLogits: z, labels: labels, transform: transform, ridge: ridge)
    }

    /// Fits `kind` to logits already computed (``LogitPixelTransform/logits(ofDequantized:)`` of
    /// dequantized training images), so several kinds can share one dequantization.
    ///
    /// - Throws: as ``fit(_:toLevels:labels:transform:ridge:using:)``; `nonFinite` for non-finite logits.
    public init(_ kind: Kind, fittedToLogits z: Tensor, labels: [Int]? = nil, transform: LogitPixelTransform, ridge: Double = 0) throws {
        guard ridge >= 0, ridge.isFinite else {
            throw ScoreSDEError.invalid("ridge", ridge, must: "finite and >= 0 (the covariance ridge)")
        }
        let n = z.rows, d = z.rowSize
        guard n >= 2 else { throw ScoreSDEError.shapeMismatch("a Gaussian baseline needs >= 2 images to fit (got \(n))") }
        try z.checkFinite("the logits to fit")
        self.kind = kind; self.transform = transform; self.rowShape = z.rowShape; self.ridge = ridge
        let advice = "Fit to more images than the \(d) pixels (the covariance of n images has rank <= n - 1), or add a ridge > 0 to the diagonal."
        switch kind {
        case .independentPixels:
            components = [Self.diagonal(z, ridge: ridge, weight: 1, label: nil)]
        case .fullCovariance:
            components = [try Self.full(z, ridge: ridge, weight: 1, label: nil, what: "the covariance of the logits", advice: advice)]
        case .classWise:
            guard let labels else {
                throw ScoreSDEError.invalidArgument("the class-wise baseline needs one class label per training image; pass labels")
            }
            guard labels.count == n else {
                throw ScoreSDEError.shapeMismatch("the class-wise baseline needs one label per image: \(labels.count) labels for \(n) images")
            }
            if let bad = labels.firstIndex(where: { $0 < 0 }) {
                throw ScoreSDEError.invalidArgument("class labels must be >= 0; label \(bad) is \(labels[bad])")
            }
            var rowsOf = [Int: [Int]]()
            for (r, c) in labels.enumerated() { rowsOf[c, default: []].append(r) }
            components = try rowsOf.keys.sorted().map { c in
                let rows = rowsOf[c]!
                guard rows.count >= 2 else {
                    throw ScoreSDEError.invalidArgument("class \(c) has \(rows.count) training image; a class-wise Gaussian needs >= 2 (and more than \(d) without a ridge)")
                }
                let zc = z.gatherRows(rows)
                return try Self.full(zc, ridge: ridge, weight: Double(rows.count) / Double(n), label: c,
                                     what: "the covariance of class \(c)'s logits", advice: advice)
            }
        }
    }

    private static func diagonal(_ z: Tensor, ridge: Double, weight: Double, label: Int?) -> Component {
        let n = z.rows, d = z.rowSize
        var mean = [Double](repeating: 0, count: d), m2 = [Double](repeating: 0, count: d)
        z.storage.withUnsafeBufferPointer { p in
            for r in 0 ..< n { for j in 0 ..< d { mean[j] += p[r * d + j] } }
            for j in 0 ..< d { mean[j] /= Double(n) }
            for r in 0 ..< n { for j in 0 ..< d { let e = p[r * d + j] - mean[j]; m2[j] += e * e } }
        }
        let sd = m2.map { ($0 / Double(n - 1) + ridge).squareRoot() }
        return Component(weight: weight, label: label, mean: mean, factor: sd,
                         halfLogDeterminant: sd.reduce(0) { $0 + Foundation.log($1) }, count: n)
    }

    private static func full(_ z: Tensor, ridge: Double, weight: Double, label: Int?, what: String, advice: String) throws -> Component {
        let d = z.rowSize
        let moments = try SampleMoments(of: z)
        var cov = moments.covariance
        if ridge > 0 { for i in 0 ..< d { cov[i * d + i] += ridge } }
        let l = try LAPACK.cholesky(cov, d, what: what, advice: advice)
        var half = 0.0
        for i in 0 ..< d { half += Foundation.log(l[i * d + i]) }
        return Component(weight: weight, label: label, mean: moments.mean, factor: l, halfLogDeterminant: half, count: z.rows)
    }

    // MARK: - Densities

    /// `log p(v)` in nats per row, for dequantized pixel values `v ∈ [0, L)` (rows of `D` values):
    /// the logit-space density times the transform's Jacobian, in pixel-level units.
    ///
    /// - Throws: `shapeMismatch` for rows of another size; `invalidArgument` for values outside `[0, L)`.
    public func logDensity(ofDequantized v: Tensor) throws -> [Double] {
        guard v.rowSize == dimension else {
            throw ScoreSDEError.shapeMismatch("the baseline was fitted to rows of \(dimension) pixels; got rows of \(v.rowSize)")
        }
        let (z, logJacobian) = try transform.logits(ofDequantized: v)
        let logs = componentLogDensities(z)
        return (0 ..< v.rows).map { r in
            var m = -Double.infinity
            for k in components.indices { m = Swift.max(m, logs[k][r] + Foundation.log(components[k].weight)) }
            var s = 0.0
            for k in components.indices { s += Foundation.exp(logs[k][r] + Foundation.log(components[k].weight) - m) }
            return m + Foundation.log(s) + logJacobian[r]
        }
    }

    /// `log N(z; μ_k, Σ_k)` for every component `k` and row of `z`, in row blocks (bounded memory).
    private func componentLogDensities(_ z: Tensor) -> [[Double]] {
        let n = z.rows, d = dimension
        let constant = -0.5 * Double(d) * Foundation.log(2 * Double.pi)
        let block = 2048
        return components.map { c in
            var out = [Double](repeating: 0, count: n)
            var r = [Double](repeating: 0, count: Swift.min(block, n) * d)
            for start in stride(from: 0, to: n, by: block) {
                let rows = Swift.min(block, n - start)
                z.storage.withUnsafeBufferPointer { zp in
                    for i in 0 ..< rows { for j in 0 ..< d { r[i * d + j] = zp[(start + i) * d + j] - c.mean[j] } }
                }
                if kind == .independentPixels {
                    for i in 0 ..< rows { for j in 0 ..< d { r[i * d + j] /= c.factor[j] } }
                } else {
                    r.withUnsafeMutableBufferPointer { LAPACK.solveLower(c.factor, d, rows: rows, $0.baseAddress!) }
                }
                for i in 0 ..< rows {
                    var q = 0.0
                    for j in 0 ..< d { q += r[i * d + j] * r[i * d + j] }
                    out[start + i] = constant - c.halfLogDeterminant - 0.5 * q
                }
            }
            return out
        }
    }

    /// Test bits per pixel of integer pixel levels: `−log₂ p(k + u) / D` per image, averaged over
    /// `draws` uniform dequantizations (one draw of `rng` each); uniform guessing scores `log₂ L`.
    ///
    /// - Throws: `invalidParameter` for `draws < 1` or values that are not levels `0 ... L−1`;
    ///   `shapeMismatch` for rows of another size.
    public func bitsPerDim(ofLevels images: Tensor, draws: Int = 1, using rng: inout RandomSource) throws -> BaselineBitsPerDim {
        guard draws >= 1 else { throw ScoreSDEError.invalid("draws", draws, must: ">= 1") }
        guard images.rowSize == dimension else {
            throw ScoreSDEError.shapeMismatch("the baseline was fitted to rows of \(dimension) pixels; got rows of \(images.rowSize)")
        }
        let scale = -1 / (Double(dimension) * Foundation.log(2.0))
        var perImage = [Double](repeating: 0, count: images.rows), drawMeans = [Double]()
        for _ in 0 ..< draws {
            let v = try UniformDequantization.sample(levels: images, topLevel: transform.levels - 1, using: &rng)
            let bits = try logDensity(ofDequantized: v).map { $0 * scale }
            for i in bits.indices { perImage[i] += bits[i] / Double(draws) }
            drawMeans.append(bits.reduce(0, +) / Double(bits.count))
        }
        return BaselineBitsPerDim(bitsPerDim: perImage, drawMeans: drawMeans)
    }

    // MARK: - Sampling

    /// `count` images drawn from the model as integer pixel levels `0 ... L−1`, shape
    /// `[count] + rowShape`: `z ~ p(z)` (for the mixture, a component by its weight first), then
    /// ``LogitPixelTransform/levels(fromLogits:)`` (the inverse of dequantization: `⌊v⌋`, clamped).
    /// The same seed gives the same images.
    public func sample(count: Int, seed: UInt64) throws -> Tensor {
        guard count >= 1 else { throw ScoreSDEError.invalid("count", count, must: ">= 1 (the sample count)") }
        var rng = RandomSource(seed: seed)
        let choice = rng.nextDraw()
        var cumulative = [Double](), acc = 0.0
        for c in components { acc += c.weight; cumulative.append(acc) }
        let which = (0 ..< count).map { r -> Int in
            var s = rng.stream(draw: choice, row: r)
            let u = Double(s.next() >> 11) * 0x1p-53 * acc
            return cumulative.firstIndex(where: { u < $0 }) ?? (components.count - 1)
        }
        return sampled(components: which, using: &rng)
    }

    /// One image of each class in `classes` (in that order), as integer pixel levels; only the
    /// class-wise baseline has classes.
    ///
    /// - Throws: `invalidArgument` for another kind, an empty list, or a class without a component.
    public func sample(classes: [Int], seed: UInt64) throws -> Tensor {
        guard kind == .classWise else {
            throw ScoreSDEError.invalidArgument("the \(kind.label) baseline has no classes; sample it with sample(count:seed:)")
        }
        guard !classes.isEmpty else { throw ScoreSDEError.invalid("classes", classes, must: "non-empty", advice: "give at least one class to sample") }
        var index = [Int: Int]()
        for (k, c) in components.enumerated() { if let l = c.label { index[l] = k } }
        let which = try classes.map { c -> Int in
            guard let k = index[c] else {
                throw ScoreSDEError.invalid("classes", c, must: "a class with a Gaussian: the baseline was fitted to classes \(index.keys.sorted().map(String.init).joined(separator: ", "))")
            }
            return k
        }
        var rng = RandomSource(seed: seed)
        _ = rng.nextDraw()   // the component draw of sample(count:seed:), unused here
        return sampled(components: which, using: &rng)
    }

    /// `z = μ_k + L_k ε` for row `r` of component `which[r]` (`ε` one draw of `rng`), as levels.
    private func sampled(components which: [Int], using rng: inout RandomSource) -> Tensor {
        let n = which.count, d = dimension
        var z = Tensor.standardNormal(shape: [n, d], using: &rng)
        var rowsOf = [[Int]](repeating: [], count: components.count)
        for (r, k) in which.enumerated() { rowsOf[k].append(r) }
        for (k, rows) in rowsOf.enumerated() where !rows.isEmpty {
            let c = components[k]
            if kind == .independentPixels {
                for r in rows { for j in 0 ..< d { z.storage[r * d + j] = c.mean[j] + c.factor[j] * z.storage[r * d + j] } }
                continue
            }
            let eps = z.gatherRows(rows)
            var out = [Double](repeating: 0, count: rows.count * d)
            eps.storage.withUnsafeBufferPointer { e in
                c.factor.withUnsafeBufferPointer { l in
                    out.withUnsafeMutableBufferPointer { o in
                        BLAS.gemm(transB: true, m: rows.count, n: d, k: d, a: e.baseAddress!, lda: d,
                                  b: l.baseAddress!, ldb: d, c: o.baseAddress!, ldc: d)   // ε Lᵀ
                    }
                }
            }
            for (i, r) in rows.enumerated() { for j in 0 ..< d { z.storage[r * d + j] = c.mean[j] + out[i * d + j] } }
        }
        let levels = transform.levels(fromLogits: z)
        return Tensor(uncheckedShape: [n] + rowShape, storage: levels.storage)
    }
}

/// Test bits per pixel of a density baseline (``LogitGaussianBaseline/bitsPerDim(ofLevels:draws:using:)``).
public struct BaselineBitsPerDim: Sendable, Equatable {
    /// Per image, averaged over the draws.
    public let bitsPerDim: [Double]
    /// The mean over images of each dequantization draw.
    public let drawMeans: [Double]

    /// Per-image values (averaged over draws) and each draw's mean over images.
    public init(bitsPerDim: [Double], drawMeans: [Double]) {
        self.bitsPerDim = bitsPerDim; self.drawMeans = drawMeans
    }

    /// Number of dequantization draws.
    public var draws: Int { drawMeans.count }
    /// The mean over images (and draws).
    public var mean: Double { bitsPerDim.reduce(0, +) / Double(Swift.max(bitsPerDim.count, 1)) }
    /// The standard error of ``mean`` over images (the test set as a sample of the data distribution).
    public var standardError: Double {
        let n = Double(bitsPerDim.count)
        guard n > 1 else { return .nan }
        let m = mean
        return (bitsPerDim.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1) / n).squareRoot()
    }
    /// The standard error of ``mean`` from the test images' dequantization noise alone (the spread
    /// of the draws' means over `√draws`), NaN with one draw. The fit's own single dequantization
    /// adds a spread of its own (on Fashion-MNIST about 0.0005 bits/dim between seeds, fit and test
    /// draws together).
    public var dequantizationStandardError: Double {
        let n = Double(drawMeans.count)
        guard n > 1 else { return .nan }
        let m = drawMeans.reduce(0, +) / n
        return (drawMeans.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1) / n).squareRoot()
    }
}

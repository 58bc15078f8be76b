import Foundation

/// The Gaussian base of an ``MLPScore`` built with ``MLPArchitecture/gaussianBase``: the exact score
/// of `N(μ, Σ)` diffused by the SDE, `−(m(t)² Σ + std(t)² I)⁻¹ (x − m(t) μ)` (the marginal of a
/// Gaussian under a linear SDE is Gaussian), added to the network's scaled output. It is the
/// linear "skip" of EDM's preconditioning (Karras et al. 2022, `c_skip`) written for the score:
/// at initialisation the model is the fitted Gaussian, the network learns only the departure
/// from it, and where the network has seen no data the model keeps the Gaussian's tails.
/// With `Σ = V diag(λ) Vᵀ` (`base.eigenvectors`, `base.eigenvalues`) the precision is
/// `V diag(1 / (m² λ + std²)) Vᵀ`: exact at every `t`, bounded as `t → 0` when `λ > 0`.
extension MLPScore {
    /// The same network with its Gaussian base fitted to data (data space, one row per sample):
    /// `μ` and `Σ` the sample mean and covariance mapped to model space by ``dataScaling``; with
    /// `dequantizationLevels` (integer data dequantized as `k + u`, `u ~ U[0, 1)`) the moments of
    /// `k + u`: mean `+ 1/2`, covariance `+ I/12`; through a logit stage (``DataScaling/logit(lambda:levels:)``) the
    /// moments of the model-space images of 16 dequantizations per row. Eigenvalues are floored at
    /// `10⁻⁸` of the largest.
    ///
    /// - Throws: `invalidArgument` unless the architecture has a Gaussian base and there are at
    ///   least 2 rows of the network's sample size.
    public func withGaussianBase(fittedTo data: Tensor, dequantizationLevels: Int? = nil) throws -> MLPScore {
        try requireParameter(architecture.gaussianBase, "the network has no Gaussian base (build it with MLPArchitecture(gaussianBase: true))")
        let d = layout.d
        guard data.rowSize == d, data.rows >= 2 else {
            throw ScoreSDEError.shapeMismatch("fitting the Gaussian base needs >= 2 rows of \(d) values (got \(data.shape))")
        }
        try data.checkFinite("the data the Gaussian base is fitted to")
        var (a, b) = (dataScaling.scale, dataScaling.shift)
        var shiftU = dequantizationLevels == nil ? 0.0 : 0.5, varU = dequantizationLevels == nil ? 0.0 : 1.0 / 12
        var data = data
        if !dataScaling.isAffine {
            // Through a logit stage the moments have no closed form: those of the model-space images
            // of `logitBaseDraws` dequantizations per row (a fixed seed), or of the rows themselves.
            if let levels = dequantizationLevels {
                var rng = RandomSource(seed: 0x6761_7573_7362_6173)
                var all = [Double]()
                all.reserveCapacity(data.count * Self.logitBaseDraws)
                for _ in 0 ..< Self.logitBaseDraws {
                    all.append(contentsOf: try UniformDequantization.sample(levels: data, topLevel: levels - 1, using: &rng).storage)
                }
                data = try Tensor(shape: [data.rows * Self.logitBaseDraws, d], storage: all)
            }
            data = dataScaling.toModel(data)
            try data.checkFinite("the data mapped through the logit transform (levels must lie in 0...L-1)")
            (a, b, shiftU, varU) = (1, 0, 0, 0)
        }
        let n = data.rows
        var mean = [Double](repeating: 0, count: d)
        for r in 0 ..< n { for j in 0 ..< d { mean[j] += data.storage[r * d + j] } }
        for j in 0 ..< d { mean[j] /= Double(n) }
        var cov = [Double](repeating: 0, count: d * d)
        var row = [Double](repeating: 0, count: d)
        for r in 0 ..< n {
            for j in 0 ..< d { row[j] = data.storage[r * d + j] - mean[j] }
            for i in 0 ..< d where row[i] != 0 { for j in 0 ..< d { cov[i * d + j] += row[i] * row[j] } }
        }
        for i in 0 ..< d * d { cov[i] *= a * a / Double(n - 1) }
        for i in 0 ..< d { cov[i * d + i] += a * a * varU }
        let (values, vectors) = Dense.symmetricEigen(cov, d)
        let floor = 1e-8 * Swift.max(values.first ?? 1, 1e-300)
        var p = parameters
        let o = baseOffsets!
        for j in 0 ..< d { p[o.mean + j] = a * (mean[j] + shiftU) + b }
        for i in 0 ..< d * d { p[o.vectors + i] = vectors[i] }
        for j in 0 ..< d { p[o.values + j] = Swift.max(values[j], floor) }
        return try withParameters(p)
    }

    /// Dequantizations per row whose moments fit the base through a logit data transform.
    static let logitBaseDraws = 16

    /// Offsets of `base.mean`, `base.eigenvectors`, `base.eigenvalues` in ``parameters`` (nil without a base).
    var baseOffsets: (mean: Int, vectors: Int, values: Int)? {
        guard architecture.gaussianBase else { return nil }
        var o = [String: Int]()
        for s in specs where s.name.hasPrefix("base.") { o[s.name] = s.offset }
        return (o["base.mean"]!, o["base.eigenvectors"]!, o["base.eigenvalues"]!)
    }

    /// Adds the Gaussian base score of rows `x` (`rows × D`) to `out`; row `r` at the marginal
    /// `(means[r], stds[r])` (one entry: all rows). With `v` and `jvp`, also adds its Jacobian–vector
    /// product `−P v` to `jvp`. No-op without a base.
    func addGaussianBase(x: UnsafePointer<Double>, rows n: Int, means: [Double], stds: [Double],
                         into out: UnsafeMutablePointer<Double>, v: UnsafePointer<Double>? = nil,
                         jvp: UnsafeMutablePointer<Double>? = nil) {
        guard let o = baseOffsets, n > 0 else { return }
        let d = layout.d
        parameters.withUnsafeBufferPointer { pp in
            let p = pp.baseAddress!
            let mu = p + o.mean, vec = p + o.vectors, lam = p + o.values
            let y = UnsafeMutablePointer<Double>.allocate(capacity: n * d)
            let w = UnsafeMutablePointer<Double>.allocate(capacity: n * d)
            defer { y.deallocate(); w.deallocate() }
            // One pass applies −P_r (rows of `src`) and adds it to `dst`.
            func apply(_ src: UnsafeMutablePointer<Double>, _ dst: UnsafeMutablePointer<Double>) {
                BLAS.gemm(m: n, n: d, k: d, a: src, lda: d, b: vec, ldb: d, c: w, ldc: d)      // W = Y V
                for r in 0 ..< n {
                    let m = means.count == 1 ? means[0] : means[r], s = stds.count == 1 ? stds[0] : stds[r]
                    let m2 = m * m, s2 = s * s, wr = w + r * d
                    for i in 0 ..< d { wr[i] /= -(m2 * lam[i] + s2) }
                }
                BLAS.gemm(transB: true, m: n, n: d, k: d, a: w, lda: d, b: vec, ldb: d, beta: 1, c: dst, ldc: d)   // += W Vᵀ
            }
            for r in 0 ..< n {
                let m = means.count == 1 ? means[0] : means[r]
                for j in 0 ..< d { y[r * d + j] = x[r * d + j] - m * mu[j] }
            }
            apply(y, out)
            if let v, let jvp {
                y.update(from: v, count: n * d)
                apply(y, jvp)
            }
        }
    }

    /// ``addGaussianBase(x:rows:means:stds:into:v:jvp:)`` for a tensor at one time `t`.
    func addGaussianBase(_ x: Tensor, at t: Double, into out: inout Tensor) {
        guard architecture.gaussianBase else { return }
        let (m, s) = sde.marginal(at: t)
        x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { op in
                addGaussianBase(x: xp.baseAddress!, rows: x.rows, means: [m], stds: [s], into: op.baseAddress!)
            }
        }
    }

    /// The same with the Jacobian–vector product in direction `v` added to `jvp`.
    func addGaussianBase(_ x: Tensor, at t: Double, into out: inout Tensor, direction v: Tensor, jvp: inout Tensor) {
        guard architecture.gaussianBase else { return }
        let (m, s) = sde.marginal(at: t)
        x.storage.withUnsafeBufferPointer { xp in
            v.storage.withUnsafeBufferPointer { vp in
                out.storage.withUnsafeMutableBufferPointer { op in
                    jvp.storage.withUnsafeMutableBufferPointer { jp in
                        addGaussianBase(x: xp.baseAddress!, rows: x.rows, means: [m], stds: [s], into: op.baseAddress!,
                                        v: vp.baseAddress!, jvp: jp.baseAddress!)
                    }
                }
            }
        }
    }
}

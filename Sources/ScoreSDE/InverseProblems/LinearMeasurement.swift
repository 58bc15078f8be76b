import Foundation

// MARK: - General linear measurements

/// A linear measurement `y = A x₀ + σ_y ε` of flattened rows: `A` is `m × D` with linearly
/// independent rows (`m ≤ D`), `observation` one row of `m` values shared by every sample or one
/// per sample. Its thin SVD `A = U S Vᵀ` is computed once: the measured directions are the
/// columns of `V`, observed as `y' = S⁻¹ Uᵀ y` with noise `τ_j = σ_y / S_j`.
public struct LinearMeasurement: Sendable {
    public let matrix: [[Double]]
    public let observation: Tensor
    public let noiseStd: Double
    /// `m`, `D`.
    public let measurements: Int, dimension: Int
    /// `A` row-major.
    let a: [Double]
    /// `V`, `D × m` row-major; singular values `S`; `y' = S⁻¹ Uᵀ y` per observation row.
    let v: [Double], singular: [Double], whitened: Tensor

    /// - Throws: `shapeMismatch` when `A` is ragged, has more rows than columns, or the observation
    ///   rows do not have `m` values; `nonFinite` for NaN/Inf; `invalidArgument` when the rows of
    ///   `A` are linearly dependent or the noise std is negative.
    public init(matrix: [[Double]], observation: Tensor, noiseStd: Double = 0) throws {
        let (m, d, a) = try validatedMatrix(matrix, "the measurement matrix A")
        guard m <= d else { throw ScoreSDEError.shapeMismatch("A has \(m) rows but only \(d) columns: at most D independent measurements exist") }
        guard observation.rowSize == m else {
            throw ScoreSDEError.shapeMismatch("the observation has rows of \(observation.rowSize) values (shape \(observation.shape)) but A has \(m) rows")
        }
        try observation.checkFinite("the observation")
        try checkNoiseStd(noiseStd)
        // A Aᵀ = U Λ Uᵀ, S = √Λ, V = Aᵀ U S⁻¹.
        let aat = Dense.multiply(a, Dense.transpose(a, m, d), m, d, m)
        let (lambda, u) = Dense.symmetricEigen(aat, m)
        guard let top = lambda.first, top > 0, lambda.allSatisfy({ $0 > 1e-12 * top }) else {
            throw ScoreSDEError.invalidArgument("the rows of A are linearly dependent (eigenvalues of A Aᵀ: \(lambda)); drop redundant rows")
        }
        let s = lambda.map { $0.squareRoot() }
        var v = [Double](repeating: 0, count: d * m)
        for i in 0 ..< d {
            for j in 0 ..< m {
                var acc = 0.0
                for q in 0 ..< m { acc += a[q * d + i] * u[q * m + j] }
                v[i * m + j] = acc / s[j]
            }
        }
        var w = Tensor(zeros: [observation.rows, m])
        for r in 0 ..< observation.rows {
            for j in 0 ..< m {
                var acc = 0.0
                for q in 0 ..< m { acc += u[q * m + j] * observation.storage[r * m + q] }
                w.storage[r * m + j] = acc / s[j]
            }
        }
        self.matrix = matrix; self.observation = observation; self.noiseStd = noiseStd
        measurements = m; dimension = d; self.a = a; self.v = v; singular = s; whitened = w
    }

    /// One observation shared by every sample.
    public init(matrix: [[Double]], observation: [Double], noiseStd: Double = 0) throws {
        try self.init(matrix: matrix, observation: Tensor(shape: [1, observation.count], storage: observation), noiseStd: noiseStd)
    }

    /// `A x` for each row of `x`.
    public func apply(_ x: Tensor) throws -> Tensor {
        guard x.rowSize == dimension else {
            throw ScoreSDEError.shapeMismatch("A takes rows of \(dimension) values but the samples have \(x.rowSize) (shape \(x.rowShape))")
        }
        var out = Tensor(zeros: [x.rows, measurements])
        guard x.rows > 0 else { return out }
        x.storage.withUnsafeBufferPointer { xp in
            a.withUnsafeBufferPointer { ap in
                out.storage.withUnsafeMutableBufferPointer { op in
                    BLAS.gemm(transB: true, m: x.rows, n: measurements, k: dimension, a: xp.baseAddress!, lda: dimension,
                              b: ap.baseAddress!, ldb: dimension, c: op.baseAddress!, ldc: measurements)
                }
            }
        }
        return out
    }

    /// `Aᵀ w` for each row of `w` (`m` values per row): shape `[rows, D]`.
    func applyTransposed(_ w: Tensor) -> Tensor {
        var out = Tensor(zeros: [w.rows, dimension])
        guard w.rows > 0 else { return out }
        w.storage.withUnsafeBufferPointer { wp in
            a.withUnsafeBufferPointer { ap in
                out.storage.withUnsafeMutableBufferPointer { op in
                    BLAS.gemm(m: w.rows, n: dimension, k: measurements, a: wp.baseAddress!, lda: measurements,
                              b: ap.baseAddress!, ldb: dimension, c: op.baseAddress!, ldc: dimension)
                }
            }
        }
        return out
    }

    /// The minimum-norm solution `A⁺ y` of each observation row (`V S⁻¹ Uᵀ y`), shaped `[rows, D]`:
    /// the point of `{A x = y}` nearest the origin, e.g. a block-replicated image for block averages.
    public func minimumNormSolution() -> Tensor {
        let m = measurements, d = dimension
        var out = Tensor(zeros: [whitened.rows, d])
        for r in 0 ..< whitened.rows {
            for i in 0 ..< d {
                var acc = 0.0
                for j in 0 ..< m { acc += v[i * m + j] * whitened.storage[r * m + j] }
                out.storage[r * d + i] = acc
            }
        }
        return out
    }

    /// The exact posterior of a Gaussian-mixture prior for observation row `row`.
    public func posterior(of prior: GaussianMixture, row: Int = 0) throws -> FullCovarianceMixture {
        guard row >= 0 && row < observation.rows else { throw ScoreSDEError.invalid("row", row, must: "in 0..<\(observation.rows), an observation row") }
        return try prior.conditioned(on: matrix, observation: observation.row(row), noiseStd: noiseStd)
    }

    func checkState(_ x: Tensor, _ what: String) throws {
        try checkRowSize(x)
        guard observation.rows == 1 || observation.rows == x.rows else { throw rowCountMismatch(x.rows, what) }
    }

    func checkRowSize(_ x: Tensor) throws {
        guard x.rowSize == dimension else {
            throw ScoreSDEError.shapeMismatch("the measurement matrix has \(dimension) columns but the samples have \(x.rowSize) values per row (shape \(x.rowShape))")
        }
    }

    func rowCountMismatch(_ rows: Int, _ what: String) -> ScoreSDEError {
        .shapeMismatch("the observation has \(observation.rows) rows; give 1 (shared by every sample) or one per sample (\(rows) \(what))")
    }
}

/// A linear inverse problem `y = A x₀ + σ_y ε` solved by projection, the generalisation of
/// inpainting and colorization: after every update the measured component of `x` (its coordinates
/// `Vᵀ x` in the row space of `A`) is replaced by a sample of the forward-noised measurement,
/// `x ← x + V (v* − Vᵀ x)`.
///
/// * Noise-free (`σ_y = 0`): `v* = m(t) y' + s(t) z`, i.e. `x` is projected orthogonally onto
///   `{A x = y_t}` with `y_t ~ N(m(t) y, s(t)² A Aᵀ)`, the law of `A x(t)` given `A x₀ = y`
///   (Song et al. 2021, App. I.4; for a selection matrix this is exactly inpainting).
/// * Noisy: the noise-consistent rule (see ``ConstraintConvention``) per singular direction `j`:
///   `v*_j = m y'_j + √(s² − m² τ_j²) z` while `s(t) ≥ m(t) τ_j`, `τ_j = σ_y / S_j` — given `x₀` that
///   value has exactly the forward law of `Vᵀ x(t)` — and the direction is left free afterwards.
///   Since observing `y` is equivalent to observing `V_jᵀ x(t*_j)` at the time `s(t*)/m(t*) = τ_j`,
///   the sampler then continues from a state conditioned on exactly the information in `y`.
///   No step size to tune; for `σ_y → 0` it is the projection above.
///
/// The noise-free mean gets `m(t) y'` in the pinned directions (paper) or is built from the
/// updated noisy `x` (reference). Cost `O(m·D)` per row and update.
public struct LinearMeasurementConstraint: SamplingConstraint {
    public let measurement: LinearMeasurement
    public let convention: ConstraintConvention

    public init(_ measurement: LinearMeasurement, convention: ConstraintConvention = .paper) {
        self.measurement = measurement; self.convention = convention
    }

    public func validate(_ x: Tensor) throws { try measurement.checkState(x, "samples") }

    /// For a noisy measurement: along every released singular direction `j` (`s(t) < m(t) τ_j`),
    /// `V_j (y'_j − V_jᵀx / m) / (m (τ_j² − s²/m²))` — the exact `∇ₓ log p(y | x_t)` (see ``ConstraintConvention``).
    public func scoreAdjustment(_ x: Tensor, at t: Double, sde: any ForwardSDE) throws -> Tensor? {
        let ms = measurement
        guard ms.noiseStd > 0 else { return nil }
        let (a, s) = sde.marginal(at: t)
        let precisions: [Double?] = ms.singular.map { sj in
            let tau = ms.noiseStd / sj
            return pinningStd(meanScale: a, std: s, tau: tau) == nil ? 1 / (a * (tau * tau - s * s / (a * a))) : nil
        }
        guard precisions.contains(where: { $0 != nil }) else { return nil }
        let m = ms.measurements, d = ms.dimension
        var out = Tensor(zeros: x.shape)
        for r in 0 ..< x.rows {
            let o = (ms.whitened.rows == 1 ? 0 : r) * m
            for j in 0 ..< m {
                guard let p = precisions[j] else { continue }
                var v = 0.0
                for i in 0 ..< d { v += ms.v[i * m + j] * x.storage[r * d + i] }
                let w = (ms.whitened.storage[o + j] - v / a) * p
                for i in 0 ..< d { out.storage[r * d + i] += w * ms.v[i * m + j] }
            }
        }
        return out
    }

    public func apply(_ x: inout Tensor, mean: inout Tensor, context: ConstraintContext, using rng: inout RandomSource) throws {
        let ms = measurement, m = ms.measurements, d = ms.dimension, n = x.rows
        let reference = convention == .reference
        if context.phase == .start && reference {
            // The observation itself (not noised) in the measured directions.
            setMeasuredDirectionsToObservation(&x)
            return
        }
        let (a, s) = context.sde.marginal(at: context.noiseTime(reference))
        let extras = ms.singular.map { pinningStd(meanScale: a, std: s, tau: ms.noiseStd / $0) }
        if context.phase == .jump {
            // Released directions: the exact conditional jump (pinned ones are re-pinned below).
            let jumps = ms.singular.map { ReleasedJump(context, tau: ms.noiseStd / $0) }
            if jumps.contains(where: { $0 != nil }) {
                let z = Tensor.standardNormal(shape: [n, m], using: &rng)
                for r in 0 ..< n {
                    let o = (ms.whitened.rows == 1 ? 0 : r) * m
                    for j in 0 ..< m {
                        guard let jump = jumps[j] else { continue }
                        var v = 0.0
                        for i in 0 ..< d { v += ms.v[i * m + j] * x.storage[r * d + i] }
                        let delta = jump.delta(v, ms.whitened.storage[o + j], z.storage[r * m + j])
                        for i in 0 ..< d { x.storage[r * d + i] += delta * ms.v[i * m + j] }
                    }
                }
            }
        }
        guard extras.contains(where: { $0 != nil }) else { return }
        let setMean = context.phase == .predictor || context.phase == .final
        let draw = rng.nextDraw(), source = rng
        let obsRows = ms.whitened.rows
        ms.v.withUnsafeBufferPointer { vp in
            ms.whitened.storage.withUnsafeBufferPointer { wp in
                x.storage.withUnsafeMutableBufferPointer { xp in
                    mean.storage.withUnsafeMutableBufferPointer { meanp in
                        let vb = vp.baseAddress!, wb = wp.baseAddress!, xb = xp.baseAddress!, meanb = meanp.baseAddress!
                        Tensor.forEachNoiseBlock(rows: n, rowSize: m, draw: draw, source) { range, z in
                            var delta = [Double](repeating: 0, count: m), deltaMean = delta
                            for r in range {
                                let yr = wb + (obsRows == 1 ? 0 : r) * m, xr = xb + r * d, meanr = meanb + r * d
                                let zr = z + (r - range.lowerBound) * m
                                for j in 0 ..< m {
                                    delta[j] = 0; deltaMean[j] = 0
                                    guard let e = extras[j] else { continue }
                                    var proj = 0.0, projMean = 0.0
                                    for i in 0 ..< d { proj += vb[i * m + j] * xr[i]; projMean += vb[i * m + j] * meanr[i] }
                                    delta[j] = a * yr[j] + e * zr[j] - proj
                                    deltaMean[j] = a * yr[j] - projMean
                                }
                                for i in 0 ..< d {
                                    var acc = 0.0
                                    for j in 0 ..< m { acc += vb[i * m + j] * delta[j] }
                                    xr[i] += acc
                                }
                                guard setMean else { continue }
                                if reference {
                                    // x_mean = x with the pinned directions at their noise-free mean.
                                    for i in 0 ..< d {
                                        var acc = 0.0
                                        for j in 0 ..< m where extras[j] != nil { acc += vb[i * m + j] * extras[j]! * zr[j] }
                                        meanr[i] = xr[i] - acc
                                    }
                                } else {
                                    for i in 0 ..< d {
                                        var acc = 0.0
                                        for j in 0 ..< m { acc += vb[i * m + j] * deltaMean[j] }
                                        meanr[i] += acc
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sets the measured directions of every row to `y'` (score_sde's un-noised initial state).
    private func setMeasuredDirectionsToObservation(_ x: inout Tensor) {
        let ms = measurement, m = ms.measurements, d = ms.dimension
        for r in 0 ..< x.rows {
            let o = (ms.whitened.rows == 1 ? 0 : r) * m
            var delta = [Double](repeating: 0, count: m)
            for j in 0 ..< m {
                var proj = 0.0
                for i in 0 ..< d { proj += ms.v[i * m + j] * x.storage[r * d + i] }
                delta[j] = ms.whitened.storage[o + j] - proj
            }
            for i in 0 ..< d {
                var acc = 0.0
                for j in 0 ..< m { acc += ms.v[i * m + j] * delta[j] }
                x.storage[r * d + i] += acc
            }
        }
    }
}

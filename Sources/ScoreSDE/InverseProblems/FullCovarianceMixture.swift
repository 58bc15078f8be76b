import Foundation

/// A Gaussian mixture `Σ_k π_k N(μ_k, Σ_k)` with full (possibly singular) covariance matrices:
/// the exact posterior of a ``GaussianMixture`` prior under a linear measurement.
///
/// Conditioning a diagonal-covariance mixture on `y = A x + σ_y ε` gives, per component,
/// `S_k = A Σ_k Aᵀ + σ_y² I`, `K_k = Σ_k Aᵀ S_k⁻¹`, mean `μ_k + K_k (y − A μ_k)`, covariance
/// `Σ_k − K_k A Σ_k` (full in general), and weight `∝ π_k N(y; A μ_k, S_k)`. Components keep the
/// prior's indices (a component the data rule out keeps weight ≈ 0), so mode weights of samples can
/// be compared component by component.
///
///     let ring = GaussianMixture.ring()
///     let post = try ring.conditioned(onKnown: [0], values: [3.4])   // x-coordinate known
///     print(post.weights)                                          // modes 0, 1, 7 share the mass
///     var rng = RandomSource(seed: 1)
///     let x = post.sample(count: 1000, using: &rng)                 // exact posterior samples
///
/// With a noise-free measurement the covariances are singular (no spread along the measured
/// directions); ``sample(count:using:)`` handles that, ``logDensity(_:)`` needs them regular.
public struct FullCovarianceMixture: Sendable, Equatable {
    /// Weights `≥ 0`, summing to 1 (a posterior may give some components weight 0).
    public let weights: [Double]
    /// Component means, `K × D`.
    public let means: [[Double]]
    /// Component covariances, `K × D × D`, symmetric positive semi-definite.
    public let covariances: [[[Double]]]
    /// `F_k` with `F_k F_kᵀ = Σ_k` (Cholesky, or scaled eigenvectors when singular), row-major.
    let factors: [[Double]]

    public var componentCount: Int { weights.count }
    public var dimension: Int { means.first?.count ?? 0 }

    /// Validates: `K ≥ 1` components of one dimension `D ≥ 1`; weights finite, `≥ 0`, not all 0
    /// (normalised to sum 1); covariances `D × D`, finite, symmetric and positive semi-definite
    /// (to a relative tolerance of 1e-9).
    public init(weights: [Double]? = nil, means: [[Double]], covariances: [[[Double]]]) throws {
        let k = means.count
        guard k >= 1 else { throw ScoreSDEError.invalid("means", means, must: "non-empty: a Gaussian mixture needs at least one component") }
        let d = means[0].count
        guard d >= 1 else { throw ScoreSDEError.invalid("means", means, must: "of at least one dimension") }
        for (i, m) in means.enumerated() {
            guard m.count == d else { throw ScoreSDEError.shapeMismatch("mean \(i) has \(m.count) dimensions, mean 0 has \(d)") }
            guard m.allSatisfy(\.isFinite) else { throw ScoreSDEError.nonFinite("mean \(i) contains NaN or Inf") }
        }
        guard covariances.count == k else { throw ScoreSDEError.shapeMismatch("\(k) means but \(covariances.count) covariances") }
        for (i, c) in covariances.enumerated() {
            let (r, cols, v) = try validatedMatrix(c, "covariance \(i)")
            guard r == d, cols == d else { throw ScoreSDEError.shapeMismatch("covariance \(i) is \(r) × \(cols); expected \(d) × \(d)") }
            var scale = 0.0
            for x in v { scale = max(scale, abs(x)) }
            for a in 0 ..< d {
                for b in 0 ..< a where abs(v[a * d + b] - v[b * d + a]) > 1e-9 * max(scale, 1e-300) {
                    throw ScoreSDEError.invalid("covariances", "covariances[\(i)][\(a)][\(b)] = \(v[a * d + b]), covariances[\(i)][\(b)][\(a)] = \(v[b * d + a])", must: "symmetric")
                }
            }
            let smallest = Dense.symmetricEigen(v, d).values.last ?? 0
            guard smallest >= -1e-9 * max(scale, 1e-300) else {
                throw ScoreSDEError.invalid("covariances", "covariances[\(i)] with smallest eigenvalue \(smallest)", must: "positive semi-definite")
            }
        }
        let w = weights ?? Array(repeating: 1, count: k)
        guard w.count == k else { throw ScoreSDEError.shapeMismatch("\(k) means but \(w.count) weights") }
        guard w.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw ScoreSDEError.invalid("weights", w, must: "finite and >= 0") }
        let total = w.reduce(0, +)
        guard total > 0 else { throw ScoreSDEError.invalid("weights", w, must: "> 0 somewhere (at least one weight)") }
        self.init(unchecked: w.map { $0 / total }, means: means, covariances: covariances)
    }

    /// The same mixture with its diagonal covariances written out.
    public init(_ g: GaussianMixture) {
        let d = g.dimension
        let covs = g.stds.map { s in
            (0 ..< d).map { a in (0 ..< d).map { b in a == b ? s[a] * s[a] : 0 } }
        }
        self.init(unchecked: g.weights, means: g.means, covariances: covs)
    }

    init(unchecked weights: [Double], means: [[Double]], covariances: [[[Double]]]) {
        let d = means.first?.count ?? 0
        self.weights = weights; self.means = means
        self.covariances = covariances.map { matrixRows(Dense.symmetrized($0.flatMap { $0 }, d), d, d) }
        factors = self.covariances.map { Dense.psdFactor($0.flatMap { $0 }, d) }
    }

    /// The overall mean `Σ_k π_k μ_k`.
    public var mean: [Double] {
        var m = [Double](repeating: 0, count: dimension)
        for (w, mu) in zip(weights, means) { for j in 0 ..< dimension { m[j] += w * mu[j] } }
        return m
    }

    /// The overall covariance `Σ_k π_k (Σ_k + μ_k μ_kᵀ) − μ μᵀ`.
    public var covariance: [[Double]] {
        let d = dimension, m = mean
        var c = [[Double]](repeating: [Double](repeating: 0, count: d), count: d)
        for k in 0 ..< componentCount {
            let w = weights[k], mu = means[k], s = covariances[k]
            for a in 0 ..< d { for b in 0 ..< d { c[a][b] += w * (s[a][b] + mu[a] * mu[b]) } }
        }
        for a in 0 ..< d { for b in 0 ..< d { c[a][b] -= m[a] * m[b] } }
        return c
    }

    /// Exact samples. Row `r` uses stream `(draw, r)` of `rng` (as ``GaussianMixture/sample(count:using:)``): one draw.
    public func sample(count: Int, using rng: inout RandomSource) -> Tensor {
        let d = dimension, draw = rng.nextDraw(), source = rng
        var cumulative = [Double](); var acc = 0.0
        for w in weights { acc += w; cumulative.append(acc) }
        let last = weights.lastIndex(where: { $0 > 0 }) ?? 0
        var x = Tensor(zeros: [count, d])
        let means = self.means, factors = self.factors
        x.storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.forEachChunk(count, grain: 128) { range in
                var z = [Double](repeating: 0, count: d)
                for r in range {
                    var s = source.stream(draw: draw, row: r)
                    let u = Double(s.next() >> 11) * 0x1p-53
                    let k = cumulative.firstIndex(where: { u < $0 }) ?? last
                    for j in 0 ..< d { z[j] = s.normal() }
                    let f = factors[k]
                    for a in 0 ..< d {
                        var v = means[k][a]
                        for b in 0 ..< d { v += f[a * d + b] * z[b] }
                        base[r * d + a] = v
                    }
                }
            }
        }
        return x
    }

    /// The law of `m · x + s · z`, `z ~ N(0, I)`: means `m μ_k`, covariances `m² Σ_k + s² I`
    /// (`p_t` of this mixture under any ``ForwardSDE``).
    public func diffused(meanScale m: Double, std s: Double) -> FullCovarianceMixture {
        let d = dimension
        return FullCovarianceMixture(
            unchecked: weights, means: means.map { $0.map { m * $0 } },
            covariances: covariances.map { c in (0 ..< d).map { a in (0 ..< d).map { b in m * m * c[a][b] + (a == b ? s * s : 0) } } })
    }

    /// The marginal law of the coordinates `indices` (in that order).
    public func marginal(_ indices: [Int]) throws -> FullCovarianceMixture {
        guard !indices.isEmpty, indices.allSatisfy({ $0 >= 0 && $0 < dimension }) else {
            throw ScoreSDEError.invalid("indices", indices, must: "non-empty and in 0..<\(dimension)")
        }
        return FullCovarianceMixture(unchecked: weights, means: means.map { m in indices.map { m[$0] } },
                                     covariances: covariances.map { c in indices.map { a in indices.map { b in c[a][b] } } })
    }

    /// The posterior after observing `y = A x + σ_y ε`, `ε ~ N(0, I)` (`A`: `m × D`, `y`: `m` values).
    /// With `noiseStd == 0` every `A Σ_k Aᵀ` must be invertible (`A` of full row rank on each
    /// component's support).
    /// - Throws: `shapeMismatch` when `A` or `y` do not fit, `nonFinite` for NaN/Inf,
    ///   `invalidArgument` for a negative noise std or a measurement no component can explain.
    public func conditioned(on matrix: [[Double]], observation y: [Double], noiseStd: Double = 0) throws -> FullCovarianceMixture {
        let (m, cols, a) = try validatedMatrix(matrix, "the measurement matrix A")
        let d = dimension
        guard cols == d else { throw ScoreSDEError.shapeMismatch("the measurement matrix has \(cols) columns but the mixture has dimension \(d)") }
        guard y.count == m else { throw ScoreSDEError.shapeMismatch("the observation has \(y.count) values but A has \(m) rows") }
        if let j = y.firstIndex(where: { !$0.isFinite }) { throw ScoreSDEError.nonFinite("the observation contains \(y[j]) at index \(j)") }
        guard noiseStd.isFinite, noiseStd >= 0 else { throw ScoreSDEError.invalid("noiseStd", noiseStd, must: "finite and >= 0") }
        let at = Dense.transpose(a, m, d)
        var logW = [Double](), newMeans = [[Double]](), newCovs = [[[Double]]]()
        for k in 0 ..< componentCount {
            let sigma = covariances[k].flatMap { $0 }
            let sat = Dense.multiply(sigma, at, d, d, m)                // Σ Aᵀ, D × m
            var s = Dense.multiply(a, sat, m, d, m)                     // A Σ Aᵀ
            for i in 0 ..< m { s[i * m + i] += noiseStd * noiseStd }
            s = Dense.symmetrized(s, m)
            guard let l = Dense.cholesky(s, m) else {
                throw ScoreSDEError.invalidArgument("A Σ_\(k) Aᵀ + σ_y² I is singular for component \(k): with noiseStd = 0 the rows of A must be linearly independent on the component's support; use a small noiseStd or drop dependent rows")
            }
            let mu = means[k]
            var r = y
            for i in 0 ..< m { for j in 0 ..< d { r[i] -= a[i * d + j] * mu[j] } }
            let residual = r
            Dense.choleskySolve(l, m, &r)                               // S⁻¹ (y − A μ)
            var quad = 0.0
            for i in 0 ..< m { quad += residual[i] * r[i] }
            let normalizer: Double = Dense.halfLogDeterminant(l, m) + 0.5 * Double(m) * Foundation.log(2 * Double.pi)
            logW.append(weights[k] > 0 ? Foundation.log(weights[k]) - 0.5 * quad - normalizer : -Double.infinity)
            var newMean = mu
            for i in 0 ..< d { for q in 0 ..< m { newMean[i] += sat[i * m + q] * r[q] } }
            newMeans.append(newMean)
            // Σ − Σ Aᵀ S⁻¹ A Σ: solve S X = (Σ Aᵀ)ᵀ column by column.
            var cov = sigma
            for j in 0 ..< d {
                var col = (0 ..< m).map { sat[j * m + $0] }
                Dense.choleskySolve(l, m, &col)
                for i in 0 ..< d {
                    var v = 0.0
                    for q in 0 ..< m { v += sat[i * m + q] * col[q] }
                    cov[i * d + j] -= v
                }
            }
            newCovs.append(matrixRows(Dense.symmetrized(cov, d), d, d))
        }
        let top = logW.max() ?? -Double.infinity
        guard top.isFinite else { throw ScoreSDEError.invalidArgument("no mixture component can explain the observation (all likelihoods are 0)") }
        var w = logW.map { Foundation.exp($0 - top) }
        let total = w.reduce(0, +)
        w = w.map { $0 / total }
        return FullCovarianceMixture(unchecked: w, means: newMeans, covariances: newCovs)
    }

    /// The posterior after observing coordinates `indices` (`values`, with optional noise `noiseStd`):
    /// ``conditioned(on:observation:noiseStd:)`` with the selection matrix.
    public func conditioned(onKnown indices: [Int], values: [Double], noiseStd: Double = 0) throws -> FullCovarianceMixture {
        guard !indices.isEmpty, indices.allSatisfy({ $0 >= 0 && $0 < dimension }), Set(indices).count == indices.count else {
            throw ScoreSDEError.invalid("indices", indices, must: "non-empty, distinct and in 0..<\(dimension) (the known coordinates)")
        }
        return try conditioned(on: selectionMatrix(indices, dimension: dimension), observation: values, noiseStd: noiseStd)
    }

    /// Component responsibilities `p(k | x)` of each row (needs regular covariances).
    public func responsibilities(_ x: Tensor) throws -> [[Double]] {
        try densityTerms(x).responsibilities
    }

    /// `log p(x)` of each row (needs regular covariances).
    public func logDensity(_ x: Tensor) throws -> [Double] {
        try densityTerms(x).logDensity
    }

    /// Index of the most probable component of each row (needs regular covariances).
    public func assignments(_ x: Tensor) throws -> [Int] {
        try responsibilities(x).map { r in r.indices.max(by: { r[$0] < r[$1] })! }
    }

    private func densityTerms(_ x: Tensor) throws -> (responsibilities: [[Double]], logDensity: [Double]) {
        guard x.rowSize == dimension else { throw ScoreSDEError.shapeMismatch("rows have \(x.rowSize) values; the mixture has dimension \(dimension)") }
        try x.checkFinite("the points")
        let kernel = try FullCovarianceKernel(self)
        let k = componentCount
        var resp = [Double](repeating: 0, count: x.rows * k), logp = [Double](repeating: 0, count: x.rows)
        x.storage.withUnsafeBufferPointer { xp in
            resp.withUnsafeMutableBufferPointer { rp in
                logp.withUnsafeMutableBufferPointer { lp in
                    kernel.run(0 ..< x.rows, xp.baseAddress!, score: nil, logp: lp.baseAddress!, responsibilities: rp.baseAddress!)
                }
            }
        }
        return ((0 ..< x.rows).map { Array(resp[$0 * k ..< ($0 + 1) * k]) }, logp)
    }
}

/// The `m × D` matrix selecting coordinates `indices`.
func selectionMatrix(_ indices: [Int], dimension d: Int) -> [[Double]] {
    indices.map { i in (0 ..< d).map { $0 == i ? 1.0 : 0.0 } }
}

// MARK: - Conditioning a diagonal mixture

extension GaussianMixture {
    /// The posterior after observing `y = A x + σ_y ε` (see ``FullCovarianceMixture/conditioned(on:observation:noiseStd:)``).
    public func conditioned(on matrix: [[Double]], observation y: [Double], noiseStd: Double = 0) throws -> FullCovarianceMixture {
        try FullCovarianceMixture(self).conditioned(on: matrix, observation: y, noiseStd: noiseStd)
    }

    /// The posterior after observing coordinates `indices` exactly (or with noise `noiseStd`).
    /// Diagonal components stay diagonal here; only the weights move, `∝ π_k N(values; μ_k,I, s_k,I² + σ_y²)`.
    public func conditioned(onKnown indices: [Int], values: [Double], noiseStd: Double = 0) throws -> FullCovarianceMixture {
        try FullCovarianceMixture(self).conditioned(onKnown: indices, values: values, noiseStd: noiseStd)
    }

    /// The same mixture restricted to `components` (weights renormalised): the exact conditional
    /// law given that `x` came from one of them — e.g. one class of a labelled mixture.
    public func restricted(to components: [Int]) throws -> GaussianMixture {
        guard !components.isEmpty, components.allSatisfy({ $0 >= 0 && $0 < componentCount }), Set(components).count == components.count else {
            throw ScoreSDEError.invalid("components", components, must: "non-empty, distinct and in 0..<\(componentCount)")
        }
        return try GaussianMixture(weights: components.map { weights[$0] }, means: components.map { means[$0] },
                                   stds: components.map { stds[$0] })
    }
}

// MARK: - Exact score of a diffused full-covariance mixture

/// Precomputed Cholesky factors of a full-covariance mixture and the per-row density, responsibility and score kernel.
struct FullCovarianceKernel {
    let k: Int, d: Int
    /// Means `K × D` and Cholesky factors `K × D × D`, row-major.
    let mu: [Double]
    let chol: [Double]
    /// `log π_k − ½ log det Σ_k − D/2 log 2π` (−∞ for weight 0).
    let logConstants: [Double]

    init(_ g: FullCovarianceMixture) throws {
        k = g.componentCount; d = g.dimension
        var ls = [Double](), cs = [Double]()
        for c in 0 ..< k {
            guard let l = Dense.cholesky(g.covariances[c].flatMap { $0 }, d) else {
                throw ScoreSDEError.invalidArgument("component \(c) has a singular covariance: densities and scores need regular covariances (diffuse to a time t > 0 first)")
            }
            ls.append(contentsOf: l)
            cs.append(g.weights[c] > 0
                      ? Foundation.log(g.weights[c]) - Dense.halfLogDeterminant(l, d) - 0.5 * Double(d) * Foundation.log(2 * Double.pi)
                      : -Double.infinity)
        }
        mu = g.means.flatMap { $0 }; chol = ls; logConstants = cs
    }

    /// Evaluates rows `range` of `x` (row-major, `D` values each): `log p` into `logp`, and the score
    /// `−Σ_k r_k Σ_k⁻¹ (x − μ_k)` into `score` when given.
    func run(_ range: Range<Int>, _ x: UnsafePointer<Double>, score: UnsafeMutablePointer<Double>?,
             logp: UnsafeMutablePointer<Double>?, responsibilities: UnsafeMutablePointer<Double>? = nil) {
        let k = self.k, d = self.d
        let r = UnsafeMutablePointer<Double>.allocate(capacity: k)
        let u = UnsafeMutablePointer<Double>.allocate(capacity: k * d)   // L_k⁻¹ (x − μ_k) per component
        defer { r.deallocate(); u.deallocate() }
        mu.withUnsafeBufferPointer { mp in
            chol.withUnsafeBufferPointer { lp in
                logConstants.withUnsafeBufferPointer { cp in
                    let m = mp.baseAddress!, lb = lp.baseAddress!, lc = cp.baseAddress!
                    for row in range {
                        let xr = x + row * d
                        var top = -Double.infinity
                        for c in 0 ..< k {
                            guard lc[c] > -Double.infinity else { r[c] = -Double.infinity; continue }
                            let l = lb + c * d * d, uc = u + c * d, mc = m + c * d
                            var quad = 0.0
                            for i in 0 ..< d {
                                var s = xr[i] - mc[i]
                                for q in 0 ..< i { s -= l[i * d + q] * uc[q] }
                                uc[i] = s / l[i * d + i]
                                quad += uc[i] * uc[i]
                            }
                            r[c] = lc[c] - 0.5 * quad
                            top = Swift.max(top, r[c])
                        }
                        var sum = 0.0
                        for c in 0 ..< k { r[c] = r[c] > -Double.infinity ? Foundation.exp(r[c] - top) : 0; sum += r[c] }
                        for c in 0 ..< k { r[c] /= sum }
                        logp?[row] = top + Foundation.log(sum)
                        if let resp = responsibilities { for c in 0 ..< k { resp[row * k + c] = r[c] } }
                        guard let score else { continue }
                        let sr = score + row * d
                        for j in 0 ..< d { sr[j] = 0 }
                        for c in 0 ..< k where r[c] > 0 {
                            // Back-substitution Lᵀ w = u: w = Σ⁻¹ (x − μ).
                            let l = lb + c * d * d, uc = u + c * d
                            for i in stride(from: d - 1, through: 0, by: -1) {
                                var s = uc[i]
                                for q in i + 1 ..< d { s -= l[q * d + i] * uc[q] }
                                uc[i] = s / l[i * d + i]
                            }
                            for j in 0 ..< d { sr[j] -= r[c] * uc[j] }
                        }
                    }
                }
            }
        }
    }
}

/// The exact score of a full-covariance Gaussian mixture diffused by a forward SDE (`p_t` has means
/// `m(t) μ_k`, covariances `m(t)² Σ_k + σ(t)² I`). With an exact posterior
/// (``GaussianMixture/conditioned(on:observation:noiseStd:)``) this samples the posterior with any
/// predictor and corrector — the oracle the inverse-problem methods are measured against.
///
/// O(K·D²) per row and a Cholesky factorisation per component and call: meant for small `D`.
public struct FullCovarianceMixtureScore: ScoreModel {
    public let mixture: FullCovarianceMixture
    public let sde: any ForwardSDE

    public init(_ mixture: FullCovarianceMixture, diffusedBy sde: any ForwardSDE) {
        self.mixture = mixture; self.sde = sde
    }

    public var rowShape: [Int]? { [mixture.dimension] }

    func kernel(at t: Double) throws -> FullCovarianceKernel {
        guard t.isFinite, t >= 0, t <= sde.T else { throw ScoreSDEError.invalid("t", t, must: "in [0, \(sde.T)]") }
        let (m, s) = sde.marginal(at: t)
        return try FullCovarianceKernel(mixture.diffused(meanScale: m, std: s))
    }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        try validate(x)
        let kernel = try kernel(at: t)
        var out = Tensor(zeros: x.shape)
        let d = mixture.dimension, k = mixture.componentCount
        x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { op in
                let xb = xp.baseAddress!, ob = op.baseAddress!
                Parallel.forEachChunk(x.rows, grain: max(1, 4096 / max(k * d * d, 1))) { range in
                    kernel.run(range, xb, score: ob, logp: nil)
                }
            }
        }
        try out.checkFinite("the posterior mixture score (check the input for NaN/Inf)")
        return out
    }

    /// Each row at its own time: the kernel of `p_{tᵢ}` (Cholesky factors; built per row, in
    /// parallel, and reused by the next row when it has the same time) and the single-time kernel
    /// row by row — bitwise the single-time call on each row.
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        try validate(x)
        try checkTimes(times, x)
        for t in times { guard t.isFinite, t >= 0, t <= sde.T else { throw ScoreSDEError.invalid("times", t, must: "in [0, \(sde.T)]") } }
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        let d = mixture.dimension, k = mixture.componentCount
        let failed = x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { op in
                let xb = xp.baseAddress!, ob = op.baseAddress!
                return !Parallel.allChunks(x.rows, grain: max(1, 1024 / max(k * d * d, 1))) { range in
                    var kernel: FullCovarianceKernel?, last = Double.nan
                    for r in range {
                        if kernel == nil || times[r] != last {
                            guard let made = try? self.kernel(at: times[r]) else { return false }
                            kernel = made; last = times[r]
                        }
                        kernel!.run(r ..< r + 1, xb, score: ob, logp: nil)
                    }
                    return true
                }
            }
        }
        if failed { for t in times { _ = try kernel(at: t) } }   // throws the factorisation's error
        try out.checkFinite("the posterior mixture score (check the input for NaN/Inf)")
    }

    /// Exact `log p_t(x)` for each row.
    public func logDensity(_ x: Tensor, at t: Double) throws -> [Double] {
        try validate(x)
        let (m, s) = sde.marginal(at: t)
        return try mixture.diffused(meanScale: m, std: s).logDensity(x)
    }
}

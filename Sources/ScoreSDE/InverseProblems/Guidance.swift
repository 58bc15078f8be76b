import Foundation

// MARK: - Classifier guidance

/// A time-dependent classifier's gradient `∇ₓ log p_t(y | x)` for the target labels it was made
/// with (score_sde's `classifier_grad_fn`: `∇ₓ Σ_b log_softmax(logits)[b, label_b]`).
public protocol NoisyClassifier: Sendable {
    /// `∇ₓ log p_t(y | x)` for each row of `x`; same shape as `x`.
    func logLikelihoodGradient(_ x: Tensor, at t: Double) throws -> Tensor
}

/// A classifier given as a closure `(x, t) -> ∇ₓ log p_t(y | x)`.
public struct ClosureClassifier: NoisyClassifier {
    public let gradient: @Sendable (Tensor, Double) throws -> Tensor
    public init(_ gradient: @escaping @Sendable (Tensor, Double) throws -> Tensor) { self.gradient = gradient }
    public func logLikelihoodGradient(_ x: Tensor, at t: Double) throws -> Tensor { try gradient(x, t) }
}

/// Classifier guidance (Song et al. 2021, §5 and App. I.1; Dhariwal & Nichol 2021):
/// `s(x, t) + w ∇ₓ log p_t(y | x)`. `w = 1` is Bayes' rule — the score of `p_t(x | y)`; `w > 1`
/// sharpens towards the class (the score of `p_t(x) p_t(y | x)^w`, not a posterior).
///
///     let classifier = try GaussianMixtureClassifier(mixture, diffusedBy: sde, labels: [0, 1, 0, 1], target: 1)
///     let guided = ClassifierGuidedScore(base: GaussianMixtureScore(mixture, diffusedBy: sde), classifier: classifier)
public struct ClassifierGuidedScore<Base: ScoreModel, Classifier: NoisyClassifier>: ScoreModel {
    public let base: Base
    public let classifier: Classifier
    public let scale: Double

    public init(base: Base, classifier: Classifier, scale: Double = 1) {
        self.base = base; self.classifier = classifier; self.scale = scale
    }

    public var rowShape: [Int]? { base.rowShape }
    /// The base model's passes plus one for the classifier's gradient (none at scale 0, where the
    /// gradient is not computed).
    public var passesPerEvaluation: Int { base.passesPerEvaluation + (scale == 0 ? 0 : 1) }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        guard scale.isFinite else { throw ScoreSDEError.invalidArgument("the guidance scale must be finite (got \(scale))") }
        var s = try base.score(x, at: t)
        if scale == 0 { return s }
        let g = try classifier.logLikelihoodGradient(x, at: t)
        guard g.count == x.count else {
            throw ScoreSDEError.shapeMismatch("the classifier gradient has shape \(g.shape) for input \(x.shape)")
        }
        s.add(g, scaledBy: scale)
        return s
    }
}

/// The exact noisy classifier of a labelled Gaussian mixture: component `k` has class
/// `labels[k]`, and `p_t(y | x) = Σ_{k: labels[k] = y} r_k(x, t)` with `r_k` the responsibilities of the
/// diffused mixture `p_t`. Its gradient is `s_y(x, t) − s(x, t)`, the score of the mixture
/// restricted to class `y` minus the full score, so guidance with `w = 1` samples exactly the
/// class-conditional mixture (``GaussianMixture/restricted(to:)``).
public struct GaussianMixtureClassifier: NoisyClassifier {
    public let mixture: GaussianMixture
    public let sde: any ForwardSDE
    /// Class of each component.
    public let labels: [Int]
    /// The target class: one shared by all rows, or one per row.
    public let targets: [Int]

    /// - Throws: `shapeMismatch` unless there is one label per component; `invalidArgument` when a
    ///   target class has no component.
    public init(_ mixture: GaussianMixture, diffusedBy sde: any ForwardSDE, labels: [Int], targets: [Int]) throws {
        guard labels.count == mixture.componentCount else {
            throw ScoreSDEError.shapeMismatch("\(labels.count) labels for \(mixture.componentCount) components; give one class per component")
        }
        guard !targets.isEmpty else { throw ScoreSDEError.invalidArgument("give at least one target class") }
        let classes = Set(labels)
        if let bad = targets.first(where: { !classes.contains($0) }) {
            throw ScoreSDEError.invalidArgument("target class \(bad) has no component; the classes are \(classes.sorted())")
        }
        self.mixture = mixture; self.sde = sde; self.labels = labels; self.targets = targets
    }

    /// One target class for every row.
    public init(_ mixture: GaussianMixture, diffusedBy sde: any ForwardSDE, labels: [Int], target: Int) throws {
        try self.init(mixture, diffusedBy: sde, labels: labels, targets: [target])
    }

    /// Class probabilities `p_t(c | x)` of each row, for the classes in ascending order.
    public func classProbabilities(_ x: Tensor, at t: Double) throws -> [[Double]] {
        let kernel = try self.kernel(at: t, x)
        let classes = Set(labels).sorted()
        var r = [Double](repeating: 0, count: mixture.componentCount)
        return (0 ..< x.rows).map { i in
            let row = x.row(i)
            row.withUnsafeBufferPointer { xp in r.withUnsafeMutableBufferPointer { rp in _ = kernel.softmax(xp.baseAddress!, rp.baseAddress!) } }
            return classes.map { c in zip(labels, r).reduce(0.0) { $0 + ($1.0 == c ? $1.1 : 0) } }
        }
    }

    private func kernel(at t: Double, _ x: Tensor) throws -> GaussianMixtureKernel {
        guard x.rowSize == mixture.dimension else {
            throw ScoreSDEError.shapeMismatch("the classifier takes rows of \(mixture.dimension) values; got shape \(x.rowShape)")
        }
        guard targets.count == 1 || targets.count == x.rows else {
            throw ScoreSDEError.shapeMismatch("\(targets.count) target classes for \(x.rows) rows: give one, or one per row (and no batchSize, which splits rows)")
        }
        guard t.isFinite, t >= 0, t <= sde.T else { throw ScoreSDEError.invalidArgument("time t must be in [0, \(sde.T)] (got \(t))") }
        let (m, s) = sde.marginal(at: t)
        return GaussianMixtureKernel(mixture.diffused(meanScale: m, std: s))
    }

    public func logLikelihoodGradient(_ x: Tensor, at t: Double) throws -> Tensor {
        let kernel = try self.kernel(at: t, x)
        let k = kernel.k, d = kernel.d, labels = self.labels, targets = self.targets
        var out = Tensor(zeros: x.shape)
        x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { op in
                let xb = xp.baseAddress!, ob = op.baseAddress!
                Parallel.forEachChunk(x.rows, grain: max(1, 4096 / max(k * d, 1))) { range in
                    var logits = [Double](repeating: 0, count: k), all = logits, inY = logits
                    for row in range {
                        let xr = xb + row * d, g = ob + row * d
                        let target = targets.count == 1 ? targets[0] : targets[row]
                        logits.withUnsafeMutableBufferPointer { lp in
                            kernel.mu.withUnsafeBufferPointer { mup in
                                kernel.iv.withUnsafeBufferPointer { ivp in
                                    kernel.lc.withUnsafeBufferPointer { lcp in
                                        _ = gmmLogits(xr, lp.baseAddress!, mup.baseAddress!, ivp.baseAddress!, lcp.baseAddress!, k, d)
                                    }
                                }
                            }
                        }
                        // Softmax over all components and over the target's components (in log space).
                        var topY = -Double.infinity
                        for c in 0 ..< k where labels[c] == target { topY = max(topY, logits[c]) }
                        var sumAll = 0.0, sumY = 0.0
                        for c in 0 ..< k {
                            all[c] = Foundation.exp(logits[c]); sumAll += all[c]
                            inY[c] = labels[c] == target ? Foundation.exp(logits[c] - topY) : 0
                            sumY += inY[c]
                        }
                        for j in 0 ..< d { g[j] = 0 }
                        for c in 0 ..< k {
                            let w = inY[c] / sumY - all[c] / sumAll
                            if w == 0 { continue }
                            for j in 0 ..< d { g[j] += w * (kernel.mu[c * d + j] - xr[j]) * kernel.iv[c * d + j] }
                        }
                    }
                }
            }
        }
        try out.checkFinite("the classifier gradient")
        return out
    }
}

// MARK: - Classifier-free guidance

/// Classifier-free guidance (Ho & Salimans 2022): `(1 + w) s_cond − w s_uncond`. `w = 0` is the
/// conditional model; `w > 0` extrapolates away from the unconditional one.
public struct ClassifierFreeGuidance<Conditional: ScoreModel, Unconditional: ScoreModel>: ScoreModel {
    public let conditional: Conditional
    public let unconditional: Unconditional
    public let scale: Double

    public init(conditional: Conditional, unconditional: Unconditional, scale: Double) {
        self.conditional = conditional; self.unconditional = unconditional; self.scale = scale
    }

    public var rowShape: [Int]? { conditional.rowShape ?? unconditional.rowShape }
    /// Both models' passes (the conditional one's alone at `scale = 0`).
    public var passesPerEvaluation: Int { conditional.passesPerEvaluation + (scale == 0 ? 0 : unconditional.passesPerEvaluation) }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        guard scale.isFinite else { throw ScoreSDEError.invalidArgument("the guidance scale must be finite (got \(scale))") }
        var s = try conditional.score(x, at: t)
        if scale == 0 { return s }
        let u = try unconditional.score(x, at: t)
        guard u.count == s.count else { throw ScoreSDEError.shapeMismatch("conditional and unconditional scores differ in shape: \(s.shape) vs \(u.shape)") }
        s.scale(by: 1 + scale, adding: u, scaledBy: -scale)
        return s
    }
}

extension ClassifierFreeGuidance: ScoreJacobianProviding where Conditional: ScoreJacobianProviding, Unconditional: ScoreJacobianProviding {
    public func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor) throws -> (score: Tensor, jvp: Tensor) {
        var (s, j) = try conditional.scoreAndJVP(x, at: t, direction: v)
        if scale == 0 { return (s, j) }
        let (su, ju) = try unconditional.scoreAndJVP(x, at: t, direction: v)
        s.scale(by: 1 + scale, adding: su, scaledBy: -scale)
        j.scale(by: 1 + scale, adding: ju, scaledBy: -scale)
        return (s, j)
    }
}

// MARK: - Measurement guidance (DPS, ΠGDM, Tweedie-moment)

/// How ``MeasurementGuidedScore`` approximates `p_t(y | x) = ∫ p(y | x₀) p(x₀ | x_t = x) dx₀`.
/// All three use the Tweedie mean `x̂₀(x) = (x + s² ∇log p_t(x)) / m` and differentiate through it,
/// `∂x̂₀/∂x = (I + s² J) / m` with `J = ∂s/∂x` (symmetric for a true score, so the model's JVP
/// provides the needed vector–Jacobian product).
public enum MeasurementLikelihood: Sendable, Equatable {
    /// DPS (Chung et al. 2023): `−ζ ∇ₓ ‖y − A x̂₀‖` — their normalised step, here as a score term of
    /// weight ζ (so its step size follows the predictor's `g² Δt`). Heuristic: ignores `σ_y` and the
    /// spread of `p(x₀ | x_t)`.
    case dps(stepScale: Double)
    /// ΠGDM (Song et al. 2023): `p(x₀ | x_t) ≈ N(x̂₀, r_t² I)` with `r_t² = v s² / (s² + m² v)` for a
    /// prior of variance `v` per coordinate, so `p_t(y | x) ≈ N(y; A x̂₀, σ_y² I + r_t² A Aᵀ)`.
    /// Exact for a Gaussian prior `N(μ, v I)`.
    ///
    /// `jacobianFree`: use the same Gaussian for `∂x̂₀/∂x` too, `(m/s²) r_t² I = m v / (s² + m² v) · I`
    /// (the identity `∂x̂₀/∂x = (m/s²) Cov[x₀ | x_t]`), instead of differentiating through the model.
    /// Still exact for `N(μ, v I)`; costs one model evaluation per call instead of two, and stays
    /// stable with learned models under VP, whose `1/m(t)` (≈ 150 at `T`) otherwise amplifies the
    /// network's Jacobian error until the sampler diverges (measured with the shipped models).
    case pseudoinverse(dataVariance: Double, jacobianFree: Bool = false)
    /// The second-order Tweedie covariance `Cov[x₀ | x_t] = (s²/m²)(I + s² J)`, projected:
    /// `p_t(y | x) ≈ N(y; A x̂₀, σ_y² I + A Cov Aᵀ)` (moment matching, as TMPD, Boys et al. 2023).
    /// Exact for any Gaussian prior; costs `m` extra JVPs per score (`m` = measurements).
    case tweedieCovariance
}

/// The score of the posterior `p_t(x | y)` for a linear measurement `y = A x₀ + σ_y ε`, as the
/// unconditional score plus a measurement term: `s(x, t) + w ∇ₓ log p̃_t(y | x)`, with `p̃` one of the
/// ``MeasurementLikelihood`` approximations. A ``ScoreModel``, so it works with every predictor
/// and corrector (and the ODE sampler), no constraint needed.
///
/// Cost per call (``passesPerEvaluation``): 2 model passes (score, then a JVP along `Aᵀ w`; 1 for
/// the Jacobian-free ΠGDM), plus `m` JVPs for `.tweedieCovariance`. The sampler counts one NFE and
/// these passes per call.
public struct MeasurementGuidedScore<Base: ScoreJacobianProviding>: ScoreModel {
    public let base: Base
    public let sde: any ForwardSDE
    public let measurement: LinearMeasurement
    public let likelihood: MeasurementLikelihood
    /// Weight `w` of the measurement term (1: Bayes' rule).
    public let weight: Double

    /// - Throws: `shapeMismatch` when `A` does not fit the model's rows; `invalidArgument` for a
    ///   non-positive data variance or step scale, or a non-finite weight.
    public init(base: Base, sde: any ForwardSDE, measurement: LinearMeasurement,
                likelihood: MeasurementLikelihood = .tweedieCovariance, weight: Double = 1) throws {
        if let shape = base.rowShape, shape.reduce(1, *) != measurement.dimension {
            throw ScoreSDEError.shapeMismatch("the measurement matrix has \(measurement.dimension) columns but the model's rows have \(shape.reduce(1, *)) values")
        }
        switch likelihood {
        case .dps(let z): try requireParameter(z.isFinite && z > 0, "the DPS step scale must be finite and > 0 (got \(z))")
        case .pseudoinverse(let v, _): try requireParameter(v.isFinite && v > 0, "the data variance must be finite and > 0 (got \(v))")
        case .tweedieCovariance: break
        }
        try requireParameter(weight.isFinite, "the guidance weight must be finite (got \(weight))")
        self.base = base; self.sde = sde; self.measurement = measurement; self.likelihood = likelihood; self.weight = weight
    }

    public var rowShape: [Int]? { base.rowShape }
    /// The score and one JVP (none for the Jacobian-free ΠGDM), plus `m` JVPs for `.tweedieCovariance`.
    public var passesPerEvaluation: Int {
        switch likelihood {
        case .tweedieCovariance: return 2 + measurement.measurements
        case .pseudoinverse(_, true): return 1
        default: return 2
        }
    }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        let ms = measurement, m = ms.measurements, d = ms.dimension, n = x.rows
        try ms.checkState(x, "rows in this call — with one observation per sample, sample without batchSize")
        guard t.isFinite, t > 0, t <= sde.T else { throw ScoreSDEError.invalidArgument("measurement guidance needs a time in (0, \(sde.T)] (got \(t))") }
        let (mt, st) = sde.marginal(at: t)
        let s = try base.score(x, at: t)
        // Residuals r = y − A x̂₀ per row.
        var xhat = x
        xhat.add(s, scaledBy: st * st)
        xhat.scale(by: 1 / mt)
        let axhat = try ms.apply(xhat)
        var residual = Tensor(zeros: [n, m])
        for r in 0 ..< n {
            let o = (ms.observation.rows == 1 ? 0 : r) * m
            for i in 0 ..< m { residual.storage[r * m + i] = ms.observation.storage[o + i] - axhat.storage[r * m + i] }
        }
        // Weights w (m per row) of the gradient direction Aᵀ w.
        var w = Tensor(zeros: [n, m])
        switch likelihood {
        case .dps(let zeta):
            for r in 0 ..< n {
                var norm = 0.0
                for i in 0 ..< m { norm += residual.storage[r * m + i] * residual.storage[r * m + i] }
                norm = norm.squareRoot()
                if norm > 0 { for i in 0 ..< m { w.storage[r * m + i] = zeta * residual.storage[r * m + i] / norm } }
            }
        case .pseudoinverse(let v, _):
            let r2 = v * st * st / (st * st + mt * mt * v)
            var cy = Dense.multiply(ms.a, Dense.transpose(ms.a, m, d), m, d, m)
            for i in 0 ..< m * m { cy[i] *= r2 }
            for i in 0 ..< m { cy[i * m + i] += ms.noiseStd * ms.noiseStd }
            guard let l = Dense.cholesky(cy, m) else {
                throw ScoreSDEError.nonFinite("σ_y² I + r_t² A Aᵀ is singular at t = \(t); use a noise std > 0 or stop the sampler at eps > 0")
            }
            for r in 0 ..< n {
                var b = Array(residual.storage[r * m ..< (r + 1) * m])
                Dense.choleskySolve(l, m, &b)
                for i in 0 ..< m { w.storage[r * m + i] = b[i] }
            }
        case .tweedieCovariance:
            // A J Aᵀ per row from m JVPs along the rows of A.
            var ajat = [Double](repeating: 0, count: n * m * m)
            var dir = Tensor(zeros: x.shape)   // row i of A in every row, refilled per i
            for i in 0 ..< m {
                for r in 0 ..< n { for j in 0 ..< d { dir.storage[r * d + j] = ms.a[i * d + j] } }
                let jv = try base.scoreAndJVP(x, at: t, direction: dir).jvp
                let ajv = try ms.apply(jv)   // column i of A J Aᵀ
                for r in 0 ..< n { for q in 0 ..< m { ajat[r * m * m + q * m + i] = ajv.storage[r * m + q] } }
            }
            let aat = Dense.multiply(ms.a, Dense.transpose(ms.a, m, d), m, d, m)
            let c = st * st / (mt * mt)
            for r in 0 ..< n {
                var cy = [Double](repeating: 0, count: m * m)
                for q in 0 ..< m * m { cy[q] = c * (aat[q] + st * st * ajat[r * m * m + q]) }
                cy = Dense.symmetrized(cy, m)
                for q in 0 ..< m { cy[q * m + q] += ms.noiseStd * ms.noiseStd }
                var b = Array(residual.storage[r * m ..< (r + 1) * m])
                if let l = Dense.cholesky(cy, m) {
                    Dense.choleskySolve(l, m, &b)
                } else {
                    // A learned Jacobian can make the covariance indefinite: clamp its spectrum.
                    let (lambda, vecs) = Dense.symmetricEigen(cy, m)
                    let floor = max(1e-12 * (lambda.first ?? 1), 1e-300)
                    var out = [Double](repeating: 0, count: m)
                    for j in 0 ..< m {
                        var proj = 0.0
                        for q in 0 ..< m { proj += vecs[q * m + j] * b[q] }
                        proj /= max(lambda[j], floor)
                        for q in 0 ..< m { out[q] += vecs[q * m + j] * proj }
                    }
                    b = out
                }
                for i in 0 ..< m { w.storage[r * m + i] = b[i] }
            }
        }
        // g = Aᵀ w; guidance = (g + s² J g) / m.
        let g = try ms.applyTransposed(w).reshaped(x.shape)
        var out = s
        if case .pseudoinverse(let v, true) = likelihood {
            out.add(g, scaledBy: weight * mt * v / (st * st + mt * mt * v))
            try out.checkFinite("the measurement-guided score")
            return out
        }
        let jg = try base.scoreAndJVP(x, at: t, direction: g).jvp
        out.add(g, scaledBy: weight / mt, jg, scaledBy: weight * st * st / mt)
        try out.checkFinite("the measurement-guided score")
        return out
    }
}

import Foundation

// MARK: - Measurement guidance (DPS, ΠGDM, Tweedie-moment)

/// How ``MeasurementGuidedScore`` approximates `p_t(y | x) = ∫ p(y | x₀) p(x₀ | x_t = x) dx₀`.
/// All three use the Tweedie mean `x̂₀(x) = (x + s² ∇log p_t(x)) / m` and differentiate through it,
/// `∂x̂₀/∂x = (I + s² J) / m` with `J = ∂s/∂x`. The gradient needs the vector–Jacobian product
/// `Jᵀ g`: a model that provides it (``ScoreVJPProviding``, e.g. ``UNetScore`` through its backward
/// pass) is differentiated exactly as DPS's autograd does; otherwise its JVP `J g` is used, which is
/// the same for a true score (`J` symmetric).
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
public struct MeasurementGuidedScore<Base: ScoreModel>: ScoreModel {
    public let base: Base
    public let sde: any ForwardSDE
    public let measurement: LinearMeasurement
    public let likelihood: MeasurementLikelihood
    /// Weight `w` of the measurement term (1: Bayes' rule).
    public let weight: Double

    /// - Throws: `shapeMismatch` when `A` does not fit the model's rows; `invalidParameter` for a
    ///   non-positive data variance or step scale, a non-finite weight, or a likelihood that
    ///   differentiates through a model with neither Jacobian–vector nor vector–Jacobian products.
    public init(base: Base, sde: any ForwardSDE, measurement: LinearMeasurement,
                likelihood: MeasurementLikelihood = .tweedieCovariance, weight: Double = 1) throws {
        if let shape = base.rowShape, shape.reduce(1, *) != measurement.dimension {
            throw ScoreSDEError.shapeMismatch("the measurement matrix has \(measurement.dimension) columns but the model's rows have \(shape.reduce(1, *)) values")
        }
        switch likelihood {
        case .dps(let z): try requireParameter(z.isFinite && z > 0, name: "likelihood", value: likelihood, requirement: "a DPS step scale that is finite and > 0")
        case .pseudoinverse(let v, _): try requireParameter(v.isFinite && v > 0, name: "likelihood", value: likelihood, requirement: "a ΠGDM data variance that is finite and > 0")
        case .tweedieCovariance: break
        }
        try requireParameter(weight.isFinite, name: "weight", value: weight, requirement: "finite (the guidance weight)")
        if case .pseudoinverse(_, true) = likelihood {} else {
            try requireParameter(base is any ScoreJacobianProviding || base is any ScoreVJPProviding,
                                 "this measurement likelihood differentiates through the model, which provides neither Jacobian–vector nor vector–Jacobian products; use the Jacobian-free ΠGDM (pseudoinverse with jacobianFree)")
        }
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
        // One observation per sample of the whole batch: a sampler's split call (``ScoreBatch``)
        // takes its rows' slice, so per-sample observations work with any batch size.
        try ms.checkRowSize(x)
        guard let observed = ScoreBatch.tableRows(of: ms.observation.rows, rows: n) else { throw ms.rowCountMismatch(n, "rows in this call") }
        guard t.isFinite, t > 0, t <= sde.T else { throw ScoreSDEError.invalid("t", t, must: "in (0, \(sde.T)] (measurement guidance)") }
        let (mt, st) = sde.marginal(at: t)
        let s = try base.score(x, at: t)
        // Residuals r = y − A x̂₀ per row.
        var xhat = x
        xhat.add(s, scaledBy: st * st)
        xhat.scale(by: 1 / mt)
        let axhat = try ms.apply(xhat)
        var residual = Tensor(zeros: [n, m])
        for r in 0 ..< n {
            let o = observed[r] * m
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
                let jv = try jacobianProduct(x, at: t, dir)
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
        let jg = try jacobianProduct(x, at: t, g)
        out.add(g, scaledBy: weight / mt, jg, scaledBy: weight * st * st / mt)
        try out.checkFinite("the measurement-guided score")
        return out
    }

    /// `J v` from the model's JVP, or `Jᵀ v` from its VJP when it has no JVP (equal for a true score;
    /// the VJP is the exact gradient through a network, as autograd computes DPS).
    private func jacobianProduct(_ x: Tensor, at t: Double, _ v: Tensor) throws -> Tensor {
        if let j = base as? any ScoreJacobianProviding { return try j.scoreAndJVP(x, at: t, direction: v).jvp }
        if let j = base as? any ScoreVJPProviding { return try j.scoreAndVJP(x, at: t, cotangent: v).vjp }
        throw ScoreSDEError.invalidArgument("the model provides neither Jacobian–vector nor vector–Jacobian products")
    }
}

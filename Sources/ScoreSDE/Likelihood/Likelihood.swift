import Foundation

/// How the divergence of the probability-flow drift is computed inside the likelihood ODE.
public enum DivergenceEstimator: Sendable, Equatable {
    /// Exactly: the model's closed form (`ScoreDivergenceProviding`, O(K·D) for mixtures), else
    /// `D` Jacobian–vector products (`ScoreJacobianProviding`) or vector–Jacobian products
    /// (`ScoreVJPProviding`, a network's backward pass).
    case exact
    /// Hutchinson's estimator `E[vᵀ (∂s/∂x) v]` with `probes` Rademacher (±1) vectors, drawn once
    /// per solve and averaged (the reference uses one).
    case rademacher(probes: Int)
    /// Hutchinson's estimator with standard normal probes.
    case gaussian(probes: Int)
}

/// How bits/dim are reported.
public enum BitsPerDimConvention: Sendable, Equatable, CustomStringConvertible {
    /// Continuous data: `bpd = −log p(x) / (D ln 2)`, no offset.
    case continuous
    /// 8-bit images scaled to [0, 1]: `bpd = −log p(x) / (D ln 2) + 8` (the density of the
    /// 256-level pixel values; the reference's offset for uncentered data).
    case unitInterval
    /// 8-bit images scaled to [−1, 1]: offset 7 (the reference's offset for centered data).
    case symmetric

    /// The data space of a model trained on `m = scale · x + shift` or `m = scale · logit(…) + shift`
    /// (a learned model's ``DataScaling``): the log-likelihood is given for `x`,
    /// `log p(x) = log p_model(m) + Σⱼ log |∂mⱼ/∂xⱼ|` (the change of variables,
    /// ``DataScaling/logJacobian(atModel:)``), and `bpd = −log p(x) / (D ln 2)`: for an affine map the
    /// model-space value plus `−log₂|scale|`, for a logit stage a per-sample correction.
    case dataSpace(DataScaling)

    /// What is added to `−log p_model / (D ln 2)` (the model-space bits/dim) to give bits/dim when
    /// it is the same for every sample; nil for a logit data transform (see ``logJacobian(atModel:)``).
    public var constantOffset: Double? {
        switch self {
        case .continuous: 0
        case .unitInterval: 8
        case .symmetric: 7
        case .dataSpace(let s): s.isAffine ? -log2(abs(s.scale)) : nil
        }
    }

    /// ``constantOffset``, or 0 when it depends on the sample.
    public var offset: Double { constantOffset ?? 0 }

    /// What is added to the model-space log-likelihood of each row of model-space points `x` to give
    /// the reported one: ``DataScaling/logJacobian(atModel:)`` for ``dataSpace(_:)``, 0 otherwise.
    public func logJacobian(atModel x: Tensor) -> [Double] {
        if case .dataSpace(let s) = self { return s.logJacobian(atModel: x) }
        return [Double](repeating: 0, count: x.rows)
    }

    public var description: String {
        switch self {
        case .continuous: "continuous data: bits/dim = -log p(x) / (D ln 2), no offset"
        case .unitInterval: "8-bit data scaled to [0, 1]: bits/dim = -log p(x) / (D ln 2) + 8"
        case .symmetric: "8-bit data scaled to [-1, 1]: bits/dim = -log p(x) / (D ln 2) + 7"
        case .dataSpace(let s) where s.isAffine:
            "data space of the model (\(s)): log p(x) = log p_model(model) + D log|scale|, bits/dim = -log p(x) / (D ln 2) = model-space bits/dim + \(String(format: "%.5g", -log2(abs(s.scale))))"
        case .dataSpace(let s):
            "data space of the model (\(s)): log p(x) = log p_model(model) + sum_j log|d model_j / dx_j| (per sample), bits/dim = -log p(x) / (D ln 2)"
        }
    }
}

/// Per-sample likelihoods and what they cost.
public struct LikelihoodResult: Sendable {
    /// `log p_eps(x)` in nats, one per sample (of the data in the convention's space: plus
    /// ``BitsPerDimConvention/logJacobian(atModel:)`` for ``BitsPerDimConvention/dataSpace(_:)``).
    public let logLikelihood: [Double]
    /// Bits per dimension under `convention`.
    public let bitsPerDim: [Double]
    /// The latents `x(T)`.
    public let latents: Tensor
    /// `log p_T(x(T))`: the prior's, or `terminalLogDensity`'s.
    public let priorLogDensity: [Double]
    /// `∫_eps^T ∇·f̃ dt` per sample.
    public let deltaLogP: [Double]
    /// The change-of-variables term per sample (``BitsPerDimConvention/logJacobian(atModel:)``):
    /// ``logLikelihood`` = ``priorLogDensity`` + ``deltaLogP`` + this.
    public let logJacobian: [Double]
    public let convention: BitsPerDimConvention
    /// Batched score-model evaluations: one per right-hand side with a closed-form divergence,
    /// D with exact divergence through JVPs, K with K Hutchinson probes (each JVP call also
    /// yields the score). The integrator's right-hand-side count is in `statistics`.
    public let scoreEvaluations: Int
    public let statistics: ODERunStatistics
}

/// Exact log-likelihood by the instantaneous change of variables along the probability-flow ODE
/// (Song et al. 2021, App. D.2): integrate `[x; Δlog p]` from `eps` to `T` with
/// `dΔlog p/dt = ∇·f̃`, `f̃ = a x − ½ g² s`, then `log p_eps(x) = log p_T(x(T)) + Δlog p`.
///
///     let ll = Likelihood(sde: sde, score: score, estimator: .exact, eps: 1e-5,
///                         solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5))
///     let r = try ll.evaluate(x, using: &rng)               // r.logLikelihood, r.bitsPerDim
public struct Likelihood<SDE: ForwardSDE, Score: ScoreModel> {
    public var sde: SDE
    public var score: Score
    public var estimator: DivergenceEstimator
    public var eps: Double
    public var solver: ODESolverOptions
    public var layout: ODESystemLayout
    public var convention: BitsPerDimConvention
    public var batchSize: Int?
    /// `log p_T` at the latents. nil: the SDE's prior (the reference's choice, exact only as far as
    /// `p_T` equals the prior). For a Gaussian mixture pass its exact `log p_T`, which removes the
    /// prior mismatch and makes the result exact up to the solver tolerance.
    public var terminalLogDensity: (@Sendable (Tensor) throws -> [Double])?

    public init(sde: SDE, score: Score, estimator: DivergenceEstimator, eps: Double, solver: ODESolverOptions,
                layout: ODESystemLayout = .batch, convention: BitsPerDimConvention = .continuous, batchSize: Int? = nil,
                terminalLogDensity: (@Sendable (Tensor) throws -> [Double])? = nil) {
        self.sde = sde; self.score = score; self.estimator = estimator; self.eps = eps; self.solver = solver
        self.layout = layout; self.convention = convention; self.batchSize = batchSize
        self.terminalLogDensity = terminalLogDensity
    }

    /// Log-likelihoods of the rows of `data` (Hutchinson probes come from `rng`; row `r` of the
    /// data gets the probes of row `r`, so results do not depend on the batch split).
    public func evaluate(_ data: Tensor, using rng: inout RandomSource) throws -> LikelihoodResult {
        try score.validate(data)
        try data.checkFinite("the data")
        guard data.rows > 0 else { throw ScoreSDEError.invalid("data", "\(data.rows) rows", must: "at least one row to evaluate") }
        let divergence = try makeDivergence(for: data, using: &rng)
        let flow = ProbabilityFlow(sde: sde, score: score, solver: solver, batchSize: batchSize)
        var x = data
        let (delta, stats) = try flow.integrate(&x, from: eps, to: sde.T, layout: layout, divergence: divergence)
        let prior = try terminalLogDensity?(x) ?? sde.priorLogDensity(x)
        let d = Double(data.rowSize)
        let modelSpace = zip(prior, delta).map { $0 + $1 }
        let jacobian = convention.logJacobian(atModel: data)
        let ll = zip(modelSpace, jacobian).map { $0 + $1 }
        let bpd = convention.constantOffset.map { o in modelSpace.map { -$0 / (d * M_LN2) + o } } ?? ll.map { -$0 / (d * M_LN2) }
        for v in ll where !v.isFinite {
            throw ScoreSDEError.nonFinite("a log-likelihood came out non-finite; tighten the tolerances or check the model")
        }
        return LikelihoodResult(logLikelihood: ll, bitsPerDim: bpd, latents: x, priorLogDensity: prior, deltaLogP: delta, logJacobian: jacobian,
                                convention: convention, scoreEvaluations: stats.scoreEvaluations, statistics: stats)
    }

    /// The divergence oracle for the rows of `data`, with Hutchinson probes drawn once for the
    /// whole solve (per row of `data`; a per-sample system uses its own row's probes).
    private func makeDivergence(for data: Tensor, using rng: inout RandomSource) throws -> ProbabilityFlow<SDE, Score>.Divergence {
        let score = self.score
        // Passes per batched call: the model's for a score or JVP (a forward pass carrying its
        // tangent), twice that for a VJP (a forward and a backward pass).
        let passes = score.passesPerEvaluation
        switch estimator {
        case .exact:
            if let m = score as? any ScoreDivergenceProviding {
                return { x, t, _ in let (s, div) = try m.scoreAndDivergence(x, at: t); return (s, div, 1, passes) }
            }
            // Diagonal entry j of J per row: component j of J e_j, or equally of Jᵀ e_j.
            let product = try jacobianProduct(score)
            return { x, t, _ in
                let n = x.rows, d = x.rowSize
                var div = [Double](repeating: 0, count: n)
                var s = x
                for j in 0 ..< d {
                    var e = Tensor(zeros: x.shape)
                    for r in 0 ..< n { e.storage[r * d + j] = 1 }
                    let (sc, jv) = try product.apply(x, t, e)
                    s = sc
                    for r in 0 ..< n { div[r] += jv.storage[r * d + j] }
                }
                return (s, div, d, d * product.passes)
            }
        case .rademacher(let k), .gaussian(let k):
            guard k >= 1 else { throw ScoreSDEError.invalid("probes", k, must: ">= 1 (the number of Hutchinson probes)") }
            let product = try jacobianProduct(score)
            var probes = [Tensor]()
            for _ in 0 ..< k {
                if case .gaussian = estimator { probes.append(.standardNormal(like: data, using: &rng)) }
                else { probes.append(.rademacher(shape: data.shape, using: &rng)) }
            }
            let all = probes
            // vᵀ J v = vᵀ Jᵀ v: a JVP or a VJP along the probe gives the same estimate.
            return { x, t, firstRow in
                var div = [Double](repeating: 0, count: x.rows)
                var s = x
                for p in all {
                    let v = x.rows == p.rows ? p : p.rows(firstRow ..< firstRow + x.rows)
                    let (sc, jv) = try product.apply(x, t, v)
                    s = sc
                    for (r, q) in v.rowDots(jv).enumerated() { div[r] += q / Double(k) }
                }
                return (s, div, k, k * product.passes)
            }
        }
    }

    /// The model's Jacobian product for trace estimation: `J v` (``ScoreJacobianProviding``,
    /// preferred) or `Jᵀ v` (``ScoreVJPProviding``), with the model passes one call costs.
    private func jacobianProduct(_ score: Score) throws
        -> (apply: @Sendable (Tensor, Double, Tensor) throws -> (Tensor, Tensor), passes: Int) {
        if let m = score as? any ScoreJacobianProviding {
            return ({ x, t, v in try m.scoreAndJVP(x, at: t, direction: v) }, score.passesPerEvaluation)
        }
        if let m = score as? any ScoreVJPProviding {
            return ({ x, t, v in try m.scoreAndVJP(x, at: t, cotangent: v) }, 2 * score.passesPerEvaluation)
        }
        throw missingJacobian()
    }

    private func missingJacobian() -> ScoreSDEError {
        .invalidArgument("this score model provides neither its divergence nor Jacobian–vector or vector–Jacobian products, which the likelihood needs; conform it to ScoreJacobianProviding or ScoreVJPProviding")
    }
}

/// The row of the batch a per-sample system integrates (set by the solver for its callbacks).
enum ProbabilityFlowRow {
    @TaskLocal static var current: Int?
}

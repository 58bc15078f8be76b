/// A model of the score `∇ₓ log p_t(x)` of the perturbed data distribution.
///
/// Batched: one call scores the whole batch at one time `t`, or each row at its own time
/// (``score(_:at:into:)-(_,[Double],_)``, what a per-sample adaptive solver such as
/// ``AdaptiveSDESampler`` needs). Implementations must be thread-safe (`Sendable`) and should not
/// keep per-call state.
///
///     struct Zero: ScoreModel {
///         var rowShape: [Int]? { nil }
///         func score(_ x: Tensor, at t: Double) throws -> Tensor { Tensor(zeros: x.shape) }
///     }
public protocol ScoreModel: Sendable {
    /// The shape of one sample this model accepts, or `nil` for any.
    var rowShape: [Int]? { get }
    /// The score of every row of `x` at time `t`; same shape as `x`.
    func score(_ x: Tensor, at t: Double) throws -> Tensor
    /// The score written into `out` (already shaped like `x`), so samplers can reuse one buffer
    /// across steps. The default calls `score(_:at:)`; models override it to avoid the allocation.
    func score(_ x: Tensor, at t: Double, into out: inout Tensor) throws
    /// The score of row `i` of `x` at time `times[i]` written into `out` (reshaped to `x`'s shape if
    /// it differs): `times.count == x.rows`. Row `i` equals the single-time call on that row at
    /// `times[i]` (to the rounding of a batched product). One call is one evaluation (one batched
    /// call: NFE counts it once). The default groups the rows by equal time and calls
    /// ``score(_:at:into:)-(_,Double,_)`` once per group (correct for any model; a network that
    /// embeds time per row overrides it to make one pass).
    ///
    /// - Throws: `shapeMismatch` unless `times.count == x.rows`.
    func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws
    /// Model passes (network forward passes, Jacobian products) one call of `score` costs:
    /// 1 for a plain model, more for guided combinations. Samplers report NFE and passes.
    var passesPerEvaluation: Int { get }
}

extension ScoreModel {
    public func score(_ x: Tensor, at t: Double, into out: inout Tensor) throws {
        out = try score(x, at: t)
    }
    public var passesPerEvaluation: Int { 1 }

    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        try checkTimes(times, x)
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        if let t = times.first, times.allSatisfy({ $0 == t }) { return try scoreChecked(x, at: t, into: &out) }
        try ScoreBatch.forEachTimeGroup(times) { rows, t in
            let part = try scoreChecked(x.gatherRows(rows), at: t)
            out.scatterRows(rows, from: part)
        }
    }

    /// The score of row `i` of `x` at time `times[i]` (see ``score(_:at:into:)-(_,[Double],_)``).
    public func score(_ x: Tensor, at times: [Double]) throws -> Tensor {
        var out = Tensor(zeros: x.shape)
        try score(x, at: times, into: &out)
        return out
    }

    /// Throws `shapeMismatch` unless there is one time per row of `x`.
    public func checkTimes(_ times: [Double], _ x: Tensor) throws {
        guard times.count == x.rows else {
            throw ScoreSDEError.shapeMismatch("\(times.count) times for \(x.rows) rows: give one time per row")
        }
    }

    /// The single-time score, throwing `shapeMismatch` when the model returns another shape.
    func scoreChecked(_ x: Tensor, at t: Double) throws -> Tensor {
        let s = try score(x, at: t)
        guard s.shape == x.shape else {
            throw ScoreSDEError.shapeMismatch("the score model returned shape \(s.shape) for input \(x.shape)")
        }
        return s
    }

    /// ``scoreChecked(_:at:)`` into `out`.
    func scoreChecked(_ x: Tensor, at t: Double, into out: inout Tensor) throws {
        try score(x, at: t, into: &out)
        guard out.shape == x.shape else {
            throw ScoreSDEError.shapeMismatch("the score model returned shape \(out.shape) for input \(x.shape)")
        }
    }
}

extension ScoreModel {
    /// Throws `shapeMismatch` when `x`'s row shape is not the model's.
    public func validate(_ x: Tensor) throws {
        if let s = rowShape, s.reduce(1, *) != x.rowSize {
            throw ScoreSDEError.shapeMismatch("the model takes samples of shape \(s) (\(s.reduce(1, *)) values) but the data has rows of shape \(x.rowShape) (\(x.rowSize) values)")
        }
    }
}

/// A model whose score Jacobian–vector products are available (`J v` with `J = ∂s/∂x`),
/// which makes exact and Hutchinson likelihoods possible.
public protocol ScoreJacobianProviding: ScoreModel {
    /// The score and `J(x) v` for each row (`v` has the shape of `x`).
    func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor) throws -> (score: Tensor, jvp: Tensor)
}

/// A model whose score vector–Jacobian products are available (`Jᵀ u` with `J = ∂s/∂x`): what a
/// network's backward pass gives (one forward and one backward pass for the whole batch).
///
/// Enough for the divergence, since `uᵀ J u = uᵀ Jᵀ u` and `(Jᵀ e_j)_j = J_jj`, so the likelihood's
/// exact and Hutchinson estimators accept it in place of ``ScoreJacobianProviding``. It is not a
/// Jacobian–vector product: a learned score's Jacobian is not symmetric, so code that needs `J v`
/// itself (measurement guidance, implicit ODE steps) still asks for ``ScoreJacobianProviding``.
public protocol ScoreVJPProviding: ScoreModel {
    /// The score and `J(x)ᵀ u` for each row (`u` has the shape of `x`).
    func scoreAndVJP(_ x: Tensor, at t: Double, cotangent u: Tensor) throws -> (score: Tensor, vjp: Tensor)
}

/// A model that knows the divergence of its score, `∇·s = tr ∂s/∂x`, in closed form.
public protocol ScoreDivergenceProviding: ScoreModel {
    /// The score and its divergence for each row.
    func scoreAndDivergence(_ x: Tensor, at t: Double) throws -> (score: Tensor, divergence: [Double])
}

/// Turns a noise-prediction model `ε(x, t)` (trained so that `x_t = m x₀ + s ε`) into a score:
/// `s(x, t) = −ε(x, t) / std(t)`.
public struct NoisePredictionScore<SDE: ForwardSDE>: ScoreModel {
    public let sde: SDE
    public let rowShape: [Int]?
    public let predictNoise: @Sendable (Tensor, Double) throws -> Tensor

    public init(sde: SDE, rowShape: [Int]? = nil, predictNoise: @escaping @Sendable (Tensor, Double) throws -> Tensor) {
        self.sde = sde; self.rowShape = rowShape; self.predictNoise = predictNoise
    }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        var e = try predictNoise(x, t)
        guard e.shape == x.shape else {
            throw ScoreSDEError.shapeMismatch("the noise-prediction model returned shape \(e.shape) for input \(x.shape)")
        }
        e.scale(by: -1 / sde.marginal(at: t).std)
        return e
    }
}

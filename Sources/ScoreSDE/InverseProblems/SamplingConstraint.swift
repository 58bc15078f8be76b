import Foundation

/// Where in a sampler's loop a constraint is applied.
public enum ConstraintPhase: String, Sendable, CaseIterable {
    /// Once, on the initial state at `grid.times[0]`, before the first update.
    case start
    /// After a corrector update (its noise-free mean is not used by the sampler).
    case corrector
    /// After a predictor update; `mean` is the update's noise-free mean (the output after the last step).
    case predictor
    /// On the final Tweedie estimate (`FinalDenoising.tweedie`); `x` and `mean` are both the estimate, at time 0.
    case final
    /// After a RePaint jump (``Resampling``) carried the state forward from `updateTime` back to `time`
    /// with the unconditional forward kernel (`mean` is not used).
    case jump
}

/// What a constraint is told about the update it follows.
public struct ConstraintContext: Sendable {
    public let phase: ConstraintPhase
    /// The time the state represents now: `next` after a predictor step from `t` to `next`, `t`
    /// after a corrector step at `t`, the grid's first time at `.start`, 0 at `.final`.
    public let time: Double
    /// The time the update evaluated the score at (`t` for a predictor step `t → next`): the time
    /// score_sde's inpainter and colorizer noise the observation at.
    public let updateTime: Double
    /// Index of the grid interval (0 at `.start`) and the number of intervals.
    public let step: Int, steps: Int
    /// The forward SDE being reversed (its `marginal(at:)` noises observations).
    public let sde: any ForwardSDE

    public init(phase: ConstraintPhase, time: Double, updateTime: Double, step: Int, steps: Int, sde: any ForwardSDE) {
        self.phase = phase; self.time = time; self.updateTime = updateTime; self.step = step; self.steps = steps; self.sde = sde
    }

    /// The time a replacement constraint noises its observation at: `time` (paper), or
    /// `updateTime` (score_sde) — except after a RePaint jump, which has no reference form.
    public func noiseTime(_ reference: Bool) -> Double { reference && phase != .jump ? updateTime : time }
}

/// A hook a ``PCSampler`` applies to the whole population after every corrector and predictor
/// update (and once at the start): how inpainting, colorization and linear inverse problems
/// condition an unconditional score model. Only the score is needed, so constraints work with
/// every predictor and corrector and with exact and learned models alike.
///
///     let sampler = PCSampler(sde: sde, score: model, grid: grid, predictor: ReverseDiffusion(),
///                             corrector: try Langevin(snr: 0.16),
///                             constraint: try Inpainting(observation: y, mask: mask))
///
/// Write your own as a small `Sendable` struct. `x` is the noisy state; `mean` the update's
/// noise-free mean, which the sampler returns after the last step (`FinalDenoising.lastPredictorMean`).
public protocol SamplingConstraint: Sendable {
    /// Checks that the constraint fits the sampler's state (rows and values per row); called once
    /// before sampling.
    func validate(_ x: Tensor) throws
    /// Conditions `x` (and `mean`) after an update.
    func apply(_ x: inout Tensor, mean: inout Tensor, context: ConstraintContext, using rng: inout RandomSource) throws
    /// A closed-form term `∇ₓ log p(y | x_t)` the sampler adds to the score its *corrector* sees
    /// at `t` (on the whole population), or nil (the default): Langevin MCMC must target
    /// `p_t(x | y)`. Predictors keep the plain score. The replacement constraints use it for noisy
    /// observations after their hand-over time (see ``ConstraintConvention``).
    func scoreAdjustment(_ x: Tensor, at t: Double, sde: any ForwardSDE) throws -> Tensor?
}

extension SamplingConstraint {
    public func validate(_ x: Tensor) throws {}
    public func scoreAdjustment(_ x: Tensor, at t: Double, sde: any ForwardSDE) throws -> Tensor? { nil }
}

/// A reverse process whose score includes a constraint's closed-form likelihood term
/// (``SamplingConstraint/scoreAdjustment(_:at:sde:)``): what ``PCSampler`` passes to its corrector
/// when given a constraint. Score evaluations are counted by the base process.
public struct ConditionedReverseProcess<Base: ReverseProcess>: ReverseProcess {
    public let base: Base
    public let constraint: (any SamplingConstraint)?

    public init(base: Base, constraint: (any SamplingConstraint)?) { self.base = base; self.constraint = constraint }

    public var sde: Base.SDE { base.sde }
    public var scoreEvaluations: Int { base.scoreEvaluations }
    public var modelPasses: Int { base.modelPasses }
    public func withScratch<R>(_ body: (inout Tensor) throws -> R) rethrows -> R { try base.withScratch(body) }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        var s = try base.score(x, at: t)
        if let constraint, let term = try constraint.scoreAdjustment(x, at: t, sde: base.sde) {
            guard term.count == s.count else { throw ScoreSDEError.shapeMismatch("the constraint's score term has shape \(term.shape) for input \(x.shape)") }
            s.add(term)
        }
        return s
    }
}

/// Which of score_sde's two conventions a replacement constraint follows (REFERENCE 1.11 quirk 5).
public enum ConstraintConvention: String, Sendable, CaseIterable {
    /// Paper-faithful (default): the observation is noised at the time the state represents after
    /// the update (`next` after a predictor step), the noise-free mean keeps the update's mean in
    /// the unknown coordinates and gets the observation's noise-free mean `m(t) y` in the known
    /// ones, and the initial state gets a forward-noised observation at `T`.
    case paper
    /// score_sde's `get_pc_inpainter` / `get_pc_colorizer`: the observation is noised at the time
    /// the update was evaluated at (`t`, also after the predictor step `t → next`); the mean is
    /// built from the *updated noisy* `x` (`x_mean = x·(1−mask) + m(t)·y·mask`), so the returned
    /// sample carries the last step's noise in the unknown coordinates; the initial state holds the
    /// observation itself, un-noised, in the known coordinates.
    case reference
}

// MARK: - The noise-consistent pinning rule shared by every replacement constraint

/// A known coordinate `v` with observation `y = v₀ + τ ε` is replaced at a time with kernel
/// `(m, s)` by `m y + √(s² − m² τ²) z` whenever `s ≥ m τ`: given `v₀`, that value has exactly the
/// law of the forward-noised coordinate `m v₀ + s z` (the measurement's noise is part of the
/// forward noise). With `τ = 0` this is score_sde's replacement `m y + s z` at every time.
///
/// Observing `y` is thereby identified with observing the forward process at the time `t*` where
/// `s(t*) = m(t*) τ`: `y = v(t*) / m(t*)` (the joint law of `(x₀, y)` is unchanged, so is the
/// posterior). For `t < t*` the constraint stops replacing, and two exact facts take over, both
/// from the Markov property of the forward process (`x_next → x_t → x_t*`):
/// * the reverse transition needs no conditioning, `p(x_next | x_t, y) = p(x_next | x_t)`:
///   predictors use the plain score;
/// * the likelihood of the state is Gaussian, `y | x_t ~ N(v_t / m, τ² − s²/m²)`, so correctors
///   (which must leave `p_t(x | y)` invariant) get `∇ₓ log p(y | x_t) = (y − v/m) / (m (τ² − s²/m²))`
///   along the measured direction (``SamplingConstraint/scoreAdjustment(_:at:sde:)``).
/// The only approximation left is replacement's own, before `t*`.
/// Returns the extra noise std, or nil when the coordinate is not pinned.
@inline(__always)
func pinningStd(meanScale m: Double, std s: Double, tau: Double) -> Double? {
    if tau == 0 { return s }
    let v = s * s - m * m * tau * tau
    return v >= 0 ? v.squareRoot() : nil
}

func checkNoiseStd(_ sigma: Double) throws {
    guard sigma.isFinite, sigma >= 0 else {
        throw ScoreSDEError.invalid("noiseStd", sigma, must: "finite and >= 0", advice: "use 0 for a noise-free observation")
    }
}

/// Validates a per-row (or broadcast) tensor against the state.
func checkBroadcastRows(_ t: Tensor, _ what: String, rowSize: Int, state x: Tensor) throws {
    guard t.rowSize == rowSize else {
        throw ScoreSDEError.shapeMismatch("\(what) has rows of shape \(t.rowShape) (\(t.rowSize) values) but the samples have \(rowSize) values per row (shape \(x.rowShape))")
    }
    guard t.rows == 1 || t.rows == x.rows else {
        throw ScoreSDEError.shapeMismatch("\(what) has \(t.rows) rows; give 1 (shared by every sample) or one per sample (\(x.rows))")
    }
}

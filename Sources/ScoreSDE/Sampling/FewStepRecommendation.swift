/// The project's recommended deterministic few-step sampler for an NFE budget, from the map-RMSE
/// search `scoresde-bench fast-explore` (VP, T = 1 → 1e-3; the ring, gmm64 and four mixtures with
/// unequal weights and diagonal stds in 2–16 D, two latent seeds each; README "Few-step sampling"):
/// ``UniPC`` (bh2) with a step placement chosen per budget —
/// - below 15 NFE: order 2 on ``TimeSpacing/timeQuadratic`` steps (third-order extrapolation
///   overshoots with so few steps);
/// - 15 to 39 NFE: order 3 on ``TimeSpacing/timePower(_:)`` 2.5 steps (uniform in `t^{0.4}`: more
///   steps near eps than time-quadratic), the best geometric mean over the 12 cases at 15 and 20 NFE;
/// - from 40 NFE: order 3 on time-quadratic steps (more steps at high noise, where a latent near a
///   mode boundary chooses its mode).
///
///     let (predictor, spacing) = try FewStepRecommendation.for(nfe: 20)
///     let grid = try TimeGrid.spaced(spacing, steps: 20, from: sde.T, to: 1e-3, sde: sde)
public enum FewStepRecommendation {
    /// The predictor and step spacing for `nfe` score evaluations (one per step).
    /// - Throws: `invalidArgument` unless `nfe >= 2`.
    public static func `for`(nfe: Int) throws -> (predictor: UniPC, spacing: TimeSpacing) {
        try requireParameter(nfe >= 2, "the recommended few-step sampler needs --nfe >= 2 (got \(nfe))")
        return (try UniPC(order: order(nfe: nfe)), spacing(nfe: nfe))
    }

    /// The UniPC order used for `nfe` evaluations.
    public static func order(nfe: Int) -> Int { nfe >= 15 ? 3 : 2 }

    /// The step spacing used for `nfe` evaluations.
    public static func spacing(nfe: Int) -> TimeSpacing { nfe >= 15 && nfe < 40 ? .timePower(2.5) : .timeQuadratic }
}

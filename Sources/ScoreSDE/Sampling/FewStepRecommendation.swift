/// The project's recommended deterministic few-step sampler for an NFE budget, from the map-RMSE
/// benchmark (`scoresde-bench fast`: ring and gmm64, VP, T = 1 → 1e-3; README "Few-step sampling"):
/// ``UniPC`` (bh2) on ``TimeSpacing/timeQuadratic`` steps, order 2 below 20 NFE and order 3 from 20
/// (at 10–15 NFE the third-order extrapolation overshoots on the ring).
///
///     let (predictor, spacing) = try FewStepRecommendation.for(nfe: 20)
///     let grid = try TimeGrid.spaced(spacing, steps: 20, from: sde.T, to: 1e-3, sde: sde)
public enum FewStepRecommendation {
    /// The predictor and step spacing for `nfe` score evaluations (one per step).
    /// - Throws: `invalidArgument` unless `nfe >= 2`.
    public static func `for`(nfe: Int) throws -> (predictor: UniPC, spacing: TimeSpacing) {
        try requireParameter(nfe >= 2, "the recommended few-step sampler needs --nfe >= 2 (got \(nfe))")
        return (try UniPC(order: order(nfe: nfe)), .timeQuadratic)
    }

    /// The UniPC order used for `nfe` evaluations.
    public static func order(nfe: Int) -> Int { nfe >= 20 ? 3 : 2 }
}

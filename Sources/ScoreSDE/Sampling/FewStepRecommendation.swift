/// The project's recommended deterministic few-step sampler for an NFE budget, from the map-RMSE
/// searches `scoresde-bench fast-explore`, `fast-explore2` and `fast-threshold` (VP, T = 1 → 1e-3;
/// the ring, gmm64 and four mixtures with unequal weights and diagonal stds in 2–16 D, two latent
/// seeds each; README "Few-step sampling"): ``UniPC`` (bh2), order 3, with
/// - below 40 NFE: lower orders on the final steps (``DPMSolverPlusPlus/lowerOrderFinal(order:steps:)``)
///   on ``TimeSpacing/timePower(_:)`` 1.5 steps (uniform in `t^{2/3}`: between time-uniform, which
///   the high-dimensional mixtures want, and time-quadratic, which the 2-D ones want) — at least as
///   good as the best DPM-Solver++ variant in 25 of the 36 (mixture, seed, NFE 10/15/20) cases;
/// - from 40 NFE: every step third order on time-quadratic steps (the fewest NFE to map RMSE 1e-3
///   on gmm64: 57–59).
///
///     let (predictor, spacing) = try FewStepRecommendation.for(nfe: 20)
///     let grid = try TimeGrid.spaced(spacing, steps: 20, from: sde.T, to: 1e-3, sde: sde)
public enum FewStepRecommendation {
    /// The predictor and step spacing for `nfe` score evaluations (one per step).
    /// - Throws: `invalidArgument` unless `nfe >= 2`.
    public static func `for`(nfe: Int) throws -> (predictor: UniPC, spacing: TimeSpacing) {
        try requireParameter(nfe >= 2, "the recommended few-step sampler needs --nfe >= 2 (got \(nfe))")
        return (try UniPC(order: order(nfe: nfe), orders: orders(nfe: nfe)), spacing(nfe: nfe))
    }

    /// The UniPC order used for `nfe` evaluations.
    public static func order(nfe: Int) -> Int { 3 }

    /// The per-step orders for `nfe` evaluations (nil: `order` after the warm-up).
    public static func orders(nfe: Int) -> [Int]? { nfe < 40 ? DPMSolverPlusPlus.lowerOrderFinal(order: 3, steps: nfe) : nil }

    /// The step spacing used for `nfe` evaluations.
    public static func spacing(nfe: Int) -> TimeSpacing { nfe < 40 ? .timePower(1.5) : .timeQuadratic }
}

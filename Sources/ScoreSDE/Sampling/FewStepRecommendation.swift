/// The project's recommended deterministic few-step sampler for an NFE budget and a data dimension,
/// from the map-RMSE searches `fastExplore2`, `fastExplore4` and `fastExploreThreshold` (in
/// `Benchmarks/Fast.swift` up to commit 518e5c7; no longer in the benchmark target)
/// (VP, T = 1 → 1e-3; the ring, gmm64, four mixtures with unequal weights and diagonal stds in
/// 2–16 D, and four more in 2–12 D (meant as a hold-out; they also informed the 2-D choice below
/// 15 NFE), two latent seeds each; README "Few-step sampling"):
/// ``UniPC`` (bh2) with lower orders on the final steps
/// (``DPMSolverPlusPlus/lowerOrderFinal(order:steps:)``) on ``TimeSpacing/timePower(_:)`` steps:
/// - data of dimension ≥ 3, below 40 NFE: order 3 on t^1.25 steps (close to time-uniform: the
///   steps at high noise, where a latent near a mode boundary chooses its mode, matter most);
/// - 1-D and 2-D data, below 40 NFE: order 2 on t^2 steps below 15 NFE, order 3 on t^2.5 steps
///   from 15 (more steps near `eps`, where a narrow mode contracts);
/// - from 40 NFE: every step third order on time-quadratic steps.
///
/// Below 40 NFE this is at least as good as the best of twelve DPM-Solver++ variants (2M, 3M,
/// 3M lower-final × time-uniform, time-quadratic, logSNR, Karras) chosen afresh for each case in 58
/// of 60 (mixture, seed, NFE 10/15/20) cases, at most 4% worse in the other two. For a given
/// accuracy rather than a budget, ``AdaptiveUniPC`` needs fewer NFE.
///
///     let (predictor, spacing) = try FewStepRecommendation.for(nfe: 20, dimension: 2)
///     let grid = try TimeGrid.spaced(spacing, steps: 20, from: sde.T, to: 1e-3, sde: sde)
public enum FewStepRecommendation {
    /// The predictor and step spacing for `nfe` score evaluations (one per step) on data with
    /// `dimension` numbers per sample.
    /// - Throws: `invalidParameter` unless `nfe >= 2` and `dimension >= 1`.
    public static func `for`(nfe: Int, dimension: Int) throws -> (predictor: UniPC, spacing: TimeSpacing) {
        try requireParameter(nfe >= 2, name: "nfe", value: nfe, requirement: ">= 2 score evaluations (the recommended few-step sampler)")
        try requireParameter(dimension >= 1, name: "dimension", value: dimension, requirement: ">= 1 (the data dimension)")
        let k = order(nfe: nfe, dimension: dimension)
        return (try UniPC(order: k, orders: orders(nfe: nfe, dimension: dimension)), spacing(nfe: nfe, dimension: dimension))
    }

    /// The UniPC order used for `nfe` evaluations.
    public static func order(nfe: Int, dimension: Int) -> Int { dimension <= 2 && nfe < 15 ? 2 : 3 }

    /// The per-step orders for `nfe` evaluations (nil: `order` after the warm-up).
    public static func orders(nfe: Int, dimension: Int) -> [Int]? {
        nfe < 40 ? DPMSolverPlusPlus.lowerOrderFinal(order: order(nfe: nfe, dimension: dimension), steps: nfe) : nil
    }

    /// The step spacing used for `nfe` evaluations.
    public static func spacing(nfe: Int, dimension: Int) -> TimeSpacing {
        if nfe >= 40 { return .timeQuadratic }
        if dimension >= 3 { return .timePower(1.25) }
        return nfe < 15 ? .timePower(2) : .timePower(2.5)
    }
}

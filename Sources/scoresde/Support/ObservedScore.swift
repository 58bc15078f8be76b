import ScoreSDE

/// A score model that reports the time of every evaluation (to drive a progress indicator) and
/// otherwise forwards to `base`, keeping the Jacobian and divergence abilities the base has, so
/// the likelihood and the implicit ODE methods find them.
struct ObservedScore<Base: ScoreModel>: ScoreModel {
    let base: Base
    /// Called with `t` before each evaluation (from any thread); nil: nothing to report to.
    let observe: (@Sendable (Double) -> Void)?

    var rowShape: [Int]? { base.rowShape }
    var passesPerEvaluation: Int { base.passesPerEvaluation }

    func score(_ x: Tensor, at t: Double) throws -> Tensor {
        observe?(t)
        return try base.score(x, at: t)
    }

    /// Per-row times go to the base in one call; the latest time is reported (the slowest row).
    func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        if let t = times.max() { observe?(t) }
        try base.score(x, at: times, into: &out)
    }
}

extension ObservedScore: ScoreJacobianProviding where Base: ScoreJacobianProviding {
    func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor) throws -> (score: Tensor, jvp: Tensor) {
        observe?(t)
        return try base.scoreAndJVP(x, at: t, direction: v)
    }
}

extension ObservedScore: ScoreVJPProviding where Base: ScoreVJPProviding {
    func scoreAndVJP(_ x: Tensor, at t: Double, cotangent u: Tensor) throws -> (score: Tensor, vjp: Tensor) {
        observe?(t)
        return try base.scoreAndVJP(x, at: t, cotangent: u)
    }
}

extension ObservedScore: ScoreDivergenceProviding where Base: ScoreDivergenceProviding {
    func scoreAndDivergence(_ x: Tensor, at t: Double) throws -> (score: Tensor, divergence: [Double]) {
        observe?(t)
        return try base.scoreAndDivergence(x, at: t)
    }
}

/// `score` wrapped to report to `progress` (always wrapped, so that every run takes the same path).
func observed(_ score: any ScoreModel, by progress: ODEProgress?) -> any ScoreModel {
    func wrap<M: ScoreModel>(_ m: M) -> any ScoreModel {
        ObservedScore(base: m, observe: progress.map { p in { @Sendable t in p.record(t: t) } })
    }
    return wrap(score)
}

import Foundation

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
        guard scale.isFinite else { throw ScoreSDEError.invalid("scale", scale, must: "finite (the guidance scale)") }
        var s = try conditional.score(x, at: t)
        if scale == 0 { return s }
        let u = try unconditional.score(x, at: t)
        guard u.count == s.count else { throw ScoreSDEError.shapeMismatch("conditional and unconditional scores differ in shape: \(s.shape) vs \(u.shape)") }
        s.scale(by: 1 + scale, adding: u, scaledBy: -scale)
        return s
    }

    /// Each row at its own time: both models called with the per-row times, then combined as above.
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        guard scale.isFinite else { throw ScoreSDEError.invalid("scale", scale, must: "finite (the guidance scale)") }
        try checkTimes(times, x)
        var s = try conditional.score(x, at: times)
        if scale != 0 {
            let u = try unconditional.score(x, at: times)
            guard u.count == s.count else { throw ScoreSDEError.shapeMismatch("conditional and unconditional scores differ in shape: \(s.shape) vs \(u.shape)") }
            s.scale(by: 1 + scale, adding: u, scaledBy: -scale)
        }
        out = s
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

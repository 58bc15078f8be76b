import Foundation

/// The reverse-time process of a forward SDE with a score model:
/// `dx = [f(x,t) − g(t)² s(x,t)] dt + g(t) dw̄`, or, as the probability-flow ODE,
/// `dx = [f(x,t) − ½ g(t)² s(x,t)] dt`.
///
/// It is passed to every predictor and corrector step, and every score evaluation goes through
/// it, so it owns the count of score evaluations (NFE).
public protocol ReverseProcess {
    associatedtype SDE: ForwardSDE
    /// The forward SDE being reversed.
    var sde: SDE { get }
    /// The score at `t` of every row of `x` (counted as one evaluation).
    func score(_ x: Tensor, at t: Double) throws -> Tensor
    /// Number of batched score evaluations so far.
    var scoreEvaluations: Int { get }
}

extension ReverseProcess {
    /// The reverse-SDE drift `f − g² s` (or `f − ½ g² s` for the probability flow), one score evaluation.
    public func drift(_ x: Tensor, at t: Double, probabilityFlow: Bool = false) throws -> Tensor {
        var s = try score(x, at: t)
        let g = sde.diffusion(at: t)
        s.scale(by: -(probabilityFlow ? 0.5 : 1) * g * g, adding: x, scaledBy: sde.driftCoefficient(at: t))
        return s
    }

    /// The reverse-SDE diffusion `g(t)` (0 for the probability flow).
    public func diffusion(at t: Double, probabilityFlow: Bool = false) -> Double {
        probabilityFlow ? 0 : sde.diffusion(at: t)
    }
}

/// A forward SDE reversed with a score model. `batchSize` bounds the rows of one model call
/// (memory); results never depend on it.
public final class ReverseSDE<SDE: ForwardSDE, Score: ScoreModel>: ReverseProcess {
    public let sde: SDE
    public let model: Score
    public let batchSize: Int?
    private let lock = NSLock()
    private var evaluations = 0

    public init(sde: SDE, score model: Score, batchSize: Int? = nil) {
        self.sde = sde; self.model = model; self.batchSize = batchSize
    }

    public var scoreEvaluations: Int { lock.lock(); defer { lock.unlock() }; return evaluations }

    /// Adds `n` to the evaluation count (for callers that evaluate the model directly, e.g. JVPs).
    public func countEvaluations(_ n: Int = 1) { lock.lock(); evaluations += n; lock.unlock() }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        countEvaluations()
        guard let b = batchSize, b < x.rows else { return try checked(model.score(x, at: t), x, t) }
        var parts = [Tensor]()
        var lo = 0
        while lo < x.rows {
            let hi = min(x.rows, lo + b)
            parts.append(try model.score(x.rows(lo ..< hi), at: t))
            lo = hi
        }
        return try checked(Tensor.concatenating(parts), x, t)
    }

    private func checked(_ s: Tensor, _ x: Tensor, _ t: Double) throws -> Tensor {
        guard s.shape == x.shape else {
            throw ScoreSDEError.shapeMismatch("the score model returned shape \(s.shape) for input \(x.shape)")
        }
        return s
    }
}

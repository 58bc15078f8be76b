import Foundation

// RePaint (Lugmayr et al. 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic
// Models", Alg. 1): the sampler's intervals are run in blocks, each block `U` times (`count`), and
// between runs the state is carried back up `j` intervals (`jumpLength`) with the forward kernel
// of the diffusion, over the interval `b → a` (`a > b`, from the block's last time back to its first):
//
//     x_a = (m_a/m_b) x_b + √(s_a² − (m_a/m_b)² s_b²) z,   z ~ N(0, I)
//
// (on a DDPM grid with j = 1 this is Alg. 1's `x_t ~ N(√(1 − β_{t−1}) x_{t−1}, β_{t−1} I)`). The
// conditioning itself (RePaint's replacement of the known pixels) is a `SamplingConstraint`
// (`Inpainting`); this file holds the schedule (`Resampling`), the jump, and the exact
// conditional jump of a released noisy observation (`ReleasedJump`).

/// RePaint's resampling schedule (Lugmayr et al. 2022): the sampler's intervals are grouped in
/// blocks of `jumpLength`; each block is run `count` times, and between runs the state is carried
/// back from the block's last time to its first with the forward kernel
/// `x ← (m_a/m_b) x + √(s_a² − (m_a/m_b)² s_b²) z`. Meant for constrained sampling (the
/// constraint's information propagates to the free coordinates over repeated runs); costs
/// `count ×` the NFE. RePaint's images use `count` 10, `jumpLength` 10 on 250 steps.
public struct Resampling: Sendable, Equatable {
    public var count: Int
    public var jumpLength: Int

    /// - Throws: `invalidParameter` unless `count >= 1` and `jumpLength >= 1`.
    public init(count: Int, jumpLength: Int = 1) throws {
        self.count = count; self.jumpLength = jumpLength
        try validate()
    }

    init(uncheckedCount count: Int, jumpLength: Int) { self.count = count; self.jumpLength = jumpLength }

    /// Each interval once.
    public static let none = Resampling(uncheckedCount: 1, jumpLength: 1)

    func validate() throws {
        try requireParameter(count >= 1, name: "count", value: count, requirement: ">= 1 (resamplings per interval)", advice: "1 runs each interval once")
        try requireParameter(jumpLength >= 1, name: "jumpLength", value: jumpLength, requirement: ">= 1 interval (the resampling jump length)")
    }
}

extension ReverseIntegrator {
    /// The moves for `grid`: RePaint blocks of `jumpLength` intervals run `count` times with jumps
    /// between runs; the Tweedie interval (when asked for) comes last, once.
    static func schedule(_ grid: TimeGrid, resampling: Resampling, tweedieLast: Bool) -> [ReverseMove] {
        let intervals = grid.intervals, steps = intervals.count
        let regular = tweedieLast ? steps - 1 : steps
        var moves = [ReverseMove]()
        var blockStart = 0
        while blockStart < regular {
            let blockEnd = min(regular, blockStart + resampling.jumpLength)
            for run in 0 ..< resampling.count {
                if run > 0 { moves.append(.jump(from: grid.times[blockEnd], to: grid.times[blockStart], blockStart: blockStart)) }
                for i in blockStart ..< blockEnd {
                    moves.append(.step(index: i, t: intervals[i].t, next: intervals[i].next, repeated: run < resampling.count - 1))
                }
            }
            blockStart = blockEnd
        }
        if tweedieLast { moves.append(.step(index: steps - 1, t: intervals[steps - 1].t, next: intervals[steps - 1].next, repeated: false)) }
        return moves
    }
}

extension Resampling {
    /// The forward kernel from `next` back to `t > next` (RePaint's jump):
    /// `x ← (m_t/m_n) x + √(s_t² − (m_t/m_n)² s_n²) z`.
    static func forwardJump(_ state: inout Tensor, sde: some ForwardSDE, from next: Double, to t: Double,
                            using rng: inout RandomSource) {
        let (ratio, v) = sde.transition(from: next, to: t)
        state.scale(by: ratio)
        state.addStandardNormal(scaledBy: v.squareRoot(), using: &rng)
    }
}

/// After a RePaint jump `from → to` (forward in diffusion time) in a direction already released
/// (`s(to) < m(to) τ`): the unconditional jump gave `v ~ N(r v_from, q)`; the exact conditional
/// jump also weighs the Gaussian likelihood `m y ~ N(v, R)`, `R = m²τ² − s²`. The
/// perturbed-observation Kalman update `v + K (m y + √R z − v)`, `K = q / (q + R)`, turns the first
/// into a sample of the second.
struct ReleasedJump {
    let gain: Double, scale: Double, noise: Double

    init?(_ context: ConstraintContext, tau: Double) {
        guard context.phase == .jump, tau > 0 else { return nil }
        let (mt, st) = context.sde.marginal(at: context.time), (mn, sn) = context.sde.marginal(at: context.updateTime)
        guard pinningStd(meanScale: mt, std: st, tau: tau) == nil else { return nil }
        let ratio = mt / mn
        let q = max(st * st - ratio * ratio * sn * sn, 0), r = mt * mt * tau * tau - st * st
        gain = q / (q + r); scale = mt; noise = r.squareRoot()
    }

    /// The change of a direction with value `v`, observation `y` (x₀ units) and standard normal `z`.
    @inline(__always) func delta(_ v: Double, _ y: Double, _ z: Double) -> Double { gain * (scale * y + noise * z - v) }
}

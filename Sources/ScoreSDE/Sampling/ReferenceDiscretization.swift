import Foundation
import RealModule

/// The reference implementation's discrete tables (score_sde `sde_lib.py`), for reproducing its
/// samplers exactly: step `i` of `N` reads index `⌊t (N−1)/T⌋` of
/// - VE: `discrete_sigmas = exp(linspace(log σmin, log σmax, N))` (SMLD form, `σ₋₁ = 0`);
/// - VP: `discrete_betas = linspace(βmin/N, βmax/N, N)` (DDPM form; Langevin's `α = 1 − β_i`);
/// - any other SDE: Euler–Maruyama with `dt = T/N` (sub-VP's Langevin α uses VP's betas).
///
/// These coefficients are only right on the grid they were made for, so steps using them
/// ``validate(grid:sde:)`` that the grid is `TimeGrid.uniform(steps: N, from: T, to: eps)` and
/// refuse any other. The library's default is ``StepCoefficients/interval``, correct on any grid.
public struct ReferenceDiscretization: Sendable, Equatable {
    /// The reference's `N`.
    public let steps: Int

    /// - Throws: `invalidParameter` unless `steps >= 1`.
    public init(steps: Int) throws {
        try requireParameter(steps >= 1, name: "steps", value: steps, requirement: ">= 1 (the reference discretization's N)", advice: "the reference uses 1000")
        self.steps = steps
    }

    /// The reference's step index at `t`: `⌊t (N − 1) / T⌋`, clamped to `0..<N`.
    public func index(at t: Double, T: Double) -> Int {
        min(steps - 1, max(0, Int((t * Double(steps - 1) / T).rounded(.down))))
    }

    /// Throws unless `grid` is the reference's grid for this `N` (`linspace(T, eps, N)`, then 0) and
    /// the SDE's tables are valid (VP: `βmax / N < 1`).
    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws {
        let eps = grid.times.count >= 2 ? grid.times[grid.times.count - 2] : 0
        let expected = steps > 1 && eps > 0 && eps < sde.T ? try? TimeGrid.uniform(steps: steps, from: sde.T, to: eps) : nil
        guard grid.steps == steps, steps == 1 ? grid.times == [sde.T, 0] : grid == expected else {
            throw ScoreSDEError.invalidArgument(
                "the reference's discrete coefficients (N = \(steps)) are only valid on its own grid: \(steps) steps starting at linspace(T, eps, \(steps)) and ending at 0; "
                + "this grid has \(grid.steps) steps. Use the interval coefficients (the default), which are correct on any grid, or a grid of exactly N uniform steps")
        }
        if let vp = sde as? VPSDE { try checkBetas(vp.betaMax) }
        if let sub = sde as? SubVPSDE { try checkBetas(sub.betaMax) }
    }

    private func checkBetas(_ betaMax: Double) throws {
        try requireParameter(betaMax / Double(steps) < 1,
                             "the reference's discrete betas need betaMax / N < 1 (got \(betaMax) / \(steps)); use more steps or the interval coefficients")
    }

    /// VE's `discrete_sigmas[i]`.
    func sigma(_ sde: VESDE, _ i: Int) -> Double {
        steps == 1 ? sde.sigmaMin : sde.sigmaMin * Foundation.exp(Double(i) / Double(steps - 1) * sde.logRatio)
    }

    /// VP's `discrete_betas[i]`.
    func beta(_ betaMin: Double, _ betaMax: Double, _ i: Int) -> Double {
        let lo = betaMin / Double(steps), hi = betaMax / Double(steps)
        return steps == 1 ? lo : lo + (hi - lo) * Double(i) / Double(steps - 1)
    }

    /// The discrete forward step at `t`: `x_{i+1} = x_i + driftScale · x_i + G z`.
    public func discretize(_ sde: some ForwardSDE, at t: Double) -> (driftScale: Double, G: Double) {
        let i = index(at: t, T: sde.T)
        if let ve = sde as? VESDE {
            let s = sigma(ve, i), a = i == 0 ? 0 : sigma(ve, i - 1)
            return (0, (s * s - a * a).squareRoot())
        }
        if let vp = sde as? VPSDE {
            let b = beta(vp.betaMin, vp.betaMax, i)
            return ((1 - b).squareRoot() - 1, b.squareRoot())
        }
        let dt = sde.T / Double(steps)
        return (sde.driftCoefficient(at: t) * dt, sde.diffusion(at: t) * dt.squareRoot())
    }

    /// The Langevin corrector's per-step `α_i` (1 − β_i for VP and sub-VP, 1 otherwise).
    public func langevinAlpha(_ sde: some ForwardSDE, at t: Double) -> Double {
        guard let (b0, b1) = vpBetas(sde) else { return 1 }
        return 1 - beta(b0, b1, index(at: t, T: sde.T))
    }

    /// The paper's cumulative `ᾱ_i = ∏_{j≤i}(1 − β_j)` (1 for VE).
    public func cumulativeLangevinAlpha(_ sde: some ForwardSDE, at t: Double) -> Double {
        guard let (b0, b1) = vpBetas(sde) else { return 1 }
        var s = 0.0
        for j in 0 ... index(at: t, T: sde.T) { s += Double.log(onePlus: -beta(b0, b1, j)) }
        return Foundation.exp(s)
    }

    /// The ancestral step at `t` (SMLD for VE, DDPM for VP).
    public func ancestralCoefficients(_ sde: some AncestralSamplable, at t: Double) -> (xScale: Double, scoreScale: Double, noise: Double) {
        let i = index(at: t, T: sde.T)
        if let ve = sde as? VESDE {
            let s = sigma(ve, i), a = i == 0 ? 0 : sigma(ve, i - 1)
            let d = s * s - a * a
            return (1, d, (a * a * d / (s * s)).squareRoot())
        }
        if let vp = sde as? VPSDE {
            let b = beta(vp.betaMin, vp.betaMax, i)
            let r = 1 / (1 - b).squareRoot()
            return (r, b * r, b.squareRoot())
        }
        // An SDE of the user's: its own interval form over the reference's spacing.
        let next = max(0, t - sde.T / Double(steps))
        return sde.ancestralCoefficients(from: t, to: next)
    }

    private func vpBetas(_ sde: some ForwardSDE) -> (Double, Double)? {
        if let vp = sde as? VPSDE { return (vp.betaMin, vp.betaMax) }
        if let sub = sde as? SubVPSDE { return (sub.betaMin, sub.betaMax) }
        return nil
    }
}

/// Where a step's coefficients come from.
public enum StepCoefficients: Sendable, Equatable {
    /// From the interval `t → next` through the SDE's continuous schedule (`transition`, `marginal`):
    /// correct on any grid. The default.
    case interval
    /// From the reference's discrete tables (bitwise score_sde behaviour on its own grid only).
    case reference(ReferenceDiscretization)

    /// Validates the grid for `.reference`; `.interval` accepts any grid.
    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws {
        if case .reference(let r) = self { try r.validate(grid: grid, sde: sde) }
    }
}

import Foundation

/// Heun's method on the probability flow in EDM's variables (Karras et al. 2022, Alg. 1,
/// deterministic): `x̃ = x/m`, `σ = std/m`, `dx̃/dσ = (x̃ − D(x̃; σ))/σ` with `D` the data
/// prediction `(x + std² s)/m`. An Euler step to `σ_next` (which is DDIM), then the trapezoidal
/// correction with the slope at `σ_next`; a step to `t = 0` (σ = 0) is the Euler step alone.
///
/// Order: 2; 2 NFE per step (1 for a step ending at t = 0). Time grid: any (EDM uses
/// ``TimeSpacing/karras(rho:)`` with ρ = 7). Supports: any ``ForwardSDE`` (VE, VP, sub-VP).
public struct EDMHeun: Predictor {
    public init() {}

    /// The step's batch-sized buffers (the two data predictions and the Euler state), made once
    /// per run and reused by every step.
    public struct Workspace: Sendable {
        var d0 = Tensor(zeros: [0]), euler = Tensor(zeros: [0]), d1 = Tensor(zeros: [0])
    }

    public func makeState(for x: Tensor) -> Workspace { Workspace() }

    public func step(_ x: inout Tensor, mean: inout Tensor, state: inout Workspace, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let sde = reverse.sde
        let (mt, st) = sde.noiseLevel(at: t), (mn, sn) = sde.noiseLevel(at: next)
        let sigma = st / mt, sigmaNext = sn / mn
        var d0 = state.d0, euler = state.euler, d1 = state.d1
        state = Workspace()   // the locals are now the buffers' only references: no copy on write
        defer { state.d0 = d0; state.euler = euler; state.d1 = d1 }
        dataPrediction(x, score: try reverse.score(x, at: t), m: mt, std: st, into: &d0)
        // Euler: x̃' = (σn/σ) x̃ + (1 − σn/σ) D, as x' = m_n x̃'.
        euler.setLinearCombination(x, scale: mn / mt * sigmaNext / sigma, [(d0, mn * (1 - sigmaNext / sigma))])
        if sn == 0 { swap(&x, &euler); mean.assign(x); return }
        dataPrediction(euler, score: try reverse.score(euler, at: next), m: mn, std: sn, into: &d1)
        // x̃'' = x̃ + Δ/2 [(x̃ − D)/σ + (x̃' − D')/σn], Δ = σn − σ; x = m_n x̃''.
        let delta = sigmaNext - sigma
        let a = delta / (2 * sigma), b = delta / (2 * sigmaNext)
        x.linearCombination(scale: mn / mt * (1 + a), [(d0, -mn * a), (euler, b), (d1, -mn * b)])
        mean.assign(x)   // a copy into the workspace: aliasing would copy the batch at the next update
    }
}

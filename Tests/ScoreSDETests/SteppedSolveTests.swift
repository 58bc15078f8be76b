import Foundation
import Testing
@testable import ScoreSDE

/// Issue 21, item 1: the fixed-grid integrator and both adaptive integrators are one `SteppedSolve`:
/// a driver written once against the protocol steps each of them to the bytes of its own entry point
/// (`PCSampler.sample(from:)`, `AdaptiveUniPC.decode`, `AdaptiveSDESampler.sample`), and the NFE its
/// last event reports is the result's (one meaning: batched model calls).
@Suite("One stepped solve for every algorithm")
struct SteppedSolveTests {
    /// Steps any solve to the end, counting events and remembering the last NFE.
    func drive<S: SteppedSolve>(_ solve: inout S) throws -> (output: S.Output, events: Int, lastNFE: Int) {
        var events = 0, last = 0
        let output = try solve.solve { e in events += 1; last = e.scoreEvaluations }
        #expect(solve.isFinished)
        return (output, events, last)
    }

    @Test func everyIntegratorRunsThroughTheProtocol() throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(GaussianMixture.ring(), diffusedBy: sde)
        var rng = RandomSource(seed: 11)
        let z = sde.samplePrior(rowShape: [2], count: 40, using: &rng)

        // Fixed grid: DDIM, 10 steps.
        let grid = try TimeGrid.uniform(steps: 10, from: sde.T, to: 1e-3)
        var a = rng; let b = rng
        let pc = try PCSampler(sde: sde, score: score, grid: grid, predictor: DDIM(eta: 0), corrector: NoCorrector(), denoising: .none)
            .sample(from: z, using: &a)
        var fixed = try ReverseIntegrator(sde: sde, score: score, grid: grid, predictor: try DDIM(eta: 0), corrector: NoCorrector(),
                                          denoising: .none, start: z, rng: b)
        let f = try drive(&fixed)
        #expect(f.output.samples.storage.map(\.bitPattern) == pc.samples.storage.map(\.bitPattern))
        #expect(f.events == 10 && f.lastNFE == pc.scoreEvaluations && pc.scoreEvaluations == 10)

        // Adaptive UniPC.
        let unipc = try AdaptiveUniPC(sde: sde, score: score, eps: 1e-3, order: 3, absoluteTolerance: 1e-3, relativeTolerance: 1e-3)
        let decoded = try unipc.decode(z)
        var adaptive = try AdaptiveUniPCIntegrator(solver: unipc, latents: z)
        let u = try drive(&adaptive)
        #expect(u.output.states.storage.map(\.bitPattern) == decoded.states.storage.map(\.bitPattern))
        #expect(u.lastNFE == decoded.scoreEvaluations && u.events == decoded.acceptedSteps + decoded.rejectedSteps)

        // Adaptive SDE: every active row one attempt per step, 2 batched calls per round.
        let sampler = try AdaptiveSDESampler(sde: sde, score: score, eps: 1e-3, absoluteTolerance: 0.003, relativeTolerance: 0.02)
        var c = rng, d = rng
        let sampled = try sampler.sample(from: z, using: &c)
        var stochastic = try AdaptiveSDEIntegrator(solver: sampler, start: z, using: &d)
        let s = try drive(&stochastic)
        #expect(s.output.samples.storage.map(\.bitPattern) == sampled.samples.storage.map(\.bitPattern))
        #expect(s.lastNFE == sampled.scoreEvaluations && sampled.scoreEvaluations == 2 * s.events)
        #expect(sampled.scoreEvaluations == sampled.perSampleEvaluations.max())
    }
}

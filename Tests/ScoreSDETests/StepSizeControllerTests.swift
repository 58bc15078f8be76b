import Foundation
import Testing
@testable import ScoreSDE

// The step-size controller role shared by AdaptiveUniPC and the adaptive SDE solver (issue 21,
// item 2): its norm, its accept/reject rule and its next-step factor; each solver's settings map
// onto it. AdaptiveUniPC's outputs through it are pinned bitwise in SamplerPinTests.

@Suite("Step-size controller")
struct StepSizeControllerTests {
    @Test("tolerance scales: sum (HNW) and max (Gotta Go Fast); the row and batch norms")
    func norms() throws {
        let sum = try StepSizeController(absoluteTolerance: 0.01, relativeTolerance: 0.1, toleranceScale: .sum)
        #expect(sum.scaledSquare(error: 0.03, -2, 1) == (0.03 / (0.01 + 0.1 * 2)) * (0.03 / (0.01 + 0.1 * 2)))
        let max = try StepSizeController(absoluteTolerance: 0.5, relativeTolerance: 0.1, toleranceScale: .max)
        #expect(max.scaledSquare(error: 1, 2, -3) == 4)                     // max(0.5, 0.3) = 0.5
        #expect(max.scaledSquare(error: 1, 20, -3) == 0.25)                 // max(0.5, 2) = 2
        #expect(sum.rowNorm(sumOfSquares: 8, rowSize: 2) == 2)
        var c = sum
        c.norm = .batch
        #expect(c.batchNorm(total: 12, worstRow: 8, values: 3, rowSize: 1) == 2)
        c.norm = .worstRow
        #expect(c.batchNorm(total: 12, worstRow: 8, values: 3, rowSize: 2) == 2)
    }

    @Test("accept at E ≤ 1; the factor θ E^(−r), clamped, no growth after a rejection, never growth on one")
    func decisions() throws {
        let c = try StepSizeController(absoluteTolerance: 1e-3, relativeTolerance: 1e-3, safety: 0.9, exponent: 0.5,
                                       minimumFactor: 0.2, maximumFactor: 2, holdAfterRejection: true)
        let a = c.decide(error: 0.25)
        #expect(a.accepted && a.factor == 0.9 * Foundation.pow(0.25, -0.5))
        #expect(c.decide(error: 1).accepted)
        #expect(c.decide(error: 1e-6).factor == 2)                             // clamped above
        #expect(c.decide(error: 1e-6, afterRejection: true).factor == 1)       // held after a rejection
        let r = c.decide(error: 1e4)
        #expect(!r.accepted && r.factor == 0.2)                                // clamped below
        let near = try StepSizeController(absoluteTolerance: 1, relativeTolerance: 0, safety: 1, exponent: 0.1)
        let n = near.decide(error: 1.0000001)
        #expect(!n.accepted && n.factor < 1)                                   // a rejection never grows the step
        // The order gives r = 1/(k + 1) when no exponent is set; an error of 0 with no floor: +∞.
        let k = try StepSizeController(absoluteTolerance: 1, relativeTolerance: 1, safety: 1)
        #expect(k.decide(error: 0.125, order: 2).factor == Foundation.pow(0.125, -1.0 / 3))
        #expect(k.decide(error: 0).factor == .infinity)
        #expect(throws: ScoreSDEError.self) { _ = try StepSizeController(absoluteTolerance: 0, relativeTolerance: 0) }
        #expect(throws: ScoreSDEError.self) { _ = try StepSizeController(absoluteTolerance: 1, relativeTolerance: 1, safety: 1.5) }
        #expect(throws: ScoreSDEError.self) { _ = try StepSizeController(absoluteTolerance: 1, relativeTolerance: 1, minimumFactor: 2) }
    }

    @Test("each adaptive solver's settings map onto the controller")
    func solverSettings() throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let u = try AdaptiveUniPC(sde: sde, score: score, eps: 1e-3, absoluteTolerance: 2e-4, relativeTolerance: 3e-4, maximumGrowth: 3,
                                  norm: .worstRow).controller
        #expect(u.toleranceScale == .sum && u.norm == .worstRow && u.safety == 0.7 && u.exponent == nil && u.minimumFactor == 0.2
                && u.maximumFactor == 3 && u.errorFloor == 1e-10 && u.holdAfterRejection && u.absoluteTolerance == 2e-4)
        let s = try AdaptiveSDESampler(sde: sde, score: score, eps: 1e-3, absoluteTolerance: 0.01, relativeTolerance: 0.02).controller
        #expect(s.toleranceScale == .max && s.norm == .perSample && s.safety == 0.9 && s.exponent == 0.9 && s.minimumFactor == 0
                && s.maximumFactor == .infinity && !s.holdAfterRejection && s.relativeTolerance == 0.02)
    }
}

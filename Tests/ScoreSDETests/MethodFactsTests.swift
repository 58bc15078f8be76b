import Foundation
import Testing
@testable import ScoreSDE

/// Each few-step method's stated facts (``MethodFacts``) against what the method does: the orders
/// its initialiser accepts, the score evaluations a run of `nfe / evaluationsPerStep` steps spends,
/// and whether two runs from the same start with different random streams agree.
@Suite("Method facts") struct MethodFactsTests {
    static let sde = try! VPSDE()

    static func run(_ p: some Predictor, steps: Int, seed: UInt64) throws -> SamplingResult {
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        var start = RandomSource(seed: 1)
        let x = sde.samplePrior(rowShape: [2], count: 64, using: &start)
        var rng = RandomSource(seed: seed)
        let grid = try TimeGrid.spaced(.logSNR, steps: steps, from: sde.T, to: 1e-3, sde: sde)
        return try PCSampler(sde: sde, score: score, grid: grid, predictor: p, corrector: NoCorrector(), denoising: .none)
            .sample(from: x, using: &rng)
    }

    static func check<P: DescribedPredictor>(_ p: P, order: Int, make: (Int) throws -> P) throws {
        let f = P.facts
        for k in 0 ... 4 {
            let accepted = (try? make(k)) != nil
            #expect(accepted == f.orders.contains(k), "\(f.name) order \(k): initialiser \(accepted ? "accepts" : "refuses") it, facts say \(f.orders)")
            #expect(((try? f.checkOrder(k)) != nil) == f.orders.contains(k))
        }
        #expect(f.orders.contains(f.defaultOrder))
        let steps = 6
        let a = try run(p, steps: steps, seed: 2), b = try run(p, steps: steps, seed: 3)
        #expect(a.scoreEvaluations == steps * f.evaluationsPerStep, "\(f.name): \(a.scoreEvaluations) evaluations in \(steps) steps")
        #expect((a.samples == b.samples) == p.isDeterministic, "\(f.name): deterministic \(p.isDeterministic)")
        #expect(f.minimumEvaluations(order: order) == (f.multistep ? order : 1) * f.evaluationsPerStep)
    }

    @Test func factsMatchTheMethods() throws {
        try Self.check(try DDIM(), order: 1) { k in guard k == 1 else { throw ScoreSDEError.invalidArgument("order") }; return try DDIM() }
        #expect(try DDIM(eta: 1).isDeterministic == false)
        try Self.check(try DPMSolverPlusPlus(order: 3), order: 3) { try DPMSolverPlusPlus(order: $0) }
        try Self.check(try UniPC(order: 2), order: 2) { try UniPC(order: $0) }
        try Self.check(EDMHeun(), order: 2) { k in guard k == 2 else { throw ScoreSDEError.invalidArgument("order") }; return EDMHeun() }
        try Self.check(try SDEDPMSolverPlusPlus(order: 2), order: 2) { try SDEDPMSolverPlusPlus(order: $0) }
        #expect(MethodFacts.orderList(1 ... 3) == "orders 1, 2 and 3" && MethodFacts.orderList(2 ... 2) == "second order")
    }
}

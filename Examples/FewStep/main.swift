// FewStep: samples in 10–20 score evaluations, measured against the exact probability-flow map.
//
//     swift run -c release FewStep --output fewstep.png
//
// Decodes the same latents of the 8-mode ring with DDIM, DPM-Solver++ 3M on logSNR steps (the
// DPM-Solver authors' recommendation), the project's recommended sampler (FewStepRecommendation)
// and the error-controlled AdaptiveUniPC; the truth is a tight GSL solve (rk8pd at 1e-11). Prints
// the map RMSE and NFE of each and draws the 10-NFE samples over the exact images.
import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot


struct FewStepExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "FewStep",
        abstract: "Few-step and adaptive samplers on the ring against the exact probability-flow map.")

    @Option(help: "Where to write the PNG.") var output = "fewstep.png"
    @Option(help: "Number of latents.") var count = 2048

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be >= 1 (got \(count))") }
    }

    func run() throws {
        let sde = try VPSDE(), eps = 1e-3
        let ring = GaussianMixture.ring()
        let score = GaussianMixtureScore(ring, diffusedBy: sde)
        var rng = RandomSource(seed: 2026)
        let z = sde.samplePrior(rowShape: [2], count: count, using: &rng)
        let exact = try ODESampler(sde: sde, score: score, eps: eps,
                                   solver: ODESolverOptions(.rk8pd, absoluteTolerance: 1e-11, relativeTolerance: 1e-11)).decode(z)
        print("ring, \(count) latents, VP, T = 1 -> eps = 1e-3; truth: rk8pd 1e-11 (NFE \(exact.scoreEvaluations))")

        func decode(_ predictor: some Predictor, _ spacing: TimeSpacing, nfe: Int) throws -> SamplingResult {
            let grid = try TimeGrid.spaced(spacing, steps: nfe, from: sde.T, to: eps, sde: sde)
            return try PCSampler(sde: sde, score: score, grid: grid, predictor: predictor, corrector: NoCorrector(), denoising: .none)
                .sample(from: z, using: &rng)
        }
        func rmse(_ x: Tensor) -> Double {
            var s = 0.0
            for i in 0 ..< x.count { let d = x.storage[i] - exact.states.storage[i]; s += d * d }
            return (s / Double(x.count)).squareRoot()
        }

        var panels = [RasterImage]()
        print("map RMSE     NFE 10      NFE 15      NFE 20")
        for name in ["DDIM (time-uniform)", "DPM-Solver++ 3M (logSNR)", "recommended"] {
            var line = name.padding(toLength: 26, withPad: " ", startingAt: 0)
            for nfe in [10, 15, 20] {
                let run: SamplingResult
                switch name {
                case "DDIM (time-uniform)": run = try decode(try DDIM(), .timeUniform, nfe: nfe)
                case "DPM-Solver++ 3M (logSNR)": run = try decode(try DPMSolverPlusPlus(order: 3), .logSNR, nfe: nfe)
                default:
                    let (predictor, spacing) = try FewStepRecommendation.for(nfe: nfe, dimension: 2)
                    run = try decode(predictor, spacing, nfe: nfe)
                }
                precondition(run.scoreEvaluations == nfe)
                line += String(format: "  %.2e  ", rmse(run.samples))
                if nfe == 10 {
                    panels.append(Plot.scatter(run.samples, reference: exact.states, size: 320,
                                               title: "\(name), NFE 10", referenceLabel: "exact images"))
                }
            }
            print(line)
        }
        let adaptive = try AdaptiveUniPC(sde: sde, score: score, eps: eps).decode(z)
        print(String(format: "AdaptiveUniPC (rtol = atol = 5e-4): NFE %d (%d rejected), map RMSE %.2e",
                     adaptive.scoreEvaluations, adaptive.rejectedSteps, rmse(adaptive.states)))
        panels.append(Plot.scatter(adaptive.states, reference: exact.states, size: 320,
                                   title: "AdaptiveUniPC, NFE \(adaptive.scoreEvaluations)", referenceLabel: "exact images"))
        try PNG.write(Plot.sideBySide(panels, padding: 16), to: output)
        print("wrote \(output)")
    }
}
FewStepExample.main()

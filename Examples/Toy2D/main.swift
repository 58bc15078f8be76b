// Toy2D: train a score network on two moons, then sample it four ways.
//
//     swift run -c release Toy2D --output toy2d.png
//
// 1. Trains an MLPScore by denoising score matching (VP SDE) on 10 000 points of Toy2D.moons.
// 2. Samples the learned model with three predictor-corrector combinations and with the
//    probability-flow ODE (adaptive RKF45), prints each sampler's NFE (score-network calls) and
//    its sliced Wasserstein distance to fresh moons data, and writes the panels side by side.
import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

struct Toy2DExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Toy2D",
        abstract: "Train a score model on two moons and compare PC samplers with the probability-flow ODE.")

    @Option(help: "Where to write the PNG (the four sampler panels and the data, side by side).")
    var output = "toy2d.png"
    @Option(help: "Training steps (Adam, batch 256).")
    var trainSteps = 3000
    @Option(help: "Hidden width of the network (2 residual blocks).")
    var hidden = 64
    @Option(help: "Steps of each PC sampler (the ODE chooses its own).")
    var steps = 250
    @Option(help: "Samples drawn by each sampler.")
    var count = 2000
    @Option(help: "Seed of the data, the network's initial weights, training and sampling.")
    var seed: UInt64 = 1

    func validate() throws {
        guard trainSteps >= 1, count >= 2 else { throw ValidationError("--train-steps must be >= 1 and --count >= 2") }
        guard steps >= 1 else { throw ValidationError("--steps must be >= 1 (any grid is a correct sampler)") }
    }

    func run() throws {
        let clock = ContinuousClock(), start = clock.now

        // MARK: Train
        var dataRNG = RandomSource(seed: seed)
        let data = try Toy2D.moons(count: 10_000, using: &dataRNG)
        let config = TrainingConfiguration(
            sde: .vp(betaMin: 0.1, betaMax: 20),
            architecture: MLPArchitecture(rowShape: [2], hiddenWidth: hidden, residualBlocks: 2,
                                          fourierFeatures: 16, fourierScale: 4),
            seed: seed, batchSize: 256, learningRate: 2e-3, warmup: 100, emaRate: 0.995)
        let trainer = try Trainer(configuration: config, data: data)
        var recent = [Double]()
        try trainer.train(steps: trainSteps) { p in
            recent.append(p.loss)
            if p.step % max(1, trainSteps / 5) == 0 || p.step == trainSteps {
                print("train step \(p.step)/\(trainSteps): loss \(fmt(recent.mean(), 4)) (mean of the last \(recent.count))")
                recent.removeAll()
            }
        }
        let model = try trainer.emaModel
        let trained = clock.now
        print("trained in \(seconds(trained - start)) s\n")

        // MARK: Sample
        let sde = try VPSDE(betaMin: 0.1, betaMax: 20)   // continuous: any grid samples it
        let grid = try TimeGrid.uniform(steps: steps, from: sde.T, to: 1e-3)
        var fresh = RandomSource(seed: seed &+ 1000)
        let reference = try Toy2D.moons(count: count, using: &fresh)
        let floor = try slicedWassersteinDistance(try Toy2D.moons(count: count, using: &fresh), reference)
        let bounds: Plot.Bounds = (-2.6, 2.6, -2.6, 2.6)

        var panels = [RasterImage]()
        func report(_ name: String, _ samples: Tensor, nfe: Int, since t0: ContinuousClock.Instant) throws {
            let sw = try slicedWassersteinDistance(samples, reference)
            print("\(name.padding(toLength: 38, withPad: " ", startingAt: 0)) NFE \(String(nfe).padding(toLength: 5, withPad: " ", startingAt: 0)) sliced W2 \(fmt(sw, 4))   (\(seconds(clock.now - t0)) s)")
            panels.append(Plot.scatter(samples, size: 320, bounds: bounds, title: "\(name), NFE \(nfe)"))
        }

        func pc(_ name: String, _ predictor: some Predictor, _ corrector: some Corrector) throws {
            let t0 = clock.now
            var rng = RandomSource(seed: seed &+ 7)
            let run = try PCSampler(sde: sde, score: model, grid: grid, predictor: predictor, corrector: corrector)
                .sample(count: count, using: &rng)
            try report(name, run.samples, nfe: run.scoreEvaluations, since: t0)
        }
        try pc("Euler-Maruyama", EulerMaruyama(), NoCorrector())
        try pc("Reverse diffusion + Langevin", ReverseDiffusion(), try Langevin(snr: 0.16))
        try pc("Ancestral", AncestralSampling(for: sde), NoCorrector())

        let t0 = clock.now
        var rng = RandomSource(seed: seed &+ 7)
        let ode = ODESampler(sde: sde, score: model, eps: 1e-3,
                             solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-4, relativeTolerance: 1e-4))
        let run = try ode.sample(count: count, using: &rng)
        try report("Probability-flow ODE (RKF45, tol 1e-4)", run.states, nfe: run.scoreEvaluations, since: t0)

        panels.append(Plot.scatter(reference, size: 320, bounds: bounds, title: "Fresh moons data", pointsLabel: "data"))
        print("\(count) fresh moons points vs another \(count): sliced W2 \(fmt(floor, 4)) (the floor at this sample size)")
        try PNG.write(Plot.sideBySide(panels, padding: 16, alignment: .bottom), to: output)
        print("wrote \(output); total \(seconds(clock.now - start)) s")
    }
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
func seconds(_ d: Duration) -> String {
    let (s, atto) = d.components
    return fmt(Double(s) + Double(atto) * 1e-18, 1)
}

Toy2DExample.main()

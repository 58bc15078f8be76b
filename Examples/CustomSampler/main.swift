// CustomSampler: a predictor and a corrector of your own, plugged into PCSampler exactly like the
// library's own (EulerMaruyama, ReverseDiffusion, Langevin, ...).
//
//     swift run -c release CustomSampler --output custom.png
//
// Runs them on the 8-mode ring, whose exact score is known (GaussianMixtureScore), and checks the
// fraction of samples in each mode against the truth; then on the shipped digits model (a grid).
import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

// MARK: - A predictor of your own

/// Heun's method (explicit trapezoidal rule) on the probability-flow ODE `dx = [f − ½ g² s] dt`:
/// an Euler step to `next`, then the mean of the drifts at both ends. Deterministic, second order,
/// 2 NFE per step; the last step, which ends at t = 0 where no score exists, stays Euler (as in
/// Karras et al. 2022). Supports: any ForwardSDE.
struct ProbabilityFlowHeun: Predictor {
    func step(_ x: inout Tensor, mean: inout Tensor, state: inout Void, from t: Double, to next: Double,
              along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let dt = next - t                                               // < 0: backwards in time
        let d1 = try reverse.drift(x, at: t, probabilityFlow: true)     // every score call goes through
        let euler = x.adding(d1, scaledBy: dt)                          // `reverse`, which counts the NFE
        if next > 0 {
            let d2 = try reverse.drift(euler, at: next, probabilityFlow: true)
            x.add(d1, scaledBy: dt / 2, d2, scaledBy: dt / 2)
        } else {
            x = euler
        }
        mean = x                                                        // noise-free: the mean is x itself
    }
}

// MARK: - A multistep predictor of your own: state carried from step to step

/// Two-step Adams–Bashforth on the probability-flow ODE, for any grid:
/// `x ← x + h (1 + h/(2h₋)) f₀ − h²/(2h₋) f₋₁` with `h = next − t`, `h₋` the previous step and
/// `f₋₁` its drift — which the predictor remembers in its `State`. The first step is Euler.
/// Second order, 1 NFE per step. Supports: any ForwardSDE.
struct AdamsBashforth2: Predictor {
    struct History { var drift: Tensor?; var step = 0.0 }
    func makeState(for x: Tensor) -> History { History() }

    func step(_ x: inout Tensor, mean: inout Tensor, state: inout History, from t: Double, to next: Double,
              along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let h = next - t
        let f = try reverse.drift(x, at: t, probabilityFlow: true)
        if let previous = state.drift {
            let r = h / state.step
            x.add(f, scaledBy: h * (1 + r / 2), previous, scaledBy: -h * r / 2)
        } else {
            x.add(f, scaledBy: h)
        }
        state = History(drift: f, step: h)
        mean = x
    }
}

// MARK: - A corrector of your own (the README's)

/// Langevin steps whose step size is capped near t = 0. Supports: any ForwardSDE.
struct TamedLangevin: Corrector {
    var snr: Double, iterations: Int, maxStep = 1e-2
    func correct(_ x: inout Tensor, at t: Double, next: Double, along reverse: some ReverseProcess,
                 using rng: inout RandomSource) throws {
        for _ in 0 ..< iterations {
            let g = try reverse.score(x, at: t)                         // counted by `reverse` (NFE)
            let z = Tensor.standardNormal(like: x, using: &rng)
            let r = snr * z.rowNorms().mean() / g.rowNorms().mean()
            let eps = min(maxStep, 2 * r * r)
            x.add(g, scaledBy: eps, z, scaledBy: (2 * eps).squareRoot())
        }
    }
}

// MARK: - Using them

struct CustomSamplerExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "CustomSampler", abstract: "A user-written predictor and corrector in PCSampler.")

    @Option(help: "Where to write the PNG (ring samples and sampled digits).") var output = "custom.png"
    @Option(help: "Sampler steps (Heun: 2 NFE, corrector: 1 NFE per step).") var steps = 200
    @Option(help: "Ring samples.") var count = 16384
    @Option(help: "Digits to sample.") var digits = 64
    @Option(help: "A digits weights file to use instead of the shipped model.") var model: String?

    func validate() throws {
        guard steps >= 1, count >= 1, digits >= 1 else { throw ValidationError("--steps, --count and --digits must be >= 1") }
    }

    func run() throws {
        let predictor = ProbabilityFlowHeun(), corrector = TamedLangevin(snr: 0.16, iterations: 1)

        // The ring: exact score, so the only errors are the sampler's.
        let ring = GaussianMixture.ring()
        let sde = try VPSDE()
        let sampler = PCSampler(sde: sde, score: GaussianMixtureScore(ring, diffusedBy: sde),
                                grid: try .uniform(steps: steps, from: sde.T, to: 1e-3),
                                predictor: predictor, corrector: corrector)
        var rng = RandomSource(seed: 42)
        let run = try sampler.sample(count: count, using: &rng)
        var weights = [Double](repeating: 0, count: ring.componentCount)
        for k in ring.assignments(run.samples) { weights[k] += 1 / Double(count) }
        print("ring, \(count) samples, \(steps) steps, NFE \(run.scoreEvaluations)")
        print("  mode weights: \(weights.map { String(format: "%.3f", $0) }.joined(separator: " "))")
        print("  truth:        \(ring.weights.map { String(format: "%.3f", $0) }.joined(separator: " "))")
        let worst = zip(weights, ring.weights).map { abs($0 - $1) }.max()!
        let w = 1 / Double(ring.componentCount), binomial = (w * (1 - w) / Double(count)).squareRoot()
        print("  largest error \(String(format: "%.4f", worst)) (one binomial standard deviation: \(String(format: "%.4f", binomial)))")

        // The two-step method: its history lives in the integrator, step by step.
        let ab2 = PCSampler(sde: sde, score: GaussianMixtureScore(ring, diffusedBy: sde),
                            grid: try .uniform(steps: steps, from: sde.T, to: 1e-3),
                            predictor: AdamsBashforth2(), corrector: NoCorrector(), denoising: .none)
        var rng2 = RandomSource(seed: 43)
        let abRun = try ab2.sample(count: count, using: &rng2)
        var abWeights = [Double](repeating: 0, count: ring.componentCount)
        for k in ring.assignments(abRun.samples) { abWeights[k] += 1 / Double(count) }
        print("ring, Adams-Bashforth 2 on the probability flow, NFE \(abRun.scoreEvaluations): mode weights \(abWeights.map { String(format: "%.3f", $0) }.joined(separator: " "))")
        let means = try Tensor(rows: ring.means)
        let ringPanel = Plot.scatter(run.samples, reference: means, size: 384,
                                     title: "Ring: Heun + TamedLangevin, NFE \(run.scoreEvaluations)",
                                     overlays: [.density(FullCovarianceMixture(ring), label: "exact density")])

        // The shipped digits model: the same two types, a learned score.
        let model = try self.model.map { try MLPScore.load(from: $0) } ?? PretrainedModels.digitsMLP()
        let (grid, nfe) = try sampleDigits(model, sde: model.sdeSpec.make(), predictor: predictor, corrector: corrector)
        print("digits, \(digits) samples, \(steps) steps, NFE \(nfe)")
        try PNG.write(Plot.sideBySide([ringPanel, Plot.titled(grid, "Digits: same sampler, NFE \(nfe)")], padding: 24), to: output)
        print("wrote \(output)")
    }

    func sampleDigits(_ model: MLPScore, sde: some ForwardSDE, predictor: some Predictor,
                      corrector: some Corrector) throws -> (RasterImage, Int) {
        let eps = sde is VESDE ? 1e-5 : 1e-3                            // the reference's end times
        let sampler = PCSampler(sde: sde, score: model, grid: try .uniform(steps: steps, from: sde.T, to: eps),
                                predictor: predictor, corrector: corrector)
        var rng = RandomSource(seed: 7)
        let run = try sampler.sample(count: digits, using: &rng)
        let raw = model.dataScaling.toData(run.samples)                 // model space -> levels 0...16
        return (try Plot.imageGrid(raw, range: 0 ... 16, scale: 8), run.scoreEvaluations)
    }
}

CustomSamplerExample.main()

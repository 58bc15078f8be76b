import Foundation
import Testing
@testable import ScoreSDE

/// A parameter out of its domain is thrown as `ScoreSDEError.invalidParameter`, naming the
/// library's parameter and the value seen, so that callers can match on them.
@Suite("Typed parameter errors")
struct TypedErrorTests {
    /// Expects `body` to throw `.invalidParameter` named `name` with the value `value` (as printed).
    static func expectParameter(_ name: String, _ value: String, sourceLocation: SourceLocation = #_sourceLocation,
                                _ body: () throws -> Void) {
        guard let p = invalidParameter(body) else {
            Issue.record("expected invalidParameter(\(name)), got \(String(describing: scoreSDEError(body)))", sourceLocation: sourceLocation)
            return
        }
        #expect(p.name == name, "\(p)", sourceLocation: sourceLocation)
        #expect(p.value == value, "\(p)", sourceLocation: sourceLocation)
        #expect(!p.requirement.isEmpty, sourceLocation: sourceLocation)
        // The message names the parameter, the value and the requirement.
        let text = "\(ScoreSDEError.invalidParameter(p))"
        #expect(text.contains(name) && text.contains("(got \(value))") && text.contains(p.requirement), "\(text)", sourceLocation: sourceLocation)
    }

    @Test("SDE constructors name the parameter and its value")
    func sdes() {
        Self.expectParameter("betaMin", "0.0") { _ = try VPSDE(betaMin: 0, betaMax: 20) }
        Self.expectParameter("betaMax", "0.05") { _ = try VPSDE(betaMin: 0.1, betaMax: 0.05) }
        Self.expectParameter("betaMin", "nan") { _ = try SubVPSDE(betaMin: .nan, betaMax: 20) }
        Self.expectParameter("betaMax", "inf") { _ = try SubVPSDE(betaMin: 0.1, betaMax: .infinity) }
        Self.expectParameter("sigmaMin", "-1.0") { _ = try VESDE(sigmaMin: -1, sigmaMax: 50) }
        Self.expectParameter("sigmaMax", "0.001") { _ = try VESDE(sigmaMin: 0.01, sigmaMax: 0.001) }
        Self.expectParameter("s", "0.0") { _ = try CosineVPSDE(s: 0) }
        Self.expectParameter("T", "1.0") { _ = try CosineVPSDE(T: 1) }
    }

    @Test("the description keeps the requirement and the advice")
    func description() throws {
        let p = try #require(invalidParameter { _ = try VPSDE(betaMin: 0, betaMax: 20) })
        #expect(p.requirement == "finite and > 0")
        #expect(p.advice == "the reference uses 0.1")
        #expect(p.description == "betaMin must be finite and > 0 (got 0.0); the reference uses 0.1")
        #expect("\(ScoreSDEError.invalidParameter(p))" == "invalid argument: betaMin must be finite and > 0 (got 0.0); the reference uses 0.1")
        #expect(ScoreSDEError.invalidParameter(p).errorDescription == "invalid argument: \(p)")
        let plain = InvalidParameter(name: "steps", value: "0", requirement: ">= 1")
        #expect(plain.description == "steps must be >= 1 (got 0)")
        // Callers can match on the name.
        do { _ = try VESDE(sigmaMin: 0.01, sigmaMax: -1); Issue.record("no error") }
        catch ScoreSDEError.invalidParameter(let q) where q.name == "sigmaMax" { #expect(q.value == "-1.0") }
        catch { Issue.record("unexpected \(error)") }
    }

    @Test("time grids")
    func timeGrids() throws {
        let sde = try VPSDE()
        Self.expectParameter("steps", "0") { _ = try TimeGrid.uniform(steps: 0, from: 1, to: 1e-3) }
        Self.expectParameter("eps", "0.0") { _ = try TimeGrid.uniform(steps: 10, from: 1, to: 0) }
        Self.expectParameter("eps", "1.5") { _ = try TimeGrid.uniform(steps: 10, from: 1, to: 1.5) }
        Self.expectParameter("steps", "-2") { _ = try TimeGrid.spaced(.logSNR, steps: -2, from: 1, to: 1e-3, sde: sde) }
        Self.expectParameter("rho", "0.0") { _ = try TimeGrid.spaced(.karras(rho: 0), steps: 5, from: 1, to: 1e-3, sde: sde) }
        Self.expectParameter("timePower", "0.5") { _ = try TimeGrid.spaced(.timePower(0.5), steps: 5, from: 1, to: 1e-3, sde: sde) }
        Self.expectParameter("times", "[1.0]") { _ = try TimeGrid([1]) }
        Self.expectParameter("times", "times[1] = nan") { _ = try TimeGrid([1, .nan, 0]) }
        Self.expectParameter("times", "times[1] = 0.5, times[2] = 0.7") { _ = try TimeGrid([1, 0.5, 0.7]) }
    }

    @Test("samplers, predictors and correctors")
    func samplers() throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(GaussianMixture.ring(), diffusedBy: sde)
        let grid = try TimeGrid.uniform(steps: 10, from: 1, to: 1e-3)
        let pc = PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: NoCorrector())
        var rng = RandomSource(seed: 0)
        Self.expectParameter("count", "0") { _ = try pc.sample(count: 0, using: &rng) }
        let batched = PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: NoCorrector(), batchSize: 0)
        Self.expectParameter("batchSize", "0") { _ = try batched.sample(count: 4, using: &rng) }
        Self.expectParameter("absoluteTolerance", "0.0") { _ = try AdaptiveSDESampler(sde: sde, score: score, eps: 1e-3, absoluteTolerance: 0) }
        Self.expectParameter("relativeTolerance", "-1.0") { _ = try AdaptiveSDESampler(sde: sde, score: score, eps: 1e-3, relativeTolerance: -1) }
        Self.expectParameter("eps", "0.0") { _ = try AdaptiveSDESampler(sde: sde, score: score, eps: 0) }
        Self.expectParameter("relativeTolerance", "nan") { _ = try AdaptiveUniPC(sde: sde, score: score, eps: 1e-3, relativeTolerance: .nan) }
        Self.expectParameter("eta", "-0.1") { _ = try DDIM(eta: -0.1) }
        Self.expectParameter("order", "4") { _ = try DPMSolverPlusPlus(order: 4) }
        Self.expectParameter("orders", "[3, 3]") { _ = try DPMSolverPlusPlus(order: 3, orders: [3, 3]) }
        Self.expectParameter("order", "0") { _ = try UniPC(order: 0) }
        Self.expectParameter("snr", "0.0") { _ = try Langevin(snr: 0) }
        Self.expectParameter("steps", "0") { _ = try AnnealedLangevin(snr: 0.16, steps: 0) }
        Self.expectParameter("percentile", "1.01") { _ = try DynamicThresholding(percentile: 1.01) }
        Self.expectParameter("nfe", "1") { _ = try FewStepRecommendation.for(nfe: 1, dimension: 2) }
    }

    @Test("step-size controller, ODE integrator and solve options")
    func controllerAndIntegrator() throws {
        Self.expectParameter("absoluteTolerance", "-1.0") { _ = try StepSizeController(absoluteTolerance: -1, relativeTolerance: 1e-3) }
        Self.expectParameter("safety", "0.0") { _ = try StepSizeController(absoluteTolerance: 1e-3, relativeTolerance: 1e-3, safety: 0) }
        Self.expectParameter("maximumFactor", "0.5") { _ = try StepSizeController(absoluteTolerance: 1e-3, relativeTolerance: 1e-3, maximumFactor: 0.5) }
        Self.expectParameter("increaseBelow", "2.0") {
            _ = try StepSizeController(absoluteTolerance: 1e-3, relativeTolerance: 1e-3, rule: .deadband(decreaseAbove: 3, increaseBelow: 2))
        }
        Self.expectParameter("absoluteTolerance", "-1e-06") {
            _ = try ODEIntegrator(.rkf45, dimension: 1, absoluteTolerance: -1e-6, relativeTolerance: 1e-6) { _, y, dydt in dydt[0] = -y[0] }
        }
        Self.expectParameter("maxSteps", "0") {
            _ = try ODEIntegrator(.rkf45, dimension: 1, absoluteTolerance: 1e-6, relativeTolerance: 1e-6, maxSteps: 0) { _, y, dydt in dydt[0] = -y[0] }
        }
        Self.expectParameter("rowSize", "0") {
            _ = try ODEIntegrator(.rkf45, dimension: 2, absoluteTolerance: 1e-6, relativeTolerance: 1e-6, rowSize: 0) { _, y, dydt in dydt[0] = -y[0]; dydt[1] = 0 }
        }
        Self.expectParameter("nfe", "1") { _ = try FewStepAlgorithm(EDMHeun(), nfe: 1) }
        let sde = try VPSDE()
        let problem = ReverseProblem(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), count: 0, eps: 1e-3)
        var rng = RandomSource(seed: 0)
        Self.expectParameter("count", "0") { _ = try solve(problem, AdaptiveSDEAlgorithm(), using: &rng) }
        let late = ReverseProblem(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), count: 2, eps: 1.5)
        Self.expectParameter("eps", "1.5") {
            _ = try solve(late, ProbabilityFlowAlgorithm(ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5)), using: &rng)
        }
    }

    @Test("Gaussian mixtures")
    func mixtures() {
        Self.expectParameter("means", "[]") { _ = try GaussianMixture(means: [], stds: []) }
        Self.expectParameter("stds", "stds[0] = [1.0, inf]") { _ = try GaussianMixture(means: [[0, 1]], stds: [[1, .infinity]]) }
        Self.expectParameter("weights", "[1.0, 0.0]") { _ = try GaussianMixture(weights: [1, 0], means: [[0], [1]], stds: [[1], [1]]) }
        Self.expectParameter("modes", "0") { _ = try GaussianMixture.ring(modes: 0) }
        Self.expectParameter("std", "-0.25") { _ = try GaussianMixture.grid(side: 3, std: -0.25) }
        Self.expectParameter("weights", "[0.0, 0.0]") {
            _ = try FullCovarianceMixture(weights: [0, 0], means: [[0], [1]], covariances: [[[1]], [[1]]])
        }
    }

    @Test("data sets and data scaling")
    func dataSets() {
        Self.expectParameter("count", "0") { _ = try Dataset.named("moons", count: 0) }
        Self.expectParameter("count", "1501") { _ = try Dataset.named("digits", count: 1501) }
        var rng = RandomSource(seed: 0)
        Self.expectParameter("noise", "-1.0") { _ = try Toy2D.swissRoll(count: 10, noise: -1, using: &rng) }
        Self.expectParameter("scale", "0.0") { _ = try DataScaling(scale: 0) }
        Self.expectParameter("lambda", "0.0") { _ = try LogitPixelTransform(lambda: 0) }
    }

    @Test("training configurations")
    func training() throws {
        let data = try Tensor(shape: [8, 2], storage: (0 ..< 16).map(Double.init))
        var c = TrainingConfiguration(sde: .vp(betaMin: 0.1, betaMax: 20), architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4),
                                      seed: 1, batchSize: 4, learningRate: 1e-3)
        c.learningRate = 0
        Self.expectParameter("learningRate", "0.0") { _ = try Trainer(configuration: c, data: data) }
        c.learningRate = 1e-3; c.emaRate = 1
        Self.expectParameter("emaRate", "1.0") { try c.validate() }
        c.emaRate = 0.99; c.batchSize = 0
        Self.expectParameter("batchSize", "0") { try c.validate() }
        c.batchSize = 4; c.architecture.hiddenWidth = 0
        Self.expectParameter("hiddenWidth", "0") { try c.validate() }
        Self.expectParameter("eps", "0.0") { _ = try DSMLoss(sde: VPSDE(), eps: 0) }
        Self.expectParameter("interval", "0.0") { _ = try CheckpointSchedule(path: "unused.safetensors", interval: 0) }
    }

    @Test("networks and scores")
    func networks() throws {
        let vp = SDESpec.vp(betaMin: 0.1, betaMax: 20)
        Self.expectParameter("fourierScale", "-1.0") { _ = try MLPScore(architecture: MLPArchitecture(rowShape: [2], fourierScale: -1), sde: vp, seed: 0) }
        let model = try MLPScore(architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 4, residualBlocks: 0, fourierFeatures: 2), sde: vp, seed: 0)
        Self.expectParameter("t", "1.5") { _ = try model.score(Tensor(zeros: [1, 2]), at: 1.5) }
        var u = UNetConfiguration()
        u.dropout = 1
        Self.expectParameter("dropout", "1.0") { try u.validate() }
    }

    /// `ColorMixing.reference` is built with `try!` from literals: they must pass the checks.
    @Test("the reference colour mixing's literals are valid")
    func referenceMixing() throws {
        #expect(throws: Never.self) { _ = try ColorMixing(ColorMixing.referenceMatrix) }
        #expect(ColorMixing.reference.matrix == ColorMixing.referenceMatrix)
        Self.expectParameter("matrix", "a matrix whose MᵀM has entry [2][2] = 4.0") { _ = try ColorMixing([[1, 0, 0], [0, 1, 0], [0, 0, 2]]) }
    }

    /// Split runs throw `ScoreSDEError.population`, with the message it had as `PopulationError`.
    @Test("population failures are a case of ScoreSDEError")
    func population() {
        let f = PopulationFailure(rank: 2, size: 4, collective: true, message: "boom")
        #expect("\(ScoreSDEError.population(f))" == "rank 2 of 4: boom")
        #expect(ScoreSDEError.population(f).errorDescription == "rank 2 of 4: boom")
    }
}

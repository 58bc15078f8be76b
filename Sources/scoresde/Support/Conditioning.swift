import Foundation
import ScoreSDE

// What `inpaint`, `colorize` and `reconstruct` share: an inverse problem in model space, the
// conditioned predictor-corrector sampler, and the comparison with an exact posterior.

/// An inverse problem a subcommand has built, in the model's space, with one observation row per
/// sample to draw (each input's row repeated `--samples-per-input` times).
struct InverseProblem {
    /// The replacement constraint (`replace`, `repaint`).
    let constraint: any SamplingConstraint
    /// The equivalent linear measurement (guidance methods and exact posteriors); throws when there
    /// is none (e.g. a different inpainting mask per input).
    let measurement: () throws -> LinearMeasurement
}

/// The conditioned sampler of `inpaint`, `colorize` and `reconstruct`, built from their options.
struct ConditionedSampler {
    let label: String
    let settings: RunStats
    let run: (_ problem: InverseProblem, _ count: Int, _ rng: inout RandomSource) throws -> ConditionedRun

    /// Builds the sampler, throwing on a bad combination (before any output is checked).
    init(data: DataModel, built: BuiltSDE, sampler: SamplerOptions, pc: PCOptions, conditioning: ConditioningOptions,
         batchSize: Int?, eps: Double) throws {
        let forward = built.forward
        let grid = try sampler.grid(for: forward, eps: eps)
        let predictor = try pc.makePredictor(for: built, steps: grid.steps)
        let corrector = try pc.makeCorrector(steps: grid.steps)
        try predictor.validate(grid: grid, sde: forward)
        try corrector.validate(grid: grid, sde: forward)
        let denoise = sampler.denoise ?? .lastMean
        let (order, denoising) = (pc.orderName.order, denoise.denoising)
        let resampling = try conditioning.resampling
        let variance = data.meanVariance
        let likelihood = conditioning.likelihood(mixtureVariance: variance)
        let weight = conditioning.guidanceWeight ?? 1
        if likelihood != nil, denoise == .tweedie {
            // Tweedie's formula uses the model's score; with guidance it would undo the conditioning.
            throw ScoreSDEError.invalidArgument("--denoise tweedie is not available with --method \(conditioning.method.rawValue); use last-mean or none")
        }
        var settings = pc.stats(denoise: denoise)
        settings["steps"] = .int(grid.steps)
        settings.merge(conditioning.stats(mixtureVariance: variance))
        label = "\(conditioning.label), \(pc.label)"
        self.settings = settings
        let steps = grid.steps * resampling.count
        // Guided runs have no constraint and no RePaint jumps; constrained runs may have both.
        let algorithm = pcAlgorithm(predictor, corrector, grid: grid, order: order, denoising: denoising)
        let resampled = pcAlgorithm(predictor, corrector, grid: grid, order: order, denoising: denoising, resampling: resampling)
        run = { problem, count, rng in
            let progress = ProgressBar(total: steps)
            defer { progress?.finish() }
            var done = 0
            let onStep: (StepEvent) -> Void = { event in
                done += 1
                progress?.update(step: min(done, steps), nfe: event.scoreEvaluations)
            }
            if let likelihood {
                let measurement = try problem.measurement()
                if batchSize != nil, measurement.observation.rows > 1 {
                    throw ScoreSDEError.invalidArgument("--batch-size cannot be used with --method \(conditioning.method.rawValue) and one observation per input: the guided score pairs each sample with its observation in one call; drop --batch-size")
                }
                let score = try guidedScore(data.jacobianScore(diffusedBy: forward, method: conditioning.method.rawValue,
                                                                 jacobianFree: likelihood.isJacobianFree), sde: forward,
                                            measurement: measurement, likelihood: likelihood, weight: weight)
                let result: ReverseSolution
                do {
                    result = try solveReverse(sde: forward, score: score, algorithm: algorithm, start: nil, count: count, rowShape: nil,
                                              eps: eps, batchSize: batchSize, using: &rng, onStep: onStep)
                } catch ScoreSDEError.nonFinite(let message) {
                    throw ScoreSDEError.nonFinite("\(message). The guided sampler diverged: --method \(conditioning.method.rawValue) differentiates through the model, and a learned model's Jacobian error is amplified by 1/m(t) (large for VP near T); use --method pigdm (Jacobian-free), replace or repaint, or a smaller --guidance-weight")
                }
                return ConditionedRun(result: result, modelEvaluations: result.modelPasses)
            }
            let result = try solveReverse(sde: forward, score: data.score(diffusedBy: forward), algorithm: resampled, start: nil,
                                          count: count, rowShape: nil, eps: eps, batchSize: batchSize, constraint: problem.constraint,
                                          using: &rng, onStep: onStep)
            return ConditionedRun(result: result, modelEvaluations: result.modelPasses)
        }
    }
}

/// What a conditioned run produced. `result.scoreEvaluations` counts the sampler's calls of its
/// score (NFE); a guided score makes several passes of the model per call (the score, then one
/// Jacobian-vector product, plus one per measured value for tweedie), counted in `modelEvaluations`.
struct ConditionedRun {
    let result: ReverseSolution
    let modelEvaluations: Int
}

/// A conditioned command's run, ready once its inputs are read: ``run(_:inputs:)`` does the work,
/// ``report(_:inputs:)`` starts the stats file, ``summary(_:inputs:origin:)`` the first line printed.
struct ConditionedJob {
    let model: DataModel
    let sdeChoice: SDEChoice
    let eps: Double
    let sampler: ConditionedSampler
    let files: SampleOutputs
    let options: ConditionedCommandOptions
    /// `k`, the samples drawn for every input.
    let samplesPerInput: Int

    /// What the work produced; `samples` in data space, shaped `[n·k] + rowShape`.
    struct Outcome {
        let samples: Tensor
        let nfe: Int, modelEvaluations: Int
        let seconds: Double, threads: Int
    }

    /// Samples `k` rows for each of the `n` inputs of `problem`, timed, on the thread limit.
    func run(_ problem: InverseProblem, inputs n: Int) throws -> Outcome {
        var rng = RandomSource(seed: options.compute.seed)
        let count = n * samplesPerInput
        let (run, seconds, threads) = try options.compute.withThreadLimit { threads in
            let (run, seconds) = try timed { try sampler.run(problem, count, &rng) }
            return (run, seconds, threads)
        }
        let samples = try model.scaling.toData(run.result.samples).reshaped([count] + model.rowShape)
        return Outcome(samples: samples, nfe: run.result.scoreEvaluations, modelEvaluations: run.modelEvaluations,
                       seconds: seconds, threads: threads)
    }

    /// The cost first (the command adds its results), then, with ``settings(_:)``, every setting.
    func report(_ outcome: Outcome, inputs n: Int) -> RunStats {
        var report = RunStats()
        report["nfe"] = .int(outcome.nfe)
        report["model_evaluations"] = .int(outcome.modelEvaluations)
        report["wall_seconds"] = .double(outcome.seconds)
        report["inputs"] = .int(n)
        report["samples_per_input"] = .int(samplesPerInput)
        return report
    }

    /// Every setting of the run, for the end of the stats file.
    func settings(_ outcome: Outcome) -> RunStats {
        var report = RunStats()
        report["shape"] = .ints(outcome.samples.shape)
        report["model"] = .string(model.name)
        report.merge(sdeChoice.stats)
        report.merge(sampler.settings)
        report["eps"] = .double(eps)
        report["batch_size"] = options.compute.batchSize.map { .int($0) } ?? .null
        report["seed"] = seedValue(options.compute.seed)
        report["threads"] = .int(outcome.threads)
        report["blas"] = .string(BLASBackend.current.library.rawValue + " " + BLASBackend.current.kernel)
        report["ranks"] = .int(Population.size)   // MPI ranks sharing the run (1: one process)
        return report
    }

    /// "digits | inpaint | replace | NFE 2000": the picture's title.
    func title(_ command: String, _ outcome: Outcome) -> String {
        "\(model.label) | \(command) | \(options.conditioning.method.rawValue) | NFE \(outcome.nfe)"
    }

    /// "8 inputs (...) x 4 samples, digits, vp, replace (paper), ...: NFE 2000, 0.87 s".
    func summary(_ outcome: Outcome, inputs n: Int, what: String = "input", origin: String, detail: String = "") -> String {
        "\(n) \(what)\(n == 1 ? "" : "s") (\(origin)) x \(samplesPerInput) samples\(detail), \(model.name), \(sdeChoice.kind.rawValue), \(sampler.label): "
            + "NFE \(outcome.nfe)\(passes(outcome.modelEvaluations, nfe: outcome.nfe)), \(String(format: "%.2f", outcome.seconds)) s"
    }
}

extension MeasurementLikelihood {
    /// ΠGDM's Jacobian-free form: no model Jacobian products.
    var isJacobianFree: Bool {
        if case .pseudoinverse(_, true) = self { return true }
        return false
    }
}

/// `MeasurementGuidedScore` over a concrete base (callers pass an existential, which Swift opens);
/// the sampler counts its model passes (``ScoreModel/passesPerEvaluation``).
private func guidedScore<B: ScoreModel>(_ base: B, sde: any ForwardSDE,
                                                    measurement: LinearMeasurement, likelihood: MeasurementLikelihood,
                                                    weight: Double) throws -> any ScoreModel {
    try MeasurementGuidedScore(base: base, sde: sde, measurement: measurement, likelihood: likelihood, weight: weight)
}

extension DataModel {
    /// The score measurement guidance differentiates through: a mixture's exact score (JVPs), an
    /// MLP (JVPs) or a U-Net (VJPs through its backward pass). With `jacobianFree` (ΠGDM's
    /// Jacobian-free form, which never asks for one) any learned model will do.
    /// - Throws: `invalidArgument` for a learned model with neither kind of Jacobian product.
    func jacobianScore(diffusedBy sde: any ForwardSDE, method: String, jacobianFree: Bool) throws -> any ScoreModel {
        switch source {
        case .mixture(let m): return GaussianMixtureScore(m, diffusedBy: sde)
        case .learned(let s):
            if jacobianFree || s is any ScoreJacobianProviding || s is any ScoreVJPProviding { return s }
            throw ScoreSDEError.invalidArgument("--method \(method) differentiates through the model, which provides no Jacobian products (\(name)); use --method replace, repaint or pigdm (Jacobian-free)")
        }
    }

    /// A mixture's mean variance per coordinate (ΠGDM's default data variance); nil for learned models.
    var meanVariance: Double? {
        guard case .mixture(let m) = source else { return nil }
        let c = FullCovarianceMixture(m).covariance
        return (0 ..< c.count).reduce(0.0) { $0 + c[$1][$1] } / Double(c.count)
    }
}

extension Tensor {
    /// Each row repeated `k` times in place (row `i` becomes rows `i·k ..< (i+1)·k`).
    func repeatingRows(_ k: Int) -> Tensor {
        guard k > 1 else { return self }
        var storage = [Double]()
        storage.reserveCapacity(count * k)
        for r in 0 ..< rows {
            let row = self.storage[r * rowSize ..< (r + 1) * rowSize]
            for _ in 0 ..< k { storage.append(contentsOf: row) }
        }
        return try! Tensor(shape: [rows * k] + rowShape, storage: storage)
    }
}

// MARK: - Exact posteriors of mixture priors

extension PosteriorComparison {
    /// For the stats file: averages over inputs and the per-input values.
    var stats: RunStats.Value {
        var s = RunStats()
        s["mode_weight_tv"] = .double(modeWeightTV)
        s["mode_weight_tv_exact_samples"] = .double(modeWeightTVFloor)
        s["mean_error"] = .double(meanError)
        s["mean_error_exact_samples"] = .double(meanErrorFloor)
        s["per_input"] = .array(inputs.map { i in
            var r = RunStats()
            r["mode_weight_tv"] = .double(i.modeWeightTV)
            r["mode_weight_tv_exact_samples"] = .double(i.modeWeightTVFloor)
            r["mean_error"] = .double(i.meanError)
            r["mean_error_exact_samples"] = .double(i.meanErrorFloor)
            return .object(r)
        })
        return .object(s)
    }

    /// "mode weights TV 0.04 (exact samples 0.03), mean error 0.02 (0.02)".
    var summary: String {
        "vs the exact posterior: mode-weight TV \(formatted(modeWeightTV, 3)) (exact samples: \(formatted(modeWeightTVFloor, 3))), "
            + "mean error \(formatted(meanError, 3)) (exact samples: \(formatted(meanErrorFloor, 3)))"
    }
}

/// " (model passes 6000)" when a guided score made more passes of the model than the sampler's NFE.
func passes(_ modelEvaluations: Int, nfe: Int) -> String {
    modelEvaluations == nfe ? "" : " (model passes \(modelEvaluations))"
}

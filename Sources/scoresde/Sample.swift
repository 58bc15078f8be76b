import ArgumentParser
import Foundation
import ScoreSDE

extension ScoreSDECommand {
    /// `scoresde sample`: draws samples from a model by reversing a forward SDE, with the
    /// predictor-corrector sampler or the probability-flow ODE.
    struct Sample: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Draw samples from a model by reversing a forward SDE.",
            discussion: """
                With no options: 4096 samples of the built-in ring with the VE SDE and the \
                reverse-diffusion + Langevin sampler (1000 steps), plotted to samples.png. The \
                picture goes to samples.png unless --png or --output is given; --stats does not change that.

                --sampler ode solves the probability-flow ODE from the prior at T down to eps with an \
                adaptive GSL integrator (default rkf45 with rtol = atol = 1e-5, like the reference's \
                RK45; no denoising unless --denoise last-mean). --latent z.npy decodes the given \
                latents (one sample per row, e.g. from `scoresde encode`) instead of drawing them from \
                the prior, and implies --sampler ode. Options of the sampler not in use are rejected, \
                not ignored.

                Learned models: --model digits, digits-mlp, patches and fashion (shipped with the \
                package) or a file from `scoresde train` sample with the SDE they were trained with \
                (--steps sets the grid as usual). The shipped U-Nets (digits, fashion) sample with \
                the recommended few-step sampler at 20 NFE unless a sampler or an option of another \
                sampler is given (their model cards' recommendation); the others with pc. Samples are mapped back to data space with the model's scaling \
                (digits: values 0...16, patches: 0...255) before they are written; image-shaped \
                samples are drawn as an image grid, e.g. `scoresde sample --model digits --png digits.png`. \
                Latents (--latent) are in the model's prior space, as `scoresde encode` writes them.

                Few-step samplers: --nfe K runs a deterministic sampler with exactly K score \
                evaluations from T to eps (default: \(SamplerName.recommended.rawValue), the recommended \
                method; --sampler ddim|dpm-solver++|unipc|heun chooses, --order its order, --skip the \
                step spacing, --eta DDIM's stochasticity). They return the state at eps untouched \
                (--denoise none) and decode --latent files with any of them. Stochastic: --sampler \
                sde-dpm-solver++ (--nfe, --order 1|2) and --sampler adaptive-sde (Gotta Go Fast: \
                --rtol, --atol).
                """
        )

        @OptionGroup(title: "Model") var model: ModelOptions
        @OptionGroup(title: "Forward SDE") var sde: SDEOptions
        @OptionGroup(title: "Sampler") var sampler: SamplerOptions
        @OptionGroup(title: "Predictor-corrector sampler") var pc: PCOptions
        @OptionGroup(title: "Probability-flow ODE sampler") var ode: ODEOptions
        @OptionGroup(title: "Few-step samplers") var fewStep: FewStepOptions
        @OptionGroup(title: "Class-conditional sampling") var classes: ClassOptions

        @Option(help: ArgumentHelp(
            "Decode these latents (a .npy whose rows have the model's dimension, e.g. from `scoresde encode`) instead of drawing them from the prior; implies --sampler ode. The number of samples is the number of rows.",
            valueName: "path"))
        var latent: String?

        static let defaultCount = 4096
        /// Image models: the number of images the grid shows.
        static let defaultImageCount = SampleFigure.maxImages

        @Option(parsing: .unconditional, help: "Number of samples (default: 4096, or 64 for image models such as digits and patches; with a --class list of L classes, 8 per class for image models and 4096 rounded down to a multiple of L otherwise; with --latent, the rows of the file).")
        var count: Int?

        @OptionGroup(title: "Computation") var compute: ComputeOptions
        @OptionGroup(title: "Progress") var progressOptions: ProgressOptions

        @OptionGroup(title: "Output files") var files: OutputOptions

        /// The PNG written unless --png or --output is given.
        static let defaultPNG = "samples.png"

        /// The sampler to run: `--sampler`, else what the options given imply; a shipped model's
        /// recommended few-step sampler (the U-Nets) only when no option of another sampler is given.
        var resolvedSampler: SamplerName {
            let otherSamplersOptions = sampler.steps != nil || sampler.denoise != nil || sampler.errorNorm != nil
                || !pc.given.isEmpty || !ode.given.isEmpty
            return sampler.resolved(latentGiven: latent != nil, nfeGiven: fewStep.nfe != nil,
                                    model: otherSamplersOptions ? nil : model.model)
        }

        func validate() throws {
            if let count, count < 1 { throw ValidationError("--count must be >= 1 (got \(count))") }
            if latent != nil, count != nil {
                throw ValidationError("--count conflicts with --latent: the number of samples is the number of rows of the latent file")
            }
            let kind = resolvedSampler
            if !kind.isFewStep, !fewStep.given.isEmpty {
                throw ValidationError("\(fewStep.given.joined(separator: ", ")) \(fewStep.given.count == 1 ? "is an option" : "are options") of the few-step samplers (--sampler ddim, dpm-solver++, unipc, heun, sde-dpm-solver++); remove \(fewStep.given.count == 1 ? "it" : "them") for --sampler \(kind.rawValue)")
            }
            if kind != .adaptiveUniPC, sampler.errorNorm != nil {
                throw ValidationError("--error-norm is an option of --sampler adaptive-unipc, not \(kind.rawValue)")
            }
            if !kind.isFewStep, kind != .adaptiveUniPC, case .solver(let n) = pc.order {
                throw ValidationError("--order \(n) is a few-step solver's order (--sampler dpm-solver++ or unipc); --sampler \(kind.rawValue) takes no solver order")
            }
            switch kind {
            case .adaptiveSDE:
                if latent != nil {
                    throw ValidationError("--latent decodes latents with a deterministic sampler; adaptive-sde is stochastic (use --sampler ode or a few-step sampler)")
                }
                let other = (sampler.steps != nil ? ["--steps"] : []) + pc.given + ode.given.filter { $0 != "--rtol" && $0 != "--atol" }
                if !other.isEmpty {
                    throw ValidationError("\(other.joined(separator: ", ")) \(other.count == 1 ? "is an option" : "are options") of another sampler and would do nothing with --sampler adaptive-sde (it takes --rtol, --atol, --eps, --denoise none|tweedie); remove \(other.count == 1 ? "it" : "them")")
                }
                if sampler.denoise == .lastMean {
                    throw ValidationError("--denoise last-mean is not available with --sampler adaptive-sde (it has no last predictor step); use none (default) or tweedie")
                }
            case .adaptiveUniPC:
                if case .solver(let n) = pc.order, !(1 ... 3).contains(n) {
                    throw ValidationError("--order \(n): adaptive-unipc has predictor orders 1, 2 and 3")
                }
                let pcGiven = pc.given.filter { $0 != "--order" }
                let other = (sampler.steps != nil ? ["--steps"] : []) + pcGiven + ode.given.filter { $0 != "--rtol" && $0 != "--atol" }
                if !other.isEmpty {
                    throw ValidationError("\(other.joined(separator: ", ")) \(other.count == 1 ? "is an option" : "are options") of another sampler and would do nothing with --sampler adaptive-unipc (it takes --rtol, --atol, --order 1|2|3, --eps, --latent); remove \(other.count == 1 ? "it" : "them")")
                }
                if case .pc(let o) = pc.order {
                    throw ValidationError("--order \(o.rawValue) is an order of the predictor-corrector sampler; adaptive-unipc takes --order 1, 2 or 3")
                }
                if let d = sampler.denoise, d != .none {
                    throw ValidationError("--denoise \(d.rawValue) is not available with --sampler adaptive-unipc: it returns the state at eps (--denoise none)")
                }
            case .ddim, .dpmSolverPP, .unipc, .heun, .sdeDPMSolverPP:
                try fewStep.validate(kind, order: pc.order, latent: latent != nil)
                let other = (sampler.steps != nil ? ["--steps"] : []) + pc.given + ode.given
                if !other.isEmpty {
                    throw ValidationError("\(other.joined(separator: ", ")) \(other.count == 1 ? "is an option" : "are options") of the predictor-corrector or ODE sampler and would do nothing with --sampler \(kind.rawValue) (it takes --nfe, --order, --skip); remove \(other.count == 1 ? "it" : "them")")
                }
                if let d = sampler.denoise, d != .none {
                    throw ValidationError("--denoise \(d.rawValue) is not available with --sampler \(kind.rawValue): a few-step sampler returns the state at eps (--denoise none), so that nfe is exactly --nfe")
                }
            case .pc:
                if latent != nil {
                    throw ValidationError("--latent decodes latents with the probability-flow ODE; it needs --sampler ode, not pc")
                }
                let odeOnly = ode.given
                if !odeOnly.isEmpty {
                    throw ValidationError("\(odeOnly.joined(separator: ", ")) \(odeOnly.count == 1 ? "is an option" : "are options") of the ODE sampler; add --sampler ode, or remove \(odeOnly.count == 1 ? "it" : "them") for the predictor-corrector sampler")
                }
            case .ode:
                let pcOnly = (sampler.steps != nil ? ["--steps"] : []) + pc.given
                if !pcOnly.isEmpty {
                    throw ValidationError("\(pcOnly.joined(separator: ", ")) \(pcOnly.count == 1 ? "is an option" : "are options") of the predictor-corrector sampler and would do nothing with --sampler ode (the ODE solver chooses its own steps: see --method, --rtol, --atol); remove \(pcOnly.count == 1 ? "it" : "them")")
                }
                if sampler.denoise == .tweedie {
                    throw ValidationError("--denoise tweedie is not available with --sampler ode; use last-mean (one noise-free reverse-diffusion step, the reference's denoise=True) or none")
                }
            }
        }

        func run() throws {
            // Everything that can be wrong with the input fails here, before any work.
            let data = try model.load()
            let kind = resolvedSampler
            let sdeChoice = try sde.resolve(for: data)
            let built = try sdeChoice.make()
            // A learned model trained only down to some eps (the shipped digits-mlp: 1e-2) is not sampled below it.
            let eps = sampler.eps(default: max(sdeChoice.defaultEps, data.learned?.likelihoodEps ?? 0))
            try checkEps(eps, for: built.forward)
            let latents = try latent.map { try data.readRows($0, option: "--latent") }
            let classDefault = try classes.defaultCount(image: SampleFigure.isImage(data.rowShape), fallback: Self.defaultCount)
            let count = latents?.rows ?? self.count ?? classDefault
                ?? (SampleFigure.isImage(data.rowShape) ? Self.defaultImageCount : Self.defaultCount)
            let prepared = try prepare(kind, built, data, eps: eps, latents: latents, count: count)

            let files = try self.files.files(defaultPNG: Self.defaultPNG)

            // The work.
            var rng = RandomSource(seed: compute.seed)
            let (run, seconds, threadCount) = try compute.withThreadLimit { threads in
                let (run, seconds) = try timed { try prepared.run(&rng) }
                return (run, seconds, threads)
            }

            // The report: results first, then every setting.
            let samples = data.scaling.toData(run.samples)   // a learned model samples in its model space
            var report = RunStats()
            report.merge(run.results)
            report["wall_seconds"] = .double(seconds)
            report["samples_per_second"] = .double(seconds > 0 ? Double(count) / seconds : .infinity)
            report["count"] = .int(count)
            report["dim"] = .int(samples.rowSize)
            report["shape"] = .ints(samples.shape)
            report["model"] = .string(model.model)
            report.merge(sdeChoice.stats)
            report["sampler"] = .string(kind.rawValue)
            report.merge(prepared.settings)
            report.merge(classes.stats(model: data.name))
            report["eps"] = .double(eps)
            report["batch_size"] = .int(min(compute.rowsPerCall(data) ?? count, count))
            report["seed"] = seedValue(compute.seed)
            report["threads"] = .int(threadCount)
            report["blas"] = .string(BLASBackend.current.library.rawValue + " " + BLASBackend.current.kernel)
            report["ranks"] = .int(Population.size)   // MPI ranks sharing the run (1: one process)

            try files.write(samples: samples, report: report) {
                let title = "\(data.label) | \(sdeChoice.kind.rawValue) | \(prepared.label) | NFE \(run.nfe)"
                return try classes.figure(samples, model: data, title: title) ?? SampleFigure.render(samples, model: data, title: title)
            }

            let shape = samples.rowShape.count > 1 ? ", shape " + samples.rowShape.map(String.init).joined(separator: "x") : ""
            let decoded = latent.map { ", decoded from \($0)" } ?? ""
            print("\(count) samples (dim \(samples.rowSize)\(shape)) from \(model.model), \(sdeChoice.kind.rawValue), \(prepared.label)\(decoded): "
                  + "NFE \(run.nfe), \(String(format: "%.2f", seconds)) s; wrote \(files.paths)")
        }

        /// What a sampler run produced: the samples, their NFE, and its results for the stats file.
        struct SampleRun {
            let samples: Tensor
            let nfe: Int
            let results: RunStats
        }

        /// A sampler ready to run: its name for people, its settings for the stats file, and the run
        /// (which draws its own progress indicator).
        struct PreparedSampler {
            let label: String
            let settings: RunStats
            let run: (_ rng: inout RandomSource) throws -> SampleRun
        }

        /// Builds the chosen sampler (throwing on a bad combination, before any output is checked).
        func prepare(_ kind: SamplerName, _ built: BuiltSDE, _ data: DataModel, eps: Double,
                     latents: Tensor?, count: Int) throws -> PreparedSampler {
            let (forward, batchSize) = (built.forward, compute.rowsPerCall(data))
            switch kind {
            case .pc:
                let grid = try sampler.grid(for: forward, eps: eps)
                let score = try classes.score(data, diffusedBy: forward, count: count)
                let predictor = try pc.makePredictor(for: built, steps: grid.steps)
                let corrector = try pc.makeCorrector(steps: grid.steps)
        try predictor.validate(grid: grid, sde: forward)
        try corrector.validate(grid: grid, sde: forward)
                let denoise = sampler.denoise ?? .lastMean
                let (order, denoising) = (pc.orderName.order, denoise.denoising)
                var settings = pc.stats(denoise: denoise)
                settings["steps"] = .int(grid.steps)
                let algorithm = pcAlgorithm(predictor, corrector, grid: grid, order: order, denoising: denoising)
                return PreparedSampler(label: pc.label, settings: settings) { rng in
                    let progress = ProgressBar(total: grid.steps)
                    defer { progress?.finish() }
                    let run = try solveReverse(sde: forward, score: score, algorithm: algorithm, start: nil, count: count, rowShape: nil,
                                               eps: eps, batchSize: batchSize, using: &rng) { event in
                        progress?.update(step: event.index + 1, nfe: event.scoreEvaluations)
                    }
                    var results = RunStats()
                    results["nfe"] = .int(run.scoreEvaluations)
                    return SampleRun(samples: run.samples, nfe: run.scoreEvaluations, results: results)
                }
            case .ode:
                let (solver, layout) = (ode.solver, ode.layout)
                try checkImplicitFits(ode, rows: count, dimension: data.rowShape.reduce(1, *))
                let denoise = sampler.denoise ?? .none
                var settings = ode.stats
                settings["denoise"] = .string(denoise.rawValue)
                settings["latent"] = latent.map { .string($0) } ?? .null
                let base = try classes.score(data, diffusedBy: forward, count: count)
                let algorithm = ProbabilityFlowAlgorithm(solver, layout: layout, denoise: denoise == .lastMean)
                try validateReverse(sde: forward, score: base, algorithm: algorithm, start: latents, count: count, rowShape: data.rowShape,
                                    eps: eps, batchSize: batchSize)
                return PreparedSampler(label: "ode " + ode.label, settings: settings) { rng in
                    let progress = ODEProgress("sample", from: forward.T, to: eps, layout: layout)
                    defer { progress?.finish() }
                    let score = observed(base, by: progress)
                    let run = try solveReverse(sde: forward, score: score, algorithm: algorithm, start: latents, count: count,
                                               rowShape: data.rowShape, eps: eps, batchSize: batchSize, using: &rng)
                    return SampleRun(samples: run.samples, nfe: run.scoreEvaluations, results: ODEOptions.results(run, layout: layout))
                }
            case .adaptiveSDE:
                let denoise = sampler.denoise ?? .none
                let rtol = ode.rtol ?? 0.05, atol = ode.atol ?? 0.0078
                let score = try classes.score(data, diffusedBy: forward, count: count)
                let algorithm = AdaptiveSDEAlgorithm(absoluteTolerance: atol, relativeTolerance: rtol, denoising: denoise.denoising)
                try validateReverse(sde: forward, score: score, algorithm: algorithm, start: nil, count: count, rowShape: data.rowShape,
                                    eps: eps, batchSize: batchSize)
                var settings = RunStats()
                settings["rtol"] = .double(rtol)
                settings["atol"] = .double(atol)
                settings["denoise"] = .string(denoise.rawValue)
                let shape = data.rowShape
                return PreparedSampler(label: "adaptive-sde (rtol \(rtol), atol \(atol))", settings: settings) { rng in
                    let run = try solveReverse(sde: forward, score: score, algorithm: algorithm, start: nil, count: count,
                                               rowShape: shape, eps: eps, batchSize: batchSize, using: &rng)
                    var results = RunStats()
                    results["nfe"] = .int(run.scoreEvaluations)
                    results["nfe_mean_per_sample"] = .double(run.meanPerSampleEvaluations ?? 0)
                    results["nfe_max_per_sample"] = .int(run.perSampleEvaluations?.max() ?? 0)
                    results["rejected_steps_mean"] = .double(Double(run.rejectedSteps) / Double(max(count, 1)))
                    return SampleRun(samples: run.samples, nfe: run.scoreEvaluations, results: results)
                }
            case .adaptiveUniPC:
                let rtol = ode.rtol ?? 5e-4, atol = ode.atol ?? 5e-4
                var order = 3
                if case .solver(let n) = pc.order { order = n }
                let score = try classes.score(data, diffusedBy: forward, count: count)
                let algorithm = AdaptiveUniPCAlgorithm(order: order, absoluteTolerance: atol, relativeTolerance: rtol,
                                                       norm: sampler.errorNorm == .worstRow ? .worstRow : .batch)
                try validateReverse(sde: forward, score: score, algorithm: algorithm, start: latents, count: count, rowShape: data.rowShape,
                                    eps: eps, batchSize: batchSize)
                var settings = RunStats()
                settings["rtol"] = .double(rtol)
                settings["atol"] = .double(atol)
                settings["solver_order"] = .int(order)
                settings["error_norm"] = .string((sampler.errorNorm ?? .batch).rawValue)
                settings["denoise"] = .string(DenoiseName.none.rawValue)
                settings["latent"] = latent.map { .string($0) } ?? .null
                let shape = data.rowShape
                return PreparedSampler(label: "adaptive-unipc order \(order) (rtol \(rtol), atol \(atol))", settings: settings) { rng in
                    let run = try solveReverse(sde: forward, score: score, algorithm: algorithm, start: latents, count: count,
                                               rowShape: shape, eps: eps, batchSize: batchSize, using: &rng)
                    var results = RunStats()
                    results["nfe"] = .int(run.scoreEvaluations)
                    results["accepted_steps"] = .int(run.acceptedSteps)
                    results["rejected_steps"] = .int(run.rejectedSteps)
                    return SampleRun(samples: run.samples, nfe: run.scoreEvaluations, results: results)
                }
            case .ddim, .dpmSolverPP, .unipc, .heun, .sdeDPMSolverPP:
                let made = try fewStep.make(kind, order: pc.order, sde: forward, eps: eps, dimension: data.rowShape.reduce(1, *))
                let grid = made.grid
                try made.predictor.validate(grid: grid, sde: forward)
                let score = try classes.score(data, diffusedBy: forward, count: count)
                let algorithm = pcAlgorithm(made.predictor, NoCorrector(), grid: grid, order: .correctorFirst, denoising: .none,
                                            name: kind.rawValue)
                var settings = RunStats()
                settings["steps"] = .int(grid.steps)
                settings["solver_order"] = .int(made.order)
                settings["skip"] = .string(made.skip.rawValue)
                settings["eta"] = kind == .ddim ? .double(fewStep.eta ?? 0) : .null
                settings["threshold"] = fewStep.threshold.map { .double($0) } ?? .null
                settings["denoise"] = .string(DenoiseName.none.rawValue)
                settings["latent"] = latent.map { .string($0) } ?? .null
                let label = "\(kind.rawValue)\(kind == .ddim || kind == .heun ? "" : " order \(made.order)"), \(made.skip.rawValue), \(grid.steps) steps"
                return PreparedSampler(label: label, settings: settings) { rng in
                    let progress = ProgressBar(total: grid.steps)
                    defer { progress?.finish() }
                    let run = try solveReverse(sde: forward, score: score, algorithm: algorithm, start: latents, count: count,
                                               rowShape: nil, eps: eps, batchSize: batchSize, using: &rng) { event in
                        progress?.update(step: event.index + 1, nfe: event.scoreEvaluations)
                    }
                    var results = RunStats()
                    results["nfe"] = .int(run.scoreEvaluations)
                    return SampleRun(samples: run.samples, nfe: run.scoreEvaluations, results: results)
                }
            }
        }
    }
}

/// A predictor–corrector algorithm on concrete types (callers pass existentials, which Swift opens).
func pcAlgorithm<P: Predictor, C: Corrector>(_ predictor: P, _ corrector: C, grid: TimeGrid, order: PCOrder,
                                             denoising: FinalDenoising, resampling: Resampling = .none, name: String = "pc") -> any ReverseAlgorithm {
    PredictorCorrectorAlgorithm(grid: grid, predictor: predictor, corrector: corrector, order: order, denoising: denoising,
                                resampling: resampling, name: name)
}

/// The reverse problem of a sampling command: given rows at `T` (`start`), or `count` prior draws.
func reverseProblem<S: ForwardSDE, M: ScoreModel>(sde: S, score: M, start: Tensor?, count: Int, rowShape: [Int]?, eps: Double,
                                                  batchSize: Int?, constraint: (any SamplingConstraint)? = nil) -> ReverseProblem<S, M> {
    ReverseProblem(sde: sde, score: score, start: start.map { .state($0) } ?? .prior(count: count, rowShape: rowShape),
                   eps: eps, constraint: constraint, batchSize: batchSize)
}

/// `solve(problem, algorithm)` on concrete types (callers pass existentials, which Swift opens).
func solveReverse<S: ForwardSDE, M: ScoreModel, A: ReverseAlgorithm>(
    sde: S, score: M, algorithm: A, start: Tensor?, count: Int, rowShape: [Int]?, eps: Double, batchSize: Int?,
    constraint: (any SamplingConstraint)? = nil, using rng: inout RandomSource, onStep: ((StepEvent) -> Void)? = nil
) throws -> ReverseSolution {
    try solve(reverseProblem(sde: sde, score: score, start: start, count: count, rowShape: rowShape, eps: eps, batchSize: batchSize,
                             constraint: constraint),
              algorithm, using: &rng, onStep: onStep)
}

/// Checks an algorithm's settings against the problem without running it (before any output is written).
func validateReverse<S: ForwardSDE, M: ScoreModel, A: ReverseAlgorithm>(
    sde: S, score: M, algorithm: A, start: Tensor?, count: Int, rowShape: [Int]?, eps: Double, batchSize: Int?
) throws {
    try algorithm.validate(for: reverseProblem(sde: sde, score: score, start: start, count: count, rowShape: rowShape, eps: eps,
                                               batchSize: batchSize))
}

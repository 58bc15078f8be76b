import ArgumentParser
import Foundation
import ScoreSDE

extension ScoreSDECommand {
    /// `scoresde sample`: draws samples from a model by reversing a forward SDE.
    struct Sample: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Draw samples from a model by reversing a forward SDE.",
            discussion: """
                With no options: 4096 samples of the built-in ring with the VE SDE and the \
                reverse-diffusion + Langevin sampler (1000 steps), plotted to samples.png. When \
                --output, --stats or --png is given, exactly those files are written.
                """
        )

        @OptionGroup(title: "Model") var model: ModelOptions
        @OptionGroup(title: "Forward SDE") var sde: SDEOptions
        @OptionGroup(title: "Sampler") var sampler: SamplerOptions
        @OptionGroup(title: "Predictor-corrector sampler") var pc: PCOptions

        @Option(parsing: .unconditional, help: "Number of samples.")
        var count: Int = 4096

        @OptionGroup(title: "Computation") var compute: ComputeOptions

        @Option(help: ArgumentHelp("Write the samples as a float64 .npy of shape [count, ...].", valueName: "path"))
        var output: String?

        @Option(help: ArgumentHelp("Write the cost (nfe, wall_seconds, ...) and every setting as JSON.", valueName: "path"))
        var stats: String?

        @Option(help: ArgumentHelp("Write a picture of the samples: a scatter plot (2-D data; else the first two coordinates) or an image grid.", valueName: "path"))
        var png: String?

        /// The PNG written when no output is named.
        static let defaultPNG = "samples.png"

        func validate() throws {
            if count < 1 { throw ValidationError("--count must be >= 1 (got \(count))") }
        }

        func run() throws {
            // Everything that can be wrong with the input fails here, before any work.
            let data = try model.load()
            let built = try sde.make(steps: sampler.steps)
            let eps = sampler.eps(default: sde.defaultEps)
            let grid = try sampler.grid(for: built.forward, eps: eps)
            let prepared = try prepare(built, data.score(diffusedBy: built.forward), grid)

            var outputs = RunOutputs()
            outputs.add(output, for: "--output")
            outputs.add(stats, for: "--stats")
            outputs.add(png, for: "--png")
            if outputs.isEmpty { outputs.add(Self.defaultPNG, for: "--png") }
            try outputs.check()

            // The work.
            var rng = RandomSource(seed: compute.seed)
            let progress = ProgressBar(total: grid.steps)
            let (run, seconds, threadCount) = try compute.withThreadLimit { threads in
                let clock = ContinuousClock(), start = clock.now
                let run = try prepared.sample(&rng) { event in
                    progress?.update(step: event.index + 1, nfe: event.scoreEvaluations)
                }
                let elapsed = start.duration(to: clock.now).components
                return (run, Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18, threads)
            }
            progress?.finish()

            // The report: results first, then every setting.
            let samples = run.samples
            var report = RunStats()
            report["nfe"] = .int(run.scoreEvaluations)
            report["wall_seconds"] = .double(seconds)
            report["samples_per_second"] = .double(seconds > 0 ? Double(count) / seconds : .infinity)
            report["count"] = .int(count)
            report["dim"] = .int(samples.rowSize)
            report["shape"] = .ints(samples.shape)
            report["model"] = .string(model.model)
            report.merge(sde.stats)
            report["sampler"] = .string(sampler.sampler.rawValue)
            report.merge(prepared.settings)
            report["steps"] = .int(grid.steps)
            report["eps"] = .double(eps)
            report["batch_size"] = .int(min(compute.batchSize ?? count, count))
            report["seed"] = compute.seed <= UInt64(Int.max) ? .int(Int(compute.seed)) : .string(String(compute.seed))
            report["threads"] = .int(threadCount)

            var contents = [String: Data]()
            if outputs.contains("--output") { contents["--output"] = Npy.encode(samples) }
            if outputs.contains("--stats") { contents["--stats"] = report.jsonData() }
            if outputs.contains("--png") {
                let title = "\(data.label) | \(sde.sde.rawValue) | \(prepared.label) | NFE \(run.scoreEvaluations)"
                contents["--png"] = try PNG.encode(SampleFigure.render(samples, model: data, title: title))
            }
            try outputs.write(contents)

            let shape = samples.rowShape.count > 1 ? ", shape " + samples.rowShape.map(String.init).joined(separator: "x") : ""
            print("\(count) samples (dim \(samples.rowSize)\(shape)) from \(model.model), \(sde.sde.rawValue), \(prepared.label): "
                  + "NFE \(run.scoreEvaluations), \(String(format: "%.2f", seconds)) s; wrote \(outputs.paths.joined(separator: ", "))")
        }

        /// A sampler ready to run: its name for people, its settings for the stats file, and the run.
        struct PreparedSampler {
            let label: String
            let settings: RunStats
            let sample: (_ rng: inout RandomSource, _ onStep: @escaping (StepEvent) -> Void) throws -> SamplingResult
        }

        /// Builds the chosen sampler (throwing on a bad combination, before any output is checked).
        func prepare(_ built: BuiltSDE, _ score: any ScoreModel, _ grid: TimeGrid) throws -> PreparedSampler {
            let (forward, count, batchSize) = (built.forward, count, compute.batchSize)
            switch sampler.sampler {
            case .pc:
                let predictor = try pc.makePredictor(for: built)
                let corrector = try pc.makeCorrector()
                let (order, denoising) = (pc.order.order, pc.denoise.denoising)
                return PreparedSampler(label: pc.label, settings: pc.stats) { rng, onStep in
                    try samplePC(sde: forward, score: score, predictor: predictor, corrector: corrector, grid: grid,
                                 order: order, denoising: denoising, batchSize: batchSize, count: count,
                                 using: &rng, onStep: onStep)
                }
            }
        }
    }
}

/// The predictor-corrector sampler on concrete types (callers pass existentials, which Swift opens).
private func samplePC<S: ForwardSDE, M: ScoreModel, P: Predictor, C: Corrector>(
    sde: S, score: M, predictor: P, corrector: C, grid: TimeGrid, order: PCOrder, denoising: FinalDenoising,
    batchSize: Int?, count: Int, using rng: inout RandomSource, onStep: @escaping (StepEvent) -> Void
) throws -> SamplingResult {
    let sampler = PCSampler(sde: sde, score: score, grid: grid, predictor: predictor, corrector: corrector,
                            order: order, denoising: denoising, batchSize: batchSize)
    return try sampler.sample(count: count, using: &rng, onStep: onStep)
}

import ArgumentParser
import Foundation
import ScoreSDE

extension ScoreSDECommand {
    /// `scoresde encode`: maps data to latents with the probability-flow ODE.
    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encode data into latents with the probability-flow ODE (data at eps -> latents at T).",
            discussion: """
                Solves dx/dt = f(x, t) - 1/2 g(t)^2 s(x, t) from eps up to T with an adaptive GSL \
                integrator (default rkf45, rtol = atol = 1e-5, the reference's). The map is a bijection \
                up to the solver tolerance: `scoresde sample --latent z.npy` with the same model, SDE, \
                eps and method decodes the latents back to the data. Use the same --eps for both (the \
                defaults agree: 1e-5 for ve, 1e-3 for vp and subvp).

                Writes only the files named by --output and --stats (at least one is needed).

                A learned model (--model digits, patches or PATH.safetensors) takes the data in data \
                space (e.g. raw digits 0...16, or --data digits) and applies its recorded scaling \
                before solving; the latents are in its prior space.
                """
        )

        @OptionGroup(title: "Model") var model: ModelOptions
        @OptionGroup(title: "Forward SDE") var sde: SDEOptions
        @OptionGroup(title: "Data") var data: DataOptions

        @Option(parsing: .unconditional, help: ArgumentHelp("The time of the data, in (0, T) (default: 1e-5 for ve, 1e-3 for vp and subvp, as for sampling).", valueName: "t"))
        var eps: Double?

        @OptionGroup(title: "Probability-flow ODE") var ode: ODEOptions
        @OptionGroup(title: "Computation") var compute: ComputeOptions
        @OptionGroup(title: "Progress") var progressOptions: ProgressOptions

        @Option(help: ArgumentHelp("Write the latents as a float64 .npy of the data's shape [n, ...].", valueName: "path"))
        var output: String?

        @Option(help: ArgumentHelp("Write the cost (nfe, accepted_steps, wall_seconds, ...) and every setting as JSON.", valueName: "path"))
        var stats: String?

        func validate() throws {
            if output == nil && stats == nil {
                throw ValidationError("nothing to write: give --output z.npy for the latents (and/or --stats for the cost)")
            }
        }

        func run() throws {
            // Everything that can be wrong with the input fails here, before any work.
            let dataModel = try model.load()
            let sdeChoice = try sde.resolve(for: dataModel)
            let built = try sdeChoice.make()
            let forward = built.forward
            let eps = self.eps ?? sdeChoice.defaultEps
            try checkEps(eps, for: forward)
            var rng = RandomSource(seed: compute.seed)
            // Data space -> the model's space (a learned model's scaling; identity for mixtures).
            let x = dataModel.scaling.toModel(try data.load(for: dataModel, seed: compute.seed, using: &rng))
            try checkImplicitFits(ode, rows: x.rows, dimension: x.rowSize)

            var outputs = RunOutputs()
            outputs.add(output, for: "--output")
            outputs.add(stats, for: "--stats")
            try outputs.check()

            // The work.
            let (solver, layout, batchSize) = (ode.solver, ode.layout, compute.rowsPerCall(dataModel))
            let (run, seconds, threadCount) = try compute.withThreadLimit { threads in
                let progress = ODEProgress("encode", from: eps, to: forward.T, layout: layout)
                defer { progress?.finish() }
                let score = observed(dataModel.score(diffusedBy: forward), by: progress)
                let (run, seconds) = try timed {
                    try runODE(.encode(x), sde: forward, score: score, eps: eps, solver: solver, layout: layout,
                               denoise: false, batchSize: batchSize, using: &rng)
                }
                return (run, seconds, threads)
            }

            // The report: results first, then every setting.
            var report = ODEOptions.results(nfe: run.scoreEvaluations, run.statistics, layout: layout)
            report["wall_seconds"] = .double(seconds)
            report["n"] = .int(x.rows)
            report["dim"] = .int(x.rowSize)
            report["shape"] = .ints(run.states.shape)
            report["latent_rms"] = .double((run.states.storage.reduce(0) { $0 + $1 * $1 } / Double(run.states.count)).squareRoot())
            report["prior_std"] = .double(forward.priorStd)
            report["model"] = .string(model.model)
            report["data"] = .string(data.source(dataModel, seed: compute.seed))
            report.merge(sdeChoice.stats)
            report.merge(ode.stats)
            report["eps"] = .double(eps)
            report["T"] = .double(forward.T)
            report["batch_size"] = .int(min(compute.rowsPerCall(dataModel) ?? x.rows, x.rows))
            report["seed"] = seedValue(compute.seed)
            report["threads"] = .int(threadCount)
            report["blas"] = .string(BLASBackend.current.library.rawValue + " " + BLASBackend.current.kernel)
            report["ranks"] = .int(Population.size)   // MPI ranks sharing the run (1: one process)

            var contents = [String: Data]()
            if outputs.contains("--output") { contents["--output"] = Npy.encode(run.states) }
            if outputs.contains("--stats") { contents["--stats"] = report.jsonData() }
            try outputs.write(contents)

            print("encoded \(x.rows) samples (dim \(x.rowSize)) \(data.origin(dataModel, seed: compute.seed)) to latents at T = \(forward.T) "
                  + "with \(model.model), \(sdeChoice.kind.rawValue), \(ode.label), eps \(eps): NFE \(run.scoreEvaluations), "
                  + "\(String(format: "%.2f", seconds)) s; wrote \(outputs.paths.joined(separator: ", "))")
        }
    }
}

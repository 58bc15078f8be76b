import ArgumentParser
import Foundation
import ScoreSDE

/// The divergence estimators by name.
enum EstimatorName: String, CaseIterable, ExpressibleByArgument {
    case exact, rademacher, gaussian

    func estimator(probes: Int) -> DivergenceEstimator {
        switch self {
        case .exact: return .exact
        case .rademacher: return .rademacher(probes: probes)
        case .gaussian: return .gaussian(probes: probes)
        }
    }
}

/// How the data were scaled, by name: sets the bits/dim convention (and the dequantization's target).
enum DataRangeName: String, CaseIterable, ExpressibleByArgument {
    case continuous, unit, symmetric

    var convention: BitsPerDimConvention {
        switch self {
        case .continuous: return .continuous
        case .unit: return .unitInterval
        case .symmetric: return .symmetric
        }
    }
}

extension ScoreSDECommand {
    /// `scoresde likelihood`: exact log-likelihoods by the probability-flow ODE.
    struct LogLikelihood: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "likelihood",
            abstract: "Compute log-likelihoods (nats) and bits/dim with the probability-flow ODE.",
            discussion: """
                Integrates [x; delta log p] from eps up to T with d(delta log p)/dt = div f~ (the \
                instantaneous change of variables, Song et al. 2021 App. D.2), then \
                log p_eps(x) = log p_T(x(T)) + delta log p. log p_T is the SDE's Gaussian prior, as in \
                the reference, or with --exact-prior the exact p_T of the mixture model, which removes \
                the prior mismatch and leaves only the solver error (e.g. 256 ring samples match the \
                closed-form log p_eps to about 1e-3 nats at the default tolerances).

                Estimators: exact (default): the divergence in closed form (mixtures: O(K D) per \
                sample); rademacher / gaussian: Hutchinson's estimator with --probes random vectors \
                (±1 or standard normal) drawn once per solve with --seed, as the reference (which uses \
                rademacher with one probe).

                Bits/dim: -log p(x) / (D ln 2) plus an offset set by --data-range: continuous (none), \
                unit (8-bit data scaled to [0, 1]: +8), symmetric (8-bit data scaled to [-1, 1]: +7). \
                The convention is printed with the summary and written to the stats file.

                Learned models (--model digits, digits-mlp, patches, fashion or PATH.safetensors) take --data in data \
                space (e.g. raw digits 0...16) and evaluate the model at scale * x + shift, their \
                recorded data scaling. The log-likelihood reported is the density of the data-space \
                values: log p(x) = log p_model(scale * x + shift) + D log|scale| (the log-Jacobian of \
                the scaling), and bits/dim = -log p(x) / (D ln 2), i.e. the model-space bits/dim plus \
                -log2|scale| (the reference's +8 for 8-bit data scaled by 1/256); --data-range does \
                not apply. With --dequantize the data must be the integer levels (digits 0...16, \
                patches 0...255) and get U[0, 1) noise in data space, so bits/dim bound those of the \
                discrete data; --dequantizations n averages each sample over n independent draws (one \
                solve). A model trained with --dequantize records its levels (digits: 17; bits per \
                17-level pixel, a uniform guess scores log2 17 = 4.09) and the eps its likelihood is \
                stated at (the shipped digits-mlp: 1e-2), the default --eps. The summary gives the mean, \
                median and maximum bits/dim and how many samples score worse than the uniform guess, \
                and warns when the worst 1% of the samples move the mean by more than twice the \
                standard error of the rest (a few points then dominate the mean). A model trained \
                with --scaling none works as a mixture does here.

                With no --data: 256 exact samples of the model drawn with --seed, so the command runs \
                with no files. The summary goes to standard output; --output and --stats write files.
                """
        )

        @OptionGroup(title: "Model") var model: ModelOptions
        @OptionGroup(title: "Forward SDE") var sde: SDEOptions
        @OptionGroup(title: "Data") var data: DataOptions

        @Option(help: ArgumentHelp(
            "How the data were scaled, for bits/dim: continuous (no offset, default), unit (8-bit data in [0, 1]: +8), symmetric (8-bit data in [-1, 1]: +7).",
            valueName: "continuous|unit|symmetric"))
        var dataRange: DataRangeName?

        @Flag(help: ArgumentHelp(
            "The data are 8-bit integers 0...255: add U[0, 1) noise and scale to the --data-range (unit or symmetric), as the reference's uniform dequantization (u + k) / 256. With a learned model that has a data scaling: the data are its integer levels (digits 0...16, patches 0...255), and U[0, 1) is added in data space."))
        var dequantize = false

        @Option(parsing: .unconditional, help: ArgumentHelp(
            "With --dequantize and a learned model's integer levels: average each sample's bits/dim over this many independent dequantizations (default: 1; the issue-12 digits figures use 5).",
            valueName: "n"))
        var dequantizations: Int?

        @Option(help: ArgumentHelp(
            "The divergence estimator: exact (default), rademacher or gaussian (Hutchinson).",
            valueName: "exact|rademacher|gaussian"))
        var estimator: EstimatorName = .exact

        @Option(parsing: .unconditional, help: ArgumentHelp("rademacher/gaussian: probe vectors per sample, >= 1 (default: 1, the reference's).", valueName: "k"))
        var probes: Int?

        @Flag(help: ArgumentHelp(
            "Use the mixture's exact density p_T at T as the terminal density instead of the SDE's prior N(0, prior_std^2 I); the result is then exact up to the solver tolerance."))
        var exactPrior = false

        @Option(name: .customLong("eps"), parsing: .unconditional, help: ArgumentHelp("The time of the data, in (0, T) (default: a learned model's recorded likelihood eps, its smallest training time, e.g. 1e-2 for the shipped digits-mlp; else 1e-5, the reference's likelihood eps for every SDE).", valueName: "t"))
        var epsOption: Double?

        @OptionGroup(title: "Probability-flow ODE") var ode: ODEOptions
        @OptionGroup(title: "Computation") var compute: ComputeOptions
        @OptionGroup(title: "Progress") var progressOptions: ProgressOptions

        @Option(help: ArgumentHelp("Write the per-sample log-likelihoods (nats) as a float64 .npy of shape [n].", valueName: "path"))
        var output: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("Evaluate in chunks of n rows, keeping every finished chunk in STATS.partial (needs --stats): an interrupted run resumes when rerun with the same command. Chunk c gets the random source derived from --seed and c, so the values depend on the chunk size, not on interruptions.", valueName: "n"))
        var chunkSize: Int?

        @Option(help: ArgumentHelp("Write the results (mean log-likelihood, bits/dim and their convention, nfe, ...) and every setting as JSON.", valueName: "path"))
        var stats: String?

        func validate() throws {
            if let chunkSize {
                if chunkSize < 1 { throw ValidationError("--chunk-size must be >= 1 (got \(chunkSize))") }
                if stats == nil { throw ValidationError("--chunk-size keeps its partial results beside --stats: add --stats PATH.json") }
            }
            if let probes {
                if probes < 1 { throw ValidationError("--probes must be >= 1 (got \(probes))") }
                if estimator == .exact {
                    throw ValidationError("--probes is for the Hutchinson estimators; add --estimator rademacher or gaussian, or drop --probes for the exact divergence")
                }
            }
            if let n = dequantizations {
                if n < 1 { throw ValidationError("--dequantizations must be >= 1 (got \(n))") }
                if !dequantize { throw ValidationError("--dequantizations averages over dequantizations; add --dequantize") }
            }
            if dequantize {
                if data.data == nil {
                    throw ValidationError("--dequantize needs --data: a file of 8-bit integers 0...255 (the default data are the model's continuous samples)")
                }
            }
        }

        func run() throws {
            // Everything that can be wrong with the input fails here, before any work.
            let dataModel = try model.load()
            let sdeChoice = try sde.resolve(for: dataModel)
            let built = try sdeChoice.make()
            let forward = built.forward
            // The model density is the probability flow's at eps: a learned model states its own.
            let eps = epsOption ?? dataModel.learned?.likelihoodEps ?? 1e-5
            try checkEps(eps, for: forward)
            try ode.checkUsableForLikelihood()
            // A learned model with a data scaling: bits/dim follow from its scaling (see the discussion).
            let scaling = dataModel.scaling
            let scaled = dataModel.learned != nil && scaling != .identity
            if scaled, let dataRange {
                throw ScoreSDEError.invalidArgument("--data-range \(dataRange.rawValue) does not apply to the learned model \(dataModel.name): it records its data scaling (\(scaling)), which sets bits/dim through the change of variables; drop --data-range")
            }
            if dequantize, !scaled, (dataRange ?? .continuous) == .continuous {
                throw ValidationError("--dequantize needs --data-range unit or symmetric: the range the 8-bit values are scaled to")
            }
            if exactPrior, dataModel.learned != nil {
                throw ScoreSDEError.invalidArgument("--exact-prior needs a Gaussian mixture model, whose p_T is known in closed form; the learned model \(dataModel.name) has none: drop --exact-prior to use the SDE's prior")
            }
            var rng = RandomSource(seed: compute.seed)
            var x = try data.load(for: dataModel, seed: compute.seed, using: &rng)
            let topLevel = dataModel.learned?.dequantizationLevels.map { $0 - 1 } ?? Int(dataModel.imageRange.upperBound.rounded())
            // Learned model with integer levels: k + u in data space, averaged over --dequantizations draws (one solve).
            let levelsMode = dequantize && scaled
            if levelsMode {
                do { try UniformDequantization.check(x, topLevel: topLevel) } catch {
                    throw ScoreSDEError.invalidArgument("--dequantize: \(data.data ?? "the data") must hold the model's integer levels 0...\(topLevel); drop --dequantize for continuous data (\(error))")
                }
            } else if dequantize {
                do { x = try UniformDequantization.eightBit(x, to: (dataRange ?? .continuous).convention, using: &rng) } catch {
                    throw ScoreSDEError.invalidArgument("--dequantize: \(data.data ?? "the data") must hold 8-bit integers 0...255; drop --dequantize for data that are already scaled (\(error))")
                }
            }
            let draws = levelsMode ? (dequantizations ?? 1) : 1
            let terminal = exactPrior ? dataModel.exactLogDensity(at: forward.T, diffusedBy: forward) : nil
            let probeCount = probes ?? 1
            let divergence = estimator.estimator(probes: probeCount)
            // A learned model's data space: log p(x) = log p_model(scale x + shift) + D log|scale|.
            let convention: BitsPerDimConvention = scaled ? .dataSpace(scaling) : (dataRange ?? .continuous).convention

            var outputs = RunOutputs()
            outputs.add(output, for: "--output")
            outputs.add(stats, for: "--stats")
            try outputs.check()

            // The work.
            let (solver, layout, batchSize) = (ode.solver, ode.layout, compute.rowsPerCall(dataModel))
            let (run, seconds, threadCount) = try compute.withThreadLimit { threads in
                let progress = ODEProgress("likelihood", from: eps, to: forward.T, layout: layout)
                defer { progress?.finish() }
                let score = observed(dataModel.score(diffusedBy: forward), by: progress)
                func evaluate(_ rows: Tensor, _ rng: inout RandomSource) throws -> LikelihoodOutcome {
                    levelsMode
                        ? try evaluateDequantizedLikelihood(rows, topLevel: topLevel, scaling: scaling, draws: draws, sde: forward, score: score,
                                                            estimator: divergence, eps: eps, solver: solver, layout: layout,
                                                            batchSize: batchSize, using: &rng)
                        : LikelihoodOutcome(try evaluateLikelihood(scaling.toModel(rows), sde: forward, score: score, estimator: divergence, eps: eps,
                                                                   solver: solver, layout: layout, convention: convention, batchSize: batchSize,
                                                                   terminalLogDensity: terminal, using: &rng))
                }
                guard let chunkSize, let stats else {
                    let (run, seconds) = try timed { try evaluate(x, &rng) }
                    return (run, seconds, threads)
                }
                // Chunked: every finished chunk is kept in STATS.partial; a rerun resumes.
                let settings = [model.model, data.source(dataModel, seed: compute.seed), "eps \(eps)", "\(estimator.rawValue) x \(probeCount)",
                                ode.label, "dequantize \(dequantize) x \(draws)", "range \(dataRange?.rawValue ?? "-")",
                                "exact prior \(exactPrior)", "seed \(compute.seed)", "chunk \(chunkSize)"].joined(separator: " | ")
                let chunks = ChunkedEvaluation(rows: x.rows, chunkSize: chunkSize, settings: settings, seed: compute.seed,
                                               partialFile: stats + ".partial")
                let result = try chunks.run(progress: { done, total in
                    if !progressOptions.quiet { fputs("likelihood: chunk \(done) of \(total) done (kept in \(stats).partial)\n", stderr) }
                }) { rows, chunkRNG in
                    var rng = chunkRNG
                    let r = try evaluate(x.rows(rows), &rng)
                    let i = r.statistics.integrator
                    return .init(columns: ["log_likelihood": r.logLikelihood, "bits_per_dim": r.bitsPerDim,
                                           "terminal": r.priorLogDensity, "delta_log_p": r.deltaLogP, "log_jacobian": r.logJacobian],
                                 counters: ["nfe": r.scoreEvaluations, "model_passes": r.statistics.modelPasses,
                                            "rhs": i.rightHandSideEvaluations, "jacobians": i.jacobianEvaluations,
                                            "accepted": i.acceptedSteps, "rejected": i.rejectedSteps])
                }
                if result.resumedChunks > 0, !progressOptions.quiet {
                    fputs("likelihood: resumed \(result.resumedChunks) finished chunk\(result.resumedChunks == 1 ? "" : "s") from \(stats).partial\n", stderr)
                }
                return (LikelihoodOutcome(chunks: result), result.seconds, threads)
            }

            // The report: results first, then every setting.
            // What the library computed, as it computed it (data space for a learned model's scaling).
            let logLikelihood = run.logLikelihood, bitsPerDim = run.bitsPerDim
            let conventionText = convention.description
            let ll = MeanEstimate(logLikelihood), bpd = MeanEstimate(bitsPerDim)
            var report = RunStats()
            report["mean_log_likelihood"] = .double(ll.mean)
            report["std_log_likelihood"] = .double(ll.std)
            report["stderr_log_likelihood"] = .double(ll.standardError)
            report["mean_bits_per_dim"] = .double(bpd.mean)
            report["std_bits_per_dim"] = .double(bpd.std)
            report["stderr_bits_per_dim"] = .double(bpd.standardError)
            report["bits_per_dim_convention"] = .string(conventionText)
            if let offset = convention.constantOffset { report["bits_per_dim_offset"] = .double(offset) }
            report["log_jacobian"] = .double(MeanEstimate(run.logJacobian).mean)
            report["log_likelihood_unit"] = "nats"
            report["mean_terminal_log_density"] = .double(MeanEstimate(run.priorLogDensity).mean)
            report["mean_delta_log_p"] = .double(MeanEstimate(run.deltaLogP).mean)
            report.merge(ODEOptions.results(nfe: run.scoreEvaluations, run.statistics, layout: layout))
            report["wall_seconds"] = .double(seconds)
            report["n"] = .int(x.rows)
            report["dim"] = .int(x.rowSize)
            report["model"] = .string(model.model)
            report["data"] = .string(data.source(dataModel, seed: compute.seed))
            report["data_range"] = .string(scaled ? "model scaling" : (dataRange ?? .continuous).rawValue)
            report["data_scale"] = .double(scaling.scale)
            report["data_shift"] = .double(scaling.shift)
            report["dequantize"] = .bool(dequantize)
            report["dequantizations"] = .int(draws)
            let levelCount = topLevel + 1
            let tail = LikelihoodSummary(bitsPerDim: bitsPerDim, threshold: Foundation.log2(Double(levelCount)))
            report["median_bits_per_dim"] = .double(tail.median)
            report["max_bits_per_dim"] = .double(tail.max)
            if levelsMode {
                report["uniform_guess_bits_per_dim"] = .double(tail.threshold)
                report["count_above_uniform_guess"] = .int(tail.countAboveThreshold)
            }
            report["tail_count"] = .int(tail.tailCount)
            report["tail_shift_bits_per_dim"] = .double(tail.tailShift)
            report["tail_dominated"] = .bool(tail.tailDominated)
            report.merge(sdeChoice.stats)
            report["estimator"] = .string(estimator.rawValue)
            report["probes"] = estimator == .exact ? .null : .int(probeCount)
            report["exact_prior"] = .bool(exactPrior)
            report["terminal_density"] = .string(exactPrior ? "exact p_T of the mixture" : "prior N(0, \(forward.priorStd)^2 I)")
            report.merge(ode.stats)
            report["eps"] = .double(eps)
            report["T"] = .double(forward.T)
            report["batch_size"] = .int(min(compute.rowsPerCall(dataModel) ?? x.rows, x.rows))
            report["seed"] = seedValue(compute.seed)
            report["threads"] = .int(threadCount)
            report["blas"] = .string(BLASBackend.current.library.rawValue + " " + BLASBackend.current.kernel)
            report["ranks"] = .int(Population.size)   // MPI ranks sharing the run (1: one process)

            var contents = [String: Data]()
            if outputs.contains("--output") {
                contents["--output"] = Npy.encode(try Tensor(shape: [x.rows], storage: logLikelihood))
            }
            if outputs.contains("--stats") { contents["--stats"] = report.jsonData() }
            try outputs.write(contents)

            let spread = ll.std.isFinite ? " (std \(formatted(ll.std)), s.e. \(formatted(ll.standardError)))" : ""
            let estimatorLabel = estimator == .exact ? "exact divergence" : "\(estimator.rawValue) x \(probeCount)"
            let wrote = outputs.isEmpty ? "no files written" : "wrote \(outputs.paths.joined(separator: ", "))"
            print("log-likelihood of \(x.rows) samples (dim \(x.rowSize)) \(data.origin(dataModel, seed: compute.seed)) under "
                  + "\(model.model), \(sdeChoice.kind.rawValue), eps \(eps), \(estimatorLabel), \(exactPrior ? "exact p_T" : "prior p_T"), \(ode.label): "
                  + "NFE \(run.scoreEvaluations), \(String(format: "%.2f", seconds)) s; \(wrote)")
            print("mean log-likelihood \(formatted(ll.mean)) nats\(spread) = \(formatted(bpd.mean)) bits/dim")
            let guess = levelsMode ? "; \(tail.countAboveThreshold) of \(tail.count) worse than a uniform guess over the \(levelCount) levels (\(formatted(tail.threshold, 3)) bits/dim)" : ""
            print("bits/dim: mean \(formatted(tail.mean, 4)), median \(formatted(tail.median, 4)), max \(formatted(tail.max, 4))\(guess)")
            if levelsMode {
                print("bits per \(levelCount)-level value, uniform dequantization k + u (u ~ U[0, 1)) averaged over \(draws) draw\(draws == 1 ? "" : "s") per sample: upper bounds on the discrete data's bits/dim")
            }
            print("bits/dim convention: \(conventionText)")
            if tail.tailDominated {
                fputs("warning: the worst \(tail.tailCount) of \(tail.count) samples raise the mean bits/dim by \(formatted(tail.tailShift, 3)) (more than twice the standard error of the rest, \(formatted(tail.restStandardError, 3))): a few points dominate the mean; read the median (\(formatted(tail.median, 4))) and the maximum with it\n", stderr)
            }
        }
    }
}

extension DataModel {
    /// The exact `log p_t` of the data diffused by `sde` to time `t`.
    func exactLogDensity(at t: Double, diffusedBy sde: any ForwardSDE) -> @Sendable (Tensor) throws -> [Double] {
        switch source {
        case .mixture(let m):
            let score = GaussianMixtureScore(m, diffusedBy: sde)
            return { z in try score.logDensity(z, at: t) }
        case .learned:
            return { _ in throw ScoreSDEError.invalidArgument("a learned model has no exact p_T") }
        }
    }
}

/// What the command reports of a likelihood run.
private struct LikelihoodOutcome {
    let logLikelihood: [Double], bitsPerDim: [Double]
    /// Per-row `log p_T` and `Δlog p` (NaN when averaged over dequantizations), and the data
    /// scaling's log-Jacobian (the library's, averaged over dequantizations).
    let priorLogDensity: [Double], deltaLogP: [Double], logJacobian: [Double]
    let scoreEvaluations: Int
    let statistics: ODERunStatistics

    init(_ r: LikelihoodResult) {
        logLikelihood = r.logLikelihood; bitsPerDim = r.bitsPerDim; priorLogDensity = r.priorLogDensity
        deltaLogP = r.deltaLogP; logJacobian = r.logJacobian; scoreEvaluations = r.scoreEvaluations; statistics = r.statistics
    }

    /// Chunks' results joined (counters summed; `evaluationsPerSystem` is not kept per chunk).
    init(chunks r: ChunkedEvaluation.Result) {
        logLikelihood = r.columns["log_likelihood"] ?? []; bitsPerDim = r.columns["bits_per_dim"] ?? []
        priorLogDensity = r.columns["terminal"] ?? []; deltaLogP = r.columns["delta_log_p"] ?? []
        logJacobian = r.columns["log_jacobian"] ?? []
        scoreEvaluations = r.counters["nfe"] ?? 0
        var s = ODERunStatistics(scoreEvaluations: scoreEvaluations)
        s.modelPasses = r.counters["model_passes"] ?? 0
        s.integrator.rightHandSideEvaluations = r.counters["rhs"] ?? 0
        s.integrator.jacobianEvaluations = r.counters["jacobians"] ?? 0
        s.integrator.acceptedSteps = r.counters["accepted"] ?? 0
        s.integrator.rejectedSteps = r.counters["rejected"] ?? 0
        statistics = s
    }

    init(_ r: DequantizedLikelihoodResult) {
        logLikelihood = r.logLikelihood; bitsPerDim = r.bitsPerDim
        priorLogDensity = r.logLikelihood.map { _ in .nan }; deltaLogP = priorLogDensity; logJacobian = r.logJacobian
        scoreEvaluations = r.scoreEvaluations; statistics = r.statistics
    }
}

/// The dequantized likelihood of integer levels on concrete types (data space, averaged over the draws).
private func evaluateDequantizedLikelihood<S: ForwardSDE, M: ScoreModel>(
    _ x: Tensor, topLevel: Int, scaling: DataScaling, draws: Int, sde: S, score: M, estimator: DivergenceEstimator, eps: Double,
    solver: ODESolverOptions, layout: ODESystemLayout, batchSize: Int?, using rng: inout RandomSource
) throws -> LikelihoodOutcome {
    let likelihood = Likelihood(sde: sde, score: score, estimator: estimator, eps: eps, solver: solver, layout: layout,
                                convention: .continuous, batchSize: batchSize)
    return LikelihoodOutcome(try likelihood.evaluateDequantized(levels: x, topLevel: topLevel, scaling: scaling, draws: draws, using: &rng))
}

/// The likelihood on concrete types (callers pass existentials, which Swift opens).
private func evaluateLikelihood<S: ForwardSDE, M: ScoreModel>(
    _ x: Tensor, sde: S, score: M, estimator: DivergenceEstimator, eps: Double, solver: ODESolverOptions,
    layout: ODESystemLayout, convention: BitsPerDimConvention, batchSize: Int?,
    terminalLogDensity: (@Sendable (Tensor) throws -> [Double])?, using rng: inout RandomSource
) throws -> LikelihoodResult {
    let likelihood = Likelihood(sde: sde, score: score, estimator: estimator, eps: eps, solver: solver, layout: layout,
                                convention: convention, batchSize: batchSize, terminalLogDensity: terminalLogDensity)
    return try likelihood.evaluate(x, using: &rng)
}

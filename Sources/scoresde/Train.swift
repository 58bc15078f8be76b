import ArgumentParser
import Foundation
import ScoreSDE

/// Data scalings by name (`DataNormalization`, or `DataScaling.logit` for dequantized levels).
enum ScalingName: String, CaseIterable, ExpressibleByArgument {
    case unit, symmetric, logit, none

    /// The affine normalization; nil for `logit`.
    var normalization: DataNormalization? {
        switch self {
        case .unit: return .unit
        case .symmetric: return .symmetric
        case .logit: return nil
        case .none: return DataNormalization.none
        }
    }
}

/// Element types of exported weights.
enum DTypeName: String, CaseIterable, ExpressibleByArgument {
    case f32, f64

    var dtype: Safetensors.DType { self == .f32 ? .f32 : .f64 }
}

extension ScoreSDECommand {
    /// `scoresde train`: denoising score matching of an MLP or U-Net score network on a data set.
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a score network on a data set by denoising score matching.",
            discussion: """
                Trains an MLP score network (Fourier time embedding, residual SiLU blocks), or with \
                --model unet a convolutional U-Net (the DDPM design, float32 on oneDNN, diffusers' \
                UNet2DModel layout; images [C, S, S] only), with the continuous-time DSM loss, Adam, learning-rate warm-up, gradient clipping and an EMA of \
                the weights, as the reference's run_lib.train. The --output file is the checkpoint: \
                weights, EMA weights, Adam state and every setting (F64 for the MLP, F32 for the \
                U-Net: the network's own precision, so a resume is exact), with a CRC-32 checksum. \
                It is written atomically every --checkpoint-interval seconds (default 60), every \
                --checkpoint-every steps if given, and at the end; the checkpoint it replaces is kept \
                as NAME.prev.safetensors. Ctrl-C (SIGINT) or SIGTERM finishes the current step, \
                writes the checkpoint, prints the command that resumes, and exits with status 130 \
                (SIGINT) or 143 (SIGTERM); a hard kill loses at most one interval. A damaged \
                checkpoint is detected by its checksum and never loaded. Sample from the checkpoint \
                with `scoresde sample --model FILE.safetensors` (its EMA weights, its SDE, its data \
                scaling).

                --steps is the total length of the run. --resume continues the --output checkpoint \
                up to --steps with the checkpoint's settings and gives exactly the weights and losses \
                of an uninterrupted run (same machine and thread count); options that disagree with \
                the checkpoint are an error, options left out take the checkpoint's values. \
                `train --resume` with the steps the checkpoint already has trains nothing (useful with \
                --export-weights).

                Defaults suit small data sets and short runs on a few cores: VP SDE, hidden width 256, \
                2 residual blocks, batch 128, lr 1e-3 (the reference's 2e-4 is for U-Nets trained for \
                days), warm-up 100 steps (the reference's 5000 would take most of a short run), \
                gradient clip 1, EMA 0.999. Data are scaled with the data set's own scaling (digits, \
                patches and fashion-mnist: unit, [0, 1]; toys and .npy files: none), which the model records; with the \
                VP SDE, images train visibly better with --scaling symmetric ([-1, 1], the reference's \
                centered data), which the shipped digits and patches models use.

                --model unet defaults (about an hour on 2 cores for Fashion-MNIST): channels \
                32,64,64 (28 → 14 → 7), one residual block per level, attention at 7x7 and in the \
                middle block, 8 GroupNorm groups, epsilon-prediction, 7000 steps of batch 128, \
                lr 5e-4, warm-up 500, EMA 0.999, symmetric scaling. With --labels (own: \
                fashion-mnist's 10 classes) it is class-conditional, with a null label for \
                classifier-free guidance.

                A progress bar (step, running-mean loss, examples/s, ETA) is drawn on standard error \
                when it is a terminal; the summary goes to standard output.

                The batch gradient is summed over --gradient-block blocks of rows in a fixed order, \
                so `mpirun -np K scoresde-mpi train ...` (K up to the number of blocks) shares each \
                step across K ranks and gives bitwise the weights of one process; rank 0 writes the \
                checkpoint, and --resume works with any number of ranks.
                """
        )

        // MARK: Data

        @OptionGroup(title: "Progress") var progressOptions: ProgressOptions

        @Option(name: .customLong("model"), help: ArgumentHelp("The score network: mlp (default) or unet (convolutional, float32; images only).", valueName: "mlp|unet"))
        var network: NetworkKindName?

        @Option(help: ArgumentHelp(
            "The training data: a built-in data set (\(Dataset.builtInNames.joined(separator: ", "))) or a .npy file (rows first, finite values).",
            discussion: "ring, moons, swissroll, checkerboard: 10000 2-D points (seed 0); digits: the 1500 8x8 training digits (values 0...16); patches: the 6360 8x8 RGB patches of the left three quarters of the packaged photographs (values 0...255; the right quarter is held out for colorize); fashion-mnist: the 60000 28x28 grey Fashion-MNIST training images with labels (values 0...255; Debian package dataset-fashion-mnist, installed by scripts/setup.sh). The test splits (digits-test, fashion-mnist-test) are for evaluation and refused here.",
            valueName: "name|PATH.npy"))
        var data: String

        @Option(parsing: .unconditional, help: ArgumentHelp("Built-in data sets: use this many rows (toys: points; digits: a subset of the 1500; patches: random patches; fashion-mnist: a subset of the 60000, chosen with seed 0). Default: all.", valueName: "n"))
        var count: Int?

        @Option(help: ArgumentHelp("Scaling of the data into model space: unit ([0, 1]), symmetric ([-1, 1]), logit (dequantized levels through logit(λ + (1 − 2λ) v / L), scaled onto [-1, 1]; needs --dequantize; the shipped digits model's) or none (default: the data set's: unit for digits, patches and fashion-mnist, none for the toys and .npy files).", valueName: "unit|symmetric|logit|none"))
        var scaling: ScalingName?

        @Option(help: ArgumentHelp("λ of --scaling logit, in (0, 0.5): it keeps the logits of the ends of the range finite (RealNVP: 0.05; smaller puts less of the model's mass outside the data's range).", valueName: "λ"))
        var logitLambda: Double = 1e-3

        // MARK: SDE

        @Option(help: "The forward SDE: ve, vp (default) or subvp.")
        var sde: SDEName?

        @Option(parsing: .unconditional, help: ArgumentHelp("VE: sigma_min (default: 0.01).", valueName: "sigma"))
        var sigmaMin: Double?

        @Option(parsing: .unconditional, help: ArgumentHelp("VE: sigma_max (default: the largest distance between two training points in model space, Song & Ermon 2020's technique 1, over at most 2000 evenly spaced rows).", valueName: "sigma"))
        var sigmaMax: Double?

        @Option(parsing: .unconditional, help: ArgumentHelp("VP/sub-VP: beta(0) (default: 0.1).", valueName: "beta"))
        var betaMin: Double?

        @Option(parsing: .unconditional, help: ArgumentHelp("VP/sub-VP: beta(1) (default: 20).", valueName: "beta"))
        var betaMax: Double?

        // `schedule` would be shadowed by run()'s checkpoint schedule.
        @Option(name: .customLong("schedule"), help: ArgumentHelp(
            "VP: the noise schedule, linear (default) or cosine.",
            discussion: "cosine: improved DDPM's cosine schedule (Nichol & Dhariwal 2021, s = 0.008) in continuous time, ending at T = 0.9946 (DPM-Solver's choice); it has no --beta-min/--beta-max. The model file records it: sample, likelihood and encode use it with no option."))
        var noiseSchedule: ScheduleName?

        // MARK: Optimisation

        static let defaultSteps = 2000, defaultBatchSize = 128, defaultLearningRate = 1e-3, defaultWarmup = 100
        static let defaultGradClip = 1.0, defaultEMA = 0.999, defaultGradientBlock = 64
        static let defaultHidden = 256, defaultBlocks = 2, defaultFourierFeatures = 64, defaultFourierScale = 16.0
        static let defaultUNetSteps = 7000, defaultUNetLearningRate = 5e-4, defaultUNetWarmup = 500

        @Option(parsing: .unconditional, help: ArgumentHelp("Total training steps of the run, >= 1 (with --resume: including the checkpoint's; default: \(defaultSteps), --model unet: \(defaultUNetSteps)).", valueName: "n"))
        var steps: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("Examples per step (default: \(defaultBatchSize)).", valueName: "n"))
        var batchSize: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("Rows per gradient block: the batch gradient is summed over blocks of this many rows in a fixed order, which makes it the same bits on any number of MPI ranks up to the block count (default: \(defaultGradientBlock): 2 blocks of the default batch; smaller blocks allow more ranks but slow one process down, e.g. 16 rows by about a third).", valueName: "n"))
        var gradientBlock: Int?

        @Option(name: .customLong("lr"), parsing: .unconditional, help: ArgumentHelp("Adam learning rate, > 0 (default: 1e-3; --model unet: 5e-4).", valueName: "rate"))
        var learningRate: Double?

        @Option(parsing: .unconditional, help: ArgumentHelp("Linear learning-rate warm-up steps (default: \(defaultWarmup), --model unet: \(defaultUNetWarmup); the reference: 5000).", valueName: "n"))
        var warmup: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("Gradient-norm clipping threshold; negative: off (default: 1).", valueName: "norm"))
        var gradClip: Double?

        @Option(name: .customLong("ema"), parsing: .unconditional, help: ArgumentHelp("EMA decay of the weights sampled with, in [0, 1) (default: 0.999).", valueName: "rate"))
        var emaRate: Double?

        @Option(parsing: .unconditional, help: "Seed of the initial weights and of every step's minibatch, times and noise (default: 0).")
        var seed: UInt64?

        @Flag(inversion: .prefixedNo, help: "Average the loss over a sample's values instead of half their sum (default: no, as the reference).")
        var reduceMean: Bool?

        @Flag(inversion: .prefixedNo, help: "Weight the loss by g(t)^2 (likelihood weighting) instead of std(t)^2 (default: no).")
        var likelihoodWeighting: Bool?

        @OptionGroup(title: "Likelihood-grade training and class labels") var objective: ObjectiveOptions

        // MARK: Network

        @Option(parsing: .unconditional, help: ArgumentHelp("Hidden width, at least the data dimension (default: \(defaultHidden)).", valueName: "n"))
        var hidden: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("Residual blocks (default: \(defaultBlocks)).", valueName: "n"))
        var blocks: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("Random Fourier features of the time embedding (default: \(defaultFourierFeatures)).", valueName: "n"))
        var fourierFeatures: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("Standard deviation of the Fourier frequencies (default: 16, NCSN++'s).", valueName: "scale"))
        var fourierScale: Double?

        @Flag(help: "Add the exact score of a Gaussian fitted to the data to the network's output (a linear skip; the network learns the rest).")
        var gaussianBase = false

        @Option(help: ArgumentHelp("MLP: the precision the network computes in, f64 (default) or f32 (float32 network against float64 weights and Adam state; recorded in the model, so sampling from it computes in float32 too).", valueName: "f32|f64"))
        var precision: DTypeName?

        @OptionGroup(title: "U-Net (--model unet)") var unet: UNetOptions

        // MARK: Files

        @Option(help: ArgumentHelp("The checkpoint to write (weights, EMA, Adam state; F64, or F32 for the U-Net), atomically.", valueName: "path.safetensors"))
        var output: String

        @Flag(help: "Continue the --output checkpoint (same data; options given must agree with it).")
        var resume = false

        @Flag(help: "Start a new run even though --output exists (it is replaced at the first checkpoint).")
        var overwrite = false

        @Option(parsing: .unconditional, help: ArgumentHelp("Also write the checkpoint every n steps (at multiples of n).", valueName: "n"))
        var checkpointEvery: Int?

        @Option(parsing: .unconditional, help: ArgumentHelp("Write the checkpoint whenever this many seconds have passed since the last one (default: \(Int(CheckpointSchedule.defaultInterval)); 0: only at the end and at --checkpoint-every).", valueName: "seconds"))
        var checkpointInterval: Double = CheckpointSchedule.defaultInterval

        @Option(help: ArgumentHelp("Write the run's statistics (steps, loss, examples/s, ranks, threads, batch and block size) as JSON at the end.", valueName: "path.json"))
        var stats: String?

        @Option(help: ArgumentHelp("At the end, also write the EMA weights alone (no optimiser state): a small file for `--model`.", valueName: "path.safetensors"))
        var exportWeights: String?

        @Option(help: ArgumentHelp("Element type of --export-weights: f32 (default, half the size) or f64 (MLP only: the U-Net's weights are float32).", valueName: "f32|f64"))
        var dtype: DTypeName?

        func validate() throws {
            if let steps, steps < 1 { throw ValidationError("--steps must be >= 1 (got \(steps))") }
            if let count, count < 1 { throw ValidationError("--count must be >= 1 (got \(count))") }
            if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be >= 1 (got \(b))") }
            if let b = gradientBlock, b < 1 { throw ValidationError("--gradient-block must be >= 1 row (got \(b))") }
            if let lr = learningRate, !(lr > 0 && lr.isFinite) {
                throw ValidationError("--lr must be finite and > 0 (got \(lr)); try 1e-3 for small networks, the reference uses 2e-4")
            }
            if let w = warmup, w < 0 { throw ValidationError("--warmup must be >= 0 (got \(w))") }
            if let c = gradClip, !c.isFinite { throw ValidationError("--grad-clip must be finite (got \(c)); a negative value turns clipping off") }
            if let e = emaRate, !(e >= 0 && e < 1) { throw ValidationError("--ema must be in [0, 1) (got \(e)); e.g. 0.999") }
            if let h = hidden, h < 1 { throw ValidationError("--hidden must be >= 1 (got \(h))") }
            if let b = blocks, b < 0 { throw ValidationError("--blocks must be >= 0 (got \(b))") }
            if let f = fourierFeatures, f < 1 { throw ValidationError("--fourier-features must be >= 1 (got \(f))") }
            if let s = fourierScale, !(s > 0 && s.isFinite) { throw ValidationError("--fourier-scale must be finite and > 0 (got \(s))") }
            if let n = checkpointEvery, n < 1 { throw ValidationError("--checkpoint-every must be >= 1 (got \(n))") }
            if !(checkpointInterval.isFinite && checkpointInterval >= 0) {
                throw ValidationError("--checkpoint-interval must be finite and >= 0 seconds (got \(checkpointInterval)); 0 turns timed checkpoints off")
            }
            if resume && overwrite {
                throw ValidationError("--resume continues the --output checkpoint and --overwrite replaces it; give one of them")
            }
            if dtype != nil && exportWeights == nil {
                throw ValidationError("--dtype sets the element type of --export-weights; add --export-weights PATH (the checkpoint keeps the network's precision)")
            }
            if network == .unet {
                let mlpOnly = [("--hidden", hidden != nil), ("--blocks", blocks != nil), ("--fourier-features", fourierFeatures != nil),
                               ("--fourier-scale", fourierScale != nil), ("--gaussian-base", gaussianBase),
                               ("--noise-floor", objective.noiseFloor != nil), ("--precision", precision != nil)].filter(\.1).map(\.0)
                if !mlpOnly.isEmpty {
                    throw ValidationError("\(mlpOnly.joined(separator: ", ")) \(mlpOnly.count == 1 ? "is an option" : "are options") of the MLP; --model unet is shaped by --channels, --layers-per-block, --attention-levels, --mid-attention, --norm-groups and --dropout")
                }
                if let p = objective.parameterization, p != .noise, p != .scaledBySigma {
                    throw ValidationError("--parameterization \(p.rawValue) is an MLP output; the U-Net predicts the noise (noise, default) or the scaled score (scaled-by-sigma)")
                }
                if dtype == .f64 { throw ValidationError("--dtype f64: the U-Net's weights are float32; leave --dtype out") }
            } else if (network == .mlp || !resume) && !unet.given.isEmpty {
                throw ValidationError("\(unet.given.joined(separator: ", ")) shape\(unet.given.count == 1 ? "s" : "") the U-Net; add --model unet")
            }
        }

        /// The run's total steps: --steps or the network's default.
        func totalSteps(_ kind: NetworkKindName) -> Int { steps ?? (kind == .unet ? Self.defaultUNetSteps : Self.defaultSteps) }

        /// The network of this run: --model, or on --resume the checkpoint's (which --model must match).
        func networkKind() throws -> NetworkKindName {
            guard resume, let file = try? Safetensors.read(output) else { return network ?? .mlp }
            let stored: NetworkKindName = file.metadata["model"] == "unet" ? .unet : .mlp
            if let network, network != stored {
                throw ScoreSDEError.invalidArgument("cannot resume \(output) with --model \(network.rawValue): it is a checkpoint of \(stored == .unet ? "a U-Net" : "an MLP"); drop --model or give --model \(stored.rawValue)")
            }
            if stored == .mlp, !unet.given.isEmpty {
                throw ScoreSDEError.invalidArgument("\(unet.given.joined(separator: ", ")) shape the U-Net, but \(output) is an MLP checkpoint")
            }
            return stored
        }

        func run() throws {
            // Everything that can be wrong with the input fails here, before any work.
            let kind = try networkKind()
            let dataset = try loadData()
            var outputs = RunOutputs()
            outputs.add(output, for: "--output")
            outputs.add(exportWeights, for: "--export-weights")
            outputs.add(stats, for: "--stats")
            try outputs.check()
            switch kind {
            case .mlp: try run(resume ? resumedTrainer(dataset) : newTrainer(dataset), dataset: dataset)
            case .unet: try run(resume ? resumedUNetTrainer(dataset) : newUNetTrainer(dataset), dataset: dataset)
            }
        }

        /// Trains `trainer` to --steps with checkpoints and signals, then exports, reports and writes the stats.
        func run<R: CommandLineTrainingRecipe>(_ trainer: ScoreTrainer<R>, dataset: Dataset) throws {
            let steps = totalSteps(R.kind)
            let config = trainer.configuration.options
            let startStep = trainer.completedSteps
            let ranks = Population.size, isRankZero = Population.rank == 0
            // MPI: every rank needs at least one gradient block (the same on every rank: rank 0 reports it).
            do { try config.gradientBlocks.checkShared(by: ranks) } catch {
                throw ScoreSDEError.population(PopulationFailure(rank: Population.rank, size: ranks, collective: true, message: "\(error)"))
            }
            if startStep > steps {
                throw ScoreSDEError.invalidArgument("the checkpoint \(output) has already trained \(startStep) steps, more than --steps \(steps) (the total length of the run); give --steps \(startStep) or more")
            }
            if startStep == 0 && isRankZero, let warning = trainer.configuration.warning { fputs("warning: \(warning)\n", stderr) }

            // The work: checkpoints by time, by steps and at the end; SIGINT/SIGTERM stop after the current step.
            let schedule = try CheckpointSchedule(path: output, interval: checkpointInterval > 0 ? checkpointInterval : nil,
                                                  everySteps: checkpointEvery)
            let losses = LossWindow(size: 100)
            let progress = isRankZero ? ProgressBar(total: steps, start: startStep) : nil
            let batchSize = config.batchSize
            let clock = ContinuousClock(), start = clock.now
            let stop = StopRequest()
            let outcome: TrainingOutcome
            do {
                defer { progress?.finish(); stop.restore() }
                outcome = try trainer.train(until: steps, checkpoints: schedule, shouldStop: { stop.requested }) { p in
                    losses.add(p.loss)
                    progress?.update(step: p.step) { elapsed in
                        let rate = elapsed > 0 ? Double((p.step - startStep) * batchSize) / elapsed : 0
                        return "loss \(String(format: "%.4g", losses.mean))  \(String(format: "%.0f", rate)) \(R.kind == .unet ? "img" : "ex")/s"
                    }
                }
            }
            if outcome.stopped {
                // Shared runs stop together when any rank got a signal; rank 0 reports.
                let signal = stop.signal ?? SIGTERM
                if isRankZero { fputs("\(StopRequest.name(signal)): stopped after step \(outcome.checkpointStep) of \(steps); "
                      + "the checkpoint (step \(outcome.checkpointStep)) is in \(output)\n"
                      + "resume with: \(resumeCommand(R.kind))\(ranks > 1 ? " (under mpirun or srun, with any number of ranks)" : "")\n", stderr) }
                throw ExitCode(128 + signal)
            }
            let elapsed = start.duration(to: clock.now).components
            let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18

            // The export (the checkpoint is already written, so a failed export never costs the run).
            if let exportWeights, isRankZero {
                let data = try R.weightsData(trainer.emaModel, dtype: (dtype ?? .f32).dtype)
                do { try AtomicFile.write(data, to: exportWeights) } catch {
                    throw ScoreSDEError.io(path: exportWeights, message: "the checkpoint was written to \(output), but the exported weights could not be: \(error)")
                }
            }

            // The summary.
            let trained = steps - startStep
            let examplesPerSecond = seconds > 0 ? Double(trained * config.batchSize) / seconds : 0
            let shape = dataset.rowShape.map(String.init).joined(separator: "x")
            let from = startStep > 0 ? " (resumed at step \(startStep); \(steps) in all)" : ""
            let blocks = config.gradientBlocks
            let sharing = "\(blocks.count) gradient block\(blocks.count == 1 ? "" : "s") of \(blocks.blockSize) rows, each step shared by \(ranks) rank\(ranks == 1 ? " (one process)" : "s (MPI)")"
            print("trained \(trained) steps\(from) on \(dataset.name) (\(dataset.count) rows of shape \(shape), scaling \(scalingLabel(config.dataScaling))) "
                  + "with \(config.sde), \(trainer.configuration.networkSummary), "
                  + "\(trainer.parameters.count) parameters, batch \(config.batchSize) (\(sharing)), lr \(config.learningRate)")
            if trained > 0 {
                print("final loss \(formatted(losses.mean)) (mean of the last \(losses.count) steps), "
                      + "\(String(format: "%.0f", examplesPerSecond)) examples/s, \(String(format: "%.2f", seconds)) s")
            } else {
                print("nothing to train: the checkpoint already has \(startStep) steps")
            }
            if let stats, isRankZero {
                var report = RunStats()
                report["command"] = "train"
                report["data"] = .string(dataset.name)
                report["rows"] = .int(dataset.count)
                report["steps"] = .int(steps)
                report["steps_trained"] = .int(trained)
                report["start_step"] = .int(startStep)
                report["final_loss"] = trained > 0 ? .double(losses.mean) : .null
                report["examples_per_second"] = .double(examplesPerSecond)
                report["wall_seconds"] = .double(seconds)
                report["parameters"] = .int(trainer.parameters.count)
                if R.kind == .unet { report["network"] = "unet" }
                report["batch_size"] = .int(config.batchSize)
                report["gradient_block"] = .int(blocks.blockSize)
                report["gradient_blocks"] = .int(blocks.count)
                report["seed"] = seedValue(config.seed)
                report["threads"] = .int(Parallel.threadCount)
                report["blas"] = .string(BLASBackend.current.library.rawValue + " " + BLASBackend.current.kernel)
                report["ranks"] = .int(ranks)   // MPI ranks sharing each step (1: one process)
                report.merge(SDEChoice(config.sde).stats)   // sde and its parameters (schedule for VP)
                try AtomicFile.write(report.jsonData(), to: stats)
            }
            let exported = exportWeights.map { ", EMA weights (\((dtype ?? .f32).rawValue)) to \($0)" } ?? ""
            print("wrote the checkpoint (weights, EMA, Adam state at step \(steps)) to \(output)\(exported)")
        }

        // MARK: - Pieces

        /// The command line that continues this run from its checkpoint.
        func resumeCommand(_ kind: NetworkKindName) -> String {
            var words = ["scoresde", "train", "--data", data]
            if let count { words += ["--count", "\(count)"] }
            // The labels are part of the run's data (its fingerprint): a resume needs them again.
            if let labels = objective.labels { words += ["--labels", labels] }
            words += ["--steps", "\(totalSteps(kind))", "--output", output, "--resume"]
            if let checkpointEvery { words += ["--checkpoint-every", "\(checkpointEvery)"] }
            if checkpointInterval != CheckpointSchedule.defaultInterval { words += ["--checkpoint-interval", "\(formatted(checkpointInterval))"] }
            if let exportWeights { words += ["--export-weights", exportWeights] }
            if let dtype { words += ["--dtype", dtype.rawValue] }
            return words.map(shellQuoted).joined(separator: " ")
        }

        /// The data set named by `--data`, checked.
        func loadData() throws -> Dataset {
            if count != nil, data.hasSuffix(".npy") || data.hasPrefix("npy:") {
                throw ScoreSDEError.invalidArgument("--count selects rows of a built-in data set; a .npy file is used whole (save the rows you want)")
            }
            let set = try objective.labelled(Dataset.forTraining(data, count: count, seed: 0))
            try set.data.checkFinite("the training data \(data)")
            return set
        }

        /// The data scaling: `--scaling`, or the data set's own (the U-Net: symmetric for discrete data).
        func dataScaling(_ set: Dataset, network: NetworkKindName = .mlp) throws -> DataScaling {
            if scaling == .logit {
                guard let levels = set.levels, objective.dequantize else {
                    throw ScoreSDEError.invalidArgument("--scaling logit is for uniformly dequantized levels: add --dequantize (digits, patches, fashion-mnist)\(set.levels == nil ? "; \(set.name) is continuous data" : "")")
                }
                return try DataScaling.logit(lambda: logitLambda, levels: levels)
            }
            let normalization = scaling?.normalization ?? (network == .unet && set.levels != nil ? .symmetric : set.normalization)
            if normalization == .none { return .identity }
            guard let levels = set.levels else {
                throw ScoreSDEError.invalidArgument("--scaling \(normalization.rawValue) maps discrete levels (digits 0...16, patches 0...255) to [0, 1] or [-1, 1], but \(set.name) is continuous data; use --scaling none (scale .npy data yourself)")
            }
            // Dequantized data k + u span [0, levels): that range maps onto the target.
            return objective.dequantize ? try normalization.dequantizedScaling(levels: levels) : try normalization.dataScaling(levels: levels)
        }

        func scalingLabel(_ s: DataScaling) -> String {
            guard let t = s.logit else { return s == .identity ? "none" : "x * \(formatted(s.scale)) + \(formatted(s.shift))" }
            return "logit(\(formatted(t.lambda)) + \(formatted(1 - 2 * t.lambda)) x / \(t.levels)) * \(formatted(s.scale)) + \(formatted(s.shift))"
        }

        /// The SDE of a new run.
        func sdeSpec(_ x: Tensor) throws -> SDESpec {
            let kind = sde ?? .vp
            try SDEOptions.checkSchedule(noiseSchedule, kind: kind, kindGiven: sde != nil, sigmaMin: sigmaMin, sigmaMax: sigmaMax,
                                         betaMin: betaMin, betaMax: betaMax)
            if noiseSchedule == .cosine {
                let spec = SDESpec.defaultCosineVP
                _ = try spec.make()
                return spec
            }
            func reject(_ names: [(String, Double?)]) throws {
                let given = names.filter { $0.1 != nil }.map(\.0)
                if !given.isEmpty {
                    throw ScoreSDEError.invalidArgument("\(given.joined(separator: ", ")) \(given.count == 1 ? "is a parameter" : "are parameters") of \(kind == .ve ? "the VP and sub-VP SDEs" : "the VE SDE"), not of --sde \(kind.rawValue); remove \(given.count == 1 ? "it" : "them")")
                }
            }
            switch kind {
            case .ve:
                try reject([("--beta-min", betaMin), ("--beta-max", betaMax)])
                let spec = SDESpec.ve(sigmaMin: sigmaMin ?? SDEOptions.defaultSigmaMin, sigmaMax: try sigmaMax ?? VESDE.suggestedSigmaMax(for: x))
                _ = try spec.make()
                return spec
            case .vp, .subvp:
                try reject([("--sigma-min", sigmaMin), ("--sigma-max", sigmaMax)])
                let (lo, hi) = (betaMin ?? SDEOptions.defaultBetaMin, betaMax ?? SDEOptions.defaultBetaMax)
                let spec: SDESpec = kind == .vp ? .vp(betaMin: lo, betaMax: hi) : .subVP(betaMin: lo, betaMax: hi)
                _ = try spec.make()
                return spec
            }
        }

        /// Throws unless --output may be written by a new run.
        func checkNewOutput() throws {
            if FileManager.default.fileExists(atPath: output) && !overwrite {
                throw ScoreSDEError.io(path: output, message: "the file exists; add --resume to continue training it, --overwrite to start a new run in its place, or choose another --output")
            }
        }

        static func unetParameterization(_ p: ParameterizationName) -> UNetParameterization {
            p == .scaledBySigma ? .scaledScore : .noisePrediction
        }

        /// A fresh U-Net run.
        func newUNetTrainer(_ set: Dataset) throws -> UNetTrainer {
            try checkNewOutput()
            if objective.dequantize && set.levels == nil {
                throw ScoreSDEError.invalidArgument("--dequantize is for discrete data (digits, patches, fashion-mnist); \(set.name) is continuous")
            }
            let unetConfig = try unet.configuration(rowShape: set.rowShape, classCount: set.labels == nil ? 0 : set.classCount)
            let scale = try dataScaling(set, network: .unet)
            let options = DSMTrainingOptions(
                sde: try sdeSpec(scale.toModel(set.data)), dataScaling: scale, seed: seed ?? 0,
                batchSize: batchSize ?? Self.defaultBatchSize, learningRate: learningRate ?? Self.defaultUNetLearningRate,
                warmup: warmup ?? Self.defaultUNetWarmup, gradClip: gradClip ?? Self.defaultGradClip, emaRate: emaRate ?? Self.defaultEMA,
                reduceMean: reduceMean ?? false, likelihoodWeighting: likelihoodWeighting ?? false,
                eps: objective.trainEps ?? 1e-5, timeSampling: objective.timeSampling ?? .uniform,
                dequantizationLevels: objective.dequantize ? set.levels : nil,
                labelDropout: objective.labelDropout ?? ObjectiveOptions.defaultLabelDropout,
                gradientBlockSize: gradientBlock ?? Self.defaultGradientBlock)
            let config = UNetTrainingConfiguration(unet: unetConfig, parameterization: objective.parameterization.map(Self.unetParameterization) ?? .noisePrediction,
                                                   options: options)
            return try UNetTrainer(configuration: config, data: set.data, labels: set.labels)
        }

        /// A fresh run.
        func newTrainer(_ set: Dataset) throws -> Trainer {
            try checkNewOutput()
            let scale = try dataScaling(set)
            let arch = MLPArchitecture(rowShape: set.rowShape, hiddenWidth: hidden ?? Self.defaultHidden,
                                       residualBlocks: blocks ?? Self.defaultBlocks,
                                       fourierFeatures: fourierFeatures ?? Self.defaultFourierFeatures,
                                       fourierScale: fourierScale ?? Self.defaultFourierScale,
                                       classCount: set.labels == nil ? 0 : set.classCount, gaussianBase: gaussianBase)
            let config = TrainingConfiguration(
                sde: try sdeSpec(scale.toModel(set.data)), architecture: arch, parameterization: objective.parameterization?.value,
                dataScaling: scale, seed: seed ?? 0,
                batchSize: batchSize ?? Self.defaultBatchSize, learningRate: learningRate ?? Self.defaultLearningRate,
                warmup: warmup ?? Self.defaultWarmup, gradClip: gradClip ?? Self.defaultGradClip, emaRate: emaRate ?? Self.defaultEMA,
                reduceMean: reduceMean ?? false, likelihoodWeighting: likelihoodWeighting ?? false,
                eps: objective.trainEps ?? 1e-5, timeSampling: objective.timeSampling ?? .uniform,
                noiseFloor: try objective.floor(scale: scale), dequantizationLevels: objective.dequantize ? set.levels : nil,
                labelDropout: objective.labelDropout ?? ObjectiveOptions.defaultLabelDropout,
                gradientBlockSize: gradientBlock ?? Self.defaultGradientBlock, precision: precision == .f32 ? .float32 : .float64)
            if objective.dequantize && set.levels == nil {
                throw ScoreSDEError.invalidArgument("--dequantize is for discrete data (digits, patches); \(set.name) is continuous")
            }
            return try Trainer(configuration: config, data: set.data, labels: set.labels)
        }

        /// The MLP run in the `--output` checkpoint, after checking that the options given agree with it.
        func resumedTrainer(_ set: Dataset) throws -> Trainer {
            try resumed(set) { (c: TrainingConfiguration) in
                [conflict("--hidden", hidden, c.architecture.hiddenWidth),
                 conflict("--blocks", blocks, c.architecture.residualBlocks),
                 conflict("--fourier-features", fourierFeatures, c.architecture.fourierFeatures),
                 conflict("--fourier-scale", fourierScale, c.architecture.fourierScale),
                 conflict("--parameterization", objective.parameterization?.value.rawValue, c.parameterization?.rawValue ?? c.sde.defaultParameterization.rawValue),
                 conflict("--precision", precision?.rawValue, c.precision == .float32 ? DTypeName.f32.rawValue : DTypeName.f64.rawValue)]
            }
        }

        /// The U-Net run in the `--output` checkpoint, after checking that the options given agree with it.
        func resumedUNetTrainer(_ set: Dataset) throws -> UNetTrainer {
            try resumed(set) { (c: UNetTrainingConfiguration) in
                let u = c.unet
                return [conflict("--channels", try? unet.channelList(), u.blockOutChannels),
                        conflict("--layers-per-block", unet.layersPerBlock, u.layersPerBlock),
                        conflict("--attention-levels", try? unet.attentionList(), u.attentionLevels),
                        conflict("--mid-attention", unet.midAttention, u.midBlockAttention),
                        conflict("--norm-groups", unet.normGroups, u.normGroups),
                        conflict("--dropout", unet.dropout, u.dropout),
                        conflict("--parameterization", objective.parameterization.map(Self.unetParameterization)?.rawValue, c.parameterization.rawValue)]
            }
        }

        /// The run in the `--output` checkpoint, after checking that the options given agree with
        /// it: the shared settings here, the network's from `networkConflicts`.
        func resumed<R: CommandLineTrainingRecipe>(_ set: Dataset, networkConflicts: (R) -> [String?]) throws -> ScoreTrainer<R> {
            guard FileManager.default.fileExists(atPath: output) else {
                throw ScoreSDEError.io(path: output, message: "nothing to resume: the file does not exist; drop --resume to start a new run")
            }
            let trainer: ScoreTrainer<R>
            do {
                trainer = try ScoreTrainer<R>.resume(from: output, data: set.data, labels: set.labels)
            } catch ScoreSDEError.invalidArgument {
                // The data fingerprint differs (the library's message suggests an API option the CLI does not have).
                let rows = (try? Safetensors.read(output))?.metadata["data.rows"] ?? "?"
                let how = rows == "\(set.count)" ? "the same number of rows but other values" : "\(set.count) rows, the checkpoint's data had \(rows)"
                throw ScoreSDEError.invalidArgument("--data \(data) is not the data the checkpoint \(output) was trained on (\(how)); resume with the --data and --count of the original run, or start a new run")
            }
            let c = trainer.configuration.options
            var conflicts = [String]()
            func check<T: Equatable>(_ option: String, _ given: T?, _ stored: T) {
                if let text = conflict(option, given, stored) { conflicts.append(text) }
            }
            let storedKind: SDEName
            let storedSigma: (Double, Double)?, storedBeta: (Double, Double)?
            switch c.sde {
            case .ve(let a, let b): (storedKind, storedSigma, storedBeta) = (.ve, (a, b), nil)
            case .vp(let a, let b): (storedKind, storedSigma, storedBeta) = (.vp, nil, (a, b))
            case .subVP(let a, let b): (storedKind, storedSigma, storedBeta) = (.subvp, nil, (a, b))
            case .cosineVP: (storedKind, storedSigma, storedBeta) = (.vp, nil, nil)
            }
            let storedLabel = storedKind.rawValue + (c.sde.schedule == "cosine" ? " cosine" : "")
            check("--sde", sde?.rawValue, storedKind.rawValue)
            if let noiseSchedule {
                if let stored = c.sde.schedule { check("--schedule", noiseSchedule.rawValue, stored) } else {
                    conflicts.append("--schedule \(noiseSchedule.rawValue) (not an option of the checkpoint's \(storedKind.rawValue) SDE)")
                }
            }
            for (option, given, stored) in [("--sigma-min", sigmaMin, storedSigma?.0), ("--sigma-max", sigmaMax, storedSigma?.1),
                                            ("--beta-min", betaMin, storedBeta?.0), ("--beta-max", betaMax, storedBeta?.1)] {
                guard let given else { continue }
                if let stored { check(option, given, stored) } else { conflicts.append("\(option) \(given) (not a parameter of the checkpoint's \(storedLabel) SDE)") }
            }
            if scaling != nil {
                let given = try dataScaling(set, network: R.kind)
                if given != c.dataScaling {
                    conflicts.append("--scaling \(scaling!.rawValue) (the checkpoint's scaling is \(scalingLabel(c.dataScaling)))")
                }
            }
            conflicts += networkConflicts(trainer.configuration).compactMap { $0 }
            check("--batch-size", batchSize, c.batchSize)
            if let gradientBlock, gradientBlock != (c.gradientBlockSize ?? c.batchSize) {
                conflicts.append("--gradient-block \(gradientBlock) (the checkpoint's is \(c.gradientBlockSize.map(String.init) ?? "the whole batch, \(c.batchSize)"))")
            }
            check("--lr", learningRate, c.learningRate)
            check("--warmup", warmup, c.warmup)
            check("--grad-clip", gradClip, c.gradClip)
            check("--ema", emaRate, c.emaRate)
            check("--seed", seed, c.seed)
            check("--reduce-mean", reduceMean, c.reduceMean)
            check("--likelihood-weighting", likelihoodWeighting, c.likelihoodWeighting)
            check("--time-sampling", objective.timeSampling?.rawValue, c.timeSampling.rawValue)
            check("--train-eps", objective.trainEps, c.eps)
            check("--label-dropout", objective.labelDropout, c.labelDropout)
            if objective.dequantize && c.dequantizationLevels == nil { conflicts.append("--dequantize (the checkpoint was trained without it)") }
            guard conflicts.isEmpty else {
                throw ScoreSDEError.invalidArgument("cannot resume \(output) with other settings: \(conflicts.joined(separator: ", ")); drop \(conflicts.count == 1 ? "that option" : "those options") to continue with the checkpoint's settings, or start a new run (without --resume) to change them")
            }
            return trainer
        }
    }
}

/// What `train` needs to know of a network kind beyond the library's ``ScoreTrainingRecipe``.
protocol CommandLineTrainingRecipe: ScoreTrainingRecipe {
    static var kind: NetworkKindName { get }
    /// The network in a few words for the summary line.
    var networkSummary: String { get }
    /// A warning about the settings, printed when a run starts.
    var warning: String? { get }
    /// The bytes of an `--export-weights` file of `network`.
    static func weightsData(_ network: Network, dtype: Safetensors.DType) throws -> Data
}

extension TrainingConfiguration: CommandLineTrainingRecipe {
    static var kind: NetworkKindName { .mlp }
    var networkSummary: String { "hidden \(architecture.hiddenWidth) x \(architecture.residualBlocks) blocks" }
    var warning: String? {
        // A bottleneck narrower than the data cannot pass x through, which the score needs at large t.
        let d = architecture.dimension
        return architecture.hiddenWidth < d ? "--hidden \(architecture.hiddenWidth) is below the data dimension \(d); the network cannot carry the input through and will train poorly (use --hidden \(d) or more)" : nil
    }
    static func weightsData(_ network: MLPScore, dtype: Safetensors.DType) throws -> Data { try network.weightsData(dtype: dtype) }
}

extension UNetTrainingConfiguration: CommandLineTrainingRecipe {
    static var kind: NetworkKindName { .unet }
    var networkSummary: String {
        let attention = unet.attentionLevels.enumerated().filter(\.element).map { "\(unet.imageSize >> $0.offset)x\(unet.imageSize >> $0.offset)" }
            + (unet.midBlockAttention ? ["middle"] : [])
        return "U-Net channels \(unet.blockOutChannels.map(String.init).joined(separator: ",")), \(unet.layersPerBlock) block\(unet.layersPerBlock == 1 ? "" : "s") per level, "
            + "attention \(attention.isEmpty ? "none" : attention.joined(separator: " + ")), \(parameterization == .noisePrediction ? "noise" : "scaled-score") prediction"
            + (unet.classCount > 0 ? ", \(unet.classCount) classes + null label" : "")
    }
    var warning: String? { nil }
    static func weightsData(_ network: UNetScore, dtype: Safetensors.DType) throws -> Data { try network.weightsData() }
}

/// `option given (the checkpoint's is stored)` when an option was given and differs from the checkpoint's value.
func conflict<T: Equatable>(_ option: String, _ given: T?, _ stored: T) -> String? {
    guard let given, given != stored else { return nil }
    return "\(option) \(given) (the checkpoint's is \(stored))"
}

/// `word` as a POSIX shell word: unchanged when it is plain, else in single quotes.
func shellQuoted(_ word: String) -> String {
    let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
        CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_./=:,+@%".unicodeScalars.contains($0)
    }
    return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// The mean of the last `size` values.
final class LossWindow {
    private var values: [Double]
    private var next = 0
    private(set) var count = 0

    init(size: Int) { values = [Double](repeating: 0, count: size) }

    func add(_ v: Double) {
        if count < values.count { count += 1 }
        values[next] = v
        next = (next + 1) % values.count
    }

    var mean: Double {
        guard count > 0 else { return .nan }
        return values.prefix(count).reduce(0, +) / Double(count)
    }
}

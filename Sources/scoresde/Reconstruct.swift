import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

extension ScoreSDECommand {
    /// `scoresde reconstruct`: samples consistent with a linear measurement `y = A x (+ noise)`.
    struct Reconstruct: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sample the model conditioned on a linear measurement y = A x + noise.",
            discussion: """
                With no options: one exact sample of the ring is measured through the sum of its \
                coordinates, and 1000 samples are drawn given that sum; the PNG shows them next to \
                exact samples of the posterior, which is known in closed form for Gaussian mixtures \
                (the summary compares mode weights and means).

                --matrix A.npy holds A, shape [m, D] (m <= D independent rows; D = the model's \
                dimension; [D] is one row). Default: the sum of the coordinates for vector models, \
                2x2 block means of every channel for image models (super-resolution by 2). \
                --observation y.npy holds y, shape [m] or [n, m] (n inputs); or --data x.npy|x.png \
                gives inputs x whose measurement A x (+ --noise-std noise) is observed. Without \
                either, built-in inputs are measured (as in `inpaint`). --noise-std is the std of \
                the noise in y.

                The PNG of an image model shows rows of A+ y (the minimum-norm solution) | samples \
                | original (the input, when known); the stats name the columns drawn (figure_columns). --output writes all samples as one .npy of \
                shape [n*k, ...]: rows i*k ..< (i+1)*k belong to input i.
                """
        )

        @Option(help: ModelOptions.help(default: "ring"))
        var model: String = "ring"

        @Option(help: ArgumentHelp("The measurement matrix A: a .npy of shape [m, D] (default: see below).", valueName: "path"))
        var matrix: String?

        @Option(help: ArgumentHelp("The measurements y: a .npy of shape [m] or [n, m], in data units.", valueName: "path"))
        var observation: String?

        @Option(help: ArgumentHelp("Inputs to measure: a .npy of shape [n, ...] in data space, or a PNG (image models).", valueName: "path"))
        var data: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("Without --data or --observation: how many built-in inputs (default: 8 for images, 1 for vector models).", valueName: "n"))
        var count: Int?

        @OptionGroup var options: ConditionedCommandOptions

        static let defaultPNG = "reconstruction.png"

        func validate() throws {
            if let count, count < 1 { throw ValidationError("--count must be >= 1 (got \(count))") }
            if data != nil, observation != nil { throw ValidationError("--data and --observation both give the measurements; choose one") }
            if count != nil, data != nil || observation != nil { throw ValidationError("--count is for the built-in inputs; with --data or --observation the inputs are the rows of the file") }
        }

        func run() throws {
            // Everything that can be wrong with the input fails here, before any work.
            let model = try DataModel.load(self.model)
            let isImage = model.imageLayout != nil
            let job = try options.prepare(model, defaultPNG: figureName(Self.defaultPNG, model: model, defaultModel: "ring"), defaultSamplesPerInput: isImage ? 4 : 1000)
            let (conditioning, seed, k) = (options.conditioning, options.compute.seed, job.samplesPerInput)
            let d = model.rowShape.reduce(1, *)

            let (a, matrixLabel) = try self.matrix.map { (try readMatrix($0, dimension: d, model: model), $0) } ?? defaultMatrix(model)
            let plain = try LinearMeasurement(matrix: a, observation: [Double](repeating: 0, count: a.count))   // checks A
            let y: Tensor, truth: Tensor?, origin: String
            if let observation {
                y = try readObservation(observation, measurements: a.count)
                truth = nil; origin = observation
            } else {
                let inputs: Tensor
                if let data {
                    inputs = data.lowercased().hasSuffix(".png") ? try model.readImage(data, option: "--data") : try model.readRows(data, option: "--data")
                    origin = data
                } else {
                    guard let demo = try model.demoInputs(count: count ?? (isImage ? 8 : 1), seed: seed) else {
                        throw ScoreSDEError.invalidArgument("the model \(model.name) has no built-in inputs; give --observation or --data")
                    }
                    inputs = demo.inputs; origin = demo.description
                }
                truth = inputs
                y = DataModel.observed(try plain.apply(inputs.reshaped([inputs.rows, d])), noiseStd: conditioning.noiseStd, seed: seed)
            }
            let n = y.rows

            // Model space: x' = a x + b gives A x' = a (A x) + b (A 1).
            let scaling = model.scaling
            guard scaling.isAffine else {
                throw ScoreSDEError.invalidArgument("the model \(model.name) maps data to model space through a logit (\(scaling)), so a linear measurement of the data is not linear in model space: reconstruct needs a model with an affine scaling (--model gmm64, patches or fashion, or a model trained with --scaling unit|symmetric)")
            }
            let measurement = try LinearMeasurement.inModelSpace(matrix: a, observation: y, noiseStd: conditioning.noiseStd, scaling: scaling, repeats: k)
            let constraint = LinearMeasurementConstraint(measurement, convention: conditioning.constraintConvention)
            let problem = InverseProblem(constraint: constraint, measurement: { measurement })

            // The work.
            let outcome = try job.run(problem, inputs: n)
            let samples = outcome.samples, flat = try samples.reshaped([n * k, d])

            // The fit: the measurement residual, the input, the exact posterior.
            let fit = try ReconstructionFit(samples: flat, matrix: a, observation: y, truth: truth, perInput: k)
            var comparison: PosteriorComparison?
            if case .mixture(let prior) = model.source {
                do {
                    comparison = try PosteriorComparison(prior: prior, measurement: measurement, samples: flat, perInput: k, seed: seed,
                                                         basis: conditioning.noiseStd == 0 ? LinearMeasurement.nullSpaceBasis(of: a) : nil)
                } catch {
                    warn("no comparison with the exact posterior: \(error)")
                }
            }

            var report = job.report(outcome, inputs: n)
            report["measurements"] = .int(a.count)
            report["residual_rms"] = .double(fit.residualRMS)
            report["rmse_vs_input"] = fit.rmse.map { .double($0) } ?? .null
            if let comparison { report["exact_posterior"] = comparison.stats }
            report["matrix"] = .string(matrixLabel)
            report["data"] = .string(origin)
            report.merge(job.settings(outcome))

            if isImage {
                report["figure_columns"] = .array(conditionalTableHeaders(observed: "A+ y (minimum norm)", perInput: k, hasOriginal: truth != nil).map { .string($0) })
            }
            try job.files.write(samples: samples, report: report) {
                let title = job.title("reconstruct", outcome)
                if isImage {
                    let pinv = try LinearMeasurement(matrix: a, observation: y).minimumNormSolution()
                    return try conditionalTable(observed: Plot.ImageColumn("A+ y (minimum norm)", pinv), samples: samples, perInput: k,
                                                original: truth, model: model, title: title)
                }
                var marks = ConditionalMarks(truth: try truth.map { try $0.reshaped([$0.rows, d]).row(0) })
                if d == 2, a.count == 1, conditioning.noiseStd == 0 {
                    marks.line = (a[0][0], a[0][1], y.storage[0], "measured: A x = \(formatted(y.storage[0], 3))")
                }
                return conditionalScatter(samples: flat, perInput: k, comparison: comparison, model: model, marks: marks,
                                          method: conditioning.method, title: title)
            }

            print(job.summary(outcome, inputs: n, origin: origin, detail: ", \(a.count) measurement\(a.count == 1 ? "" : "s") (\(matrixLabel))"))
            print("measurement residual: RMS |A x - y| \(formatted(fit.residualRMS, 3))" + (conditioning.noiseStd > 0 ? " (noise std \(conditioning.noiseStd))" : "")
                  + (fit.rmse.map { ", RMSE \(formatted($0, 4)) vs the input" } ?? ""))
            if let comparison { print(comparison.summary) }
            print("wrote \(job.files.paths)")
        }
    }
}

/// The built-in measurement of `reconstruct`: 2x2 block means of every channel (images with even
/// sides), else the sum of the coordinates.
private func defaultMatrix(_ model: DataModel) throws -> ([[Double]], String) {
    let d = model.rowShape.reduce(1, *)
    guard let l = model.imageLayout else { return ([[Double](repeating: 1, count: d)], "sum of the coordinates") }
    guard l.height % 2 == 0, l.width % 2 == 0 else {
        throw ScoreSDEError.invalidArgument("the built-in measurement (2x2 block means) needs even image sides; the model's images are \(l.width)x\(l.height): give --matrix")
    }
    var rows = [[Double]]()
    for c in 0 ..< l.channels {
        for by in 0 ..< l.height / 2 {
            for bx in 0 ..< l.width / 2 {
                var row = [Double](repeating: 0, count: d)
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] { row[c * l.pixels + (2 * by + dy) * l.width + 2 * bx + dx] = 0.25 }
                rows.append(row)
            }
        }
    }
    return (rows, "2x2 block means")
}

/// `--matrix`: `[m, D]` (or `[D]`, one row) with `D` the model's dimension.
private func readMatrix(_ path: String, dimension d: Int, model: DataModel) throws -> [[Double]] {
    var t = try Npy.read(path)
    try t.checkFinite("--matrix \(path)")
    if t.shape.count == 1 { t = try t.reshaped([1, t.count]) }
    guard t.shape.count == 2 else {
        throw ScoreSDEError.shapeMismatch("--matrix \(path) has shape \(t.shape); A must be 2-D, [m, \(d)]")
    }
    guard t.shape[1] == d else {
        throw ScoreSDEError.shapeMismatch("--matrix \(path) has shape \(t.shape): \(t.shape[1]) columns, but the model \(model.name) takes samples of \(d) values (shape \(model.rowShape)); A must be [m, \(d)]")
    }
    return (0 ..< t.rows).map { t.row($0) }
}

/// `--observation`: `[m]` (one input) or `[n, m]`.
private func readObservation(_ path: String, measurements m: Int) throws -> Tensor {
    var t = try Npy.read(path)
    try t.checkFinite("--observation \(path)")
    if t.shape.count == 1 { t = try t.reshaped([1, t.count]) }
    guard t.shape.count == 2, t.shape[1] == m, t.rows >= 1 else {
        throw ScoreSDEError.shapeMismatch("--observation \(path) has shape \(t.shape) but A has \(m) row\(m == 1 ? "" : "s"): give [\(m)] (one input) or [n, \(m)]")
    }
    return t
}

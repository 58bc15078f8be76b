import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

extension ScoreSDECommand {
    /// `scoresde inpaint`: fills in the unknown values of each input by sampling the model
    /// conditioned on the known ones.
    struct Inpaint: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fill in the unknown values of each input, conditioning the sampler on the known ones.",
            discussion: """
                With no options: the first 8 held-out digits with their bottom half unknown, 4 samples \
                each from the shipped digits model (reverse diffusion + Langevin, 1000 steps), drawn \
                to inpainting.png as rows of observed (unknown values hatched) | samples | original (the \
                input, when known); the stats name the columns drawn (figure_columns).

                --data is a .npy of inputs in data space (shape [n, ...], rows of the model's shape) or, \
                for image models, a PNG of the model's size. --mask marks the known values: a .npy of 0 \
                (unknown) and 1 (known), shaped like one input, like all inputs, or (RGB models) like one \
                channel; a black (unknown) and white (known) PNG; or a named region to inpaint: \
                bottom-half, top-half, left-half, right-half, center, random (images) or second-half, \
                first-half, random (vectors). Values of --data under the unknown region are not used, \
                except as the reference the summary's RMSE is measured against.

                Without --data the inputs are built in: held-out digits (grey 8x8 models), the first \
                Fashion-MNIST test images (grey 28x28 models), random photograph patches (RGB 8x8 models), or --count exact samples of a mixture. For a \
                Gaussian-mixture model the exact posterior is known in closed form: the summary and the \
                stats compare the samples with it (mode weights and mean, next to exact posterior \
                samples of the same size), and the PNG shows both.

                --output writes all samples as one .npy of shape [n*k, ...] in data space: rows \
                i*k ..< (i+1)*k belong to input i (k = --samples-per-input).
                """
        )

        @Option(help: ModelOptions.help(default: "digits"))
        var model: String = "digits"

        @Option(help: ArgumentHelp("The inputs: a .npy of shape [n, ...] in data space, or a PNG (image models). Default: built-in inputs (see below).", valueName: "path"))
        var data: String?

        @Option(help: ArgumentHelp("The known values: a .npy of 0/1 or a black/white PNG (1, white: known), or the name of the region to inpaint (default: bottom-half for images, second-half for vectors).", valueName: "path|region"))
        var mask: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("Without --data: how many built-in inputs (default: 8 for images, 1 for vector models).", valueName: "n"))
        var count: Int?

        @OptionGroup var options: ConditionedCommandOptions

        static let defaultPNG = "inpainting.png"

        func validate() throws {
            if let count, count < 1 { throw ValidationError("--count must be >= 1 (got \(count))") }
            if data != nil, count != nil { throw ValidationError("--count is for the built-in inputs; with --data the inputs are the rows of the file") }
        }

        func run() throws {
            // Everything that can be wrong with the input fails here, before any work.
            let model = try DataModel.load(self.model)
            let isImage = model.imageLayout != nil
            let job = try options.prepare(model, defaultPNG: figureName(Self.defaultPNG, model: model, defaultModel: "digits"), defaultSamplesPerInput: isImage ? 4 : 1000)
            let (conditioning, seed, k) = (options.conditioning, options.compute.seed, job.samplesPerInput)

            let truth: Tensor, observed: Tensor, origin: String
            if let data {
                truth = data.lowercased().hasSuffix(".png") ? try model.readImage(data, option: "--data") : try model.readRows(data, option: "--data")
                observed = truth
                origin = data
            } else {
                guard let demo = try model.demoInputs(count: count ?? (isImage ? 8 : 1), seed: seed) else {
                    throw ScoreSDEError.invalidArgument("the model \(model.name) has no built-in inputs; give --data (a .npy of shape [n, \(model.rowShape.map(String.init).joined(separator: ", "))] in data space)")
                }
                truth = demo.inputs
                observed = DataModel.observed(truth, noiseStd: conditioning.noiseStd, seed: seed)
                origin = demo.description + (conditioning.noiseStd > 0 ? ", observed with noise std \(conditioning.noiseStd)" : "")
            }
            let n = truth.rows
            let maskSpec = mask ?? (isImage ? InpaintingRegion.bottomHalf.rawValue : InpaintingRegion.secondHalf.rawValue)
            let known = try readMask(maskSpec, model: model, inputs: n, seed: seed)

            let scaling = model.scaling
            if conditioning.noiseStd > 0, !scaling.isAffine {
                throw ScoreSDEError.invalidArgument("--noise-std \(conditioning.noiseStd) is in data units, but the model \(model.name) maps data to model space through a logit (\(scaling)), where that noise is not Gaussian: inpaint noise-free observations (drop --noise-std) or use a model with an affine scaling")
            }
            let constraint = try Inpainting(observation: scaling.toModel(observed).repeatingRows(k), mask: known.repeatingRows(known.rows == 1 ? 1 : k),
                                            noiseStd: conditioning.noiseStd * abs(scaling.scale), convention: conditioning.constraintConvention)
            let problem = InverseProblem(constraint: constraint, measurement: {
                do { return try constraint.measurement() } catch {
                    throw ScoreSDEError.invalidArgument("--method \(conditioning.method.rawValue) needs one mask shared by every input (\(error)); use --method replace or repaint for a mask per input")
                }
            })
            if conditioning.method.isGuidance { _ = try problem.measurement() }

            // The work.
            let outcome = try job.run(problem, inputs: n)
            let samples = outcome.samples

            // Against the truth: the known values kept, the unknown ones near the input's.
            let fit = try InpaintingFit(samples: samples, observed: observed, truth: truth, mask: known, perInput: k)
            var comparison: PosteriorComparison?
            if case .mixture(let prior) = model.source, known.rows == 1 {
                // After the work, a failure here must not lose the samples: report it and go on.
                do {
                    let measurement = try constraint.measurement()
                    comparison = try PosteriorComparison(prior: prior, measurement: measurement, samples: samples, perInput: k, seed: seed,
                                                         basis: conditioning.noiseStd == 0 ? LinearMeasurement.nullSpaceBasis(of: measurement.matrix) : nil)
                } catch {
                    warn("no comparison with the exact posterior: \(error)")
                }
            }

            var report = job.report(outcome, inputs: n)
            report["known_fraction"] = .double(known.storage.reduce(0, +) / Double(known.count))
            report["known_max_abs_error"] = .double(fit.knownMaxError)
            report["unknown_rmse_vs_input"] = .double(fit.unknownRMSE)
            report["unknown_rmse_of_sample_mean"] = .double(fit.meanRMSE)
            if let comparison { report["exact_posterior"] = comparison.stats }
            report["data"] = .string(origin)
            report["mask"] = .string(maskSpec)
            report.merge(job.settings(outcome))

            let observedHeader = conditioning.noiseStd > 0 ? "observed (noisy)" : "observed"
            if isImage {
                report["figure_columns"] = .array(conditionalTableHeaders(observed: observedHeader, perInput: k, hasOriginal: true).map { .string($0) })
            }
            try job.files.write(samples: samples, report: report) {
                let title = job.title("inpaint", outcome)
                if isImage {
                    var unknown = known
                    for i in 0 ..< unknown.count { unknown.storage[i] = 1 - known.storage[i] }
                    return try conditionalTable(observed: Plot.ImageColumn(observedHeader, observed, unknown: unknown),
                                                samples: samples, perInput: k, original: truth, model: model, title: title)
                }
                return conditionalScatter(samples: samples, perInput: k, comparison: comparison, model: model,
                                          marks: inpaintingMarks(known: known.row(0), observed: observed.row(0), truth: truth.row(0), exact: conditioning.noiseStd == 0),
                                          method: conditioning.method, title: title)
            }

            print(job.summary(outcome, inputs: n, origin: origin))
            let keptLine = conditioning.noiseStd == 0
                ? "known values kept to \(formatted(fit.knownMaxError, 3)) (max |sample - observation|)"
                : "known values: max |sample - observation| \(formatted(fit.knownMaxError, 3)) (noisy observation)"
            print(keptLine + ", unknown values: RMSE \(formatted(fit.unknownRMSE, 4)) vs the input" + (data == nil ? " (the truth)" : "")
                  + (k > 1 ? ", \(formatted(fit.meanRMSE, 4)) for the mean of the \(k) samples" : ""))
            if let comparison { print(comparison.summary) }
            print("wrote \(job.files.paths)")
        }
    }
}

/// Reads `--mask`: a named region, a .npy of 0/1 or a black/white PNG, as `[1 or n] + rowShape` (1 = known).
func readMask(_ spec: String, model: DataModel, inputs n: Int, seed: UInt64) throws -> Tensor {
    let d = model.rowShape.reduce(1, *), layout = model.imageLayout
    let mask: Tensor
    if let named = InpaintingRegion(rawValue: spec), !FileManager.default.fileExists(atPath: spec) {
        let allowed = InpaintingRegion.regions(for: model.rowShape)
        guard allowed.contains(named) else {
            throw ScoreSDEError.invalidArgument("--mask \(spec) is a region of \(layout != nil ? "a vector" : "an image"); the model \(model.name) takes \(layout != nil ? "images" : "vectors"): use one of \(allowed.map(\.rawValue).joined(separator: ", ")), or a file")
        }
        mask = try named.mask(rowShape: model.rowShape, seed: seed)
    } else if !FileManager.default.fileExists(atPath: spec) {
        let allowed = InpaintingRegion.regions(for: model.rowShape).map(\.rawValue)
        throw ScoreSDEError.invalidArgument("--mask \(spec): no such file, and not a named region; for the model \(model.name) use one of \(allowed.joined(separator: ", ")), a .npy of 0 (unknown) and 1 (known)\(layout != nil ? ", or a black (unknown) and white (known) PNG" : "")")
    } else if spec.lowercased().hasSuffix(".png") {
        mask = try readMaskPNG(spec, model: model)
    } else {
        mask = try readMaskNpy(spec, model: model, inputs: n)
    }
    for r in 0 ..< mask.rows {
        let row = mask.storage[r * d ..< (r + 1) * d]
        if !row.contains(1) {
            throw ScoreSDEError.invalidArgument("--mask \(spec)\(mask.rows > 1 ? ", row \(r)," : "") marks no value as known: there is nothing to condition on (use `scoresde sample` for unconditional samples)")
        }
        if !row.contains(0) {
            throw ScoreSDEError.invalidArgument("--mask \(spec)\(mask.rows > 1 ? ", row \(r)," : "") marks every value as known: there is nothing to inpaint")
        }
    }
    return mask
}

/// A black (unknown) and white (known) PNG of the model's size, every channel of a pixel alike.
private func readMaskPNG(_ path: String, model: DataModel) throws -> Tensor {
    guard let layout = model.imageLayout else {
        throw ScoreSDEError.invalidArgument("--mask \(path): the model \(model.name) takes vectors of shape \(model.rowShape), not images; give the mask as a .npy of 0/1 of that shape")
    }
    let image = try PNG.read(path)
    try checkSize(image, layout: layout, what: "--mask \(path)")
    guard isGrey(image) else {
        throw ScoreSDEError.invalidArgument("--mask \(path) has coloured pixels; a mask PNG is black (unknown) and white (known) only")
    }
    let grey = try image.converting(toChannels: 1)
    if let i = grey.pixels.firstIndex(where: { $0 != 0 && $0 != 255 }) {
        throw ScoreSDEError.invalidArgument("--mask \(path): pixel (x \(i % layout.width), y \(i / layout.width)) has grey level \(grey.pixels[i]); a mask PNG is black (0, unknown) and white (255, known) only")
    }
    var values = [Double]()
    for _ in 0 ..< layout.channels { values += grey.pixels.map { $0 == 255 ? 1 : 0 } }
    return try Tensor(shape: [1] + model.rowShape, storage: values)
}

/// A .npy of 0/1: one input's shape, all inputs' shape, or (RGB models) one channel's shape.
private func readMaskNpy(_ path: String, model: DataModel, inputs n: Int) throws -> Tensor {
    let t = try Npy.read(path)
    try t.checkFinite("--mask \(path)")
    if let i = t.storage.firstIndex(where: { $0 != 0 && $0 != 1 }) {
        throw ScoreSDEError.invalidArgument("--mask \(path): value \(i) (flat index) is \(t.storage[i]); a mask holds only 0 (unknown) and 1 (known)")
    }
    let d = model.rowShape.reduce(1, *)
    let plane = model.imageLayout.flatMap { $0.channels > 1 ? $0.pixels : nil }
    let shapeText = model.rowShape.map(String.init).joined(separator: ", ")
    var rows: Int
    if t.count == d || (plane != nil && t.count == plane!) { rows = 1 }
    else if t.shape.count >= 1, t.shape[0] == n, t.count == n * d || (plane != nil && t.count == n * plane!) { rows = n }
    else {
        let channel = plane.map { _ in ", [\(model.imageLayout!.height), \(model.imageLayout!.width)] (one channel, used for all)" } ?? ""
        throw ScoreSDEError.shapeMismatch("--mask \(path) has shape \(t.shape); the model \(model.name) takes samples of shape [\(shapeText)]: give [\(shapeText)] (one mask for every input)\(channel) or [\(n), \(shapeText)] (one per input)")
    }
    let per = t.count / rows
    guard per != d, let plane else { return try t.reshaped([rows] + model.rowShape) }
    var values = [Double]()
    values.reserveCapacity(rows * d)
    for r in 0 ..< rows {
        for _ in 0 ..< d / plane { values += t.storage[r * plane ..< (r + 1) * plane] }
    }
    return try Tensor(shape: [rows] + model.rowShape, storage: values)
}

/// What the scatter plot of an inpainted mixture sample marks: the first two unknown coordinates
/// (completed by known ones when fewer are unknown; a 2-D model keeps x1, x2), a line where a
/// plotted coordinate is known exactly, and the true input.
func inpaintingMarks(known: [Double], observed: [Double], truth: [Double], exact: Bool) -> ConditionalMarks {
    let d = known.count
    let unknown = (0 ..< d).filter { known[$0] == 0 }, knownIndices = (0 ..< d).filter { known[$0] != 0 }
    var coordinates = d == 2 ? [0, 1] : Array(unknown.prefix(2))
    if coordinates.count < 2 { coordinates += knownIndices.prefix(2 - coordinates.count) }
    if coordinates.count < 2 { coordinates.append(coordinates.first ?? 0) }
    var marks = ConditionalMarks(coordinates: (coordinates[0], coordinates[1]), truth: truth)
    if exact, d > 1 {
        let (i, j) = marks.coordinates
        if known[i] != 0 { marks.line = (1, 0, observed[i], "known: x\(i + 1) = \(formatted(observed[i], 3))") }
        else if known[j] != 0 { marks.line = (0, 1, observed[j], "known: x\(j + 1) = \(formatted(observed[j], 3))") }
    }
    return marks
}

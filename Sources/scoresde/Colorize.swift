import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

extension ScoreSDECommand {
    /// `scoresde colorize`: colour images consistent with grey ones, by sampling an RGB model
    /// conditioned on the grey channel.
    struct Colorize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Colour grey images by sampling an RGB model conditioned on their grey channel.",
            discussion: """
                With no options: 8 random held-out photograph patches (from the right quarter of each \
                photograph; the shipped patches model was trained on the left three quarters only, so no \
                demo patch shares a pixel with a training patch) are turned grey and colourised, 4 samples \
                each, with the shipped patches model (RePaint: reverse diffusion + Langevin, 1000 steps, each \
                block of 10 steps run 4 times; --method replace costs a quarter of that), drawn to \
                colorization.png as rows of grey input | samples | original (figure_columns in the stats). The summary gives the colour \
                RMSE of the samples, of the mean of each input's samples (a posterior-mean estimate) and of \
                the grey image itself (every channel = grey) against the originals.

                --range-margin a (replace, repaint; default 4): after every update each value of the state \
                is clipped to the range the forward process gives images of the model's range lo...hi at \
                that time, [m(t) lo - a s(t), m(t) hi + a s(t)], and so is the noise-free mean. \
                An exact score almost never reaches that box (probability 2 Phi(-a) per value and step, 6e-5 \
                at a = 4); a learned one can, and there it was never trained: without the limit about 1-3% of \
                the shipped patches model's samples ran away in chroma (values in the hundreds or thousands). \
                For the patches model --method repaint (4x the NFE) gives the best single samples: on 256 \
                held-out patches x 4 a single sample beats the grey image itself, the mean of the samples \
                by more (README, `scoresde-bench colorize`).

                The model must take RGB images [3, H, W]. The grey value of a pixel is the mean of its \
                channels (R + G + B) / 3, in data units (0...255 for the patches model). Following \
                score_sde, channels are decoupled with an orthonormal matrix whose first column is \
                (1, 1, 1)/sqrt(3); the grey image fixes the first decoupled channel and the sampler fills \
                in the other two. --mixing PATH.json takes any orthonormal 3x3 matrix ([[...], [...], [...]]): \
                the grey image then observes sum_c M[c][0] x_c / sum_c M[c][0].

                --data is a PNG of the model's size or a .npy in data space: grey inputs ([n, H, W], \
                [n, 1, H, W] or one [H, W] image) or colour ones ([n, 3, H, W]; a colour PNG), whose grey \
                version is colourised and which the summary compares the samples with. \
                --output writes all samples as one .npy of shape [n*k, 3, H, W]: rows i*k ..< (i+1)*k \
                belong to input i.
                """
        )

        @Option(help: ModelOptions.help(default: "patches"))
        var model: String = "patches"

        @Option(help: ArgumentHelp("The images: a grey or colour PNG, or a .npy of grey [n, H, W] or colour [n, 3, H, W] images in data space. Default: random photograph patches (RGB 8x8 models).", valueName: "path"))
        var data: String?

        @Option(help: ArgumentHelp("An orthonormal 3x3 channel-mixing matrix as JSON (default: score_sde's).", valueName: "path"))
        var mixing: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("Without --data: how many built-in images (default: 8).", valueName: "n"))
        var count: Int?

        @Option(help: ArgumentHelp("replace, repaint: keep every value of the sampler's state inside the diffused image range [m(t) lo - a s(t), m(t) hi + a s(t)], a = this many noise stds (default: 4; 0: off).", valueName: "a"))
        var rangeMargin: Double?

        static let defaultRangeMargin = 4.0

        @OptionGroup var options: ConditionedCommandOptions

        static let defaultPNG = "colorization.png"

        func validate() throws {
            if let a = rangeMargin {
                if !a.isFinite || a < 0 { throw ValidationError("--range-margin must be finite and >= 0 noise stds (got \(a)); 0 turns the limit off") }
                if let m = options.conditioning.methodChoice, m.isGuidance {
                    throw ValidationError("--range-margin belongs to --method replace and repaint: with --method \(m.rawValue) it does nothing; remove it or change --method")
                }
            }
            if let count, count < 1 { throw ValidationError("--count must be >= 1 (got \(count))") }
            if data != nil, count != nil { throw ValidationError("--count is for the built-in images; with --data the inputs are the images of the file") }
        }

        func run() throws {
            // Everything that can be wrong with the input fails here, before any work.
            let model = try DataModel.load(self.model)
            guard let layout = model.imageLayout, layout.channels == 3 else {
                throw ScoreSDEError.invalidArgument("colorize needs a model of RGB images (samples of shape [3, H, W]); \(model.name) takes samples of shape \(model.rowShape). The shipped RGB model is `patches`")
            }
            // Without --method: RePaint, whose single samples beat the grey image (README).
            let job = try options.prepare(model, defaultPNG: figureName(Self.defaultPNG, model: model, defaultModel: "patches"),
                                          defaultSamplesPerInput: 4, defaultMethod: .repaint)
            let (conditioning, seed, k) = (job.options.conditioning, options.compute.seed, job.samplesPerInput)
            let mixing = try self.mixing.map(readMixing) ?? .reference

            let input: ColorInput
            if let data {
                input = try ColorInput(reading: data, layout: layout, model: model, mixing: mixing)
            } else {
                guard let demo = try model.demoInputs(count: count ?? 8, seed: seed) else {
                    throw ScoreSDEError.invalidArgument("the model \(model.name) has no built-in images; give --data (a PNG or a .npy of [n, \(layout.height), \(layout.width)] grey images)")
                }
                let truth = try demo.inputs.reshaped([demo.inputs.rows, layout.channels * layout.pixels])
                input = try ColorInput(truth: truth, layout: layout, mixing: mixing, noiseStd: conditioning.noiseStd,
                                       seed: seed, origin: demo.description)
            }
            let n = input.grey.rows

            let scaling = model.scaling
            guard scaling.isAffine else {
                throw ScoreSDEError.invalidArgument("the model \(model.name) maps data to model space through a logit (\(scaling)), so the grey mixture of the colours is not linear in model space: colorize needs a model with an affine scaling")
            }
            let constraint = try Colorization(grey: scaling.toModel(input.grey).repeatingRows(k), mixing: mixing,
                                              noiseStd: conditioning.noiseStd * abs(scaling.scale), convention: conditioning.constraintConvention)
            let lo = try scaling.toModel(Tensor(shape: [1, 1], storage: [model.imageRange.lowerBound])).storage[0]
            let hi = try scaling.toModel(Tensor(shape: [1, 1], storage: [model.imageRange.upperBound])).storage[0]
            let margin = rangeMargin ?? Self.defaultRangeMargin
            let limited: any SamplingConstraint = margin > 0 ? try RangeLimited(constraint, lower: min(lo, hi), upper: max(lo, hi), margin: margin) : constraint
            let problem = InverseProblem(constraint: limited, measurement: { try constraint.measurement() })

            // The work.
            let outcome = try job.run(problem, inputs: n)
            let samples = outcome.samples
            let fit = try ColorizationFit(samples: samples, grey: input.grey, truth: input.truth, perInput: k, mixing: mixing, range: model.imageRange)

            var report = job.report(outcome, inputs: n)
            report["grey_max_abs_error"] = .double(fit.greyMaxError)
            report["colour_rmse_vs_original"] = fit.colourRMSE.map { .double($0) } ?? .null
            report["colour_rmse_of_sample_mean"] = fit.meanColourRMSE.map { .double($0) } ?? .null
            report["colour_rmse_unclamped"] = fit.rawColourRMSE.map { .double($0) } ?? .null
            report["grey_baseline_rmse"] = fit.greyBaselineRMSE.map { .double($0) } ?? .null
            report["data"] = .string(input.origin)
            report["mixing"] = .string(self.mixing ?? "reference")
            report["range_margin"] = conditioning.method.isGuidance ? .null : .double(margin)
            report.merge(job.settings(outcome))

            let observedHeader = conditioning.noiseStd > 0 ? "grey input (noisy)" : "grey input"
            report["figure_columns"] = .array(conditionalTableHeaders(observed: observedHeader, perInput: k, hasOriginal: input.truth != nil).map { .string($0) })
            try job.files.write(samples: samples, report: report) {
                let grey = try input.grey.replicatedChannels(layout.channels)
                return try conditionalTable(observed: Plot.ImageColumn(observedHeader, grey),
                                            samples: samples, perInput: k, original: input.truth, model: model, title: job.title("colorize", outcome))
            }

            print(job.summary(outcome, inputs: n, what: "image", origin: input.origin))
            var line = "grey kept to \(formatted(fit.greyMaxError, 3)) (max |grey(sample) - input|)"
            if let rmse = fit.colourRMSE, let meanRMSE = fit.meanColourRMSE, let baseline = fit.greyBaselineRMSE {
                line += ", colour RMSE \(formatted(rmse, 4)) vs the original" + (k > 1 ? " (mean of the \(k) samples: \(formatted(meanRMSE, 4)))" : "")
                    + "; the grey image itself: \(formatted(baseline, 4)) (samples clamped to the image range \(formatted(model.imageRange.lowerBound, 4))...\(formatted(model.imageRange.upperBound, 4)), as saved; unclamped: \(formatted(fit.rawColourRMSE ?? .nan, 4)))"
            }
            print(line)
            print("wrote \(job.files.paths)")
        }
    }
}

/// Reads a 3x3 orthonormal mixing matrix from JSON (`[[...], [...], [...]]`).
private func readMixing(_ path: String) throws -> ColorMixing {
    let mixing = try ColorMixing(contentsOf: path)
    guard mixing.channels == 3 else {
        throw ScoreSDEError.shapeMismatch("--mixing \(path): the mixing matrix must be 3x3 for RGB images (got \(mixing.channels)x\(mixing.channels))")
    }
    return mixing
}

/// The grey inputs of `colorize` (data space, `[n, H·W]`) and, when known, the colour originals (`[n, 3, H, W]`).
struct ColorInput {
    let grey: Tensor
    let truth: Tensor?
    let origin: String

    /// Colour originals (`[n, 3·H·W]`): their grey version (observed with `noiseStd` for the demos).
    init(truth: Tensor, layout: ImageLayout, mixing: ColorMixing, noiseStd: Double, seed: UInt64, origin: String) throws {
        let grey = try mixing.grey(of: truth)
        self.grey = DataModel.observed(grey, noiseStd: noiseStd, seed: seed)
        self.truth = try truth.reshaped([truth.rows, layout.channels, layout.height, layout.width])
        self.origin = origin + (noiseStd > 0 ? ", grey observed with noise std \(noiseStd)" : "")
    }

    /// `--data`: a PNG (grey, or colour whose grey version is used) or a .npy of grey or colour images.
    init(reading path: String, layout: ImageLayout, model: DataModel, mixing: ColorMixing) throws {
        let hw = layout.pixels, what = "--data \(path)"
        if path.lowercased().hasSuffix(".png") {
            let image = try PNG.read(path)
            try checkSize(image, layout: layout, what: what)
            if isGrey(image) {
                let t = try image.converting(toChannels: 1).tensor(range: model.imageRange)
                grey = try t.reshaped([1, hw]); truth = nil
            } else {
                let t = try image.tensor(range: model.imageRange)
                grey = try mixing.grey(of: t.reshaped([1, 3 * hw]))
                truth = t
            }
            origin = path
            return
        }
        var t = try Npy.read(path)
        try t.checkFinite(what)
        if t.shape == [layout.height, layout.width] { t = try t.reshaped([1, hw]) }
        guard t.shape.count >= 2, t.rows >= 1 else {
            throw ScoreSDEError.shapeMismatch("\(what) has shape \(t.shape); give grey images [n, \(layout.height), \(layout.width)] or colour ones [n, 3, \(layout.height), \(layout.width)]")
        }
        switch t.rowSize {
        case hw:
            grey = try t.reshaped([t.rows, hw]); truth = nil
        case 3 * hw:
            truth = try t.reshaped([t.rows, 3, layout.height, layout.width])
            grey = try mixing.grey(of: t.reshaped([t.rows, 3 * hw]))
        default:
            throw ScoreSDEError.shapeMismatch("\(what) has rows of shape \(t.rowShape) (\(t.rowSize) values); the model \(model.name) colours \(layout.width)x\(layout.height) images: give grey images [n, \(layout.height), \(layout.width)] (\(hw) values each) or colour ones [n, 3, \(layout.height), \(layout.width)]")
        }
        origin = path
    }
}

extension Tensor {
    /// `[n, H·W]` grey images as `[n, C, H·W]` with every channel equal (for pictures).
    func replicatedChannels(_ c: Int) throws -> Tensor {
        var storage = [Double]()
        storage.reserveCapacity(count * c)
        for r in 0 ..< rows {
            for _ in 0 ..< c { storage += self.storage[r * rowSize ..< (r + 1) * rowSize] }
        }
        return try Tensor(shape: [rows, c * rowSize], storage: storage)
    }
}

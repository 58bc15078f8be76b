// Colorization: colour grey 8 x 8 photograph patches with the shipped patch model.
//
//     swift run -c release Colorization --output colorization.png
//
// The patch model (PretrainedModels.patches(), an MLP score network on [3, 8, 8] RGB patches, VP
// SDE) learned the prior of colour patches. A grey patch g = (R + G + B) / 3 (per pixel) observes
// one direction per pixel: with score_sde's orthonormal channel-mixing matrix M, whose column 0 is
// (1, 1, 1)/√3, the decoupled channel d₀ = Σ_c M_c0 x_c = √3 g. Colorization samples the colour
// given that channel (Song et al. 2021, App. I.3; the `Colorization` constraint): after every
// update each pixel is decoupled, d₀ is replaced by a forward-noised copy of the observation,
// m(t) √3 g + s(t) z, and the pixel is coupled back — replacement in a rotated basis. RePaint
// (`Resampling`) re-runs blocks of intervals after a forward jump, NFE × `--resample`.
// `RangeLimited` (on by default, `--range-margin 0` turns it off) keeps every value of the state
// inside the range the forward process gives patches of 0...255 at that time,
// [m(t)·lo − a s(t), m(t)·hi + a s(t)] in model units: an exact score almost never goes there, the
// learned one sometimes did (a few samples in a hundred ran away in chroma without it).
//
// Data space (levels 0...255) vs model space: the model works in x' = a x + b (its dataScaling,
// a = 2/255, b = −1). The grey image must be given in model space too, g' = a g + b. This is
// consistent because the map is affine per value and M's column 0 sums to the grey gain
// √3 = Σ_c M_c0: Σ_c M_c0 (a x_c + b) = a Σ_c M_c0 x_c + √3 b, which equals √3 (a g + b) exactly
// when Σ_c M_c0 x_c = √3 g.
//
// Printed per method: NFE, wall time, the RMSE of the colours (all 3 x 64 values) against the
// true patch, per sample and for the mean of the K samples (a point estimate), and how far each
// sample's channel mean is from the grey input. For the raw samples it is ~1e-5 levels: the
// output's d₀ is set to exactly m(0) √3 g with m(0) = 1 (the last step ends at t = 0), but
// score_sde's matrix holds float32 values, column 0 = (0.57735014, 0.57735026, 0.57735026), so
// fixing d₀ fixes the channel mean only up to ~2e-7 of the chroma (tens to hundreds of levels).
// Clamping to 0...255 (samples do leave the range) moves it by up to tens of levels, and 8-bit
// rounding (what the PNG holds) by up to 0.5 more. Baseline: the grey patch itself, replicated
// into R, G and B — its error is the true patch's chroma. A sample (a draw from the posterior, not
// its mean) is expected to miss by more: for an unpredictable chroma by up to √2 × the baseline;
// the mean of the K samples estimates the posterior mean.
import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

struct ColorizationExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Colorization",
        abstract: "Colorize grey photograph patches with the shipped patch model: replacement and RePaint.")

    @Option(help: "Where to write the PNG (per patch: grey input, truth, K colorizations per method).")
    var output = "colorization.png"
    @Option(help: "Random held-out patches (right quarter) of the two packaged photographs to colorize.")
    var patches = 12
    @Option(name: .customLong("samples"), help: "Colorizations per patch and method (1...10).")
    var k = 4
    @Option(help: "Steps of the PC sampler (reverse diffusion + Langevin: 2 NFE per step; VP needs > 20).")
    var steps = 500
    @Option(help: "RePaint: runs of each block (1 skips RePaint).")
    var resample = 4
    @Option(help: "RePaint: intervals per block.")
    var jumpLength = 10
    @Option(help: "Keep the state inside the diffused range 0...255 with this margin in noise stds (0: off).")
    var rangeMargin = 4.0
    @Option(help: "Seed of the patch positions and the samplers.")
    var seed: UInt64 = 1

    func validate() throws {
        guard (1 ... 1000).contains(patches) else { throw ValidationError("--patches must be in 1...1000") }
        guard (1 ... 10).contains(k) else { throw ValidationError("--samples must be in 1...10") }
        guard steps >= 1 else { throw ValidationError("--steps must be >= 1 (any grid is a correct sampler)") }
        guard resample >= 1, jumpLength >= 1 else { throw ValidationError("--resample and --jump-length must be >= 1") }
        guard rangeMargin.isFinite, rangeMargin >= 0 else { throw ValidationError("--range-margin must be finite and >= 0 (0: off)") }
    }

    func run() throws {
        let model = try PretrainedModels.patches()
        // The sampler takes the SDE's concrete type, which Swift opens from the existential when calling run.
        try run(model, sde: model.sdeSpec.make(), eps: model.sdeSpec.samplingEps)
    }

    func run<SDE: ForwardSDE>(_ model: MLPScore, sde: SDE, eps: Double) throws {
        let clock = ContinuousClock(), start = clock.now
        let n = patches, plane = 64, d = 3 * plane

        // MARK: Patches and grey inputs
        var rng = RandomSource(seed: seed)
        let truth = try ImagePatches.random(count: n, split: .heldOut, using: &rng)   // [n, 3, 8, 8], 0...255, right quarter
        let grey = try ImagePatches.toGrey(truth)                               // [n, 1, 8, 8]
        // One grey row per sample (patch i repeated K times), in model space.
        var greyRows = Tensor(zeros: [n * k, 1, 8, 8]), truthRows = Tensor(zeros: [n * k, 3, 8, 8])
        for i in 0 ..< n * k {
            for j in 0 ..< plane { greyRows.storage[i * plane + j] = grey.storage[(i / k) * plane + j] }
            for j in 0 ..< d { truthRows.storage[i * d + j] = truth.storage[(i / k) * d + j] }
        }
        let colorization = try Colorization(grey: model.dataScaling.toModel(greyRows), mixing: .reference)
        let ends = try model.dataScaling.toModel(Tensor(shape: [1, 2], storage: [0, 255])).storage   // 0...255 in model units
        let constraint: any SamplingConstraint = rangeMargin > 0
            ? try RangeLimited(colorization, lower: ends.min()!, upper: ends.max()!, margin: rangeMargin) : colorization
        print("\(n) random held-out patches (right quarter of the packaged photographs), \(k) colorizations per patch and method")
        print("  (the model was trained on the left three quarters only: no patch here shares a pixel with a training patch)")

        // MARK: Baseline: the grey patch in every channel
        var replicated = truth
        for i in 0 ..< n { for c in 0 ..< 3 { for j in 0 ..< plane { replicated.storage[i * d + c * plane + j] = grey.storage[i * plane + j] } } }
        print("baseline, grey replicated into R, G, B: RMSE \(fmt(rmse(replicated, truth), 2)) levels (of 0...255)")

        // MARK: Sample
        let grid = try TimeGrid.uniform(steps: steps, from: sde.T, to: eps)
        // The figure: grey input | each method's samples | original.
        var columns = [Plot.ImageColumn("grey input", replicated)]

        func report(_ name: String, resampling: Resampling = .none) throws {
            let t0 = clock.now
            var rng = RandomSource(seed: seed &+ 7)
            let run = try PCSampler(sde: sde, score: model, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16),
                                    constraint: constraint, resampling: resampling)
                .sample(count: n * k, using: &rng)
            let time = seconds(clock.now - t0)
            let raw = model.dataScaling.toData(run.samples)
            var clamped = raw, bytes = raw
            for i in raw.storage.indices {
                clamped.storage[i] = min(max(raw.storage[i], 0), 255)
                bytes.storage[i] = clamped.storage[i].rounded()
            }
            var meanOfK = Tensor(zeros: [n, 3, 8, 8])
            for i in 0 ..< n * k { for j in 0 ..< d { meanOfK.storage[(i / k) * d + j] += clamped.storage[i * d + j] / Double(k) } }
            let devRaw = channelMeanDeviation(raw, greyRows), devClamped = channelMeanDeviation(clamped, greyRows)
            let devBytes = channelMeanDeviation(bytes, greyRows)
            print("\(name.padding(toLength: 14, withPad: " ", startingAt: 0)) NFE \(String(run.scoreEvaluations).padding(toLength: 5, withPad: " ", startingAt: 0)) \(fmt(time, 1).leftPadded(5)) s  RMSE \(fmt(rmse(clamped, truthRows), 2)) (mean of \(k): \(fmt(rmse(meanOfK, truth), 2)))  |channel mean - grey| max: raw \(String(format: "%.1e", devRaw.max)), clamped \(fmt(devClamped.max, 2)) (\(devClamped.count) of \(n * k * plane) pixels moved), 8-bit \(fmt(devBytes.max, 2))")
            columns.append(Plot.ImageColumn("\(name), NFE \(run.scoreEvaluations)", clamped, perRow: k))
        }
        print("PC sampler: reverse diffusion + Langevin (snr 0.16), \(sde is VESDE ? "VE" : "VP"), \(steps) steps, "
            + (rangeMargin > 0 ? "range-limited (margin \(fmt(rangeMargin, 1)) noise stds)" : "no range limit") + "; RMSE in levels 0...255 (samples clamped)")
        try report("replacement")
        if resample > 1 { try report("RePaint \(resample)x\(jumpLength)", resampling: try Resampling(count: resample, jumpLength: jumpLength)) }
        columns.append(Plot.ImageColumn("original", truth))
        let table = try Plot.imageTable(columns, range: 0 ... 255)
        try PNG.write(Plot.titled(table, "Colorizing \(n) photograph patches, \(k) samples per method"), to: output)
        print("wrote \(output); total \(fmt(seconds(clock.now - start), 1)) s")
    }
}

/// Root mean square difference of two equally shaped tensors.
func rmse(_ a: Tensor, _ b: Tensor) -> Double {
    var s = 0.0
    for i in a.storage.indices { let e = a.storage[i] - b.storage[i]; s += e * e }
    return (s / Double(max(a.count, 1))).squareRoot()
}

/// Largest |(R + G + B)/3 − grey| over the pixels of RGB rows `x` ([n, 3, 8, 8]) against `grey`
/// ([n, 1, 8, 8]), and the number of pixels off by more than 1e-3.
func channelMeanDeviation(_ x: Tensor, _ grey: Tensor) -> (max: Double, count: Int) {
    var worst = 0.0, count = 0
    for i in 0 ..< x.rows {
        for j in 0 ..< 64 {
            let m = (x.storage[i * 192 + j] + x.storage[i * 192 + 64 + j] + x.storage[i * 192 + 128 + j]) / 3
            let e = abs(m - grey.storage[i * 64 + j])
            worst = max(worst, e)
            if e > 1e-3 { count += 1 }
        }
    }
    return (worst, count)
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
func seconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) + Double(atto) * 1e-18
}

ColorizationExample.main()

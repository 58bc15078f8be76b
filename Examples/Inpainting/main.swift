// Inpainting: fill in the unknown half of held-out 8 x 8 digits with the shipped digits model.
//
//     swift run -c release Inpainting --output inpainting.png
//
// The digits model (PretrainedModels.digitsMLP(), an MLP score network, VP SDE) learned the prior
// p(x₀) of whole digits; nothing was trained for inpainting. Given the known pixels y = x₀[mask]
// of a held-out digit (never seen in training), the example samples p(x₀ | y) three ways, each
// with reverse diffusion + Langevin (snr 0.16):
//   * replacement (Song et al. 2021, App. I.2; `Inpainting` constraint): after every update the
//     known pixels are overwritten with a forward-noised copy of the observation,
//     x_t[mask] ← m(t) y + s(t) z (the VP kernel of x₀ → x_t), so the unknown pixels are
//     generated next to a noisy version of the known ones at every noise level;
//   * RePaint (Lugmayr et al. 2022; `Resampling`): the same, but each block of `--jump-length`
//     intervals is run `--resample` times, jumping back up with the forward kernel in between,
//     so the two parts get extra chances to harmonise (NFE × resample);
//   * ΠGDM measurement guidance (`MeasurementGuidedScore`, `--guidance pigdm`): no overwriting; the
//     score gets ∇ₓ log p_t(y | x) ≈ ∇ₓ log N(y; A x̂₀(x), r_t² I) through Tweedie's
//     x̂₀ = (x + s² ∇log p_t) / m, with r_t² = v s² / (s² + m² v) (v: the per-pixel variance of the
//     training digits), in its Jacobian-free form ∂x̂₀/∂x ≈ m v / (s² + m² v) I. Differentiating
//     through the network instead (ΠGDM's own form, or Tweedie-moment guidance) diverges with this
//     model under VP: 1/m(t) ≈ 150 near T amplifies the network's Jacobian error. Known pixels are
//     only approximately reproduced.
// The model works in x' = k / 8 − 1 (its dataScaling): observations go in through toModel, samples
// come out through toData, and errors are reported in the digits' levels 0 ... 16.
//
// Printed per method: NFE, wall time, the RMSE of the unknown pixels against the held-out truth
// (per sample, and of the mean of the K samples — a point estimate, comparable with the
// baselines), and the largest error on the known pixels. Baselines: the unknown pixels filled
// with the mean training digit, or copied from the training digit closest on the known pixels.
// A sample is a draw from the posterior, so it misses by more than the posterior mean would
// (up to √2 × for unpredictable pixels); the mean of the K samples is the fair comparison.
import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

enum MaskKind: String, CaseIterable, ExpressibleByArgument {
    case top, bottom, left, right, random
}

enum GuidanceKind: String, CaseIterable, ExpressibleByArgument {
    case none, pigdm
}

struct InpaintingExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Inpainting",
        abstract: "Inpaint held-out digits with the shipped digits model: replacement, RePaint and measurement guidance.")

    @Option(help: "Where to write the PNG (per digit: truth, masked input, K samples per method).")
    var output = "inpainting.png"
    @Option(help: "Unknown part of each digit (random: a seeded 50% of the pixels, the same for every digit).")
    var mask = MaskKind.bottom
    @Option(help: "Held-out digits to inpaint (the first of each class 0, 1, ..., 9, then the next ones).")
    var digits = 10
    @Option(name: .customLong("samples"), help: "Samples per digit and method (1...10).")
    var k = 4
    @Option(help: "Steps of the PC sampler (reverse diffusion + Langevin: 2 NFE per step; VP needs > 20).")
    var steps = 500
    @Option(help: "RePaint: runs of each block (1 skips RePaint).")
    var resample = 4
    @Option(help: "RePaint: intervals per block.")
    var jumpLength = 10
    @Option(help: "Measurement guidance as a third method (pigdm: Jacobian-free ΠGDM).")
    var guidance = GuidanceKind.pigdm
    @Option(help: "Seed of the random mask and the samplers.")
    var seed: UInt64 = 1

    func validate() throws {
        guard (1 ... Digits.heldOutCount).contains(digits) else { throw ValidationError("--digits must be in 1...\(Digits.heldOutCount)") }
        guard (1 ... 10).contains(k) else { throw ValidationError("--samples must be in 1...10") }
        guard steps >= 1 else { throw ValidationError("--steps must be >= 1 (any grid is a correct sampler)") }
        guard resample >= 1, jumpLength >= 1 else { throw ValidationError("--resample and --jump-length must be >= 1") }
    }

    func run() throws {
        let model = try PretrainedModels.digitsMLP()
        // The sampler takes the SDE's concrete type, which Swift opens from the existential when calling run.
        try run(model, sde: model.sdeSpec.make(), eps: model.sdeSpec.samplingEps)
    }

    func run<SDE: ForwardSDE>(_ model: MLPScore, sde: SDE, eps: Double) throws {
        let clock = ContinuousClock(), start = clock.now
        let pixels = 64, n = digits

        // MARK: Digits, mask, observations
        let heldOut = try Digits.load(split: .heldOut)
        var picked = [Int](), used = Set<Int>()
        while picked.count < n {                       // one per class in turn, in file order
            for c in 0 ..< 10 where picked.count < n {
                if let i = heldOut.labels.indices.first(where: { heldOut.labels[$0] == c && !used.contains($0) }) {
                    picked.append(i); used.insert(i)
                }
            }
        }
        let truth = heldOut.subset(picked).images                         // [n, 1, 8, 8], levels 0...16
        let known = try maskValues()                                       // 1 = known
        let maskTensor = try Tensor(shape: [1, 1, 8, 8], storage: known)
        // One observation row per sample (digit i repeated K times), in model space.
        var repeated = Tensor(zeros: [n * k, 1, 8, 8])
        for i in 0 ..< n * k { for j in 0 ..< pixels { repeated.storage[i * pixels + j] = truth.storage[(i / k) * pixels + j] } }
        let observation = model.dataScaling.toModel(repeated)
        let constraint = try Inpainting(observation: observation, mask: maskTensor)
        let unknownCount = known.filter { $0 == 0 }.count
        print("\(n) held-out digits (classes \(picked.map { String(heldOut.labels[$0]) }.joined())), mask \(mask.rawValue): \(unknownCount) of 64 pixels unknown; \(k) samples per digit and method")

        // MARK: Baseline
        let train = try Digits.load(split: .train).images
        let meanImage = (0 ..< pixels).map { j in (0 ..< train.rows).reduce(0.0) { $0 + train.storage[$1 * pixels + j] } / Double(train.rows) }
        var filled = truth
        for i in 0 ..< n { for j in 0 ..< pixels where known[j] == 0 { filled.storage[i * pixels + j] = meanImage[j] } }
        let baseline = rmseUnknown(filled, truth, known: known)
        // A stronger one: the training digit closest to the known pixels, copied into the unknown ones.
        var nearest = truth
        for i in 0 ..< n {
            var best = 0, bestD = Double.infinity
            for r in 0 ..< train.rows {
                var d = 0.0
                for j in 0 ..< pixels where known[j] == 1 { let e = train.storage[r * pixels + j] - truth.storage[i * pixels + j]; d += e * e }
                if d < bestD { bestD = d; best = r }
            }
            for j in 0 ..< pixels where known[j] == 0 { nearest.storage[i * pixels + j] = train.storage[best * pixels + j] }
        }
        print("baselines for the unknown pixels: mean training digit RMSE \(fmt(baseline, 3)) levels; nearest training digit on the known pixels RMSE \(fmt(rmseUnknown(nearest, truth, known: known), 3))")

        // MARK: Sample
        let grid = try TimeGrid.uniform(steps: steps, from: sde.T, to: eps)
        // The figure: observed (unknown pixels hatched) | each method's samples | original.
        let unknownMask = try Tensor(shape: [1, 1, 8, 8], storage: known.map { 1 - $0 })
        var columns = [Plot.ImageColumn("observed", truth, unknown: unknownMask)]

        func report<S: ScoreModel>(_ name: String, _ short: String, _ score: S, constraint: (any SamplingConstraint)?,
                                   resampling: Resampling = .none) throws {
            let t0 = clock.now
            var rng = RandomSource(seed: seed &+ 7)
            let run = try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16),
                                    constraint: constraint, resampling: resampling)
                .sample(count: n * k, rowShape: [1, 8, 8], using: &rng)
            let time = seconds(clock.now - t0)
            let raw = model.dataScaling.toData(run.samples)                  // levels, not clamped
            var clamped = raw
            for i in clamped.storage.indices { clamped.storage[i] = min(max(clamped.storage[i], 0), 16) }
            // Known pixels: largest |sample − truth| (raw samples).
            var knownErr = 0.0
            for i in 0 ..< n * k { for j in 0 ..< pixels where known[j] == 1 { knownErr = max(knownErr, abs(raw.storage[i * pixels + j] - repeated.storage[i * pixels + j])) } }
            let perSample = rmseUnknown(clamped, repeated, known: known)
            var meanOfK = Tensor(zeros: [n, 1, 8, 8])
            for i in 0 ..< n * k { for j in 0 ..< pixels { meanOfK.storage[(i / k) * pixels + j] += clamped.storage[i * pixels + j] / Double(k) } }
            let pointEstimate = rmseUnknown(meanOfK, truth, known: known)
            print("\(name.padding(toLength: 26, withPad: " ", startingAt: 0)) NFE \(String(run.scoreEvaluations).padding(toLength: 5, withPad: " ", startingAt: 0)) \(fmt(time, 1).leftPadded(5)) s  RMSE unknown \(fmt(perSample, 3)) (mean of \(k): \(fmt(pointEstimate, 3)))  known pixels max error \(String(format: "%.1e", knownErr))")
            columns.append(Plot.ImageColumn("\(short), NFE \(run.scoreEvaluations)", clamped, perRow: k))
        }
        print("PC sampler: reverse diffusion + Langevin (snr 0.16), \(sde is VESDE ? "VE" : "VP"), \(steps) steps; RMSE in levels 0...16 (samples clamped)")
        try report("replacement", "replace", model, constraint: constraint)
        if resample > 1 {
            try report("RePaint \(resample)x\(jumpLength)", "RePaint \(resample)x\(jumpLength)", model, constraint: constraint,
                       resampling: try Resampling(count: resample, jumpLength: jumpLength))
        }
        switch guidance {
        case .none: break
        case .pigdm:
            // ΠGDM's Gaussian prior variance: the training digits' per-pixel variance in model space, averaged.
            let m = model.dataScaling.toModel(train)
            let means = m.columnMeans()
            var v = 0.0
            for i in 0 ..< m.rows { for j in 0 ..< pixels { let d = m.storage[i * pixels + j] - means[j]; v += d * d } }
            v /= Double(m.rows * pixels)
            try report("guidance (PiGDM)", "PiGDM", try MeasurementGuidedScore(base: model, sde: sde, measurement: try constraint.measurement(),
                                                                               likelihood: .pseudoinverse(dataVariance: v, jacobianFree: true)), constraint: nil)
        }
        columns.append(Plot.ImageColumn("original", truth))
        let table = try Plot.imageTable(columns, range: 0 ... 16)
        try PNG.write(Plot.titled(table, "Inpainting \(n) held-out digits, \(mask.rawValue) mask, \(k) samples per method"), to: output)
        print("wrote \(output); total \(fmt(seconds(clock.now - start), 1)) s")
    }

    /// 1 (known) / 0 (unknown) for the 64 pixels, row-major.
    func maskValues() throws -> [Double] {
        var m = [Double](repeating: 1, count: 64)
        switch mask {
        case .top: for j in 0 ..< 32 { m[j] = 0 }
        case .bottom: for j in 32 ..< 64 { m[j] = 0 }
        case .left: for j in 0 ..< 64 where j % 8 < 4 { m[j] = 0 }
        case .right: for j in 0 ..< 64 where j % 8 >= 4 { m[j] = 0 }
        case .random:
            // Exactly 32 unknown pixels: a seeded shuffle (Fisher–Yates on one Philox stream).
            var rng = RandomSource(seed: seed)
            var stream = rng.stream(draw: rng.nextDraw(), row: 0)
            var order = Array(0 ..< 64)
            for i in stride(from: 63, to: 0, by: -1) {
                let j = Int(stream.next().multipliedFullWidth(by: UInt64(i + 1)).high)
                order.swapAt(i, j)
            }
            for j in order.prefix(32) { m[j] = 0 }
        }
        return m
    }
}

/// RMSE over the unknown pixels of `x` against `truth` (same shape, 64 pixels per row).
func rmseUnknown(_ x: Tensor, _ truth: Tensor, known: [Double]) -> Double {
    var s = 0.0, c = 0
    for i in 0 ..< x.rows { for j in 0 ..< 64 where known[j] == 0 { let d = x.storage[i * 64 + j] - truth.storage[i * 64 + j]; s += d * d; c += 1 } }
    return (s / Double(max(c, 1))).squareRoot()
}


extension Array {
    func chunked(_ size: Int) -> [[Element]] { stride(from: 0, to: count, by: size).map { Array(self[$0 ..< Swift.min($0 + size, count)]) } }
}
extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
func seconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) + Double(atto) * 1e-18
}

InpaintingExample.main()

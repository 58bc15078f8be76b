// PosteriorComparison: conditional samplers for a linear inverse problem against the exact posterior.
//
//     swift run -c release PosteriorComparison --output posterior.png
//
// Prior: a 2-D Gaussian mixture p(x) = Σ_k π_k N(μ_k, diag(s_k²)). Measurement: y = A x + σ ε with
// A one row (1 × 2) and ε ~ N(0, 1). The posterior is again a mixture, in closed form
// (LinearMeasurement.posterior → FullCovarianceMixture): per component
//     S_k = A Σ_k Aᵀ + σ²,   mean μ_k + Σ_k Aᵀ S_k⁻¹ (y − A μ_k),   cov Σ_k − Σ_k Aᵀ S_k⁻¹ A Σ_k,
//     weight ∝ π_k N(y; A μ_k, S_k),
// so every method can be measured against exact samples. Every method runs the same PC sampler
// (VE SDE σ 0.01…50, reverse diffusion + Langevin snr 0.16, eps 1e-5) on the exact prior score
// (GaussianMixtureScore); they differ only in how they bring in y:
//   * replacement (paper / reference convention): after every update the measured direction of x
//     is replaced by a forward-noised copy of y (LinearMeasurementConstraint; with σ > 0 only until
//     s(t) = m(t) σ, then the exact likelihood term takes over);
//   * RePaint: the same, with blocks of intervals re-run after a forward jump (Resampling);
//   * DPS, ΠGDM, Tweedie-moment: the score plus an approximate ∇ₓ log p_t(y | x) through Tweedie's
//     x̂₀(x) (MeasurementGuidedScore).
// Known bias: replacement-type methods weigh the compatible modes roughly by their *prior* weights,
// missing the factor N(y; A μ_k, S_k) that favours components narrow along A (the `uneven` prior
// shows it); guidance methods approximate p(x₀ | x_t) by one Gaussian, which is wrong while
// several modes overlap at large t.
//
// Metrics against the exact posterior: TV distance of the mode weights (½ Σ_k |r̄_k − w_k| with r̄
// the posterior responsibilities averaged over the samples — for exact samples E r̄_k = w_k), the
// error of the overall mean (Euclidean) and covariance (Frobenius), and the sliced Wasserstein
// distance to exact samples. The first row repeats everything for an independent exact sample:
// the Monte-Carlo floor at this sample size.
import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEPlot

enum Problem: String, CaseIterable, ExpressibleByArgument {
    /// 4 modes of different widths and weights, x + y = −0.5 observed.
    case uneven
    /// The 8-mode ring (radius 4, std 0.25), x = 3.4 observed.
    case ringX = "ring-x"
    /// The ring, x + y/2 = 3 observed.
    case ringOblique = "ring-oblique"

    var prior: GaussianMixture {
        switch self {
        case .uneven:
            return try! GaussianMixture(weights: [0.35, 0.25, 0.25, 0.15],
                                        means: [[-2, 2.5], [2.5, 1.5], [0.5, -2.5], [-2.5, -1]],
                                        stds: [[1.1, 0.9], [0.25, 0.3], [0.9, 0.25], [0.3, 0.6]])
        case .ringX, .ringOblique: return .ring()
        }
    }
    var row: [Double] {
        switch self {
        case .uneven: return [1, 1]
        case .ringX: return [1, 0]
        case .ringOblique: return [1, 0.5]
        }
    }
    var defaultObservation: Double {
        switch self {
        case .uneven: return -0.5
        case .ringX: return 3.4
        case .ringOblique: return 3
        }
    }
}

struct PosteriorComparisonExample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "PosteriorComparison",
        abstract: "Compare replacement, RePaint, DPS, ΠGDM and Tweedie-moment guidance with the exact posterior of a 2-D mixture.")

    @Option(help: "Where to write the PNG (exact posterior samples, then one panel per method).")
    var output = "posterior.png"
    @Option(help: "The prior and measurement (uneven: 4 modes of different widths, x + y observed; ring-x: the 8-mode ring, x observed; ring-oblique: the ring, x + y/2 observed).")
    var problem = Problem.uneven
    @Option(parsing: .unconditional, help: "The observed value y (default: the problem's own: -0.5, 3.4, 3).")
    var observation: Double?
    @Option(help: "Noise std σ of the measurement (0: noise-free).")
    var noise = 0.4
    @Option(help: "Samples per method.")
    var count = 4000
    @Option(help: "Steps of the PC sampler (2 NFE per step with Langevin).")
    var steps = 500
    @Option(help: "RePaint: runs of each block.")
    var resample = 4
    @Option(help: "RePaint: intervals per block.")
    var jumpLength = 10
    @Option(help: "DPS step scale ζ.")
    var dpsScale = 1.0
    @Option(help: "Seed of the exact samples and the samplers.")
    var seed: UInt64 = 1

    func validate() throws {
        guard count >= 10 else { throw ValidationError("--count must be >= 10") }
        guard steps >= 2 else { throw ValidationError("--steps must be >= 2") }
        guard noise.isFinite, noise >= 0 else { throw ValidationError("--noise must be finite and >= 0 (0: noise-free)") }
        if let observation, !observation.isFinite { throw ValidationError("--observation must be finite") }
        guard resample >= 1, jumpLength >= 1 else { throw ValidationError("--resample and --jump-length must be >= 1") }
        guard dpsScale.isFinite, dpsScale > 0 else { throw ValidationError("--dps-scale must be finite and > 0") }
    }

    func run() throws {
        let clock = ContinuousClock(), start = clock.now
        let prior = problem.prior, a = problem.row, y = observation ?? problem.defaultObservation
        let measurement = try LinearMeasurement(matrix: [a], observation: [y], noiseStd: noise)
        let posterior = try measurement.posterior(of: prior)
        print("prior: \(problem.rawValue), \(prior.componentCount) modes; measurement \(fmt(a[0], 2)) x + \(fmt(a[1], 2)) y = \(fmt(y, 3)) +- \(fmt(noise, 3))")
        print("exact posterior weights: \(posterior.weights.map { fmt($0, 3) }.joined(separator: " ")) (prior: \(prior.weights.map { fmt($0, 3) }.joined(separator: " ")))")

        // Responsibilities need a regular density: with σ = 0 the posterior lives on the line
        // A x = y, so use its marginal on the coordinate the line is parametrised by.
        let free = abs(a[0]) >= abs(a[1]) ? 1 : 0
        let classifier = noise > 0 ? posterior : try posterior.marginal([free])
        func classify(_ x: Tensor) throws -> Tensor {
            guard noise == 0 else { return x }
            return try Tensor(shape: [x.rows, 1], storage: (0 ..< x.rows).map { x.storage[$0 * 2 + free] })
        }

        var rng = RandomSource(seed: seed)
        let exact = posterior.sample(count: count, using: &rng)
        var rng2 = RandomSource(seed: seed &+ 1)
        let exact2 = posterior.sample(count: count, using: &rng2)
        let truthMean = posterior.mean, truthCov = posterior.covariance

        struct Row { let name: String; let nfe: Int?; let tv, mean, cov, sw, seconds: Double; let weights: [Double] }
        var rows = [Row]()
        let shown = posterior.weights.indices.filter { posterior.weights[$0] >= 0.01 }   // the modes y leaves
        func measure(_ name: String, _ x: Tensor, nfe: Int?, since t0: ContinuousClock.Instant) throws {
            let r = try classifier.responsibilities(try classify(x))
            var avg = [Double](repeating: 0, count: posterior.componentCount)
            for ri in r { for k in avg.indices { avg[k] += ri[k] / Double(x.rows) } }
            let tv = 0.5 * zip(avg, posterior.weights).reduce(0.0) { $0 + abs($1.0 - $1.1) }
            let (m, c) = moments(x)
            let meanErr = zip(m, truthMean).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            var covErr = 0.0
            for i in 0 ..< 2 { for j in 0 ..< 2 { covErr += (c[i][j] - truthCov[i][j]) * (c[i][j] - truthCov[i][j]) } }
            let sw = try slicedWassersteinDistance(x, exact)
            rows.append(Row(name: name, nfe: nfe, tv: tv, mean: meanErr, cov: covErr.squareRoot(), sw: sw,
                            seconds: seconds(clock.now - t0), weights: shown.map { avg[$0] }))
        }
        try measure("exact, another seed (MC floor)", exact2, nfe: nil, since: clock.now)

        // Shared bounds: the prior's modes with 3.5 of their widest std around them.
        var lo = Double.infinity, hi = -Double.infinity
        for (m, s) in zip(prior.means, prior.stds) {
            let w = 3.5 * (s.max() ?? 0)
            lo = min(lo, m.min()! - w); hi = max(hi, m.max()! + w)
        }
        let bounds: Plot.Bounds = (lo, hi, lo, hi)
        let markers = try Tensor(rows: zip(posterior.weights, posterior.means).filter { $0.0 > 0.01 }.map { $0.1 })
        let overlays: [Plot.Overlay] = [.density(posterior, label: "exact posterior density")]
        var panels = [Plot.scatter(exact, reference: markers, size: 300, bounds: bounds, title: "Exact posterior samples",
                                   referenceLabel: "posterior modes", overlays: overlays)]

        let sde = try VESDE()
        let grid = try TimeGrid.uniform(steps: steps, from: sde.T, to: 1e-5)
        let base = GaussianMixtureScore(prior, diffusedBy: sde)
        func pc<S: ScoreModel>(_ name: String, _ score: S, constraint: (any SamplingConstraint)? = nil,
                               resampling: Resampling = .none) throws {
            let t0 = clock.now
            var rng = RandomSource(seed: seed &+ 7)
            let run = try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(),
                                    corrector: try Langevin(snr: 0.16), constraint: constraint, resampling: resampling)
                .sample(count: count, using: &rng)
            try measure(name, run.samples, nfe: run.scoreEvaluations, since: t0)
            panels.append(Plot.scatter(run.samples, reference: markers, size: 300, bounds: bounds,
                                       title: "\(name), NFE \(run.scoreEvaluations)", referenceLabel: "posterior modes", overlays: overlays))
        }
        // The sampler on the exact *posterior* score: its own discretisation error, no approximation.
        try pc("PC on exact posterior score", FullCovarianceMixtureScore(posterior, diffusedBy: sde))
        try pc("replacement (paper)", base, constraint: LinearMeasurementConstraint(measurement, convention: .paper))
        try pc("replacement (reference)", base, constraint: LinearMeasurementConstraint(measurement, convention: .reference))
        try pc("RePaint \(resample)x\(jumpLength)", base, constraint: LinearMeasurementConstraint(measurement),
               resampling: try Resampling(count: resample, jumpLength: jumpLength))
        try pc("DPS zeta=\(fmt(dpsScale, 2))",
               try MeasurementGuidedScore(base: base, sde: sde, measurement: measurement, likelihood: .dps(stepScale: dpsScale)))
        // ΠGDM's Gaussian prior: the mixture's variance averaged over the coordinates.
        let priorCov = FullCovarianceMixture(prior).covariance, v = (priorCov[0][0] + priorCov[1][1]) / 2
        try pc("PiGDM", try MeasurementGuidedScore(base: base, sde: sde, measurement: measurement,
                                                   likelihood: .pseudoinverse(dataVariance: v)))
        try pc("Tweedie-moment", try MeasurementGuidedScore(base: base, sde: sde, measurement: measurement,
                                                            likelihood: .tweedieCovariance))

        print("\(count) samples per method, PC: reverse diffusion + Langevin (snr 0.16), VE, \(steps) steps; against \(count) exact samples")
        print("method                            NFE     mode TV  mean err  cov err  sliced W2  time    weights of modes \(shown.map(String.init).joined(separator: ", "))")
        for r in rows {
            print("\(r.name.padding(toLength: 32, withPad: " ", startingAt: 0))  \((r.nfe.map(String.init) ?? "-").padding(toLength: 6, withPad: " ", startingAt: 0))  \(fmt(r.tv, 4))   \(fmt(r.mean, 4))    \(fmt(r.cov, 4))   \(fmt(r.sw, 4))     \(fmt(r.seconds, 1)) s   \(r.weights.map { fmt($0, 3) }.joined(separator: " "))")
        }
        print("exact posterior                                                                        \(shown.map { fmt(posterior.weights[$0], 3) }.joined(separator: " "))")
        let approximate = rows.dropFirst(2)
        let best = approximate.min { $0.sw < $1.sw }!, bestTV = approximate.min { $0.tv < $1.tv }!
        print("closest to the exact posterior: \(best.name) (sliced W2 \(fmt(best.sw, 4)) vs floor \(fmt(rows[0].sw, 4))); smallest mode-weight TV: \(bestTV.name) (\(fmt(bestTV.tv, 4)))")
        // Two rows: the exact posterior and the three replacement-type methods, then the rest.
        let half = (panels.count + 1) / 2
        try PNG.write(stacked([Plot.sideBySide(Array(panels[..<half]), padding: 16, alignment: .bottom),
                               Plot.sideBySide(Array(panels[half...]), padding: 16, alignment: .bottom)], padding: 16), to: output)
        print("wrote \(output); total \(fmt(seconds(clock.now - start), 1)) s")
    }
}

/// Mean and covariance (n − 1 normalisation) of the rows of a 2-column tensor.
func moments(_ x: Tensor) -> ([Double], [[Double]]) {
    let m = x.columnMeans(), n = x.rows
    var c = [[0.0, 0.0], [0.0, 0.0]]
    for r in 0 ..< n {
        let d = [x.storage[r * 2] - m[0], x.storage[r * 2 + 1] - m[1]]
        for i in 0 ..< 2 { for j in 0 ..< 2 { c[i][j] += d[i] * d[j] / Double(n - 1) } }
    }
    return (m, c)
}

/// Images one below the other, left-aligned, 8 white pixels apart (RGB).
func stacked(_ images: [RasterImage], padding: Int = 8) throws -> RasterImage {
    let rgb = try images.map { try $0.converting(toChannels: 3) }
    let width = rgb.map(\.width).max() ?? 0, height = rgb.reduce(0) { $0 + $1.height } + padding * max(rgb.count - 1, 0)
    var pixels = [UInt8](repeating: 255, count: width * height * 3), y0 = 0
    for image in rgb {
        for y in 0 ..< image.height {
            let src = y * image.width * 3, dst = ((y0 + y) * width) * 3
            pixels.replaceSubrange(dst ..< dst + image.width * 3, with: image.pixels[src ..< src + image.width * 3])
        }
        y0 += image.height + padding
    }
    return try RasterImage(width: width, height: height, channels: 3, pixels: pixels)
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
func seconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) + Double(atto) * 1e-18
}

PosteriorComparisonExample.main()

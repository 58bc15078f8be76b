import Foundation
import Testing
@testable import ScoreSDE

// MARK: - Comparing conditional samples with an exact posterior

/// Statistics of conditional samples against the exact posterior mixture (components index-aligned
/// with the prior's; each sample is assigned to its most responsible prior component).
struct PosteriorFit: CustomStringConvertible {
    let truth: FullCovarianceMixture
    let n: Int
    let counts: [Int]
    let means: [[Double]]
    let covariances: [[[Double]]]
    /// ½ Σ_k |n_k/n − w_k|.
    let modeTV: Double
    /// Largest |x̄_k,j − μ_k,j| over components with posterior weight ≥ 0.05 and ≥ 50 samples.
    let meanError: Double
    /// Largest |S_k,ab − Σ_k,ab| over the same components.
    let covarianceError: Double
    /// Largest |x̄_j − E[x_j | y]| and |S_ab − Cov[x | y]_ab| of the whole sample.
    let overallMeanError: Double, overallCovarianceError: Double

    init(_ x: Tensor, truth: FullCovarianceMixture, prior: GaussianMixture) {
        self.truth = truth
        let d = truth.dimension, k = truth.componentCount
        n = x.rows
        let assign = prior.assignments(x)
        var counts = [Int](repeating: 0, count: k)
        var sums = [[Double]](repeating: [Double](repeating: 0, count: d), count: k)
        for r in 0 ..< n { counts[assign[r]] += 1; for j in 0 ..< d { sums[assign[r]][j] += x.storage[r * d + j] } }
        let means = (0 ..< k).map { c in sums[c].map { $0 / Double(max(counts[c], 1)) } }
        var covs = [[[Double]]](repeating: [[Double]](repeating: [Double](repeating: 0, count: d), count: d), count: k)
        for r in 0 ..< n {
            let c = assign[r]
            for a in 0 ..< d { for b in 0 ..< d { covs[c][a][b] += (x.storage[r * d + a] - means[c][a]) * (x.storage[r * d + b] - means[c][b]) } }
        }
        for c in 0 ..< k { covs[c] = covs[c].map { $0.map { $0 / Double(max(counts[c] - 1, 1)) } } }
        self.counts = counts; self.means = means; covariances = covs
        var tv = 0.0
        for c in 0 ..< k { tv += abs(Double(counts[c]) / Double(x.rows) - truth.weights[c]) }
        modeTV = 0.5 * tv
        var me = 0.0, ce = 0.0
        for c in 0 ..< k where truth.weights[c] >= 0.05 && counts[c] >= 50 {
            for a in 0 ..< d {
                me = max(me, abs(means[c][a] - truth.means[c][a]))
                for b in 0 ..< d { ce = max(ce, abs(covs[c][a][b] - truth.covariances[c][a][b])) }
            }
        }
        meanError = me; covarianceError = ce
        let m = x.columnMeans(), tm = truth.mean, tc = truth.covariance
        var ome = 0.0, oce = 0.0
        for a in 0 ..< d {
            ome = max(ome, abs(m[a] - tm[a]))
            for b in 0 ..< d {
                var s = 0.0
                for r in 0 ..< n { s += (x.storage[r * d + a] - m[a]) * (x.storage[r * d + b] - m[b]) }
                oce = max(oce, abs(s / Double(n - 1) - tc[a][b]))
            }
        }
        overallMeanError = ome; overallCovarianceError = oce
    }

    /// ½ Σ_k σ_k with σ_k = √(w_k(1−w_k)/n), the binomial standard errors of the weights: the TV of
    /// an unbiased sampler exceeds z times this with probability below that of a z-σ deviation.
    var modeTVStandardError: Double {
        0.5 * truth.weights.reduce(0.0) { $0 + ($1 * (1 - $1) / Double(n)).squareRoot() }
    }

    var description: String {
        let w = counts.map { String(format: "%.3f", Double($0) / Double(n)) }.joined(separator: " ")
        let tw = truth.weights.map { String(format: "%.3f", $0) }.joined(separator: " ")
        var detail = ""
        if ProcessInfo.processInfo.environment["SCORESDE_MEASURE_DETAIL"] != nil {
            for c in 0 ..< truth.componentCount where truth.weights[c] >= 0.05 {
                detail += "\n    comp \(c): mean \(means[c].map { String(format: "%.3f", $0) }) vs \(truth.means[c].map { String(format: "%.3f", $0) })"
            }
        }
        return String(format: "TV %.4f (MC≈%.4f)  mean err %.4f  cov err %.4f  overall mean %.4f cov %.4f  weights [%@] vs [%@]",
                      modeTV, modeTVStandardError, meanError, covarianceError, overallMeanError, overallCovarianceError, w, tw) + detail
    }
}

/// VE (σ 0.01…50) reverse diffusion + Langevin(0.16), `steps` steps to eps = 1e-5: score_sde's inpainting setting.
func sampleVEPC<S: ScoreModel>(_ score: S, sde: VESDE, constraint: (any SamplingConstraint)?, resampling: Resampling = .none,
                               steps: Int = 500, count: Int, seed: UInt64,
                               corrector: Bool = ProcessInfo.processInfo.environment["SCORESDE_MEASURE_NOCORRECTOR"] == nil) throws -> SamplingResult {
    let grid = try TimeGrid.uniform(steps: steps, from: 1, to: 1e-5)
    var rng = RandomSource(seed: seed)
    if corrector {
        return try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16),
                             constraint: constraint, resampling: resampling).sample(count: count, using: &rng)
    }
    return try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: NoCorrector(),
                         constraint: constraint, resampling: resampling).sample(count: count, using: &rng)
}

/// The inverse-problem methods compared against the exact posterior.
enum InverseMethod: String, CaseIterable, Sendable {
    case oracle = "exact posterior score"
    case replacePaper = "replacement (paper)"
    case replaceReference = "replacement (reference)"
    case repaint = "RePaint r=4 j=1"
    case repaintLong = "RePaint r=4 j=50"
    case pigdm = "ΠGDM"
    case tweedie = "Tweedie-moment guidance"
    case dps = "DPS ζ=1"
}

/// One inverse problem on a Gaussian-mixture prior.
struct InverseProblem: Sendable {
    let name: String
    let prior: GaussianMixture
    let measurement: LinearMeasurement
    /// The replacement constraint the method uses (inpainting, colorization or the general projection).
    let constraint: @Sendable (ConstraintConvention) throws -> any SamplingConstraint

    var posterior: FullCovarianceMixture { try! measurement.posterior(of: prior) }

    func run(_ method: InverseMethod, sde: VESDE, steps: Int = 500, count: Int, seed: UInt64) throws -> SamplingResult {
        let base = GaussianMixtureScore(prior, diffusedBy: sde)
        switch method {
        case .oracle:
            return try sampleVEPC(FullCovarianceMixtureScore(posterior, diffusedBy: sde), sde: sde, constraint: nil, steps: steps, count: count, seed: seed)
        case .replacePaper: return try sampleVEPC(base, sde: sde, constraint: constraint(.paper), steps: steps, count: count, seed: seed)
        case .replaceReference: return try sampleVEPC(base, sde: sde, constraint: constraint(.reference), steps: steps, count: count, seed: seed)
        case .repaint:
            return try sampleVEPC(base, sde: sde, constraint: constraint(.paper), resampling: Resampling(count: 4), steps: steps, count: count, seed: seed)
        case .repaintLong:
            let rj = (ProcessInfo.processInfo.environment["SCORESDE_MEASURE_REPAINT"] ?? "4,50").split(separator: ",").map { Int($0)! }
            return try sampleVEPC(base, sde: sde, constraint: constraint(.paper), resampling: Resampling(count: rj[0], jumpLength: rj[1]), steps: steps, count: count, seed: seed)
        case .pigdm:
            let v = FullCovarianceMixture(prior).covariance.enumerated().map { $0.1[$0.0] }.mean()
            let guided = try MeasurementGuidedScore(base: base, sde: sde, measurement: measurement, likelihood: .pseudoinverse(dataVariance: v))
            return try sampleVEPC(guided, sde: sde, constraint: nil, steps: steps, count: count, seed: seed)
        case .tweedie:
            let guided = try MeasurementGuidedScore(base: base, sde: sde, measurement: measurement, likelihood: .tweedieCovariance)
            return try sampleVEPC(guided, sde: sde, constraint: nil, steps: steps, count: count, seed: seed)
        case .dps:
            let guided = try MeasurementGuidedScore(base: base, sde: sde, measurement: measurement, likelihood: .dps(stepScale: 1))
            return try sampleVEPC(guided, sde: sde, constraint: nil, steps: steps, count: count, seed: seed)
        }
    }
}

/// Ring (8 modes, radius 4, std 0.25) with the x-coordinate known, x = 3.4: between mode 0 (4, 0)
/// and modes 1, 7 (2.83, ±2.83), so the posterior has three modes with weights ≈ 0.28 / 0.36 / 0.36.
let ringKnownX = InverseProblem(
    name: "ring, x = 3.4 known", prior: .ring(),
    measurement: try! LinearMeasurement(matrix: [[1, 0]], observation: [3.4]),
    constraint: { try Inpainting(known: [0], values: [3.4], dimension: 2, convention: $0) })

/// The asymmetric 2-D prior with x = 0 known (posterior weights 0.83 / 0.17 vs prior 0.5 / 0.5).
let asymmetricKnownX = InverseProblem(
    name: "asymmetric, x = 0 known", prior: asymmetricPrior,
    measurement: try! LinearMeasurement(matrix: [[1, 0]], observation: [0]),
    constraint: { try Inpainting(known: [0], values: [0], dimension: 2, convention: $0) })

/// Ring with the noise-free oblique measurement x + 0.5 y = 3.
let ringOblique = InverseProblem(
    name: "ring, x + 0.5y = 3", prior: .ring(),
    measurement: try! LinearMeasurement(matrix: [[1, 0.5]], observation: [3]),
    constraint: { try LinearMeasurementConstraint(LinearMeasurement(matrix: [[1, 0.5]], observation: [3]), convention: $0) })

/// Ring with x + 0.5 y = 3 observed with noise σ_y = 0.3.
let ringObliqueNoisy = InverseProblem(
    name: "ring, x + 0.5y = 3 ± 0.3", prior: .ring(),
    measurement: try! LinearMeasurement(matrix: [[1, 0.5]], observation: [3], noiseStd: 0.3),
    constraint: { try LinearMeasurementConstraint(LinearMeasurement(matrix: [[1, 0.5]], observation: [3], noiseStd: 0.3), convention: $0) })

/// Colorization of 3 × 2 × 2 images from the grey image of component 0's mean.
let colourImages = InverseProblem(
    name: "colorization 3×2×2", prior: colourImagePrior,
    measurement: try! Colorization(grey: Tensor(shape: [1, 2, 2], storage: colourImageGrey)).measurement(),
    constraint: { try Colorization(grey: Tensor(shape: [1, 2, 2], storage: colourImageGrey), convention: $0) })

let inverseProblems = [ringKnownX, asymmetricKnownX, ringOblique, ringObliqueNoisy, colourImages, ringKnownXNoisy]

@Suite("Inverse problems: bias measurements (opt-in)")
struct InverseProblemBiasMeasurements {
    /// Prints, per problem and method, the fit to the exact posterior (`SCORESDE_MEASURE_BIAS=1`;
    /// `SCORESDE_MEASURE_FILTER` selects problems by name, `SCORESDE_MEASURE_COUNT` the sample count).
    @Test("measure every method against the exact posterior (opt-in)", .enabled(if: measureBias))
    func measure() throws {
        let env = ProcessInfo.processInfo.environment
        let count = Int(env["SCORESDE_MEASURE_COUNT"] ?? "") ?? 20000
        let steps = Int(env["SCORESDE_MEASURE_STEPS"] ?? "") ?? 1000
        let methods = env["SCORESDE_MEASURE_METHODS"].map { f in InverseMethod.allCases.filter { "\($0)".contains(f) || f.contains("\($0)") } } ?? InverseMethod.allCases
        let sde = try VESDE()
        for problem in inverseProblems {
            if let f = env["SCORESDE_MEASURE_FILTER"], !problem.name.contains(f) { continue }
            for method in methods {
                let start = Date()
                let run = try problem.run(method, sde: sde, steps: steps, count: count, seed: 11)
                let fit = PosteriorFit(run.samples, truth: problem.posterior, prior: problem.prior)
                print(String(format: "FIT %@ | %@ | %.1fs NFE %d | ", problem.name, method.rawValue, Date().timeIntervalSince(start), run.scoreEvaluations) + fit.description)
            }
        }
    }
}

// MARK: - Validation against exact posteriors

/// Systematic error a method is allowed beyond Monte-Carlo noise, from the opt-in measurement
/// (`SCORESDE_MEASURE_BIAS=1 … SCORESDE_MEASURE_STEPS=500 SCORESDE_MEASURE_COUNT=20000`).
struct PosteriorAllowance: Sendable, CustomStringConvertible {
    /// On the total variation of the mode weights.
    var tv: Double
    /// On each component-mean coordinate.
    var mean: Double
    /// On each component-covariance entry.
    var covariance: Double
    /// A lower bound on the TV the method must show (documents a known bias), 0 for none.
    var knownTVBias: Double = 0
    var description: String { "allowance(tv \(tv), mean \(mean), cov \(covariance))" }
}

/// Checks samples against the exact posterior: TV of the mode weights ≤ allowance + 5·½Σσ_k
/// (σ_k binomial), each component-mean coordinate within allowance + 5·√(Σ_jj / n_k), each
/// covariance entry within allowance + 5·√((Σ_aa Σ_bb + Σ_ab²)/(n_k − 1)) (Gaussian sampling
/// variance), for components with posterior weight ≥ 0.05; and TV ≥ knownTVBias − 5·½Σσ_k.
func expectPosteriorFit(_ x: Tensor, _ problem: InverseProblem, _ allowance: PosteriorAllowance, _ label: String,
                        sourceLocation: SourceLocation = #_sourceLocation) {
    let truth = problem.posterior
    let fit = PosteriorFit(x, truth: truth, prior: problem.prior)
    let mc = zBound * fit.modeTVStandardError
    if !(fit.modeTV <= allowance.tv + mc) {
        Issue.record("\(label): mode TV \(fit.modeTV) > \(allowance.tv) + \(mc) — \(fit)", sourceLocation: sourceLocation)
    }
    if allowance.knownTVBias > 0, !(fit.modeTV >= allowance.knownTVBias - mc) {
        Issue.record("\(label): the documented mode-weight bias is gone: TV \(fit.modeTV) < \(allowance.knownTVBias) − \(mc) — \(fit)", sourceLocation: sourceLocation)
    }
    let d = truth.dimension
    for c in 0 ..< truth.componentCount where truth.weights[c] >= 0.05 {
        let nk = Double(fit.counts[c])
        guard nk >= 20 else {
            Issue.record("\(label): component \(c) (posterior weight \(truth.weights[c])) has only \(Int(nk)) samples", sourceLocation: sourceLocation)
            continue
        }
        let s = truth.covariances[c]
        for a in 0 ..< d {
            let tolM = allowance.mean + zBound * (max(s[a][a], 0) / nk).squareRoot()
            if !(abs(fit.means[c][a] - truth.means[c][a]) <= tolM) {
                Issue.record("\(label): component \(c) mean[\(a)] \(fit.means[c][a]) vs \(truth.means[c][a]) (tol \(tolM))", sourceLocation: sourceLocation)
            }
            for b in 0 ..< d {
                let tolC = allowance.covariance + zBound * ((s[a][a] * s[b][b] + s[a][b] * s[a][b]) / (nk - 1)).squareRoot()
                if !(abs(fit.covariances[c][a][b] - s[a][b]) <= tolC) {
                    Issue.record("\(label): component \(c) cov[\(a)][\(b)] \(fit.covariances[c][a][b]) vs \(s[a][b]) (tol \(tolC))", sourceLocation: sourceLocation)
                }
            }
        }
    }
}

/// One validation run: problem × method with its sample count and allowance.
struct PosteriorCase: Sendable, CustomTestStringConvertible {
    let problem: InverseProblem
    let method: InverseMethod
    let count: Int
    let allowance: PosteriorAllowance
    var testDescription: String { "\(problem.name) — \(method.rawValue)" }
}

/// Noisy inpainting: the ring's x-coordinate observed as 3.4 with noise 0.3.
let ringKnownXNoisy = InverseProblem(
    name: "ring, x = 3.4 ± 0.3", prior: .ring(),
    measurement: try! LinearMeasurement(matrix: [[1, 0]], observation: [3.4], noiseStd: 0.3),
    constraint: { try Inpainting(known: [0], values: [3.4], dimension: 2, noiseStd: 0.3, convention: $0) })

@Suite("Inverse problems: conditional samples vs exact posteriors")
struct InverseProblemPosteriorTests {
    /// VE (σ 0.01…50), N = 500, reverse diffusion + Langevin(0.16), eps 1e-5 (the reference's
    /// inpainting setting, half the steps). Allowances: the bias measured with 20 000 samples
    /// (seed 11, `InverseProblemBiasMeasurements`) plus ≈ 3 of that measurement's standard errors
    /// (TV ±0.003–0.005), rounded up. Measured mode-weight TV against the exact posterior:
    ///
    /// | problem | exact score | replace (paper) | replace (ref.) | RePaint 4×1 | RePaint 4×50 | ΠGDM | Tweedie | DPS ζ=1 |
    /// |---|---|---|---|---|---|---|---|---|
    /// | ring, x = 3.4            | 0.004 | 0.042 | 0.043 | 0.049 | 0.045 | 0.084 | 0.088 | 0.118 |
    /// | ring, x = 3.4 ± 0.3      | 0.005 | 0.012 | 0.011 | 0.019 | 0.013 | 0.049 | 0.050 | 0.086 |
    /// | asymmetric, x = 0        | 0.004 | 0.289 | 0.297 | 0.270 | 0.283 | 0.260 | 0.214 | 0.195 |
    /// | ring, x + y/2 = 3        | 0.002 | 0.267 | 0.272 | 0.188 | 0.200 | 0.292 | 0.194 | 0.383 |
    /// | ring, x + y/2 = 3 ± 0.3  | 0.002 | 0.206 | 0.211 | 0.136 | 0.148 | 0.250 | 0.199 | 0.304 |
    /// | colorization 3×2×2       | 0.001 | 0.306 | 0.305 | 0.300 | 0.302 | 0.310 | 0.285 | 0.335 |
    ///
    /// Replacement-type methods put the posterior mass on the modes compatible with `y` roughly in
    /// proportion to their *prior* weights: they miss the factor `N(y; A μ_k, A Σ_k Aᵀ)` that
    /// favours components narrow along the measured directions (asymmetric: 0.54 / 0.46 instead of
    /// 0.83 / 0.17; colorization: 0.37 / 0.38 / 0.26 instead of 0.35 / 0.09 / 0.56). Within a mode
    /// they are accurate (mean errors ≤ 0.007 except the oblique measurement, 0.03; covariance
    /// errors ≤ 0.007), as are ΠGDM and Tweedie guidance (≤ 0.014); DPS is off by 0.2–0.7.
    static let cases: [PosteriorCase] = [
        PosteriorCase(problem: ringKnownX, method: .oracle, count: 4000, allowance: PosteriorAllowance(tv: 0.015, mean: 0.01, covariance: 0.003)),
        PosteriorCase(problem: ringKnownX, method: .replacePaper, count: 4000, allowance: PosteriorAllowance(tv: 0.06, mean: 0.015, covariance: 0.004)),
        PosteriorCase(problem: ringKnownX, method: .replaceReference, count: 4000, allowance: PosteriorAllowance(tv: 0.06, mean: 0.015, covariance: 0.004)),
        PosteriorCase(problem: ringKnownX, method: .repaintLong, count: 3000, allowance: PosteriorAllowance(tv: 0.065, mean: 0.015, covariance: 0.004)),
        PosteriorCase(problem: asymmetricKnownX, method: .replacePaper, count: 4000, allowance: PosteriorAllowance(tv: 0.31, mean: 0.015, covariance: 0.01, knownTVBias: 0.25)),
        PosteriorCase(problem: asymmetricKnownX, method: .tweedie, count: 1500, allowance: PosteriorAllowance(tv: 0.235, mean: 0.015, covariance: 0.005, knownTVBias: 0.15)),
        PosteriorCase(problem: ringKnownXNoisy, method: .replacePaper, count: 4000, allowance: PosteriorAllowance(tv: 0.03, mean: 0.012, covariance: 0.006)),
        PosteriorCase(problem: ringOblique, method: .replacePaper, count: 4000, allowance: PosteriorAllowance(tv: 0.29, mean: 0.045, covariance: 0.01, knownTVBias: 0.2)),
        PosteriorCase(problem: ringOblique, method: .pigdm, count: 2000, allowance: PosteriorAllowance(tv: 0.31, mean: 0.015, covariance: 0.006, knownTVBias: 0.2)),
        PosteriorCase(problem: ringObliqueNoisy, method: .replacePaper, count: 4000, allowance: PosteriorAllowance(tv: 0.225, mean: 0.012, covariance: 0.006, knownTVBias: 0.15)),
        PosteriorCase(problem: ringObliqueNoisy, method: .repaint, count: 2000, allowance: PosteriorAllowance(tv: 0.155, mean: 0.012, covariance: 0.006)),
        PosteriorCase(problem: colourImages, method: .replacePaper, count: 3000, allowance: PosteriorAllowance(tv: 0.325, mean: 0.008, covariance: 0.002, knownTVBias: 0.25)),
        PosteriorCase(problem: colourImages, method: .replaceReference, count: 3000, allowance: PosteriorAllowance(tv: 0.325, mean: 0.008, covariance: 0.002, knownTVBias: 0.25)),
    ]

    /// Cases whose mode weights carry a known bias of 0.15–0.25 (TV allowances 0.22–0.33) run half
    /// their samples: the TV check is decided by the bias, not the Monte-Carlo error (±0.02 at 2000
    /// samples), and the mean and covariance checks are by far less sensitive to the
    /// within-mode errors than the other cases'.
    @Test("mode weights, component means and covariances within the measured bias of each method", arguments: cases)
    func posteriorFit(_ c: PosteriorCase) throws {
        let run = try c.problem.run(c.method, sde: try VESDE(), count: c.allowance.knownTVBias > 0 ? c.count / 2 : c.count, seed: 21)
        expectPosteriorFit(run.samples, c.problem, c.allowance, c.testDescription)
    }
}

// MARK: - The sampler hook

/// A constraint that does nothing (and draws nothing).
struct NoOpConstraint: SamplingConstraint {
    func apply(_ x: inout Tensor, mean: inout Tensor, context: ConstraintContext, using rng: inout RandomSource) throws {}
}

/// Records the phases and times the sampler applies a constraint at.
final class PhaseLog: @unchecked Sendable {
    var entries: [(ConstraintPhase, Double, Double)] = []
}
struct RecordingConstraint: SamplingConstraint {
    let log: PhaseLog
    func apply(_ x: inout Tensor, mean: inout Tensor, context: ConstraintContext, using rng: inout RandomSource) throws {
        log.entries.append((context.phase, context.time, context.updateTime))
    }
}

enum HookPredictor: String, CaseIterable, Sendable { case em = "EM", rd = "RD", ancestral = "AS", none = "none" }
enum HookCorrector: String, CaseIterable, Sendable { case none, langevin = "Langevin", ald = "ALD" }
struct HookCombo: Sendable, CustomTestStringConvertible {
    let vp: Bool, predictor: HookPredictor, corrector: HookCorrector
    var testDescription: String { "\(vp ? "VP" : "VE") \(predictor.rawValue) + \(corrector.rawValue)" }
}

/// Inpainting run with any predictor × corrector on VE or VP.
func inpaint(_ combo: HookCombo, constraint: any SamplingConstraint, prior: GaussianMixture, count: Int, steps: Int, seed: UInt64) throws -> Tensor {
    func with<S: AncestralSamplable>(_ sde: S, eps: Double) throws -> Tensor {
        let grid = try TimeGrid.uniform(steps: steps, from: 1, to: eps)
        let score = GaussianMixtureScore(prior, diffusedBy: sde)
        func go<P: Predictor>(_ p: P) throws -> Tensor {
            var rng = RandomSource(seed: seed)
            switch combo.corrector {
            case .none:
                return try PCSampler(sde: sde, score: score, grid: grid, predictor: p, corrector: NoCorrector(), constraint: constraint).sample(count: count, using: &rng).samples
            case .langevin:
                return try PCSampler(sde: sde, score: score, grid: grid, predictor: p, corrector: try Langevin(snr: 0.16), constraint: constraint).sample(count: count, using: &rng).samples
            case .ald:
                return try PCSampler(sde: sde, score: score, grid: grid, predictor: p, corrector: try AnnealedLangevin(snr: 0.16, steps: 2), constraint: constraint).sample(count: count, using: &rng).samples
            }
        }
        switch combo.predictor {
        case .em: return try go(EulerMaruyama())
        case .rd: return try go(ReverseDiffusion())
        case .ancestral: return try go(AncestralSampling(for: sde))
        case .none: return try go(NoPredictor())
        }
    }
    return combo.vp ? try with(try VPSDE(), eps: 1e-3) : try with(try VESDE(), eps: 1e-5)
}

@Suite("Inverse problems: the sampler hook")
struct InverseProblemHookTests {
    @Test("a constraint that does nothing leaves sampling bit-identical (the hook adds no draws)")
    func noOpIsTransparent() throws {
        let sde = try VESDE()
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let grid = try TimeGrid.uniform(steps: 100, from: 1, to: 1e-5)
        for order in PCOrder.allCases {
            for denoising in FinalDenoising.allCases {
                var a = RandomSource(seed: 4), b = RandomSource(seed: 4)
                let plain = try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(),
                                          order: order, denoising: denoising).sample(count: 300, using: &a)
                let hooked = try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(),
                                           order: order, denoising: denoising, constraint: NoOpConstraint()).sample(count: 300, using: &b)
                #expect(plain.samples == hooked.samples, "\(order) \(denoising)")
                #expect(plain.scoreEvaluations == hooked.scoreEvaluations)
            }
        }
    }

    @Test("the hook runs at the start and after every corrector and predictor update, with state and update times")
    func phasesAndTimes() throws {
        let sde = try VESDE()
        let grid = try TimeGrid.uniform(steps: 4, from: 1, to: 0.1)
        let log = PhaseLog()
        var rng = RandomSource(seed: 1)
        _ = try PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), grid: grid, predictor: ReverseDiffusion(),
                          corrector: try Langevin(), constraint: RecordingConstraint(log: log)).sample(count: 8, using: &rng)
        let t = grid.times
        var expected: [(ConstraintPhase, Double, Double)] = [(.start, t[0], t[0])]
        for i in 0 ..< 4 { expected += [(.corrector, t[i], t[i]), (.predictor, t[i + 1], t[i])] }
        #expect(log.entries.count == expected.count)
        for (e, x) in zip(log.entries, expected) { #expect(e.0 == x.0 && e.1 == x.1 && e.2 == x.2) }
        // RePaint: blocks of 2 intervals run twice, a jump between runs; Tweedie: the final phase.
        let log2 = PhaseLog()
        _ = try PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), grid: grid, predictor: ReverseDiffusion(),
                          corrector: NoCorrector(), denoising: .tweedie, constraint: RecordingConstraint(log: log2),
                          resampling: try Resampling(count: 2, jumpLength: 2)).sample(count: 8, using: &rng)
        let phases = log2.entries.map(\.0)
        #expect(phases == [.start, .corrector, .predictor, .corrector, .predictor, .jump, .corrector, .predictor, .corrector, .predictor,
                           .corrector, .predictor, .jump, .corrector, .predictor, .corrector, .final])
        let jumps = log2.entries.filter { $0.0 == .jump }
        #expect(jumps[0].1 == t[0] && jumps[0].2 == t[2])
        #expect(jumps[1].1 == t[2] && jumps[1].2 == t[3])
    }

    @Test("inpainting works with every predictor × corrector (VE and VP): known coordinates exact, samples on the posterior's modes",
          arguments: [false, true].flatMap { vp in HookPredictor.allCases.flatMap { p in HookCorrector.allCases.compactMap { c in
              p == .none && c == .none ? nil : HookCombo(vp: vp, predictor: p, corrector: c) } } })
    func everyPredictorAndCorrector(_ combo: HookCombo) throws {
        let constraint = try Inpainting(known: [0], values: [3.4], dimension: 2)
        let n = measureBias ? 20_000 : 1000
        let x = try inpaint(combo, constraint: constraint, prior: .ring(), count: n, steps: 200, seed: 3)
        var worst = 0.0
        for r in 0 ..< x.rows { worst = max(worst, abs(x.storage[2 * r] - 3.4)) }
        #expect(worst < 1e-12, "known coordinate off by \(worst)")
        #expect(x.isFinite)
        // Posterior modes 0, 1, 7 only. Corrector-only sampling with the SNR-adaptive Langevin step
        // does not converge in 200 levels (NCSN uses annealed Langevin, many steps per level): only
        // exactness is checked there.
        guard !(combo.predictor == .none && combo.corrector == .langevin) else { return }
        let fit = PosteriorFit(x, truth: ringKnownX.posterior, prior: .ring())
        if measureBias { print("[bias] inpainting \(combo): mode TV \(fit.modeTV) at n = \(n)") }
        #expect(Double(fit.counts[0] + fit.counts[1] + fit.counts[7]) >= 0.99 * Double(n), "\(fit)")
        // Mode weights against the exact posterior: TV = ½ Σ|n_k/n − w_k| ≤ ½ Σ 5 √(w_k(1 − w_k)/n)
        // (each weight at 5 standard errors) plus the bias of replacement sampling (it conditions
        // on a noisy copy of the known coordinate, REFERENCE 1.11), measured per combination with
        // 20 000 samples (SCORESDE_MEASURE_BIAS=1; 1σ of those measurements ≈ 0.005) + 2σ.
        let w = ringKnownX.posterior.weights
        let mc = 0.5 * w.reduce(0) { $0 + zBound * ($1 * (1 - $1) / Double(n)).squareRoot() }
        #expect(fit.modeTV <= mc + Self.tvBias(combo), "\(fit) (band \(mc) + bias \(Self.tvBias(combo)))")
    }

    /// Mode-TV bias of 200-level replacement inpainting on ringKnownX, measured with 20 000 samples
    /// (seed 3): predictors alone 0.004–0.011, with Langevin or annealed Langevin 0.031–0.037,
    /// annealed Langevin alone 0.020 (VE) and 0.167 (VP: 200 levels are too few for it); each
    /// allowance is the largest of its group + 2σ of the measurement (≈ 0.004), rounded up.
    static func tvBias(_ combo: HookCombo) -> Double {
        if combo.predictor == .none { return combo.vp ? 0.18 : 0.03 }
        return combo.corrector == .none ? 0.02 : 0.045
    }

    @Test("reference x_mean quirk: the returned unknown coordinates keep the last step's noise; paper: they are the update's mean")
    func referenceMeanQuirk() throws {
        let sde = try VESDE()
        let grid = try TimeGrid.uniform(steps: 200, from: 1, to: 1e-5)
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        func run(_ c: ConstraintConvention, _ d: FinalDenoising) throws -> Tensor {
            var rng = RandomSource(seed: 8)
            return try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(), denoising: d,
                                 constraint: try Inpainting(known: [0], values: [3.4], dimension: 2, convention: c)).sample(count: 500, using: &rng).samples
        }
        let refMean = try run(.reference, .lastPredictorMean), refNoisy = try run(.reference, .none)
        let paperMean = try run(.paper, .lastPredictorMean), paperNoisy = try run(.paper, .none)
        var refDiff = 0.0, paperDiff = 0.0
        for r in 0 ..< 500 {
            refDiff = max(refDiff, abs(refMean.storage[2 * r + 1] - refNoisy.storage[2 * r + 1]))
            paperDiff += (paperMean.storage[2 * r + 1] - paperNoisy.storage[2 * r + 1]) * (paperMean.storage[2 * r + 1] - paperNoisy.storage[2 * r + 1])
            #expect(refMean.storage[2 * r] == 3.4 && paperMean.storage[2 * r] == 3.4)
        }
        #expect(refDiff == 0)
        // Paper: the difference is the last reverse-diffusion noise, std G = σ_min = 0.01.
        let rms = (paperDiff / 500).squareRoot()
        #expect(abs(rms - 0.01) < 0.002, "rms \(rms)")
    }

    @Test("Tweedie denoising with a constraint returns the observation in the known coordinates")
    func tweedieFinal() throws {
        let sde = try VPSDE()
        var rng = RandomSource(seed: 2)
        let x = try PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), grid: try .uniform(steps: 200, from: 1, to: 1e-3),
                              predictor: EulerMaruyama(), corrector: NoCorrector(), denoising: .tweedie,
                              constraint: try Inpainting(known: [1], values: [-2], dimension: 2)).sample(count: 200, using: &rng).samples
        for r in 0 ..< 200 { #expect(x.storage[2 * r + 1] == -2) }
    }

    @Test("noise-free linear measurement: the returned samples satisfy A x = y; per-sample observations")
    func linearMeasurementExact() throws {
        let sde = try VESDE()
        let obs = try Tensor(shape: [300, 1], storage: (0 ..< 300).map { Double($0 % 3) })   // one observation per sample
        let ms = try LinearMeasurement(matrix: [[1, 0.5]], observation: obs)
        var rng = RandomSource(seed: 5)
        let x = try PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), grid: try .uniform(steps: 200, from: 1, to: 1e-5),
                              predictor: ReverseDiffusion(), corrector: try Langevin(), constraint: LinearMeasurementConstraint(ms)).sample(count: 300, using: &rng).samples
        let ax = try ms.apply(x)
        for r in 0 ..< 300 { #expect(abs(ax.storage[r] - Double(r % 3)) < 1e-12) }
    }

    @Test("colorization: the reference matrix is orthonormal with grey gain √3; outputs reproduce the grey image")
    func colorizationMechanics() throws {
        let m = ColorMixing.reference
        #expect(abs(m.greyGain - 3.0.squareRoot()) < 1e-6)
        let grey = try Tensor(shape: [1, 2, 2], storage: colourImageGrey)
        let sde = try VESDE()
        var rng = RandomSource(seed: 6)
        let x = try PCSampler(sde: sde, score: GaussianMixtureScore(colourImagePrior, diffusedBy: sde), grid: try .uniform(steps: 200, from: 1, to: 1e-5),
                              predictor: ReverseDiffusion(), corrector: try Langevin(), constraint: try Colorization(grey: grey)).sample(count: 200, using: &rng).samples
        for r in 0 ..< 200 {
            for p in 0 ..< 4 {
                let g = (x.storage[r * 12 + p] + x.storage[r * 12 + 4 + p] + x.storage[r * 12 + 8 + p]) / 3
                #expect(abs(g - colourImageGrey[p]) < 1e-6)
            }
        }
        // Colorization is the projection of the equivalent linear measurement.
        let ms = try Colorization(grey: grey).measurement()
        #expect(ms.measurements == 4 && ms.dimension == 12)
        #expect(abs(ms.observation.storage[0] - colourImageGrey[0] * m.greyGain) < 1e-15)
    }

    @Test("the hook works with a learned model (MLP): inpainting and Tweedie-moment guidance run and stay finite")
    func learnedModel() throws {
        let sde = try VPSDE()
        let model = try MLPScore(architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 16, residualBlocks: 1, fourierFeatures: 8),
                                 sde: try SDESpec(sde), seed: 1)
        let grid = try TimeGrid.uniform(steps: 50, from: 1, to: 1e-3)
        var rng = RandomSource(seed: 1)
        let x = try PCSampler(sde: sde, score: model, grid: grid, predictor: EulerMaruyama(), corrector: try Langevin(),
                              constraint: try Inpainting(known: [0], values: [0.5], dimension: 2)).sample(count: 64, using: &rng).samples
        for r in 0 ..< 64 { #expect(x.storage[2 * r] == 0.5) }
        let guided = try MeasurementGuidedScore(base: model, sde: sde, measurement: try LinearMeasurement(matrix: [[1, 1]], observation: [0.3], noiseStd: 0.1))
        let y = try PCSampler(sde: sde, score: guided, grid: grid, predictor: EulerMaruyama(), corrector: NoCorrector()).sample(count: 64, using: &rng)
        #expect(y.samples.isFinite)
        #expect(y.scoreEvaluations == 50)
    }
}

// MARK: - Guidance

@Suite("Guidance: classifier and classifier-free")
struct GuidanceTests {
    /// The ring with classes k mod 2: class 0 = the even modes.
    static let labels = [0, 1, 0, 1, 0, 1, 0, 1]

    @Test("the exact mixture classifier: w = 1 gives the class-restricted score; probabilities sum to 1; gradient = ∇ log p_t(y|x)",
          arguments: SDEKind.allCases)
    func classifierExactness(_ kind: SDEKind) throws {
        let sde = kind.sde, ring = GaussianMixture.ring()
        let classifier = try GaussianMixtureClassifier(ring, diffusedBy: sde, labels: Self.labels, target: 0)
        let guided = ClassifierGuidedScore(base: GaussianMixtureScore(ring, diffusedBy: sde), classifier: classifier)
        let restricted = GaussianMixtureScore(try ring.restricted(to: [0, 2, 4, 6]), diffusedBy: sde)
        let x = tensor([[0.3, 4.2], [3, 3], [-4, 0.5], [10, -7], [0, 0]])
        for t in [0.02, 0.2, 0.6, 1.0] {
            let a = try guided.score(x, at: t), b = try restricted.score(x, at: t)
            for i in 0 ..< a.count { #expect(abs(a.storage[i] - b.storage[i]) < 1e-9 * max(1, abs(b.storage[i])), "t \(t) i \(i)") }
            let p = try classifier.classProbabilities(x, at: t)
            for row in p { #expect(abs(row.reduce(0, +) - 1) < 1e-12) }
            // Finite differences of log p_t(y = 0 | x).
            let g = try classifier.logLikelihoodGradient(x, at: t)
            let h = 1e-6
            for r in 0 ..< 3 {
                for j in 0 ..< 2 {
                    var xp = x, xm = x
                    xp.storage[2 * r + j] += h; xm.storage[2 * r + j] -= h
                    let fd = (log(try classifier.classProbabilities(xp, at: t)[r][0]) - log(try classifier.classProbabilities(xm, at: t)[r][0])) / (2 * h)
                    #expect(abs(fd - g.storage[2 * r + j]) < 1e-5 * max(1, abs(fd)))
                }
            }
        }
    }

    @Test("classifier guidance with w = 1 samples the class-conditional mixture (VE, RD + Langevin)")
    func classifierGuidedSampling() throws {
        let sde = try VESDE(), ring = GaussianMixture.ring()
        let guided = ClassifierGuidedScore(base: GaussianMixtureScore(ring, diffusedBy: sde),
                                           classifier: try GaussianMixtureClassifier(ring, diffusedBy: sde, labels: Self.labels, target: 1))
        var rng = RandomSource(seed: 12)
        let run = try PCSampler(sde: sde, score: guided, grid: try .uniform(steps: 1000, from: 1, to: 1e-5), predictor: ReverseDiffusion(),
                                corrector: try Langevin(snr: 0.16)).sample(count: 4000, using: &rng)
        // Same sampler biases as unconditional sampling of the restricted mixture (SamplerTests).
        expectMatches(run.samples, truthAtEps(try ring.restricted(to: [1, 3, 5, 7]), .ve, eps: 1e-5),
                      bias: BiasAllowance(weight: 0.003, mean: 0.005, variance: 0.037), "classifier-guided class 1")
    }

    @Test("classifier-free guidance: w = 0 is the conditional model (and samples it); w > 0 is (1+w) s_c − w s_u")
    func classifierFree() throws {
        let sde = try VPSDE(), ring = GaussianMixture.ring()
        let conditional = GaussianMixtureScore(try ring.restricted(to: [0, 2, 4, 6]), diffusedBy: sde)
        let unconditional = GaussianMixtureScore(ring, diffusedBy: sde)
        let x = tensor([[0.3, 4.2], [3, 3], [-4, 0.5]])
        for w in [0.0, 1.0, 3.5] {
            let cfg = ClassifierFreeGuidance(conditional: conditional, unconditional: unconditional, scale: w)
            let a = try cfg.score(x, at: 0.3), c = try conditional.score(x, at: 0.3), u = try unconditional.score(x, at: 0.3)
            for i in 0 ..< a.count { #expect(abs(a.storage[i] - ((1 + w) * c.storage[i] - w * u.storage[i])) < 1e-12) }
            let v = tensor([[1, 0], [0, 1], [0.5, -0.5]])
            let (_, jv) = try cfg.scoreAndJVP(x, at: 0.3, direction: v)
            let jc = try conditional.scoreAndJVP(x, at: 0.3, direction: v).jvp, ju = try unconditional.scoreAndJVP(x, at: 0.3, direction: v).jvp
            for i in 0 ..< jv.count { #expect(abs(jv.storage[i] - ((1 + w) * jc.storage[i] - w * ju.storage[i])) < 1e-12) }
        }
        var rng = RandomSource(seed: 13)
        let run = try PCSampler(sde: sde, score: ClassifierFreeGuidance(conditional: conditional, unconditional: unconditional, scale: 0),
                                grid: try .uniform(steps: 1000, from: 1, to: 1e-3), predictor: EulerMaruyama(), corrector: NoCorrector())
            .sample(count: 4000, using: &rng)
        expectMatches(run.samples, truthAtEps(try ring.restricted(to: [0, 2, 4, 6]), .vp, eps: 1e-3),
                      bias: BiasAllowance(weight: 0.003, mean: 0.005, variance: 0.008), "CFG w = 0")
    }

    @Test("DPS guidance moves samples onto the measurement (residual much smaller than unguided)")
    func dpsReducesResidual() throws {
        let sde = try VESDE()
        let base = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let ms = try LinearMeasurement(matrix: [[1, 0.5]], observation: [3])
        let grid = try TimeGrid.uniform(steps: 300, from: 1, to: 1e-5)
        var rng = RandomSource(seed: 14)
        let guided = try PCSampler(sde: sde, score: MeasurementGuidedScore(base: base, sde: sde, measurement: ms, likelihood: .dps(stepScale: 1)),
                                   grid: grid, predictor: ReverseDiffusion(), corrector: NoCorrector()).sample(count: 500, using: &rng).samples
        var rng2 = RandomSource(seed: 14)
        let plain = try PCSampler(sde: sde, score: base, grid: grid, predictor: ReverseDiffusion(), corrector: NoCorrector()).sample(count: 500, using: &rng2).samples
        func rms(_ x: Tensor) throws -> Double {
            let ax = try ms.apply(x)
            return (ax.storage.map { ($0 - 3) * ($0 - 3) }.mean()).squareRoot()
        }
        let g = try rms(guided), u = try rms(plain)
        #expect(g < 0.25 * u, "guided \(g) vs unguided \(u)")
    }

    /// One observation per sample survives a sampler's batch split (``ScoreBatch``): each call
    /// guides its rows towards their own observations, so a split run gives the bytes of the unsplit
    /// one (an exact mixture score: no kernel choice depends on the batch size), and the observations
    /// matter (shuffled ones give other samples).
    @Test("DPS with per-sample observations: any batch size gives the same bytes")
    func perSampleObservationsWithAnyBatchSize() throws {
        let sde = try VESDE()
        let base = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let n = 10
        let ys = (0 ..< n).map { Double($0) - 4.5 }
        func run(_ observations: [Double], batchSize: Int?) throws -> Tensor {
            let ms = try LinearMeasurement(matrix: [[1, 0.5]], observation: Tensor(shape: [n, 1], storage: observations))
            var rng = RandomSource(seed: 15)
            return try PCSampler(sde: sde, score: MeasurementGuidedScore(base: base, sde: sde, measurement: ms, likelihood: .dps(stepScale: 1)),
                                 grid: try .uniform(steps: 50, from: 1, to: 1e-5), predictor: ReverseDiffusion(), corrector: NoCorrector(),
                                 batchSize: batchSize).sample(count: n, using: &rng).samples
        }
        let whole = try run(ys, batchSize: nil)
        #expect(try run(ys, batchSize: 3).storage == whole.storage, "4 calls of 3, 3, 3, 1 rows")
        #expect(try run(ys, batchSize: 7).storage == whole.storage)
        #expect(try run(ys.reversed(), batchSize: 3).storage != whole.storage, "the observations matter")
        // Outside a split call a row-count mismatch is still refused.
        let ms = try LinearMeasurement(matrix: [[1, 0.5]], observation: Tensor(shape: [n, 1], storage: ys))
        let guided = try MeasurementGuidedScore(base: base, sde: sde, measurement: ms, likelihood: .dps(stepScale: 1))
        #expect(throws: ScoreSDEError.self) { _ = try guided.score(Tensor(zeros: [3, 2]), at: 0.5) }
    }
}

// MARK: - Bad input

@Suite("Inverse problems: bad input")
struct InverseProblemBadInputTests {
    func sampler(_ constraint: any SamplingConstraint, dimension: Int = 2) throws -> (Tensor) throws -> Void {
        let sde = try VESDE()
        let prior = dimension == 2 ? GaussianMixture.ring() : colourImagePrior
        let s = PCSampler(sde: sde, score: GaussianMixtureScore(prior, diffusedBy: sde), grid: try .uniform(steps: 5, from: 1, to: 1e-5),
                          predictor: ReverseDiffusion(), corrector: NoCorrector(), constraint: constraint)
        return { x in var rng = RandomSource(seed: 1); _ = try s.sample(from: x, using: &rng) }
    }

    @Test("mask and observation: wrong shape, values other than 0/1, non-finite values, wrong row counts")
    func inpaintingInput() throws {
        let y = tensor([[1, 2]])
        #expect(throws: ScoreSDEError.self) { _ = try Inpainting(observation: y, mask: tensor([[1, 0, 1]])) }
        if case .invalidArgument(let m)? = scoreSDEError({ _ = try Inpainting(observation: y, mask: tensor([[1, 0.5]])) }) {
            #expect(m.contains("0") && m.contains("1"))
        } else { Issue.record("a 0.5 mask entry must be an invalid argument") }
        if case .nonFinite? = scoreSDEError({ _ = try Inpainting(observation: tensor([[.nan, 2]]), mask: tensor([[1, 0]])) }) {} else { Issue.record("NaN observation") }
        if case .nonFinite? = scoreSDEError({ _ = try Inpainting(observation: y, mask: tensor([[.infinity, 0]])) }) {} else { Issue.record("Inf mask") }
        #expect(throws: ScoreSDEError.self) { _ = try Inpainting(observation: y, mask: tensor([[1, 0]]), noiseStd: -0.1) }
        #expect(throws: ScoreSDEError.self) { _ = try Inpainting(known: [2], values: [1], dimension: 2) }
        #expect(throws: ScoreSDEError.self) { _ = try Inpainting(known: [0, 0], values: [1, 1], dimension: 2) }
        // Shapes checked against the samples when sampling starts.
        let run3 = try sampler(try Inpainting(observation: tensor([[1, 2, 3]]), mask: tensor([[1, 0, 0]])))
        if case .shapeMismatch? = scoreSDEError({ try run3(Tensor(zeros: [4, 2])) }) {} else { Issue.record("3-value mask on 2-D samples") }
        let run2rows = try sampler(try Inpainting(observation: tensor([[1, 2], [3, 4]]), mask: tensor([[1, 0]])))
        if case .shapeMismatch? = scoreSDEError({ try run2rows(Tensor(zeros: [4, 2])) }) {} else { Issue.record("2 observation rows for 4 samples") }
        let ok = try sampler(try Inpainting(observation: tensor([[1, 2], [3, 4], [5, 6], [7, 8]]), mask: tensor([[1, 0]])))
        try ok(Tensor(zeros: [4, 2]))
    }

    @Test("measurement matrix: ragged, too many rows, dependent rows, wrong column count, observation size, NaN")
    func linearInput() throws {
        #expect(throws: ScoreSDEError.self) { _ = try LinearMeasurement(matrix: [[1, 0], [1]], observation: [1, 2]) }
        #expect(throws: ScoreSDEError.self) { _ = try LinearMeasurement(matrix: [[1, 0], [0, 1], [1, 1]], observation: [1, 2, 3]) }
        if case .invalidArgument(let m)? = scoreSDEError({ _ = try LinearMeasurement(matrix: [[1, 2], [2, 4]], observation: [1, 2]) }) {
            #expect(m.contains("linearly dependent"))
        } else { Issue.record("dependent rows") }
        #expect(throws: ScoreSDEError.self) { _ = try LinearMeasurement(matrix: [[1, 0]], observation: [1, 2]) }
        if case .nonFinite? = scoreSDEError({ _ = try LinearMeasurement(matrix: [[1, .nan]], observation: [1]) }) {} else { Issue.record("NaN in A") }
        if case .nonFinite? = scoreSDEError({ _ = try LinearMeasurement(matrix: [[1, 0]], observation: [.infinity]) }) {} else { Issue.record("Inf observation") }
        let wide = try LinearMeasurement(matrix: [[1, 0, 0]], observation: [1])
        let run = try sampler(LinearMeasurementConstraint(wide))
        if case .shapeMismatch? = scoreSDEError({ try run(Tensor(zeros: [4, 2])) }) {} else { Issue.record("3 columns for 2-D samples") }
        let sde = try VESDE()
        if case .shapeMismatch? = scoreSDEError({
            _ = try MeasurementGuidedScore(base: GaussianMixtureScore(.ring(), diffusedBy: sde), sde: sde, measurement: wide)
        }) {} else { Issue.record("guided score with a misfit A") }
        #expect(throws: ScoreSDEError.self) {
            _ = try MeasurementGuidedScore(base: GaussianMixtureScore(.ring(), diffusedBy: sde), sde: sde,
                                           measurement: try LinearMeasurement(matrix: [[1, 0]], observation: [1]), likelihood: .pseudoinverse(dataVariance: 0))
        }
        // One observation per sample and a batch split that would misalign rows.
        let perRow = try LinearMeasurement(matrix: [[1, 0]], observation: Tensor(shape: [4, 1], storage: [1, 2, 3, 4]))
        let guided = try MeasurementGuidedScore(base: GaussianMixtureScore(.ring(), diffusedBy: sde), sde: sde, measurement: perRow)
        if case .shapeMismatch? = scoreSDEError({ _ = try guided.score(Tensor(zeros: [2, 2]), at: 0.5) }) {} else { Issue.record("row mismatch") }
    }

    @Test("colorization: non-orthonormal or non-square mixing matrix, grey image size, NaN")
    func colorizationInput() throws {
        if case .invalidParameter(let p)? = scoreSDEError({ _ = try ColorMixing([[1, 0, 0], [0, 1, 0], [0, 0, 2]]) }) {
            #expect(p.name == "matrix" && p.requirement.contains("orthonormal"))
        } else { Issue.record("a non-orthonormal matrix must be an invalid parameter") }
        if case .shapeMismatch? = scoreSDEError({ _ = try ColorMixing([[1, 0, 0], [0, 1, 0]]) }) {} else { Issue.record("non-square") }
        if case .nonFinite? = scoreSDEError({ _ = try ColorMixing([[.nan, 0], [0, 1]]) }) {} else { Issue.record("NaN mixing") }
        // Orthonormal but the grey axis is orthogonal to column 0: no information.
        let s = 1 / 2.0.squareRoot()
        #expect(throws: ScoreSDEError.self) { _ = try Colorization(grey: tensor([[0.5]]), mixing: try ColorMixing([[s, s], [-s, s]])) }
        if case .nonFinite? = scoreSDEError({ _ = try Colorization(grey: tensor([[.nan, 0.5]])) }) {} else { Issue.record("NaN grey") }
        let run = try sampler(try Colorization(grey: Tensor(zeros: [1, 3])), dimension: 12)
        if case .shapeMismatch? = scoreSDEError({ try run(Tensor(zeros: [2, 12])) }) {} else { Issue.record("3 grey pixels for 4-pixel images") }
        // Any orthonormal matrix is accepted (here a permutation-and-sign one).
        _ = try ColorMixing([[0, 1, 0], [0, 0, -1], [1, 0, 0]])
    }

    @Test("guidance and resampling parameters")
    func guidanceInput() throws {
        let sde = try VESDE(), ring = GaussianMixture.ring()
        #expect(throws: ScoreSDEError.self) { _ = try GaussianMixtureClassifier(ring, diffusedBy: sde, labels: [0, 1], target: 0) }
        #expect(throws: ScoreSDEError.self) { _ = try GaussianMixtureClassifier(ring, diffusedBy: sde, labels: GuidanceTests.labels, target: 5) }
        let guided = ClassifierGuidedScore(base: GaussianMixtureScore(ring, diffusedBy: sde),
                                           classifier: try GaussianMixtureClassifier(ring, diffusedBy: sde, labels: GuidanceTests.labels, target: 0), scale: .nan)
        #expect(throws: ScoreSDEError.self) { _ = try guided.score(tensor([[0, 0]]), at: 0.5) }
        let wrong = ClassifierGuidedScore(base: GaussianMixtureScore(ring, diffusedBy: sde), classifier: ClosureClassifier { x, _ in Tensor(zeros: [x.rows, 3]) })
        if case .shapeMismatch? = scoreSDEError({ _ = try wrong.score(tensor([[0, 0]]), at: 0.5) }) {} else { Issue.record("classifier gradient shape") }
        #expect(throws: ScoreSDEError.self) { _ = try Resampling(count: 0) }
        #expect(throws: ScoreSDEError.self) { _ = try Resampling(count: 2, jumpLength: 0) }
    }
}

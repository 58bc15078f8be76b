import Foundation
import Testing
@testable import ScoreSDE

// Shared statistics helpers for the closed-form tests. Every bound used by the tests is built from
// these standard errors; nothing here compares against numbers printed by the library itself.

/// Number of standard errors a Monte-Carlo estimate may deviate before a test fails. With fixed seeds
/// the outcome is deterministic; 5σ (two-sided p ≈ 5.7e-7 per check) keeps the chance that a *correct*
/// implementation fails any of the few thousand checks of the suite below 1e-3.
let zBound = 5.0

/// Whether the slow bias-measurement runs are requested (`SCORESDE_MEASURE_BIAS=1 swift test ...`).
let measureBias = ProcessInfo.processInfo.environment["SCORESDE_MEASURE_BIAS"] != nil

/// Standard normal CDF, Φ(x) = ½ erfc(−x/√2).
func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }

/// Standard normal density.
func normalPDF(_ x: Double) -> Double { exp(-0.5 * x * x) / (2 * Double.pi).squareRoot() }

/// Sample mean, variance (n − 1), skewness and excess kurtosis (moment estimators).
struct Moments {
    let n: Int, mean: Double, variance: Double, skewness: Double, excessKurtosis: Double
    init(_ v: [Double]) {
        n = v.count
        let nd = Double(n)
        // Kahan-free two-pass: fine for 1e6 values of order 1.
        mean = v.reduce(0, +) / nd
        var m2 = 0.0, m3 = 0.0, m4 = 0.0
        for x in v { let d = x - mean, d2 = d * d; m2 += d2; m3 += d2 * d; m4 += d2 * d2 }
        m2 /= nd; m3 /= nd; m4 /= nd
        variance = m2 * nd / (nd - 1)
        skewness = m3 / (m2 * m2.squareRoot())
        excessKurtosis = m4 / (m2 * m2) - 3
    }
}

/// Kolmogorov–Smirnov statistic `sup |F_n − F|` of `values` against `cdf`.
func ksStatistic(_ values: [Double], cdf: (Double) -> Double) -> Double {
    let s = values.sorted()
    let n = Double(s.count)
    var d = 0.0
    for (i, x) in s.enumerated() {
        let f = cdf(x)
        d = max(d, f - Double(i) / n, Double(i + 1) / n - f)
    }
    return d
}

/// Pearson correlation of two equally long series.
func correlation(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    let ma = a.reduce(0, +) / Double(a.count), mb = b.reduce(0, +) / Double(b.count)
    var sab = 0.0, saa = 0.0, sbb = 0.0
    for i in 0 ..< a.count {
        let da = a[i] - ma, db = b[i] - mb
        sab += da * db; saa += da * da; sbb += db * db
    }
    return sab / (saa * sbb).squareRoot()
}

/// The `ScoreSDEError` thrown by `body` (nil when it throws nothing or another error type).
func scoreSDEError(_ body: () throws -> Void) -> ScoreSDEError? {
    do { try body(); return nil } catch let e as ScoreSDEError { return e } catch { return nil }
}

/// The message of an `invalidArgument` thrown by `body`, nil otherwise.
func invalidArgumentText(_ body: () throws -> Void) -> String? {
    if case .invalidArgument(let m)? = scoreSDEError(body) { return m }
    return nil
}

/// The parameter of an `invalidParameter` thrown by `body`, nil otherwise.
func invalidParameter(_ body: () throws -> Void) -> InvalidParameter? {
    if case .invalidParameter(let p)? = scoreSDEError(body) { return p }
    return nil
}

/// The description of an `invalidParameter` thrown by `body` ("name must be ... (got value)"), nil otherwise.
func invalidParameterText(_ body: () throws -> Void) -> String? { invalidParameter(body)?.description }

/// Tensor of the given rows.
func tensor(_ rows: [[Double]]) -> Tensor { try! Tensor(rows: rows) }

// MARK: - Mode statistics of 2-D (or D-dim) mixture samples

/// Per-mode statistics of samples assigned to the nearest component mean of `truth`.
struct ModeStatistics {
    let n: Int
    let counts: [Int]
    let means: [[Double]]
    /// Per-mode sample covariance (n_k − 1 denominator), D × D.
    let covariances: [[[Double]]]
    /// Σ_k Σ_{i∈k} ‖x_i − x̄_k‖² / σ_k², divided by the degrees of freedom D Σ_k (n_k − 1):
    /// the pooled within-mode variance in units of the true variance (isotropic components).
    let pooledVarianceRatio: Double
    let pooledDegreesOfFreedom: Double

    init(_ x: Tensor, truth: GaussianMixture) {
        let d = truth.dimension, k = truth.componentCount
        n = x.rows
        var counts = [Int](repeating: 0, count: k)
        var sums = [[Double]](repeating: [Double](repeating: 0, count: d), count: k)
        var members = [[Int]](repeating: [], count: k)
        for r in 0 ..< x.rows {
            let row = x.row(r)
            var best = 0, bestD = Double.infinity
            for c in 0 ..< k {
                var q = 0.0
                for j in 0 ..< d { let e = row[j] - truth.means[c][j]; q += e * e }
                if q < bestD { bestD = q; best = c }
            }
            counts[best] += 1
            members[best].append(r)
            for j in 0 ..< d { sums[best][j] += row[j] }
        }
        let means = (0 ..< k).map { c in sums[c].map { $0 / Double(max(counts[c], 1)) } }
        var covs = [[[Double]]]()
        var pooled = 0.0, dof = 0.0
        for c in 0 ..< k {
            var cov = [[Double]](repeating: [Double](repeating: 0, count: d), count: d)
            for r in members[c] {
                let row = x.row(r)
                for a in 0 ..< d { for b in 0 ..< d { cov[a][b] += (row[a] - means[c][a]) * (row[b] - means[c][b]) } }
            }
            let denom = Double(max(counts[c] - 1, 1))
            cov = cov.map { $0.map { $0 / denom } }
            covs.append(cov)
            let s2 = truth.stds[c][0] * truth.stds[c][0]
            var tr = 0.0
            for a in 0 ..< d { tr += cov[a][a] }
            pooled += tr * denom / s2
            dof += Double(d) * denom
        }
        self.counts = counts; self.means = means; self.covariances = covs
        pooledVarianceRatio = pooled / dof
        pooledDegreesOfFreedom = dof
    }

    /// Largest |weight_k − π_k|.
    func maxWeightError(_ truth: GaussianMixture) -> Double {
        zip(counts, truth.weights).map { abs(Double($0) / Double(n) - $1) }.max()!
    }

    /// Largest |x̄_kj − μ_kj| (absolute units).
    func maxMeanError(_ truth: GaussianMixture) -> Double {
        zip(means, truth.means).map { m, mu in zip(m, mu).map { abs($0 - $1) }.max()! }.max()!
    }

    /// Count-weighted mean of (x̄_k − μ_k)·μ_k/|μ_k|: a radial shift of all modes (in or out), with
    /// standard error σ/√n — the most sensitive summary of a mean bias on the ring.
    func radialBias(_ truth: GaussianMixture) -> Double {
        var acc = 0.0
        for c in 0 ..< counts.count {
            let mu = truth.means[c], r = mu.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard r > 0 else { continue }
            acc += Double(counts[c]) * zip(means[c], mu).reduce(0) { $0 + ($1.0 - $1.1) * $1.1 / r }
        }
        return acc / Double(n)
    }

    /// Largest |S_k,jj / σ_k² − 1| over modes and coordinates.
    func maxVarianceRatioError(_ truth: GaussianMixture) -> Double {
        (0 ..< counts.count).map { c in
            let s2 = truth.stds[c][0] * truth.stds[c][0]
            return (0 ..< truth.dimension).map { abs(covariances[c][$0][$0] / s2 - 1) }.max()!
        }.max()!
    }
}

/// Allowances for a sampler's systematic (discretization) error, added to the Monte-Carlo bounds.
struct BiasAllowance: CustomStringConvertible {
    /// Absolute error allowed on each mode weight.
    var weight: Double = 0
    /// Absolute error allowed on each mode-mean coordinate.
    var mean: Double = 0
    /// Relative error allowed on each (per-mode and pooled) variance.
    var variance: Double = 0
    var description: String { "bias allowance (weight \(weight), mean \(mean), variance \(variance))" }
}

/// Checks samples against a mixture with well-separated isotropic components: mode weights
/// (binomial), per-mode means (σ_k/√n_k), per-mode covariances (Var S_jj = 2σ⁴/(n_k−1),
/// Var S_01 = σ⁴/(n_k−1) for independent Gaussian coordinates) and the pooled variance
/// (Var = 2/dof), each at `zBound` standard errors plus the stated bias allowance.
/// Returns the violated checks (empty when the samples pass).
func mixtureViolations(_ x: Tensor, _ truth: GaussianMixture, bias: BiasAllowance, checkCovariances: Bool = true) -> [String] {
    var out = [String]()
    let st = ModeStatistics(x, truth: truth)
    let n = Double(st.n), d = truth.dimension
    for c in 0 ..< truth.componentCount {
        let w = truth.weights[c], nk = Double(st.counts[c])
        let tolW = zBound * (w * (1 - w) / n).squareRoot() + bias.weight
        if !(abs(nk / n - w) <= tolW) { out.append("mode \(c) weight \(nk / n) vs \(w) (tol \(tolW))") }
        guard nk >= 10 else { continue }
        let s = truth.stds[c][0], s2 = s * s
        for j in 0 ..< d {
            let tolM = zBound * s / nk.squareRoot() + bias.mean
            if !(abs(st.means[c][j] - truth.means[c][j]) <= tolM) {
                out.append("mode \(c) mean[\(j)] \(st.means[c][j]) vs \(truth.means[c][j]) (tol \(tolM))")
            }
        }
        guard checkCovariances else { continue }
        for a in 0 ..< d {
            for b in 0 ..< d {
                let v = st.covariances[c][a][b]
                if a == b {
                    let tol = zBound * s2 * (2 / (nk - 1)).squareRoot() + bias.variance * s2
                    if !(abs(v - s2) <= tol) { out.append("mode \(c) var[\(a)] \(v) vs \(s2) (tol \(tol))") }
                } else {
                    let tol = zBound * s2 / (nk - 1).squareRoot()
                    if !(abs(v) <= tol) { out.append("mode \(c) cov[\(a),\(b)] \(v) vs 0 (tol \(tol))") }
                }
            }
        }
    }
    if checkCovariances {
        let tolP = zBound * (2 / st.pooledDegreesOfFreedom).squareRoot() + bias.variance
        if !(abs(st.pooledVarianceRatio - 1) <= tolP) {
            out.append("pooled variance ratio \(st.pooledVarianceRatio) vs 1 (tol \(tolP))")
        }
    }
    return out
}

/// Records every violated check of `mixtureViolations` as a test issue.
func expectMatches(_ x: Tensor, _ truth: GaussianMixture, bias: BiasAllowance, _ label: String,
                   checkCovariances: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) {
    for v in mixtureViolations(x, truth, bias: bias, checkCovariances: checkCovariances) {
        Issue.record("\(label): \(v)", sourceLocation: sourceLocation)
    }
}

/// With SCORESDE_MEASURE_BIAS set: prints the largest weight and mean-coordinate errors and the
/// pooled-variance bias of `x` against `truth` (the measurement behind a test's BiasAllowance).
func reportBias(_ x: Tensor, _ truth: GaussianMixture, _ label: String) {
    guard measureBias else { return }
    let st = ModeStatistics(x, truth: truth)
    print("[bias] \(label): n \(st.n), max |Δweight| \(st.maxWeightError(truth)), max |Δmean| \(st.maxMeanError(truth)), pooled variance ratio − 1 \(st.pooledVarianceRatio - 1) (1σ \((2 / st.pooledDegreesOfFreedom).squareRoot()))")
}

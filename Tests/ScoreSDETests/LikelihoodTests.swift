import Foundation
import Testing
@testable import ScoreSDE

// Likelihoods against closed-form truth. For Gaussian-mixture data every p_t is again a mixture
// (`GaussianMixtureScore.logDensity(x, at: t)`), so log p_eps(x) is known exactly, and with
// `terminalLogDensity` = the exact log p_T the probability-flow likelihood is exact up to the ODE
// solver's error. The bounds below are therefore integration-error bounds, and each one is paired
// with a check that the error shrinks when the tolerance does (which a systematic error would not).
//
// Integration-error bound (`integrationBounds`, per row): GSL's controller keeps every step's local
// error estimate below atol + rtol·|y_i| in every component (here atol = rtol = tol). The
// log-likelihood error is the accumulated local error of the conserved quantity
// log p_t(x(t)) − Δlogp(t): per step, the Δ component contributes ≤ tol·(1 + |Δ|) and the state
// components contribute s·δx with |δx_i| ≤ tol·(1 + |x_i|), which for a Gaussian-like p_t is
// ≈ tol·|x|²/σ² ≈ 2·tol·|log p|. Summed over the steps of the row's system:
//     |error_r| ≤ C · tol · steps_r · (1 + |log p_eps(x_r)| + |Δ_r|),   C = 3
// (|log p_T(z)| ≤ |log p_eps| + |Δ| covers the terminal end). Measured with rkf45 over ring, gmm64
// and far-off points for all three SDEs: the ratio error / (tol·steps·(1 + |log p| + |Δ|)) is at
// most 0.45 (tol 1e-5) and 0.29 (tol 1e-7), so C = 3 leaves a factor ≥ 6. In nats the largest
// errors are ~1e-3 on data points and ~1e-2 on outliers with log p ≈ −430 at tol 1e-5, and ~100×
// smaller at tol 1e-7; a wrong divergence sign, factor or time direction gives errors of order |Δ|.

/// The three SDEs with the reference's parameters, and their marginals written out here
/// (independently of the library) for the reconstructions below.
enum LikelihoodSDEKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case ve, vp, subVP
    var testDescription: String { rawValue }

    var sde: any ForwardSDE {
        switch self {
        case .ve: return try! VESDE()
        case .vp: return try! VPSDE()
        case .subVP: return try! SubVPSDE()
        }
    }

    /// Prior standard deviation: σ_max = 50 (VE), 1 (VP, sub-VP).
    var priorStd: Double { self == .ve ? 50 : 1 }
}

/// Measured numbers are printed with `SCORESDE_REPORT=1 swift test ...`.
private func report(_ line: @autoclosure () -> String) {
    if ProcessInfo.processInfo.environment["SCORESDE_REPORT"] != nil { print(line()) }
}

private func rkf45(_ tol: Double) -> ODESolverOptions {
    ODESolverOptions(.rkf45, absoluteTolerance: tol, relativeTolerance: tol)
}

/// Right-hand-side evaluations per attempted step of rkf45 (5 stages + the end-of-step derivative).
private let rkf45EvaluationsPerStep = 6

/// Attempted steps of each row's system (rkf45); the batch layout has one system for all rows.
private func stepsPerRow(_ s: ODERunStatistics, rows: Int) -> [Int] {
    let perSystem = s.evaluationsPerSystem.map { max(1, $0 / rkf45EvaluationsPerStep) }
    return perSystem.count == rows ? perSystem : Array(repeating: perSystem.max() ?? 1, count: rows)
}

/// See the file header.
private func integrationBounds(tol: Double, _ r: LikelihoodResult, truth: [Double]) -> [Double] {
    let steps = stepsPerRow(r.statistics, rows: truth.count)
    return (0 ..< truth.count).map { i in 3 * tol * Double(steps[i]) * (1 + abs(truth[i]) + abs(r.deltaLogP[i])) }
}

/// Rows whose error exceeds its bound, as a message (nil: all within).
private func rowsOutOfBounds(_ values: [Double], _ truth: [Double], _ bounds: [Double]) -> String? {
    let bad = (0 ..< truth.count).filter { abs(values[$0] - truth[$0]) > bounds[$0] }
    guard !bad.isEmpty else { return nil }
    return bad.prefix(5).map { "row \($0): error \(abs(values[$0] - truth[$0])) > \(bounds[$0])" }.joined(separator: "; ")
}

/// Ring samples plus points off the data distribution (between modes, at the centre, far out).
private func ringData(_ n: Int, seed: UInt64) -> Tensor {
    var rng = RandomSource(seed: seed)
    let off = tensor([[0, 0], [2.5, 1.5], [8, -8], [0, 6]])
    return try! Tensor.concatenating([GaussianMixture.ring().sample(count: n, using: &rng), off])
}

/// gmm64 samples plus the origin, twice a mean, and the midpoint of two means.
private func gmm64Data(_ n: Int, seed: UInt64) -> Tensor {
    let g = GaussianMixture.gaussian64()
    var rng = RandomSource(seed: seed)
    let off = tensor([[Double](repeating: 0, count: 64),
                      g.means[0].map { 2 * $0 },
                      zip(g.means[0], g.means[1]).map { ($0 + $1) / 2 }])
    return try! Tensor.concatenating([g.sample(count: n, using: &rng), off])
}

private func maxAbsDifference(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// log N(z; 0, σ² I) per row, written out.
private func gaussianPriorLogDensity(_ z: Tensor, std: Double) -> [Double] {
    let d = Double(z.rowSize)
    return (0 ..< z.rows).map { r in
        let q = z.row(r).reduce(0) { $0 + $1 * $1 }
        return -0.5 * d * log(2 * Double.pi * std * std) - q / (2 * std * std)
    }
}

/// The exact likelihood run: `terminalLogDensity` = exact log p_T, so the result should be log p_eps.
private func exactRun<S: ForwardSDE>(_ sde: S, _ mixture: GaussianMixture, _ x: Tensor, tol: Double,
                                     layout: ODESystemLayout, exactTerminal: Bool = true,
                                     convention: BitsPerDimConvention = .continuous) throws
    -> (result: LikelihoodResult, truth: [Double], score: GaussianMixtureScore) {
    let score = GaussianMixtureScore(mixture, diffusedBy: sde)
    var terminal: (@Sendable (Tensor) throws -> [Double])? = nil
    if exactTerminal { terminal = { try score.logDensity($0, at: sde.T) } }
    let ll = Likelihood(sde: sde, score: score, estimator: .exact, eps: 1e-5, solver: rkf45(tol), layout: layout,
                        convention: convention, terminalLogDensity: terminal)
    var rng = RandomSource(seed: 0)
    let r = try ll.evaluate(x, using: &rng)
    return (r, try score.logDensity(x, at: 1e-5), score)
}

// MARK: - Test models

/// The mixture's exact score with Jacobian–vector products only (no closed-form divergence), so the
/// exact estimator has to assemble the divergence from D JVPs.
private struct JVPOnlyMixtureScore: ScoreJacobianProviding {
    let inner: GaussianMixtureScore
    var rowShape: [Int]? { inner.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { try inner.score(x, at: t) }
    func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor) throws -> (score: Tensor, jvp: Tensor) {
        try inner.scoreAndJVP(x, at: t, direction: v)
    }
}

/// The mixture's score with neither divergence nor JVPs.
private struct ScoreOnlyMixture: ScoreModel {
    let inner: GaussianMixtureScore
    var rowShape: [Int]? { inner.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { try inner.score(x, at: t) }
}

/// Largest number of rows the model was called with.
private final class RowLog: @unchecked Sendable {
    private let lock = NSLock()
    private var maxRows = 0
    func record(_ n: Int) { lock.lock(); maxRows = max(maxRows, n); lock.unlock() }
    var largest: Int { lock.lock(); defer { lock.unlock() }; return maxRows }
}

/// The mixture score that logs its batch sizes.
private struct RowLoggingMixture: ScoreJacobianProviding, ScoreDivergenceProviding {
    let inner: GaussianMixtureScore
    let log: RowLog
    var rowShape: [Int]? { inner.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { log.record(x.rows); return try inner.score(x, at: t) }
    func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor) throws -> (score: Tensor, jvp: Tensor) {
        log.record(x.rows); return try inner.scoreAndJVP(x, at: t, direction: v)
    }
    func scoreAndDivergence(_ x: Tensor, at t: Double) throws -> (score: Tensor, divergence: [Double]) {
        log.record(x.rows); return try inner.scoreAndDivergence(x, at: t)
    }
}

private struct ModelFailure: Error, CustomStringConvertible {
    var description: String { "the test model failed on purpose" }
}

/// The mixture score whose divergence throws for t > 0.5.
private struct ThrowingDivergenceMixture: ScoreDivergenceProviding {
    let inner: GaussianMixtureScore
    var rowShape: [Int]? { inner.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { try inner.score(x, at: t) }
    func scoreAndDivergence(_ x: Tensor, at t: Double) throws -> (score: Tensor, divergence: [Double]) {
        if t > 0.5 { throw ModelFailure() }
        return try inner.scoreAndDivergence(x, at: t)
    }
}

// MARK: - Exact likelihood

@Suite("Likelihood: exact divergence vs closed form")
struct LikelihoodExactTests {
    /// log p_eps from the ODE equals the closed form within the integration bound, for ring and gmm64
    /// data plus off-distribution points, in both layouts; tightening the tolerance 100× shrinks the
    /// error by more than 10× (it is integration error, not a systematic one).
    @Test(arguments: LikelihoodSDEKind.allCases)
    func matchesClosedForm(_ kind: LikelihoodSDEKind) throws {
        let sde = kind.sde
        let sets: [(String, GaussianMixture, Tensor)] = [
            ("ring", .ring(), ringData(96, seed: 1)),
            ("gmm64", .gaussian64(), gmm64Data(128, seed: 2)),
        ]
        for (name, mixture, x) in sets {
            var errors: [Double: Double] = [:]
            for tol in [1e-5, 1e-7] {
                let (r, truth, _) = try exactRun(sde, mixture, x, tol: tol, layout: .batch)
                let err = maxAbsDifference(r.logLikelihood, truth)
                let failures = rowsOutOfBounds(r.logLikelihood, truth, integrationBounds(tol: tol, r, truth: truth))
                #expect(failures == nil, "\(kind) \(name) batch tol \(tol): \(failures ?? "")")
                errors[tol] = err
                report("[likelihood] \(kind) \(name) batch rkf45 tol \(tol): max error \(err) nats over \(x.rows) points, NFE \(r.scoreEvaluations)")
            }
            #expect(errors[1e-7]! <= errors[1e-5]! / 10,
                    "\(kind) \(name): error did not shrink with the tolerance (\(errors[1e-5]!) at 1e-5, \(errors[1e-7]!) at 1e-7)")
            #expect(errors[1e-5]! > 0, "an exact zero error means the test compares a quantity with itself")

            // Per-sample layout (fewer gmm64 rows: one solve per row).
            let xs = name == "gmm64" ? x.rows(x.rows - 35 ..< x.rows) : x
            let truth = try GaussianMixtureScore(mixture, diffusedBy: sde).logDensity(xs, at: 1e-5)
            var perSampleErrors = [Double]()
            for tol in [1e-5, 1e-7] {
                let (r, _, _) = try exactRun(sde, mixture, xs, tol: tol, layout: .perSample)
                let err = maxAbsDifference(r.logLikelihood, truth)
                let failures = rowsOutOfBounds(r.logLikelihood, truth, integrationBounds(tol: tol, r, truth: truth))
                #expect(failures == nil, "\(kind) \(name) perSample tol \(tol): \(failures ?? "")")
                #expect(r.statistics.evaluationsPerSystem.count == xs.rows)
                perSampleErrors.append(err)
                report("[likelihood] \(kind) \(name) perSample rkf45 tol \(tol): max error \(err) nats over \(xs.rows) points, NFE \(r.scoreEvaluations)")
            }
            #expect(perSampleErrors[1] <= perSampleErrors[0] / 10, "\(kind) \(name) perSample: \(perSampleErrors)")
        }
    }

    /// Without `terminalLogDensity` the prior stands in for p_T: the solve is the same, and the result
    /// differs from the truth by exactly log prior(z) − log p_T(z), reconstructed here.
    @Test(arguments: LikelihoodSDEKind.allCases)
    func priorAsTerminalDensity(_ kind: LikelihoodSDEKind) throws {
        let sde = kind.sde
        for (name, mixture, x) in [("ring", GaussianMixture.ring(), ringData(64, seed: 3)),
                                   ("gmm64", GaussianMixture.gaussian64(), gmm64Data(64, seed: 4))] {
            let (exact, truth, score) = try exactRun(sde, mixture, x, tol: 1e-5, layout: .batch)
            let (prior, _, _) = try exactRun(sde, mixture, x, tol: 1e-5, layout: .batch, exactTerminal: false)
            // The terminal density is applied after the solve: same latents, same Δlogp, bit for bit.
            #expect(prior.latents == exact.latents)
            #expect(prior.deltaLogP == exact.deltaLogP)
            let z = prior.latents
            let logPrior = gaussianPriorLogDensity(z, std: kind.priorStd)
            let logPT = try score.logDensity(z, at: sde.T)
            // priorLogDensity is the prior's; logLikelihood = priorLogDensity + Δlogp.
            #expect(maxAbsDifference(prior.priorLogDensity, logPrior) <= 1e-9 * (1 + logPrior.map(abs).max()!))
            #expect(maxAbsDifference(exact.priorLogDensity, logPT) == 0)
            #expect(prior.logLikelihood == zip(prior.priorLogDensity, prior.deltaLogP).map(+))
            // Identity between the two runs: rounding only.
            let mismatch = zip(logPrior, logPT).map(-)
            let runDifference = zip(prior.logLikelihood, exact.logLikelihood).map(-)
            #expect(maxAbsDifference(runDifference, mismatch) <= 1e-9)
            // And against the truth: the mismatch plus integration error.
            let bounds = integrationBounds(tol: 1e-5, exact, truth: truth)
            let corrected = zip(prior.logLikelihood, mismatch).map(-)
            let failures = rowsOutOfBounds(corrected, truth, bounds)
            #expect(failures == nil, "\(kind) \(name): \(failures ?? "")")
            // The identity is not vacuous: ignoring the mismatch would leave an error of |mismatch|, far
            // above the integration error actually present (VE: prior N(0, 50² I) vs p_T with means ~1.5
            // in 64-D; VP / sub-VP: tiny but still above the integration error on most rows).
            let integrationError = maxAbsDifference(exact.logLikelihood, truth)
            if kind == .ve {
                #expect(mismatch.map(abs).max()! > 10 * integrationError,
                        "\(kind) \(name): mismatch \(mismatch.map(abs).max()!) vs integration error \(integrationError)")
            }
        }
    }

    /// Exact divergence from D Jacobian–vector products equals the closed-form divergence run.
    @Test func divergenceThroughJVPs() throws {
        for kind in LikelihoodSDEKind.allCases {
            try compareJVPDivergence(kind.sde, kind, "ring", .ring(), ringData(32, seed: 5))
            if kind == .vp { try compareJVPDivergence(kind.sde, kind, "gmm64", .gaussian64(), gmm64Data(13, seed: 6)) }
        }
    }

    private func compareJVPDivergence<S: ForwardSDE>(_ sde: S, _ kind: LikelihoodSDEKind, _ name: String,
                                                     _ mixture: GaussianMixture, _ x: Tensor) throws {
        let score = GaussianMixtureScore(mixture, diffusedBy: sde)
        let terminal: @Sendable (Tensor) throws -> [Double] = { try score.logDensity($0, at: sde.T) }
        var rng = RandomSource(seed: 0)
        let closed = try Likelihood(sde: sde, score: score, estimator: .exact, eps: 1e-5, solver: rkf45(1e-5),
                                    terminalLogDensity: terminal).evaluate(x, using: &rng)
        let viaJVP = try Likelihood(sde: sde, score: JVPOnlyMixtureScore(inner: score), estimator: .exact, eps: 1e-5,
                                    solver: rkf45(1e-5), terminalLogDensity: terminal).evaluate(x, using: &rng)
        // Same ODE, divergences equal to rounding (~1e-13): the step sequences coincide and the
        // results agree far below the integration error (~1e-4 here).
        let diff = maxAbsDifference(closed.logLikelihood, viaJVP.logLikelihood)
        #expect(diff <= 1e-8, "\(kind) \(name): JVP vs closed-form divergence differ by \(diff)")
        #expect(viaJVP.statistics.integrator.rightHandSideEvaluations == closed.statistics.integrator.rightHandSideEvaluations)
        report("[likelihood] \(kind) \(name): exact divergence via JVPs vs closed form: max difference \(diff)")
    }
}

// MARK: - Hutchinson

/// Points where the score's Jacobian has sizeable off-diagonal entries along the flow (between ring
/// modes), so that even Rademacher probes have a clearly nonzero variance. (On a mode on an axis the
/// Jacobian is nearly diagonal and the Rademacher estimate is exact: no information.)
private let hutchinsonPoints = tensor([[2.5, 1.5], [-1, 3], [0.5, -2], [3, -3]])

@Suite("Likelihood: Hutchinson estimator")
struct LikelihoodHutchinsonTests {
    /// Solver tolerance for the Hutchinson runs: integration error ≤ ~2e-4 nats (ring, tol 1e-5, see the
    /// exact suite), while the estimator's standard deviation at these points is ≥ 0.49 nats, so the
    /// standard error of a 200-run mean (≥ 0.035) is > 100× the integration error.
    static let tolerance = 1e-5

    private func runs(_ estimator: DivergenceEstimator, count: Int, firstSeed: UInt64) throws -> [[Double]] {
        let sde = try VESDE()
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let ll = Likelihood(sde: sde, score: score, estimator: estimator, eps: 1e-5, solver: rkf45(Self.tolerance),
                            terminalLogDensity: { try score.logDensity($0, at: sde.T) })
        var out = [[Double]](repeating: [], count: hutchinsonPoints.rows)
        for s in 0 ..< UInt64(count) {
            var rng = RandomSource(seed: firstSeed + s)
            let r = try ll.evaluate(hutchinsonPoints, using: &rng)
            for i in 0 ..< hutchinsonPoints.rows { out[i].append(r.logLikelihood[i]) }
        }
        return out
    }

    /// Mean of 200 single-probe runs within 4 standard errors (+ integration allowance) of the exact
    /// result; K = 16 probes: unbiased too, and variance ≈ variance(1 probe)/16.
    @Test(arguments: ["rademacher", "gaussian"])
    func unbiasedAndVarianceScalesAsOneOverK(_ kind: String) throws {
        let sde = try VESDE()
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        var rng = RandomSource(seed: 0)
        let exact = try Likelihood(sde: sde, score: score, estimator: .exact, eps: 1e-5, solver: rkf45(Self.tolerance),
                                   terminalLogDensity: { try score.logDensity($0, at: sde.T) })
            .evaluate(hutchinsonPoints, using: &rng)
        let k = 16
        let one: DivergenceEstimator = kind == "gaussian" ? .gaussian(probes: 1) : .rademacher(probes: 1)
        let many: DivergenceEstimator = kind == "gaussian" ? .gaussian(probes: k) : .rademacher(probes: k)
        let n1 = 200, nk = 100
        let single = try runs(one, count: n1, firstSeed: 1000)
        let multi = try runs(many, count: nk, firstSeed: 5000)
        // Integration allowance: the largest ring error at tol 1e-5 measured in the exact suite was
        // 4.3e-4 nats; 1e-3 covers it (and is < 3% of the smallest standard error here).
        let integration = 1e-3
        for i in 0 ..< hutchinsonPoints.rows {
            let m1 = Moments(single[i]), mk = Moments(multi[i])
            let se1 = (m1.variance / Double(n1)).squareRoot(), sek = (mk.variance / Double(nk)).squareRoot()
            #expect(se1 > 30 * integration, "point \(i): standard error \(se1) too small for the test to mean anything")
            #expect(abs(m1.mean - exact.logLikelihood[i]) <= 4 * se1 + integration,
                    "\(kind) point \(i): mean \(m1.mean) vs exact \(exact.logLikelihood[i]) (SE \(se1))")
            #expect(abs(mk.mean - exact.logLikelihood[i]) <= 4 * sek + integration,
                    "\(kind) K=\(k) point \(i): mean \(mk.mean) vs exact \(exact.logLikelihood[i]) (SE \(sek))")
            // The x-trajectory does not depend on the probes, so a K-probe estimate is the mean of K
            // single-probe estimates: Var_K = Var_1 / K. Band for log(K·S_K² / S_1²): Var(log S²) ≈
            // 2/(n−1) + κ/n (κ = excess kurtosis, estimated; κ_K = κ_1/K), at 5 standard deviations.
            // A K-probe estimator that reused one probe would give a ratio of K = 16 (log 2.77); the
            // band must exclude that with room to spare.
            let kappa1 = m1.excessKurtosis, kappaK = mk.excessKurtosis
            let v1 = max(2 / Double(n1 - 1) + kappa1 / Double(n1), 0), vk = max(2 / Double(nk - 1) + kappaK / Double(nk), 0)
            let logRatio = log(Double(k) * mk.variance / m1.variance)
            let band = 5 * (v1 + vk).squareRoot()
            #expect(abs(logRatio) <= band,
                    "\(kind) point \(i): K·Var_K/Var_1 = \(exp(logRatio)), allowed [\(exp(-band)), \(exp(band))]")
            #expect(band < 0.7 * log(Double(k)), "band \(band) too wide to tell Var/K from Var")
        }
    }

    /// Same seed → the same estimate; batch and per-sample layouts give each row the same probes
    /// (equal to integration tolerance), while another seed changes the estimate by far more.
    @Test(arguments: ["rademacher", "gaussian"])
    func probesAreTiedToSeedAndRow(_ kind: String) throws {
        let estimator: DivergenceEstimator = kind == "gaussian" ? .gaussian(probes: 2) : .rademacher(probes: 2)
        for (name, mixture, x) in [("ring", GaussianMixture.ring(), hutchinsonPoints),
                                   ("gmm64", GaussianMixture.gaussian64(), gmm64Data(5, seed: 10))] {
            let sde = try VPSDE()
            let score = GaussianMixtureScore(mixture, diffusedBy: sde)
            func run(_ layout: ODESystemLayout, seed: UInt64) throws -> LikelihoodResult {
                var rng = RandomSource(seed: seed)
                return try Likelihood(sde: sde, score: score, estimator: estimator, eps: 1e-5, solver: rkf45(1e-6),
                                      layout: layout).evaluate(x, using: &rng)
            }
            let a = try run(.batch, seed: 77), b = try run(.batch, seed: 77)
            #expect(a.logLikelihood == b.logLikelihood, "\(name): same seed, different estimates")
            let p = try run(.perSample, seed: 77)
            // Each run is within its integration bound of the (same) exact-probe solution.
            let bounds = zip(integrationBounds(tol: 1e-6, a, truth: a.logLikelihood),
                             integrationBounds(tol: 1e-6, p, truth: a.logLikelihood)).map(+)
            let failures = rowsOutOfBounds(p.logLikelihood, a.logLikelihood, bounds)
            #expect(failures == nil, "\(kind) \(name): batch vs per-sample: \(failures ?? "")")
            // A row given another row's probes would move like a change of seed, by far more than that.
            let other = try run(.batch, seed: 78)
            let seedMove = maxAbsDifference(a.logLikelihood, other.logLikelihood)
            let layoutMove = maxAbsDifference(a.logLikelihood, p.logLikelihood)
            #expect(seedMove > 100 * layoutMove, "\(kind) \(name): seed moved \(seedMove), layout \(layoutMove)")
        }
    }
}

// MARK: - Bits per dimension, bookkeeping

@Suite("Likelihood: bits/dim and bookkeeping")
struct LikelihoodBookkeepingTests {
    /// bits/dim = −log p / (D ln 2) + offset, offsets 0 (continuous), 8 ([0, 1]), 7 ([−1, 1]).
    @Test func bitsPerDimension() throws {
        let offsets: [(BitsPerDimConvention, Double)] = [(.continuous, 0), (.unitInterval, 8), (.symmetric, 7)]
        for (convention, offset) in offsets {
            #expect(convention.offset == offset)
            for (mixture, x) in [(GaussianMixture.ring(), ringData(16, seed: 11)), (GaussianMixture.gaussian64(), gmm64Data(8, seed: 12))] {
                let (r, _, _) = try exactRun(try VPSDE(), mixture, x, tol: 1e-5, layout: .batch, convention: convention)
                #expect(r.convention == convention)
                let d = Double(x.rowSize)
                for (bpd, ll) in zip(r.bitsPerDim, r.logLikelihood) {
                    let expected = -ll / (d * log(2.0)) + offset
                    #expect(abs(bpd - expected) <= 1e-12 * max(1, abs(expected)), "\(convention): \(bpd) vs \(expected)")
                }
            }
        }
    }

    /// The batch split (`batchSize`) bounds the rows of every model call and never changes results.
    @Test func batchSizeBoundsModelCalls() throws {
        let sde = try VPSDE()
        let x = ringData(28, seed: 13)
        let inner = GaussianMixtureScore(.ring(), diffusedBy: sde)
        for estimator in [DivergenceEstimator.exact, .rademacher(probes: 1)] {
            let log = RowLog()
            var rng = RandomSource(seed: 1)
            let whole = try Likelihood(sde: sde, score: inner, estimator: estimator, eps: 1e-5, solver: rkf45(1e-5))
                .evaluate(x, using: &rng)
            rng = RandomSource(seed: 1)
            let split = try Likelihood(sde: sde, score: RowLoggingMixture(inner: inner, log: log), estimator: estimator,
                                       eps: 1e-5, solver: rkf45(1e-5), batchSize: 8).evaluate(x, using: &rng)
            #expect(log.largest <= 8, "\(estimator): batchSize 8, but the model was called with \(log.largest) rows")
            #expect(split.logLikelihood == whole.logLikelihood, "\(estimator)")
        }
    }

    /// `scoreEvaluations` as documented: "each JVP or divergence evaluation counts as one" —
    /// one per right-hand side for a closed-form divergence, D per right-hand side for the exact
    /// estimator through JVPs, K per right-hand side with K Hutchinson probes.
    @Test func scoreEvaluationCount() throws {
        let sde = try VESDE()
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let x = ringData(8, seed: 14)
        func run(_ model: some ScoreModel, _ estimator: DivergenceEstimator) throws -> LikelihoodResult {
            var rng = RandomSource(seed: 2)
            return try Likelihood(sde: sde, score: model, estimator: estimator, eps: 1e-5, solver: rkf45(1e-5)).evaluate(x, using: &rng)
        }
        let closed = try run(score, .exact)
        let rhs = closed.statistics.integrator.rightHandSideEvaluations
        #expect(rhs > 0)
        #expect(closed.scoreEvaluations == rhs)
        #expect(closed.statistics.evaluationsPerSystem == [rhs])
        let jvp = try run(JVPOnlyMixtureScore(inner: score), .exact)
        #expect(jvp.scoreEvaluations == 2 * jvp.statistics.integrator.rightHandSideEvaluations,
                "exact divergence through D = 2 JVPs: \(jvp.scoreEvaluations) evaluations for \(jvp.statistics.integrator.rightHandSideEvaluations) right-hand sides")
        let hutch = try run(score, .gaussian(probes: 3))
        #expect(hutch.scoreEvaluations == 3 * hutch.statistics.integrator.rightHandSideEvaluations,
                "3 Hutchinson probes: \(hutch.scoreEvaluations) evaluations for \(hutch.statistics.integrator.rightHandSideEvaluations) right-hand sides")
    }
}

// MARK: - Failure modes

@Suite("Likelihood: failures")
struct LikelihoodFailureTests {
    private let sde = try! VPSDE()
    private var score: GaussianMixtureScore { GaussianMixtureScore(.ring(), diffusedBy: sde) }
    private let x = tensor([[4, 0], [0, 4]])

    private func evaluate(_ estimator: DivergenceEstimator = .exact, eps: Double = 1e-5, solver: ODESolverOptions = rkf45(1e-5),
                          data: Tensor? = nil) throws {
        var rng = RandomSource(seed: 0)
        _ = try Likelihood(sde: sde, score: score, estimator: estimator, eps: eps, solver: solver).evaluate(data ?? x, using: &rng)
    }

    /// Refused as a bad argument: a parameter out of its domain (typed) or arguments that do not fit together.
    private func expectInvalidArgument(_ what: String, _ body: () throws -> Void) {
        switch scoreSDEError(body) {
        case .invalidArgument?, .invalidParameter?: return
        default: break
        }
        Issue.record("\(what): expected invalidArgument or invalidParameter, got \(String(describing: scoreSDEError(body)))")
    }

    @Test func hutchinsonProbesMustBePositive() {
        for e in [DivergenceEstimator.rademacher(probes: 0), .gaussian(probes: 0), .rademacher(probes: -1)] {
            let p = invalidParameter { try evaluate(e) }
            #expect(p?.name == "probes", "\(e): expected invalidParameter(probes), got \(String(describing: scoreSDEError { try evaluate(e) }))")
        }
    }

    @Test func epsMustBeInsideTheInterval() {
        for eps in [0, -1e-5, 1, 1.5, .nan, .infinity] {
            expectInvalidArgument("eps \(eps)") { try evaluate(eps: eps) }
        }
    }

    @Test func tolerancesMustBePositive() {
        for (a, r) in [(0.0, 1e-5), (1e-5, 0.0), (-1e-5, 1e-5), (1e-5, -1.0)] {
            expectInvalidArgument("atol \(a) rtol \(r)") {
                try evaluate(solver: ODESolverOptions(.rkf45, absoluteTolerance: a, relativeTolerance: r))
            }
        }
    }

    @Test func badData() {
        guard case .shapeMismatch? = scoreSDEError({ try evaluate(data: tensor([[1, 2, 3]])) }) else {
            Issue.record("3-D data for a 2-D model: expected shapeMismatch"); return
        }
        for bad in [Double.nan, .infinity] {
            guard case .nonFinite? = scoreSDEError({ try evaluate(data: tensor([[1, 2], [bad, 0]])) }) else {
                Issue.record("data with \(bad): expected nonFinite"); return
            }
        }
        #expect(invalidParameter { try evaluate(data: Tensor(zeros: [0, 2])) }?.name == "data", "no rows")
    }

    @Test func modelWithoutDerivatives() {
        for e in [DivergenceEstimator.exact, .rademacher(probes: 1), .gaussian(probes: 1)] {
            expectInvalidArgument("\(e) with a score-only model") {
                var rng = RandomSource(seed: 0)
                _ = try Likelihood(sde: sde, score: ScoreOnlyMixture(inner: score), estimator: e, eps: 1e-5, solver: rkf45(1e-5))
                    .evaluate(x, using: &rng)
            }
        }
    }

    @Test func implicitStepTypesAreRejected() {
        for type in ODEStepType.allCases where type.requiresJacobian {
            for layout in ODESystemLayout.allCases {
                expectInvalidArgument("\(type) \(layout)") {
                    var rng = RandomSource(seed: 0)
                    _ = try Likelihood(sde: sde, score: score, estimator: .exact, eps: 1e-5,
                                       solver: ODESolverOptions(type, absoluteTolerance: 1e-5, relativeTolerance: 1e-5),
                                       layout: layout).evaluate(x, using: &rng)
                }
            }
        }
    }

    @Test func tooFewStepsAndThrowingModels() throws {
        for layout in ODESystemLayout.allCases {
            let e = scoreSDEError {
                var rng = RandomSource(seed: 0)
                _ = try Likelihood(sde: sde, score: score, estimator: .exact, eps: 1e-5,
                                   solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-5, relativeTolerance: 1e-5, maxSteps: 2),
                                   layout: layout).evaluate(x, using: &rng)
            }
            guard case .integrator(let f)? = e, f.reason == .maxStepsExceeded else {
                Issue.record("\(layout) maxSteps 2: expected integrator(.maxStepsExceeded), got \(String(describing: e))"); continue
            }
            #expect(f.time > 1e-5 && f.time < 1, "\(layout): failure time \(f.time)")

            // A model error that is not a ScoreSDEError is wrapped as rightHandSideThrew, and the
            // solve stopped before t = 0.5 (integrating eps → T).
            let t = scoreSDEError {
                var rng = RandomSource(seed: 0)
                _ = try Likelihood(sde: sde, score: ThrowingDivergenceMixture(inner: score), estimator: .exact, eps: 1e-5,
                                   solver: rkf45(1e-5), layout: layout).evaluate(x, using: &rng)
            }
            guard case .integrator(let g)? = t, case .rightHandSideThrew(let message) = g.reason else {
                Issue.record("\(layout): expected integrator(.rightHandSideThrew), got \(String(describing: t))"); continue
            }
            #expect(message.contains("failed on purpose"))
            #expect(g.time <= 0.5 && g.time > 1e-5, "\(layout): failure time \(g.time)")
        }
        // A throwing terminal density surfaces unchanged.
        do {
            var rng = RandomSource(seed: 0)
            _ = try Likelihood(sde: sde, score: score, estimator: .exact, eps: 1e-5, solver: rkf45(1e-5),
                               terminalLogDensity: { _ in throw ModelFailure() }).evaluate(x, using: &rng)
            Issue.record("a throwing terminalLogDensity was ignored")
        } catch is ModelFailure {
        } catch {
            Issue.record("expected ModelFailure, got \(error)")
        }
    }
}

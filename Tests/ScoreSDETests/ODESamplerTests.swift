import Foundation
import Testing
@testable import ScoreSDE

// The probability-flow ODE sampler, encoder and decoder with the exact score of a Gaussian mixture,
// against closed-form truth: with the exact score the flow pushes p_T forward to p_eps exactly, so
// samples are exact p_eps samples up to (a) the solver error and (b) the prior standing in for p_T.
//
// Solver-error bound (`flowBound`, per row and coordinate): the controller accepts a step only when
// its error estimate is below tol·(1 + |y_i|) (atol = rtol = tol). The estimate is the difference of
// the embedded lower-order solution and the propagated higher-order one (GSL's rkf45 propagates the
// 5th-order, rk8pd the 8th-order solution; msadams/msbdf estimate their own order's error), so it
// bounds the propagated local error from above; the flow towards eps contracts (amplification ≤ 1)
// and towards T expands only by the stated factor, so after `steps` steps one solve is within
// steps · tol · (1 + max|y|), and the difference of two solves within twice that (`solves: 2`).
// (The old factor of 10 had no derivation.) A wrong drift (sign, the ½, a missing g²) or a row
// mix-up gives errors of order 1.
//
// Prior mismatch (sample() starts from the prior, not p_T): total variation is invariant under the
// flow, and TV(p_T, prior) ≲ √(KL/2). VE: p_T = ring ⊛ N(0, 50²) ≈ N(0, (50² + 8) I), KL ≈ (8/2500)²/2
// ≈ 5e-6 in 2-D → TV ≲ 0.002. VP / sub-VP: the modes sit at radius 4·m(1) ≈ 0.026, KL ~ 1e-7. So mode
// weights are biased by ≲ 0.002 and moments by a similarly small fraction: `priorMismatch` allows
// 0.005 on weights, 0.01 (absolute) on mode means and 0.02 (relative) on variances.

/// The three SDEs with the reference's parameters and sampling eps (1e-5 VE, 1e-3 VP / sub-VP),
/// with their marginals written out here, independently of the library.
enum ODESamplerSDEKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case ve, vp, subVP
    var testDescription: String { rawValue }

    var sde: any ForwardSDE {
        switch self {
        case .ve: return try! VESDE()
        case .vp: return try! VPSDE()
        case .subVP: return try! SubVPSDE()
        }
    }

    var eps: Double { self == .ve ? 1e-5 : 1e-3 }
    var priorStd: Double { self == .ve ? 50 : 1 }

    /// x(t) | x(0) ~ N(m x(0), s² I): VE m = 1, s = 0.01·5000^t; VP m = e^{lmc}, s = √(1 − m²);
    /// sub-VP s = 1 − m², with lmc = −¼ t² (20 − 0.1) − ½ t 0.1.
    func marginal(_ t: Double) -> (m: Double, s: Double) {
        let lmc = -0.25 * t * t * 19.9 - 0.5 * t * 0.1
        switch self {
        case .ve: return (1, 0.01 * pow(5000, t))
        case .vp: return (exp(lmc), (-expm1(2 * lmc)).squareRoot())
        case .subVP: return (exp(lmc), -expm1(2 * lmc))
        }
    }

    /// The ring mixture diffused to time t, built here from the marginal above.
    func ring(at t: Double) -> GaussianMixture {
        let (m, s) = marginal(t)
        let base = GaussianMixture.ring()
        let std = (m * m * 0.25 * 0.25 + s * s).squareRoot()
        return try! GaussianMixture(means: base.means.map { $0.map { m * $0 } },
                                    isotropicStds: Array(repeating: std, count: base.componentCount))
    }
}

private func solver(_ type: ODEStepType, _ tol: Double, maxSteps: Int? = nil) -> ODESolverOptions {
    ODESolverOptions(type, absoluteTolerance: tol, relativeTolerance: tol, maxSteps: maxSteps)
}

/// Right-hand-side evaluations per attempted step (GSL: rkf45 5 stages + end derivative, rk8pd 12 + 1).
private func evaluationsPerStep(_ type: ODEStepType) -> Int { type == .rk8pd ? 13 : 6 }

/// Bound on the solver error of any coordinate of a solve (see the header).
private func flowBound(tol: Double, steps: Int, yMax: Double, solves: Int = 1) -> Double {
    Double(solves) * Double(max(steps, 1)) * tol * (1 + yMax)
}

/// Most attempted steps of any system of a solve.
private func maxSteps(_ s: ODERunStatistics, _ type: ODEStepType) -> Int {
    (s.evaluationsPerSystem.max() ?? 0) / evaluationsPerStep(type) + 1
}

private func maxAbs(_ t: Tensor) -> Double { t.storage.map(abs).max() ?? 0 }

private func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape)
    return zip(a.storage, b.storage).map { abs($0 - $1) }.max() ?? 0
}

/// Measured numbers (NFE, errors) are printed with `SCORESDE_REPORT=1 swift test ...`.
private func report(_ line: @autoclosure () -> String) {
    if ProcessInfo.processInfo.environment["SCORESDE_REPORT"] != nil { print(line()) }
}

private let priorMismatch = BiasAllowance(weight: 0.005, mean: 0.01, variance: 0.02)

// MARK: - Test models

/// The mixture score with no Jacobian (for implicit step types).
private struct PlainMixtureScore: ScoreModel {
    let inner: GaussianMixtureScore
    var rowShape: [Int]? { inner.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { try inner.score(x, at: t) }
}

/// Returns NaN for t < `below`, the mixture score otherwise.
private struct NaNBelowScore: ScoreModel {
    let inner: GaussianMixtureScore
    let below: Double
    var rowShape: [Int]? { inner.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor {
        t < below ? Tensor(repeating: .nan, like: x) : try inner.score(x, at: t)
    }
}

private struct DeliberateFailure: Error, CustomStringConvertible {
    var description: String { "deliberate model failure" }
}

/// Throws `error` for t < `below`.
private struct ThrowingBelowScore: ScoreModel {
    let inner: GaussianMixtureScore
    let below: Double
    let error: any Error & Sendable
    var rowShape: [Int]? { inner.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor {
        if t < below { throw error }
        return try inner.score(x, at: t)
    }
}

/// Returns one column too few.
private struct WrongShapeScore: ScoreModel {
    var rowShape: [Int]? { [2] }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { Tensor(zeros: [x.rows, 1]) }
}

/// Records the largest batch the model saw.
private final class BatchLog: @unchecked Sendable {
    private let lock = NSLock()
    private var largestRows = 0
    func record(_ n: Int) { lock.lock(); largestRows = max(largestRows, n); lock.unlock() }
    var largest: Int { lock.lock(); defer { lock.unlock() }; return largestRows }
}

private struct LoggedMixtureScore: ScoreModel {
    let inner: GaussianMixtureScore
    let log: BatchLog
    var rowShape: [Int]? { inner.rowShape }
    func score(_ x: Tensor, at t: Double) throws -> Tensor { log.record(x.rows); return try inner.score(x, at: t) }
}

// MARK: - Sampling

@Suite("ODESampler: sampling the ring")
struct ODESamplerSamplingTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let kind: ODESamplerSDEKind
        let type: ODEStepType
        var testDescription: String { "\(kind.rawValue) \(type.rawValue)" }
    }
    static let cases = ODESamplerSDEKind.allCases.flatMap { k in [ODEStepType.rkf45, .rk8pd].map { Case(kind: k, type: $0) } }

    /// Mode weights (binomial, 5σ), mode means and per-mode covariances of p_eps (5σ) plus the stated
    /// prior-mismatch allowance, in the batch layout; the per-sample layout maps the same latents to
    /// the same samples within the solver-error bound. NFE = the integrator's RHS count.
    @Test(arguments: cases)
    func recoversModesAndSpread(_ c: Case) throws {
        try run(c.kind.sde, c)
    }

    private func run<S: ForwardSDE>(_ sde: S, _ c: Case) throws {
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let truth = c.kind.ring(at: c.kind.eps)
        let tol = 1e-5
        let batch = ODESampler(sde: sde, score: score, eps: c.kind.eps, solver: solver(c.type, tol))
        var rng = RandomSource(seed: 2021)
        let run = try batch.sample(count: 8000, using: &rng)
        expectMatches(run.states, truth, bias: priorMismatch, "\(c.testDescription) batch")
        let rhs = run.statistics.integrator.rightHandSideEvaluations
        #expect(rhs > 0)
        #expect(run.scoreEvaluations == rhs)
        #expect(run.statistics.scoreEvaluations == rhs)
        #expect(run.statistics.evaluationsPerSystem == [rhs])
        #expect(run.statistics.integrator.acceptedSteps > 0)
        report("[ode-sampler] \(c.testDescription) batch rtol=atol=1e-5: NFE \(rhs), accepted \(run.statistics.integrator.acceptedSteps), rejected \(run.statistics.integrator.rejectedSteps)")

        // Per-sample layout on the first 600 latents (same seed → same prior draw).
        let perSample = ODESampler(sde: sde, score: score, eps: c.kind.eps, solver: solver(c.type, tol), layout: .perSample)
        var rng2 = RandomSource(seed: 2021)
        let prior = sde.samplePrior(rowShape: [2], count: 8000, using: &rng2)
        let n = 600
        let ps = try perSample.decode(prior.rows(0 ..< n))
        #expect(ps.statistics.evaluationsPerSystem.count == n)
        #expect(ps.scoreEvaluations == ps.statistics.evaluationsPerSystem.reduce(0, +))
        #expect(ps.scoreEvaluations == ps.statistics.integrator.rightHandSideEvaluations)
        #expect(ps.statistics.evaluationsPerSystem.allSatisfy { $0 > 0 })
        let steps = maxSteps(run.statistics, c.type) + maxSteps(ps.statistics, c.type)
        let bound = flowBound(tol: tol, steps: steps, yMax: maxAbs(run.states), solves: 2)
        let diff = maxAbsDiff(ps.states, run.states.rows(0 ..< n))
        #expect(diff <= bound, "\(c.testDescription): per-sample vs batch rows differ by \(diff) > \(bound)")
        expectMatches(ps.states, truth, bias: priorMismatch, "\(c.testDescription) perSample", checkCovariances: false)
        report("[ode-sampler] \(c.testDescription) perSample: NFE per sample mean \(Double(ps.scoreEvaluations) / Double(n)), max \(ps.statistics.evaluationsPerSystem.max()!); max |perSample − batch| \(diff)")
    }

    /// A per-sample row does not depend on the other rows of the batch (bit for bit).
    @Test func perSampleRowsAreIndependentOfTheBatch() throws {
        let sde = try VPSDE()
        let sampler = ODESampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), eps: 1e-3,
                                 solver: solver(.rkf45, 1e-5), layout: .perSample)
        var rng = RandomSource(seed: 5)
        let z = sde.samplePrior(rowShape: [2], count: 6, using: &rng)
        let all = try sampler.decode(z).states
        for r in [0, 3, 5] {
            #expect(try sampler.decode(z.rows(r ..< r + 1)).states.row(0) == all.row(r))
        }
    }

    /// `denoise` adds one reverse-diffusion step over the interval eps → 0, written out per SDE from the
    /// forward transition 0 → eps: mean = (2 − r) x + v s(x, eps) with r = m(eps), v = its variance
    /// (VE: r = 1, v = σ(eps)² — time 0 is clean data; VP: v = 1 − m(eps)²; sub-VP: v = (1 − m(eps)²)²),
    /// and one more NFE.
    @Test(arguments: ODESamplerSDEKind.allCases)
    func denoiseIsOneReverseDiffusionStep(_ kind: ODESamplerSDEKind) throws {
        try denoise(kind.sde, kind)
    }

    private func denoise<S: ForwardSDE>(_ sde: S, _ kind: ODESamplerSDEKind) throws {
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        var rng = RandomSource(seed: 77)
        let z = sde.samplePrior(rowShape: [2], count: 2000, using: &rng)
        let plain = try ODESampler(sde: sde, score: score, eps: kind.eps, solver: solver(.rkf45, 1e-5)).decode(z)
        let den = try ODESampler(sde: sde, score: score, eps: kind.eps, solver: solver(.rkf45, 1e-5), denoise: true).decode(z)
        #expect(den.scoreEvaluations == plain.scoreEvaluations + 1)
        #expect(den.statistics.integrator == plain.statistics.integrator)
        let eps = kind.eps
        let m = exp(-0.25 * eps * eps * 19.9 - 0.5 * eps * 0.1)
        let (xScale, g2): (Double, Double)
        switch kind {
        case .ve: let sigma = 0.01 * pow(5000, eps); (xScale, g2) = (1, sigma * sigma)
        case .vp: (xScale, g2) = (2 - m, 1 - m * m)
        case .subVP: (xScale, g2) = (2 - m, (1 - m * m) * (1 - m * m))
        }
        let s = try score.score(plain.states, at: eps)
        var expected = plain.states
        for i in 0 ..< expected.count { expected.storage[i] = xScale * plain.states.storage[i] + g2 * s.storage[i] }
        let diff = maxAbsDiff(den.states, expected)
        #expect(diff <= 1e-9 * (1 + maxAbs(expected)), "\(kind): denoised vs (2 − r) x + v s differ by \(diff)")
        // The step really moves the samples (by G²|s| ~ 1e-4 · 0.25/0.0625), so the check above can fail.
        #expect(maxAbsDiff(den.states, plain.states) > 1e-5)
        expectMatches(den.states, kind.ring(at: eps), bias: priorMismatch, "\(kind) denoised", checkCovariances: false)
    }

    /// `batchSize` bounds the rows of every model call and changes neither samples nor NFE.
    @Test func batchSizeNeverChangesResults() throws {
        let sde = try VESDE()
        let inner = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let log = BatchLog()
        var rng = RandomSource(seed: 9)
        let z = sde.samplePrior(rowShape: [2], count: 300, using: &rng)
        let whole = try ODESampler(sde: sde, score: inner, eps: 1e-5, solver: solver(.rkf45, 1e-5), denoise: true).decode(z)
        let split = try ODESampler(sde: sde, score: LoggedMixtureScore(inner: inner, log: log), eps: 1e-5,
                                   solver: solver(.rkf45, 1e-5), denoise: true, batchSize: 64).decode(z)
        #expect(log.largest <= 64 && log.largest > 0)
        #expect(split.states == whole.states)
        #expect(split.scoreEvaluations == whole.scoreEvaluations)
    }
}

// MARK: - Encoder / decoder

@Suite("ODESampler: encode and decode")
struct ODESamplerCodingTests {
    /// data → latents → data recovers the data within the solver bound; 100× tighter tolerance shrinks
    /// the error > 10×. Latents of exact p_eps samples are p_T-distributed ≈ prior: per-coordinate mean
    /// 0 and std equal to the exact p_T std (5 standard errors), which is within 0.2% of priorStd.
    @Test(arguments: ODESamplerSDEKind.allCases)
    func roundTripAndLatentDistribution(_ kind: ODESamplerSDEKind) throws {
        try roundTrip(kind.sde, kind)
    }

    private func roundTrip<S: ForwardSDE>(_ sde: S, _ kind: ODESamplerSDEKind) throws {
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        var rng = RandomSource(seed: 31)
        let n = 4000
        let data = kind.ring(at: kind.eps).sample(count: n, using: &rng)   // exact p_eps samples
        var errors = [Double]()
        for (tol, layout, rows) in [(1e-5, ODESystemLayout.batch, n), (1e-7, .batch, n), (1e-5, .perSample, 300)] {
            let sampler = ODESampler(sde: sde, score: score, eps: kind.eps, solver: solver(.rkf45, tol), layout: layout)
            let x = data.rows(0 ..< rows)
            let enc = try sampler.encode(x)
            let dec = try sampler.decode(enc.states)
            #expect(enc.scoreEvaluations == enc.statistics.integrator.rightHandSideEvaluations && enc.scoreEvaluations > 0)
            let err = maxAbsDiff(dec.states, x)
            // Errors of both solves, each bounded as in the header at the data scale: errors made at the
            // latent scale (|z| up to ~200 for VE) are carried back by the decoder, which contracts by
            // about (data std)/(latent std) (0.25/50 for VE, 0.25/1 for VP), so they count at data scale.
            let steps = maxSteps(enc.statistics, .rkf45) + maxSteps(dec.statistics, .rkf45)
            let bound = flowBound(tol: tol, steps: steps, yMax: maxAbs(x), solves: 2)
            #expect(err <= bound, "\(kind) \(layout) tol \(tol): round-trip error \(err) > \(bound)")
            report("[ode-coding] \(kind) \(layout) rkf45 tol \(tol): round-trip max abs error \(err) over \(rows) ring points (bound \(bound)); NFE encode \(enc.scoreEvaluations) decode \(dec.scoreEvaluations)")
            if layout == .batch { errors.append(err) }
            if tol == 1e-5 && layout == .batch {
                // Latent distribution: exact p_T per coordinate has mean 0 (symmetric ring) and variance
                // m_T² (r²/2 + s²) + σ_T² (r = 4, s = 0.25).
                let (mT, sT) = kind.marginal(1)
                let stdT = (mT * mT * (8 + 0.0625) + sT * sT).squareRoot()
                #expect(abs(stdT / kind.priorStd - 1) < 0.002)
                for j in 0 ..< 2 {
                    let column = (0 ..< n).map { enc.states.storage[$0 * 2 + j] }
                    let m = Moments(column)
                    let sd = m.variance.squareRoot()
                    #expect(abs(m.mean) <= zBound * stdT / Double(n).squareRoot(), "\(kind) latent mean[\(j)] \(m.mean)")
                    // SE of a sample std ≈ σ √((2 + κ)/(4n)); κ estimated (≈ 0 for near-Gaussian latents).
                    let seStd = stdT * ((2 + max(m.excessKurtosis, 0)) / (4 * Double(n))).squareRoot()
                    #expect(abs(sd - stdT) <= zBound * seStd, "\(kind) latent std[\(j)] \(sd) vs p_T \(stdT) (prior \(kind.priorStd))")
                    // And the shape: Kolmogorov–Smirnov against N(0, stdT²), 1.95/√n (p ≈ 0.001).
                    let ks = ksStatistic(column) { normalCDF($0 / stdT) }
                    #expect(ks <= 1.95 / Double(n).squareRoot(), "\(kind) latent[\(j)] KS \(ks)")
                }
            }
        }
        #expect(errors[1] <= errors[0] / 10, "\(kind): round-trip error did not shrink with the tolerance: \(errors)")
    }

    /// For Gaussian data N(μ, diag s²) the flow is affine: (x_t − m_t μ)/√(m_t² s² + σ_t²) is constant
    /// along it, so encode and decode are known in closed form. Both match it within the solver bound.
    @Test(arguments: ODESamplerSDEKind.allCases)
    func gaussianDataFlowIsAffine(_ kind: ODESamplerSDEKind) throws {
        try affine(kind.sde, kind)
    }

    private func affine<S: ForwardSDE>(_ sde: S, _ kind: ODESamplerSDEKind) throws {
        let mu = [1.0, -2.0, 0.5], s = [0.5, 1.5, 0.2]
        let gaussian = try GaussianMixture(means: [mu], stds: [s])
        let score = GaussianMixtureScore(gaussian, diffusedBy: sde)
        let x = tensor([[1, -2, 0.5], [1.3, -0.5, 0.4], [0, -4, 1.1], [3, 1, -0.5]])
        let eps = kind.eps
        let (m0, s0) = kind.marginal(eps), (m1, s1) = kind.marginal(1)
        func map(_ v: Tensor, from a: (m: Double, s: Double), to b: (m: Double, s: Double)) -> Tensor {
            var out = v
            for r in 0 ..< v.rows {
                for j in 0 ..< 3 {
                    let sa = (a.m * a.m * s[j] * s[j] + a.s * a.s).squareRoot(), sb = (b.m * b.m * s[j] * s[j] + b.s * b.s).squareRoot()
                    out.storage[r * 3 + j] = b.m * mu[j] + (v.storage[r * 3 + j] - a.m * mu[j]) * sb / sa
                }
            }
            return out
        }
        let zTrue = map(x, from: (m0, s0), to: (m1, s1))
        for type in [ODEStepType.rkf45, .rk8pd] {
            let tol = 1e-7
            let sampler = ODESampler(sde: sde, score: score, eps: eps, solver: solver(type, tol))
            let enc = try sampler.encode(x)
            // The flow is linear: an error committed at t, ≤ tol·(1 + |y(t)|), reaches T multiplied by
            // std_T/std_t ≤ E (the largest ratio of standard deviations, 250 for VE with s = 0.2), and
            // |y(t)|·std_T/std_t ≈ |z|. So the encoder's error is ≤ steps·tol·(E + max|z|).
            let expansion = (0 ..< 3).map { j in
                ((m1 * m1 * s[j] * s[j] + s1 * s1) / (m0 * m0 * s[j] * s[j] + s0 * s0)).squareRoot()
            }.max()!
            let encBound = Double(maxSteps(enc.statistics, type)) * tol * (expansion + maxAbs(zTrue))
            let encErr = maxAbsDiff(enc.states, zTrue)
            #expect(encErr <= encBound, "\(kind) \(type): encode error \(encErr) > \(encBound)")
            // Decoding contracts (the inverse map): its error stays at the data scale.
            let dec = try sampler.decode(zTrue)
            let decErr = maxAbsDiff(dec.states, x)
            let decBound = flowBound(tol: tol, steps: maxSteps(dec.statistics, type), yMax: maxAbs(x))
            #expect(decErr <= decBound, "\(kind) \(type): decode error \(decErr) > \(decBound)")
            report("[ode-coding] \(kind) \(type) Gaussian data, tol \(tol): encode error \(encErr) (latent scale \(maxAbs(zTrue))), decode error \(decErr)")
        }
    }
}

// MARK: - Failure modes

@Suite("ODESampler: failures")
struct ODESamplerFailureTests {
    private let sde = try! VPSDE()
    private var score: GaussianMixtureScore { GaussianMixtureScore(.ring(), diffusedBy: sde) }

    private func sampler<M: ScoreModel>(_ model: M, eps: Double = 1e-3, _ options: ODESolverOptions = solver(.rkf45, 1e-5),
                                        layout: ODESystemLayout = .batch) -> ODESampler<VPSDE, M> {
        ODESampler(sde: sde, score: model, eps: eps, solver: options, layout: layout)
    }

    private func expectCase(_ what: String, _ expected: (ScoreSDEError) -> Bool, _ body: () throws -> Void) {
        let e = scoreSDEError(body)
        guard let e, expected(e) else {
            Issue.record("\(what): got \(String(describing: e))")
            return
        }
    }

    /// Refused as a bad argument: a parameter out of its domain (typed) or arguments that do not fit together.
    private static func isInvalid(_ e: ScoreSDEError) -> Bool {
        switch e { case .invalidArgument, .invalidParameter: return true; default: return false }
    }

    @Test func tooFewSteps() {
        for layout in ODESystemLayout.allCases {
            let s = sampler(score, solver(.rkf45, 1e-5, maxSteps: 3), layout: layout)
            for (what, body) in [("sample", { var rng = RandomSource(seed: 0); _ = try s.sample(count: 4, using: &rng) }),
                                 ("encode", { _ = try s.encode(tensor([[4, 0], [0, 4]])) })] as [(String, () throws -> Void)] {
                guard case .integrator(let f)? = scoreSDEError(body) else {
                    Issue.record("\(layout) \(what): expected .integrator"); continue
                }
                #expect(f.reason == .maxStepsExceeded, "\(layout) \(what): \(f)")
                // Three accepted steps from one end: the solve stopped strictly inside (eps, T).
                #expect(f.time > 1e-3 && f.time < 1, "\(layout) \(what): time \(f.time)")
            }
        }
    }

    /// A model returning NaN below t = 0.5: the solve (T → eps) stops at its first step that reaches
    /// below 0.5, so the last good time is in [0.5, 0.5 + |h|).
    @Test func nanScoreStopsNearItsTime() {
        for layout in ODESystemLayout.allCases {
            let s = sampler(NaNBelowScore(inner: score, below: 0.5), layout: layout)
            var rng = RandomSource(seed: 1)
            guard case .integrator(let f)? = scoreSDEError({ _ = try s.sample(count: 5, using: &rng) }) else {
                Issue.record("\(layout): expected .integrator for a NaN score"); continue
            }
            #expect(f.reason == .nonFiniteRightHandSide, "\(layout): \(f)")
            #expect(f.time >= 0.5 && f.time < 0.5 + abs(f.stepSize), "\(layout): failure at \(f.time), step \(f.stepSize)")
        }
    }

    /// A model that throws: a foreign error becomes `.integrator(.rightHandSideThrew(description))`,
    /// a `ScoreSDEError` comes through unchanged.
    @Test func throwingModel() {
        for layout in ODESystemLayout.allCases {
            var rng = RandomSource(seed: 2)
            let foreign = sampler(ThrowingBelowScore(inner: score, below: 0.3, error: DeliberateFailure()), layout: layout)
            if case .integrator(let f)? = scoreSDEError({ _ = try foreign.sample(count: 3, using: &rng) }),
               case .rightHandSideThrew(let message) = f.reason {
                #expect(message.contains("deliberate model failure"))
                #expect(f.time >= 0.3 && f.time < 0.3 + abs(f.stepSize), "\(layout): failure at \(f.time), step \(f.stepSize)")
            } else {
                Issue.record("\(layout): expected .integrator(.rightHandSideThrew)")
            }
            let own = sampler(ThrowingBelowScore(inner: score, below: 0.3, error: ScoreSDEError.unknownName("model-specific")), layout: layout)
            #expect(scoreSDEError({ _ = try own.sample(count: 3, using: &rng) }) == .unknownName("model-specific"), "\(layout)")
        }
    }

    @Test func implicitStepTypesNeedAJacobian() {
        for type in ODEStepType.allCases where type.requiresJacobian {
            for layout in ODESystemLayout.allCases {
                expectCase("\(type) \(layout) without Jacobian", Self.isInvalid) {
                    var rng = RandomSource(seed: 0)
                    _ = try sampler(PlainMixtureScore(inner: score), solver(type, 1e-5), layout: layout).sample(count: 3, using: &rng)
                }
            }
        }
        // The dense Jacobian of a batch system is capped at 4096 × 4096.
        expectCase("bsimp batch of 2100 2-D rows", Self.isInvalid) {
            var rng = RandomSource(seed: 0)
            _ = try sampler(score, solver(.bsimp, 1e-5)).sample(count: 2100, using: &rng)
        }
    }

    /// Implicit step types with the mixture's JVPs: the same samples as rk8pd at a tight tolerance
    /// (within both solves' bounds), and the modes are recovered.
    @Test(arguments: [ODEStepType.bsimp, .rk4imp])
    func implicitStepTypesWithAJacobian(_ type: ODEStepType) throws {
        var rng = RandomSource(seed: 3)
        let z = sde.samplePrior(rowShape: [2], count: 200, using: &rng)
        let tol = 1e-5
        let implicit = try sampler(score, solver(type, tol), layout: .perSample).decode(z)
        #expect(implicit.statistics.integrator.jacobianEvaluations > 0)
        let reference = try sampler(score, solver(.rk8pd, 1e-9)).decode(z)
        let diff = maxAbsDiff(implicit.states, reference.states)
        // Steps per system of the implicit solve (accepted + rejected, averaged over the 200 systems,
        // doubled to cover the hardest one); the rk8pd reference at 1e-9 adds a negligible error.
        let steps = 2 * (implicit.statistics.integrator.acceptedSteps + implicit.statistics.integrator.rejectedSteps) / z.rows + 1
        let bound = flowBound(tol: tol, steps: steps, yMax: maxAbs(reference.states), solves: 2)
        #expect(diff <= bound, "\(type): differs from rk8pd by \(diff) > \(bound)")
        expectMatches(implicit.states, ODESamplerSDEKind.vp.ring(at: 1e-3), bias: priorMismatch, "\(type)", checkCovariances: false)
        report("[ode-sampler] vp \(type) perSample tol 1e-5: NFE per sample \(Double(implicit.scoreEvaluations) / 200), Jacobians \(implicit.statistics.integrator.jacobianEvaluations), steps/system \(steps / 2), max |Δ| vs rk8pd \(diff) (bound \(bound))")
    }

    @Test func epsMustBeInsideTheInterval() {
        for eps in [0, -1e-3, 1, 1.5, .nan] {
            for layout in ODESystemLayout.allCases {
                let s = sampler(score, eps: eps, layout: layout)
                expectCase("sample eps \(eps) \(layout)", Self.isInvalid) { var rng = RandomSource(seed: 0); _ = try s.sample(count: 2, using: &rng) }
                expectCase("encode eps \(eps) \(layout)", Self.isInvalid) { _ = try s.encode(tensor([[1, 2]])) }
                expectCase("decode eps \(eps) \(layout)", Self.isInvalid) { _ = try s.decode(tensor([[1, 2]])) }
            }
        }
    }

    @Test func tolerancesMustBePositive() {
        for (a, r) in [(0.0, 1e-5), (1e-5, 0.0), (-1e-5, 1e-5), (1e-5, -1e-5)] {
            for layout in ODESystemLayout.allCases {
                let s = sampler(score, ODESolverOptions(.rkf45, absoluteTolerance: a, relativeTolerance: r), layout: layout)
                expectCase("atol \(a) rtol \(r) \(layout)", Self.isInvalid) { var rng = RandomSource(seed: 0); _ = try s.sample(count: 2, using: &rng) }
            }
        }
    }

    @Test func badInputs() {
        let s = sampler(score)
        let isShape: (ScoreSDEError) -> Bool = { if case .shapeMismatch = $0 { return true }; return false }
        let isNonFinite: (ScoreSDEError) -> Bool = { if case .nonFinite = $0 { return true }; return false }
        expectCase("encode 3-D rows", isShape) { _ = try s.encode(tensor([[1, 2, 3]])) }
        expectCase("decode 3-D rows", isShape) { _ = try s.decode(tensor([[1, 2, 3]])) }
        expectCase("sample rowShape [3]", isShape) { var rng = RandomSource(seed: 0); _ = try s.sample(count: 2, rowShape: [3], using: &rng) }
        for bad in [Double.nan, .infinity] {
            for layout in ODESystemLayout.allCases {
                let t = sampler(score, layout: layout)
                expectCase("encode \(bad) \(layout)", isNonFinite) { _ = try t.encode(tensor([[1, 2], [bad, 0]])) }
                expectCase("decode \(bad) \(layout)", isNonFinite) { _ = try t.decode(tensor([[1, 2], [0, bad]])) }
            }
        }
        expectCase("count 0", Self.isInvalid) { var rng = RandomSource(seed: 0); _ = try s.sample(count: 0, using: &rng) }
        expectCase("model returning the wrong shape", isShape) {
            var rng = RandomSource(seed: 0)
            _ = try sampler(WrongShapeScore()).sample(count: 2, using: &rng)
        }
    }
}

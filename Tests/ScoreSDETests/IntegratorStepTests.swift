import Foundation
import Testing
@testable import ScoreSDE

// The reverse-time integrator and its interval steps against closed forms written here, from the
// SDE formulas (Song et al. 2021, App. B) — not from the library's coefficient code.
//
// For Gaussian data N(μ, σ0² I) the exact score at t is s = −(x − m(t) μ)/V(t), V = m² σ0² + std²,
// so every predictor step is affine: x' = (a − b/V) x + (b m μ/V) + c z. The marginal of the whole
// discrete chain is therefore Gaussian with a mean and variance the test propagates exactly.

/// Closed-form schedules of the built-in SDEs with their default parameters.
enum ChainSDE: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case ve, vp, subVP
    var testDescription: String { rawValue }

    static let (sigmaMin, sigmaMax, b0, b1) = (0.01, 50.0, 0.1, 20.0)

    /// m(t), std(t) (VE: σ(t), whose time 0 value is σmin; the step kernels treat 0 as clean data).
    func marginal(_ t: Double) -> (m: Double, std: Double) {
        switch self {
        case .ve: return (1, Self.sigmaMin * pow(Self.sigmaMax / Self.sigmaMin, t))
        case .vp, .subVP:
            let m = exp(-0.25 * t * t * (Self.b1 - Self.b0) - 0.5 * t * Self.b0)
            return (m, self == .vp ? (1 - m * m).squareRoot() : 1 - m * m)
        }
    }
    /// std used by transition kernels: VE's clean-data convention std(0) = 0.
    func kernelStd(_ t: Double) -> Double { self == .ve && t == 0 ? 0 : marginal(t).std }
    func drift(_ t: Double) -> Double { self == .ve ? 0 : -0.5 * (Self.b0 + t * (Self.b1 - Self.b0)) }
    func g2(_ t: Double) -> Double {
        switch self {
        case .ve: let s = marginal(t).std; return s * s * 2 * log(Self.sigmaMax / Self.sigmaMin)
        case .vp: return Self.b0 + t * (Self.b1 - Self.b0)
        case .subVP: let m = marginal(t).m; return (Self.b0 + t * (Self.b1 - Self.b0)) * (1 - m * m * m * m)
        }
    }
    var priorStd: Double { self == .ve ? Self.sigmaMax : 1 }
    var eps: Double { self == .ve ? 1e-5 : 1e-3 }
    /// Forward kernel next → t: x_t = r x_next + √v z.
    func transition(_ next: Double, _ t: Double) -> (r: Double, v: Double) {
        let r = marginal(t).m / marginal(next).m
        let st = kernelStd(t), sn = kernelStd(next)
        return (r, st * st - r * r * sn * sn)
    }
}

enum ChainPredictor: String, CaseIterable, Sendable {
    case eulerMaruyama, reverseDiffusion, ancestral, flowEuler

    /// (a, b, c) of `mean = a x + b s`, `x = mean + c z` over t → next.
    func coefficients(_ sde: ChainSDE, _ t: Double, _ next: Double) -> (Double, Double, Double) {
        switch self {
        case .eulerMaruyama, .flowEuler:
            let dt = next - t, k = self == .flowEuler ? 0.5 : 1
            return (1 + sde.drift(t) * dt, -k * sde.g2(t) * dt, self == .flowEuler ? 0 : (sde.g2(t) * -dt).squareRoot())
        case .reverseDiffusion:
            let (r, v) = sde.transition(next, t)
            return (2 - r, v, v.squareRoot())
        case .ancestral:
            if sde == .ve {
                let s = sde.kernelStd(t), a = sde.kernelStd(next), d = s * s - a * a
                return (1, d, (a * a * d / (s * s)).squareRoot())
            }
            let (r, v) = sde.transition(next, t)
            return (1 / r, v / r, v.squareRoot())
        }
    }
}

/// Mean (per coordinate) and variance of the chain's output, propagated exactly.
func chainMarginal(_ sde: ChainSDE, _ p: ChainPredictor, grid: TimeGrid, mu: [Double], sigma0: Double,
                   aldSNR: Double? = nil) -> (mean: [Double], variance: Double) {
    var mean = [Double](repeating: 0, count: mu.count), variance = sde.priorStd * sde.priorStd
    var outMean = mean, outVariance = variance
    for (t, next) in grid.intervals {
        let (m, std) = sde.marginal(t)
        let V = m * m * sigma0 * sigma0 + std * std
        func apply(_ a: Double, _ b: Double, _ c: Double) {
            let k = a - b / V
            mean = mean.indices.map { k * mean[$0] + b * m * mu[$0] / V }
            outMean = mean
            outVariance = k * k * variance
            variance = outVariance + c * c
        }
        if let snr = aldSNR {   // annealed Langevin at t, α = r² of the interval
            let r = sde.marginal(t).m / sde.marginal(next).m
            let e = 2 * r * r * (snr * std) * (snr * std)
            apply(1, e, (2 * e).squareRoot())
        }
        let (a, b, c) = p.coefficients(sde, t, next)
        apply(a, b, c)
    }
    return (outMean, outVariance)
}

/// The quadratic grid t_i = eps + (T − eps)(1 − i/(N−1))², then 0 — matches no default N.
func quadraticGrid(_ n: Int, eps: Double) throws -> TimeGrid {
    try TimeGrid((0 ..< n).map { i in let u = 1 - Double(i) / Double(n - 1); return eps + (1 - eps) * u * u } + [0])
}

struct ChainCase: Sendable, CustomTestStringConvertible {
    let sde: ChainSDE, predictor: ChainPredictor, steps: Int, quadratic: Bool, ald: Bool
    var testDescription: String { "\(sde) \(predictor) \(quadratic ? "quadratic " : "")\(steps)\(ald ? " + ALD" : "")" }
}

@Suite("Interval steps: the discrete chain's exact marginal on any grid")
struct IntervalStepTests {
    static let mu = [1.0, -0.5], sigma0 = 0.5

    static let cases: [ChainCase] = {
        var c = [ChainCase]()
        for sde in ChainSDE.allCases {
            for p in ChainPredictor.allCases where !(p == .ancestral && sde == .subVP) {
                for steps in [10, 100] { c.append(ChainCase(sde: sde, predictor: p, steps: steps, quadratic: false, ald: false)) }
                c.append(ChainCase(sde: sde, predictor: p, steps: 37, quadratic: true, ald: false))
            }
            c.append(ChainCase(sde: sde, predictor: .reverseDiffusion, steps: 1000, quadratic: false, ald: false))
            c.append(ChainCase(sde: sde, predictor: .reverseDiffusion, steps: 50, quadratic: true, ald: true))
        }
        return c
    }()

    func run<S: ForwardSDE>(_ sde: S, _ c: ChainCase, grid: TimeGrid, count: Int) throws -> SamplingResult {
        let data = try GaussianMixture(means: [Self.mu], isotropicStds: [Self.sigma0])
        let score = GaussianMixtureScore(data, diffusedBy: sde)
        var rng = RandomSource(seed: 314)
        func go<P: Predictor>(_ p: P) throws -> SamplingResult {
            if c.ald {
                return try PCSampler(sde: sde, score: score, grid: grid, predictor: p, corrector: try AnnealedLangevin(snr: 0.1))
                    .sample(count: count, using: &rng)
            }
            return try PCSampler(sde: sde, score: score, grid: grid, predictor: p, corrector: NoCorrector()).sample(count: count, using: &rng)
        }
        switch c.predictor {
        case .eulerMaruyama: return try go(EulerMaruyama())
        case .flowEuler: return try go(EulerMaruyama(probabilityFlow: true))
        case .reverseDiffusion: return try go(ReverseDiffusion())
        case .ancestral:
            if let ve = sde as? VESDE { return try go(AncestralSampling(for: ve)) }
            return try go(AncestralSampling(for: sde as! VPSDE))
        }
    }

    /// 20 000 samples × 2 coordinates: mean within 5 standard errors per coordinate, the pooled
    /// variance within 5 standard errors (≈ 3.5% relative); a grid read as the SDE's default
    /// N = 1000 (the old defect) is off by orders of magnitude on 10–100 steps.
    @Test("samples match the chain's closed-form marginal", arguments: cases)
    func chainMarginalMatches(_ c: ChainCase) throws {
        let eps = c.sde.eps
        let grid = c.quadratic ? try quadraticGrid(c.steps, eps: eps) : try TimeGrid.uniform(steps: c.steps, from: 1, to: eps)
        // 100- and 1000-step chains: 4000 samples (their formulas are the 10- and 37-step cases' at full
        // power; what they add is the deterministic check below that the chain ends near the data).
        let n = c.steps >= 100 ? 4000 : 20000
        let result: SamplingResult
        switch c.sde {
        case .ve: result = try run(try VESDE(), c, grid: grid, count: n)
        case .vp: result = try run(try VPSDE(), c, grid: grid, count: n)
        case .subVP: result = try run(try SubVPSDE(), c, grid: grid, count: n)
        }
        #expect(result.scoreEvaluations == c.steps * (c.ald ? 2 : 1))
        let truth = chainMarginal(c.sde, c.predictor, grid: grid, mu: Self.mu, sigma0: Self.sigma0, aldSNR: c.ald ? 0.1 : nil)
        let x = result.samples
        var pooled = 0.0
        for j in 0 ..< 2 {
            let m = Moments((0 ..< n).map { x.storage[$0 * 2 + j] })
            let se = (truth.variance / Double(n)).squareRoot()
            #expect(abs(m.mean - truth.mean[j]) <= zBound * se, "\(c.testDescription) coord \(j): mean \(m.mean) vs \(truth.mean[j]) (SE \(se))")
            pooled += m.variance / 2
        }
        let varSE = truth.variance * (2.0 / Double(2 * n - 2)).squareRoot()
        #expect(abs(pooled - truth.variance) <= zBound * varSE, "\(c.testDescription): variance \(pooled) vs \(truth.variance) (SE \(varSE))")
        // With 100+ steps the reference's samplers (reverse diffusion, ancestral) are usable: the chain
        // ends near the data (σ0² = 0.25, μ). (Euler on VE's probability flow is still 37% off at 100
        // uniform steps: first order on an exponential schedule — the few-step samplers' business.)
        if c.steps >= 100 && !c.ald && (c.predictor == .reverseDiffusion || c.predictor == .ancestral) {
            #expect(abs(truth.variance / (Self.sigma0 * Self.sigma0) - 1) < 0.12, "\(c.testDescription): the chain's variance \(truth.variance) is far from the data's")
            #expect(zip(truth.mean, Self.mu).allSatisfy { abs($0 - $1) < 0.05 })
        }
    }
}

// MARK: - The reference's discrete tables, bit for bit

@Suite("Reference coefficients reproduce score_sde's loop bit for bit")
struct ReferenceCoefficientTests {
    /// score_sde's PC loop written out here with its tables (REFERENCE §1.2–1.6): corrector first
    /// (Langevin, α = 1 − β_i for VP), then the predictor (reverse diffusion), discrete index
    /// ⌊t (N−1)⌋, output = the last predictor mean. Same draws as the library (one draw per update).
    static func referenceLoop(vp: Bool, N: Int, count: Int, seed: UInt64) throws -> Tensor {
        let sde: any ForwardSDE = vp ? try VPSDE() : try VESDE()
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let eps = vp ? 1e-3 : 1e-5
        let h: Double = (1 - eps) / Double(N - 1)   // numpy's linspace: start + i·step
        let times: [Double] = (0 ..< N).map { (i: Int) -> Double in i == N - 1 ? eps : 1 - Double(i) * h }
        var rng = RandomSource(seed: seed)
        var x = Tensor.standardNormal(shape: [count, 2], using: &rng)
        x.scale(by: vp ? 1 : 50)
        var mean = x
        let logRatio = log(50 / 0.01)
        func sigma(_ i: Int) -> Double { 0.01 * exp(Double(i) / Double(N - 1) * logRatio) }
        func beta(_ i: Int) -> Double { let lo = 0.1 / Double(N), hi = 20 / Double(N); return lo + (hi - lo) * Double(i) / Double(N - 1) }
        for t in times {
            let i = min(N - 1, max(0, Int((t * Double(N - 1)).rounded(.down))))
            // Langevin corrector, snr 0.16
            let g = try score.score(x, at: t)
            let z = Tensor.standardNormal(like: x, using: &rng)
            let gn = g.rowNorms().mean(), zn = z.rowNorms().mean()
            let r = 0.16 * zn / gn
            let alpha = vp ? 1 - beta(i) : 1
            let e = 2 * alpha * r * r
            let (p, q) = (e, (2 * e).squareRoot())
            for k in 0 ..< x.count { x.storage[k] += p * g.storage[k] + q * z.storage[k] }
            // Reverse-diffusion predictor
            var f = 0.0, G = 0.0
            if vp {
                let b: Double = beta(i)
                f = (1 - b).squareRoot() - 1; G = b.squareRoot()
            } else {
                let s: Double = sigma(i), a: Double = i == 0 ? 0 : sigma(i - 1)
                G = (s * s - a * a).squareRoot()
            }
            let s = try score.score(x, at: t)
            let z2 = Tensor.standardNormal(like: x, using: &rng)
            let (xa, sb) = (1 - f, G * G)
            for k in 0 ..< x.count {
                let mk = xa * x.storage[k] + sb * s.storage[k]
                mean.storage[k] = mk
                x.storage[k] = mk + G * z2.storage[k]
            }
        }
        return mean
    }

    @Test("RD + Langevin with .reference(N) equals the reference loop bitwise", arguments: [true, false])
    func bitwise(vp: Bool) throws {
        let N = 60, count = 257
        let expected = try Self.referenceLoop(vp: vp, N: N, count: count, seed: 9)
        let tables = try ReferenceDiscretization(steps: N)
        let eps = vp ? 1e-3 : 1e-5
        let grid = try TimeGrid.uniform(steps: N, from: 1, to: eps)
        var rng = RandomSource(seed: 9)
        let run: SamplingResult
        if vp {
            let sde = try VPSDE()
            run = try PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), grid: grid,
                                predictor: ReverseDiffusion(coefficients: .reference(tables)),
                                corrector: try Langevin(snr: 0.16, coefficients: .reference(tables))).sample(count: count, using: &rng)
        } else {
            let sde = try VESDE()
            run = try PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), grid: grid,
                                predictor: ReverseDiffusion(coefficients: .reference(tables)),
                                corrector: try Langevin(snr: 0.16, coefficients: .reference(tables))).sample(count: count, using: &rng)
        }
        #expect(run.samples.storage == expected.storage)
        #expect(run.scoreEvaluations == 2 * N)
    }

    @Test("reference coefficients refuse a grid they cannot honour")
    func refusesForeignGrid() throws {
        let sde = try VPSDE()
        let tables = try ReferenceDiscretization(steps: 1000)
        var rng = RandomSource(seed: 1)
        for grid in [try TimeGrid.uniform(steps: 100, from: 1, to: 1e-3), try quadraticGrid(1000, eps: 1e-3)] {
            let sampler = PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde), grid: grid,
                                    predictor: ReverseDiffusion(coefficients: .reference(tables)), corrector: NoCorrector())
            let message = invalidArgumentText { _ = try sampler.sample(count: 4, using: &rng) }
            #expect(message?.contains("only valid on its own grid") == true, "\(String(describing: message))")
            #expect(rng.draw == 0, "nothing was drawn before the error")
        }
        let ancestral = PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde),
                                  grid: try .uniform(steps: 100, from: 1, to: 1e-3), predictor: NoPredictor(),
                                  corrector: try Langevin(snr: 0.16, coefficients: .reference(tables)))
        #expect(invalidArgumentText { _ = try ancestral.sample(count: 4, using: &rng) } != nil)
    }
}

// MARK: - Stateful steps, the integrator, one NFE counter

/// Two-step Adams–Bashforth on the probability flow (any grid): its history lives in `State`.
struct TestAdamsBashforth2: Predictor {
    struct History { var drift: Tensor?; var step = 0.0 }
    func makeState(for x: Tensor) -> History { History() }
    func step(_ x: inout Tensor, mean: inout Tensor, state: inout History, from t: Double, to next: Double,
              along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let h = next - t
        let f = try reverse.drift(x, at: t, probabilityFlow: true)
        if let previous = state.drift {
            let r = h / state.step
            x.add(f, scaledBy: h * (1 + r / 2), previous, scaledBy: -h * r / 2)
        } else {
            x.add(f, scaledBy: h)
        }
        state = History(drift: f, step: h)
        mean = x
    }
}

/// A predictor that breaks the shape contract.
struct ShapeBreakingPredictor: Predictor {
    func step(_ x: inout Tensor, mean: inout Tensor, state: inout Void, from t: Double, to next: Double,
              along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        mean = Tensor(zeros: [x.rows + 1] + x.rowShape)
    }
}

@Suite("ReverseIntegrator: stateful steps, stepping by hand, NFE and model passes")
struct ReverseIntegratorTests {
    /// For Gaussian data the probability-flow map is affine and exact:
    /// x(eps) = m(eps) μ + √(V(eps)/V(T)) (x_T − m(T) μ). AB2's error must fall 4× per halving of the step.
    @Test("a user-written two-step predictor converges at order 2 to the exact flow map")
    func adamsBashforthOrder() throws {
        let sde = try VPSDE(), mu = [1.0, -0.5], s0 = 0.5, eps = 1e-3
        let score = GaussianMixtureScore(try GaussianMixture(means: [mu], isotropicStds: [s0]), diffusedBy: sde)
        var rng = RandomSource(seed: 5)
        let z = sde.samplePrior(rowShape: [2], count: 500, using: &rng)
        func V(_ t: Double) -> Double { let (m, s) = sde.marginal(at: t); return m * m * s0 * s0 + s * s }
        let k = (V(eps) / V(1)).squareRoot(), (me, m1) = (sde.marginal(at: eps).meanScale, sde.marginal(at: 1).meanScale)
        var errors = [Double]()
        for n in [25, 50, 100, 200] {
            let grid = try TimeGrid((0 ... n).map { 1 - Double($0) * (1 - eps) / Double(n) })
            var integrator = try ReverseIntegrator(sde: sde, score: score, grid: grid, predictor: TestAdamsBashforth2(),
                                                   corrector: NoCorrector(), denoising: .none, start: z, rng: rng)
            var events = 0
            while let e = try integrator.step() { events += 1; #expect(e.total == n) }
            #expect(events == n)
            let out = try integrator.result()
            #expect(out.scoreEvaluations == n)
            var se = 0.0
            for r in 0 ..< z.rows { for j in 0 ..< 2 {
                let exact = me * mu[j] + k * (z.storage[r * 2 + j] - m1 * mu[j])
                let d = out.samples.storage[r * 2 + j] - exact
                se += d * d
            } }
            errors.append((se / Double(z.count)).squareRoot())
        }
        for i in 1 ..< errors.count {
            let order = log2(errors[i - 1] / errors[i])
            #expect(order > 1.7 && order < 2.4, "AB2 observed order \(order) between \(errors[i - 1]) and \(errors[i])")
        }
    }

    @Test("stepping by hand gives the bytes of PCSampler.sample")
    func handSteppingMatches() throws {
        let sde = try VESDE()
        let sampler = PCSampler(sde: sde, score: GaussianMixtureScore(.ring(), diffusedBy: sde),
                                grid: try .uniform(steps: 40, from: 1, to: 1e-5), predictor: ReverseDiffusion(),
                                corrector: try Langevin(snr: 0.16))
        var a = RandomSource(seed: 3)
        let whole = try sampler.sample(count: 300, using: &a)
        var b = RandomSource(seed: 3)
        let start = sde.samplePrior(rowShape: [2], count: 300, using: &b)
        var integrator = try sampler.makeIntegrator(from: start, rng: b)
        var last: StepEvent?
        while let e = try integrator.step() { last = e }
        #expect(try integrator.result().samples == whole.samples)
        #expect(last?.scoreEvaluations == 80 && last?.next == 0)
        #expect(integrator.rng.draw == a.draw)
    }

    @Test("a guided score counts one NFE and all of its model passes")
    func modelPasses() throws {
        let sde = try VPSDE()
        let full = GaussianMixtureScore(.ring(), diffusedBy: sde)
        let guided = ClassifierFreeGuidance(conditional: full, unconditional: full, scale: 2)
        #expect(guided.passesPerEvaluation == 2)
        var rng = RandomSource(seed: 1)
        let run = try PCSampler(sde: sde, score: guided, grid: try .uniform(steps: 20, from: 1, to: 1e-3),
                                predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16)).sample(count: 50, using: &rng)
        #expect(run.scoreEvaluations == 40 && run.modelPasses == 80)
    }

    @Test("bad grids and shape-breaking predictors fail clearly")
    func badInput() throws {
        #expect(invalidParameterText { _ = try TimeGrid([1, 0.5, 0.7]) }?.contains("strictly decreasing") == true)
        #expect(invalidParameterText { _ = try TimeGrid([1]) }?.contains("at least 2") == true)
        #expect(invalidParameterText { _ = try TimeGrid([1, -0.1]) } != nil)
        #expect(invalidParameterText { _ = try TimeGrid.uniform(steps: 0, from: 1, to: 1e-3) } != nil)
        let sde = try VPSDE()
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        var rng = RandomSource(seed: 1)
        let late = PCSampler(sde: sde, score: score, grid: try TimeGrid([1.5, 0.5, 0]), predictor: ReverseDiffusion(), corrector: NoCorrector())
        #expect(invalidArgumentText { _ = try late.sample(count: 3, using: &rng) }?.contains("after the SDE's end time") == true)
        let broken = PCSampler(sde: sde, score: score, grid: try .uniform(steps: 5, from: 1, to: 1e-3),
                               predictor: ShapeBreakingPredictor(), corrector: NoCorrector())
        var caught: String?
        do { _ = try broken.sample(count: 3, using: &rng) } catch ScoreSDEError.shapeMismatch(let m) { caught = m }
        #expect(caught?.contains("must keep the batch's shape") == true)
    }
}

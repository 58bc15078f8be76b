import Foundation
import Testing
@testable import ScoreSDE

/// The SDEs under test: the reference defaults (REFERENCE §1.2) and a non-default parameter set each.
enum SDECase: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case veDefault, veOther, vpDefault, vpOther, subVPDefault, subVPOther
    var testDescription: String { rawValue }

    var sde: any ForwardSDE {
        switch self {
        case .veDefault: return try! VESDE()
        case .veOther: return try! VESDE(sigmaMin: 0.05, sigmaMax: 10)
        case .vpDefault: return try! VPSDE()
        case .vpOther: return try! VPSDE(betaMin: 0.5, betaMax: 8)
        case .subVPDefault: return try! SubVPSDE()
        case .subVPOther: return try! SubVPSDE(betaMin: 0.5, betaMax: 8)
        }
    }

    /// (kind, p1, p2): σmin/σmax or βmin/βmax, re-derived here from the parameters, not from the library.
    var parameters: (kind: String, a: Double, b: Double) {
        switch self {
        case .veDefault: return ("ve", 0.01, 50)
        case .veOther: return ("ve", 0.05, 10)
        case .vpDefault: return ("vp", 0.1, 20)
        case .vpOther: return ("vp", 0.5, 8)
        case .subVPDefault: return ("subvp", 0.1, 20)
        case .subVPOther: return ("subvp", 0.5, 8)
        }
    }

    /// The paper's closed forms (REFERENCE §1.2 table), written independently of the library:
    /// drift coefficient a(t), diffusion g(t), mean scale m(t) and std s(t).
    func closedForm(_ t: Double) -> (a: Double, g: Double, m: Double, s: Double) {
        let (kind, p, q) = parameters
        switch kind {
        case "ve":
            let sigma = p * pow(q / p, t)
            return (0, sigma * (2 * log(q / p)).squareRoot(), 1, sigma)
        default:
            let beta = p + t * (q - p)
            let integral = p * t + 0.5 * (q - p) * t * t      // ∫₀ᵗ β
            let m = exp(-0.5 * integral)
            // 1 − e^{−u} as −expm1(−u): the accurate evaluation for small u.
            if kind == "vp" { return (-0.5 * beta, beta.squareRoot(), m, (-expm1(-integral)).squareRoot()) }
            // sub-VP: g² = β (1 − e^{−2∫β}), std = 1 − e^{−∫β} (no square root).
            return (-0.5 * beta, (beta * -expm1(-2 * integral)).squareRoot(), m, -expm1(-integral))
        }
    }
}

@Suite("Forward SDEs")
struct SDETests {
    @Test("drift, diffusion and marginal equal the paper's closed forms", arguments: SDECase.allCases)
    func closedForms(c: SDECase) {
        let sde = c.sde
        for t in [0.0, 1e-3, 0.1, 0.37, 0.5, 0.9, 1.0] {
            let e = c.closedForm(t), (m, s) = sde.marginal(at: t)
            // Same formulas evaluated two ways: agreement to a few ulps of the result.
            #expect(abs(sde.driftCoefficient(at: t) - e.a) <= 1e-13 * max(1, abs(e.a)))
            #expect(abs(sde.diffusion(at: t) - e.g) <= 1e-12 * max(1e-300, e.g))
            #expect(abs(m - e.m) <= 1e-13)
            #expect(abs(s - e.s) <= 1e-12 * max(e.s, 1e-12), "\(c) std at \(t): \(s) vs \(e.s)")
        }
        #expect(sde.T == 1)
    }

    /// The perturbation kernel of a linear SDE solves dm/dt = a m, dv/dt = 2 a v + g² (moment
    /// equations). Integrated here with RK4, 20 000 steps (|a| h ≤ 5e-4: local error ≈ (ah)⁵/120,
    /// global < 1e-12). From a point mass the variance is s(t)² − m(t)² s(0)²: VE's marginal follows
    /// the reference convention that x(0) already carries N(0, σmin²) (PAPER App. B writes the kernel
    /// as σ²(t) − σ²(0)); for VP/sub-VP s(0) = 0.
    @Test("marginal(at:) solves the moment equations of drift and diffusion", arguments: SDECase.allCases)
    func marginalSolvesMomentEquations(c: SDECase) {
        let sde = c.sde
        let steps = 20_000, h = 1.0 / Double(steps)
        let s0 = sde.marginal(at: 0).std
        var m = 1.0, v = 0.0, t = 0.0
        func rhs(_ t: Double, _ m: Double, _ v: Double) -> (Double, Double) {
            let a = sde.driftCoefficient(at: t), g = sde.diffusion(at: t)
            return (a * m, 2 * a * v + g * g)
        }
        var checked = 0
        for k in 1 ... steps {
            let (k1m, k1v) = rhs(t, m, v)
            let (k2m, k2v) = rhs(t + h / 2, m + h / 2 * k1m, v + h / 2 * k1v)
            let (k3m, k3v) = rhs(t + h / 2, m + h / 2 * k2m, v + h / 2 * k2v)
            let (k4m, k4v) = rhs(t + h, m + h * k3m, v + h * k3v)
            m += h / 6 * (k1m + 2 * k2m + 2 * k3m + k4m)
            v += h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
            t = Double(k) * h
            if k % 2000 == 0 {
                let (em, es) = sde.marginal(at: t)
                let expectedVar = es * es - em * em * s0 * s0
                #expect(abs(m - em) <= 1e-9 * em, "\(c) mean scale at \(t): ODE \(m) vs \(em)")
                #expect(abs(v - expectedVar) <= 1e-9 * expectedVar, "\(c) variance at \(t): ODE \(v) vs \(expectedVar)")
                checked += 1
            }
        }
        #expect(checked == 10)
    }

    /// Monte-Carlo: 4000 paths of the forward SDE from the point mass x0 = 1.5, Euler–Maruyama
    /// with 500 steps (coefficients at the step midpoints, which makes the time-dependent g² error
    /// O(h²) instead of O(h)). EM on a linear SDE has exactly computable moments
    /// (m_{k+1} = (1 + a_k h) m_k, v_{k+1} = (1 + a_k h)² v_k + g_k² h); their distance to the exact
    /// kernel is the stated discretization bias and is added to the 5σ MC bounds
    /// (SE of the mean √(v/n), of the std √(v/(2n))). The bias is asserted small (< 1% of the std)
    /// so the comparison is meaningful.
    @Test("marginal(at:) vs Monte-Carlo simulation of the forward SDE", arguments: SDECase.allCases)
    func marginalVsSimulation(c: SDECase) throws {
        let sde = c.sde
        // 4000 paths of 500 steps (it was 20 000 of 1000: the marginals are pinned to 1e-9 by the
        // moment equations above; this independent simulation keeps 5σ bounds of 7.9% on the std).
        let n = 4000, steps = 500, h = 1.0 / Double(steps), x0 = 1.5
        let s0 = sde.marginal(at: 0).std
        var x = try Tensor(shape: [n / 2, 2], storage: [Double](repeating: x0, count: n))
        var rng = RandomSource(seed: 2021)
        var emMean = x0, emVar = 0.0
        for k in 0 ..< steps {
            let t = (Double(k) + 0.5) * h
            let a = sde.driftCoefficient(at: t), g = sde.diffusion(at: t)
            x.scale(by: 1 + a * h)
            x.addStandardNormal(scaledBy: g * h.squareRoot(), using: &rng)
            emMean *= 1 + a * h
            emVar = (1 + a * h) * (1 + a * h) * emVar + g * g * h
            let tNext = Double(k + 1) * h
            guard [50, 250, 500].contains(k + 1) else { continue }
            let (m, s) = sde.marginal(at: tNext)
            let trueMean = m * x0, trueStd = (s * s - m * m * s0 * s0).squareRoot()
            let biasMean = abs(emMean - trueMean), biasStd = abs(emVar.squareRoot() - trueStd)
            #expect(biasStd <= 0.01 * trueStd, "\(c): EM discretization bias \(biasStd) too large to test at t = \(tNext)")
            let mom = Moments(x.storage)
            let nd = Double(n)
            let tolMean = zBound * (emVar / nd).squareRoot() + biasMean
            let tolStd = zBound * (emVar / (2 * nd)).squareRoot() + biasStd
            #expect(abs(mom.mean - trueMean) <= tolMean, "\(c) t=\(tNext): mean \(mom.mean) vs \(trueMean) (tol \(tolMean))")
            #expect(abs(mom.variance.squareRoot() - trueStd) <= tolStd,
                    "\(c) t=\(tNext): std \(mom.variance.squareRoot()) vs \(trueStd) (tol \(tolStd))")
        }
    }

    /// Sub-VP's std is 1 − e^{−∫β} (variance (1 − e^{−∫β})², PAPER App. B), not its square root.
    /// The simulation must agree with the former and reject the latter by far more than its
    /// tolerance (so this test can fail if the square root is "fixed" in).
    @Test("sub-VP std has no square root: simulation agrees, the square-root variant is rejected")
    func subVPNoSquareRoot() throws {
        let sde = try SubVPSDE()
        let n = 4000, steps = 500, h = 1.0 / Double(steps)
        var x = Tensor(zeros: [n, 1])
        var rng = RandomSource(seed: 34)
        for k in 0 ..< steps {
            let t = (Double(k) + 0.5) * h
            x.scale(by: 1 + sde.driftCoefficient(at: t) * h)
            x.addStandardNormal(scaledBy: sde.diffusion(at: t) * h.squareRoot(), using: &rng)
            let tn = Double(k + 1) * h
            guard [25, 50, 250, 500].contains(k + 1) else { continue }
            let integral = 0.1 * tn + 0.5 * 19.9 * tn * tn
            let noSqrt = 1 - exp(-integral), withSqrt = noSqrt.squareRoot()
            #expect(abs(sde.marginal(at: tn).std - noSqrt) <= 1e-12)
            let simStd = Moments(x.storage).variance.squareRoot()
            // 5σ MC (√(v/2n)) + 1% allowance for the EM bias (bounded in `marginalVsSimulation`).
            let tol = zBound * noSqrt / (2 * Double(n)).squareRoot() + 0.01 * noSqrt
            #expect(abs(simStd - noSqrt) <= tol, "t=\(tn): simulated std \(simStd) vs 1 − e^{−∫β} = \(noSqrt)")
            // For t ≥ 0.5 both forms approach 1 and cannot be told apart; at t ≤ 0.1 they differ 3×.
            if tn <= 0.1 { #expect(abs(simStd - withSqrt) > 10 * tol, "t=\(tn): the square-root form \(withSqrt) is not distinguishable") }
        }
    }

    /// For tiny t, s² = 1 − e^{−u} with u = βmin t + ½(βmax − βmin) t²: the series u − u²/2 + u³/6
    /// (truncation u⁴/24 ≤ 1e-37 relative here) is exact to double precision, and √(βmin t) is its
    /// leading term (relative error ≤ (βmax−βmin) t / (4 βmin) + u/4 ≤ 3e-7 at t = 1e-8).
    /// A naive √(1 − exp(2 log m)) loses ≈ 1e-16/u relative: 1e-7 at t = 1e-8, 10% at t = 1e-14.
    @Test("VP/sub-VP std keep full precision for tiny t", arguments: [1e-8, 1e-10, 1e-12, 1e-14, 1e-15])
    func tinyTime(t: Double) throws {
        let vp = try VPSDE(), sub = try SubVPSDE()
        let u = 0.1 * t + 0.5 * 19.9 * t * t
        let series = u - u * u / 2 + u * u * u / 6
        let s = vp.marginal(at: t).std
        #expect(abs(s - series.squareRoot()) <= 1e-12 * series.squareRoot(), "VP std \(s) vs \(series.squareRoot())")
        #expect(abs(s - (0.1 * t).squareRoot()) <= 1e-6 * s)
        #expect(abs(vp.marginal(at: t).meanScale - exp(-0.5 * u)) <= 1e-15)
        let ss = sub.marginal(at: t).std
        #expect(abs(ss - series) <= 1e-12 * series, "sub-VP std \(ss) vs \(series)")
    }

    @Test("priorLogDensity equals the Gaussian log density; the prior has std priorStd", arguments: SDECase.allCases)
    func priorLogDensity(c: SDECase) throws {
        let sde = c.sde
        let sigma = c.parameters.kind == "ve" ? c.parameters.b : 1   // REFERENCE: σmax for VE, 1 otherwise
        #expect(sde.priorStd == sigma)
        var rng = RandomSource(seed: 9)
        let n = 40_000
        let x = sde.samplePrior(rowShape: [1, 2, 2], count: n, using: &rng)   // image-shaped rows, D = 4
        #expect(x.shape == [n, 1, 2, 2])
        // Prior samples: 5σ on the std (SE σ/√(2·4n)) and mean (SE σ/√(4n)).
        let mom = Moments(x.storage)
        #expect(abs(mom.mean) <= zBound * sigma / Double(4 * n).squareRoot())
        #expect(abs(mom.variance.squareRoot() - sigma) <= zBound * sigma / Double(8 * n).squareRoot())
        // Log density, computed here: −D/2 log(2πσ²) − ‖x‖²/(2σ²).
        let probe = try Tensor(shape: [3, 1, 2, 2], storage: [0, 0, 0, 0, 1, -2, 0.5, 3, 100, -7, 0.25, 1e3])
        let lp = sde.priorLogDensity(probe)
        for r in 0 ..< 3 {
            let row = probe.row(r)
            let q = row.reduce(0) { $0 + $1 * $1 }
            let expected = -2 * log(2 * Double.pi * sigma * sigma) - q / (2 * sigma * sigma)
            #expect(abs(lp[r] - expected) <= 1e-12 * max(1, abs(expected)), "row \(r): \(lp[r]) vs \(expected)")
        }
    }

    /// numpy/torch `linspace(a, b, N)` is `a + i (b − a)/(N − 1)` for N ≥ 2 and `[a]` for N = 1.
    static func linspace(_ a: Double, _ b: Double, _ n: Int) -> [Double] {
        n == 1 ? [a] : (0 ..< n).map { a + Double($0) * (b - a) / Double(n - 1) }
    }

    @Test("VE discrete sigmas = exp(linspace(log σmin, log σmax, N))", arguments: [1, 2, 10, 1000])
    func veDiscreteSigmas(N: Int) throws {
        let sde = try VESDE(sigmaMin: 0.01, sigmaMax: 50)
        let tables = try ReferenceDiscretization(steps: N)
        let expected = Self.linspace(log(0.01), log(50), N).map { exp($0) }
        for i in 0 ..< N {
            #expect(abs(tables.sigma(sde, i) - expected[i]) <= 1e-13 * expected[i], "N=\(N) i=\(i): \(tables.sigma(sde, i)) vs \(expected[i])")
        }
    }

    @Test("VP discrete betas = linspace(βmin/N, βmax/N, N)", arguments: [1, 2, 10, 1000])
    func vpDiscreteBetas(N: Int) throws {
        let betaMax = min(20, 0.9 * Double(N))   // βmax/N < 1 is required
        let tables = try ReferenceDiscretization(steps: N)
        let expected = Self.linspace(0.1 / Double(N), betaMax / Double(N), N)
        for i in 0 ..< N {
            #expect(abs(tables.beta(0.1, betaMax, i) - expected[i]) <= 1e-15 * max(expected[i], 1e-3))
        }
    }

    /// REFERENCE §1.2/§1.4 at the reference's timestep `long(t (N−1)/T)`: SMLD/DDPM discretize,
    /// ancestral coefficients and Langevin α (per-step 1 − β_i; cumulative ∏(1 − β_j) for Alg. 5).
    @Test("discrete forms: discretize, ancestral coefficients, Langevin α", arguments: [0.0, 1e-5, 1e-3, 0.25, 0.5, 0.7777, 0.999, 1.0])
    func discreteForms(t: Double) throws {
        let N = 1000
        let i = Int((t * Double(N - 1) / 1).rounded(.down))
        let ref = try ReferenceDiscretization(steps: N)
        // VE
        let ve = try VESDE()
        let sigmas = Self.linspace(log(0.01), log(50), N).map { exp($0) }
        let sigma = sigmas[i], adj = i == 0 ? 0 : sigmas[i - 1]
        #expect(ref.index(at: t, T: 1) == i)
        let (vf, vG) = ref.discretize(ve, at: t)
        #expect(vf == 0)
        #expect(abs(vG - (sigma * sigma - adj * adj).squareRoot()) <= 1e-12 * vG)
        let va = ref.ancestralCoefficients(ve, at: t)
        #expect(va.xScale == 1)
        #expect(abs(va.scoreScale - (sigma * sigma - adj * adj)) <= 1e-12 * va.scoreScale)
        let veNoise = (adj * adj * (sigma * sigma - adj * adj) / (sigma * sigma)).squareRoot()
        #expect(abs(va.noise - veNoise) <= 1e-12 * max(veNoise, 1e-300))
        #expect(ref.langevinAlpha(ve, at: t) == 1 && ref.cumulativeLangevinAlpha(ve, at: t) == 1)
        // VP
        let vp = try VPSDE()
        let betas = Self.linspace(0.1 / Double(N), 20 / Double(N), N)
        let beta = betas[i]
        let (pf, pG) = ref.discretize(vp, at: t)
        #expect(abs(pf - ((1 - beta).squareRoot() - 1)) <= 1e-15)
        #expect(abs(pG - beta.squareRoot()) <= 1e-15)
        let pa = ref.ancestralCoefficients(vp, at: t)
        #expect(abs(pa.xScale - 1 / (1 - beta).squareRoot()) <= 1e-14)
        #expect(abs(pa.scoreScale - beta / (1 - beta).squareRoot()) <= 1e-15)
        #expect(abs(pa.noise - beta.squareRoot()) <= 1e-15)
        #expect(abs(ref.langevinAlpha(vp, at: t) - (1 - beta)) <= 1e-15)
        let cumulative = betas[0 ... i].reduce(1.0) { $0 * (1 - $1) }
        #expect(abs(ref.cumulativeLangevinAlpha(vp, at: t) - cumulative) <= 1e-12 * cumulative)
        // sub-VP: Euler–Maruyama discretize with dt = 1/N, α as VP.
        let sub = try SubVPSDE()
        let e = SDECase.subVPDefault.closedForm(t)
        let (sf, sG) = ref.discretize(sub, at: t)
        #expect(abs(sf - e.a / Double(N)) <= 1e-15)
        #expect(abs(sG - e.g / Double(N).squareRoot()) <= 1e-13 * max(sG, 1e-300))
        #expect(abs(ref.langevinAlpha(sub, at: t) - (1 - beta)) <= 1e-15)
        #expect(abs(ref.cumulativeLangevinAlpha(sub, at: t) - cumulative) <= 1e-12 * cumulative)
    }

    struct InvalidCase: Sendable, CustomTestStringConvertible {
        let label: String
        let parameter: String
        let make: @Sendable () throws -> Void
        var testDescription: String { label }
    }

    static let invalidCases: [InvalidCase] = {
        var cases = [InvalidCase]()
        func add(_ label: String, _ parameter: String, _ make: @escaping @Sendable () throws -> Void) {
            cases.append(InvalidCase(label: label, parameter: parameter, make: make))
        }
        add("VE σmin = σmax", "sigmaMax") { _ = try VESDE(sigmaMin: 1, sigmaMax: 1) }
        add("VE σmin > σmax", "sigmaMax") { _ = try VESDE(sigmaMin: 2, sigmaMax: 1) }
        add("VE σmin = 0", "sigmaMin") { _ = try VESDE(sigmaMin: 0) }
        add("VE σmin < 0", "sigmaMin") { _ = try VESDE(sigmaMin: -0.01) }
        add("VE σmin NaN", "sigmaMin") { _ = try VESDE(sigmaMin: .nan) }
        add("VE σmax NaN", "sigmaMax") { _ = try VESDE(sigmaMax: .nan) }
        add("VE σmax inf", "sigmaMax") { _ = try VESDE(sigmaMax: .infinity) }
        add("reference N = 0", "steps") { _ = try ReferenceDiscretization(steps: 0) }
        add("reference N < 0", "steps") { _ = try ReferenceDiscretization(steps: -3) }
        add("reference VP βmax/N ≥ 1", "betaMax / N") {
            try ReferenceDiscretization(steps: 10).validate(grid: try .uniform(steps: 10, from: 1, to: 1e-3), sde: try VPSDE())
        }
        add("reference on a foreign grid", "only valid on its own grid") {
            try ReferenceDiscretization(steps: 1000).validate(grid: try .uniform(steps: 100, from: 1, to: 1e-3), sde: try VPSDE())
        }
        let makers: [(String, @Sendable (Double, Double, Int) throws -> Void)] = [
            ("VP", { a, b, n in _ = try VPSDE(betaMin: a, betaMax: b) }),
            ("subVP", { a, b, n in _ = try SubVPSDE(betaMin: a, betaMax: b) }),
        ]
        for (name, make) in makers {
            add("\(name) βmin = 0", "betaMin") { try make(0, 20, 1000) }
            add("\(name) βmin < 0", "betaMin") { try make(-0.1, 20, 1000) }
            add("\(name) βmin NaN", "betaMin") { try make(.nan, 20, 1000) }
            add("\(name) βmin = βmax", "betaMax") { try make(5, 5, 1000) }
            add("\(name) βmin > βmax", "betaMax") { try make(5, 1, 1000) }
            add("\(name) βmax NaN", "betaMax") { try make(0.1, .nan, 1000) }
            add("\(name) βmax inf", "betaMax") { try make(0.1, .infinity, 1000) }
        }
        return cases
    }()

    @Test("invalid SDE parameters throw invalidParameter naming the parameter (invalidArgument for a grid that does not fit)", arguments: invalidCases)
    func invalidParameters(c: InvalidCase) {
        if let p = invalidParameter({ try c.make() }) {
            #expect(p.name == c.parameter, "\(c.label): \(p) does not name \(c.parameter)")
            return
        }
        let message = invalidArgumentText { try c.make() }
        #expect(message != nil, "\(c.label) did not throw invalidArgument")
        if let message { #expect(message.contains(c.parameter), "\(c.label): message '\(message)' does not name \(c.parameter)") }
    }

    /// The reference steps through `linspace(T, eps, N)` and reads discrete tables at
    /// `long(t (N−1)/T)`: index N−1−i + ⌊i·eps⌋ at step i, so indices N−1, …, 0 each once whenever
    /// (N − 1)·eps < 1 (true for the reference's N = 1000 with eps = 1e-3 or 1e-5; N = 2000 with
    /// eps = 1e-3 is outside, and the reference itself repeats an index there). In that domain our
    /// uniform grid (a step taken at each interval's start) must visit the same indices; checked
    /// with an index computed here and with `ReferenceDiscretization.index(at:T:)`.
    @Test("the uniform TimeGrid visits discrete indices N−1…0 exactly once",
          arguments: zip([1, 1, 2, 3, 10, 100, 999, 999, 1000, 1000, 2000], [1e-3, 1e-5, 1e-3, 1e-3, 1e-3, 1e-5, 1e-3, 1e-5, 1e-3, 1e-5, 1e-5]))
    func gridVisitsEveryIndex(N: Int, eps: Double) throws {
        #expect(Double(N - 1) * eps < 1)   // inside the reference's domain (see above)
        let grid = try TimeGrid.uniform(steps: N, from: 1, to: eps)
        #expect(grid.steps == N)
        #expect(grid.times.first == 1 && grid.times.last! <= eps && grid.times.last! >= 0)
        let visited = grid.intervals.map { Int(($0.t * Double(N - 1)).rounded(.down)) }
        let expected = Array((0 ..< N).reversed())
        let firstWrong = visited.indices.first { visited[$0] != expected[$0] }
        #expect(firstWrong == nil, "N=\(N) eps=\(eps): step \(firstWrong ?? -1) at t = \(grid.intervals[firstWrong ?? 0].t) uses index \(visited[firstWrong ?? 0]) instead of \(expected[firstWrong ?? 0]); index 0 visited \(visited.filter { $0 == 0 }.count) times")
        let vp = try VPSDE(betaMin: 0.1, betaMax: 0.5)
        #expect(grid.intervals.map { try! ReferenceDiscretization(steps: N).index(at: $0.t, T: vp.T) } == visited)   // the library's index rule is the reference's
        // The reference's own grid has the property in this domain.
        let ref = Self.linspace(1, eps, N).map { Int(($0 * Double(N - 1)).rounded(.down)) }
        #expect(ref == expected)
    }
}

import Foundation
import Testing
@testable import ScoreSDE

// Few-step samplers against closed forms written here. For Gaussian data N(μ, σ0² I) the
// probability-flow map is affine: x(eps) = m(eps) μ + √(V(eps)/V(T)) (x_T − m(T) μ), V = m² σ0² + std²
// (ChainSDE in IntegratorStepTests gives m, std from the SDE formulas, not the library's code).

enum FewStepMethod: String, CaseIterable, Sendable {
    case ddim, dpm2M, dpm3M, heun, unipc2, unipc3
    /// The global order each documents: DPM-Solver++ 3M's first-order warm-up step limits it to 2;
    /// UniPC's corrected warm-up and uncorrected last step limit both UniPC-2 and UniPC-3 to 3.
    var order: Double { switch self { case .ddim: 1; case .dpm2M, .dpm3M, .heun: 2; case .unipc2, .unipc3: 3 } }
    var nfePerStep: Int { self == .heun ? 2 : 1 }
}

struct FlowMapCase: Sendable, CustomTestStringConvertible {
    let sde: ChainSDE, method: FewStepMethod
    var testDescription: String { "\(sde) \(method)" }
}

@Suite("Few-step samplers: time grids, closed forms, convergence orders")
struct FewStepSamplerTests {
    static let mu = [1.0, -0.5], sigma0 = 0.5

    static func predictor(_ m: FewStepMethod) throws -> any Predictor {
        switch m {
        case .ddim: return try DDIM()
        case .dpm2M: return try DPMSolverPlusPlus(order: 2)
        case .dpm3M: return try DPMSolverPlusPlus(order: 3)
        case .heun: return EDMHeun()
        case .unipc2: return try UniPC(order: 2)
        case .unipc3: return try UniPC(order: 3)
        }
    }

    /// Map RMSE at `eps` from fixed latents on a logSNR grid of `steps` steps.
    static func flowMapError<S: ForwardSDE>(_ sde: S, _ c: FlowMapCase, steps: Int, z: Tensor) throws -> (rmse: Double, nfe: Int) {
        let data = try GaussianMixture(means: [mu], isotropicStds: [sigma0])
        let score = GaussianMixtureScore(data, diffusedBy: sde)
        let eps = c.sde.eps
        let grid = try TimeGrid.spaced(.logSNR, steps: steps, from: 1, to: eps, sde: sde)
        func run<P: Predictor>(_ p: P) throws -> SamplingResult {
            var integrator = try ReverseIntegrator(sde: sde, score: score, grid: grid, predictor: p, corrector: NoCorrector(),
                                                   denoising: .none, start: z, rng: RandomSource(seed: 1))
            return try integrator.solve()
        }
        let out = try run(try predictor(c.method))
        func V(_ t: Double) -> Double { let (m, s) = c.sde.marginal(t); return m * m * sigma0 * sigma0 + s * s }
        let k = (V(eps) / V(1)).squareRoot(), me = c.sde.marginal(eps).m, m1 = c.sde.marginal(1).m
        var se = 0.0
        for r in 0 ..< z.rows { for j in 0 ..< 2 {
            let exact = me * mu[j] + k * (z.storage[r * 2 + j] - m1 * mu[j])
            let d = out.samples.storage[r * 2 + j] - exact
            se += d * d
        } }
        return ((se / Double(z.count)).squareRoot(), out.scoreEvaluations)
    }

    static let cases: [FlowMapCase] = ChainSDE.allCases.flatMap { s in FewStepMethod.allCases.map { FlowMapCase(sde: s, method: $0) } }

    /// The error must fall by 2^order per doubling of the steps: the observed order over the last two
    /// doublings (32 → 64 → 128 steps, the asymptotic range) within −0.3/+0.7 of the documented one;
    /// NFE = steps × NFE per step.
    @Test("each method converges to the exact flow map at its documented order", arguments: cases)
    func convergenceOrder(_ c: FlowMapCase) throws {
        var rng = RandomSource(seed: 5)
        let z = Tensor.standardNormal(shape: [200, 2], using: &rng).scaled(by: c.sde.priorStd)
        var errors = [Double]()
        for n in [16, 32, 64, 128] {
            let r: (rmse: Double, nfe: Int)
            switch c.sde {
            case .ve: r = try Self.flowMapError(try VESDE(), c, steps: n, z: z)
            case .vp: r = try Self.flowMapError(try VPSDE(), c, steps: n, z: z)
            case .subVP: r = try Self.flowMapError(try SubVPSDE(), c, steps: n, z: z)
            }
            #expect(r.nfe == n * c.method.nfePerStep)
            errors.append(r.rmse)
        }
        if c.method == .unipc3 {
            // Order 3 from the warm-up, 4 in the interior: the leading error coefficient changes sign
            // between 32 and 64 steps on sub-VP, so the rate is checked over all three doublings.
            let observed = log2(errors[0] / errors[3]) / 3
            #expect(observed > 2.7 && observed < 4.3, "\(c.testDescription): mean observed order \(observed) (errors \(errors))")
            return
        }
        for i in 2 ..< errors.count {
            let observed = log2(errors[i - 1] / errors[i])
            #expect(observed > c.method.order - 0.3 && observed < c.method.order + 0.7,
                    "\(c.testDescription): observed order \(observed) between errors \(errors[i - 1]) and \(errors[i]) (all: \(errors))")
        }
    }

    /// One DDIM step T → eps with η = 0: x' = m_e x0 + std_e ε̂, x0 = (x + std_T² s)/m_T, ε̂ = −std_T s.
    @Test("DDIM with eta 0 on a one-step grid equals its closed form", arguments: ChainSDE.allCases)
    func ddimOneStep(_ c: ChainSDE) throws {
        let eps = c.eps
        let grid = try TimeGrid([1, eps])
        var rng = RandomSource(seed: 8)
        let z = Tensor.standardNormal(shape: [50, 2], using: &rng).scaled(by: c.priorStd)
        let (mT, sT) = c.marginal(1), (me, se) = c.marginal(eps)
        let V = mT * mT * Self.sigma0 * Self.sigma0 + sT * sT
        func go<S: ForwardSDE>(_ sde: S) throws -> Tensor {
            let score = GaussianMixtureScore(try GaussianMixture(means: [Self.mu], isotropicStds: [Self.sigma0]), diffusedBy: sde)
            var integrator = try ReverseIntegrator(sde: sde, score: score, grid: grid, predictor: try DDIM(eta: 0),
                                                   corrector: NoCorrector(), denoising: .none, start: z, rng: rng)
            let out = try integrator.solve()
            #expect(out.scoreEvaluations == 1)
            return out.samples
        }
        let x: Tensor
        switch c {
        case .ve: x = try go(try VESDE())
        case .vp: x = try go(try VPSDE())
        case .subVP: x = try go(try SubVPSDE())
        }
        for r in 0 ..< z.rows { for j in 0 ..< 2 {
            let xt = z.storage[r * 2 + j]
            let s = -(xt - mT * Self.mu[j]) / V
            let expected = me * (xt + sT * sT * s) / mT + se * (-sT * s)
            #expect(abs(x.storage[r * 2 + j] - expected) <= 1e-10 * max(1, abs(expected)), "\(c) row \(r): \(x.storage[r * 2 + j]) vs \(expected)")
        } }
    }

    /// DDIM η = 1 on VP, written from the DDIM paper (eq. 12, 16) with ᾱ = m²: the chain is affine in
    /// x with Gaussian noise, so its output marginal is propagated exactly; 20 000 samples, mean and
    /// variance within 5 standard errors.
    @Test("DDIM with eta 1 has the exact marginal of the discrete chain", arguments: [8, 30])
    func ddimEtaOneMarginal(steps: Int) throws {
        let sde = try VPSDE(), n = 20000, eps = 1e-3
        let grid = try TimeGrid.spaced(.timeUniform, steps: steps, from: 1, to: eps, sde: sde)
        var rng = RandomSource(seed: 21)
        let score = GaussianMixtureScore(try GaussianMixture(means: [Self.mu], isotropicStds: [Self.sigma0]), diffusedBy: sde)
        let run = try PCSampler(sde: sde, score: score, grid: grid, predictor: try DDIM(eta: 1), corrector: NoCorrector(),
                                denoising: .none).sample(count: n, using: &rng)
        #expect(run.scoreEvaluations == steps)
        func chain(_ grid: TimeGrid) -> (mean: [Double], variance: Double) {
        var mean = [0.0, 0.0], variance = 1.0
        for (t, next) in grid.intervals {
            let (m, sd) = ChainSDE.vp.marginal(t), mn = ChainSDE.vp.marginal(next).m
            let (abT, abN) = (m * m, mn * mn)
            let sig = ((1 - abN) / (1 - abT)).squareRoot() * (1 - abT / abN).squareRoot()
            let V = abT * Self.sigma0 * Self.sigma0 + sd * sd
            // x0 = (x + (1−ᾱ) s)/√ᾱ, ε̂ = −√(1−ᾱ) s, s = −(x − m μ)/V: x' = A x + B μ + sig z
            let kx0 = (1 - (1 - abT) / V) / m, kmu0 = (1 - abT) / V     // x0 = kx0 x + kmu0 μ
            let keps = sd / V                                          // ε̂ = keps (x − m μ)
            let w = (1 - abN - sig * sig).squareRoot()
            let A = abN.squareRoot() * kx0 + w * keps
            let B = abN.squareRoot() * kmu0 - w * keps * m
            mean = mean.indices.map { A * mean[$0] + B * Self.mu[$0] }
            variance = A * A * variance + sig * sig
        }
        return (mean, variance)
        }
        let (mean, variance) = chain(grid)
        // Beside the chain written from the update rule, the truth it must converge to: the exact
        // marginal N(m μ, m²σ0² + std²) at eps. DDIM η = 1 is a first-order discretization of the
        // reverse SDE: from 100 to 1000 steps the chain's variance error falls by more than 4×
        // (10× asymptotically; 8 → 80 steps gave 4.2×, still pre-asymptotic) to below 5%.
        let (me, se) = ChainSDE.vp.marginal(eps)
        let exactVariance = me * me * Self.sigma0 * Self.sigma0 + se * se
        let coarse = chain(try TimeGrid.spaced(.timeUniform, steps: 100, from: 1, to: eps, sde: sde))
        let fine = chain(try TimeGrid.spaced(.timeUniform, steps: 1000, from: 1, to: eps, sde: sde))
        let coarseError = abs(coarse.variance / exactVariance - 1), fineError = abs(fine.variance / exactVariance - 1)
        #expect(fineError < coarseError / 4 && fineError < 0.05 && abs(fine.mean[0] - me * Self.mu[0]) < 0.01,
                "chain variance error \(coarseError) at 100 steps, \(fineError) at 1000; mean \(fine.mean[0]) vs \(me * Self.mu[0])")
        let x = run.samples
        var pooled = 0.0
        for j in 0 ..< 2 {
            let mo = Moments((0 ..< n).map { x.storage[$0 * 2 + j] })
            let se = (variance / Double(n)).squareRoot()
            #expect(abs(mo.mean - mean[j]) <= zBound * se, "coord \(j): mean \(mo.mean) vs \(mean[j])")
            pooled += mo.variance / 2
        }
        let vse = variance * (2.0 / Double(2 * n - 2)).squareRoot()
        #expect(abs(pooled - variance) <= zBound * vse, "variance \(pooled) vs \(variance)")
    }

    @Test("spaced grids: endpoints, monotone, and uniform in their variable", arguments: ChainSDE.allCases)
    func grids(_ c: ChainSDE) throws {
        func check<S: ForwardSDE>(_ sde: S) throws {
            let n = 12, eps = c.eps
            func lam(_ t: Double) -> Double { let (m, s) = c.marginal(t); return log(m / s) }
            for spacing in [TimeSpacing.timeUniform, .timeQuadratic, .timePower(2.5), .logSNR, .karras(rho: 7)] {
                let g = try TimeGrid.spaced(spacing, steps: n, from: 1, to: eps, sde: sde)
                #expect(g.steps == n && g.times.first == 1 && g.times.last == eps)
                let u: [Double]
                switch spacing {
                case .timeUniform: u = g.times
                case .timeQuadratic: u = g.times.map { $0.squareRoot() }
                case .timePower(let p): u = g.times.map { pow($0, 1 / p) }
                case .logSNR: u = g.times.map(lam)
                case .karras(let rho): u = g.times.map { pow(exp(-lam($0)), 1 / rho) }
                }
                let d = (u[n] - u[0]) / Double(n)
                for i in 1 ... n { #expect(abs(u[i] - u[i - 1] - d) <= 1e-9 * max(1, abs(d)) * 10, "\(spacing) step \(i): \(u[i] - u[i - 1]) vs \(d)") }
            }
        }
        switch c {
        case .ve: try check(try VESDE())
        case .vp: try check(try VPSDE())
        case .subVP: try check(try SubVPSDE())
        }
    }

    @Test("bad parameters are refused")
    func badInput() throws {
        #expect(invalidParameterText { _ = try DDIM(eta: -0.1) }?.contains("eta") == true)
        #expect(invalidParameterText { _ = try DPMSolverPlusPlus(order: 4) }?.contains("orders 1, 2 and 3") == true)
        #expect(invalidParameterText { _ = try DPMSolverPlusPlus(order: 3, orders: [3, 3]) }?.contains("at most i + 1") == true)
        let sde = try VPSDE()
        #expect(invalidParameterText { _ = try TimeGrid.spaced(.logSNR, steps: 0, from: 1, to: 1e-3, sde: sde) } != nil)
        #expect(invalidParameterText { _ = try TimeGrid.spaced(.karras(rho: 0), steps: 5, from: 1, to: 1e-3, sde: sde) } != nil)
        let p = try DPMSolverPlusPlus(order: 2, orders: [1, 2])
        let grid = try TimeGrid.spaced(.logSNR, steps: 3, from: 1, to: 1e-3, sde: sde)
        #expect(invalidArgumentText { try p.validate(grid: grid, sde: sde) }?.contains("3 steps") == true)
        #expect(DPMSolverPlusPlus.lowerOrderFinal(order: 3, steps: 6) == [1, 2, 3, 3, 2, 1])
        #expect(invalidParameter { _ = try FewStepRecommendation.for(nfe: 1, dimension: 2) }?.name == "nfe")
        #expect(invalidParameterText { _ = try FewStepRecommendation.for(nfe: 10, dimension: 0) }?.contains("dimension") == true)
        // The documented rule: order 3 lower-final on t^1.25 from 3-D; in 2-D order 2 on t^2 below 15 NFE, then order 3
        // on t^2.5; every step third order on time-quadratic steps from 40 NFE.
        let high = try FewStepRecommendation.for(nfe: 10, dimension: 64)
        #expect(high.predictor.orders == DPMSolverPlusPlus.lowerOrderFinal(order: 3, steps: 10) && high.spacing == .timePower(1.25))
        let low = try FewStepRecommendation.for(nfe: 10, dimension: 2), low15 = try FewStepRecommendation.for(nfe: 15, dimension: 2)
        #expect(low.predictor.order == 2 && low.predictor.orders == DPMSolverPlusPlus.lowerOrderFinal(order: 2, steps: 10) && low.spacing == .timePower(2))
        #expect(low15.predictor.order == 3 && low15.spacing == .timePower(2.5))
        let many = try FewStepRecommendation.for(nfe: 40, dimension: 2)
        #expect(many.predictor.orders == nil && many.predictor.order == 3 && many.spacing == .timeQuadratic)
    }
}

@Suite("Dynamic thresholding (Imagen)")
struct DynamicThresholdingTests {
    /// Row k/100, k = 0…200 (max 2): p = 0.75 gives s = a[150] = 1.5 exactly, so the row becomes
    /// min(x, 1.5)/1.5; a row inside [−1, 1] is untouched; every value ends in [−1, 1].
    @Test func closedForm() throws {
        let ramp = (0 ... 200).map { Double($0) / 100 }
        let inside = (0 ... 200).map { sin(Double($0)) * 0.9 }
        var x = try Tensor(shape: [3, 201], storage: ramp + inside + ramp.map { -3 * $0 })
        try DynamicThresholding(percentile: 0.75).apply(&x)
        for j in 0 ... 200 {
            #expect(abs(x.storage[j] - min(ramp[j], 1.5) / 1.5) < 1e-15)
            #expect(x.storage[201 + j] == inside[j])
            #expect(abs(x.storage[402 + j] - max(-3 * ramp[j], -4.5) / 4.5) < 1e-15)
        }
        #expect(x.storage.allSatisfy { abs($0) <= 1 })
        #expect(invalidParameterText { _ = try DynamicThresholding(percentile: 0) } != nil)
        #expect(invalidParameterText { _ = try DynamicThresholding(percentile: 1.01) } != nil)
    }

    /// Data outside [−1, 1] (means ±1.5 per coordinate, std 0.02, 8-D): with thresholding every data
    /// prediction is clipped into [−1, 1], so the samples at eps (a combination of the last
    /// predictions and a state shrunk by std(eps)/std(t)) end inside [−1, 1] up to a few std(eps);
    /// without it they land on the data, at ±1.5.
    @Test func samplerKeepsSamplesInside() throws {
        let sde = try VPSDE()
        let means = [Array(repeating: 1.5, count: 8), Array(repeating: -1.5, count: 8), (0 ..< 8).map { $0 % 2 == 0 ? 1.5 : -1.5 }]
        let data = try GaussianMixture(means: means, isotropicStds: [0.02, 0.02, 0.02])
        func run(_ threshold: DynamicThresholding?) throws -> Tensor {
            var rng = RandomSource(seed: 3)
            return try PCSampler(sde: sde, score: GaussianMixtureScore(data, diffusedBy: sde),
                                 grid: try .spaced(.logSNR, steps: 10, from: 1, to: 1e-3, sde: sde),
                                 predictor: try DPMSolverPlusPlus(order: 3, threshold: threshold),
                                 corrector: NoCorrector(), denoising: .none).sample(count: 500, using: &rng).samples
        }
        let std = sde.marginal(at: 1e-3).std
        let clipped = try run(try DynamicThresholding(percentile: 0.995)).storage.map(abs).max()!
        let free = try run(nil).storage.map(abs).max()!
        #expect(clipped <= 1 + 10 * std, "thresholded samples reach \(clipped)")
        #expect(free > 1.4, "unthresholded samples reach only \(free)")
    }
}

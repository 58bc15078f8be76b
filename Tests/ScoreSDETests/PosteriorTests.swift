import Foundation
import Testing
@testable import ScoreSDE

// Exact posteriors of Gaussian-mixture priors under linear measurements, checked against direct
// Bayes computations (quadrature on a grid in 2-D, importance sampling from the prior in 12-D),
// and the exact posterior score against finite differences of its log density.

/// A 2-D mixture whose coordinates are dependent through the modes: component 0 is narrow in x,
/// component 1 wide in x and shifted, and y separates them. Observing x = 0 favours component 0
/// (weights ≈ 0.83 / 0.17 against a 0.5 / 0.5 prior).
let asymmetricPrior = try! GaussianMixture(weights: [0.5, 0.5], means: [[0, 2], [0.6, -2]], stds: [[0.25, 0.3], [1.0, 0.3]])

/// Moments of the posterior `∝ prior(x) N(y; A x, σ²)` by midpoint quadrature on a square grid,
/// per prior component (component-k part of the integrand) — written from the definition.
func gridPosterior(_ g: GaussianMixture, a: [Double], y: Double, noiseStd: Double, lo: Double, hi: Double, cells: Int)
    -> (weights: [Double], means: [[Double]], covariances: [[[Double]]]) {
    let h = (hi - lo) / Double(cells)
    var mass = [Double](repeating: 0, count: g.componentCount)
    var first = [[Double]](repeating: [0, 0], count: g.componentCount)
    var second = [[[Double]]](repeating: [[0, 0], [0, 0]], count: g.componentCount)
    for i in 0 ..< cells {
        let x0 = lo + (Double(i) + 0.5) * h
        for j in 0 ..< cells {
            let x1 = lo + (Double(j) + 0.5) * h
            let r = y - a[0] * x0 - a[1] * x1
            let like = exp(-0.5 * r * r / (noiseStd * noiseStd))
            for k in 0 ..< g.componentCount {
                let e0 = (x0 - g.means[k][0]) / g.stds[k][0], e1 = (x1 - g.means[k][1]) / g.stds[k][1]
                let p = g.weights[k] * exp(-0.5 * (e0 * e0 + e1 * e1)) / (g.stds[k][0] * g.stds[k][1]) * like
                mass[k] += p
                first[k][0] += p * x0; first[k][1] += p * x1
                second[k][0][0] += p * x0 * x0; second[k][0][1] += p * x0 * x1; second[k][1][1] += p * x1 * x1
            }
        }
    }
    let total = mass.reduce(0, +)
    let means = (0 ..< g.componentCount).map { k in first[k].map { $0 / mass[k] } }
    let covs = (0 ..< g.componentCount).map { k -> [[Double]] in
        let m = means[k]
        let c00 = second[k][0][0] / mass[k] - m[0] * m[0], c01 = second[k][0][1] / mass[k] - m[0] * m[1]
        let c11 = second[k][1][1] / mass[k] - m[1] * m[1]
        return [[c00, c01], [c01, c11]]
    }
    return (mass.map { $0 / total }, means, covs)
}

/// A 3-channel, 2 × 2-pixel mixture of tiny "images" (D = 12): three colours of equal grey level
/// (0.4) and one light grey, each with a pixel pattern; unequal isotropic stds.
let colourImagePrior: GaussianMixture = {
    let colours: [[Double]] = [[0.8, 0.2, 0.2], [0.2, 0.7, 0.3], [0.25, 0.25, 0.7], [0.7, 0.7, 0.7]]
    let pattern: [Double] = [0.15, -0.05, 0.0, -0.1]
    let means = colours.map { c in (0 ..< 3).flatMap { ch in pattern.map { c[ch] + $0 } } }
    return try! GaussianMixture(weights: [0.3, 0.3, 0.2, 0.2], means: means, isotropicStds: [0.1, 0.14, 0.08, 0.1])
}()

/// The grey image of component 0's mean (per pixel (R+G+B)/3), observed by the colorization tests.
let colourImageGrey: [Double] = (0 ..< 4).map { p in (0 ..< 3).reduce(0.0) { $0 + colourImagePrior.means[0][$1 * 4 + p] } / 3 }

@Suite("Exact posteriors of Gaussian-mixture priors")
struct PosteriorTests {
    @Test("symmetric eigen-decomposition, Cholesky and inverse reconstruct their matrices")
    func denseLinearAlgebra() throws {
        let a: [Double] = [4, 1, 0.5, 0, 1, 3, 0.2, 0.1, 0.5, 0.2, 2, 0.3, 0, 0.1, 0.3, 1]
        let (values, v) = Dense.symmetricEigen(a, 4)
        #expect(values == values.sorted(by: >))
        for i in 0 ..< 4 {
            for j in 0 ..< 4 {
                let rec = (0 ..< 4).reduce(0.0) { $0 + v[i * 4 + $1] * values[$1] * v[j * 4 + $1] }
                #expect(abs(rec - a[i * 4 + j]) < 1e-12)
                let orth = (0 ..< 4).reduce(0.0) { $0 + v[$1 * 4 + i] * v[$1 * 4 + j] }
                #expect(abs(orth - (i == j ? 1 : 0)) < 1e-12)
            }
        }
        let l = try #require(Dense.cholesky(a, 4))
        var b: [Double] = [1, 2, 3, 4]
        Dense.choleskySolve(l, 4, &b)
        let back = Dense.multiply(a, b, 4, 4, 1)
        for i in 0 ..< 4 { #expect(abs(back[i] - Double(i + 1)) < 1e-12) }
        let inv = try #require(Dense.inverse(a, 4))
        let id = Dense.multiply(a, inv, 4, 4, 4)
        for i in 0 ..< 4 { for j in 0 ..< 4 { #expect(abs(id[i * 4 + j] - (i == j ? 1 : 0)) < 1e-12) } }
        // A singular PSD matrix still gets a factor F Fᵀ = A.
        let s: [Double] = [1, 1, 1, 1]
        let f = Dense.psdFactor(s, 2)
        let ff = Dense.multiply(f, Dense.transpose(f, 2, 2), 2, 2, 2)
        for i in 0 ..< 4 { #expect(abs(ff[i] - s[i]) < 1e-12) }
        #expect(Dense.cholesky(s, 2) == nil)
    }

    @Test("known coordinate: weights, means and covariances match Bayes by quadrature (noise-free and noisy)",
          arguments: [0.0, 0.3])
    func knownCoordinateMatchesQuadrature(noiseStd: Double) throws {
        let g = asymmetricPrior
        let post = try g.conditioned(onKnown: [0], values: [0], noiseStd: noiseStd)
        if noiseStd == 0 {
            // Noise-free: weights ∝ π_k N(0; μ_k,x, s_k,x²), unknown coordinate unchanged, known one fixed.
            let l0 = 0.5 * exp(-0.5 * 0 / 0.0625) / 0.25, l1 = 0.5 * exp(-0.5 * 0.36) / 1.0
            #expect(abs(post.weights[0] - l0 / (l0 + l1)) < 1e-12)
            #expect(abs(post.means[1][0]) < 1e-12 && abs(post.means[1][1] + 2) < 1e-12)
            #expect(abs(post.covariances[1][0][0]) < 1e-12 && abs(post.covariances[1][1][1] - 0.09) < 1e-12)
            return
        }
        let q = gridPosterior(g, a: [1, 0], y: 0, noiseStd: noiseStd, lo: -6, hi: 6, cells: 1200)
        for k in 0 ..< 2 {
            #expect(abs(post.weights[k] - q.weights[k]) < 1e-6, "weight \(k): \(post.weights[k]) vs \(q.weights[k])")
            for a in 0 ..< 2 {
                #expect(abs(post.means[k][a] - q.means[k][a]) < 1e-5)
                for b in 0 ..< 2 { #expect(abs(post.covariances[k][a][b] - q.covariances[k][a][b]) < 1e-4) }
            }
        }
    }

    @Test("general measurement y = A x with noise: full posterior covariances match quadrature")
    func linearMeasurementMatchesQuadrature() throws {
        let g = try GaussianMixture(weights: [0.3, 0.7], means: [[1, 1], [-1, 0.5]], stds: [[0.5, 0.8], [0.7, 0.4]])
        let a: [Double] = [1, 0.5]
        let post = try g.conditioned(on: [a], observation: [0.4], noiseStd: 0.3)
        let q = gridPosterior(g, a: a, y: 0.4, noiseStd: 0.3, lo: -6, hi: 6, cells: 1200)
        for k in 0 ..< 2 {
            #expect(abs(post.weights[k] - q.weights[k]) < 1e-6)
            for i in 0 ..< 2 {
                #expect(abs(post.means[k][i] - q.means[k][i]) < 1e-5)
                for j in 0 ..< 2 { #expect(abs(post.covariances[k][i][j] - q.covariances[k][i][j]) < 1e-4) }
            }
            // A diagonal prior component has a full posterior covariance.
            #expect(abs(post.covariances[k][0][1]) > 0.01)
        }
        // Overall moments are the mixture of the component moments.
        let m = post.mean
        #expect(abs(m[0] - (post.weights[0] * post.means[0][0] + post.weights[1] * post.means[1][0])) < 1e-12)
    }

    @Test("colorization posterior (D = 12) matches self-normalised importance sampling from the prior")
    func colorizationMatchesImportanceSampling() throws {
        let prior = colourImagePrior
        let noise = 0.05
        let measurement = try Colorization(grey: Tensor(shape: [1, 2, 2], storage: colourImageGrey), noiseStd: noise).measurement()
        let post = try measurement.posterior(of: prior)
        // Importance weights p(y | x) for prior samples; component of each sample known from its stream.
        var rng = RandomSource(seed: 5)
        let n = 400_000
        let x = prior.sample(count: n, using: &rng)
        let ax = try measurement.apply(x)
        let tau = measurement.noiseStd
        var wSum = 0.0, wSq = 0.0
        var compW = [Double](repeating: 0, count: 4)
        var meanAcc = [Double](repeating: 0, count: 12)
        let assign = prior.assignments(x)
        for r in 0 ..< n {
            var q = 0.0
            for i in 0 ..< 4 { let e = ax.storage[r * 4 + i] - measurement.observation.storage[i]; q += e * e }
            let w = exp(-0.5 * q / (tau * tau))
            wSum += w; wSq += w * w
            compW[assign[r]] += w
            for j in 0 ..< 12 { meanAcc[j] += w * x.storage[r * 12 + j] }
        }
        let ess = wSum * wSum / wSq
        #expect(ess > 2000, "effective sample size \(ess)")
        // Binomial-type standard error of a weight with `ess` effective samples.
        for k in 0 ..< 4 {
            let est = compW[k] / wSum, se = (post.weights[k] * (1 - post.weights[k]) / ess).squareRoot()
            #expect(abs(est - post.weights[k]) <= zBound * se + 1e-4, "component \(k): IS \(est) vs exact \(post.weights[k])")
        }
        let exactMean = post.mean, cov = post.covariance
        for j in 0 ..< 12 {
            let se = (cov[j][j] / ess).squareRoot()
            #expect(abs(meanAcc[j] / wSum - exactMean[j]) <= zBound * se, "mean[\(j)]")
        }
        // The grey image mostly rules out the light-grey component.
        #expect(post.weights[3] < 1e-3)
    }

    @Test("posterior samples reproduce the posterior's weights, means and covariances")
    func posteriorSampling() throws {
        let g = try GaussianMixture(weights: [0.3, 0.7], means: [[1, 1], [-1, 0.5]], stds: [[0.5, 0.8], [0.7, 0.4]])
        let post = try g.conditioned(on: [[1, 0.5]], observation: [0.4], noiseStd: 0)   // singular covariances
        var rng = RandomSource(seed: 3)
        let n = 100_000
        let x = post.sample(count: n, using: &rng)
        // Every sample satisfies the noise-free measurement.
        var worst = 0.0
        for r in 0 ..< n {
            let residual: Double = x.storage[2 * r] + 0.5 * x.storage[2 * r + 1] - 0.4
            worst = max(worst, abs(residual))
        }
        #expect(worst < 1e-12)
        let m = x.columnMeans(), exact = post.mean, cov = post.covariance
        for j in 0 ..< 2 { #expect(abs(m[j] - exact[j]) <= zBound * (cov[j][j] / Double(n)).squareRoot()) }
        var c01 = 0.0, c00 = 0.0
        for r in 0 ..< n { let a = x.storage[2 * r] - m[0], b = x.storage[2 * r + 1] - m[1]; c01 += a * b; c00 += a * a }
        #expect(abs(c00 / Double(n) - cov[0][0]) <= zBound * cov[0][0] * (2 / Double(n)).squareRoot())
        #expect(abs(c01 / Double(n) - cov[0][1]) <= zBound * (cov[0][0] * cov[1][1] / Double(n)).squareRoot() * 1.5)
    }

    @Test("the diffused posterior's score is the gradient of its log density; a diagonal mixture's score is reproduced")
    func fullCovarianceScore() throws {
        let sde = try VPSDE()
        let g = try GaussianMixture(weights: [0.3, 0.7], means: [[1, 1], [-1, 0.5]], stds: [[0.5, 0.8], [0.7, 0.4]])
        let post = try g.conditioned(on: [[1, 0.5]], observation: [0.4], noiseStd: 0.1)
        let score = FullCovarianceMixtureScore(post, diffusedBy: sde)
        let x = tensor([[0.3, -0.2], [1.5, 0.7], [-2, 1]])
        let t = 0.3
        let s = try score.score(x, at: t)
        let h = 1e-5
        for r in 0 ..< 3 {
            for j in 0 ..< 2 {
                var p = x, m = x
                p.storage[r * 2 + j] += h; m.storage[r * 2 + j] -= h
                let fd = (try score.logDensity(p, at: t)[r] - score.logDensity(m, at: t)[r]) / (2 * h)
                #expect(abs(fd - s.storage[r * 2 + j]) < 1e-6 * max(1, abs(fd)))
            }
        }
        let exact = try GaussianMixtureScore(g, diffusedBy: sde).score(x, at: t)
        let full = try FullCovarianceMixtureScore(FullCovarianceMixture(g), diffusedBy: sde).score(x, at: t)
        for i in 0 ..< 6 { #expect(abs(exact.storage[i] - full.storage[i]) < 1e-10) }
    }

    @Test("bad input: shapes, ranks, non-finite values and invalid covariances throw typed errors")
    func badInput() throws {
        let g = asymmetricPrior
        #expect(throws: ScoreSDEError.self) { _ = try g.conditioned(on: [[1, 0, 0]], observation: [1]) }
        #expect(throws: ScoreSDEError.self) { _ = try g.conditioned(on: [[1, 0]], observation: [1, 2]) }
        #expect(throws: ScoreSDEError.self) { _ = try g.conditioned(on: [[1, 0], [2, 0]], observation: [1, 2]) }
        #expect(throws: ScoreSDEError.self) { _ = try g.conditioned(on: [[1, .nan]], observation: [1]) }
        #expect(throws: ScoreSDEError.self) { _ = try g.conditioned(on: [[1, 0]], observation: [.infinity]) }
        #expect(throws: ScoreSDEError.self) { _ = try g.conditioned(on: [[1, 0]], observation: [1], noiseStd: -1) }
        #expect(throws: ScoreSDEError.self) { _ = try g.conditioned(onKnown: [2], values: [1]) }
        #expect(throws: ScoreSDEError.self) { _ = try g.restricted(to: [0, 0]) }
        #expect(throws: ScoreSDEError.self) { _ = try FullCovarianceMixture(means: [[0, 0]], covariances: [[[1, 2], [2, 1]]]) }
        #expect(throws: ScoreSDEError.self) { _ = try FullCovarianceMixture(means: [[0, 0]], covariances: [[[1, 0.5], [0, 1]]]) }
        #expect(throws: ScoreSDEError.self) { _ = try FullCovarianceMixture(means: [[0, 0]], covariances: [[[1, 0, 0], [0, 1, 0]]]) }
        // A singular posterior has no density.
        let post = try g.conditioned(onKnown: [0], values: [0])
        #expect(throws: ScoreSDEError.self) { _ = try post.logDensity(tensor([[0, 1]])) }
    }
}

@Suite("Measurement guidance is exact for Gaussian priors")
struct GuidanceExactnessTests {
    @Test("Tweedie-moment guidance = the posterior score for a Gaussian prior (any covariance, noisy and noise-free)",
          arguments: [0.0, 0.2])
    func tweedieExact(noiseStd: Double) throws {
        let sde = try VESDE()
        let prior = try GaussianMixture(means: [[0.5, -1, 2]], stds: [[0.7, 1.3, 0.4]])
        let ms = try LinearMeasurement(matrix: [[1, 0.5, 0], [0, 1, -1]], observation: [0.3, 1.1], noiseStd: noiseStd)
        let guided = try MeasurementGuidedScore(base: GaussianMixtureScore(prior, diffusedBy: sde), sde: sde, measurement: ms,
                                                likelihood: .tweedieCovariance)
        let exact = FullCovarianceMixtureScore(try ms.posterior(of: prior), diffusedBy: sde)
        let x = tensor([[0.1, 0.2, 0.3], [2, -1, 0.5], [-3, 4, 1]])
        for t in [0.05, 0.3, 0.7] {
            let a = try guided.score(x, at: t), b = try exact.score(x, at: t)
            for i in 0 ..< a.count { #expect(abs(a.storage[i] - b.storage[i]) < 1e-8 * max(1, abs(b.storage[i])), "t = \(t), i = \(i): \(a.storage[i]) vs \(b.storage[i])") }
        }
    }

    @Test("ΠGDM = the posterior score for an isotropic Gaussian prior of the stated variance")
    func pigdmExact() throws {
        let sde = try VPSDE()
        let prior = try GaussianMixture(means: [[0.5, -1]], isotropicStds: [0.8])
        let ms = try LinearMeasurement(matrix: [[1, 0.5]], observation: [0.3], noiseStd: 0.1)
        let exact = FullCovarianceMixtureScore(try ms.posterior(of: prior), diffusedBy: sde)
        let x = tensor([[0.1, 0.2], [2, -1], [-3, 4]])
        // Through the model's Jacobian, and with ΠGDM's own Gaussian for ∂x̂₀/∂x (exact here too).
        for jacobianFree in [false, true] {
            let guided = try MeasurementGuidedScore(base: GaussianMixtureScore(prior, diffusedBy: sde), sde: sde, measurement: ms,
                                                    likelihood: .pseudoinverse(dataVariance: 0.64, jacobianFree: jacobianFree))
            for t in [0.05, 0.3, 0.7] {
                let a = try guided.score(x, at: t), b = try exact.score(x, at: t)
                for i in 0 ..< a.count { #expect(abs(a.storage[i] - b.storage[i]) < 1e-8 * max(1, abs(b.storage[i])), "jacobianFree \(jacobianFree), t = \(t)") }
            }
        }
    }
}

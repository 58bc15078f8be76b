import Foundation
import Testing
import ScoreSDE

// The worked example of the article "Writing your own predictor, corrector and score model"
// (Sources/ScoreSDE/ScoreSDE.docc/CustomComponents.md), compiled and run: the article's code
// blocks must appear here line for line (checked below), so the documentation cannot rot.

// MARK: - The article's types

/// Heun's method (explicit trapezoidal rule) on the probability-flow ODE `dx = [f − ½ g² s] dt`
/// (Karras et al. 2022, Algorithm 1): an Euler step to `next`, then the mean of the drifts at both
/// ends. Deterministic, second order, 2 NFE per step; a step that ends at t = 0 stays Euler.
struct ProbabilityFlowHeun: Predictor {
    func step(_ x: inout Tensor, mean: inout Tensor, state: inout Void, from t: Double, to next: Double,
              along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let dt = next - t                                               // < 0: backwards in time
        let d1 = try reverse.drift(x, at: t, probabilityFlow: true)     // counted by `reverse` (NFE)
        let euler = x.adding(d1, scaledBy: dt)
        if next > 0 {
            let d2 = try reverse.drift(euler, at: next, probabilityFlow: true)
            x.add(d1, scaledBy: dt / 2, d2, scaledBy: dt / 2)
        } else {
            x = euler
        }
        mean = x                                                        // noise-free: the mean is x
    }
}

/// Langevin MCMC (Song et al. 2021, Algorithm 4) with the step size capped near t = 0.
struct TamedLangevin: Corrector {
    var snr: Double, iterations: Int, maxStep = 1e-2
    func correct(_ x: inout Tensor, at t: Double, next: Double, along reverse: some ReverseProcess,
                 using rng: inout RandomSource) throws {
        for _ in 0 ..< iterations {
            let g = try reverse.score(x, at: t)                         // counted by `reverse` (NFE)
            let z = Tensor.standardNormal(like: x, using: &rng)
            let r = snr * z.rowNorms().mean() / g.rowNorms().mean()
            let eps = min(maxStep, 2 * r * r)
            x.add(g, scaledBy: eps, z, scaledBy: (2 * eps).squareRoot())
        }
    }
}

/// The exact score of data `N(μ, s² I)` diffused by any forward SDE.
struct IsotropicGaussianScore<SDE: ForwardSDE>: ScoreModel {
    var sde: SDE, mean: [Double], std: Double
    var rowShape: [Int]? { [mean.count] }
    func score(_ x: Tensor, at t: Double) throws -> Tensor {
        let (m, sigma) = sde.marginal(at: t)
        let variance = m * m * std * std + sigma * sigma
        var s = x
        for r in 0 ..< x.rows {
            for j in 0 ..< mean.count { s[row: r, column: j] = -(x[row: r, column: j] - m * mean[j]) / variance }
        }
        return s
    }
}

@Suite struct DocExampleTests {
    /// The article's run: Heun + capped Langevin on an isotropic Gaussian through the VP SDE. At
    /// t = 0 the law is N(μ, s² I): the sample mean is within 5 standard errors (s / √n) plus a
    /// 0.01 allowance for the 200-step discretisation, the variance within 5 standard errors of
    /// s² (s² √(2 / n)) plus 0.01.
    @Test func customComponentsSampleTheClosedFormGaussian() throws {
        let sde = try VPSDE(betaMin: 0.1, betaMax: 20)
        let score = IsotropicGaussianScore(sde: sde, mean: [2, -1], std: 0.5)
        let sampler = PCSampler(sde: sde, score: score, grid: try .uniform(steps: 200, from: sde.T, to: 1e-3),
                                predictor: ProbabilityFlowHeun(), corrector: TamedLangevin(snr: 0.16, iterations: 1))
        var rng = RandomSource(seed: 1)
        let run = try sampler.sample(count: 4000, using: &rng)
        print(run.samples.columnMeans(), run.scoreEvaluations)          // ≈ [2, -1], 599
        let n = Double(run.samples.rows), mu = [2.0, -1.0], s2 = 0.25
        for (j, m) in run.samples.columnMeans().enumerated() {
            #expect(abs(m - mu[j]) < 5 * (s2 / n).squareRoot() + 0.01, "mean \(j): \(m)")
            let v = run.samples.rowArrays.map { ($0[j] - m) * ($0[j] - m) }.reduce(0, +) / (n - 1)
            #expect(abs(v - s2) < 5 * s2 * (2 / n).squareRoot() + 0.01, "variance \(j): \(v)")
        }
        // Heun: 2 NFE per step except the last (ending at 0): 1; the corrector: 1 per step.
        #expect(run.scoreEvaluations == 3 * 200 - 1)
    }

    /// Every line of every Swift code block of the article appears in this file, in order.
    @Test func theArticleShowsThisFilesCode() throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let article = try String(contentsOf: root.appendingPathComponent("Sources/ScoreSDE/ScoreSDE.docc/CustomComponents.md"), encoding: .utf8)
        let source = try String(contentsOf: here, encoding: .utf8).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        var blocks = [[String]](), inBlock = false
        for line in article.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { inBlock = line == "```swift"; if inBlock { blocks.append([]) }; continue }
            if inBlock { blocks[blocks.count - 1].append(line.trimmingCharacters(in: .whitespaces)) }
        }
        #expect(blocks.count == 4, "the article's four code blocks")
        var position = 0
        for block in blocks {
            for line in block where !line.isEmpty {
                let found = source[position...].firstIndex(of: line)
                #expect(found != nil, "not in DocExampleTests.swift (in order): \(line)")
                if let found { position = found + 1 }
            }
        }
    }
}

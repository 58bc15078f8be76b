import Foundation
import Testing
@testable import ScoreSDE

/// The library APIs that used to live in the command-line tool (issue 14): element access,
/// null spaces and projections, the comparison with exact posteriors, grey images under a
/// channel mixing, and bits/dim in a learned model's data space.
@Suite struct LibraryAPITests {
    @Test func tensorElementAccessAndArrays() throws {
        var x = try Tensor([[1, 2, 3], [4, 5, 6]])
        #expect(x.shape == [2, 3])
        #expect(x[4] == 5 && x[row: 1, column: 2] == 6 && x[row: 0, column: 1] == 2)
        x[row: 1, column: 0] = -4
        x[5] = 60
        #expect(x.array == [1, 2, 3, -4, 5, 60])
        #expect(x.rowArrays == [[1, 2, 3], [-4, 5, 60]])
        let v = Tensor([0.5, 1.5])
        #expect(v.shape == [2] && v.rowSize == 1 && v[row: 1, column: 0] == 1.5)
        let images = Tensor(zeros: [2, 1, 2, 2])
        #expect(images.rowArrays.map(\.count) == [4, 4])
        #expect(throws: ScoreSDEError.self) { _ = try Tensor([[1, 2], [3]]) }
    }

    @Test func nullSpaceBasisIsOrthonormalAndAnnihilatedByA() throws {
        func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
        let sum = LinearMeasurement.nullSpaceBasis(of: [[1, 1]])
        #expect(sum.count == 1 && abs(abs(sum[0][0]) - 0.5.squareRoot()) < 1e-12 && abs(sum[0][0] + sum[0][1]) < 1e-12)
        // A 3 x 6 matrix whose third row is the sum of the first two: rank 2, null space of dimension 4.
        var rng = RandomSource(seed: 5)
        let r = Tensor.standardNormal(shape: [2, 6], using: &rng)
        let a = [r.row(0), r.row(1), zip(r.row(0), r.row(1)).map { $0 + $1 }]
        let basis = LinearMeasurement.nullSpaceBasis(of: a)
        #expect(basis.count == 4)
        for (i, b) in basis.enumerated() {
            for row in a { #expect(abs(dot(row, b)) < 1e-10) }
            for (j, c) in basis.enumerated() { #expect(abs(dot(b, c) - (i == j ? 1 : 0)) < 1e-12) }
        }
        #expect(LinearMeasurement.nullSpaceBasis(of: []).isEmpty)
    }

    @Test func projectionsOfTensorsAndMixtures() throws {
        let x = try Tensor([[1, 2, 3], [4, 5, 6]])
        #expect(try x.projected(onto: [[0, 0, 1], [1, 0, 0]]).array == [3, 1, 6, 4])
        #expect(throws: ScoreSDEError.self) { _ = try x.projected(onto: [[1, 0]]) }
        let m = FullCovarianceMixture(GaussianMixture.gaussian64())
        let e = [(0 ..< 64).map { $0 == 3 ? 1.0 : 0 }, (0 ..< 64).map { $0 == 40 ? 1.0 : 0 }]
        let projected = try m.projected(onto: e), marginal = try m.marginal([3, 40])
        #expect(projected.weights == marginal.weights)
        for k in 0 ..< m.componentCount {
            #expect(zip(projected.means[k], marginal.means[k]).allSatisfy { abs($0 - $1) < 1e-12 })
            #expect(zip(projected.covariances[k].flatMap { $0 }, marginal.covariances[k].flatMap { $0 }).allSatisfy { abs($0 - $1) < 1e-12 })
        }
    }

    /// Exact posterior samples must score near the Monte-Carlo floor; samples from only the
    /// posterior's heaviest mode must score TV = 1 − (that mode's weight).
    @Test func posteriorComparisonAgainstKnownAnswers() throws {
        let prior = GaussianMixture.ring()
        let measurement = try LinearMeasurement(matrix: [[1, 0]], observation: try Tensor([[2.0]]), noiseStd: 0.5)
        let posterior = try measurement.posterior(of: prior)
        let n = 4000
        var rng = RandomSource(seed: 11)
        let exact = posterior.sample(count: n, using: &rng)
        let c = try PosteriorComparison(prior: prior, measurement: measurement, samples: exact, perInput: n, seed: 3)
        // E|p̂_k − w_k| <= sqrt(w_k (1 − w_k) / n); summed over modes and halved, with 4x room.
        let bound = 4 * 0.5 * posterior.weights.map { ($0 * (1 - $0) / Double(n)).squareRoot() }.reduce(0, +)
        #expect(c.modeWeightTV < bound && c.modeWeightTVFloor < bound, "\(c.modeWeightTV) \(c.modeWeightTVFloor) vs \(bound)")
        let trace = (0 ..< 2).map { posterior.covariance[$0][$0] }.reduce(0, +)
        #expect(c.meanError < 4 * (trace / Double(n)).squareRoot())
        #expect(c.posteriors.count == 1 && c.exactSamples.shape == [n, 2])

        let top = posterior.weights.indices.max { posterior.weights[$0] < posterior.weights[$1] }!
        let oneMode = try FullCovarianceMixture(means: [posterior.means[top]], covariances: [posterior.covariances[top]])
        let topSamples = oneMode.sample(count: n, using: &rng)
        let biased = try PosteriorComparison(prior: prior, measurement: measurement, samples: topSamples, perInput: n, seed: 3)
        // Samples of the top mode alone: if all were assigned to it, TV = ½((1 − w_top) + Σ_{k≠top} w_k)
        // = 1 − w_top exactly. Samples the posterior's responsibilities assign elsewhere (a fraction q,
        // counted here with the same rule) move TV by at most q: an inequality, no tolerance.
        let misassigned = Double(try posterior.assignments(topSamples).filter { $0 != top }.count) / Double(n)
        #expect(abs(biased.modeWeightTV - (1 - posterior.weights[top])) <= misassigned + 1e-12,
                "\(biased.modeWeightTV) vs \(1 - posterior.weights[top]) (misassigned fraction \(misassigned))")
        #expect(throws: ScoreSDEError.self) {
            _ = try PosteriorComparison(prior: prior, measurement: measurement, samples: exact, perInput: 3000, seed: 0)
        }
    }

    @Test func greyUnderAMixingMatrix() throws {
        var rng = RandomSource(seed: 2)
        let patches = try ImagePatches.random(count: 5, using: &rng)
        let grey = try ColorMixing.reference.grey(of: patches)
        let mean = try ImagePatches.toGrey(patches)
        #expect(grey.shape == [5, 64])
        // score_sde's matrix is orthonormal to ~1e-7: the channel mean to ~255 * 1e-7.
        #expect(zip(grey.storage, mean.storage).allSatisfy { abs($0 - $1) < 1e-4 })
        // A permutation picks one channel: channel 2 under [[0,0,1],[1,0,0],[0,1,0]]ᵀ.
        let pick = try ColorMixing([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
        let blue = try pick.grey(of: patches)
        for r in 0 ..< 5 { for p in 0 ..< 64 { #expect(blue[row: r, column: p] == patches[row: r, column: 128 + p]) } }
    }

    /// A model of m = 2 x + 0.5: log p(x) = log p_m(2 x + 0.5) + D log 2 (change of variables),
    /// against the closed-form mixture density, and bits/dim from that log-likelihood.
    @Test func bitsPerDimInTheDataSpaceOfAScaledModel() throws {
        let sde = try VPSDE(betaMin: 0.1, betaMax: 20)
        let score = GaussianMixtureScore(.ring(), diffusedBy: sde)
        var rng = RandomSource(seed: 4)
        let m = GaussianMixture.ring().sample(count: 16, using: &rng)
        let scaling = try DataScaling(scale: 2, shift: 0.5)
        let solver = ODESolverOptions(.rkf45, absoluteTolerance: 1e-6, relativeTolerance: 1e-6)
        let result = try Likelihood(sde: sde, score: score, estimator: .exact, eps: 1e-5, solver: solver, convention: .dataSpace(scaling),
                                    terminalLogDensity: { try score.logDensity($0, at: sde.T) }).evaluate(m, using: &rng)
        let truth = try score.logDensity(m, at: 1e-5).map { $0 + 2 * log(2.0) }
        for (ll, t) in zip(result.logLikelihood, truth) { #expect(abs(ll - t) < 1e-3, "\(ll) vs \(t)") }
        for (b, ll) in zip(result.bitsPerDim, result.logLikelihood) { #expect(abs(b + ll / (2 * M_LN2)) < 1e-12) }
        #expect(BitsPerDimConvention.dataSpace(scaling).offset == -1)
        #expect(BitsPerDimConvention.continuous.logJacobian(atModel: m) == [Double](repeating: 0, count: 16))
        #expect(result.logJacobian == [Double](repeating: 2 * log(2.0), count: 16))
    }

    /// A model of m = logit(λ + (1 − 2λ) v / L) / c: log p(v) = log p_m(m(v)) + Σⱼ log m'(vⱼ), the
    /// derivative taken here by central differences of `toModel` (not the library's formula), against
    /// the closed-form mixture density; the map inverts, and its log-Jacobian is per sample.
    @Test func bitsPerDimInTheDataSpaceOfALogitModel() throws {
        let sde = try VPSDE(betaMin: 0.1, betaMax: 20)
        let mixture = try GaussianMixture(means: [[-0.6, 0.3], [0.5, -0.4]], isotropicStds: [0.2, 0.3])
        let score = GaussianMixtureScore(mixture, diffusedBy: sde)
        var rng = RandomSource(seed: 5)
        let m = mixture.sample(count: 24, using: &rng)
        let scaling = try DataScaling.logit(lambda: 0.01, levels: 17)
        #expect(!scaling.isAffine && BitsPerDimConvention.dataSpace(scaling).constantOffset == nil)
        let v = scaling.toData(m)
        #expect(v.storage.allSatisfy { $0 > -0.2 && $0 < 17.2 })
        let back = scaling.toModel(v)
        for (a, b) in zip(back.storage, m.storage) { #expect(abs(a - b) < 1e-12) }
        let solver = ODESolverOptions(.rkf45, absoluteTolerance: 1e-6, relativeTolerance: 1e-6)
        let result = try Likelihood(sde: sde, score: score, estimator: .exact, eps: 1e-5, solver: solver, convention: .dataSpace(scaling),
                                    terminalLogDensity: { try score.logDensity($0, at: sde.T) }).evaluate(back, using: &rng)
        let h = 1e-6
        let model = try score.logDensity(m, at: 1e-5)
        for r in 0 ..< m.rows {
            var jacobian = 0.0
            for j in 0 ..< 2 {
                let x = v.storage[r * 2 + j]
                let plus = scaling.toModel(try Tensor(shape: [1, 1], storage: [x + h])).storage[0]
                let minus = scaling.toModel(try Tensor(shape: [1, 1], storage: [x - h])).storage[0]
                jacobian += log((plus - minus) / (2 * h))
            }
            #expect(abs(result.logJacobian[r] - jacobian) < 1e-6, "row \(r): \(result.logJacobian[r]) vs \(jacobian)")
            #expect(abs(result.logLikelihood[r] - (model[r] + jacobian)) < 1e-3, "row \(r)")
            #expect(abs(result.bitsPerDim[r] + result.logLikelihood[r] / (2 * M_LN2)) < 1e-12)
        }
        #expect(Set(result.logJacobian.map { ($0 * 1e6).rounded() }).count > 1, "the Jacobian differs per sample")
    }

    @Test func implicitStepTypesFitOnlySmallSystems() throws {
        try ODEStepType.rkf45.checkFits(rows: 10_000, dimension: 64, layout: .batch)     // explicit: no limit
        try ODEStepType.bsimp.checkFits(rows: 64, dimension: 64, layout: .batch)         // 4096 unknowns
        #expect(throws: ScoreSDEError.self) { try ODEStepType.bsimp.checkFits(rows: 65, dimension: 64, layout: .batch) }
        try ODEStepType.msbdf.checkFits(rows: 10_000, dimension: 64, layout: .perSample)
        #expect(throws: ScoreSDEError.self) { try ODEStepType.msbdf.checkFits(rows: 1, dimension: 4097, layout: .perSample) }
        #expect(throws: ScoreSDEError.self) { try ODEStepType.rk1imp.checkUsableForLikelihood() }
        try ODEStepType.rk8pd.checkUsableForLikelihood()
    }

    /// Song & Ermon (2020), Technique 1: the largest pairwise distance; the ring's means are 8 apart.
    @Test func suggestedSigmaMaxIsTheLargestPairwiseDistance() throws {
        #expect(abs(try VESDE.suggestedSigmaMax(for: try Tensor(GaussianMixture.ring().means)) - 8) < 1e-12)
        #expect(try VESDE.suggestedSigmaMax(for: try Tensor([[0, 0, 0], [1, 2, 2], [0.5, 0.5, 0.5]])) == 3)
        #expect(throws: ScoreSDEError.self) { _ = try VESDE.suggestedSigmaMax(for: try Tensor([[1, 1], [1, 1]])) }
    }
}

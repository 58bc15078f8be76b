import Foundation
import Testing
@testable import ScoreSDE

enum MixtureCase: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case ring, grid, gmm64
    var testDescription: String { rawValue }
    var mixture: GaussianMixture {
        switch self {
        case .ring: return .ring()
        case .grid: return .grid()
        case .gmm64: return .gaussian64()
        }
    }
}

enum SDEKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case ve, vp, subVP
    var testDescription: String { rawValue }
    var sde: any ForwardSDE {
        switch self {
        case .ve: return try! VESDE()
        case .vp: return try! VPSDE()
        case .subVP: return try! SubVPSDE()
        }
    }
}

/// Independent log density of the diffused mixture, written from the definition:
/// p_t = Σ_k π_k Π_d N(x_d; m μ_kd, m² s_kd² + σ²), combined with a log-sum-exp.
func directLogDensity(_ x: [Double], _ g: GaussianMixture, meanScale m: Double, std s: Double) -> Double {
    var logs = [Double]()
    for k in 0 ..< g.componentCount {
        var l = log(g.weights[k])
        for j in 0 ..< x.count {
            let v = m * m * g.stds[k][j] * g.stds[k][j] + s * s
            let e = x[j] - m * g.means[k][j]
            l += -0.5 * log(2 * Double.pi * v) - e * e / (2 * v)
        }
        logs.append(l)
    }
    let mx = logs.max()!
    return mx + log(logs.reduce(0) { $0 + exp($1 - mx) })
}

/// Test points for a mixture at time t: samples of p_t, midpoints between pairs of component
/// means (where responsibilities switch and the score changes fastest), and the origin.
func probePoints(_ g: GaussianMixture, _ sde: any ForwardSDE, t: Double, count: Int, seed: UInt64) -> Tensor {
    let (m, s) = sde.marginal(at: t)
    var rng = RandomSource(seed: seed)
    let samples = g.diffused(meanScale: m, std: s).sample(count: count, using: &rng)
    var rows = (0 ..< samples.rows).map { samples.row($0) }
    for k in 0 ..< min(3, g.componentCount - 1) {
        rows.append(zip(g.means[k], g.means[k + 1]).map { m * 0.5 * ($0 + $1) })
    }
    rows.append([Double](repeating: 0, count: g.dimension))
    return tensor(rows)
}

/// The smallest per-dimension std ℓ of p_t (the length scale of the score within a component).
func smallestStd(_ g: GaussianMixture, _ sde: any ForwardSDE, t: Double) -> Double {
    let (m, s) = sde.marginal(at: t)
    return g.stds.flatMap { $0 }.map { (m * m * $0 * $0 + s * s).squareRoot() }.min()!
}

/// Finite-difference step for p_t: log p_t varies on the scale ℓ inside a component and on
/// λ = ℓ²/Δ where responsibilities switch between components whose means are Δ apart (the logit
/// difference changes at rate ≈ Δ/ℓ²). h = 2e-3 min(ℓ, λ) keeps the five-point truncation
/// (h/λ)⁴/(30λ) below 1e-12 of the score scale 1/ℓ for every mixture here.
func finiteDifferenceStep(_ g: GaussianMixture, _ sde: any ForwardSDE, t: Double) -> (ell: Double, h: Double) {
    let ell = smallestStd(g, sde, t: t), m = sde.marginal(at: t).meanScale
    var delta = 0.0
    for a in g.means { for b in g.means { delta = max(delta, m * zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()) } }
    return (ell, 2e-3 * min(ell, ell * ell / max(delta, 1e-300)))
}

@Suite("Exact mixture score")
struct MixtureScoreTests {
    static let times = [0.0, 0.01, 0.1, 0.5, 1.0]

    /// Five-point central differences, f'(x) ≈ [−f(x+2h) + 8f(x+h) − 8f(x−h) + f(x−2h)] / 12h:
    /// truncation h⁴ f⁽⁵⁾/30 (negligible with `finiteDifferenceStep`), rounding ≤ 18 ε max|f| / 12h
    /// (computed per point). Bound: 1e-6 · (|s_j| + 1/ℓ) + 4 · rounding — the ~1e-6 relative accuracy
    /// of the brief, far above the FD error and far below any formula error.
    @Test("score = ∇ log p_t by finite differences of logDensity", arguments: MixtureCase.allCases, SDEKind.allCases)
    func scoreIsGradientOfLogDensity(mc: MixtureCase, kind: SDEKind) throws {
        let g = mc.mixture, sde = kind.sde
        let model = GaussianMixtureScore(g, diffusedBy: sde)
        let d = g.dimension
        for t in Self.times {
            let x = probePoints(g, sde, t: t, count: mc == .gmm64 ? 3 : 12, seed: 100 + UInt64(t * 1000))
            let s = try model.score(x, at: t)
            let (ell, h) = finiteDifferenceStep(g, sde, t: t)
            var maxRelErr = 0.0
            for j in 0 ..< d {
                var shifted = [Tensor]()
                for k in [-2.0, -1, 1, 2] {
                    var y = x
                    for r in 0 ..< x.rows { y.storage[r * d + j] += k * h }
                    shifted.append(y)
                }
                let f = try shifted.map { try model.logDensity($0, at: t) }
                for r in 0 ..< x.rows {
                    let fd = (-f[3][r] + 8 * f[2][r] - 8 * f[1][r] + f[0][r]) / (12 * h)
                    let rounding = 18 * Double.ulpOfOne * f.map { abs($0[r]) }.max()! / (12 * h)
                    let exact = s.storage[r * d + j]
                    let tol = 1e-6 * (abs(exact) + 1 / ell) + 4 * rounding
                    maxRelErr = max(maxRelErr, abs(fd - exact) / (abs(exact) + 1 / ell))
                    #expect(abs(fd - exact) <= tol, "\(mc)/\(kind) t=\(t) row \(r) coord \(j): FD \(fd) vs score \(exact)")
                }
            }
            #expect(maxRelErr < 1e-6)
        }
    }

    /// ∇·s = Σ_j ∂s_j/∂x_j by five-point differences of the score (same step and error analysis as
    /// above: truncation negligible, rounding ≈ ε |s|/h ≪ the bound); bound 1e-6 (|div| + D/ℓ²). Also `scoreAndDivergence`'s
    /// score equals `score` and its divergence equals Σ_j (J e_j)_j from `scoreAndJVP` (two
    /// independently written formulas, agreement to rounding).
    @Test("divergence = trace of the score Jacobian", arguments: MixtureCase.allCases, SDEKind.allCases)
    func divergence(mc: MixtureCase, kind: SDEKind) throws {
        let g = mc.mixture, sde = kind.sde
        let model = GaussianMixtureScore(g, diffusedBy: sde)
        let d = g.dimension
        for t in [0.0, 0.1, 0.5] {
            let x = probePoints(g, sde, t: t, count: 4, seed: 7 + UInt64(t * 100))
            let (s, div) = try model.scoreAndDivergence(x, at: t)
            let s0 = try model.score(x, at: t)
            let (ell, h) = finiteDifferenceStep(g, sde, t: t)
            for i in 0 ..< s.count { #expect(abs(s.storage[i] - s0.storage[i]) <= 1e-12 * (abs(s0.storage[i]) + 1 / ell)) }
            var fdDiv = [Double](repeating: 0, count: x.rows)
            var trace = [Double](repeating: 0, count: x.rows)
            for j in 0 ..< d {
                var e = Tensor(zeros: x.shape)
                for r in 0 ..< x.rows { e.storage[r * d + j] = 1 }
                let jv = try model.scoreAndJVP(x, at: t, direction: e).jvp
                var sh = [Tensor]()
                for k in [-2.0, -1, 1, 2] { sh.append(try model.score(x.adding(e, scaledBy: k * h), at: t)) }
                for r in 0 ..< x.rows {
                    let i = r * d + j
                    fdDiv[r] += (-sh[3].storage[i] + 8 * sh[2].storage[i] - 8 * sh[1].storage[i] + sh[0].storage[i]) / (12 * h)
                    trace[r] += jv.storage[i]
                }
            }
            for r in 0 ..< x.rows {
                let scale = abs(div[r]) + Double(d) / (ell * ell)
                #expect(abs(fdDiv[r] - div[r]) <= 1e-6 * scale, "\(mc)/\(kind) t=\(t) row \(r): FD div \(fdDiv[r]) vs \(div[r])")
                #expect(abs(trace[r] - div[r]) <= 1e-11 * scale, "\(mc)/\(kind) t=\(t) row \(r): JVP trace \(trace[r]) vs \(div[r])")
            }
        }
    }

    /// J v by five-point differences of s along v (|v| = 1 per row, random directions); bound as above.
    @Test("scoreAndJVP = directional derivative of the score", arguments: MixtureCase.allCases, SDEKind.allCases)
    func jacobianVectorProduct(mc: MixtureCase, kind: SDEKind) throws {
        let g = mc.mixture, sde = kind.sde
        let model = GaussianMixtureScore(g, diffusedBy: sde)
        let d = g.dimension
        for t in [0.0, 0.05, 0.3, 1.0] {
            let x = probePoints(g, sde, t: t, count: 6, seed: 55 + UInt64(t * 100))
            var rng = RandomSource(seed: 56)
            var v = Tensor.standardNormal(like: x, using: &rng)
            let norms = v.rowNorms()
            for r in 0 ..< v.rows { for j in 0 ..< d { v.storage[r * d + j] /= norms[r] } }
            let (s, jv) = try model.scoreAndJVP(x, at: t, direction: v)
            let s0 = try model.score(x, at: t)
            let (ell, h) = finiteDifferenceStep(g, sde, t: t)
            var sh = [Tensor]()
            for k in [-2.0, -1, 1, 2] { sh.append(try model.score(x.adding(v, scaledBy: k * h), at: t)) }
            for i in 0 ..< x.count {
                #expect(abs(s.storage[i] - s0.storage[i]) <= 1e-12 * (abs(s0.storage[i]) + 1 / ell))
                let fd = (-sh[3].storage[i] + 8 * sh[2].storage[i] - 8 * sh[1].storage[i] + sh[0].storage[i]) / (12 * h)
                let tol = 1e-6 * (abs(jv.storage[i]) + 1 / (ell * ell))
                #expect(abs(fd - jv.storage[i]) <= tol, "\(mc)/\(kind) t=\(t) i=\(i): FD \(fd) vs JVP \(jv.storage[i])")
            }
        }
        if case .shapeMismatch? = scoreSDEError({ _ = try model.scoreAndJVP(Tensor(zeros: [2, d]), at: 0.5, direction: Tensor(zeros: [3, d])) }) {} else {
            Issue.record("a direction of the wrong shape must throw shapeMismatch")
        }
    }

    /// Both sides are the same closed form evaluated independently (library: fused kernel with a
    /// polynomial exp, relative error < 2e-16; test: libm): agreement to 1e-12 (|log p| + 1).
    @Test("logDensity = direct evaluation of the diffused mixture density", arguments: MixtureCase.allCases, SDEKind.allCases)
    func logDensityIsDirect(mc: MixtureCase, kind: SDEKind) throws {
        let g = mc.mixture, sde = kind.sde
        let model = GaussianMixtureScore(g, diffusedBy: sde)
        for t in Self.times {
            let (m, s) = sde.marginal(at: t)
            var x = probePoints(g, sde, t: t, count: 20, seed: 3)
            x = try Tensor.concatenating([x, x.scaled(by: 3)])   // also points far out in the tails
            let lp = try model.logDensity(x, at: t)
            for r in 0 ..< x.rows {
                let e = directLogDensity(x.row(r), g, meanScale: m, std: s)
                #expect(abs(lp[r] - e) <= 1e-12 * (abs(e) + 1), "\(mc)/\(kind) t=\(t) row \(r): \(lp[r]) vs \(e)")
            }
        }
        // Normalization: on the ring (2-D), ∫ p_t = 1 by a midpoint rule on [−8, 8]² with step 0.02,
        // far finer than the smallest std 0.25 (error ≪ 1e-6; mass outside the box < 1e-40).
        if mc == .ring && kind == .vp {
            let t = 0.05, step = 0.02
            var rows = [[Double]]()
            for i in 0 ..< 800 { for j in 0 ..< 800 { rows.append([-8 + (Double(i) + 0.5) * step, -8 + (Double(j) + 0.5) * step]) } }
            let total = try model.logDensity(tensor(rows), at: t).reduce(0) { $0 + exp($1) } * step * step
            #expect(abs(total - 1) <= 1e-6, "∫ p_t = \(total)")
        }
    }

    /// |x| = 1e3 from every mode (1e6 standard deviations at t = 0): the logits are ~−1e7, only
    /// the max-shifted log-sum-exp keeps them finite. Far out, the score is that of the nearest
    /// component in the Mahalanobis sense: s ≈ −(x − m μ_k)/v_k, and it points inwards.
    @Test("far-away points give finite scores and log densities", arguments: MixtureCase.allCases, SDEKind.allCases)
    func farAway(mc: MixtureCase, kind: SDEKind) throws {
        let g = mc.mixture, sde = kind.sde, d = g.dimension
        let model = GaussianMixtureScore(g, diffusedBy: sde)
        var rng = RandomSource(seed: 1)
        var dirs = Tensor.standardNormal(shape: [16, d], using: &rng)
        let norms = dirs.rowNorms()
        for r in 0 ..< 16 { for j in 0 ..< d { dirs.storage[r * d + j] *= 1e3 / norms[r] } }
        for t in [0.0, 0.5, 1.0] {
            let s = try model.score(dirs, at: t)
            let lp = try model.logDensity(dirs, at: t)
            let (_, div) = try model.scoreAndDivergence(dirs, at: t)
            let (_, jv) = try model.scoreAndJVP(dirs, at: t, direction: dirs)
            #expect(s.isFinite && lp.allSatisfy { $0.isFinite } && div.allSatisfy { $0.isFinite } && jv.isFinite)
            let dots = s.rowDots(dirs)
            #expect(dots.allSatisfy { $0 < 0 }, "\(mc)/\(kind) t=\(t): score does not point inwards")
            for r in 0 ..< 16 {
                let e = directLogDensity(dirs.row(r), g, meanScale: sde.marginal(at: t).meanScale, std: sde.marginal(at: t).std)
                #expect(abs(lp[r] - e) <= 1e-12 * abs(e))
            }
        }
    }

    /// The values 0 and 1 matter: Linux Foundation bridges NSNumber(0)/NSNumber(1) to Bool, so a
    /// loader that rejects booleans with `is Bool` would reject these plain numbers.
    @Test("built-in ring and grid: the defaults as documented; bad parameters throw, never trap")
    func builtInMixturesValidateTheirParameters() throws {
        let ring = GaussianMixture.ring(), grid = GaussianMixture.grid()
        #expect(ring.componentCount == 8 && ring.weights.allSatisfy { $0 == 0.125 } && ring.stds.allSatisfy { $0 == [0.25, 0.25] })
        #expect(ring.means.allSatisfy { abs(($0[0] * $0[0] + $0[1] * $0[1]).squareRoot() - 4) < 1e-12 }, "radius 4")
        #expect(try GaussianMixture.ring(modes: 8, radius: 4, std: 0.25) == ring, "the parameterised form with the defaults is the default ring")
        #expect(grid.componentCount == 25 && grid.means.first == [-4, -4] && grid.means.last == [4, 4])
        #expect(try GaussianMixture.grid(side: 5, spacing: 2, std: 0.25) == grid)
        #expect(try GaussianMixture.ring(modes: 3, radius: 1, std: 0.5).componentCount == 3)
        for bad in [{ _ = try GaussianMixture.ring(std: 0) }, { _ = try GaussianMixture.ring(std: -1) }, { _ = try GaussianMixture.ring(modes: 0) },
                    { _ = try GaussianMixture.ring(radius: .nan) }, { _ = try GaussianMixture.grid(std: 0) }, { _ = try GaussianMixture.grid(side: 0) },
                    { _ = try GaussianMixture.grid(spacing: .infinity) }] as [() throws -> Void] {
            #expect(throws: ScoreSDEError.self) { try bad() }
        }
    }

    @Test("JSON: isotropic and diagonal stds, optional weights")
    func jsonGood() throws {
        let text = #"{"weights": [3, 1], "means": [[0, 1], [2, -1]], "stds": [0.5, [0.25, 2]]}"#
        let g = try GaussianMixture(json: Data(text.utf8), path: "mem.json")
        #expect(g.weights == [0.75, 0.25])
        #expect(g.means == [[0, 1], [2, -1]])
        #expect(g.stds == [[0.5, 0.5], [0.25, 2]])
        let noWeights = try GaussianMixture(json: Data(#"{"means": [[1], [2], [3], [4]], "stds": [1, 1, 1, 2]}"#.utf8))
        #expect(noWeights.weights == [0.25, 0.25, 0.25, 0.25])
        #expect(noWeights.dimension == 1 && noWeights.stds[3] == [2])
        // Round trip through a file.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gmm-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try g.jsonData().write(to: URL(fileURLWithPath: path))
        #expect(try GaussianMixture(contentsOf: path) == g)
    }

    struct BadJSON: Sendable, CustomTestStringConvertible {
        let label: String, text: String, mentions: [String]
        var testDescription: String { label }
    }

    static let badJSON: [BadJSON] = [
        BadJSON(label: "not JSON", text: #"{"means": [[0, 1]"#, mentions: ["JSON"]),
        BadJSON(label: "not an object", text: "[1, 2]", mentions: ["object"]),
        BadJSON(label: "missing means", text: #"{"stds": [1]}"#, mentions: ["means"]),
        BadJSON(label: "missing stds", text: #"{"means": [[0]]}"#, mentions: ["stds"]),
        BadJSON(label: "ragged means", text: #"{"means": [[0, 1], [2]], "stds": [1, 1]}"#, mentions: ["mean 1", "dimensions"]),
        BadJSON(label: "negative std", text: #"{"means": [[0, 1], [2, 3]], "stds": [1, -0.5]}"#, mentions: ["stds[1]", "> 0"]),
        BadJSON(label: "zero std in a vector", text: #"{"means": [[0, 1]], "stds": [[1, 0]]}"#, mentions: ["stds[0]", "> 0"]),
        BadJSON(label: "ragged std vector", text: #"{"means": [[0, 1]], "stds": [[1, 1, 1]]}"#, mentions: ["std 0", "dimensions"]),
        // JSON has no NaN/Inf literals; an overflowing literal is the only way to spell one, and
        // Foundation's parser rejects it as malformed JSON.
        BadJSON(label: "non-finite mean", text: #"{"means": [[0, 1e999]], "stds": [1]}"#, mentions: ["JSON"]),
        BadJSON(label: "non-finite std", text: #"{"means": [[0, 1]], "stds": [-1e999]}"#, mentions: ["JSON"]),
        BadJSON(label: "string in means", text: #"{"means": [[0, "a"]], "stds": [1]}"#, mentions: ["means[0]", "not a number"]),
        BadJSON(label: "boolean weight", text: #"{"means": [[0]], "stds": [1], "weights": [true]}"#, mentions: ["weights"]),
        BadJSON(label: "wrong weight count", text: #"{"means": [[0], [1]], "stds": [1, 1], "weights": [1]}"#, mentions: ["weights"]),
        BadJSON(label: "zero weight", text: #"{"means": [[0], [1]], "stds": [1, 1], "weights": [1, 0]}"#, mentions: ["weights", "> 0"]),
        BadJSON(label: "count mismatch means/stds", text: #"{"means": [[0], [1]], "stds": [1]}"#, mentions: ["stds"]),
        BadJSON(label: "unknown key", text: #"{"means": [[0]], "stds": [1], "mean": 3}"#, mentions: ["unknown", "mean"]),
        BadJSON(label: "no components", text: #"{"means": [], "stds": []}"#, mentions: ["component"]),
    ]

    @Test("JSON: malformed, ragged, non-finite and negative-std files throw io naming the problem", arguments: badJSON)
    func jsonBad(c: BadJSON) {
        let e = scoreSDEError { _ = try GaussianMixture(json: Data(c.text.utf8), path: "bad.json") }
        guard case .io(let path, let message)? = e else {
            Issue.record("\(c.label): expected ScoreSDEError.io, got \(String(describing: e))")
            return
        }
        #expect(path == "bad.json")
        for m in c.mentions { #expect(message.contains(m), "\(c.label): '\(message)' does not mention '\(m)'") }
    }

    @Test("direct construction rejects non-finite means and non-positive stds")
    func directConstruction() {
        if case .nonFinite? = scoreSDEError({ _ = try GaussianMixture(means: [[0, .nan]], isotropicStds: [1]) }) {} else {
            Issue.record("a NaN mean must throw nonFinite")
        }
        if case .invalidParameter(let p)? = scoreSDEError({ _ = try GaussianMixture(means: [[0, 1]], stds: [[1, .infinity]]) }), p.name == "stds" {} else {
            Issue.record("an infinite std must throw invalidParameter(stds)")
        }
        if case .invalidParameter(let p)? = scoreSDEError({ _ = try GaussianMixture(means: [[0, 1]], isotropicStds: [-1]) }), p.name == "stds" {} else {
            Issue.record("a negative std must throw invalidParameter(stds)")
        }
    }

    @Test("JSON: a missing file throws io with its path")
    func jsonMissingFile() {
        let e = scoreSDEError { _ = try GaussianMixture(contentsOf: "/nonexistent/dir/gmm.json") }
        guard case .io(let path, _)? = e else { Issue.record("expected io, got \(String(describing: e))"); return }
        #expect(path == "/nonexistent/dir/gmm.json")
    }

    /// s = −ε/std with ε = −std · s_exact must give s_exact back (to rounding: two multiplications).
    @Test("NoisePredictionScore with the exact noise predictor reproduces the exact score", arguments: SDEKind.allCases)
    func noisePrediction(kind: SDEKind) throws {
        let sde = kind.sde
        let exact = GaussianMixtureScore(.ring(), diffusedBy: sde)
        func check<S: ForwardSDE>(_ sde: S) throws {
            let wrapped = NoisePredictionScore(sde: sde, rowShape: [2]) { x, t in
                try exact.score(x, at: t).scaled(by: -sde.marginal(at: t).std)
            }
            for t in [1e-3, 0.1, 0.5, 1.0] {
                let x = probePoints(exact.mixture, sde, t: t, count: 50, seed: 8)
                let a = try wrapped.score(x, at: t), b = try exact.score(x, at: t)
                for i in 0 ..< a.count { #expect(abs(a.storage[i] - b.storage[i]) <= 4 * Double.ulpOfOne * abs(b.storage[i])) }
            }
            let bad = NoisePredictionScore(sde: sde) { x, _ in Tensor(zeros: [x.rows + 1, 2]) }
            if case .shapeMismatch? = scoreSDEError({ _ = try bad.score(Tensor(zeros: [3, 2]), at: 0.5) }) {} else {
                Issue.record("a wrong-shaped noise prediction must throw shapeMismatch")
            }
        }
        switch kind {
        case .ve: try check(try VESDE())
        case .vp: try check(try VPSDE())
        case .subVP: try check(try SubVPSDE())
        }
    }

    @Test("score rejects bad input: t outside [0, T], wrong row size, NaN")
    func badInput() throws {
        let model = GaussianMixtureScore(.ring(), diffusedBy: try VPSDE())
        for t in [-0.1, 1.5, Double.nan] {
            if case .invalidParameter(let p)? = scoreSDEError({ _ = try model.score(Tensor(zeros: [2, 2]), at: t) }), p.name == "t" {} else {
                Issue.record("t = \(t) must throw invalidParameter(t)")
            }
        }
        if case .shapeMismatch? = scoreSDEError({ _ = try model.score(Tensor(zeros: [2, 3]), at: 0.5) }) {} else {
            Issue.record("3-D rows for a 2-D mixture must throw shapeMismatch")
        }
        if case .nonFinite? = scoreSDEError({ _ = try model.score(tensor([[0, .nan]]), at: 0.5) }) {} else {
            Issue.record("NaN input must throw nonFinite")
        }
    }
}

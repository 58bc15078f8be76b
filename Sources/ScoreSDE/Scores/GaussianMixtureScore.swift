import CKernels
import Foundation

/// The exact score of a Gaussian mixture diffused by a forward SDE: `p_t` is the mixture with
/// means `m(t) μ_k` and variances `m(t)² s_k² + σ(t)²`, so `∇ log p_t`, `log p_t`, its divergence
/// and Jacobian–vector products are closed-form, O(K·D) per row.
///
///     let score = GaussianMixtureScore(.ring(), diffusedBy: try VESDE())
public struct GaussianMixtureScore: ScoreJacobianProviding, ScoreDivergenceProviding {
    public let mixture: GaussianMixture
    public let sde: any ForwardSDE

    public init(_ mixture: GaussianMixture, diffusedBy sde: any ForwardSDE) {
        self.mixture = mixture
        self.sde = sde
    }

    public var rowShape: [Int]? { [mixture.dimension] }

    /// The kernel of `p_t`.
    func kernel(at t: Double) throws -> GaussianMixtureKernel {
        try kernel(at: t, validateOnly: false)!
    }

    /// The kernel of `p_t`, or only the check of `t` (nil) when `validateOnly`.
    func kernel(at t: Double, validateOnly: Bool) throws -> GaussianMixtureKernel? {
        guard t.isFinite, t >= 0, t <= sde.T else {
            throw ScoreSDEError.invalid("t", t, must: "in [0, \(sde.T)]")
        }
        if validateOnly { return nil }
        let (m, s) = sde.marginal(at: t)
        return GaussianMixtureKernel(mixture, meanScale: m, std: s)
    }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        var out = Tensor(zeros: x.shape)
        try score(x, at: t, into: &out)
        return out
    }

    /// The score written into `out` (reshaped to `x`'s shape if it differs): no batch-sized allocation.
    public func score(_ x: Tensor, at t: Double, into out: inout Tensor) throws {
        try validate(x)
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        try kernel(at: t).run(x, score: &out, logDensity: nil)
    }

    /// Each row at its own time: the kernel of `p_{tᵢ}` (built per row, in parallel, and reused by
    /// the next row when it has the same time) and the same C kernel as the single-time call, row by
    /// row — bitwise the single-time call on each row.
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        try validate(x)
        try checkTimes(times, x)
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        if let t = times.first, times.allSatisfy({ $0 == t }) { return try kernel(at: t).run(x, score: &out, logDensity: nil) }
        let marginals = try times.map { t -> (meanScale: Double, std: Double) in _ = try kernel(at: t, validateOnly: true); return sde.marginal(at: t) }
        let d = mixture.dimension, k = mixture.componentCount, mixture = self.mixture
        let finite = x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { op in
                let xb = xp.baseAddress!, ob = op.baseAddress!
                return Parallel.allChunks(x.rows, grain: max(1, 2048 / max(k * d, 1))) { range in
                    var kernel: GaussianMixtureKernel?, last = Double.nan
                    var ok = true
                    for r in range {
                        if kernel == nil || times[r] != last {
                            kernel = GaussianMixtureKernel(mixture, meanScale: marginals[r].meanScale, std: marginals[r].std)
                            last = times[r]
                        }
                        ok = kernel!.runRow(xb + r * d, ob + r * d) && ok
                    }
                    return ok
                }
            }
        }
        if !finite {
            throw ScoreSDEError.nonFinite("the mixture score is not finite: the input has NaN/Inf, or the mixture's means and stds are so far apart in scale that (x − mean)²/variance overflows (rescale the data)")
        }
    }

    /// Exact `log p_t(x)` for each row.
    public func logDensity(_ x: Tensor, at t: Double) throws -> [Double] {
        try validate(x)
        var out = [Double](repeating: 0, count: x.rows)
        var unused = Tensor(zeros: x.shape)
        try kernel(at: t).run(x, score: &unused, logDensity: &out)
        return out
    }

    public func scoreAndDivergence(_ x: Tensor, at t: Double) throws -> (score: Tensor, divergence: [Double]) {
        try validate(x)
        return try kernel(at: t).scoreAndDivergence(x)
    }

    public func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor) throws -> (score: Tensor, jvp: Tensor) {
        try validate(x)
        guard v.shape == x.shape else { throw ScoreSDEError.shapeMismatch("direction \(v.shape) must match x \(x.shape)") }
        return try kernel(at: t).scoreAndJVP(x, v)
    }
}

/// Precomputed per-time quantities of a (diffused) mixture and the fused per-row kernels.
struct GaussianMixtureKernel {
    let k: Int, d: Int
    /// Means, `K × D`, row-major.
    let mu: [Double]
    /// Inverse variances, `K × D`.
    let iv: [Double]
    /// `log π_k − ½ Σ_d log(2π v_kd)`.
    let lc: [Double]
    /// `Σ_d 1/v_kd`.
    let trace: [Double]
    /// `μ_kd / v_kd` (as `μ_kd · iv_kd`), for the score kernel.
    let mv: [Double]

    init(_ g: GaussianMixture) {
        self.init(g, meanScale: 1, std: 0, diffuse: false)
    }

    /// The kernel of `g.diffused(meanScale: m, std: s)`, built straight into flat arrays (the same
    /// arithmetic as diffusing first: stds `√(m² s_k² + s²)`).
    init(_ g: GaussianMixture, meanScale m: Double, std s: Double, diffuse: Bool = true) {
        k = g.componentCount; d = g.dimension
        var mu = [Double](), iv = [Double](), mv = [Double](), lc = [Double](), trace = [Double]()
        mu.reserveCapacity(k * d); iv.reserveCapacity(k * d); mv.reserveCapacity(k * d)
        for c in 0 ..< k {
            var logSum = 0.0, traceSum = 0.0
            for j in 0 ..< d {
                let s0 = g.stds[c][j]
                let sd = diffuse ? (m * m * s0 * s0 + s * s).squareRoot() : s0
                let mean = diffuse ? m * g.means[c][j] : g.means[c][j]
                let inv = 1 / (sd * sd)
                mu.append(mean); iv.append(inv); mv.append(mean * inv)
                logSum += Foundation.log(2 * Double.pi * sd * sd)
                traceSum += 1 / (sd * sd)
            }
            lc.append(Foundation.log(g.weights[c]) - 0.5 * logSum)
            trace.append(traceSum)
        }
        self.mu = mu; self.iv = iv; self.mv = mv; self.lc = lc; self.trace = trace
    }

    /// Component posteriors (responsibilities) of one point.
    func responsibilities(_ x: [Double]) -> [Double] {
        var r = [Double](repeating: 0, count: k)
        x.withUnsafeBufferPointer { xp in
            r.withUnsafeMutableBufferPointer { rp in _ = softmax(xp.baseAddress!, rp.baseAddress!) }
        }
        return r
    }

    /// Writes responsibilities into `r` and returns `log Σ_k exp(logit_k)` (= log p(x)).
    @inline(__always)
    func softmax(_ x: UnsafePointer<Double>, _ r: UnsafeMutablePointer<Double>, logNormalizer: Bool = true) -> Double {
        mu.withUnsafeBufferPointer { mup in
            iv.withUnsafeBufferPointer { ivp in
                lc.withUnsafeBufferPointer { lcp in
                    gmmSoftmax(x, r, mup.baseAddress!, ivp.baseAddress!, lcp.baseAddress!, k, d, logNormalizer)
                }
            }
        }
    }

    /// Score (and optionally log-density) of every row, in parallel (C kernel `sde_gmm_score`).
    func run(_ x: Tensor, score out: inout Tensor, logDensity: UnsafeMutablePointer<[Double]>?) throws {
        precondition(out.count == x.count, "GaussianMixtureKernel.run: output shape \(out.shape) does not match \(x.shape)")
        let n = x.rows, d = self.d, k = self.k
        let wantLog = logDensity != nil
        var logp = [Double](repeating: 0, count: wantLog ? n : 0)
        let finite = x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { op in
                logp.withUnsafeMutableBufferPointer { lp in
                    mu.withUnsafeBufferPointer { mup in
                        iv.withUnsafeBufferPointer { ivp in
                            mv.withUnsafeBufferPointer { mvp in
                                lc.withUnsafeBufferPointer { lcp in
                                    let xb = xp.baseAddress!, ob = op.baseAddress!, lb = lp.baseAddress
                                    let m = mup.baseAddress!, v = ivp.baseAddress!, w = mvp.baseAddress!, c0 = lcp.baseAddress!
                                    return Parallel.allChunks(n, grain: max(8, 16384 / max(k * d, 1))) { range in
                                        sde_gmm_score(xb + range.lowerBound * d, ob + range.lowerBound * d,
                                                      wantLog ? lb! + range.lowerBound : nil,
                                                      range.count, d, k, m, v, w, c0, -1) != 0
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if let logDensity { logDensity.pointee = logp }
        if !finite {
            throw ScoreSDEError.nonFinite("the mixture score is not finite: the input has NaN/Inf, or the mixture's means and stds are so far apart in scale that (x − mean)²/variance overflows (rescale the data)")
        }
    }

    /// The score of the one row at `x` into `out` (the C kernel on one row); false if not finite.
    func runRow(_ x: UnsafePointer<Double>, _ out: UnsafeMutablePointer<Double>) -> Bool {
        mu.withUnsafeBufferPointer { m in
            iv.withUnsafeBufferPointer { v in
                mv.withUnsafeBufferPointer { w in
                    lc.withUnsafeBufferPointer { c0 in
                        sde_gmm_score(x, out, nil, 1, d, k, m.baseAddress!, v.baseAddress!, w.baseAddress!, c0.baseAddress!, -1) != 0
                    }
                }
            }
        }
    }

    /// Score and divergence: `∇·s = Σ_k r_k (‖u_k‖² − Σ_d 1/v_kd) − ‖s‖²` with `u_k = (μ_k − x)/v_k`.
    func scoreAndDivergence(_ x: Tensor) throws -> (score: Tensor, divergence: [Double]) {
        let n = x.rows, d = self.d, k = self.k
        var out = Tensor(zeros: x.shape)
        var div = [Double](repeating: 0, count: n)
        x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { op in
                div.withUnsafeMutableBufferPointer { dp in
                    let xb = xp.baseAddress!, ob = op.baseAddress!, db = dp.baseAddress!
                    Parallel.forEachChunk(n, grain: max(1, 8192 / max(k * d, 1))) { range in
                        let r = UnsafeMutablePointer<Double>.allocate(capacity: k)
                        defer { r.deallocate() }
                        for row in range {
                            let xr = xb + row * d, sr = ob + row * d
                            _ = softmax(xr, r)
                            for j in 0 ..< d { sr[j] = 0 }
                            var acc = 0.0
                            for c in 0 ..< k {
                                let w = r[c], o = c * d
                                var u2 = 0.0
                                for j in 0 ..< d {
                                    let u = (mu[o + j] - xr[j]) * iv[o + j]
                                    sr[j] += w * u; u2 += u * u
                                }
                                acc += w * (u2 - trace[c])
                            }
                            var s2 = 0.0
                            for j in 0 ..< d { s2 += sr[j] * sr[j] }
                            db[row] = acc - s2
                        }
                    }
                }
            }
        }
        try out.checkFinite("the mixture score")
        return (out, div)
    }

    /// Score and `J v`: `(J v)_d = Σ_k r_k u_kd (u_k·v − s·v) − v_d Σ_k r_k / v_kd`.
    func scoreAndJVP(_ x: Tensor, _ v: Tensor) throws -> (score: Tensor, jvp: Tensor) {
        let n = x.rows, d = self.d, k = self.k
        var out = Tensor(zeros: x.shape), jv = Tensor(zeros: x.shape)
        x.storage.withUnsafeBufferPointer { xp in
            v.storage.withUnsafeBufferPointer { vp in
                out.storage.withUnsafeMutableBufferPointer { op in
                    jv.storage.withUnsafeMutableBufferPointer { jp in
                        let xb = xp.baseAddress!, vb = vp.baseAddress!, ob = op.baseAddress!, jb = jp.baseAddress!
                        Parallel.forEachChunk(n, grain: max(1, 4096 / max(k * d, 1))) { range in
                            let r = UnsafeMutablePointer<Double>.allocate(capacity: k)
                            let uv = UnsafeMutablePointer<Double>.allocate(capacity: k)
                            defer { r.deallocate(); uv.deallocate() }
                            for row in range {
                                let xr = xb + row * d, vr = vb + row * d, sr = ob + row * d, jr = jb + row * d
                                _ = softmax(xr, r)
                                for j in 0 ..< d { sr[j] = 0; jr[j] = 0 }
                                for c in 0 ..< k {
                                    let w = r[c], o = c * d
                                    var dot = 0.0
                                    for j in 0 ..< d {
                                        let u = (mu[o + j] - xr[j]) * iv[o + j]
                                        sr[j] += w * u; dot += u * vr[j]
                                        jr[j] -= w * iv[o + j] * vr[j]
                                    }
                                    uv[c] = dot
                                }
                                var sv = 0.0
                                for j in 0 ..< d { sv += sr[j] * vr[j] }
                                for c in 0 ..< k {
                                    let w = r[c] * (uv[c] - sv), o = c * d
                                    for j in 0 ..< d { jr[j] += w * (mu[o + j] - xr[j]) * iv[o + j] }
                                }
                            }
                        }
                    }
                }
            }
        }
        try out.checkFinite("the mixture score")
        return (out, jv)
    }
}

/// Responsibilities of one row into `r`; returns the log normalizer when asked (else 0).
@inline(__always)
func gmmSoftmax(_ x: UnsafePointer<Double>, _ r: UnsafeMutablePointer<Double>, _ m: UnsafePointer<Double>,
                _ v: UnsafePointer<Double>, _ lc: UnsafePointer<Double>, _ k: Int, _ d: Int, _ wantLog: Bool) -> Double {
    let mx = gmmLogits(x, r, m, v, lc, k, d)
    expNonPositiveInPlace(r, k)
    return gmmNormalize(r, k, mx, wantLog)
}

/// Writes `logit_k − max` into `r`; returns the max.
@inline(__always)
func gmmLogits(_ x: UnsafePointer<Double>, _ r: UnsafeMutablePointer<Double>, _ m: UnsafePointer<Double>,
               _ v: UnsafePointer<Double>, _ lc: UnsafePointer<Double>, _ k: Int, _ d: Int) -> Double {
    var mx = -Double.infinity
    if d == 2 {
        let x0 = x[0], x1 = x[1]
        for c in 0 ..< k {
            let e0 = x0 - m[2 &* c], e1 = x1 - m[2 &* c &+ 1]
            let l = lc[c] - 0.5 * (e0 * e0 * v[2 &* c] + e1 * e1 * v[2 &* c &+ 1])
            r[c] = l
            mx = l > mx ? l : mx
        }
    } else {
        for c in 0 ..< k {
            var q0 = 0.0, q1 = 0.0
            let o = c &* d
            var j = 0
            while j &+ 2 <= d {
                let e0 = x[j] - m[o &+ j], e1 = x[j &+ 1] - m[o &+ j &+ 1]
                q0 += e0 * e0 * v[o &+ j]; q1 += e1 * e1 * v[o &+ j &+ 1]
                j &+= 2
            }
            if j < d { let e = x[j] - m[o &+ j]; q0 += e * e * v[o &+ j] }
            let l = lc[c] - 0.5 * (q0 + q1)
            r[c] = l
            mx = l > mx ? l : mx
        }
    }
    for c in 0 ..< k { r[c] -= mx }
    return mx
}

/// Normalizes exponentials in `r` to responsibilities; returns `max + log Σ` when asked.
@inline(__always)
func gmmNormalize(_ r: UnsafeMutablePointer<Double>, _ k: Int, _ mx: Double, _ wantLog: Bool) -> Double {
    var sum = 0.0
    for c in 0 ..< k { sum += r[c] }
    let inv = 1 / sum
    for c in 0 ..< k { r[c] *= inv }
    return wantLog ? mx + Foundation.log(sum) : 0
}

/// Group normalisation (Wu & He 2018, eq. 1–3; PyTorch `nn.GroupNorm` with affine scale and shift):
/// for sample `n` and group `g` of `C/G` consecutive channels, over all `P = H·W` pixels,
/// `x̂ = (x − μ_{n,g}) / √(σ²_{n,g} + ε)` (biased variance), `y = γ_c x̂ + β_c`.
///
/// Backward, with `M = P·C/G` values per group and `r = 1/√(σ² + ε)`:
/// `dγ_c = Σ dy x̂`, `dβ_c = Σ dy`, `dx = r (γ_c dy − mean_g(γ dy) − x̂ · mean_g(γ dy x̂))`.
/// oneDNN 2.6 has no group norm (3.3 added it); this one is ours. Activations are NHWC.
final class GroupNorm<T: NetworkScalar> {
    let channels: Int, groups: Int, epsilon: T
    let weight: ParameterRef, bias: ParameterRef
    private let stats = NetworkBuffer<T>()          // [n, G, 2]: mean, rstd
    private let channelSums = NetworkBuffer<T>()    // [n, 2C] per-sample sums of backward

    init(_ name: String, channels: Int, groups: Int, epsilon: Double, parameters: ParameterLayout) {
        precondition(groups >= 1 && channels % groups == 0, "GroupNorm: \(channels) channels in \(groups) groups")
        self.channels = channels; self.groups = groups; self.epsilon = T(epsilon)
        weight = parameters.add("\(name).weight", [channels], initialization: .ones)
        bias = parameters.add("\(name).bias", [channels], initialization: .zeros)
    }

    /// Samples are independent: they run in parallel on as many threads as oneDNN's OpenMP team
    /// (``DNNL/maxThreads``), each with its own scratch; per-sample results do not depend on the split.
    private func eachSample(_ n: Int, scratch count: Int, _ body: (Int, UnsafeMutablePointer<T>) -> Void) {
        let threads = max(1, min(DNNL.maxThreads, n))
        Parallel.$threadLimit.withValue(threads) {
            Parallel.forEachChunk(n, grain: 1) { range in
                let scratch = UnsafeMutablePointer<T>.allocate(capacity: count)
                defer { scratch.deallocate() }
                for b in range { body(b, scratch) }
            }
        }
    }

    func forward(_ x: UnsafePointer<T>, batch n: Int, pixels P: Int, parameters p: UnsafePointer<T>,
                 into y: UnsafeMutablePointer<T>) {
        let C = channels, G = groups, cg = C / G
        let st = stats.reserve(n * G * 2)
        let gamma = p + weight.offset, beta = p + bias.offset
        let M = T(P * cg)
        eachSample(n, scratch: 3 * C) { b, s in
            let mc = s + 2 * C
            let xb = x + b * P * C, yb = y + b * P * C
            s.update(repeating: 0, count: C)
            for q in 0 ..< P { let row = xb + q * C; for c in 0 ..< C { s[c] += row[c] } }
            for g in 0 ..< G {
                var m: T = 0
                for c in g * cg ..< (g + 1) * cg { m += s[c] }
                st[(b * G + g) * 2] = m / M
            }
            s.update(repeating: 0, count: C)
            for c in 0 ..< C { mc[c] = st[(b * G + c / cg) * 2] }
            for q in 0 ..< P {
                let row = xb + q * C
                for c in 0 ..< C { let d = row[c] - mc[c]; s[c] += d * d }
            }
            for g in 0 ..< G {
                var v: T = 0
                for c in g * cg ..< (g + 1) * cg { v += s[c] }
                st[(b * G + g) * 2 + 1] = 1 / T.sqrt(v / M + epsilon)
            }
            // y = a_c x + b_c with a_c = γ_c r_g, b_c = β_c − γ_c r_g μ_g.
            let a = s, sh = s + C
            for c in 0 ..< C {
                let mu = st[(b * G + c / cg) * 2], r = st[(b * G + c / cg) * 2 + 1]
                a[c] = gamma[c] * r; sh[c] = beta[c] - gamma[c] * r * mu
            }
            for q in 0 ..< P {
                let xr = xb + q * C, yr = yb + q * C
                for c in 0 ..< C { yr[c] = a[c] * xr[c] + sh[c] }
            }
        }
    }

    /// `dx` overwritten; `dγ`, `dβ` overwritten in `g` (summed over samples in sample order, so the
    /// bytes do not depend on the thread count).
    func backward(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, batch n: Int, pixels P: Int,
                  parameters p: UnsafePointer<T>, gradients grad: UnsafeMutablePointer<T>, dx: UnsafeMutablePointer<T>) {
        let C = channels, G = groups, cg = C / G
        let st = stats.pointer, partial = channelSums.reserve(n * 2 * C)
        let gamma = p + weight.offset
        let M = T(P * cg)
        eachSample(n, scratch: 5 * C + 2 * G) { b, s in
            let mc = s + 2 * C, rc = s + 3 * C, A = s + 5 * C, B = A + G
            let xb = x + b * P * C, db = dy + b * P * C, dxb = dx + b * P * C
            let s1 = partial + b * 2 * C, s2 = s1 + C
            s1.update(repeating: 0, count: 2 * C)
            for c in 0 ..< C { mc[c] = st[(b * G + c / cg) * 2]; rc[c] = st[(b * G + c / cg) * 2 + 1] }
            for q in 0 ..< P {
                let xr = xb + q * C, dr = db + q * C
                for c in 0 ..< C {
                    let xh = (xr[c] - mc[c]) * rc[c]
                    s1[c] += dr[c]; s2[c] += dr[c] * xh
                }
            }
            for g in 0 ..< G {
                var a: T = 0, bb: T = 0
                for c in g * cg ..< (g + 1) * cg { a += gamma[c] * s1[c]; bb += gamma[c] * s2[c] }
                A[g] = a / M; B[g] = bb / M
            }
            // dx = r γ dy − r A − r x̂ B = a_c dy + (x − μ) b_c + c_c per channel.
            let ac = s, bc = s + C, cc = s + 4 * C
            for c in 0 ..< C {
                let g = c / cg, r = rc[c]
                ac[c] = r * gamma[c]; bc[c] = -r * r * B[g]; cc[c] = -r * A[g]
            }
            for q in 0 ..< P {
                let xr = xb + q * C, dr = db + q * C, o = dxb + q * C
                for c in 0 ..< C { o[c] = ac[c] * dr[c] + (xr[c] - mc[c]) * bc[c] + cc[c] }
            }
        }
        let dgamma = grad + weight.offset, dbeta = grad + bias.offset
        dgamma.update(repeating: 0, count: C); dbeta.update(repeating: 0, count: C)
        for b in 0 ..< n {
            let s1 = partial + b * 2 * C, s2 = s1 + C
            for c in 0 ..< C { dbeta[c] += s1[c]; dgamma[c] += s2[c] }
        }
    }
}

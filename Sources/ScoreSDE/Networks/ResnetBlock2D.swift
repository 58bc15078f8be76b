/// diffusers' `ResnetBlock2D` (the DDPM residual block, Ho et al. 2020 App. B, after Zagoruyko &
/// Komodakis 2016) with its defaults (`time_embedding_norm="default"`, `output_scale_factor=1`):
///
///     h = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(emb))[:, :, None, None]
///     h = conv2(dropout(SiLU(norm2(h))))
///     y = shortcut(x) + h          shortcut = conv_shortcut (1×1) when in ≠ out, else identity
///
/// `SiLU(emb)` is computed once by the network and shared by every block (its gradient accumulates).
/// Memory: a block keeps `norm1(x)`, `conv1(…) + temb`, `norm2(…)`, its output and input gradient;
/// the SiLU outputs are recomputed in backward, and its transient gradients live in a
/// ``BackwardScratch`` shared by all blocks of a network.
final class ResnetBlock2D<T: NetworkScalar> {
    let inChannels: Int, outChannels: Int, dropout: Double
    let norm1: GroupNorm<T>, conv1: Conv2d<T>, timeEmbProj: Linear<T>, norm2: GroupNorm<T>, conv2: Conv2d<T>
    let convShortcut: Conv2d<T>?
    private let u1 = NetworkBuffer<T>(), z = NetworkBuffer<T>(), u2 = NetworkBuffer<T>()
    private let mask = NetworkBuffer<T>(), tproj = NetworkBuffer<T>(), out = NetworkBuffer<T>()
    private let dIn = NetworkBuffer<T>(), dt = NetworkBuffer<T>()
    private let scratch: BackwardScratch<T>
    private var h1: NetworkBuffer<T> { scratch.h }
    private var h2: NetworkBuffer<T> { scratch.h }
    private var dA: NetworkBuffer<T> { scratch.a }
    private var dB: NetworkBuffer<T> { scratch.b }
    private var dC: NetworkBuffer<T> { scratch.c }
    private var usedDropout = false

    init(in i: Int, out o: Int, embedding e: Int, groups: Int, epsilon: Double, dropout: Double, parameters: ParameterLayout,
         scratch: BackwardScratch<T> = BackwardScratch()) {
        inChannels = i; outChannels = o; self.dropout = dropout; self.scratch = scratch
        norm1 = GroupNorm("norm1", channels: i, groups: groups, epsilon: epsilon, parameters: parameters)
        conv1 = Conv2d("conv1", in: i, out: o, kernel: 3, padding: 1, parameters: parameters)
        timeEmbProj = Linear("time_emb_proj", in: e, out: o, parameters: parameters)
        norm2 = GroupNorm("norm2", channels: o, groups: groups, epsilon: epsilon, parameters: parameters)
        conv2 = Conv2d("conv2", in: o, out: o, kernel: 3, padding: 1, parameters: parameters)
        convShortcut = i == o ? nil : Conv2d("conv_shortcut", in: i, out: o, kernel: 1, padding: 0, parameters: parameters)
    }

    /// `x` is `[n, h, w, in]`, `embAct = SiLU(emb)` is `[n, E]`. With `dropoutSeed`, dropout is applied
    /// (training); without, it is the identity (evaluation).
    func forward(_ x: UnsafePointer<T>, embAct: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int,
                 parameters p: UnsafePointer<T>, dropoutSeed: UInt64?) -> UnsafeMutablePointer<T> {
        let P = h * w, ci = inChannels, co = outChannels
        let a = u1.reserve(n * P * ci), b = h1.reserve(n * P * ci)
        norm1.forward(x, batch: n, pixels: P, parameters: p, into: a)
        SiLU<T>.forward(a, count: n * P * ci, into: b)
        let zz = z.reserve(n * P * co)
        conv1.forward(b, batch: n, height: h, width: w, parameters: p, into: zz)
        let tp = tproj.reserve(n * co)
        timeEmbProj.forward(embAct, rows: n, parameters: p, into: tp)
        for bi in 0 ..< n {
            let t = tp + bi * co
            for q in 0 ..< P { let r = zz + (bi * P + q) * co; for c in 0 ..< co { r[c] += t[c] } }
        }
        let c2 = u2.reserve(n * P * co), d2 = h2.reserve(n * P * co)
        norm2.forward(zz, batch: n, pixels: P, parameters: p, into: c2)
        SiLU<T>.forward(c2, count: n * P * co, into: d2)
        usedDropout = dropout > 0 && dropoutSeed != nil
        if usedDropout, let seed = dropoutSeed {
            // Inverted dropout: keep with probability 1 − p, scale kept values by 1/(1 − p).
            let m = mask.reserve(n * P * co)
            var state = seed
            let keep = T(1 / (1 - dropout))
            for i in 0 ..< n * P * co {
                state &+= 0x9E37_79B9_7F4A_7C15
                var s = state
                s = (s ^ (s >> 30)) &* 0xBF58_476D_1CE4_E5B9; s = (s ^ (s >> 27)) &* 0x94D0_49BB_1331_11EB; s ^= s >> 31
                let u = Double(s >> 11) * 0x1.0p-53
                m[i] = u < dropout ? 0 : keep
                d2[i] *= m[i]
            }
        }
        let y = out.reserve(n * P * co)
        conv2.forward(d2, batch: n, height: h, width: w, parameters: p, into: y)
        if let sc = convShortcut {
            let s = dA.reserve(n * P * co)
            sc.forward(x, batch: n, height: h, width: w, parameters: p, into: s)
            for i in 0 ..< n * P * co { y[i] += s[i] }
        } else {
            for i in 0 ..< n * P * co { y[i] += x[i] }
        }
        return y
    }

    /// Returns `dx` (own buffer); adds this block's contribution to `dEmbAct`; parameter gradients overwritten.
    func backward(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, embAct: UnsafePointer<T>, dEmbAct: UnsafeMutablePointer<T>,
                  batch n: Int, height h: Int, width w: Int, parameters p: UnsafePointer<T>,
                  gradients g: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
        let P = h * w, ci = inChannels, co = outChannels
        let da = dA.reserve(max(n * P * co, n * P * ci)), db = dB.reserve(n * P * co)
        // Recompute h2 = dropout(SiLU(u2)) (not kept).
        let hh2 = h2.reserve(n * P * co)
        SiLU<T>.forward(u2.pointer, count: n * P * co, into: hh2)
        if usedDropout { let m = mask.pointer; for i in 0 ..< n * P * co { hh2[i] *= m[i] } }
        conv2.backward(hh2, dy, batch: n, height: h, width: w, parameters: p, gradients: g, dx: db)
        if usedDropout { let m = mask.pointer; for i in 0 ..< n * P * co { db[i] *= m[i] } }
        SiLU<T>.backward(u2.pointer, db, count: n * P * co, into: db)
        norm2.backward(z.pointer, db, batch: n, pixels: P, parameters: p, gradients: g, dx: da)
        // dz = da: time projection gradient is its per-channel pixel sum.
        let dtp = dt.reserve(n * co)
        dtp.update(repeating: 0, count: n * co)
        for bi in 0 ..< n {
            let t = dtp + bi * co
            for q in 0 ..< P { let r = da + (bi * P + q) * co; for c in 0 ..< co { t[c] += r[c] } }
        }
        timeEmbProj.backward(embAct, dtp, rows: n, parameters: p, gradients: g, dx: dEmbAct, accumulate: true)
        let dh1 = dC.reserve(n * P * ci)
        let hh1 = h1.reserve(n * P * ci)
        SiLU<T>.forward(u1.pointer, count: n * P * ci, into: hh1)
        conv1.backward(hh1, da, batch: n, height: h, width: w, parameters: p, gradients: g, dx: dh1)
        SiLU<T>.backward(u1.pointer, dh1, count: n * P * ci, into: dh1)
        let dx = dIn.reserve(n * P * ci)
        norm1.backward(x, dh1, batch: n, pixels: P, parameters: p, gradients: g, dx: dx)
        if let sc = convShortcut {
            let ds = dA.reserve(max(n * P * co, n * P * ci))
            sc.backward(x, dy, batch: n, height: h, width: w, parameters: p, gradients: g, dx: ds)
            for i in 0 ..< n * P * ci { dx[i] += ds[i] }
        } else {
            for i in 0 ..< n * P * ci { dx[i] += dy[i] }
        }
        return dx
    }
}

/// Transient buffers shared by the blocks of one network (only one block runs at a time): the
/// recomputed SiLU output and three gradient scratch arrays.
final class BackwardScratch<T: NetworkScalar> {
    let h = NetworkBuffer<T>(), a = NetworkBuffer<T>(), b = NetworkBuffer<T>(), c = NetworkBuffer<T>()
}

/// diffusers' `Attention` as built for `UNet2DModel` blocks (the DDPM self-attention block, Ho et al.
/// 2020 App. B; scaled dot-product attention, Vaswani et al. 2017 eq. 1), shown for one head:
///
///     u = group_norm(x)  over [n, P = H·W, C];   Q, K, V = to_q(u), to_k(u), to_v(u)   (per pixel)
///     A = softmax(Q Kᵀ / √C)  (rows);            y = x + to_out.0(A V)
///
/// Backward: `dV = Aᵀ dO`, `dA = dO Vᵀ`, `dS = A ⊙ (dA − rowsum(dA ⊙ A))`, `dQ = dS K / √C`,
/// `dK = dSᵀ Q / √C`. With `heads` H > 1, each head takes its `d = C/H` consecutive channels of Q, K,
/// V and of the output (diffusers' `head_to_batch_dim`) and `√C` becomes `√d`.
final class Attention<T: NetworkScalar> {
    let channels: Int
    let heads: Int
    let groupNorm: GroupNorm<T>, toQ: Linear<T>, toK: Linear<T>, toV: Linear<T>, toOut: Linear<T>
    private let u = NetworkBuffer<T>(), q = NetworkBuffer<T>(), k = NetworkBuffer<T>(), v = NetworkBuffer<T>()
    private let a = NetworkBuffer<T>(), o = NetworkBuffer<T>(), out = NetworkBuffer<T>()
    private let dO = NetworkBuffer<T>(), dQ = NetworkBuffer<T>(), dK = NetworkBuffer<T>(), dV = NetworkBuffer<T>()
    private let dA = NetworkBuffer<T>(), dU = NetworkBuffer<T>(), dIn = NetworkBuffer<T>()

    init(channels c: Int, heads: Int = 1, groups: Int, epsilon: Double, parameters: ParameterLayout) {
        precondition(heads >= 1 && c % heads == 0, "Attention: \(c) channels do not split into \(heads) heads")
        channels = c; self.heads = heads
        groupNorm = GroupNorm("group_norm", channels: c, groups: groups, epsilon: epsilon, parameters: parameters)
        toQ = Linear("to_q", in: c, out: c, parameters: parameters)
        toK = Linear("to_k", in: c, out: c, parameters: parameters)
        toV = Linear("to_v", in: c, out: c, parameters: parameters)
        toOut = Linear("to_out.0", in: c, out: c, parameters: parameters)
    }

    func forward(_ x: UnsafePointer<T>, batch n: Int, pixels P: Int, parameters p: UnsafePointer<T>) -> UnsafeMutablePointer<T> {
        let C = channels, rows = n * P
        let uu = u.reserve(rows * C), qq = q.reserve(rows * C), kk = k.reserve(rows * C), vv = v.reserve(rows * C)
        groupNorm.forward(x, batch: n, pixels: P, parameters: p, into: uu)
        toQ.forward(uu, rows: rows, parameters: p, into: qq)
        toK.forward(uu, rows: rows, parameters: p, into: kk)
        toV.forward(uu, rows: rows, parameters: p, into: vv)
        let H = heads, d = C / H
        let aa = a.reserve(n * H * P * P), oo = o.reserve(rows * C)
        let scale = 1 / T.sqrt(T(d))
        for b in 0 ..< n { for h in 0 ..< H {
            let S = aa + (b * H + h) * P * P, off = b * P * C + h * d
            T.gemm(transA: false, transB: true, m: P, n: P, k: d, alpha: scale, a: qq + off, lda: C,
                   b: kk + off, ldb: C, beta: 0, c: S, ldc: P)
            for i in 0 ..< P {
                let r = S + i * P
                var m = r[0]
                for j in 1 ..< P where r[j] > m { m = r[j] }
                var s: T = 0
                for j in 0 ..< P { let e = T.exp(r[j] - m); r[j] = e; s += e }
                let inv = 1 / s
                for j in 0 ..< P { r[j] *= inv }
            }
            T.gemm(transA: false, transB: false, m: P, n: d, k: P, alpha: 1, a: S, lda: P, b: vv + off, ldb: C,
                   beta: 0, c: oo + off, ldc: C)
        } }
        let y = out.reserve(rows * C)
        toOut.forward(oo, rows: rows, parameters: p, into: y)
        for i in 0 ..< rows * C { y[i] += x[i] }
        return y
    }

    func backward(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, batch n: Int, pixels P: Int,
                  parameters p: UnsafePointer<T>, gradients g: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
        let C = channels, rows = n * P
        let d0 = dO.reserve(rows * C), dq = dQ.reserve(rows * C), dk = dK.reserve(rows * C), dv = dV.reserve(rows * C)
        toOut.backward(o.pointer, dy, rows: rows, parameters: p, gradients: g, dx: d0)
        let H = heads, d = C / H
        let da = dA.reserve(P * P), scale = 1 / T.sqrt(T(d))
        for b in 0 ..< n { for h in 0 ..< H {
            let A = a.pointer + (b * H + h) * P * P, off = b * P * C + h * d
            T.gemm(transA: true, transB: false, m: P, n: d, k: P, alpha: 1, a: A, lda: P, b: d0 + off, ldb: C,
                   beta: 0, c: dv + off, ldc: C)
            T.gemm(transA: false, transB: true, m: P, n: P, k: d, alpha: 1, a: d0 + off, lda: C, b: v.pointer + off, ldb: C,
                   beta: 0, c: da, ldc: P)
            for i in 0 ..< P {
                let ar = A + i * P, dr = da + i * P
                var s: T = 0
                for j in 0 ..< P { s += dr[j] * ar[j] }
                for j in 0 ..< P { dr[j] = ar[j] * (dr[j] - s) }
            }
            T.gemm(transA: false, transB: false, m: P, n: d, k: P, alpha: scale, a: da, lda: P, b: k.pointer + off, ldb: C,
                   beta: 0, c: dq + off, ldc: C)
            T.gemm(transA: true, transB: false, m: P, n: d, k: P, alpha: scale, a: da, lda: P, b: q.pointer + off, ldb: C,
                   beta: 0, c: dk + off, ldc: C)
        } }
        let du = dU.reserve(rows * C)
        toQ.backward(u.pointer, dq, rows: rows, parameters: p, gradients: g, dx: du)
        toK.backward(u.pointer, dk, rows: rows, parameters: p, gradients: g, dx: du, accumulate: true)
        toV.backward(u.pointer, dv, rows: rows, parameters: p, gradients: g, dx: du, accumulate: true)
        let dx = dIn.reserve(rows * C)
        groupNorm.backward(x, du, batch: n, pixels: P, parameters: p, gradients: g, dx: dx)
        for i in 0 ..< rows * C { dx[i] += dy[i] }
        return dx
    }
}

/// SiLU (swish, Elfwing et al. 2018; Ramachandran et al. 2017): `y = x σ(x)`,
/// `dy/dx = σ(x) (1 + x (1 − σ(x)))`. Float32 arrays of 4096 values or more use oneDNN's swish
/// primitives (``DNNLEltwise``); the float64 twin is the loop below.
enum SiLU<T: NetworkScalar> {
    @inline(__always) static func sigmoid(_ x: T) -> T { 1 / (1 + T.exp(-x)) }

    static func forward(_ x: UnsafePointer<T>, count: Int, into y: UnsafeMutablePointer<T>) {
        if T.self == Float.self, count >= 4096, T.usesDNNLConvolution {
            DNNLEltwise.swish(count: count).runForward(cast(x), cast(y)); return
        }
        for i in 0 ..< count { let v = x[i]; y[i] = v * sigmoid(v) }
    }

    /// `dx = dy · silu'(x)` (overwritten; `dx` may alias `dy`).
    static func backward(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, count: Int, into dx: UnsafeMutablePointer<T>) {
        if T.self == Float.self, count >= 4096, T.usesDNNLConvolution {
            DNNLEltwise.swish(count: count).runBackward(cast(x), cast(dy), cast(dx)); return
        }
        for i in 0 ..< count {
            let v = x[i], s = sigmoid(v)
            dx[i] = dy[i] * s * (1 + v * (1 - s))
        }
    }
}

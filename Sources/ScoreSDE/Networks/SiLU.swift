/// SiLU (swish, Elfwing et al. 2018; Ramachandran et al. 2017): `y = x σ(x)`,
/// `dy/dx = σ(x) (1 + x (1 − σ(x)))`.
enum SiLU<T: NetworkScalar> {
    @inline(__always) static func sigmoid(_ x: T) -> T { 1 / (1 + T.exp(-x)) }

    static func forward(_ x: UnsafePointer<T>, count: Int, into y: UnsafeMutablePointer<T>) {
        for i in 0 ..< count { let v = x[i]; y[i] = v * sigmoid(v) }
    }

    /// `dx = dy · silu'(x)` (overwritten; `dx` may alias `dy`).
    static func backward(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, count: Int, into dx: UnsafeMutablePointer<T>) {
        for i in 0 ..< count {
            let v = x[i], s = sigmoid(v)
            dx[i] = dy[i] * s * (1 + v * (1 - s))
        }
    }
}

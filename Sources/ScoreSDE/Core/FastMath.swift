/// `exp(x)` for `x ≤ 0`, branch-free (so loops over it vectorize), relative error below 2e-16
/// for `x ≥ −708`; underflows to exactly 0 below that. Used by the log-sum-exp of mixture scores,
/// whose arguments are always `logit − max ≤ 0`.
@inlinable @inline(__always)
func expNonPositive(_ x0: Double) -> Double {
    let x = Swift.max(x0, -708.0)
    let n = (x * 1.4426950408889634).rounded(.toNearestOrEven)
    let r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10
    // Taylor polynomial of degree 12 on |r| ≤ ln2/2, Horner form.
    var p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    let scale = Double(bitPattern: UInt64(bitPattern: Int64(n) &+ 1023) << 52)
    return x0 < -708 ? 0 : p * scale
}

/// Vectorized `exp` for arguments `≤ 0`, the shape of every log-sum-exp (`logit − max`).
///
/// Range reduction `x = n ln2 + r` with `|r| ≤ ln2/2`, a degree-12 Taylor polynomial (relative
/// error below 2e-16), and `2ⁿ` assembled from the bits of the rounding constant, so the whole
/// computation is branch-free SIMD on baseline x86-64 (no libm call, no float→int conversion).
/// Arguments below −708 give exactly 0.
@inline(__always)
func expNonPositive(_ x0: SIMD4<Double>) -> SIMD4<Double> {
    let magic = SIMD4<Double>(repeating: 6755399441055744.0)  // 1.5·2^52: adding it rounds to an integer
    let x = x0.replacing(with: -708.0, where: x0 .< -708.0)
    let shifted = x * 1.4426950408889634 + magic
    let n = shifted - magic
    let r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10
    var p = SIMD4<Double>(repeating: 1.0 / 479001600.0)
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
    // The low bits of `shifted` hold n (two's complement); n + 1023 in the exponent field is 2ⁿ.
    let bits = SIMD4<UInt64>(truncatingIfNeeded: unsafeBitCast(shifted, to: SIMD4<Int64>.self))
    let scale = unsafeBitCast((bits &+ 1023) &<< 52, to: SIMD4<Double>.self)
    return (p * scale).replacing(with: 0, where: x0 .< -708.0)
}

/// `p[i] = exp(p[i])` in place for `count` values `≤ 0`.
@inline(__always)
func expNonPositiveInPlace(_ p: UnsafeMutablePointer<Double>, _ count: Int) {
    var i = 0
    while i &+ 4 <= count {
        let v = UnsafeMutableRawPointer(p + i).loadUnaligned(as: SIMD4<Double>.self)
        UnsafeMutableRawPointer(p + i).storeBytes(of: expNonPositive(v), as: SIMD4<Double>.self)
        i &+= 4
    }
    if i < count {
        var v = SIMD4<Double>(repeating: 0)
        for j in 0 ..< count &- i { v[j] = p[i &+ j] }
        let e = expNonPositive(v)
        for j in 0 ..< count &- i { p[i &+ j] = e[j] }
    }
}

import Foundation

/// Two-dimensional toy data sets, the classic test beds of score-based and flow models.
///
/// Every generator takes one draw of `rng` and fills row `r` from stream `(draw, r)`, so the data
/// depend only on the seed, the draw index and the row, never on the thread count.
///
///     var rng = RandomSource(seed: 1)
///     let x = Toy2D.moons(count: 10_000, using: &rng)     // Tensor [10000, 2], roughly in [-2, 2]²
public enum Toy2D {
    /// The names accepted by ``sample(_:count:using:)``.
    public static let names = ["ring", "moons", "swissroll", "checkerboard"]

    /// A toy data set by name (`ring`, `moons`, `swissroll`, `checkerboard`) with its default parameters.
    public static func sample(_ name: String, count: Int, using rng: inout RandomSource) throws -> Tensor {
        switch name {
        case "ring": return try ring(count: count, using: &rng)
        case "moons": return try moons(count: count, using: &rng)
        case "swissroll": return try swissRoll(count: count, using: &rng)
        case "checkerboard": return try checkerboard(count: count, using: &rng)
        default:
            throw ScoreSDEError.unknownName("'\(name)' is not a 2-D toy data set; choose one of \(names.joined(separator: ", "))")
        }
    }

    /// Samples of ``GaussianMixture/ring(modes:radius:std:)``: 8 equal Gaussians of std 0.25 on the
    /// circle of radius 4, so the exact score of these data is known in closed form.
    public static func ring(count: Int, using rng: inout RandomSource) throws -> Tensor {
        try checkCount(count)
        return GaussianMixture.ring().sample(count: count, using: &rng)
    }

    /// Two interleaving half circles, as scikit-learn's `make_moons`: the upper moon `(cos t, sin t)`
    /// and the lower moon `(1 − cos t, ½ − sin t)` with `t ~ U[0, π]`, each point on either moon with
    /// probability ½, plus isotropic Gaussian noise of std `noise` (scikit-learn's units); then
    /// centred at `(½, ¼)` and scaled by 4/3, so the noise-free data span `[-2, 2] × [-1, 1]`.
    public static func moons(count: Int, noise: Double = 0.05, using rng: inout RandomSource) throws -> Tensor {
        try checkCount(count)
        try checkNoise(noise)
        let s = 4.0 / 3.0
        return fill(count, &rng) { st in
            let t = Double.pi * uniform(&st)
            let lower = st.next() & 1 == 1
            var x = lower ? 1 - Foundation.cos(t) : Foundation.cos(t)
            var y = lower ? 0.5 - Foundation.sin(t) : Foundation.sin(t)
            if noise > 0 { x += noise * st.normal(); y += noise * st.normal() }
            return (s * (x - 0.5), s * (y - 0.25))
        }
    }

    /// The 2-D swiss roll, as the first and third coordinates of scikit-learn's `make_swiss_roll`:
    /// `t = 1.5π (1 + 2u)` with `u ~ U[0, 1)`, the point `(t cos t, t sin t)` plus isotropic Gaussian
    /// noise of std `noise` (scikit-learn's units, where the roll's radius is up to 4.5π); then scaled
    /// by ``swissRollScale`` = 2 / (4.5π), so the noise-free spiral has radius `t · swissRollScale ≤ 2`.
    public static func swissRoll(count: Int, noise: Double = 0.5, using rng: inout RandomSource) throws -> Tensor {
        try checkCount(count)
        try checkNoise(noise)
        let s = swissRollScale
        return fill(count, &rng) { st in
            let t = 1.5 * Double.pi * (1 + 2 * uniform(&st))
            var x = t * Foundation.cos(t), y = t * Foundation.sin(t)
            if noise > 0 { x += noise * st.normal(); y += noise * st.normal() }
            return (s * x, s * y)
        }
    }

    /// The factor mapping scikit-learn's swiss roll onto radius ≤ 2: `2 / (4.5π)`.
    public static let swissRollScale = 2 / (4.5 * Double.pi)

    /// The 4 × 4 checkerboard on `[-2, 2]²`: uniform on the 8 unit squares whose corner `(i, j)`
    /// (`i = ⌊x⌋`, `j = ⌊y⌋`) has `i + j` even — the board of FFJORD's `checkerboard` at half scale.
    public static func checkerboard(count: Int, using rng: inout RandomSource) throws -> Tensor {
        try checkCount(count)
        return fill(count, &rng) { st in
            let x = 4 * uniform(&st) - 2
            let i = Int(Foundation.floor(x))                      // -2 ... 1
            let j = -2 + (i & 1) + 2 * Int(st.next() & 1)          // same parity as i
            return (x, Double(j) + uniform(&st))
        }
    }

    // MARK: - Helpers

    /// Uniform in [0, 1), 53 bits.
    @inline(__always) static func uniform(_ s: inout PhiloxStream) -> Double {
        Double(s.next() >> 11) * 0x1p-53
    }

    /// A `[count, 2]` tensor whose row `r` is `point(stream (draw, r))`, for one draw of `rng`.
    static func fill(_ count: Int, _ rng: inout RandomSource, _ point: (inout PhiloxStream) -> (Double, Double)) -> Tensor {
        let draw = rng.nextDraw(), source = rng
        var t = Tensor(zeros: [count, 2])
        t.storage.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else { return }
            Parallel.forEachChunk(count, grain: 1024) { range in
                for r in range {
                    var s = source.stream(draw: draw, row: r)
                    let (x, y) = point(&s)
                    base[2 * r] = x; base[2 * r + 1] = y
                }
            }
        }
        return t
    }

    static func checkCount(_ count: Int) throws {
        guard count >= 0 else { throw ScoreSDEError.invalid("count", count, must: ">= 0 (the number of samples)") }
    }

    static func checkNoise(_ noise: Double) throws {
        guard noise.isFinite, noise >= 0 else {
            throw ScoreSDEError.invalid("noise", noise, must: "finite and >= 0 (a standard deviation)")
        }
    }
}

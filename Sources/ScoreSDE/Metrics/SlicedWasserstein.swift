/// Sliced 2-Wasserstein distance between two samples of equal dimension: the root mean over
/// `projections` random unit directions of the squared 1-D Wasserstein-2 distance of the projected
/// samples (quantiles matched on a common grid when the sizes differ).
///
/// A sample-quality measure for comparing samplers against exact samples of a known distribution.
public func slicedWassersteinDistance(_ a: Tensor, _ b: Tensor, projections: Int = 128, seed: UInt64 = 0) throws -> Double {
    guard a.rowSize == b.rowSize else {
        throw ScoreSDEError.shapeMismatch("sliced Wasserstein needs equal dimensions (got \(a.rowSize) and \(b.rowSize))")
    }
    guard a.rows > 0, b.rows > 0 else { throw ScoreSDEError.invalidArgument("sliced Wasserstein needs non-empty samples (got \(a.rows) and \(b.rows) rows)") }
    guard projections > 0 else { throw ScoreSDEError.invalid("projections", projections, must: "> 0") }
    let d = a.rowSize
    var rng = RandomSource(seed: seed)
    var directions = Tensor.standardNormal(shape: [projections, d], using: &rng)
    let norms = directions.rowNorms()
    for p in 0 ..< projections { for j in 0 ..< d { directions.storage[p * d + j] /= norms[p] } }
    let m = max(a.rows, b.rows)
    var total = 0.0
    for p in 0 ..< projections {
        let dir = Array(directions.storage[p * d ..< (p + 1) * d])
        func projected(_ x: Tensor) -> [Double] {
            (0 ..< x.rows).map { r in var s = 0.0; for j in 0 ..< d { s += x.storage[r * d + j] * dir[j] }; return s }.sorted()
        }
        let pa = projected(a), pb = projected(b)
        var sum = 0.0
        for i in 0 ..< m {
            let q = (Double(i) + 0.5) / Double(m)
            let diff = pa[min(pa.count - 1, Int(q * Double(pa.count)))] - pb[min(pb.count - 1, Int(q * Double(pb.count)))]
            sum += diff * diff
        }
        total += sum / Double(m)
    }
    return (total / Double(projections)).squareRoot()
}

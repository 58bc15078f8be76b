extension Tensor {
    /// A tensor of independent standard normals, one draw of `rng`.
    public static func standardNormal(shape: [Int], using rng: inout RandomSource) -> Tensor {
        var t = Tensor(zeros: shape)
        t.addStandardNormal(scaledBy: 1, using: &rng)
        return t
    }

    /// A tensor of standard normals with the shape of `other`.
    public static func standardNormal(like other: Tensor, using rng: inout RandomSource) -> Tensor {
        standardNormal(shape: other.shape, using: &rng)
    }

    /// A tensor of independent ±1 (Rademacher) values, one draw of `rng`.
    public static func rademacher(shape: [Int], using rng: inout RandomSource) -> Tensor {
        var t = Tensor(zeros: shape)
        t.fillRows(draw: rng.nextDraw(), rng) { s in s.rademacher() }
        return t
    }

    /// `self += scale * z` with `z` standard normal, fused (no temporary batch). One draw of `rng`.
    public mutating func addStandardNormal(scaledBy scale: Double, using rng: inout RandomSource) {
        let draw = rng.nextDraw()
        let d = rowSize, n = rows, source = rng
        storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.forEachChunk(n, grain: max(1, 4096 / max(d, 1))) { range in
                for r in range {
                    var s = source.stream(draw: draw, row: r)
                    let row = base + r * d
                    for j in 0 ..< d { row[j] += scale * s.normal() }
                }
            }
        }
    }

    /// `self += scale[r] * z` per row `r`, with `z` standard normal. One draw of `rng`.
    public mutating func addStandardNormal(rowScales scale: [Double], using rng: inout RandomSource) {
        precondition(scale.count == rows, "addStandardNormal: one scale per row")
        let draw = rng.nextDraw()
        let d = rowSize, n = rows, source = rng
        storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.forEachChunk(n, grain: max(1, 4096 / max(d, 1))) { range in
                for r in range {
                    var s = source.stream(draw: draw, row: r)
                    let row = base + r * d, c = scale[r]
                    for j in 0 ..< d { row[j] += c * s.normal() }
                }
            }
        }
    }

    /// Overwrites every value with `generate(stream)`, one stream per row of draw `draw`.
    mutating func fillRows(draw: UInt64, _ rng: RandomSource, _ generate: (inout PhiloxStream) -> Double) {
        let d = rowSize, n = rows
        storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.forEachChunk(n, grain: max(1, 4096 / max(d, 1))) { range in
                for r in range {
                    var s = rng.stream(draw: draw, row: r)
                    let row = base + r * d
                    for j in 0 ..< d { row[j] = generate(&s) }
                }
            }
        }
    }
}

extension Tensor {
    /// A tensor of independent standard normals, one draw of `rng`.
    public static func standardNormal(shape: [Int], using rng: inout RandomSource) -> Tensor {
        var t = Tensor(zeros: shape)
        t.fillStandardNormal(draw: rng.nextDraw(), rng)
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
        let n = rows
        addStandardNormal(rowScale: { _ in scale }, using: &rng, rowCount: n)
    }

    /// `self += scale[r] * z` per row `r`, with `z` standard normal. One draw of `rng`.
    public mutating func addStandardNormal(rowScales scale: [Double], using rng: inout RandomSource) {
        precondition(scale.count == rows, "addStandardNormal: one scale per row")
        let n = rows
        addStandardNormal(rowScale: { scale[$0] }, using: &rng, rowCount: n)
    }

    private mutating func addStandardNormal(rowScale: (Int) -> Double, using rng: inout RandomSource, rowCount n: Int) {
        let draw = rng.nextDraw(), source = rng, d = rowSize
        storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Tensor.forEachNoiseBlock(rows: n, rowSize: d, draw: draw, source) { range, z in
                for r in range {
                    let c = rowScale(r), row = base + r * d, zr = z + (r - range.lowerBound) * d
                    for j in 0 ..< d { row[j] += c * zr[j] }
                }
            }
        }
    }

    /// Runs `body(rows, z)` over blocks of rows in parallel, where `z` holds the standard normals of
    /// draw `draw` for those rows (row-major). The buffer is reused within a thread.
    static func forEachNoiseBlock(rows n: Int, rowSize d: Int, draw: UInt64, _ source: RandomSource,
                                  _ body: (Range<Int>, UnsafeMutablePointer<Double>) -> Void) {
        let rowsPerBlock = max(1, 8192 / max(d, 1))
        Parallel.forEachChunk(n, grain: max(1, 2048 / max(d, 1))) { chunk in
            let z = UnsafeMutablePointer<Double>.allocate(capacity: rowsPerBlock * d)
            defer { z.deallocate() }
            var lo = chunk.lowerBound
            while lo < chunk.upperBound {
                let hi = min(chunk.upperBound, lo + rowsPerBlock)
                source.normals(draw: draw, rows: lo ..< hi, rowSize: d, into: z)
                body(lo ..< hi, z)
                lo = hi
            }
        }
    }

    /// Overwrites every value with standard normals of draw `draw`.
    mutating func fillStandardNormal(draw: UInt64, _ source: RandomSource) {
        let d = rowSize, n = rows
        storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.forEachChunk(n, grain: max(1, 2048 / max(d, 1))) { chunk in
                source.normals(draw: draw, rows: chunk, rowSize: d, into: base + chunk.lowerBound * d)
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

import CKernels

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

    /// Rows per noise block: about 1024 values, so a block of `z` stays in L1 between being drawn
    /// and being used.
    @inline(__always) static func noiseBlockRows(_ d: Int) -> Int { max(1, 1024 / max(d, 1)) }

    /// Runs `body(rows, z)` over blocks of rows in parallel, where `z` holds the standard normals of
    /// draw `draw` for those rows (row-major). The buffer is reused within a thread.
    static func forEachNoiseBlock(rows n: Int, rowSize d: Int, draw: UInt64, _ source: RandomSource,
                                  _ body: (Range<Int>, UnsafeMutablePointer<Double>) -> Void) {
        let rowsPerBlock = noiseBlockRows(d)
        Parallel.forEachChunk(n, grain: max(1, 2048 / max(d, 1))) { chunk in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: rowsPerBlock * d) { zb in
                let z = zb.baseAddress!
                var lo = chunk.lowerBound
                while lo < chunk.upperBound {
                    let hi = min(chunk.upperBound, lo + rowsPerBlock)
                    source.normals(draw: draw, rows: lo ..< hi, rowSize: d, into: z)
                    body(lo ..< hi, z)
                    lo = hi
                }
            }
        }
    }

    // MARK: - Fused step kernels (no allocation, one parallel loop each)

    /// The fused update of a predictor (or a fixed-step corrector), one pass over memory and one
    /// parallel loop: `mean = a·x + b·s`, then `x = mean + c·z` with `z ~ N(0, I)` drawn inline, one
    /// draw of `rng` when `c ≠ 0` (none when `c = 0`). `mean` is the caller's buffer (reshaped to `x`
    /// if its shape differs, so it can start empty and be reused across steps). Same bits as the
    /// allocating `affineStep(_:xScale:score:scoreScale:noise:using:)`.
    public static func affineStep(_ x: inout Tensor, mean: inout Tensor, xScale a: Double, score s: Tensor,
                                  scoreScale b: Double, noise c: Double, using rng: inout RandomSource) {
        precondition(s.count == x.count, "affineStep: score shape \(s.shape) does not match \(x.shape)")
        if mean.shape != x.shape { mean = Tensor(zeros: x.shape) }
        let d = x.rowSize, n = x.rows
        let draw = c != 0 ? rng.nextDraw() : 0, source = rng
        let rowsPerBlock = noiseBlockRows(d)
        x.storage.withUnsafeMutableBufferPointer { xp in
            s.storage.withUnsafeBufferPointer { sp in
                mean.storage.withUnsafeMutableBufferPointer { mp in
                    let xb = xp.baseAddress!, sb = sp.baseAddress!, mb = mp.baseAddress!
                    Parallel.forEachChunk(n, grain: max(1, 2048 / max(d, 1))) { chunk in
                        var lo = chunk.lowerBound
                        while lo < chunk.upperBound {
                            let hi = min(chunk.upperBound, lo + rowsPerBlock)
                            let i0 = lo * d, i1 = hi * d
                            for i in i0 ..< i1 { mb[i] = a * xb[i] + b * sb[i] }
                            if c == 0 {
                                for i in i0 ..< i1 { xb[i] = mb[i] }
                            } else {
                                source.normals(draw: draw, rows: lo ..< hi, rowSize: d, into: xb + i0)  // x ← z
                                for i in i0 ..< i1 { xb[i] = mb[i] + c * xb[i] }
                            }
                            lo = hi
                        }
                    }
                }
            }
        }
    }

    /// The noise of one Langevin corrector step and the norms its step size needs, in one pass and
    /// one parallel loop: fills `z` (the caller's buffer, reshaped to `s` if its shape differs) with
    /// one draw of standard normals and returns the population means of the row norms `‖s_r‖` and
    /// `‖z_r‖` (Song et al. 2021, Algorithm 4's `‖s‖`, `‖z‖`; score_sde averages over the batch).
    /// Each row norm is `rowNorms()`'s, and the means are summed in row order, so the result is the
    /// same bits as `s.rowNorms().mean()`, `z.rowNorms().mean()` whatever the thread count.
    /// The step then is `x.add(s, scaledBy: ε, z, scaledBy: √(2ε))`.
    public static func langevinNoise(_ z: inout Tensor, score s: Tensor, using rng: inout RandomSource)
        -> (meanScoreNorm: Double, meanNoiseNorm: Double) {
        if z.shape != s.shape { z = Tensor(zeros: s.shape) }
        let d = s.rowSize, n = s.rows
        guard n > 0 else { _ = rng.nextDraw(); return (0, 0) }
        let draw = rng.nextDraw(), source = rng
        let rowsPerBlock = noiseBlockRows(d)
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * n) { norms in
            let sn = norms.baseAddress!, zn = sn + n
            z.storage.withUnsafeMutableBufferPointer { zp in
                s.storage.withUnsafeBufferPointer { sp in
                    let zb = zp.baseAddress!, sb = sp.baseAddress!
                    Parallel.forEachChunk(n, grain: max(1, 2048 / max(d, 1))) { chunk in
                        var lo = chunk.lowerBound
                        while lo < chunk.upperBound {
                            let hi = min(chunk.upperBound, lo + rowsPerBlock)
                            source.normals(draw: draw, rows: lo ..< hi, rowSize: d, into: zb + lo * d)
                            sde_row_norms(sb + lo * d, hi - lo, d, sn + lo, -1)
                            sde_row_norms(zb + lo * d, hi - lo, d, zn + lo, -1)
                            lo = hi
                        }
                    }
                }
            }
            var a = 0.0, b = 0.0
            for r in 0 ..< n { a += sn[r]; b += zn[r] }
            return (a / Double(n), b / Double(n))
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

import CKernels
import Foundation
import Testing
@testable import ScoreSDE

/// The instruction-set levels this CPU can run (`SDE_LEVEL_*`): every one must give the same bits.
private let levels: [Int32] = (0 ... sde_cpu_level()).map { Int32($0) }

/// A scalar reference of the batched normals, written from the documented keying alone: value j of
/// row r of draw `draw` is the 64-bit half j % 2 of Philox block (j/2, r, draw low, draw high); the
/// ziggurat (Marsaglia & Tsang 2000, 256 layers) accepts x = u·X[i] when x < X[i+1]; otherwise the
/// draw is finished by the wedge / tail test and, failing that, by |fresh normal| with the original
/// sign, all on the sequential stream of blocks (2³¹ + 64 j, r, draw), word a then word b.
private struct ReferenceNormals {
    let seed: UInt64
    var tails = 0, wedges = 0

    /// Sequential 64-bit words of blocks `(first, first + 1, …; row, draw)`.
    struct Stream {
        let seed: UInt64, row: UInt32, lo: UInt32, hi: UInt32
        var block: UInt32
        var pending: UInt64?
        mutating func next() -> UInt64 {
            if let p = pending { pending = nil; return p }
            let (a, b) = Philox.block(block, row, lo, hi, key: seed)
            block &+= 1
            pending = b
            return a
        }
        mutating func uniformPositive() -> Double { Double((next() >> 11) + 1) * 0x1p-53 }
    }

    /// The slow path of layer `i` at `x`: the magnitude, or nil to draw again.
    mutating func slow(_ i: Int, _ x: Double, _ s: inout Stream) -> Double? {
        let X = Ziggurat.x, F = Ziggurat.f
        if i == 0 {
            tails += 1
            while true {
                let a = -Foundation.log(s.uniformPositive()) / Ziggurat.r
                let b = -Foundation.log(s.uniformPositive())
                if 2 * b > a * a { return X[1] + a }
            }
        }
        wedges += 1
        let y = F[i] + (F[i + 1] - F[i]) * s.uniformPositive()
        return y < Foundation.exp(-0.5 * x * x) ? x : nil
    }

    mutating func value(draw: UInt64, row: UInt64, j: Int) -> Double {
        let X = Ziggurat.x
        let lo = UInt32(truncatingIfNeeded: draw), hi = UInt32(truncatingIfNeeded: draw >> 32)
        let (a, b) = Philox.block(UInt32(j / 2), UInt32(truncatingIfNeeded: row), lo, hi, key: seed)
        let w = j % 2 == 0 ? a : b
        let i = Int(w & 0xFF), negative = (w >> 8) & 1 == 1
        let x = Double(w >> 11) * 0x1p-53 * X[i]
        if x < X[i + 1] { return negative ? -x : x }
        var s = Stream(seed: seed, row: UInt32(truncatingIfNeeded: row), lo: lo, hi: hi,
                       block: 0x8000_0000 &+ UInt32(j) &* 64, pending: nil)
        var magnitude: Double
        if let v = slow(i, x, &s) {
            magnitude = v
        } else {
            while true {   // a fresh standard normal, then its absolute value
                let w2 = s.next()
                let i2 = Int(w2 & 0xFF), neg2 = (w2 >> 8) & 1 == 1
                let x2 = Double(w2 >> 11) * 0x1p-53 * X[i2]
                if x2 < X[i2 + 1] { magnitude = neg2 ? -x2 : x2; break }
                if let v = slow(i2, x2, &s) { magnitude = neg2 ? -v : v; break }
            }
            magnitude = magnitude < 0 ? -magnitude : magnitude
        }
        return negative ? -magnitude : magnitude
    }
}

@Suite("C kernels")
struct KernelTests {
    @Test("vectorized normals equal the scalar reference bitwise (every level, odd sizes, rejections, tails)",
          arguments: [1, 2, 3, 5, 7, 64, 65, 1030])
    func normalsMatchReference(rowSize d: Int) {
        let seed: UInt64 = 0x5EED_0000_0001 &* UInt64(d)
        var reference = ReferenceNormals(seed: seed)
        let rows = max(3, 120_000 / d), rowOffset = 17
        let rng = RandomSource(seed: seed, rowOffset: rowOffset)
        var rejected = 0
        for draw: UInt64 in [0, 5, 0x1_0000_0003] {
            let expected = (0 ..< rows * d).map { q in
                reference.value(draw: draw, row: UInt64(rowOffset + q / d), j: q % d)
            }
            rejected = reference.tails + reference.wedges
            for level in levels {
                // A split that is not a multiple of the C call's chunk, to cover the chunk seams.
                var out = [Double](repeating: .nan, count: rows * d)
                out.withUnsafeMutableBufferPointer { p in
                    let cut = rows / 3 + 1
                    rng.normals(draw: draw, rows: 0 ..< cut, rowSize: d, into: p.baseAddress!, level: level)
                    rng.normals(draw: draw, rows: cut ..< rows, rowSize: d, into: p.baseAddress! + cut * d, level: level)
                }
                let mismatch = out.indices.first { out[$0].bitPattern != expected[$0].bitPattern }
                #expect(mismatch == nil, "level \(level), draw \(draw): first mismatch at \(mismatch ?? -1)")
            }
        }
        // ≈1.5% of values leave the fast path; ≈1/256 of those are layer 0 (the tail test).
        #expect(rejected > 3 * rows * d / 200)
        #expect(reference.tails >= 1)
    }

    /// The bitwise reference above shares the library's ziggurat tables; beside it, the truth those
    /// tables must produce: 400 000 values (every CPU level) are standard normal — KS distance below
    /// √(ln(2/5.7e-7)/(2n)) (the 5σ level), and the share beyond the base layer's edge r, which only
    /// the tail path can produce, 2(1 − Φ(r)) = 2.58e-4, within 5 binomial standard errors.
    @Test("the vectorized normals are standard normal, tails included (independent of the tables)")
    func normalsAreStandardNormal() {
        let n = 400_000, rng = RandomSource(seed: 0xA11CE)
        for level in levels {
            var out = [Double](repeating: .nan, count: n)
            out.withUnsafeMutableBufferPointer { rng.normals(draw: 3, rows: 0 ..< n / 8, rowSize: 8, into: $0.baseAddress!, level: level) }
            let d = ksStatistic(out, cdf: normalCDF)
            #expect(d <= (log(2 / 5.7e-7) / (2 * Double(n))).squareRoot(), "level \(level): KS distance \(d)")
            let r = 3.6541528853610088, p = 2 * (1 - normalCDF(r))
            let tail = Double(out.filter { abs($0) > r }.count) / Double(n)
            #expect(abs(tail - p) <= zBound * (p * (1 - p) / Double(n)).squareRoot(), "level \(level): share beyond r \(tail) vs \(p)")
        }
    }

    @Test("Tensor noise and the fused kernels use the same numbers; any thread count gives the same bits")
    func fusedKernels() throws {
        let n = 3001, d = 3
        var r0 = RandomSource(seed: 77)
        let x0 = Tensor.standardNormal(shape: [n, d], using: &r0)
        let s = Tensor.standardNormal(shape: [n, d], using: &r0)
        for threads in [1, 2] {
            Parallel.$threadLimit.withValue(threads) {
                // affineStep into a caller's mean == the allocating affineStep, bit for bit.
                var xa = x0, xb = x0, mean = Tensor(zeros: [1, 1])
                var ra = RandomSource(seed: 5), rb = RandomSource(seed: 5)
                let m1 = Tensor.affineStep(&xa, xScale: 0.9, score: s, scoreScale: 0.3, noise: 0.7, using: &ra)
                Tensor.affineStep(&xb, mean: &mean, xScale: 0.9, score: s, scoreScale: 0.3, noise: 0.7, using: &rb)
                #expect(mean == m1 && xa == xb && ra.draw == rb.draw)
                // Noise-free: one pass, no draw.
                var xc = x0
                Tensor.affineStep(&xc, mean: &mean, xScale: 0.5, score: s, scoreScale: 2, noise: 0, using: &rb)
                #expect(rb.draw == ra.draw && xc == mean && xc.storage[7] == 0.5 * x0.storage[7] + 2 * s.storage[7])
                // Langevin noise: z is the draw's normals; the means are the row-order means of rowNorms.
                var rz = RandomSource(seed: 9), rr = RandomSource(seed: 9)
                var z = Tensor(zeros: [0, d])
                let (sn, zn) = Tensor.langevinNoise(&z, score: s, using: &rz)
                let zRef = Tensor.standardNormal(shape: [n, d], using: &rr)
                #expect(z == zRef && rz.draw == rr.draw)
                #expect(sn.bitPattern == s.rowNorms().mean().bitPattern)
                #expect(zn.bitPattern == zRef.rowNorms().mean().bitPattern)
            }
        }
    }

    /// The mixture score of every level against a direct transcription of the closed form
    /// `s = Σ_k r_k (μ_k − x)/v_k`, `r = softmax(log π_k + log N(x; μ_k, v_k))` with libm's exp.
    @Test("mixture score kernel: every level gives the same bits and matches the closed form", arguments: [1, 2, 5, 64])
    func mixtureScore(dimension d: Int) throws {
        var rng = RandomSource(seed: 21)
        let k = d == 64 ? 10 : 7
        let means: [[Double]] = (0 ..< k).map { (c: Int) -> [Double] in
            (0 ..< d).map { (j: Int) -> Double in Double((c * 7 + j * 3) % 11) - 5 }
        }
        let stds: [[Double]] = (0 ..< k).map { (c: Int) -> [Double] in
            (0 ..< d).map { (j: Int) -> Double in 0.3 + 0.1 * Double((c + j) % 5) }
        }
        let g = try GaussianMixture(weights: (0 ..< k).map { 1 + Double($0) }, means: means, stds: stds)
        let kernel = GaussianMixtureKernel(g, meanScale: 0.8, std: 0.6)
        let n = 203   // not a multiple of 4 or 8: padded lanes
        var x = Tensor.standardNormal(shape: [n, d], using: &rng)
        x.scale(by: 4)
        var outputs = [[Double]]()
        for level in levels {
            var out = [Double](repeating: .nan, count: n * d)
            let ok = out.withUnsafeMutableBufferPointer { o in
                sde_gmm_score(x.storage, o.baseAddress!, nil, n, d, k, kernel.mu, kernel.iv, kernel.mv, kernel.lc, level)
            }
            #expect(ok == 1)
            outputs.append(out)
        }
        for o in outputs.dropFirst() { #expect(o.map(\.bitPattern) == outputs[0].map(\.bitPattern)) }
        let viaTensor = try GaussianMixtureScore(g, diffusedBy: try VESDE()).score(x, at: 0.5)
        var worst = 0.0
        /// Variance of component c, dimension j, diffused with mean scale 0.8 and std 0.6.
        func variance(_ c: Int, _ j: Int) -> Double { 0.8 * 0.8 * stds[c][j] * stds[c][j] + 0.36 }
        for r in 0 ..< n {
            let xr = x.row(r)
            var logits = [Double](repeating: 0, count: k)
            for c in 0 ..< k {
                var l = Foundation.log(g.weights[c])
                for j in 0 ..< d {
                    let v = variance(c, j), e = xr[j] - 0.8 * means[c][j]
                    l -= 0.5 * Foundation.log(2 * Double.pi * v)
                    l -= 0.5 * e * e / v
                }
                logits[c] = l
            }
            let top = logits.max()!
            let w = logits.map { Foundation.exp($0 - top) }, total = w.reduce(0, +)
            for j in 0 ..< d {
                var sj = 0.0
                for c in 0 ..< k {
                    let target: Double = 0.8 * means[c][j] - xr[j]
                    sj += w[c] / total * target / variance(c, j)
                }
                worst = max(worst, abs(outputs[0][r * d + j] - sj) / (1 + abs(sj)))
            }
        }
        #expect(worst < 1e-10, "largest relative error \(worst)")
        // score(_:at:into:) writes the same numbers into a reused buffer.
        var buffer = Tensor(zeros: [1, 1])
        try GaussianMixtureScore(g, diffusedBy: try VESDE()).score(x, at: 0.5, into: &buffer)
        #expect(buffer == viaTensor)
        // A non-finite input is reported, not returned.
        var bad = x
        bad.storage[5] = .nan
        #expect(throws: ScoreSDEError.self) { try GaussianMixtureScore(g, diffusedBy: try VESDE()).score(bad, at: 0.5, into: &buffer) }
    }

    /// The row-norm kernel against a plain sum of squares in libm double precision, and every level
    /// against `Tensor.rowNorms()` bitwise (the Langevin step size depends on these bits).
    @Test("row-norm kernel: every level gives rowNorms()'s bits", arguments: [1, 2, 3, 5, 8, 64])
    func rowNorms(dimension d: Int) {
        var rng = RandomSource(seed: 5)
        let n = 37   // not a multiple of 4 or 8: padded lanes
        var x = Tensor.standardNormal(shape: [n, d], using: &rng)
        x.storage[0] = 0   // a zero entry and large values too
        x.storage[d] = 1e150
        let swift = x.rowNorms()
        for level in levels {
            var out = [Double](repeating: .nan, count: n)
            out.withUnsafeMutableBufferPointer { o in sde_row_norms(x.storage, n, d, o.baseAddress!, level) }
            #expect(out.map(\.bitPattern) == swift.map(\.bitPattern), "level \(level)")
            for r in 0 ..< n {
                let direct = x.row(r).reduce(0) { $0 + $1 * $1 }.squareRoot()
                #expect(abs(out[r] - direct) <= 1e-15 * direct)
            }
        }
    }

    @Test("the pool runs every chunk exactly once, nested and concurrent calls included")
    func pool() async throws {
        for count in [1, 2, 3, 17, 1000, 100_003] {
            for threads in [1, 2, 3, 8] {
                var hits = [Int](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { h in
                    Parallel.$threadLimit.withValue(threads) {
                        Parallel.forEachChunk(count, grain: 1) { r in
                            for i in r { h[i] += 1 }
                            Parallel.forEachChunk(4, grain: 1) { _ in }   // nested: runs inline
                        }
                    }
                }
                #expect(hits.allSatisfy { $0 == 1 }, "count \(count), threads \(threads)")
            }
        }
        // Concurrent callers (the pool serves one; the others run their chunks inline): same bits.
        var r0 = RandomSource(seed: 3)
        let score = Tensor.standardNormal(shape: [4096, 2], using: &r0)
        func run() -> [Double] {
            var rng = RandomSource(seed: 4), z = Tensor(zeros: [0, 2])
            return (0 ..< 50).map { _ in Tensor.langevinNoise(&z, score: score, using: &rng).meanNoiseNorm }
        }
        let serial = run()
        let concurrent = await withTaskGroup(of: [Double].self) { group in
            for _ in 0 ..< 4 { group.addTask { run() } }
            return await group.reduce(into: [[Double]]()) { $0.append($1) }
        }
        #expect(concurrent.count == 4 && concurrent.allSatisfy { $0 == serial })
        #expect(Parallel.allChunks(100, grain: 1) { r in r.lowerBound >= 0 })
        #expect(!Parallel.allChunks(100, grain: 1) { r in !r.contains(99) })
        struct Boom: Error { let at: Int }
        #expect(throws: Boom.self) {
            try Parallel.forEachChunkThrowing(100, grain: 1) { r in if r.contains(60) { throw Boom(at: 60) } }
        }
    }
}

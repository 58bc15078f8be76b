import CKernels
import Foundation

/// A counter-based random source: Philox4x32-10 keyed by the seed, with 128-bit counters
/// (block, row, draw low, draw high); rows are numbered with 32 bits. Every random number is a pure function of `(seed, draw, row, index)`,
/// so the same seed gives the same samples whatever the thread count or batch split — and
/// shards started with `rowOffset` reproduce a single run exactly.
///
/// A *draw* is one call that fills a whole batch (e.g. the noise of one predictor step); each
/// draw advances `draw` by one. Rows are numbered globally: row `i` of a batch is row
/// `rowOffset + i` of the run.
///
///     var rng = RandomSource(seed: 42)
///     let z = Tensor.standardNormal(shape: [4096, 2], using: &rng)   // draw 0
///
/// Reference: Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC 2011).
public struct RandomSource: Sendable, Equatable {
    /// The seed: the Philox key.
    public let seed: UInt64
    /// The index of the next draw.
    public var draw: UInt64
    /// Global index of row 0 of the batches drawn with this source.
    public var rowOffset: Int

    public init(seed: UInt64, rowOffset: Int = 0) {
        self.seed = seed
        self.draw = 0
        self.rowOffset = rowOffset
    }

    /// Reserves the next draw index.
    @inlinable public mutating func nextDraw() -> UInt64 {
        defer { draw &+= 1 }
        return draw
    }

    /// The stream of uniform bits for one `(draw, row)` pair.
    @inlinable public func stream(draw: UInt64, row: Int) -> PhiloxStream {
        PhiloxStream(key: seed, draw: draw, row: UInt64(rowOffset + row))
    }

    /// Fills `rows.count × rowSize` standard normals of draw `draw` into `out` (row-major, row
    /// `rows.lowerBound` first). Value `j` of row `r` comes from the 64 bits of Philox block
    /// `(j/2, r, draw)`, half `j % 2`, through the ziggurat; the rare rejections (≈1.5%) continue on
    /// the block sequence `2³¹ + 64 j …` of the same row. Runs in C (`sde_normals`): eight or sixteen
    /// Philox blocks per vector on AVX2 / AVX-512, the same bits on every CPU.
    public func normals(draw: UInt64, rows: Range<Int>, rowSize d: Int, into out: UnsafeMutablePointer<Double>) {
        normals(draw: draw, rows: rows, rowSize: d, into: out, level: -1)
    }

    /// `normals(draw:rows:rowSize:into:)` with an explicit instruction-set level (`SDE_LEVEL_*`,
    /// −1 for the best this CPU has): lets tests pin every level to the same bits.
    func normals(draw: UInt64, rows: Range<Int>, rowSize d: Int, into out: UnsafeMutablePointer<Double>, level: Int32) {
        guard rows.count > 0, d > 0 else { return }
        let first = UInt64(rowOffset + rows.lowerBound)
        precondition(rowOffset + rows.lowerBound >= 0 && first &+ UInt64(rows.count) <= UInt64(UInt32.max),
                     "RandomSource: row indices must fit in 32 bits")
        Ziggurat.x.withUnsafeBufferPointer { xp in
            Ziggurat.f.withUnsafeBufferPointer { fp in
                sde_normals(seed, draw, UInt32(first), rows.count, d, xp.baseAddress!, fp.baseAddress!, out, level)
            }
        }
    }

    /// A source whose draws are independent of this one's (e.g. Hutchinson probes vs. sampler noise).
    public func derived(_ purpose: UInt64) -> RandomSource {
        var s = RandomSource(seed: Philox.mix(seed ^ (purpose &* 0x9E37_79B9_7F4A_7C15)), rowOffset: rowOffset)
        s.draw = 0
        return s
    }
}

/// The Philox4x32-10 bijection.
public enum Philox {
    @usableFromInline static let m0: UInt64 = 0xD251_1F53, m1: UInt64 = 0xCD9E_8D57
    @usableFromInline static let w0: UInt32 = 0x9E37_79B9, w1: UInt32 = 0xBB67_AE85

    /// Encrypts a 128-bit counter under a 64-bit key; returns 128 random bits.
    @inlinable @inline(__always)
    public static func block(_ c0: UInt32, _ c1: UInt32, _ c2: UInt32, _ c3: UInt32, key: UInt64) -> (UInt64, UInt64) {
        var x0 = c0, x1 = c1, x2 = c2, x3 = c3
        var k0 = UInt32(truncatingIfNeeded: key), k1 = UInt32(truncatingIfNeeded: key >> 32)
        for _ in 0 ..< 10 {
            let p0 = m0 &* UInt64(x0), p1 = m1 &* UInt64(x2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            x0 = hi1 ^ x1 ^ k0
            x1 = lo1
            x2 = hi0 ^ x3 ^ k1
            x3 = lo0
            k0 &+= w0; k1 &+= w1
        }
        return (UInt64(x0) | UInt64(x1) << 32, UInt64(x2) | UInt64(x3) << 32)
    }

    /// SplitMix64's finalizer, used to derive keys.
    public static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0 &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Sequential random bits for one `(seed, draw, row)`: Philox blocks with an incrementing counter.
public struct PhiloxStream {
    @usableFromInline let key: UInt64
    @usableFromInline let c1: UInt32, c2: UInt32, c3: UInt32
    @usableFromInline var block: UInt32 = 0
    @usableFromInline var buffered: UInt64 = 0
    @usableFromInline var hasBuffered = false

    @inlinable init(key: UInt64, draw: UInt64, row: UInt64, firstBlock: UInt32 = 0) {
        self.key = key
        block = firstBlock
        c1 = UInt32(truncatingIfNeeded: row)
        c2 = UInt32(truncatingIfNeeded: draw)
        c3 = UInt32(truncatingIfNeeded: draw >> 32)
    }

    /// 64 random bits.
    @inlinable @inline(__always) public mutating func next() -> UInt64 {
        if hasBuffered { hasBuffered = false; return buffered }
        let (a, b) = Philox.block(block, c1, c2, c3, key: key)
        block &+= 1
        buffered = b; hasBuffered = true
        return a
    }

    /// Uniform in (0, 1], 53 bits.
    @inlinable @inline(__always) public mutating func uniformPositive() -> Double {
        Double((next() >> 11) &+ 1) * 0x1p-53
    }

    /// A standard normal variate (256-layer ziggurat on 64-bit draws).
    @inlinable @inline(__always) public mutating func normal() -> Double {
        while true {
            let bits = next()
            let i = Int(truncatingIfNeeded: bits & 0xFF)
            let negative = (bits >> 8) & 1 == 1
            let u = Double(bits >> 11) * 0x1p-53
            let x = u * Ziggurat.x[i]
            if x < Ziggurat.x[i + 1] { return negative ? -x : x }
            if let v = slowNormal(layer: i, x: x) { return negative ? -v : v }
        }
    }

    @usableFromInline mutating func slowNormal(layer i: Int, x: Double) -> Double? {
        if i == 0 {  // tail beyond r (Marsaglia 1964)
            let r = Ziggurat.r
            while true {
                let a = -Foundation.log(uniformPositive()) / r
                let b = -Foundation.log(uniformPositive())
                if 2 * b > a * a { return r + a }
            }
        }
        let f0 = Ziggurat.f[i], f1 = Ziggurat.f[i + 1]
        let y = f0 + (f1 - f0) * uniformPositive()
        return y < Foundation.exp(-0.5 * x * x) ? x : nil
    }

    /// ±1 with equal probability.
    @inlinable @inline(__always) public mutating func rademacher() -> Double {
        next() & 1 == 0 ? 1 : -1
    }
}

/// Tables of the 256-layer ziggurat for the standard normal (Marsaglia & Tsang 2000).
/// `x[0]` is the width of the base strip (area v incl. tail), `x[1] = r`, `x[256] = 0`; `f = exp(-x²/2)`.
@usableFromInline enum Ziggurat {
    @usableFromInline static let r = 3.6541528853610088
    static let v = 0.00492867323399
    @usableFromInline static let x: [Double] = {
        var x = [Double](repeating: 0, count: 257)
        let f: (Double) -> Double = { Foundation.exp(-0.5 * $0 * $0) }
        x[0] = v / f(r)
        x[1] = r
        for i in 2 ..< 256 {
            x[i] = (-2 * Foundation.log(v / x[i - 1] + f(x[i - 1]))).squareRoot()
        }
        x[256] = 0
        return x
    }()
    @usableFromInline static let f: [Double] = x.map { Foundation.exp(-0.5 * $0 * $0) }
}

import Foundation
import Testing
@testable import ScoreSDE

/// The two ways the library turns Philox bits into normals: the batched tensor path (sampler noise,
/// `RandomSource.normals`) and the sequential per-row stream (`PhiloxStream.normal`, mixture sampling).
enum NormalPath: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case tensor, stream
    var testDescription: String { rawValue }

    /// `n` standard normals from seed `seed`, draw 0.
    func draws(_ n: Int, seed: UInt64) -> [Double] {
        switch self {
        case .tensor:
            var rng = RandomSource(seed: seed)
            // 4 columns: exercises both halves of a Philox block and several blocks per row.
            return Tensor.standardNormal(shape: [n / 4, 4], using: &rng).storage
        case .stream:
            let rng = RandomSource(seed: seed)
            var out = [Double](); out.reserveCapacity(n)
            var row = 0
            while out.count < n {
                var s = rng.stream(draw: 0, row: row)
                for _ in 0 ..< 1000 { out.append(s.normal()) }
                row += 1
            }
            return Array(out.prefix(n))
        }
    }
}

@Suite("Random source")
struct RandomTests {
    /// Known-answer vectors of Random123 (`kat_vectors`, "philox4x32 10 CTR KEY -> OUT", hex words),
    /// the published reference implementation of Philox (Salmon et al. 2011). Key word 0 is the low
    /// half of our 64-bit key; output words 0,1 form the first UInt64 (word 0 low), 2,3 the second.
    @Test("Philox4x32-10 matches the Random123 known-answer vectors")
    func philoxKnownAnswers() {
        let cases: [([UInt32], [UInt32], [UInt32])] = [
            ([0, 0, 0, 0], [0, 0], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]),
            ([0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], [0xFFFF_FFFF, 0xFFFF_FFFF],
             [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]),
            ([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], [0xa409_3822, 0x299f_31d0],
             [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]),
        ]
        for (c, k, out) in cases {
            let key = UInt64(k[0]) | UInt64(k[1]) << 32
            let (a, b) = Philox.block(c[0], c[1], c[2], c[3], key: key)
            #expect(a == UInt64(out[0]) | UInt64(out[1]) << 32)
            #expect(b == UInt64(out[2]) | UInt64(out[3]) << 32)
        }
    }

    /// The documented layout of the batched normals (`RandomSource.normals`): value j of row r of a
    /// draw comes from the 64-bit half j % 2 of Philox block (counter j/2, r, draw) through the
    /// ziggurat's fast path (x = u · X[i] accepted when x < X[i+1]; layer i = low 8 bits, sign =
    /// bit 8, u = top 53 bits). Recomputed here with the scalar Philox for every value that takes the
    /// fast path (≈ 99%): this pins the bulk (multi-block) Philox to the known-answer one.
    @Test("batched normals follow the documented Philox layout", arguments: [1, 2, 5, 64])
    func batchedNormalsLayout(rowSize d: Int) {
        let seed: UInt64 = 0xDEAD_BEEF_0123, rowOffset = 5, draw: UInt64 = 3
        var rng = RandomSource(seed: seed, rowOffset: rowOffset)
        rng.draw = draw
        let z = Tensor.standardNormal(shape: [300, d], using: &rng)
        var checked = 0
        for r in 0 ..< 300 {
            for j in 0 ..< d {
                let row = UInt32(rowOffset + r)
                let (a, b) = Philox.block(UInt32(j / 2), row, UInt32(truncatingIfNeeded: draw), UInt32(truncatingIfNeeded: draw >> 32), key: seed)
                let w = j % 2 == 0 ? a : b
                let i = Int(w & 0xFF)
                let x = Double(w >> 11) * 0x1p-53 * Ziggurat.x[i]
                guard x < Ziggurat.x[i + 1] else { continue }
                let expected = (w >> 8) & 1 == 1 ? -x : x
                #expect(z.storage[r * d + j].bitPattern == expected.bitPattern, "row \(r) value \(j)")
                checked += 1
            }
        }
        #expect(Double(checked) > 0.97 * Double(300 * d))
    }

    /// 1e6 draws: standard errors of the moment estimators for N(0,1) are √(1/n) (mean),
    /// √(2/n) (variance), √(6/n) (skewness), √(24/n) (excess kurtosis); each checked at 5σ.
    /// KS: by the DKW inequality P(sup|F_n − Φ| > λ) ≤ 2 exp(−2nλ²); λ for a 1e-6 false alarm.
    @Test("standard normal: moments and Kolmogorov–Smirnov on 1e6 draws", arguments: NormalPath.allCases)
    func normalDistribution(path: NormalPath) {
        let n = 1_000_000
        let z = path.draws(n, seed: 20_210_101)
        #expect(z.count == n)
        #expect(z.allSatisfy { $0.isFinite })
        let m = Moments(z), nd = Double(n)
        #expect(abs(m.mean) <= zBound / nd.squareRoot(), "mean \(m.mean)")
        #expect(abs(m.variance - 1) <= zBound * (2 / nd).squareRoot(), "variance \(m.variance)")
        #expect(abs(m.skewness) <= zBound * (6 / nd).squareRoot(), "skewness \(m.skewness)")
        #expect(abs(m.excessKurtosis) <= zBound * (24 / nd).squareRoot(), "excess kurtosis \(m.excessKurtosis)")
        let d = ksStatistic(z, cdf: normalCDF)
        let lambda = (log(2 / 1e-6) / (2 * nd)).squareRoot()
        #expect(d <= lambda, "KS statistic \(d) > \(lambda)")
    }

    /// The ziggurat's base strip hands values beyond r = 3.6541528853610088 to Marsaglia's tail
    /// method. P(|z| > r) = erfc(r/√2) ≈ 2.6e-4; with 4e6 draws ≈ 1030 tail values: binomial 5σ on
    /// the frequency, and 5σ on the mean excess E[|z| − r | |z| > r] = λ − r (λ = φ(r)/Q(r), the
    /// truncated-normal mean), whose variance is 1 + rλ − λ².
    @Test("ziggurat tail: P(|z| > 3.65) and the tail shape", arguments: NormalPath.allCases)
    func zigguratTail(path: NormalPath) {
        let n = 4_000_000
        let r = 3.6541528853610088
        let z = path.draws(n, seed: 7)
        let tail = z.filter { abs($0) > r }.map { abs($0) - r }
        let p = erfc(r / 2.0.squareRoot())
        let nd = Double(n)
        let freq = Double(tail.count) / nd
        #expect(abs(freq - p) <= zBound * (p * (1 - p) / nd).squareRoot(), "tail frequency \(freq) vs \(p)")
        let q = 0.5 * erfc(r / 2.0.squareRoot())
        let lam = normalPDF(r) / q
        let meanExcess = lam - r, varExcess = 1 + r * lam - lam * lam
        let observed = tail.reduce(0, +) / Double(tail.count)
        #expect(abs(observed - meanExcess) <= zBound * (varExcess / Double(tail.count)).squareRoot(),
                "mean tail excess \(observed) vs \(meanExcess)")
        // Both signs occur in the tail (sign bit independent of the layer).
        let negatives = z.filter { $0 < -r }.count
        let k = Double(tail.count)
        #expect(abs(Double(negatives) - k / 2) <= zBound * (k / 4).squareRoot())
    }

    @Test("Rademacher: exactly ±1, mean 0, columns uncorrelated")
    func rademacher() {
        var rng = RandomSource(seed: 5)
        let t = Tensor.rademacher(shape: [250_000, 4], using: &rng)
        #expect(t.storage.allSatisfy { $0 == 1 || $0 == -1 })
        let n = Double(t.count)
        // Var = 1: SE of the mean 1/√n.
        #expect(abs(t.storage.reduce(0, +) / n) <= zBound / n.squareRoot())
        let c0 = (0 ..< t.rows).map { t.storage[4 * $0] }, c1 = (0 ..< t.rows).map { t.storage[4 * $0 + 1] }
        #expect(abs(correlation(c0, c1)) <= zBound / Double(t.rows).squareRoot())
        #expect(rng.draw == 1)
    }

    @Test("same (seed, draw, row) gives identical numbers; every noise path agrees", arguments: [1, 3, 64])
    func determinism(rowSize d: Int) {
        var a = RandomSource(seed: 11); a.draw = 3
        var b = RandomSource(seed: 11); b.draw = 3
        let x = Tensor.standardNormal(shape: [10, d], using: &a)
        let y = Tensor.standardNormal(shape: [25, d], using: &b)   // a bigger batch: row r is still row r
        #expect(x.storage.map(\.bitPattern) == y.rows(0 ..< 10).storage.map(\.bitPattern))
        #expect(a.draw == 4 && b.draw == 4)

        // The fused noise of the predictors (`affineStep`) and `addStandardNormal` use the same numbers.
        var c = RandomSource(seed: 11); c.draw = 3
        var zero = Tensor(zeros: [10, d])
        _ = Tensor.affineStep(&zero, xScale: 1, score: Tensor(zeros: [10, d]), scoreScale: 0, noise: 1, using: &c)
        #expect(zero.storage.map(\.bitPattern) == x.storage.map(\.bitPattern))
        var e = RandomSource(seed: 11); e.draw = 3
        var w = Tensor(zeros: [10, d])
        w.addStandardNormal(scaledBy: 1, using: &e)
        #expect(w.storage.map(\.bitPattern) == x.storage.map(\.bitPattern))

        // The sequential stream is a pure function of (seed, draw, row) too.
        var s1 = RandomSource(seed: 11).stream(draw: 3, row: 2), s2 = RandomSource(seed: 11).stream(draw: 3, row: 2)
        for _ in 0 ..< 100 { #expect(s1.normal().bitPattern == s2.normal().bitPattern) }
    }

    /// Sample correlations of independent series have SE 1/√n; each pair checked at 5σ.
    @Test("different rows, columns, draws and seeds are uncorrelated")
    func independence() {
        let n = 200_000
        var rng = RandomSource(seed: 123)
        let d0 = Tensor.standardNormal(shape: [n, 4], using: &rng)
        let d1 = Tensor.standardNormal(shape: [n, 4], using: &rng)
        var other = RandomSource(seed: 124)
        let s1 = Tensor.standardNormal(shape: [n, 4], using: &other)
        func col(_ t: Tensor, _ j: Int, rows: Range<Int> = 0 ..< n) -> [Double] { rows.map { t.storage[4 * $0 + j] } }
        let tol = zBound / Double(n - 1).squareRoot()
        let pairs: [(String, [Double], [Double])] = [
            ("columns 0/1 (same Philox block)", col(d0, 0), col(d0, 1)),
            ("columns 1/2 (adjacent blocks)", col(d0, 1), col(d0, 2)),
            ("rows r/r+1", col(d0, 0, rows: 0 ..< n - 1), col(d0, 0, rows: 1 ..< n)),
            ("draws 0/1", col(d0, 3), col(d1, 3)),
            ("seeds 123/124", col(d0, 2), col(s1, 2)),
            ("squares, rows r/r+1", col(d0, 1, rows: 0 ..< n - 1).map { $0 * $0 }, col(d0, 1, rows: 1 ..< n).map { $0 * $0 }),
        ]
        for (name, a, b) in pairs {
            let r = correlation(a, b)
            #expect(abs(r) <= tol, "\(name): correlation \(r) (tol \(tol))")
        }
    }

    @Test("rowOffset sharding reproduces one batch bitwise", arguments: [1, 3, 64])
    func sharding(rowSize d: Int) {
        var whole = RandomSource(seed: 77)
        var lo = RandomSource(seed: 77, rowOffset: 0)
        var hi = RandomSource(seed: 77, rowOffset: 4)
        for _ in 0 ..< 3 {   // several draws: the draw counters advance alike
            let w = Tensor.standardNormal(shape: [10, d], using: &whole)
            let a = Tensor.standardNormal(shape: [4, d], using: &lo)
            let b = Tensor.standardNormal(shape: [6, d], using: &hi)
            let joined = try! Tensor.concatenating([a, b])
            #expect(joined.storage.map(\.bitPattern) == w.storage.map(\.bitPattern))
        }
        let rw = Tensor.rademacher(shape: [10, d], using: &whole)
        let ra = Tensor.rademacher(shape: [4, d], using: &lo), rb = Tensor.rademacher(shape: [6, d], using: &hi)
        #expect(try! Tensor.concatenating([ra, rb]) == rw)
    }

    @Test("noise is independent of the thread count and of the parallel split")
    func threadInvariance() {
        func make(_ rows: Int, offset: Int = 0) -> Tensor {
            var r = RandomSource(seed: 31, rowOffset: offset)
            return Tensor.standardNormal(shape: [rows, 2], using: &r)
        }
        let parallel = make(20_000)
        let serial = Parallel.$threadLimit.withValue(1) { make(20_000) }
        #expect(parallel.storage.map(\.bitPattern) == serial.storage.map(\.bitPattern))
        // A shard boundary that is not a chunk boundary.
        let shards = try! Tensor.concatenating([make(7_777), make(20_000 - 7_777, offset: 7_777)])
        #expect(shards.storage.map(\.bitPattern) == parallel.storage.map(\.bitPattern))
    }
}

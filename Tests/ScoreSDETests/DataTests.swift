import Foundation
import Testing
@testable import ScoreSDE

// Data layer: 2-D toys, packaged digits and photo patches, scaling and dequantization, the loader.
// Every statistical bound is `zBound` (5) standard errors of a binomial or uniform mean.

/// `|count − n p| ≤ 5 √(n p (1 − p))`.
private func balanced(_ count: Int, _ n: Int, _ p: Double) -> Bool {
    abs(Double(count) - Double(n) * p) <= zBound * (Double(n) * p * (1 - p)).squareRoot()
}

/// Distance from `(x, y)` to the half circle of radius 1 about `(cx, cy)`: the upper half
/// (`y ≥ cy`) when `upper`, else the lower half.
private func halfCircleDistance(_ x: Double, _ y: Double, cx: Double, cy: Double, upper: Bool) -> Double {
    let dx = x - cx, dy = y - cy
    if (dy >= 0) == upper { return abs((dx * dx + dy * dy).squareRoot() - 1) }
    let e1 = hypot(dx - 1, dy), e2 = hypot(dx + 1, dy)   // the arc's end points
    return min(e1, e2)
}

/// Moons in scikit-learn's units: the inverse of the centring and 4/3 scaling.
private func unscaledMoons(_ x: Tensor) -> [(Double, Double)] {
    var out = [(Double, Double)]()
    for r in 0 ..< x.rows {
        let a: Double = x.storage[2 * r] * 0.75 + 0.5
        let b: Double = x.storage[2 * r + 1] * 0.75 + 0.25
        out.append((a, b))
    }
    return out
}

private func makeTempDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-data-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("Data sets")
struct DataTests {
    // MARK: - 2-D toys

    @Test("ring: 8 balanced modes on the radius-4 circle")
    func ring() throws {
        var rng = RandomSource(seed: 11)
        let n = 8000
        let x = try Toy2D.ring(count: n, using: &rng)
        #expect(x.shape == [n, 2])
        #expect(rng.draw == 1)
        var counts = [Int](repeating: 0, count: 8)
        for r in 0 ..< n {
            let (a, b) = (x.storage[2 * r], x.storage[2 * r + 1])
            let radius = hypot(a, b)
            #expect(abs(radius - 4) < 7 * 0.25, "row \(r) radius \(radius)")
            var k = Int((atan2(b, a) / (2 * Double.pi) * 8).rounded())
            k = (k % 8 + 8) % 8
            counts[k] += 1
        }
        for (k, c) in counts.enumerated() {
            #expect(balanced(c, n, 1.0 / 8), "mode \(k): \(c) of \(n)")
        }
    }

    @Test("moons: noise-free points lie on the two half circles, both moons equally likely")
    func moonsNoiseFree() throws {
        var rng = RandomSource(seed: 12)
        let n = 6000
        let x = try Toy2D.moons(count: n, noise: 0, using: &rng)
        #expect(x.shape == [n, 2])
        #expect(x.storage.allSatisfy { abs($0) <= 2 + 1e-12 })
        var upper = 0, lower = 0
        for (a, b) in unscaledMoons(x) {
            let du = halfCircleDistance(a, b, cx: 0, cy: 0, upper: true)
            let dl = halfCircleDistance(a, b, cx: 1, cy: 0.5, upper: false)
            #expect(min(du, dl) < 1e-9, "(\(a), \(b)) is on neither moon")
            if du < 1e-9 { upper += 1 } else if dl < 1e-9 { lower += 1 }
        }
        #expect(balanced(upper, n, 0.5) && balanced(lower, n, 0.5), "upper \(upper), lower \(lower)")
        // Angles uniform on [0, π]: the mean of cos t is 0 (var 1/2) on the upper moon.
        let cosines = unscaledMoons(x).filter { halfCircleDistance($0.0, $0.1, cx: 0, cy: 0, upper: true) < 1e-9 }.map(\.0)
        let mean = cosines.reduce(0, +) / Double(cosines.count)
        #expect(abs(mean) <= zBound * (0.5 / Double(cosines.count)).squareRoot(), "mean cos t \(mean)")
    }

    @Test("moons: default noise stays near the half circles and inside [-2.5, 2.5]²")
    func moonsNoisy() throws {
        var rng = RandomSource(seed: 13)
        let n = 4000
        let x = try Toy2D.moons(count: n, using: &rng)
        #expect(x.storage.allSatisfy { abs($0) < 2.5 })
        var nearUpper = 0, nearLower = 0
        for (a, b) in unscaledMoons(x) {
            let du = halfCircleDistance(a, b, cx: 0, cy: 0, upper: true)
            let dl = halfCircleDistance(a, b, cx: 1, cy: 0.5, upper: false)
            #expect(min(du, dl) < 7 * 0.05, "(\(a), \(b)) is far from both moons")
            if du < dl { nearUpper += 1 } else { nearLower += 1 }
        }
        // Each point is on the upper arc with probability ½ (one random bit), so nearUpper is
        // Binomial(n, ½): within 5 standard errors, 5 √n / 2 = 158. The arcs are nowhere closer than
        // 0.5 (an arc's end (1, 0) to the other circle), so a point is assigned to the wrong arc only
        // if its noise (std 0.05) moves it ≥ 0.25 towards the other, probability < Φ(−5) = 3e-7.
        #expect(nearUpper + nearLower == n)
        #expect(Double(abs(nearUpper - n / 2)) <= zBound * Double(n).squareRoot() / 2, "\(nearUpper) / \(nearLower)")
    }

    @Test("swiss roll: radius grows with the angle along one spiral arm")
    func swissRoll() throws {
        var rng = RandomSource(seed: 14)
        let n = 5000
        let x = try Toy2D.swissRoll(count: n, noise: 0, using: &rng)
        #expect(x.shape == [n, 2])
        let s = Toy2D.swissRollScale
        var ts = [Double]()
        for r in 0 ..< n {
            let (a, b) = (x.storage[2 * r], x.storage[2 * r + 1])
            let t = hypot(a, b) / s                        // the roll parameter is radius / scale ...
            #expect(t >= 1.5 * Double.pi - 1e-9 && t <= 4.5 * Double.pi + 1e-9, "t = \(t)")
            let wrap = remainder(t - atan2(b, a), 2 * Double.pi)   // ... and equals the angle mod 2π
            #expect(abs(wrap) < 1e-9, "row \(r): radius/scale \(t) vs angle \(atan2(b, a))")
            ts.append(t)
        }
        #expect(x.storage.allSatisfy { abs($0) <= 2 + 1e-12 })
        let mean = ts.reduce(0, +) / Double(n), sd = 3 * Double.pi / 12.0.squareRoot()
        #expect(abs(mean - 3 * Double.pi) <= zBound * sd / Double(n).squareRoot(), "mean t \(mean)")

        var rng2 = RandomSource(seed: 14)
        let noisy = try Toy2D.swissRoll(count: n, using: &rng2)
        #expect(noisy.rowNorms().allSatisfy { $0 < 2 + 8 * 0.5 * s })
    }

    @Test("checkerboard: uniform on the 8 squares with ⌊x⌋ + ⌊y⌋ even")
    func checkerboard() throws {
        var rng = RandomSource(seed: 15)
        let n = 8000
        let x = try Toy2D.checkerboard(count: n, using: &rng)
        #expect(x.shape == [n, 2])
        var counts = [Int: Int]()
        var fracSum = 0.0
        for r in 0 ..< n {
            let (a, b) = (x.storage[2 * r], x.storage[2 * r + 1])
            #expect(a >= -2 && a < 2 && b >= -2 && b < 2, "(\(a), \(b)) outside [-2, 2)²")
            let i = Int(floor(a)), j = Int(floor(b))
            #expect((i + j) & 1 == 0, "(\(a), \(b)) in an empty square")
            counts[(i + 2) * 4 + j + 2, default: 0] += 1
            fracSum += b - floor(b)
        }
        #expect(counts.count == 8)
        for (sq, c) in counts { #expect(balanced(c, n, 1.0 / 8), "square \(sq): \(c)") }
        let fracMean = fracSum / Double(n)
        #expect(abs(fracMean - 0.5) <= zBound * (1.0 / 12 / Double(n)).squareRoot(), "mean fractional y \(fracMean)")
    }

    @Test("toys: same seed same data, other seed other data, independent of the thread count",
          arguments: Toy2D.names)
    func toyDeterminism(_ name: String) throws {
        func make(_ seed: UInt64) throws -> Tensor {
            var rng = RandomSource(seed: seed)
            return try Toy2D.sample(name, count: 5000, using: &rng)
        }
        let a = try make(7), b = try make(7), c = try make(8)
        let single = try Parallel.$threadLimit.withValue(1) { try make(7) }
        #expect(a == b)
        #expect(a == single)
        #expect(a != c)
        #expect(a.isFinite)
        // Rows are prefixes: a smaller batch is the start of a larger one.
        var rng = RandomSource(seed: 7)
        #expect(try Toy2D.sample(name, count: 100, using: &rng) == a.rows(0 ..< 100))
    }

    @Test("toys reject bad arguments")
    func toyArguments() throws {
        var rng = RandomSource(seed: 1)
        #expect(invalidParameterText { _ = try Toy2D.moons(count: -1, using: &rng) } != nil)
        #expect(invalidParameterText { _ = try Toy2D.moons(count: 10, noise: .nan, using: &rng) } != nil)
        #expect(invalidParameterText { _ = try Toy2D.swissRoll(count: 10, noise: -1, using: &rng) } != nil)
        #expect(try Toy2D.checkerboard(count: 0, using: &rng).shape == [0, 2])
    }

    // MARK: - Digits

    @Test("digits: 1797 images of 0...16, balanced labels, known first image, contiguous split")
    func digits() throws {
        let all = try Digits.load()
        #expect(all.images.shape == [1797, 1, 8, 8])
        #expect(all.labels.count == 1797)
        #expect(all.images.storage.allSatisfy { $0 >= 0 && $0 <= 16 && $0.rounded() == $0 })
        #expect(all.images.storage.max() == 16)
        let first: [Double] = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0,
                               0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0,
                               0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
        #expect(all.images.row(0) == first)
        #expect(all.labels[0] == 0)
        #expect(Array(all.labels.prefix(10)) == Array(0 ..< 10))
        for k in 0 ... 9 {
            let c = all.labels.filter { $0 == k }.count
            #expect((170 ... 190).contains(c), "label \(k) appears \(c) times")
        }
        #expect(all.labels.allSatisfy { (0 ... 9).contains($0) })

        let train = try Digits.load(split: .train), held = try Digits.load(split: .heldOut)
        #expect(train.images.shape == [1500, 1, 8, 8] && held.images.shape == [297, 1, 8, 8])
        #expect(try Tensor.concatenating([train.images, held.images]) == all.images)
        #expect(train.labels + held.labels == all.labels)
        #expect(Set(held.labels) == Set(0 ... 9))
    }

    // MARK: - Patches

    @Test("patches: 8480 non-overlapping 8x8 RGB patches equal to the PNG pixels")
    func patchesGrid() throws {
        let all = try ImagePatches.all()
        #expect(all.shape == [8480, 3, 8, 8])
        #expect(try ImagePatches.allCount() == 8480)
        #expect(all.storage.allSatisfy { $0 >= 0 && $0 <= 255 && $0.rounded() == $0 })
        // Per image and channel, the patches hold exactly the PNG's pixels over the 640x424 region
        // the 80x53 grid covers: the sums and the extremes agree (integers, so exactly).
        for (k, image) in ["china.png", "flower.png"].enumerated() {
            let png = try PNG.read(PackagedData.url(image).path)
            let patches = all.rows(k * 4240 ..< (k + 1) * 4240)
            for c in 0 ..< 3 {
                var sum = 0, lo = 255, hi = 0
                for y in 0 ..< 424 {
                    for x in 0 ..< 640 { let v = Int(png[x, y, c]); sum += v; lo = min(lo, v); hi = max(hi, v) }
                }
                var pSum = 0.0, pLo = 255.0, pHi = 0.0
                for r in 0 ..< patches.rows {
                    for v in patches.row(r)[c * 64 ..< (c + 1) * 64] { pSum += v; pLo = min(pLo, v); pHi = max(pHi, v) }
                }
                #expect(pSum == Double(sum) && pLo == Double(lo) && pHi == Double(hi), "\(image) channel \(c)")
            }
        }

        // Patch (i, j) = (20, 10) of china.png and (33, 47) of flower.png, from the files directly.
        for (image, offset, i, j) in [("china.png", 0, 20, 10), ("flower.png", 4240, 33, 47)] {
            let png = try PNG.read(PackagedData.url(image).path)
            #expect(png.width == 640 && png.height == 427 && png.channels == 3)
            let row = all.row(offset + j * 80 + i)
            for c in 0 ..< 3 {
                for y in 0 ..< 8 {
                    for x in 0 ..< 8 {
                        #expect(row[c * 64 + y * 8 + x] == Double(png[i * 8 + x, j * 8 + y, c]),
                                "\(image) patch (\(i), \(j)) channel \(c) pixel (\(x), \(y))")
                    }
                }
            }
        }
        // The last patch of flower.png is its bottom-right complete 8x8 block.
        let flower = try PNG.read(PackagedData.url("flower.png").path)
        #expect(all.row(8479)[0] == Double(flower[79 * 8, 52 * 8, 0]))
    }

    @Test("random patches: shape, range, determinism, and each is a window of a source photo")
    func patchesRandom() throws {
        var r1 = RandomSource(seed: 5), r2 = RandomSource(seed: 5), r3 = RandomSource(seed: 6)
        let a = try ImagePatches.random(count: 600, using: &r1)
        let b = try Parallel.$threadLimit.withValue(1) { try ImagePatches.random(count: 600, using: &r2) }
        let c = try ImagePatches.random(count: 600, using: &r3)
        #expect(a.shape == [600, 3, 8, 8])
        #expect(a.storage.allSatisfy { $0 >= 0 && $0 <= 255 && $0.rounded() == $0 })
        #expect(a == b)
        #expect(a != c)
        #expect(r1.draw == 1)

        let images = try ImagePatches.sourceImages()
        for k in [0, 599] {
            let p = a.row(k)
            var found = false
            search: for img in images {
                for y0 in 0 ... img.height - 8 {
                    for x0 in 0 ... img.width - 8 where Double(img[x0, y0, 0]) == p[0] {
                        var same = true
                        check: for ch in 0 ..< 3 {
                            for y in 0 ..< 8 {
                                for x in 0 ..< 8 where Double(img[x0 + x, y0 + y, ch]) != p[ch * 64 + y * 8 + x] {
                                    same = false; break check
                                }
                            }
                        }
                        if same { found = true; break search }
                    }
                }
            }
            #expect(found, "random patch \(k) is not a window of china.png or flower.png")
        }
    }

    @Test("toGrey: channel mean, single or replicated")
    func grey() throws {
        let rgb = try Tensor(shape: [1, 3, 1, 2], storage: [30, 0, 60, 3, 90, 6])
        let g = try ImagePatches.toGrey(rgb)
        #expect(g.shape == [1, 1, 1, 2] && g.storage == [60, 3])
        let g3 = try ImagePatches.toGrey(rgb, replicate: true)
        #expect(g3.shape == [1, 3, 1, 2] && g3.storage == [60, 3, 60, 3, 60, 3])
        #expect(scoreSDEError { _ = try ImagePatches.toGrey(Tensor(zeros: [2, 1, 8, 8])) } != nil)
    }

    // MARK: - Scaling and dequantization

    @Test("scaling: ranges and exact round trips", arguments: DataNormalization.allCases)
    func normalizationRoundTrip(_ scaling: DataNormalization) throws {
        var source = RandomSource(seed: 2)
        let patches = try ImagePatches.random(count: 200, using: &source)
        let digits = try Digits.load(split: .heldOut).images
        for (raw, levels) in [(patches, 256), (digits, 17)] {
            let x = try scaling.scale(raw, levels: levels)
            let range = try scaling.valueRange(levels: levels)
            #expect(x.storage.allSatisfy { range.contains($0) })
            let back = try scaling.unscale(x, levels: levels)
            #expect(zip(back.storage, raw.storage).allSatisfy { abs($0 - $1) < 1e-12 })
        }
        #expect(try DataNormalization.unit.valueRange(levels: 256) == 0 ... 1)
        #expect(try DataNormalization.symmetric.valueRange(levels: 17) == -1 ... 1)
        #expect(try DataNormalization.none.valueRange(levels: 17) == 0 ... 16)
        let edge = try Tensor(shape: [1, 2], storage: [0, 16])
        #expect(try DataNormalization.symmetric.scale(edge, levels: 17).storage == [-1, 1])
        #expect(try DataNormalization.unit.scale(edge, levels: 17).storage == [0, 1])
        let affine = try scaling.dataScaling(levels: 17)
        #expect(affine.toModel(digits) == (try scaling.scale(digits, levels: 17)))
        if scaling != .none {
            #expect(invalidParameterText { _ = try scaling.scale(edge, levels: 1) } != nil)
        }
    }

    @Test("dequantization: x → [x/levels, (x+1)/levels) in unit scale, uniform, deterministic",
          arguments: DataNormalization.allCases)
    func dequantize(_ scaling: DataNormalization) throws {
        var source = RandomSource(seed: 9)
        let raw = try ImagePatches.random(count: 100, using: &source)
        var rng = RandomSource(seed: 4)
        let x = try scaling.dequantize(raw, levels: 256, using: &rng)
        #expect(rng.draw == 1)
        var rngAgain = RandomSource(seed: 4)
        #expect(try Parallel.$threadLimit.withValue(1) { try scaling.dequantize(raw, levels: 256, using: &rngAgain) } == x)
        var offsets = [Double]()
        for (v, q) in zip(x.storage, raw.storage) {
            let u: Double
            switch scaling {
            case .none: u = v / 256
            case .unit: u = v
            case .symmetric: u = (v + 1) / 2
            }
            #expect(u >= q / 256 - 1e-12 && u < (q + 1) / 256 + 1e-12, "value \(q) dequantized to \(u)")
            offsets.append(u * 256 - q)
        }
        let mean = offsets.reduce(0, +) / Double(offsets.count)
        #expect(abs(mean - 0.5) <= zBound * (1.0 / 12 / Double(offsets.count)).squareRoot(), "mean offset \(mean)")

        let bad = try Tensor(shape: [1, 2], storage: [3, 2.5])
        #expect(invalidArgumentText { _ = try scaling.dequantize(bad, levels: 256, using: &rng) } != nil)
        #expect(invalidArgumentText { _ = try scaling.dequantize(Tensor(repeating: 17, like: bad), levels: 17, using: &rng) } != nil)
    }

    // MARK: - Loader

    @Test("Dataset.named: every built-in name, shapes, levels and scalings")
    func namedDatasets() throws {
        for name in Toy2D.names {
            let d = try Dataset.named(name, count: 300, seed: 3)
            #expect(d.data.shape == [300, 2] && d.rowShape == [2] && d.levels == nil && d.normalization == .none)
            #expect(d.description.hasPrefix(name))
            #expect(try d.scaledData() == d.data)
            var rng = RandomSource(seed: 3)
            #expect(try Toy2D.sample(name, count: 300, using: &rng) == d.data)
        }
        #expect(try Dataset.named("moons").count == Dataset.defaultToyCount)

        let digits = try Dataset.named("digits")
        #expect(digits.data.shape == [1500, 1, 8, 8] && digits.levels == 17 && digits.normalization == .unit)
        #expect(try digits.scaledData().storage.allSatisfy { (0 ... 1).contains($0) })
        #expect(digits.dataScaling.toModel(digits.data) == (try digits.scaledData()))
        #expect(try Dataset.named("ring", count: 5).dataScaling == .identity)
        let some = try Dataset.named("digits", count: 50, seed: 1)
        #expect(some.data.shape == [50, 1, 8, 8])
        #expect(try Dataset.named("digits", count: 50, seed: 1) == some)
        #expect(try Dataset.named("digits", count: 50, seed: 2) != some)
        #expect(invalidParameterText { _ = try Dataset.named("digits", count: 1501) } != nil)
        #expect(invalidParameterText { _ = try Dataset.named("moons", count: 0) } != nil)

        let patches = try Dataset.named("patches")
        #expect(patches.data.shape == [6360, 3, 8, 8] && patches.rowShape == [3, 8, 8] && patches.levels == 256)   // the training split
        let randomPatches = try Dataset.named("patches", count: 40, seed: 1)
        var rng = RandomSource(seed: 1)
        #expect(randomPatches.data == (try ImagePatches.random(count: 40, split: .train, using: &rng)))

        guard case .unknownName(let m)? = scoreSDEError({ _ = try Dataset.named("mnist") }) else {
            Issue.record("an unknown name must throw unknownName"); return
        }
        for valid in Dataset.builtInNames { #expect(m.contains(valid), "message lists \(valid): \(m)") }
        #expect(m.contains("mnist"))
    }

    @Test("Dataset.npy: user data, 1-D rows, and clear errors for missing, empty and NaN files")
    func npyDatasets() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = dir + "/good.npy"
        let t = try Tensor(shape: [3, 2, 2], storage: (0 ..< 12).map(Double.init))
        try Npy.write(t, to: good)
        let d = try Dataset.npy(good)
        #expect(d.data == t && d.rowShape == [2, 2] && d.normalization == .none && d.levels == nil)
        #expect(d.description.contains("3 rows"))
        #expect(try Dataset.load("npy:" + good) == d)
        #expect(try Dataset.load(good) == d)

        let line = dir + "/line.npy"
        try Npy.write(try Tensor(shape: [4], storage: [1, 2, 3, 4]), to: line)
        #expect(try Dataset.npy(line).data.shape == [4, 1])

        guard case .io(let path, _)? = scoreSDEError({ _ = try Dataset.npy(dir + "/missing.npy") }) else {
            Issue.record("a missing file must throw io"); return
        }
        #expect(path.hasSuffix("missing.npy"))

        let nan = dir + "/nan.npy"
        try Npy.write(try Tensor(shape: [2, 2], storage: [0, 1, .nan, 3]), to: nan)
        guard case .nonFinite(let m)? = scoreSDEError({ _ = try Dataset.npy(nan) }) else {
            Issue.record("NaN data must throw nonFinite"); return
        }
        #expect(m.contains("nan.npy") && m.contains("row 1"), "\(m)")

        let inf = dir + "/inf.npy"
        try Npy.write(try Tensor(shape: [1, 2], storage: [0, -.infinity]), to: inf)
        #expect(scoreSDEError { _ = try Dataset.npy(inf) } != nil)

        let empty = dir + "/empty.npy"
        try Npy.write(Tensor(zeros: [0, 2]), to: empty)
        #expect(invalidArgumentText { _ = try Dataset.npy(empty) } != nil)
    }
}

import Foundation

// Class labels of the built-in data sets, for class-conditional training: the digits' own
// labels, the component of a mixture sample, the arm / half / square of a 2-D toy.

extension GaussianMixture {
    /// The component each row of ``sample(count:using:)`` was drawn from, when `rng` is the state
    /// that call starts from (it replays the call's draw without advancing anything).
    public func sampledComponents(count: Int, startingFrom rng: RandomSource) -> [Int] {
        var copy = rng
        let draw = copy.nextDraw()
        var cumulative = [Double](); var acc = 0.0
        for w in weights { acc += w; cumulative.append(acc) }
        return (0 ..< count).map { r in
            var s = rng.stream(draw: draw, row: r)
            let u = Double(s.next() >> 11) * 0x1p-53
            return cumulative.firstIndex(where: { u < $0 }) ?? (weights.count - 1)
        }
    }
}

extension Toy2D {
    /// The number of classes of ``labels(_:points:startingFrom:)`` for a toy: ring 8 (its
    /// components), moons 2 (upper 0, lower 1), swissroll 2 (inner half of the roll 0, outer 1),
    /// checkerboard 8 (its squares).
    public static func classCount(_ name: String) throws -> Int {
        switch name {
        case "ring": return 8
        case "moons", "swissroll": return 2
        case "checkerboard": return 8
        default: throw ScoreSDEError.unknownName("'\(name)' is not a 2-D toy data set; choose one of \(names.joined(separator: ", "))")
        }
    }

    /// The class of each row of ``sample(_:count:using:)`` when `rng` is the state that call starts
    /// from: the generating component or arm, replayed from the same random streams (exact, not
    /// a nearest-mode guess). Checkerboard classes are read from the points themselves: square
    /// `(i, j)` = `(⌊x⌋, ⌊y⌋)` has class `2 (i + 2) + (j + 2) / 2`.
    public static func labels(_ name: String, points x: Tensor, startingFrom rng: RandomSource) throws -> [Int] {
        var copy = rng
        let draw = copy.nextDraw()
        let n = x.rows
        switch name {
        case "ring":
            return GaussianMixture.ring().sampledComponents(count: n, startingFrom: rng)
        case "moons":
            return (0 ..< n).map { r in
                var s = rng.stream(draw: draw, row: r)
                _ = uniform(&s)
                return s.next() & 1 == 1 ? 1 : 0
            }
        case "swissroll":
            return (0 ..< n).map { r in
                var s = rng.stream(draw: draw, row: r)
                return uniform(&s) < 0.5 ? 0 : 1
            }
        case "checkerboard":
            return (0 ..< n).map { r in
                let i = Int(Foundation.floor(x.storage[2 * r])), j = Int(Foundation.floor(x.storage[2 * r + 1]))
                return 2 * (min(max(i, -2), 1) + 2) + (min(max(j, -2), 1) + 2) / 2
            }
        default:
            throw ScoreSDEError.unknownName("'\(name)' is not a 2-D toy data set; choose one of \(names.joined(separator: ", "))")
        }
    }
}

extension Dataset {
    /// This data set with class labels from a `.npy` file of `rows` integers in `0 ..< K`
    /// (shape `[n]` or `[n, 1]`); `K` is one more than the largest label.
    ///
    /// - Throws: `io` for an unreadable file; `shapeMismatch` when the count differs from the data
    ///   rows; `invalidArgument` for a value that is not a non-negative integer.
    public func withLabels(fromNpy path: String) throws -> Dataset {
        let t = try Npy.read(path)
        guard t.count == count, t.shape.count == 1 || (t.shape.count == 2 && t.shape[1] == 1) else {
            throw ScoreSDEError.shapeMismatch("\(path) holds \(t.shape) labels but \(name) has \(count) rows; give one integer label per data row (shape [\(count)])")
        }
        if let bad = t.storage.firstIndex(where: { !($0 >= 0 && $0.rounded() == $0 && $0 < 1_000_000) }) {
            throw ScoreSDEError.invalidArgument("\(path): label \(bad) is \(t.storage[bad]); labels must be integers 0, 1, 2, ...")
        }
        let labels = t.storage.map { Int($0) }
        return Dataset(name: name, data: data, normalization: normalization, levels: levels, description: description,
                       labels: labels, classCount: (labels.max() ?? 0) + 1)
    }
}

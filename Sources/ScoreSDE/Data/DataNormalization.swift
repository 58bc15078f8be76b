import Foundation

/// How raw discrete data values map to the space the SDE works in, as the reference's
/// `config.data.centered`. (``DataScaling`` is the general affine map a trained model stores;
/// ``dataScaling(levels:)`` converts.)
///
/// Raw discrete data take the integer values `0 ... levels − 1` (digits: 17 levels, 8-bit images: 256).
///
/// - ``unit``: `x / (levels − 1)`, in `[0, 1]` (reference: `centered = False`).
/// - ``symmetric``: `2 x / (levels − 1) − 1`, in `[-1, 1]` (reference: `centered = True`).
/// - ``none``: the values as they are (continuous data such as the 2-D toys).
///
///     let x = try DataNormalization.symmetric.scale(digits.images, levels: Digits.levels)
///     let back = try DataNormalization.symmetric.unscale(x, levels: Digits.levels)   // == digits.images
public enum DataNormalization: String, Sendable, CaseIterable, CustomStringConvertible {
    case none, unit, symmetric

    public var description: String { rawValue }

    /// Raw values → model space.
    public func scale(_ raw: Tensor, levels: Int) throws -> Tensor {
        let (a, b) = try affine(levels)
        return Self.map(raw) { a * $0 + b }
    }

    /// Model space → raw values (the inverse of ``scale(_:levels:)``; not rounded or clamped).
    public func unscale(_ x: Tensor, levels: Int) throws -> Tensor {
        let (a, b) = try affine(levels)
        return Self.map(x) { ($0 - b) / a }
    }

    /// The model-space interval that raw values `0 ... levels − 1` occupy, e.g. to write images.
    public func valueRange(levels: Int) throws -> ClosedRange<Double> {
        guard levels >= 2 else { throw ScoreSDEError.invalid("levels", levels, must: ">= 2 (a value range)") }
        let (a, b) = try affine(levels)
        return b ... a * Double(levels - 1) + b
    }

    /// Uniformly dequantized data in model space, as the reference's `uniform_dequantization`,
    /// `(U[0, 1) + x · 255) / 256` for 8-bit images: with raw integer values `x` and `u = (x + U) / levels`
    /// (so `u ∈ [x / levels, (x + 1) / levels)`), returns `u` (``unit``), `2u − 1` (``symmetric``)
    /// or `x + U` (``none``). One draw of `rng`; row `r` uses stream `(draw, r)`.
    ///
    /// - Throws: ``ScoreSDEError/invalidParameter(_:)`` when `levels < 2`; ``ScoreSDEError/invalidArgument(_:)`` when a value is not an integer in `0 ... levels − 1`.
    public func dequantize(_ raw: Tensor, levels: Int, using rng: inout RandomSource) throws -> Tensor {
        guard levels >= 2 else { throw ScoreSDEError.invalid("levels", levels, must: ">= 2 (dequantization)") }
        let top = Double(levels - 1)
        if let i = raw.storage.firstIndex(where: { !($0 >= 0 && $0 <= top && $0.rounded() == $0) }) {
            let d = max(raw.rowSize, 1)
            throw ScoreSDEError.invalidArgument("dequantization needs integer values in 0...\(levels - 1), got \(raw.storage[i]) at row \(i / d), column \(i % d)")
        }
        let (a, b): (Double, Double)
        switch self {
        case .none: (a, b) = (1, 0)
        case .unit: (a, b) = (1 / Double(levels), 0)
        case .symmetric: (a, b) = (2 / Double(levels), -1)
        }
        let draw = rng.nextDraw(), source = rng
        let d = raw.rowSize, n = raw.rows
        var out = raw
        out.storage.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else { return }
            Parallel.forEachChunk(n, grain: max(1, 4096 / max(d, 1))) { range in
                for r in range {
                    var s = source.stream(draw: draw, row: r)
                    let row = base + r * d
                    for j in 0 ..< d { row[j] = a * (row[j] + Toy2D.uniform(&s)) + b }
                }
            }
        }
        return out
    }

    /// This normalization as the affine map `model = scale · raw + shift` stored with trained models.
    public func dataScaling(levels: Int) throws -> DataScaling {
        let (a, b) = try affine(levels)
        return DataScaling(uncheckedScale: a, shift: b)
    }

    /// The affine map of uniformly dequantized levels: `k + u ∈ [0, levels)` onto `[0, 1)` (``unit``,
    /// `(k + u) / levels`, the reference's `(k + u) / 256`) or `[−1, 1)` (``symmetric``), the identity
    /// for ``none`` — the scaling a model trained on dequantized data records (``dequantize(_:levels:using:)``
    /// produces exactly these values).
    public func dequantizedScaling(levels: Int) throws -> DataScaling {
        if self == .none { return .identity }
        guard levels >= 2 else { throw ScoreSDEError.invalid("levels", levels, must: ">= 2 (dequantization)") }
        return self == .unit ? DataScaling(uncheckedScale: 1 / Double(levels), shift: 0)
                             : DataScaling(uncheckedScale: 2 / Double(levels), shift: -1)
    }

    /// `scale(x) = a x + b`.
    func affine(_ levels: Int) throws -> (Double, Double) {
        if self == .none { return (1, 0) }
        guard levels >= 2 else {
            throw ScoreSDEError.invalid("levels", levels, must: ">= 2 (\(rawValue) scaling needs the number of levels of the data)", advice: "use scaling none for continuous data")
        }
        let top = Double(levels - 1)
        return self == .unit ? (1 / top, 0) : (2 / top, -1)
    }

    static func map(_ t: Tensor, _ f: (Double) -> Double) -> Tensor {
        var out = t
        out.storage.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = f(p[i]) }
        }
        return out
    }
}

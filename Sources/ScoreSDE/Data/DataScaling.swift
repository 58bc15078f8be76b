import Foundation

/// The map between data space and the space a model is trained in, stored with every learned model:
/// affine, `model = scale · data + shift` (e.g. images in [0, 1] centred to [−1, 1]: scale 2, shift −1,
/// the reference's `centered` option), or — for uniformly dequantized pixels — the logit transform of
/// RealNVP (Dinh et al. 2017, §4.1) followed by the affine map:
///
///     model = scale · logit(λ + (1 − 2λ) v / L) + shift,     v = k + u ∈ [0, L)
///
/// (``LogitPixelTransform``). The logit stage gives the data's bounded range `[0, L)` the whole real
/// line, so a model's samples map back inside `(−λL/(1−2λ), L(1−λ)/(1−2λ))` and its density can have
/// the steep edges of pixel data at levels 0 and L−1 without leaving the range: on the 8×8 digits
/// it halves what falls outside `[0, 17)` and more (see the README's digits section).
///
/// Densities change by the log-Jacobian ``logJacobian(atModel:)``: `log p(v) = log p_model(m) +
/// Σⱼ log |∂mⱼ/∂vⱼ|` — constant (`D log|scale|`) for an affine map, per row for the logit.
///
///     let s = try DataScaling.logit(lambda: 1e-3, levels: 17)     // [0, 17] onto [−1, 1]
///     let m = s.toModel(v), back = s.toData(m)                     // back ≈ v
///     let jacobian = s.logJacobian(atModel: m)                     // one value per row
public struct DataScaling: Sendable, Equatable, CustomStringConvertible {
    public var scale: Double
    public var shift: Double
    /// The logit stage applied to the data before the affine map; nil: affine only.
    public var logit: LogitPixelTransform?

    /// - Throws: `invalidParameter` unless the scale is finite and non-zero and the shift finite.
    public init(scale: Double = 1, shift: Double = 0, logit: LogitPixelTransform? = nil) throws {
        try requireParameter(scale.isFinite && scale != 0, name: "scale", value: scale, requirement: "finite and non-zero (the data scale)")
        try requireParameter(shift.isFinite, name: "shift", value: shift, requirement: "finite (the data shift)")
        self.scale = scale; self.shift = shift; self.logit = logit
    }

    /// The logit transform of dequantized levels `[0, L]` scaled onto `[−1, 1]`:
    /// `model = logit(λ + (1 − 2λ) v / L) / logit(1 − λ)`.
    ///
    /// - Throws: as ``LogitPixelTransform/init(lambda:levels:)``.
    public static func logit(lambda: Double, levels: Int) throws -> DataScaling {
        let t = try LogitPixelTransform(lambda: lambda, levels: levels)
        return DataScaling(uncheckedScale: 1 / (Foundation.log1p(-lambda) - Foundation.log(lambda)), shift: 0, logit: t)
    }

    /// No change.
    public static let identity = DataScaling(uncheckedScale: 1, shift: 0)

    init(uncheckedScale scale: Double, shift: Double, logit: LogitPixelTransform? = nil) {
        self.scale = scale; self.shift = shift; self.logit = logit
    }

    /// Whether the map is affine (no logit stage): what linear measurements and noise levels given
    /// in data units need to carry over to model space.
    public var isAffine: Bool { logit == nil }

    /// Data → model space. With a logit stage, values at or beyond `−λL/(1−2λ)` and
    /// `L(1−λ)/(1−2λ)` have no image and come out non-finite (callers check their inputs).
    public func toModel(_ x: Tensor) -> Tensor {
        if self == .identity { return x }
        var y = x
        let a = scale, b = shift
        if logit != nil {
            y.storage.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = modelValue(p[i]) } }
            return y
        }
        y.storage.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = a * p[i] + b } }
        return y
    }

    /// One data value → model space (``toModel(_:)`` for a scalar).
    @inline(__always)
    func modelValue(_ v: Double) -> Double {
        guard let t = logit else { return scale * v + shift }
        let q = t.lambda + (1 - 2 * t.lambda) / Double(t.levels) * v
        return scale * (Foundation.log(q) - Foundation.log1p(-q)) + shift
    }

    /// Model → data space (e.g. for samples); not rounded or clamped.
    public func toData(_ x: Tensor) -> Tensor {
        if self == .identity { return x }
        var y = x
        let a = 1 / scale, b = shift
        if let t = logit {
            let c = Double(t.levels) / (1 - 2 * t.lambda), lambda = t.lambda
            y.storage.withUnsafeMutableBufferPointer { p in
                for i in p.indices { p[i] = (1 / (1 + Foundation.exp(-(p[i] - b) * a)) - lambda) * c }
            }
            return y
        }
        y.storage.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = (p[i] - b) * a } }
        return y
    }

    /// `Σⱼ log |∂mⱼ/∂vⱼ|` per row of model-space points `m` (the change of variables from a model-space
    /// density to the data's): `D log|scale|` for an affine map; with the logit stage, per value
    /// `log|scale| + log(1 − 2λ) − log L − log y − log(1 − y)` at `y = σ((m − shift) / scale)`.
    public func logJacobian(atModel m: Tensor) -> [Double] {
        let d = m.rowSize, logScale = Foundation.log(abs(scale))
        guard let t = logit else { return [Double](repeating: Double(d) * logScale, count: m.rows) }
        let constant = logScale + Foundation.log1p(-2 * t.lambda) - Foundation.log(Double(t.levels))
        let a = 1 / scale, b = shift
        return (0 ..< m.rows).map { r in
            var sum = 0.0
            for j in r * d ..< (r + 1) * d {
                let z = (m.storage[j] - b) * a
                // −log σ(z) − log(1 − σ(z)) = softplus(−z) + softplus(z) = |z| + 2 log(1 + e^{−|z|}).
                sum += constant + abs(z) + 2 * Foundation.log1p(Foundation.exp(-abs(z)))
            }
            return sum
        }
    }

    /// `model = 0.1176 * x - 1`, `model = 0.1448 * logit(0.001 + 0.998 x / 17) + 0`.
    public var description: String {
        let inner = logit.map { "logit(\($0.lambda) + \(1 - 2 * $0.lambda) x / \($0.levels))" } ?? "x"
        return "model = \(scale) * \(inner) + \(shift)"
    }

    var metadata: [String: String] {
        var m = ["data.scale": "\(scale)", "data.shift": "\(shift)"]
        if let t = logit { m["data.logit.lambda"] = "\(t.lambda)"; m["data.logit.levels"] = "\(t.levels)" }
        return m
    }

    init(metadata m: MetadataReader) throws {
        let s = try m.double("data.scale"), b = try m.double("data.shift")
        guard s != 0 else { throw m.fail("metadata 'data.scale' is 0; expected a non-zero number") }
        var logit: LogitPixelTransform?
        if m.map["data.logit.lambda"] != nil || m.map["data.logit.levels"] != nil {
            do { logit = try LogitPixelTransform(lambda: try m.double("data.logit.lambda"), levels: try m.int("data.logit.levels")) }
            catch let e as ScoreSDEError { throw m.fail("the logit data transform is invalid: \(e)") }
        }
        self.init(uncheckedScale: s, shift: b, logit: logit)
    }
}

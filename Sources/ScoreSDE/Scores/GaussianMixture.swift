import Foundation

/// A Gaussian mixture `Σ_k π_k N(μ_k, diag(s_k²))` over `R^D`: the data distribution whose every
/// perturbed marginal, score, log-density and linear-inverse-problem posterior is known in closed
/// form. It is the oracle of the tests and the built-in demo data.
///
///     let ring = try GaussianMixture.ring(modes: 8)
///     let p = ring.diffused(meanScale: 0.5, std: 0.3)     // law of m·x₀ + s·z
public struct GaussianMixture: Sendable, Equatable {
    /// Mixture weights, summing to 1.
    public let weights: [Double]
    /// Component means, `K × D`.
    public let means: [[Double]]
    /// Per-component, per-dimension standard deviations, `K × D`.
    public let stds: [[Double]]

    public var componentCount: Int { weights.count }
    public var dimension: Int { means.first?.count ?? 0 }

    /// Validates and normalises: weights > 0 (default equal; rescaled to sum 1), stds > 0, all finite,
    /// all means of one dimension `D ≥ 1`.
    public init(weights: [Double]? = nil, means: [[Double]], stds: [[Double]]) throws {
        let k = means.count
        guard k >= 1 else { throw ScoreSDEError.invalid("means", means, must: "non-empty: a Gaussian mixture needs at least one component") }
        let d = means[0].count
        guard d >= 1 else { throw ScoreSDEError.invalid("means", means, must: "of at least one dimension") }
        for (i, m) in means.enumerated() {
            guard m.count == d else { throw ScoreSDEError.shapeMismatch("mean \(i) has \(m.count) dimensions, mean 0 has \(d)") }
            guard m.allSatisfy(\.isFinite) else { throw ScoreSDEError.nonFinite("mean \(i) contains NaN or Inf") }
        }
        guard stds.count == k else { throw ScoreSDEError.shapeMismatch("\(k) means but \(stds.count) stds") }
        for (i, s) in stds.enumerated() {
            guard s.count == d else { throw ScoreSDEError.shapeMismatch("std \(i) has \(s.count) dimensions, the means have \(d)") }
            guard s.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw ScoreSDEError.invalid("stds", "stds[\(i)] = \(s)", must: "finite and > 0 in every dimension")
            }
        }
        let w = weights ?? Array(repeating: 1, count: k)
        guard w.count == k else { throw ScoreSDEError.shapeMismatch("\(k) means but \(w.count) weights") }
        guard w.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw ScoreSDEError.invalid("weights", w, must: "finite and > 0", advice: "drop a component instead of giving it weight 0")
        }
        let total = w.reduce(0, +)
        self.weights = w.map { $0 / total }
        self.means = means
        self.stds = stds
    }

    /// Isotropic components: one std per component.
    public init(weights: [Double]? = nil, means: [[Double]], isotropicStds: [Double]) throws {
        let d = means.first?.count ?? 0
        try self.init(weights: weights, means: means, stds: isotropicStds.map { Array(repeating: $0, count: d) })
    }

    /// The law of `m · x₀ + s · z` for `x₀` from this mixture and `z ~ N(0, I)`: again a mixture,
    /// with means `m μ_k` and stds `√(m² s_k² + s²)`. This is `p_t` under any `ForwardSDE`.
    public func diffused(meanScale m: Double, std s: Double) -> GaussianMixture {
        GaussianMixture(unchecked: weights,
                        means: means.map { $0.map { m * $0 } },
                        stds: stds.map { $0.map { (m * m * $0 * $0 + s * s).squareRoot() } })
    }

    init(unchecked weights: [Double], means: [[Double]], stds: [[Double]]) {
        self.weights = weights; self.means = means; self.stds = stds
    }

    /// Exact samples. Row `r` uses stream `(draw, r)` of `rng`: one draw.
    public func sample(count: Int, using rng: inout RandomSource) -> Tensor {
        let d = dimension, draw = rng.nextDraw(), source = rng
        var cumulative = [Double](); var acc = 0.0
        for w in weights { acc += w; cumulative.append(acc) }
        var x = Tensor(zeros: [count, d])
        x.storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.forEachChunk(count, grain: 256) { range in
                for r in range {
                    var s = source.stream(draw: draw, row: r)
                    let u = Double(s.next() >> 11) * 0x1p-53
                    let k = cumulative.firstIndex(where: { u < $0 }) ?? (weights.count - 1)
                    for j in 0 ..< d { base[r * d + j] = means[k][j] + stds[k][j] * s.normal() }
                }
            }
        }
        return x
    }

    /// Index of the most probable component for each row (the "mode" a sample belongs to).
    public func assignments(_ x: Tensor) -> [Int] {
        let q = GaussianMixtureKernel(self)
        return (0 ..< x.rows).map { r in q.responsibilities(x.row(r)).enumerated().max(by: { $0.1 < $1.1 })!.0 }
    }
}

// MARK: - Built-in mixtures

extension GaussianMixture {
    /// The default ring: 8 equal-weight isotropic Gaussians (std 0.25) on a circle of radius 4 (2-D).
    public static func ring() -> GaussianMixture {
        let (means, stds) = ringComponents(modes: 8, radius: 4, std: 0.25)
        return GaussianMixture(unchecked: Array(repeating: 1.0 / 8, count: 8), means: means, stds: stds)
    }

    /// `modes` equal-weight isotropic Gaussians on a circle (2-D). Defaults: 8 modes, radius 4, std 0.25.
    /// - Throws: ``ScoreSDEError/invalidParameter(_:)`` for `modes < 1`, a non-finite radius, or a std that
    ///   is not finite and > 0.
    public static func ring(modes: Int = 8, radius: Double = 4, std: Double = 0.25) throws -> GaussianMixture {
        try requireParameter(modes >= 1, name: "modes", value: modes, requirement: ">= 1 (a ring's modes)")
        try requireParameter(radius.isFinite, name: "radius", value: radius, requirement: "finite")
        try requireParameter(std.isFinite && std > 0, name: "std", value: std, requirement: "finite and > 0 (the modes' std)")
        let (means, stds) = ringComponents(modes: modes, radius: radius, std: std)
        return try GaussianMixture(means: means, stds: stds)
    }

    private static func ringComponents(modes: Int, radius: Double, std: Double) -> ([[Double]], [[Double]]) {
        let means = (0 ..< modes).map { k -> [Double] in
            let a = 2 * Double.pi * Double(k) / Double(modes)
            return [radius * Foundation.cos(a), radius * Foundation.sin(a)]
        }
        return (means, Array(repeating: [std, std], count: modes))
    }

    /// The default grid: 5 × 5 equal-weight isotropic Gaussians (std 0.25), spacing 2, centred (2-D).
    public static func grid() -> GaussianMixture {
        let (means, stds) = gridComponents(side: 5, spacing: 2, std: 0.25)
        return GaussianMixture(unchecked: Array(repeating: 1.0 / 25, count: 25), means: means, stds: stds)
    }

    /// A `side × side` grid of equal-weight isotropic Gaussians (2-D), centred. Defaults: 5 × 5, spacing 2, std 0.25.
    /// - Throws: ``ScoreSDEError/invalidParameter(_:)`` for `side < 1`, a non-finite spacing, or a std
    ///   that is not finite and > 0.
    public static func grid(side: Int = 5, spacing: Double = 2, std: Double = 0.25) throws -> GaussianMixture {
        try requireParameter(side >= 1, name: "side", value: side, requirement: ">= 1 (modes per side of the grid)")
        try requireParameter(spacing.isFinite, name: "spacing", value: spacing, requirement: "finite")
        try requireParameter(std.isFinite && std > 0, name: "std", value: std, requirement: "finite and > 0 (the modes' std)")
        let (means, stds) = gridComponents(side: side, spacing: spacing, std: std)
        return try GaussianMixture(means: means, stds: stds)
    }

    private static func gridComponents(side: Int, spacing: Double, std: Double) -> ([[Double]], [[Double]]) {
        let c = Double(side - 1) / 2
        var means = [[Double]]()
        for i in 0 ..< side { for j in 0 ..< side { means.append([(Double(i) - c) * spacing, (Double(j) - c) * spacing]) } }
        return (means, Array(repeating: [std, std], count: side * side))
    }

    /// A fixed 64-dimensional mixture of 10 unequal components with diagonal covariances
    /// (means ~ N(0, 1.5² I), stds in [0.3, 1], weights in [0.5, 1.5] normalised), drawn from seed 64.
    public static func gaussian64() -> GaussianMixture {
        let d = 64, k = 10
        var rng = RandomSource(seed: 64)
        var s = rng.stream(draw: rng.nextDraw(), row: 0)
        let u: (inout PhiloxStream) -> Double = { Double($0.next() >> 11) * 0x1p-53 }
        let means = (0 ..< k).map { _ in (0 ..< d).map { _ in 1.5 * s.normal() } }
        let stds = (0 ..< k).map { _ in (0 ..< d).map { _ in 0.3 + 0.7 * u(&s) } }
        let weights = (0 ..< k).map { _ in 0.5 + u(&s) }
        let total = weights.reduce(0, +)
        return GaussianMixture(unchecked: weights.map { $0 / total }, means: means, stds: stds)
    }

    /// The names of the built-in mixtures, for the CLI.
    public static let builtInNames = ["ring", "grid", "gmm64"]

    /// A built-in mixture by name: `ring`, `grid`, `gmm64`.
    public static func builtIn(_ name: String) throws -> GaussianMixture {
        switch name {
        case "ring": return ring()
        case "grid": return grid()
        case "gmm64": return gaussian64()
        default: throw ScoreSDEError.unknownName("'\(name)' is not a built-in mixture; choose one of \(builtInNames.joined(separator: ", ")) or gmm:PATH.json")
        }
    }
}

// MARK: - JSON

/// The mixture file's numbers, decoded exactly.
private struct ExactMixtureJSON: Decodable {
    enum Std: Decodable {
        case scalar(Double), vector([Double])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Double.self) { self = .scalar(v) } else { self = .vector(try c.decode([Double].self)) }
        }
    }
    let weights: [Double]?
    let means: [[Double]]
    let stds: [Std]
}

extension GaussianMixture {
    /// Parses `{"weights": [...], "means": [[...], ...], "stds": [...]}` where each std is a number
    /// (isotropic) or a vector (diagonal) and `weights` is optional (equal).
    public init(json data: Data, path: String = "<json>") throws {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) }
        catch { throw ScoreSDEError.io(path: path, message: "not valid JSON (\(error.localizedDescription)); expected {\"weights\": [...], \"means\": [[...]], \"stds\": [...]}") }
        guard let dict = object as? [String: Any] else {
            throw ScoreSDEError.io(path: path, message: "expected a JSON object with keys \"means\", \"stds\" and optional \"weights\"")
        }
        // On Linux `x is Bool` is true for the JSON numbers 0 and 1, so booleans are told apart by class.
        let booleanType = type(of: NSNumber(value: true))
        func isNumber(_ e: Any) -> NSNumber? {
            guard let n = e as? NSNumber, type(of: n) != booleanType else { return nil }
            return n
        }
        func numbers(_ v: Any, _ what: String) throws -> [Double] {
            guard let a = v as? [Any] else { throw ScoreSDEError.io(path: path, message: "\(what) must be an array of numbers") }
            return try a.map { e in
                guard let n = isNumber(e) else { throw ScoreSDEError.io(path: path, message: "\(what) contains \(e), not a number") }
                return n.doubleValue
            }
        }
        guard let meansAny = dict["means"] as? [Any] else { throw ScoreSDEError.io(path: path, message: "missing \"means\": an array of K mean vectors") }
        let means = try meansAny.enumerated().map { try numbers($0.1, "means[\($0.0)]") }
        guard let stdsAny = dict["stds"] as? [Any] else { throw ScoreSDEError.io(path: path, message: "missing \"stds\": an array of K numbers or vectors") }
        let d = means.first?.count ?? 0
        let stds: [[Double]] = try stdsAny.enumerated().map { i, s in
            if let n = isNumber(s) { return Array(repeating: n.doubleValue, count: d) }
            return try numbers(s, "stds[\(i)]")
        }
        let weights = try dict["weights"].map { try numbers($0, "weights") }
        let unknown = Set(dict.keys).subtracting(["weights", "means", "stds"])
        if !unknown.isEmpty { throw ScoreSDEError.io(path: path, message: "unknown keys \(unknown.sorted()); allowed: weights, means, stds") }
        // The values once more through JSONDecoder, whose number parsing is exact (NSNumber's
        // doubleValue can be off in the last digit for large exponents); the structure is checked above.
        var (exactMeans, exactStds, exactWeights) = (means, stds, weights)
        if let exact = try? JSONDecoder().decode(ExactMixtureJSON.self, from: data), exact.means.map(\.count) == means.map(\.count),
           exact.stds.count == stds.count, exact.weights?.count == weights?.count {
            exactMeans = exact.means
            exactStds = exact.stds.map { s in
                switch s {
                case .scalar(let v): return Array(repeating: v, count: d)
                case .vector(let v): return v
                }
            }
            exactWeights = exact.weights
        }
        do { try self.init(weights: exactWeights, means: exactMeans, stds: exactStds) }
        catch let e as ScoreSDEError { throw ScoreSDEError.io(path: path, message: e.description) }
    }

    /// Loads a mixture from a JSON file (see `init(json:path:)`).
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ScoreSDEError.io(path: path, message: "cannot read the file (does it exist?)")
        }
        try self.init(json: data, path: path)
    }

    /// JSON text of this mixture (stds as vectors). Numbers are written as Swift's shortest text
    /// that reads back as the same Double, so ``init(json:path:)`` returns this mixture exactly
    /// (JSONSerialization keeps 15 significant digits: 1.5555555555555555e47 came back changed).
    public func jsonData() -> Data {
        func list(_ v: [Double]) -> String { "[" + v.map { "\($0)" }.joined(separator: ", ") + "]" }
        func rows(_ m: [[Double]]) -> String { "[" + m.map(list).joined(separator: ", ") + "]" }
        return Data("{\"means\": \(rows(means)), \"stds\": \(rows(stds)), \"weights\": \(list(weights))}".utf8)
    }
}

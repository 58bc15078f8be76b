/// How a parameter is initialised (PyTorch's defaults for the layer that owns it).
public enum ParameterInit: String, Sendable {
    /// `U(−1/√fanIn, 1/√fanIn)`: `nn.Linear` / `nn.Conv2d` weights (Kaiming-uniform with `a = √5`) and biases.
    case uniformFanIn
    /// 1: GroupNorm scale.
    case ones
    /// 0: GroupNorm shift.
    case zeros
    /// `N(0, 1)`: `nn.Embedding`.
    case normal
}

/// One named tensor of a network: its place in the flat parameter vector.
public struct ParameterRef: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public let initialization: ParameterInit
    public let fanIn: Int
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset ..< offset + count }
}

/// Collects the named parameters of a network while its layers are built, in order; every layer asks
/// it for its tensors under diffusers' names.
public final class ParameterLayout {
    public private(set) var refs: [ParameterRef] = []
    public private(set) var count = 0
    private var prefixes: [String] = []

    public init() {}

    func add(_ name: String, _ shape: [Int], fanIn: Int = 0, initialization: ParameterInit = .uniformFanIn) -> ParameterRef {
        let full = (prefixes + [name]).joined(separator: ".")
        let r = ParameterRef(name: full, shape: shape, offset: count, initialization: initialization, fanIn: fanIn)
        refs.append(r)
        count += r.count
        return r
    }

    /// Runs `body` with `prefix.` prepended to every name it adds.
    /// Writes PyTorch's default initialisation (``ParameterInit``) of every tensor into
    /// `parameters`, drawn from the Philox streams of `RandomSource(seed:).derived(purpose)`: one
    /// stream per tensor, so a tensor's values do not depend on the others.
    func initialize<T: BinaryFloatingPoint>(_ parameters: UnsafeMutablePointer<T>, seed: UInt64, purpose: UInt64) {
        let rng = RandomSource(seed: seed).derived(purpose)
        for (i, r) in refs.enumerated() {
            var s = rng.stream(draw: UInt64(i), row: 0)
            switch r.initialization {
            case .uniformFanIn:
                let bound = 1 / Double(r.fanIn).squareRoot()
                for j in r.range { parameters[j] = T((2 * (Double(s.next() >> 11) * 0x1p-53) - 1) * bound) }
            case .ones: for j in r.range { parameters[j] = 1 }
            case .zeros: for j in r.range { parameters[j] = 0 }
            case .normal: for j in r.range { parameters[j] = T(s.normal()) }
            }
        }
    }

    func scope<R>(_ prefix: String, _ body: () -> R) -> R {
        prefixes.append(prefix)
        defer { prefixes.removeLast() }
        return body()
    }
}

import Foundation

/// How a ``UNetScore``'s network output becomes a score.
public enum UNetParameterization: String, Sendable, CaseIterable {
    /// ε-prediction (Ho et al. 2020): the network predicts the noise of `x_t = m x₀ + std ε`, so
    /// `s = −out / std(t)`.
    case noisePrediction = "noise"
    /// Score scaled by the noise level (Song et al. 2021, NCSN++'s `scale_by_sigma`): `s = out / std(t)`.
    case scaledScore = "scaled_score"
}

/// A convolutional U-Net score model (``UNet``, the DDPM design at small size) on images of shape
/// `[C, S, S]`: the network computes in float32 (oneDNN kernels) and the model converts Double ↔ Float32
/// once per call; SDE coefficients and solver state stay Double.
///
/// The network time is `τ = timeScale · t` (999 by default: the DDPM step index of the Score-SDE
/// reference's conversion, `labels = t · 999`). A class-conditional model scores for ``label``
/// (`0..<K`; `nil` uses the null label `K`, the unconditional model of classifier-free guidance).
///
/// Thread-safe: each concurrent call borrows its own network instance (buffers are per instance).
public struct UNetScore: ScoreVJPProviding {
    public let configuration: UNetConfiguration
    public let sde: SDESpec
    public let parameterization: UNetParameterization
    public let timeScale: Double
    /// The flat float32 parameters (order of the network's ``ParameterLayout``).
    public let parameters: [Float]
    /// The class label scored for (class-conditional models), `nil` for the null label.
    public var label: Int?
    /// Data → model space map the network was trained in (`x_model = scale · x_data + shift`);
    /// samples are mapped back with ``DataScaling/toData(_:)``. Recorded as `data.scale`, `data.shift`.
    public var dataScaling: DataScaling = .identity
    /// Trained on uniformly dequantized integer data with this many levels `0 ... L−1` (recorded as
    /// `data.dequantization_levels`); nil: continuous data.
    public var dequantizationLevels: Int? = nil
    private let forwardSDE: any ForwardSDE
    let pool: NetworkPool

    public var rowShape: [Int]? { [configuration.channels, configuration.imageSize, configuration.imageSize] }
    /// The forward SDE the model was trained for (``LearnedScoreModel``'s name for ``sde``).
    public var sdeSpec: SDESpec { sde }

    /// A freshly initialised model (PyTorch's default initialisation from `seed`).
    public init(configuration: UNetConfiguration, sde: SDESpec, parameterization: UNetParameterization = .noisePrediction,
                timeScale: Double = 999, seed: UInt64) throws {
        let net = try UNet<Float>(configuration)
        net.initialize(seed: seed)
        try self.init(configuration: configuration, sde: sde, parameterization: parameterization, timeScale: timeScale,
                      parameters: Array(UnsafeBufferPointer(start: net.parameters, count: net.parameterCount)))
    }

    /// A model with the given parameters.
    /// - Throws: `invalidParameter` for an invalid configuration or time scale, `shapeMismatch` when the
    ///   parameter count is not the configuration's, `nonFinite` for NaN/Inf parameters.
    public init(configuration: UNetConfiguration, sde: SDESpec, parameterization: UNetParameterization = .noisePrediction,
                timeScale: Double = 999, parameters: [Float]) throws {
        try configuration.validate()
        try requireParameter(timeScale.isFinite && timeScale > 0, name: "timeScale", value: timeScale, requirement: "finite and > 0")
        let first = try UNet<Float>(configuration)
        let count = first.parameterCount
        guard parameters.count == count else {
            throw ScoreSDEError.shapeMismatch("this U-Net configuration has \(count) parameters but \(parameters.count) were given")
        }
        guard parameters.allSatisfy(\.isFinite) else { throw ScoreSDEError.nonFinite("the U-Net parameters contain NaN or Inf") }
        self.configuration = configuration; self.sde = sde; self.parameterization = parameterization
        self.timeScale = timeScale; self.parameters = parameters
        self.forwardSDE = try sde.make()
        self.pool = NetworkPool(first: first, configuration: configuration, parameters: parameters)
    }

    /// The same model scoring for `label` (`0..<K`, or nil for the null label).
    /// - Throws: `invalidArgument` for an unconditional model; `invalidParameter` for a label out of range.
    public func conditioned(on label: Int?) throws -> UNetScore {
        try requireParameter(configuration.classCount > 0, "this U-Net is unconditional; it takes no class label")
        if let l = label { try requireParameter(l >= 0 && l < configuration.classCount, name: "label", value: l, requirement: "in 0..<\(configuration.classCount) (or nil for the null label)") }
        var m = self
        m.label = label
        return m
    }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        var out = Tensor(zeros: x.shape)
        try score(x, at: t, into: &out)
        return out
    }

    public func score(_ x: Tensor, at t: Double, into out: inout Tensor) throws {
        try evaluate(x, at: [t], labels: [label], into: &out, cotangent: nil, vjp: nil)
    }

    /// Each row at its own time in one pass: the network embeds time per image anyway (`τᵢ =
    /// timeScale · tᵢ`), and each row is scaled by its own `±1/std(tᵢ)`. Row `i` equals
    /// ``score(_:at:)`` on that row at `times[i]` up to float32 rounding (the convolutions of a
    /// batch may take other kernels than those of one image).
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        try checkTimes(times, x)
        try evaluate(x, at: times, labels: [label], into: &out, cotangent: nil, vjp: nil)
    }

    /// ``score(_:at:labels:)-(_,Double,_)`` with each row at its own time.
    public func score(_ x: Tensor, at times: [Double], labels: [Int?]) throws -> Tensor {
        try checkTimes(times, x)
        var out = Tensor(zeros: x.shape)
        try evaluate(x, at: times, labels: labels, into: &out, cotangent: nil, vjp: nil)
        return out
    }

    /// The score at per-row labels: one label for every row, or one per row (`nil`: the null label).
    /// - Throws: as ``score(_:at:)``; `invalidArgument` for a label outside `0..<K` or any label on an
    ///   unconditional model, `shapeMismatch` unless there are 1 or `x.rows` labels.
    public func score(_ x: Tensor, at t: Double, labels: [Int?]) throws -> Tensor {
        var out = Tensor(zeros: x.shape)
        try evaluate(x, at: [t], labels: labels, into: &out, cotangent: nil, vjp: nil)
        return out
    }

    /// The score and its vector–Jacobian product `Jᵀ u` (``ScoreVJPProviding``): one forward and one
    /// backward pass of the network for the whole batch, in float32 (`u` is rounded to float32 and
    /// the product scaled by the score's `±1/std` in Double).
    public func scoreAndVJP(_ x: Tensor, at t: Double, cotangent u: Tensor) throws -> (score: Tensor, vjp: Tensor) {
        try scoreAndVJP(x, at: t, cotangent: u, labels: [label])
    }

    /// ``scoreAndVJP(_:at:cotangent:)`` at per-row labels (as ``score(_:at:labels:)-(_,Double,_)``).
    public func scoreAndVJP(_ x: Tensor, at t: Double, cotangent u: Tensor, labels: [Int?]) throws -> (score: Tensor, vjp: Tensor) {
        guard u.count == x.count else { throw ScoreSDEError.shapeMismatch("the cotangent \(u.shape) must match x \(x.shape)") }
        var out = Tensor(zeros: x.shape), vjp = Tensor(zeros: x.shape)
        try evaluate(x, at: [t], labels: labels, into: &out, cotangent: u, vjp: &vjp)
        return (out, vjp)
    }

    /// Network label indices for `n` rows (`K` for the null label), nil for an unconditional network.
    func labelIndices(_ batchLabels: [Int?], rows n: Int) throws -> [Int]? {
        let k = configuration.classCount
        let labels = try ScoreBatch.slice(batchLabels, rows: n)
        guard k > 0 else {
            try requireParameter(labels.allSatisfy { $0 == nil }, "this U-Net is unconditional; it takes no class label")
            return nil
        }
        for case let l? in labels { try requireParameter(l >= 0 && l < k, name: "labels", value: l, requirement: "in 0..<\(k) (or nil for the null label)") }
        let idx = labels.map { $0 ?? k }
        return idx.count == n ? idx : [Int](repeating: idx[0], count: n)
    }

    /// `out = ±net(x, τ, y) / std(t)` and, with a cotangent `u`, `vjp = ±(∂net/∂x)ᵀ u / std(t)`;
    /// `times` holds one time for all rows or one per row.
    private func evaluate(_ x: Tensor, at times: [Double], labels rowLabels: [Int?], into out: inout Tensor,
                          cotangent: Tensor?, vjp: UnsafeMutablePointer<Tensor>?) throws {
        let c = configuration, C = c.channels, S = c.imageSize, P = S * S
        guard x.rowSize == C * P else {
            throw ScoreSDEError.shapeMismatch("this U-Net takes \(C)×\(S)×\(S) images (\(C * P) values per row) but the rows have shape \(x.rowShape) (\(x.rowSize) values); resize or pad the images to \(S)×\(S) with \(C) channel(s)")
        }
        for t in times { guard t.isFinite else { throw ScoreSDEError.nonFinite("the time t is \(t)") } }
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        let n = x.rows, t = times[0]
        let labels = try labelIndices(rowLabels, rows: n)
        let factors = times.map { time -> Double in
            let std = forwardSDE.marginal(at: time).std
            return parameterization == .noisePrediction ? -1 / std : 1 / std
        }
        func factor(_ b: Int) -> Double { factors.count == 1 ? factors[0] : factors[b] }
        let net = pool.take()
        defer { pool.give(net) }
        let input = net.scratch.reserve(n * P * C)
        var finite = true
        x.storage.withUnsafeBufferPointer { xs in
            // NCHW Double → NHWC Float.
            for b in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< P {
                let v = xs[(b * C + ch) * P + q]
                if !v.isFinite { finite = false }
                input[(b * P + q) * C + ch] = Float(v)
            } } }
        }
        guard finite else { throw ScoreSDEError.nonFinite("the input images contain NaN or Inf") }
        let y = net.network.forward(input, tau: times.count == 1 ? [Double](repeating: timeScale * t, count: n) : times.map { timeScale * $0 }, labels: labels)
        var bad = false
        out.storage.withUnsafeMutableBufferPointer { o in
            for b in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< P {
                let v = Double(y[(b * P + q) * C + ch]) * factor(b)
                if !v.isFinite { bad = true }
                o[(b * C + ch) * P + q] = v
            } } }
        }
        if bad { throw ScoreSDEError.nonFinite("the U-Net output at t = \(times.count == 1 ? "\(t)" : "\(times)") contains NaN or Inf") }
        guard let u = cotangent, let vjp else { return }
        // Backward from dy = u (NHWC float32; the input buffer is free again: forward copied it).
        try writeCotangentNHWC(u, into: input, n: n, channels: C, pixels: P)
        let dx = net.network.backward(input)
        if vjp.pointee.shape != x.shape { vjp.pointee = Tensor(zeros: x.shape) }
        vjp.pointee.storage.withUnsafeMutableBufferPointer { o in
            for b in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< P {
                let v = Double(dx[(b * P + q) * C + ch]) * factor(b)
                if !v.isFinite { bad = true }
                o[(b * C + ch) * P + q] = v
            } } }
        }
        if bad { throw ScoreSDEError.nonFinite("the U-Net's vector–Jacobian product at t = \(t) contains NaN or Inf") }
    }

    // MARK: - Files

    /// Named float32 tensors (diffusers' names and shapes) for a safetensors file.
    public var namedTensors: [SafetensorsTensor] {
        let layout = pool.layout
        return layout.refs.map { r in SafetensorsTensor(name: r.name, shape: r.shape, values: parameters[r.range].map(Double.init)) }
    }

    /// Metadata: `model` = `unet`, the configuration (`unet.*`), the SDE, the parameterization and time scale.
    public var metadata: [String: String] {
        var m = configuration.metadata.merging(sde.metadata) { a, _ in a }
            .merging(["model": "unet", "unet.parameterization": parameterization.rawValue, "unet.time_scale": "\(timeScale)"]) { a, _ in a }
            .merging(dataScaling.metadata) { a, _ in a }
        if let l = dequantizationLevels { m["data.dequantization_levels"] = "\(l)" }
        return m
    }

    /// Writes the weights (F32) and configuration to a safetensors file.
    public func write(to path: String) throws {
        try Safetensors.write(namedTensors, metadata: metadata, dtype: .f32, to: path)
    }

    /// Reads a model written by ``write(to:)`` (or any file with the same names, shapes and metadata),
    /// or a training checkpoint of ``UNetTrainer`` (its EMA weights by default, checksum verified).
    /// - Throws: ``ScoreSDEError/io(path:message:)`` when the metadata is missing or invalid or a tensor
    ///   is missing, has another shape or is not in the configuration; `nonFinite` for NaN/Inf weights.
    public static func read(_ path: String, weights: ModelFile.Weights = .ema) throws -> UNetScore {
        try read(Safetensors.read(path), weights: weights)
    }

    /// Reads a model or checkpoint from a decoded file (as `read(path)` does).
    public static func read(_ file: SafetensorsFile, weights: ModelFile.Weights = .ema) throws -> UNetScore {
        let path = file.path
        let m = MetadataReader(map: file.metadata, path: path)
        let checkpoint = file.metadata["format.content"] == "checkpoint"
        if checkpoint { try ModelFile.verifyChecksum(file, required: true) }
        let prefix = checkpoint ? (weights == .ema ? "ema." : "model.") : ""
        let kind = try m.string("model")
        guard kind == "unet" else { throw m.fail("metadata 'model' is '\(kind)'; expected 'unet' (is this an MLP model file?)") }
        let config = try UNetConfiguration(metadata: m)
        let sde = try SDESpec(metadata: m)
        let pText = try m.string("unet.parameterization")
        guard let par = UNetParameterization(rawValue: pText) else {
            throw m.fail("metadata 'unet.parameterization' is '\(pText)'; expected \(UNetParameterization.allCases.map(\.rawValue).joined(separator: " or "))")
        }
        let timeScale = try m.double("unet.time_scale")
        let net = try UNet<Float>(config)
        var values = [Float](repeating: 0, count: net.parameterCount)
        let expected = Set(net.layout.refs.map(\.name))
        if !checkpoint, let extra = file.tensors.first(where: { !expected.contains($0.name) }) {
            throw m.fail("tensor '\(extra.name)' is not part of the U-Net its metadata describes (\(config.blockOutChannels), \(config.layersPerBlock) per level); the configuration and the weights disagree")
        }
        for r in net.layout.refs {
            let t = try file.tensor(named: prefix + r.name, shape: r.shape)
            for (j, v) in t.values.enumerated() {
                guard v.isFinite else { throw ScoreSDEError.nonFinite("\(path): tensor '\(r.name)' contains NaN or Inf") }
                values[r.offset + j] = Float(v)
            }
        }
        var model = try UNetScore(configuration: config, sde: sde, parameterization: par, timeScale: timeScale, parameters: values)
        model.dataScaling = m.map["data.scale"] == nil ? .identity : try DataScaling(metadata: m)
        if m.map["data.dequantization_levels"] != nil {
            let l = try m.int("data.dequantization_levels")
            guard l >= 2 else { throw m.fail("metadata 'data.dequantization_levels' is \(l); expected >= 2") }
            model.dequantizationLevels = l
        }
        return model
    }
}

/// Networks with the model's parameters, one per concurrent caller.
final class NetworkPool: @unchecked Sendable {
    final class Entry { let network: UNet<Float>; let scratch = NetworkBuffer<Float>(); init(_ n: UNet<Float>) { network = n } }
    let configuration: UNetConfiguration
    let parameters: [Float]
    let layout: ParameterLayout
    private var free: [Entry] = []
    private let lock = NSLock()

    /// A pool whose first network is `first`, built from `configuration` — which therefore passed
    /// ``UNetConfiguration/validate()``, so that ``take()`` can build more without checking again.
    init(first: UNet<Float>, configuration: UNetConfiguration, parameters: [Float]) {
        self.configuration = configuration; self.parameters = parameters
        parameters.withUnsafeBufferPointer { first.parameters.update(from: $0.baseAddress!, count: parameters.count) }
        layout = first.layout
        free = [Entry(first)]
    }

    func take() -> Entry {
        lock.lock()
        if let e = free.popLast() { lock.unlock(); return e }
        lock.unlock()
        let net = UNet<Float>(validated: configuration)   // `first` was built from it: it is valid
        parameters.withUnsafeBufferPointer { net.parameters.update(from: $0.baseAddress!, count: parameters.count) }
        return Entry(net)
    }

    func give(_ e: Entry) { lock.lock(); free.append(e); lock.unlock() }
}

/// Writes the NCHW cotangent `u` (`n` images of `C` channels × `P` pixels) into `buffer` as NHWC
/// float32, the layout the U-Net's backward pass reads.
/// - Throws: `nonFinite` if `u` holds NaN or Inf.
func writeCotangentNHWC(_ u: Tensor, into buffer: UnsafeMutablePointer<Float>, n: Int, channels C: Int, pixels P: Int) throws {
    var finite = true
    u.storage.withUnsafeBufferPointer { us in
        for b in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< P {
            let v = us[(b * C + ch) * P + q]
            if !v.isFinite { finite = false }
            buffer[(b * P + q) * C + ch] = Float(v)
        } } }
    }
    guard finite else { throw ScoreSDEError.nonFinite("the cotangent contains NaN or Inf") }
}

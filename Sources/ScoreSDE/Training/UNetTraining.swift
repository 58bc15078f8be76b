import Foundation

/// Everything that defines a training run of a ``UNetScore``: the network (``UNetConfiguration``),
/// its output parameterisation and time scale, and the settings every network shares.
///
///     let options = DSMTrainingOptions(sde: .vp(betaMin: 0.1, betaMax: 20), dataScaling: try DataScaling(scale: 2 / 255.0, shift: -1),
///                                      seed: 1, batchSize: 128, warmup: 1000)
///     let trainer = try UNetTrainer(configuration: UNetTrainingConfiguration(unet: UNetConfiguration(classCount: 10), options: options),
///                                   data: images, labels: labels)
///     try trainer.train(until: 20_000, checkpoints: try CheckpointSchedule(path: "fashion.safetensors"))
///     let model = try trainer.emaModel           // or UNetScore.read("fashion.safetensors")
///
/// The network computes in float32 (weights, activations, gradients, Adam moments, EMA: see
/// ``Adam`` for how float32 Adam stays stable); the DSM loss, its output gradient, the SDE
/// coefficients and the sum of block gradients are float64 (``ScoreTrainer``).
public struct UNetTrainingConfiguration: ScoreTrainingRecipe {
    public typealias Network = UNetScore
    public var unet: UNetConfiguration
    public var parameterization: UNetParameterization
    /// Network time `τ = timeScale · t` (999: the DDPM step index).
    public var timeScale: Double
    public var options: DSMTrainingOptions

    public init(unet: UNetConfiguration, parameterization: UNetParameterization = .noisePrediction, timeScale: Double = 999,
                options: DSMTrainingOptions) {
        self.unet = unet; self.parameterization = parameterization; self.timeScale = timeScale; self.options = options
    }

    public func validate() throws {
        try unet.validate()
        try options.validate()
        try requireParameter(timeScale.isFinite && timeScale > 0, name: "timeScale", value: timeScale, requirement: "finite and > 0")
    }

    /// A freshly initialised U-Net (PyTorch's default initialisation from the run's seed).
    public func makeNetwork(data: Tensor) throws -> UNetScore {
        try trained(UNetScore(configuration: unet, sde: options.sde, parameterization: parameterization, timeScale: timeScale,
                              seed: options.seed))
    }

    /// Records the data scaling and dequantization levels in the model.
    public func trained(_ network: UNetScore) -> UNetScore {
        var m = network
        m.dataScaling = options.dataScaling
        m.dequantizationLevels = options.dequantizationLevels
        return m
    }

    public func metadata(for network: UNetScore, content: String) -> [String: String] {
        var m = trained(network).metadata
        m["format.content"] = content
        if content == "checkpoint" { m.merge(options.metadata) { a, _ in a } }
        return m
    }

    /// The largest U-Net a checkpoint may describe: channels per level and image side.
    static let maxChannels = 4096, maxImageSize = 1024, maxBatch = 1 << 16

    public static func checkpoint(_ file: SafetensorsFile) throws -> (recipe: UNetTrainingConfiguration, network: UNetScore) {
        let m = MetadataReader(map: file.metadata, path: file.path)
        guard file.metadata["model"] == "unet" else {
            let kind = file.metadata["format"].map { "a '\($0)' file" } ?? file.metadata["model"].map { "a '\($0)' model" } ?? "not a ScoreSDE model file"
            throw m.fail("not a U-Net checkpoint (metadata 'model' is not 'unet': \(kind)); an MLP checkpoint resumes with Trainer")
        }
        guard file.metadata["format.content"] == "checkpoint" else {
            throw m.fail("this is a U-Net weights file, not a training checkpoint: it has no optimiser state to resume from (write checkpoints with UNetTrainer.save)")
        }
        try ModelFile.verifyChecksum(file, required: true)
        let unet = try UNetConfiguration(metadata: m)
        guard unet.blockOutChannels.allSatisfy({ $0 <= maxChannels }), unet.imageSize <= maxImageSize else {
            throw m.fail("the U-Net it describes (\(unet.blockOutChannels) channels, \(unet.imageSize)² images) is larger than any this build trains; the file is corrupt")
        }
        let pText = try m.string("unet.parameterization")
        guard let par = UNetParameterization(rawValue: pText) else {
            throw m.fail("metadata 'unet.parameterization' is '\(pText)'; expected \(UNetParameterization.allCases.map(\.rawValue).joined(separator: " or "))")
        }
        let recipe = UNetTrainingConfiguration(unet: unet, parameterization: par, timeScale: try m.double("unet.time_scale"),
                                               options: try DSMTrainingOptions(metadata: m))
        do { try recipe.validate() } catch let error as ScoreSDEError where error.argumentMessage != nil { throw m.fail("the recorded training settings are invalid: \(error.argumentMessage ?? "")") }
        guard recipe.options.batchSize <= maxBatch else { throw m.fail("train.batch_size \(recipe.options.batchSize) is too large; the file is corrupt") }
        let count = try UNet<Float>(unet).parameterCount
        let network = try UNetScore(configuration: unet, sde: recipe.options.sde, parameterization: par, timeScale: recipe.timeScale,
                                    parameters: [Float](repeating: 0, count: count))
        return (recipe, recipe.trained(network))
    }
}

/// Trains a ``UNetScore`` (see ``ScoreTrainer``, ``UNetTrainingConfiguration``).
public typealias UNetTrainer = ScoreTrainer<UNetTrainingConfiguration>

/// The scratch memory of ``UNetScore``'s training pass: its own float32 network (weights copied
/// in per pass) and the converted input, output and output gradient.
public final class UNetTrainingWorkspace {
    let network: UNet<Float>
    let input = NetworkBuffer<Float>(), dy = NetworkBuffer<Float>()
    var out: [Double] = [], gOut: [Double] = []

    init(_ network: UNet<Float>) { self.network = network }
}

extension UNetScore: DenoisingScoreNetwork {
    public typealias Scalar = Float

    /// Every tensor under diffusers' `UNet2DModel` name; all are trained.
    public var tensors: [NetworkTensor] {
        pool.layout.refs.map { NetworkTensor(name: $0.name, shape: $0.shape, offset: $0.offset) }
    }
    public var flatParameters: [Float] { parameters }

    public func withFlatParameters(_ values: [Float]) throws -> UNetScore {
        var m = try UNetScore(configuration: configuration, sde: sde, parameterization: parameterization, timeScale: timeScale,
                              parameters: values)
        m.label = label; m.dataScaling = dataScaling; m.dequantizationLevels = dequantizationLevels
        return m
    }

    public var sampleShape: [Int] { [configuration.channels, configuration.imageSize, configuration.imageSize] }
    public var classCount: Int { configuration.classCount }

    public func makeTrainingWorkspace(rows: Int) -> UNetTrainingWorkspace {
        // The configuration was validated when this model was built, so the network builds.
        UNetTrainingWorkspace(pool.take().network)
    }

    /// `x_t = m x₀ + std z` per row (NCHW Double → NHWC Float), one float32 forward pass, the DSM
    /// loss and its output gradient in Double (``DSMLoss``, with the score `s = c · out`, `c = −1/std`
    /// for ε-prediction or `1/std` for the scaled score), one float32 backward pass.
    public func addDSMGradient(_ loss: DSMLoss, parameters: UnsafePointer<Float>, x0: UnsafePointer<Double>,
                               times: [Double], noise z: UnsafePointer<Double>, labels: [Int]?, randomSeed: UInt64,
                               workspace ws: UNetTrainingWorkspace, gradient: UnsafeMutablePointer<Float>) throws -> Double {
        let c = configuration, C = c.channels, P = c.imageSize * c.imageSize, D = C * P, n = times.count
        let net = ws.network, count = net.parameterCount
        if c.classCount > 0 {
            guard let labels, labels.count == n, labels.allSatisfy({ $0 >= 0 && $0 <= c.classCount }) else {
                throw ScoreSDEError.invalidArgument("a class-conditional U-Net needs one label in 0...\(c.classCount) (the last is the null label) per example")
            }
        }
        net.parameters.update(from: parameters, count: count)
        let input = ws.input.reserve(n * D)
        var scales = [Double](repeating: 0, count: n), stds = scales, g2 = scales, taus = scales
        for r in 0 ..< n {
            let (m, s, w) = loss.coefficients(at: times[r])
            stds[r] = s; g2[r] = w; taus[r] = timeScale * times[r]
            scales[r] = parameterization == .noisePrediction ? -1 / s : 1 / s
            for ch in 0 ..< C { for q in 0 ..< P {
                let i = (r * C + ch) * P + q
                input[(r * P + q) * C + ch] = Float(m * x0[i] + s * z[i])
            } }
        }
        let y = net.forward(input, tau: taus, labels: c.classCount > 0 ? labels : nil,
                            dropoutSeed: c.dropout > 0 ? randomSeed : nil)
        if ws.out.count < n * D { ws.out = [Double](repeating: 0, count: n * D); ws.gOut = ws.out }
        let value = ws.out.withUnsafeMutableBufferPointer { o in
            ws.gOut.withUnsafeMutableBufferPointer { g in
                for r in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< P {
                    o[(r * C + ch) * P + q] = Double(y[(r * P + q) * C + ch])
                } } }
                return loss.lossAndOutputGradient(out: o.baseAddress!, scales: scales, noise: z, stds: stds, g2: g2,
                                                  rows: n, width: D, gradient: g.baseAddress!)
            }
        }
        guard value.isFinite else {
            throw ScoreSDEError.nonFinite("the training loss is \(value); lower the learning rate, enable gradient clipping, or check the data for NaN/Inf and extreme values")
        }
        let dy = ws.dy.reserve(n * D)
        ws.gOut.withUnsafeBufferPointer { g in
            for r in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< P {
                dy[(r * P + q) * C + ch] = Float(g[(r * C + ch) * P + q])
            } } }
        }
        net.backward(dy)
        let g = UnsafePointer(net.gradients)
        for j in 0 ..< count { gradient[j] += g[j] }
        return value
    }
}

extension UNetScore {
    /// The bytes of the weights file ``write(to:)`` writes (F32, with the configuration).
    public func weightsData() throws -> Data {
        try Safetensors.encode(namedTensors, metadata: metadata, dtype: .f32)
    }
}

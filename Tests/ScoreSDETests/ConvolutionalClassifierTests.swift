import Foundation
import Testing
@testable import ScoreSDE

// The convolutional noise-aware classifier (U-Net encoder + pooled head): its hand-written
// parameter and input gradients against central differences (float64 twin: tight; float32: stated
// tolerances), rows independent to the bit, features/logits shapes, exact resumes, a tiny network
// learning an easy image problem far above chance, guidance of a U-Net, and typed errors.

private let vp = SDESpec.vp(betaMin: 0.1, betaMax: 20)

@Suite("Convolutional classifier")
struct ConvolutionalClassifierTests {
    /// A tiny non-square network that exercises every layer (shortcut convolution, down-sampling,
    /// middle attention, two time-embedded levels).
    static let tinyArch = ConvolutionalClassifier.Architecture(rowShape: [2, 6, 5], classCount: 3, blockOutChannels: [4, 8], layersPerBlock: 1,
                                                               midBlockAttention: true, normGroups: 2, featureDimension: 5, timeScale: 50)

    /// Float32-representable parameters, scaled up so that every layer is non-linear.
    static func tinyParameters(seed: UInt64 = 5) throws -> [Float] {
        let c = try ConvolutionalClassifier(architecture: tinyArch, sde: vp, seed: seed)
        return c.tensors.flatMap { t in c.parameters[t.range].map { t.name.contains("norm") ? $0 : 2 * $0 } }
    }

    static func inputs(rows: Int, shape: [Int], seed: UInt64) -> Tensor {
        var s = RandomSource(seed: seed).stream(draw: 0, row: 0)
        let n = rows * shape.reduce(1, *)
        return Tensor(uncheckedShape: [rows] + shape, storage: (0 ..< n).map { _ in Double(Float(s.normal())) })
    }

    /// Float64 twin: `h = 1e-5`, |analytic − numeric| ≤ 1e-6 (1 + |numeric|), the bound of the
    /// layer tests (NetworksTests: truncation h²/6·L''' and rounding ε|L|/h both below 1e-8).
    @Test("float64 twin: parameter and input gradients match central differences")
    func float64TwinGradients() throws {
        let net = try ConvolutionalClassifierNetwork<Double>(Self.tinyArch)
        let p32 = try Self.tinyParameters()
        for i in 0 ..< p32.count { net.parameters[i] = Double(p32[i]) }
        let scratch = NetworkBuffer<Double>()
        let x = Self.inputs(rows: 3, shape: [2, 6, 5], seed: 11)
        let times = [0.05, 0.4, 0.9], labels = [2, 0, 1]
        _ = try ConvolutionalClassifier.crossEntropy(net, scratch: scratch, x, times: times, labels: labels)
        let dp = Array(UnsafeBufferPointer(start: net.gradients, count: net.parameterCount))
        let theta = Array(UnsafeBufferPointer(start: net.parameters, count: net.parameterCount))
        func loss(_ p: [Double]) -> Double {
            for i in p.indices { net.parameters[i] = p[i] }
            defer { for i in theta.indices { net.parameters[i] = theta[i] } }
            return try! ConvolutionalClassifier.crossEntropy(net, scratch: scratch, x, times: times, labels: labels)
        }
        // One index inside every tensor, plus random ones.
        var s = RandomSource(seed: 3).stream(draw: 0, row: 0)
        let idx = net.layout.refs.map { $0.offset + Int(s.next() % UInt64($0.count)) } + (0 ..< 30).map { _ in Int(s.next() % UInt64(theta.count)) }
        let h = 1e-5
        for i in idx {
            var a = theta, b = theta
            a[i] += h; b[i] -= h
            let num = (loss(a) - loss(b)) / (2 * h)
            let name = net.layout.refs.first { $0.range.contains(i) }!.name
            #expect(abs(dp[i] - num) <= 1e-6 * (1 + abs(num)), "\(name)[\(i)]: analytic \(dp[i]) vs central difference \(num)")
        }
        #expect(dp.contains { abs($0) > 1e-3 }, "the gradient is not trivially zero")
        // Input gradient of log p_t(y | x) at one time for all rows (guidance).
        let t = 0.3
        let gx = ConvolutionalClassifier.inputGradient(net, scratch: scratch, x, times: [t, t, t], labels: labels)
        func logp(_ v: Tensor, _ r: Int) -> Double {
            var l = ConvolutionalClassifier.evaluate(net, scratch: scratch, v, times: [t, t, t], features: false).logits
            NoiseAwareClassifier.logSoftmaxRows(&l, rows: 3, k: 3)
            return l[3 * r + labels[r]]
        }
        for j in stride(from: 0, to: x.count, by: 7) {
            var a = x, b = x
            a.storage[j] += h; b.storage[j] -= h
            let r = j / x.rowSize
            let num = (logp(a, r) - logp(b, r)) / (2 * h)
            #expect(abs(gx[j] - num) <= 1e-6 * (1 + abs(num)), "x[\(j)]: analytic \(gx[j]) vs central difference \(num)")
        }
    }

    /// The float32 network (oneDNN) against central differences of its own float32 loss, and
    /// against the float64 twin's analytic gradients. Float32 logits carry relative errors of order
    /// √K·u·depth ≈ 1e-6 (u = 2⁻²⁴), so a difference quotient with h = 1e-2 has a rounding error
    /// ≈ 1e-6·|L|/h ≈ 1e-4 and a truncation error h²/6·|L'''| ≲ 1e-4: we require
    /// |analytic − numeric| ≤ 2e-3 + 2e-2·|numeric|. Against the twin, the same inputs and weights:
    /// |g₃₂ − g₆₄| ≤ 1e-3·max|g₆₄| (float32 accumulation through ~15 layers is ≈ 1e-5 relative; a
    /// wrong term would be of the gradient's own size).
    @Test("float32: gradients match central differences and the float64 twin")
    func float32Gradients() throws {
        let c = try ConvolutionalClassifier(architecture: Self.tinyArch, sde: vp, parameters: try Self.tinyParameters())
        let x = Self.inputs(rows: 3, shape: [2, 6, 5], seed: 11)
        let times = [0.05, 0.4, 0.9], labels = [2, 0, 1]
        let (_, g32) = try c.crossEntropyAndGradient(x, times: times, labels: labels)
        let twin = try ConvolutionalClassifierNetwork<Double>(Self.tinyArch)
        for i in 0 ..< c.parameters.count { twin.parameters[i] = Double(c.parameters[i]) }
        _ = try ConvolutionalClassifier.crossEntropy(twin, scratch: NetworkBuffer<Double>(), x, times: times, labels: labels)
        let g64 = Array(UnsafeBufferPointer(start: twin.gradients, count: twin.parameterCount))
        let scale = g64.map(abs).max()!
        for i in g64.indices { #expect(abs(Double(g32[i]) - g64[i]) <= 1e-3 * scale, "parameter \(i): float32 \(g32[i]) vs float64 \(g64[i])") }
        // Float32 central differences on parameters (one per tensor).
        let h = 1e-2
        for r in c.tensors {
            let i = r.offset + r.count / 2
            var a = c.parameters, b = c.parameters
            a[i] += Float(h); b[i] -= Float(h)
            let up = try c.withParameters(a).crossEntropyAndGradient(x, times: times, labels: labels).loss
            let down = try c.withParameters(b).crossEntropyAndGradient(x, times: times, labels: labels).loss
            let num = (up - down) / (Double(a[i]) - Double(b[i]))
            #expect(abs(Double(g32[i]) - num) <= 2e-3 + 2e-2 * abs(num), "\(r.name): analytic \(g32[i]) vs central difference \(num)")
        }
        // Input gradient: float32 against the twin and against float32 central differences.
        let t = 0.3
        let gx = try c.logProbabilityGradient(x, at: t, labels: labels)
        let gx64 = ConvolutionalClassifier.inputGradient(twin, scratch: NetworkBuffer<Double>(), x, times: [t, t, t], labels: labels)
        let xscale = gx64.map(abs).max()!
        #expect(xscale > 1e-2)
        for j in 0 ..< x.count { #expect(abs(gx.storage[j] - gx64[j]) <= 1e-3 * xscale, "x[\(j)]: float32 \(gx.storage[j]) vs float64 \(gx64[j])") }
        for j in stride(from: 0, to: x.count, by: 11) {
            var a = x, b = x
            a.storage[j] += h; b.storage[j] -= h
            let r = j / x.rowSize
            let num = (try c.logProbabilities(a, at: t).storage[3 * r + labels[r]] - c.logProbabilities(b, at: t).storage[3 * r + labels[r]]) / (2 * h)
            #expect(abs(gx.storage[j] - num) <= 2e-3 + 2e-2 * abs(num), "x[\(j)]: analytic \(gx.storage[j]) vs central difference \(num)")
        }
    }

    /// A row's features, logits and input gradient are the same bits whether it is evaluated alone,
    /// in a split batch or across the 64-row chunks of a large batch.
    @Test("rows are independent: a split batch gives the same bits")
    func rowsIndependent() throws {
        let arch = ConvolutionalClassifier.Architecture(rowShape: [1, 28, 28], classCount: 10, blockOutChannels: [8, 16, 16], normGroups: 4, featureDimension: 32)
        let c = try ConvolutionalClassifier(architecture: arch, sde: vp, seed: 2)
        let x = Self.inputs(rows: 70, shape: [1, 28, 28], seed: 4)
        let whole = try c.featuresAndLogits(x, at: 0.2)
        #expect(whole.features.shape == [70, 32] && whole.logits.shape == [70, 10])
        for split in [[0 ..< 1, 1 ..< 70], [0 ..< 5, 5 ..< 70], [0 ..< 33, 33 ..< 67, 67 ..< 70]] {
            for part in split {
                let p = try c.featuresAndLogits(x.rows(part), at: 0.2)
                #expect(p.features.storage == Array(whole.features.storage[part.lowerBound * 32 ..< part.upperBound * 32]), "features of rows \(part)")
                #expect(p.logits.storage == Array(whole.logits.storage[part.lowerBound * 10 ..< part.upperBound * 10]), "logits of rows \(part)")
            }
        }
        let labels = (0 ..< 70).map { $0 % 10 }
        let g = try c.logProbabilityGradient(x, at: 0.2, labels: labels)
        let d = 784
        for part in [0 ..< 3, 3 ..< 70] {
            let gp = try c.logProbabilityGradient(x.rows(part), at: 0.2, labels: Array(labels[part]))
            #expect(gp.storage == Array(g.storage[part.lowerBound * d ..< part.upperBound * d]), "input gradient of rows \(part)")
        }
    }

    @Test("features and logits: shapes, the FeatureClassifier contract (data space, clean, at the smallest training time)")
    func featureClassifier() throws {
        let scaling = try DataScaling(scale: 2 / 255.0, shift: -1)
        let arch = ConvolutionalClassifier.Architecture(rowShape: [1, 16, 16], classCount: 10, blockOutChannels: [8, 16], normGroups: 4)
        #expect(arch.featureDimension == 256)
        let c = try ConvolutionalClassifier(architecture: arch, sde: vp, dataScaling: scaling, trainingTimes: 1e-3 ... 1e-3, seed: 1)
        let f: any FeatureClassifier = c
        #expect(f.rowShape == [1, 16, 16] && f.classCount == 10 && f.featureDimension == 256)
        var s = RandomSource(seed: 9).stream(draw: 0, row: 0)
        let pixels = Tensor(uncheckedShape: [5, 1, 16, 16], storage: (0 ..< 5 * 256).map { _ in Double(s.next() % 256) })
        let (features, logits) = try f.featuresAndLogits(of: pixels)
        #expect(features.shape == [5, 256] && logits.shape == [5, 10])
        let direct = try c.featuresAndLogits(scaling.toModel(pixels), at: 1e-3)
        #expect(direct.features == features && direct.logits == logits)
        #expect(features.storage.allSatisfy { $0 >= -0.2785 }, "SiLU features are >= min SiLU ≈ −0.2785")
        // log-probabilities are the log-softmax of these logits; predictions their argmax.
        let lp = try c.logProbabilities(scaling.toModel(pixels), at: 1e-3)
        for r in 0 ..< 5 {
            #expect(abs((0 ..< 10).reduce(0.0) { $0 + exp(lp.storage[10 * r + $1]) } - 1) < 1e-12)
            let best = (0 ..< 10).max { logits.storage[10 * r + $0] < logits.storage[10 * r + $1] }!
            #expect(try c.predict(scaling.toModel(pixels), at: 1e-3)[r] == best)
        }
    }

    /// 24 continuous images 1×8×8 with 3 classes, and a tiny run's settings.
    static func tinyRun() throws -> (data: Tensor, labels: [Int], config: ConvolutionalClassifierTrainingConfiguration) {
        let data = inputs(rows: 24, shape: [1, 8, 8], seed: 21)
        let arch = ConvolutionalClassifier.Architecture(rowShape: [1, 8, 8], classCount: 3, blockOutChannels: [4, 8], normGroups: 2, featureDimension: 8)
        let config = ConvolutionalClassifierTrainingConfiguration(sde: vp, architecture: arch, seed: 4, batchSize: 6, learningRate: 1e-3, warmup: 2, emaRate: 0.9)
        return (data, (0 ..< 24).map { $0 % 3 }, config)
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("convclf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("a resumed checkpoint continues bitwise; weights files round-trip exactly (F32)")
    func resumeAndFiles() throws {
        let (data, labels, config) = try Self.tinyRun()
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ck = dir.appendingPathComponent("ck.safetensors").path, w = dir.appendingPathComponent("w.safetensors").path
        let straight = try ConvolutionalClassifierTrainer(configuration: config, data: data, labels: labels)
        let losses = try straight.train(steps: 6)
        let first = try ConvolutionalClassifierTrainer(configuration: config, data: data, labels: labels)
        let early = try first.train(steps: 3)
        try first.save(to: ck)
        let file = try Safetensors.read(ck)
        #expect(file.tensors.allSatisfy { $0.dtype == .f32 } && file.metadata[ClassifierFile.kindKey] == "conv" && file.metadata["train.step"] == "3")
        let resumed = try ConvolutionalClassifierTrainer.resume(from: ck, data: data, labels: labels)
        #expect(resumed.completedSteps == 3 && resumed.configuration == config)
        let late = try resumed.train(steps: 3)
        #expect(early + late == losses, "losses of 3 + 3 steps vs 6")
        #expect(resumed.classifier.parameters == straight.classifier.parameters && resumed.ema.values == straight.ema.values)
        #expect(resumed.optimizer == straight.optimizer)
        #expect(straight.classifier.parameters != first.classifier.parameters, "training moved the weights")
        // Resuming on other labels is refused.
        #expect(throws: ScoreSDEError.self) { _ = try ConvolutionalClassifierTrainer.resume(from: ck, data: data, labels: labels.map { ($0 + 1) % 3 }) }
        // Weights: exact round trip, the recorded times, SDE and scaling; a checkpoint loads its EMA (or raw) weights.
        let ema = straight.emaClassifier
        try ema.save(to: w)
        let back = try ConvolutionalClassifier.load(from: w)
        #expect(back.parameters == ema.parameters && back.architecture == config.architecture && back.sdeSpec == vp)
        #expect(back.trainingTimes == 1e-3 ... 1 && back.dataScaling == .identity && back.dequantizationLevels == nil)
        #expect(try ConvolutionalClassifier.load(from: ck).parameters == first.emaClassifier.parameters)
        #expect(try ConvolutionalClassifier.load(from: ck, weights: .raw).parameters == first.classifier.parameters)
    }

    /// Four classes of 8×8 images — a bright bar in the top rows, the bottom rows, the left columns
    /// or the right columns, at a random place and brightness, under noise of std 0.5 — so every
    /// class has the same mean brightness and only the layout tells them apart. Chance is 0.25;
    /// the binomial standard error at chance on 400 held-out images is √(0.25·0.75/400) ≈ 0.022, so
    /// the required 0.9 is 30 standard errors above it: a network whose gradient were wrong
    /// (zero, sign-flipped or scrambled) could not reach it.
    @Test("a tiny network learns an easy image problem far above chance")
    func learnsBars() throws {
        func bars(_ n: Int, seed: UInt64) -> (Tensor, [Int]) {
            var s = RandomSource(seed: seed).stream(draw: 0, row: 0)
            var x = [Double](), y = [Int]()
            for i in 0 ..< n {
                let k = i % 4, at = Int(s.next() % 2) + (k % 2 == 0 ? 1 : 5), amp = 1 + Double(s.next() % 100) / 100
                var img = (0 ..< 64).map { _ in 0.5 * s.normal() }
                for j in 0 ..< 8 { img[k < 2 ? at * 8 + j : j * 8 + at] += amp }
                x += img; y.append(k)
            }
            return (Tensor(uncheckedShape: [n, 1, 8, 8], storage: x), y)
        }
        let (train, trainLabels) = bars(512, seed: 1), (test, testLabels) = bars(400, seed: 2)
        let arch = ConvolutionalClassifier.Architecture(rowShape: [1, 8, 8], classCount: 4, blockOutChannels: [8, 16], normGroups: 4, featureDimension: 16)
        let config = ConvolutionalClassifierTrainingConfiguration(sde: vp, architecture: arch, seed: 1, batchSize: 32, learningRate: 3e-3,
                                                                  warmup: 10, emaRate: 0.95, minTime: 1e-3, maxTime: 1e-3)
        let trainer = try ConvolutionalClassifierTrainer(configuration: config, data: train, labels: trainLabels)
        let losses = try trainer.train(steps: 150)
        let accuracy = try ConvolutionalClassifierTrainer.accuracy(of: trainer.emaClassifier, data: test, labels: testLabels, at: 1e-3, seed: 3)
        #expect(accuracy >= 0.9, "held-out accuracy \(accuracy) (chance 0.25); first losses \(losses.prefix(3)), last \(losses.suffix(3))")
        let lastTen: Double = losses.suffix(10).reduce(0, +), firstTen: Double = losses.prefix(10).reduce(0, +)
        #expect(lastTen < firstTen / 4, "the cross-entropy falls")
    }

    @Test("guidance of a U-Net: s + w ∇ₓ log p_t(y|x); incompatible classifiers are refused")
    func guidesAUNet() throws {
        let unet = try UNetScore(configuration: UNetConfiguration(imageSize: 8, channels: 1, blockOutChannels: [4, 4], layersPerBlock: 1,
                                                                  midBlockAttention: false, normGroups: 2), sde: vp, seed: 1)
        let arch = ConvolutionalClassifier.Architecture(rowShape: [1, 8, 8], classCount: 3, blockOutChannels: [4, 8], normGroups: 2, featureDimension: 8)
        let c = try ConvolutionalClassifier(architecture: arch, sde: vp, seed: 3)
        let x = Self.inputs(rows: 4, shape: [1, 8, 8], seed: 5)
        let guided = try unet.classifierGuided(by: c, labels: [2], scale: 1.5)
        #expect(guided.passesPerEvaluation == 2)
        var expected = try unet.score(x, at: 0.4)
        expected.add(try c.logProbabilityGradient(x, at: 0.4, labels: [2]), scaledBy: 1.5)
        #expect(try guided.score(x, at: 0.4) == expected)
        let perRow = try unet.classifierGuided(by: c, labels: [0, 1, 2, 0], scale: 1)
        _ = try perRow.score(x, at: 0.1)
        #expect(throws: ScoreSDEError.self) { _ = try perRow.score(x.rows(0 ..< 3), at: 0.1) }   // 4 labels, 3 rows
        func other(sde: SDESpec = vp, scaling: DataScaling = .identity, shape: [Int] = [1, 8, 8]) throws -> ConvolutionalClassifier {
            var a = arch; a.rowShape = shape
            return try ConvolutionalClassifier(architecture: a, sde: sde, dataScaling: scaling, seed: 3)
        }
        #expect(throws: ScoreSDEError.self) { _ = try unet.classifierGuided(by: other(sde: .subVP(betaMin: 0.1, betaMax: 20)), labels: [0], scale: 1) }
        #expect(throws: ScoreSDEError.self) { _ = try unet.classifierGuided(by: other(scaling: try DataScaling(scale: 2, shift: -1)), labels: [0], scale: 1) }
        #expect(throws: ScoreSDEError.self) { _ = try unet.classifierGuided(by: other(shape: [1, 4, 4]), labels: [0], scale: 1) }
        #expect(throws: ScoreSDEError.self) { _ = try unet.classifierGuided(by: c, labels: [3], scale: 1) }
        #expect(throws: ScoreSDEError.self) { _ = try unet.classifierGuided(by: c, labels: [0], scale: .nan) }
        let conditional = try UNetScore(configuration: UNetConfiguration(imageSize: 8, channels: 1, blockOutChannels: [4, 4], layersPerBlock: 1,
                                                                         midBlockAttention: false, normGroups: 2, classCount: 10), sde: vp, seed: 1)
        #expect(throws: ScoreSDEError.self) { _ = try conditional.classifierGuided(by: c, labels: [0], scale: 1) }
    }

    /// Whether `body` throws the ``ScoreSDEError`` case `kind` (and, if given, a message containing `text`).
    static func throwsError(_ kind: String, containing text: String? = nil, _ body: () throws -> Void) -> Bool {
        do { try body() } catch let e as ScoreSDEError {
            let name: String, message: String
            switch e {
            case .invalidArgument(let m): (name, message) = ("invalidArgument", m)
            case .invalidParameter(let p): (name, message) = ("invalidParameter", p.description)
            case .shapeMismatch(let m): (name, message) = ("shapeMismatch", m)
            case .nonFinite(let m): (name, message) = ("nonFinite", m)
            case .io(_, let m): (name, message) = ("io", m)
            default: (name, message) = ("other", "\(e)")
            }
            return name == kind && (text.map { message.contains($0) } ?? true)
        } catch { return false }
        return false
    }

    @Test("bad input gives typed errors: shapes, NaN, times, labels, architectures, corrupt and foreign files")
    func badInput() throws {
        let (data, labels, config) = try Self.tinyRun()
        let c = try ConvolutionalClassifier(architecture: config.architecture, sde: vp, seed: 1)
        let x = Self.inputs(rows: 2, shape: [1, 8, 8], seed: 1)
        #expect(Self.throwsError("shapeMismatch") { _ = try c.featuresAndLogits(Self.inputs(rows: 2, shape: [1, 8, 7], seed: 1), at: 0.5) })
        #expect(Self.throwsError("shapeMismatch") { _ = try c.featuresAndLogits(of: Self.inputs(rows: 2, shape: [64], seed: 1).reshaped([2, 63])) })
        var nan = x; nan.storage[17] = .nan
        #expect(Self.throwsError("nonFinite") { _ = try c.logProbabilities(nan, at: 0.5) })
        #expect(Self.throwsError("nonFinite") { _ = try c.logProbabilityGradient(nan, at: 0.5, labels: [0]) })
        for t in [0, -0.1, 1.5, .nan] { #expect(Self.throwsError("invalidParameter") { _ = try c.logProbabilities(x, at: t) }, "t = \(t)") }
        #expect(Self.throwsError("invalidParameter") { _ = try c.logProbabilityGradient(x, at: 0.5, labels: [3]) })
        #expect(Self.throwsError("shapeMismatch") { _ = try c.logProbabilityGradient(x, at: 0.5, labels: [0, 1, 2]) })
        #expect(Self.throwsError("invalidParameter") { _ = try c.targeting([]) })
        var arch = config.architecture; arch.normGroups = 3
        #expect(Self.throwsError("invalidParameter") { _ = try ConvolutionalClassifier(architecture: arch, sde: vp, seed: 1) })
        arch = config.architecture; arch.rowShape = [64]
        #expect(Self.throwsError("invalidParameter") { _ = try ConvolutionalClassifier(architecture: arch, sde: vp, seed: 1) })
        #expect(Self.throwsError("shapeMismatch") { _ = try c.withParameters([1, 2, 3]) })
        var p = c.parameters; p[5] = .infinity
        #expect(Self.throwsError("nonFinite") { _ = try c.withParameters(p) })
        #expect(Self.throwsError("invalidParameter") { _ = try ConvolutionalClassifierTrainer(configuration: config, data: data, labels: labels.map { $0 + 1 }) })
        #expect(Self.throwsError("shapeMismatch") { _ = try ConvolutionalClassifierTrainer(configuration: config, data: data, labels: Array(labels.dropLast())) })

        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let trainer = try ConvolutionalClassifierTrainer(configuration: config, data: data, labels: labels)
        try trainer.train(steps: 1)
        try trainer.save(to: path("ck.safetensors"))
        try trainer.emaClassifier.save(to: path("w.safetensors"))
        // Truncated weights file; a checkpoint with one value changed (checksum).
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path("w.safetensors")))
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: path("short.safetensors")))
        #expect(Self.throwsError("io") { _ = try ConvolutionalClassifier.load(from: path("short.safetensors")) })
        var ck = try Data(contentsOf: URL(fileURLWithPath: path("ck.safetensors")))
        ck[ck.count - 3] ^= 0x40
        try ck.write(to: URL(fileURLWithPath: path("flipped.safetensors")))
        #expect(Self.throwsError("io", containing: "CRC-32") { _ = try ConvolutionalClassifier.load(from: path("flipped.safetensors")) })
        #expect(Self.throwsError("io", containing: "CRC-32") { _ = try ConvolutionalClassifierTrainer.resume(from: path("flipped.safetensors"), data: data, labels: labels) })
        #expect(Self.throwsError("io", containing: "not a training checkpoint") { _ = try ConvolutionalClassifierTrainer.resume(from: path("w.safetensors"), data: data, labels: labels) })
        // MLP classifier files given as convolutional, and the reverse; a score model file.
        let mlpArch = NoiseAwareClassifier.Architecture(rowShape: [1, 8, 8], classCount: 3, hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 2)
        let mlpTrainer = try ClassifierTrainer(configuration: ClassifierTrainingConfiguration(sde: vp, architecture: mlpArch, batchSize: 4), data: data, labels: labels)
        try mlpTrainer.train(steps: 1)
        try mlpTrainer.save(to: path("mlp-ck.safetensors"))
        try mlpTrainer.emaClassifier.save(to: path("mlp.safetensors"))
        #expect(Self.throwsError("io", containing: "MLP") { _ = try ConvolutionalClassifier.load(from: path("mlp.safetensors")) })
        #expect(Self.throwsError("io", containing: "MLP") { _ = try ConvolutionalClassifierTrainer.resume(from: path("mlp-ck.safetensors"), data: data, labels: labels) })
        #expect(Self.throwsError("io", containing: "convolutional") { _ = try NoiseAwareClassifier.load(from: path("w.safetensors")) })
        #expect(Self.throwsError("io", containing: "convolutional") { _ = try ClassifierTrainer.resume(from: path("ck.safetensors"), data: data, labels: labels) })
        let score = try UNetScore(configuration: UNetConfiguration(imageSize: 8, channels: 1, blockOutChannels: [4, 4], midBlockAttention: false, normGroups: 2), sde: vp, seed: 1)
        try score.write(to: path("unet.safetensors"))
        #expect(Self.throwsError("io") { _ = try ConvolutionalClassifier.load(from: path("unet.safetensors")) })
        #expect(Self.throwsError("io") { _ = try ConvolutionalClassifier.load(from: path("missing.safetensors")) })
    }
}

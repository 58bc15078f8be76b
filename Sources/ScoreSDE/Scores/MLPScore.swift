import Foundation

/// A learned score model: a residual MLP with a Gaussian-Fourier time embedding, the small-data
/// counterpart of the reference's NCSN++ / DDPM++ networks.
///
///     let sde = try VPSDE()
///     let model = try MLPScore(architecture: MLPArchitecture(rowShape: [2], hiddenWidth: 128), sde: try SDESpec(sde), seed: 1)
///     let s = try model.score(x, at: 0.5)                      // ScoreModel
///     let (s2, jv) = try model.scoreAndJVP(x, at: 0.5, direction: v)   // likelihoods work too
///     let trained = try MLPScore.load(from: "run.safetensors")  // EMA weights of a checkpoint
///
/// **Network.** With `x` flattened to `D` values, `τ` the time input and `F`, `H`, `L` the
/// architecture's Fourier features, hidden width and residual blocks:
///
///     e    = [sin(2π W τ), cos(2π W τ)]                   W ~ N(0, scale²), fixed (GaussianFourierProjection)
///     temb = SiLU(embed.dense(e) [+ label.embedding[y]])      y ∈ 0..<K, or K = ∅ (class-conditional only)
///     h    = input(x) + temb
///     h    = h + blocks.i.dense2(SiLU(blocks.i.dense1(SiLU(h)) + blocks.i.temb(temb)))   i = 0..<L
///     out  = output(SiLU(h))
///
/// (`blocks.i.temb` only when `timeEmbeddingInBlocks`.) `SiLU(a) = a σ(a)`.
///
/// **Class labels.** With `architecture.classCount = K > 0` the network is class-conditional: a
/// learned embedding row per label and one for the null label `∅` (row `K`) joins the time
/// embedding. ``score(_:at:)`` (the ``ScoreModel`` entry) uses `∅`, the unconditional score a
/// network trained with label dropout learns; ``score(_:at:labels:)-(_,Double,_)`` and
/// ``conditioned(on:)`` give class-conditional scores (classifier-free guidance, Ho & Salimans 2022).
///
/// **Output and time input** (PT `models/utils.py get_score_fn`, NCSN++): `.noisePrediction`
/// (VP, sub-VP): `τ = t`, `score = −out / std(t)`; `.scaledBySigma` (VE): `τ = log σ(t)`,
/// `score = out / σ(t)`, where std and σ are the SDE's marginal standard deviation;
/// `.boundedNoisePrediction`: `τ = t`, `score = −out / √(std(t)² + δ²)` (``noiseFloor`` `δ`) with
/// the output itself bounded, `out = B tanh(net / B)`, `B` = ``boundedOutputLimit``. With a
/// Gaussian base (``MLPArchitecture/gaussianBase``) the score adds the exact score of the fitted
/// Gaussian `N(μ, Σ)` at `t`, `−(m² Σ + std² I)⁻¹ (x − m μ)` (``withGaussianBase(fittedTo:dequantizationLevels:)``).
///
/// **Parameters**, in this order in ``parameters`` and in weights files (Linear weights stored
/// `[out, in]` as `torch.nn.Linear`, row-major):
///
/// | name | shape | init |
/// |---|---|---|
/// | `embed.W` | `[F]` | `N(0, fourierScale²)`, never trained (a buffer) |
/// | `embed.dense.weight`, `.bias` | `[H, 2F]`, `[H]` | Linear(2F, H) |
/// | `input.weight`, `.bias` | `[H, D]`, `[H]` | Linear(D, H) |
/// | `blocks.i.dense1.weight`, `.bias` | `[H, H]`, `[H]` | Linear(H, H) |
/// | `blocks.i.temb.weight`, `.bias` | `[H, H]`, `[H]` | Linear(H, H) (if `timeEmbeddingInBlocks`) |
/// | `blocks.i.dense2.weight`, `.bias` | `[H, H]`, `[H]` | Linear(H, H) |
/// | `output.weight`, `.bias` | `[D, H]`, `[D]` | Linear(H, D) |
/// | `label.embedding` | `[K + 1, H]` | uniform in `[−1, 1]` (class-conditional only; row `K` is `∅`) |
/// | `base.mean`, `base.eigenvectors`, `base.eigenvalues` | `[D]`, `[D, D]`, `[D]` | `N(0, I)`; buffers fitted to the data (``MLPArchitecture/gaussianBase`` only) |
///
/// "Linear(in, out)" is PyTorch's default `nn.Linear` init: weight and bias uniform in
/// `[−1/√in, 1/√in]` (`kaiming_uniform_(a=√5)`), drawn from the seed's Philox streams.
///
/// Matrix products go through OpenBLAS (`BLAS.gemm`) on the whole batch; elementwise work is
/// SIMD and split across cores. The backward pass (``dsmLossAndGradient(_:data:batch:)``) and the
/// Jacobian–vector product are written by hand.
///
/// **Precision** (``precision``, ``MLPPrecision``): float64 by default; with `.float32` the
/// network (score, JVP, training pass) computes in float32 with oneDNN's `sgemm`, converting its
/// inputs and outputs once per call, while the weights, the SDE and everything around the network
/// stay float64 (`let fast = model.withPrecision(.float32)`).
public struct MLPScore: ScoreJacobianProviding {
    public let architecture: MLPArchitecture
    /// The forward SDE the model was built for (its marginal std scales the output).
    public let sdeSpec: SDESpec
    public let parameterization: MLPOutputParameterization
    /// `δ` of ``MLPOutputParameterization/boundedNoisePrediction`` (model-space units); 0 otherwise.
    public let noiseFloor: Double
    /// Data ↔ model space map recorded with the weights (identity unless trained on scaled data).
    public var dataScaling: DataScaling
    /// Trained on uniformly dequantized integer data with this many levels `0 ... L−1` (data-space
    /// values `k + u ∈ [0, L)`): its likelihoods are those of `k + u`, bounding the discrete
    /// data's. nil: continuous data.
    public var dequantizationLevels: Int?
    /// The time its likelihood is stated at: the smallest training time of a model trained for
    /// likelihoods (its density is the probability flow's density at this time, `p_eps`, which
    /// the model was never asked to sharpen below). nil: the caller's choice (the reference: 1e-5).
    public var likelihoodEps: Double?
    /// All named tensors, flattened in the order of ``MLPArchitecture/parameterSpecs``.
    public internal(set) var parameters: [Double] { didSet { refreshComputeParameters() } }
    /// The precision the network computes in (``MLPPrecision``; default float64). The weights
    /// are float64 either way; with float32 they are rounded once, when set.
    public var precision: MLPPrecision = .float64 { didSet { refreshComputeParameters() } }
    /// ``parameters`` rounded to float32 (``MLPPrecision/float32`` only; empty otherwise).
    private(set) var parameters32: [Float] = []
    /// The SDE built from ``sdeSpec``.
    public let sde: any ForwardSDE
    let specs: [MLPParameterSpec]
    let layout: MLPLayout

    /// A freshly initialised network (PyTorch default Linear init, Fourier frequencies `N(0, scale²)`).
    ///
    /// - Parameters:
    ///   - architecture: widths, depth and Fourier features of the network.
    ///   - sde: the forward SDE the network is trained for.
    ///   - parameterization: default: the reference's for the SDE kind.
    ///   - dataScaling: the data ↔ model space map of the training data.
    ///   - seed: fixes the initial weights.
    ///   - noiseFloor: `δ` for `.boundedNoisePrediction` (required > 0 there, ignored otherwise).
    public init(architecture: MLPArchitecture, sde: SDESpec, parameterization: MLPOutputParameterization? = nil,
                noiseFloor: Double = 0, dataScaling: DataScaling = .identity, seed: UInt64) throws {
        try architecture.validate()
        let specs = architecture.parameterSpecs
        var values = [Double](repeating: 0, count: architecture.parameterCount)
        let rng = RandomSource(seed: seed).derived(MLPScore.initPurpose)
        for (i, spec) in specs.enumerated() {
            var s = rng.stream(draw: UInt64(i), row: 0)
            if spec.trainable {
                let bound = 1 / Double(spec.fanIn).squareRoot()
                for j in spec.range { values[j] = (2 * (Double(s.next() >> 11) * 0x1p-53) - 1) * bound }
            } else if spec.name == "base.eigenvectors" {
                for j in 0 ..< architecture.dimension { values[spec.offset + j * architecture.dimension + j] = 1 }
            } else if spec.name == "base.eigenvalues" {
                for j in spec.range { values[j] = 1 }
            } else if spec.name == "base.mean" {
                continue
            } else {
                for j in spec.range { values[j] = architecture.fourierScale * s.normal() }
            }
        }
        try self.init(architecture: architecture, sde: sde, parameterization: parameterization,
                      noiseFloor: noiseFloor, dataScaling: dataScaling, parameters: values)
    }

    /// A network with the given flat parameters (order of ``MLPArchitecture/parameterSpecs``).
    public init(architecture: MLPArchitecture, sde: SDESpec, parameterization: MLPOutputParameterization? = nil,
                noiseFloor: Double = 0, dataScaling: DataScaling = .identity, parameters: [Double]) throws {
        try architecture.validate()
        let param = parameterization ?? sde.defaultParameterization
        if param == .boundedNoisePrediction {
            try requireParameter(noiseFloor.isFinite && noiseFloor > 0, name: "noiseFloor", value: noiseFloor, requirement: "finite and > 0 in model-space units (the bounded noise-prediction output's δ)",
                                 advice: "e.g. the std of the dequantization noise")
        }
        guard parameters.count == architecture.parameterCount else {
            throw ScoreSDEError.shapeMismatch("this architecture has \(architecture.parameterCount) parameters but \(parameters.count) were given")
        }
        guard parameters.allSatisfy(\.isFinite) else {
            throw ScoreSDEError.nonFinite("the network parameters contain NaN or Inf")
        }
        self.architecture = architecture
        self.sdeSpec = sde
        self.sde = try sde.make()
        self.parameterization = param
        self.noiseFloor = param == .boundedNoisePrediction ? noiseFloor : 0
        self.dataScaling = dataScaling
        self.parameters = parameters
        self.specs = architecture.parameterSpecs
        self.layout = MLPLayout(architecture)
    }

    /// Keeps ``parameters32`` equal to the float64 weights rounded to float32 (float32 models only).
    private mutating func refreshComputeParameters() {
        parameters32 = precision == .float32 ? parameters.map { Float($0) } : []
    }

    /// The same network computing in `precision`.
    public func withPrecision(_ precision: MLPPrecision) -> MLPScore {
        var m = self
        m.precision = precision
        return m
    }

    static let initPurpose: UInt64 = 0x6D6C_7069_6E69_74   // "mlpinit"

    public var rowShape: [Int]? { architecture.rowShape }

    /// The named tensors, in order.
    public var namedTensors: [SafetensorsTensor] {
        specs.map { SafetensorsTensor(name: $0.name, shape: $0.shape, values: Array(parameters[$0.range])) }
    }

    /// The same network with other parameters (e.g. the EMA weights of a run).
    public func withParameters(_ values: [Double]) throws -> MLPScore {
        var m = try MLPScore(architecture: architecture, sde: sdeSpec, parameterization: parameterization,
                             noiseFloor: noiseFloor, dataScaling: dataScaling, parameters: values)
        m.dequantizationLevels = dequantizationLevels
        m.likelihoodEps = likelihoodEps
        m.precision = precision
        return m
    }

    /// The values of the tensor called `name`.
    public func tensor(named name: String) -> [Double]? {
        specs.first { $0.name == name }.map { Array(parameters[$0.range]) }
    }

    // MARK: - Time conditioning

    /// `(τ, c)`: the network's time input and the factor turning its output into the score.
    func conditioning(at t: Double) throws -> (tau: Double, scale: Double) {
        guard t.isFinite, t > 0, t <= sde.T else {
            throw ScoreSDEError.invalid("t", t, must: "in (0, \(sde.T)] for a learned score")
        }
        let std = sde.marginal(at: t).std
        guard std > 0, std.isFinite else {
            throw ScoreSDEError.invalidArgument("the marginal std at t = \(t) is \(std); the learned score needs std > 0 (use eps > 0)")
        }
        switch parameterization {
        case .noisePrediction: return (t, -1 / std)
        case .scaledBySigma: return (Foundation.log(std), 1 / std)
        case .boundedNoisePrediction: return (t, -1 / (std * std + noiseFloor * noiseFloor).squareRoot())
        }
    }

    /// `B` of the bounded output `B tanh(net / B)` of ``MLPOutputParameterization/boundedNoisePrediction``:
    /// the predicted noise has unit variance per value, so `|ε̂| ≤ 5` costs nothing in distribution,
    /// while it keeps the probability flow from running away far from the data (an unbounded MLP
    /// grows linearly there, which made some held-out digits' flows diverge).
    public static let boundedOutputLimit = 5.0

    /// The output bound in use, if any.
    var outputBound: Double? { parameterization == .boundedNoisePrediction ? MLPScore.boundedOutputLimit : nil }

    /// Checks that every label is a class of this network (`nil`: the null label).
    func labelIndices(_ batchLabels: [Int?], rows: Int) throws -> [Int] {
        let k = architecture.classCount
        let labels = try ScoreBatch.slice(batchLabels, rows: rows)
        if k == 0 {
            if labels.contains(where: { $0 != nil }) {
                throw ScoreSDEError.invalidArgument("this model is unconditional (trained without labels): it takes no class; sample without a class, or train with labels")
            }
            return [Int](repeating: -1, count: labels.count)
        }
        return try labels.map { y in
            guard let y else { return k }
            guard y >= 0 && y < k else {
                throw ScoreSDEError.invalid("labels", y, must: "a class of this model, 0...\(k - 1), or nil for the null label")
            }
            return y
        }
    }

    // MARK: - ScoreModel

    /// Rows per network pass (bounds scratch memory; results do not depend on it).
    static let chunkRows = 1024

    /// The score of every row (class-conditional networks: under the null label `∅`, the
    /// unconditional score of a network trained with label dropout).
    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        try score(x, at: t, labels: [nil])
    }

    /// The class-conditional score `s(x, t, y)`: one label for every row, or one per row; `nil` is
    /// the null label `∅`. An unconditional network accepts only `nil`.
    ///
    /// - Throws: `invalidArgument` for a label outside `0 ..< classCount` (or any label on an
    ///   unconditional network); `shapeMismatch` unless there are 1 or `x.rows` labels.
    public func score(_ x: Tensor, at t: Double, labels: [Int?]) throws -> Tensor {
        try validate(x)
        let (tau, c) = try conditioning(at: t)
        let idx = try labelIndices(labels, rows: x.rows)
        var out = Tensor(zeros: x.shape)
        try evaluateByLabel(x, labels: idx, taus: [tau], scales: [c], out: &out, direction: nil, jvp: nil)
        addGaussianBase(x, at: t, into: &out)
        try out.checkFinite("the learned score")
        return out
    }

    /// Each row at its own time, in one pass of the network: the time embedding (and its biases)
    /// once per distinct time, the scaling `±1/std(tᵢ)` and the Gaussian base per row. Row `i`
    /// equals ``score(_:at:)`` on that row at `times[i]` up to the rounding of a batched product.
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        out = try score(x, at: times, labels: [nil])
    }

    /// ``score(_:at:labels:)-(_,Double,_)`` with each row at its own time (labels as there).
    public func score(_ x: Tensor, at times: [Double], labels: [Int?]) throws -> Tensor {
        try validate(x)
        try checkTimes(times, x)
        if let t = times.first, times.allSatisfy({ $0 == t }) { return try score(x, at: t, labels: labels) }
        let cond = try times.map { try conditioning(at: $0) }
        let idx = try labelIndices(labels, rows: x.rows)
        var out = Tensor(zeros: x.shape)
        try evaluateByLabel(x, labels: idx, taus: cond.map(\.tau), scales: cond.map(\.scale), out: &out, direction: nil, jvp: nil)
        if architecture.gaussianBase {
            let marginals = times.map { sde.marginal(at: $0) }
            x.storage.withUnsafeBufferPointer { xp in
                out.storage.withUnsafeMutableBufferPointer { op in
                    addGaussianBase(x: xp.baseAddress!, rows: x.rows, means: marginals.map(\.meanScale), stds: marginals.map(\.std), into: op.baseAddress!)
                }
            }
        }
        try out.checkFinite("the learned score")
        return out
    }

    public func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor) throws -> (score: Tensor, jvp: Tensor) {
        try scoreAndJVP(x, at: t, direction: v, labels: [nil])
    }

    /// The class-conditional score and its Jacobian–vector product (labels as in ``score(_:at:labels:)-(_,Double,_)``).
    public func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor, labels: [Int?]) throws -> (score: Tensor, jvp: Tensor) {
        try validate(x)
        guard v.count == x.count else { throw ScoreSDEError.shapeMismatch("direction \(v.shape) must match x \(x.shape)") }
        let (tau, c) = try conditioning(at: t)
        let idx = try labelIndices(labels, rows: x.rows)
        var out = Tensor(zeros: x.shape), jv = Tensor(zeros: x.shape)
        try evaluateByLabel(x, labels: idx, taus: [tau], scales: [c], out: &out, direction: v, jvp: &jv)
        addGaussianBase(x, at: t, into: &out, direction: v, jvp: &jv)
        try out.checkFinite("the learned score")
        try jv.checkFinite("the learned score's Jacobian-vector product")
        return (out, jv)
    }

    /// The raw network output `out(x, τ(t))` (before the score scaling; null label if conditional).
    public func networkOutput(_ x: Tensor, at t: Double) throws -> Tensor {
        try validate(x)
        let (tau, _) = try conditioning(at: t)
        var out = Tensor(zeros: x.shape)
        evaluate(x, taus: [tau], label: architecture.classCount > 0 ? architecture.classCount : nil, scales: [1], out: &out, direction: nil, jvp: nil)
        return out
    }

    /// ``evaluate(_:taus:label:scales:out:direction:jvp:)`` with per-row label indices (`-1`: none;
    /// a single entry: all rows), grouping the rows by label.
    func evaluateByLabel(_ x: Tensor, labels idx: [Int], taus: [Double], scales: [Double], out: inout Tensor,
                         direction: Tensor?, jvp: UnsafeMutablePointer<Tensor>?) throws {
        if idx.count == 1 || Set(idx).count == 1 {
            let y = idx[0] < 0 ? nil : idx[0]
            evaluate(x, taus: taus, label: y, scales: scales, out: &out, direction: direction, jvp: jvp)
            return
        }
        let d = x.rowSize
        for y in Set(idx).sorted() {
            let rows = idx.indices.filter { idx[$0] == y }
            let xs = x.gatherRows(rows)
            let ts = taus.count == 1 ? taus : rows.map { taus[$0] }, cs = scales.count == 1 ? scales : rows.map { scales[$0] }
            var o = Tensor(zeros: xs.shape)
            if let direction, let jvp {
                let vs = direction.gatherRows(rows)
                var j = Tensor(zeros: xs.shape)
                evaluate(xs, taus: ts, label: y < 0 ? nil : y, scales: cs, out: &o, direction: vs, jvp: &j)
                for (k, r) in rows.enumerated() {
                    for c in 0 ..< d { jvp.pointee.storage[r * d + c] = j.storage[k * d + c] }
                }
            } else {
                evaluate(xs, taus: ts, label: y < 0 ? nil : y, scales: cs, out: &o, direction: nil, jvp: nil)
            }
            for (k, r) in rows.enumerated() {
                for c in 0 ..< d { out.storage[r * d + c] = o.storage[k * d + c] }
            }
        }
    }

    /// `out = scale · net(x, τ, y)` and, with a direction, `jvp = scale · ∂net/∂x · v`, in chunks of
    /// rows, in the model's ``precision``. `taus` and `scales` hold one value for all rows or one per
    /// row (each row at its own time).
    func evaluate(_ x: Tensor, taus: [Double], label: Int? = nil, scales: [Double], out: inout Tensor, direction: Tensor?, jvp: UnsafeMutablePointer<Tensor>?) {
        parameters.withUnsafeBufferPointer { pd in
            switch precision {
            case .float64:
                evaluate(x, compute: pd.baseAddress!, taus: taus, label: label, scales: scales, out: &out, direction: direction, jvp: jvp)
            case .float32:
                parameters32.withUnsafeBufferPointer { pf in
                    evaluate(x, compute: pf.baseAddress!, taus: taus, label: label, scales: scales, out: &out, direction: direction, jvp: jvp)
                }
            }
        }
    }

    /// ``evaluate(_:taus:label:scales:out:direction:jvp:)`` with the parameters `p` in the compute precision `T`.
    func evaluate<T: MLPKernelScalar>(_ x: Tensor, compute p: UnsafePointer<T>, taus: [Double], label: Int?, scales: [Double],
                                      out: inout Tensor, direction: Tensor?, jvp: UnsafeMutablePointer<Tensor>?) {
        let n = x.rows, d = layout.d
        guard n > 0 else { return }
        let chunk = Swift.min(n, MLPScore.chunkRows)
        parameters.withUnsafeBufferPointer { pp in
            let ctx = MLPInferenceContext<T>(layout: layout, params: pp.baseAddress!, compute: p, taus: taus, label: label,
                                             capacity: chunk, withTangent: direction != nil)
            x.storage.withUnsafeBufferPointer { xp in
                out.storage.withUnsafeMutableBufferPointer { op in
                    var lo = 0
                    while lo < n {
                        let rows = Swift.min(chunk, n - lo)
                        if let direction, let jvp {
                            direction.storage.withUnsafeBufferPointer { vp in
                                jvp.pointee.storage.withUnsafeMutableBufferPointer { jp in
                                    ctx.run(x: xp.baseAddress! + lo * d, first: lo, rows: rows, out: op.baseAddress! + lo * d,
                                            v: vp.baseAddress! + lo * d, jvp: jp.baseAddress! + lo * d, scales: scales, bound: outputBound)
                                }
                            }
                        } else {
                            ctx.run(x: xp.baseAddress! + lo * d, first: lo, rows: rows, out: op.baseAddress! + lo * d,
                                    v: nil, jvp: nil, scales: scales, bound: outputBound)
                        }
                        lo += rows
                    }
                }
            }
        }
    }
}

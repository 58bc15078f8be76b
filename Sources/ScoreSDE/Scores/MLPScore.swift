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
///     temb = SiLU(embed.dense(e))
///     h    = input(x) + temb
///     h    = h + blocks.i.dense2(SiLU(blocks.i.dense1(SiLU(h)) + blocks.i.temb(temb)))   i = 0..<L
///     out  = output(SiLU(h))
///
/// (`blocks.i.temb` only when `timeEmbeddingInBlocks`.) `SiLU(a) = a σ(a)`.
///
/// **Output and time input** (PT `models/utils.py get_score_fn`, NCSN++): `.noisePrediction`
/// (VP, sub-VP): `τ = t`, `score = −out / std(t)`; `.scaledBySigma` (VE): `τ = log σ(t)`,
/// `score = out / σ(t)`, where std and σ are the SDE's marginal standard deviation.
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
///
/// "Linear(in, out)" is PyTorch's default `nn.Linear` init: weight and bias uniform in
/// `[−1/√in, 1/√in]` (`kaiming_uniform_(a=√5)`), drawn from the seed's Philox streams.
///
/// Matrix products go through OpenBLAS (`BLAS.gemm`) on the whole batch; elementwise work is
/// SIMD and split across cores. The backward pass (``dsmLossAndGradient(_:data:batch:)``) and the
/// Jacobian–vector product are written by hand.
public struct MLPScore: ScoreJacobianProviding {
    public let architecture: MLPArchitecture
    /// The forward SDE the model was built for (its marginal std scales the output).
    public let sdeSpec: SDESpec
    public let parameterization: MLPOutputParameterization
    /// Data ↔ model space map recorded with the weights (identity unless trained on scaled data).
    public var dataScaling: DataScaling
    /// All named tensors, flattened in the order of ``MLPArchitecture/parameterSpecs``.
    public internal(set) var parameters: [Double]
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
    public init(architecture: MLPArchitecture, sde: SDESpec, parameterization: MLPOutputParameterization? = nil,
                dataScaling: DataScaling = .identity, seed: UInt64) throws {
        try architecture.validate()
        let specs = architecture.parameterSpecs
        var values = [Double](repeating: 0, count: architecture.parameterCount)
        let rng = RandomSource(seed: seed).derived(MLPScore.initPurpose)
        for (i, spec) in specs.enumerated() {
            var s = rng.stream(draw: UInt64(i), row: 0)
            if spec.trainable {
                let bound = 1 / Double(spec.fanIn).squareRoot()
                for j in spec.range { values[j] = (2 * (Double(s.next() >> 11) * 0x1p-53) - 1) * bound }
            } else {
                for j in spec.range { values[j] = architecture.fourierScale * s.normal() }
            }
        }
        try self.init(architecture: architecture, sde: sde, parameterization: parameterization,
                      dataScaling: dataScaling, parameters: values)
    }

    /// A network with the given flat parameters (order of ``MLPArchitecture/parameterSpecs``).
    public init(architecture: MLPArchitecture, sde: SDESpec, parameterization: MLPOutputParameterization? = nil,
                dataScaling: DataScaling = .identity, parameters: [Double]) throws {
        try architecture.validate()
        guard parameters.count == architecture.parameterCount else {
            throw ScoreSDEError.shapeMismatch("this architecture has \(architecture.parameterCount) parameters but \(parameters.count) were given")
        }
        guard parameters.allSatisfy(\.isFinite) else {
            throw ScoreSDEError.nonFinite("the network parameters contain NaN or Inf")
        }
        self.architecture = architecture
        self.sdeSpec = sde
        self.sde = try sde.make()
        self.parameterization = parameterization ?? sde.defaultParameterization
        self.dataScaling = dataScaling
        self.parameters = parameters
        self.specs = architecture.parameterSpecs
        self.layout = MLPLayout(architecture)
    }

    static let initPurpose: UInt64 = 0x6D6C_7069_6E69_74   // "mlpinit"

    public var rowShape: [Int]? { architecture.rowShape }

    /// The named tensors, in order.
    public var namedTensors: [SafetensorsTensor] {
        specs.map { SafetensorsTensor(name: $0.name, shape: $0.shape, values: Array(parameters[$0.range])) }
    }

    /// The same network with other parameters (e.g. the EMA weights of a run).
    public func withParameters(_ values: [Double]) throws -> MLPScore {
        try MLPScore(architecture: architecture, sde: sdeSpec, parameterization: parameterization,
                     dataScaling: dataScaling, parameters: values)
    }

    /// The values of the tensor called `name`.
    public func tensor(named name: String) -> [Double]? {
        specs.first { $0.name == name }.map { Array(parameters[$0.range]) }
    }

    // MARK: - Time conditioning

    /// `(τ, c)`: the network's time input and the factor turning its output into the score.
    func conditioning(at t: Double) throws -> (tau: Double, scale: Double) {
        guard t.isFinite, t > 0, t <= sde.T else {
            throw ScoreSDEError.invalidArgument("time t must be in (0, \(sde.T)] for a learned score (got \(t))")
        }
        let std = sde.marginal(at: t).std
        guard std > 0, std.isFinite else {
            throw ScoreSDEError.invalidArgument("the marginal std at t = \(t) is \(std); the learned score needs std > 0 (use eps > 0)")
        }
        switch parameterization {
        case .noisePrediction: return (t, -1 / std)
        case .scaledBySigma: return (Foundation.log(std), 1 / std)
        }
    }

    // MARK: - ScoreModel

    /// Rows per network pass (bounds scratch memory; results do not depend on it).
    static let chunkRows = 1024

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        try validate(x)
        let (tau, c) = try conditioning(at: t)
        var out = Tensor(zeros: x.shape)
        evaluate(x, tau: tau, scale: c, out: &out, direction: nil, jvp: nil)
        try out.checkFinite("the learned score")
        return out
    }

    public func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor) throws -> (score: Tensor, jvp: Tensor) {
        try validate(x)
        guard v.count == x.count else { throw ScoreSDEError.shapeMismatch("direction \(v.shape) must match x \(x.shape)") }
        let (tau, c) = try conditioning(at: t)
        var out = Tensor(zeros: x.shape), jv = Tensor(zeros: x.shape)
        evaluate(x, tau: tau, scale: c, out: &out, direction: v, jvp: &jv)
        try out.checkFinite("the learned score")
        try jv.checkFinite("the learned score's Jacobian-vector product")
        return (out, jv)
    }

    /// The raw network output `out(x, τ(t))` (before the score scaling).
    public func networkOutput(_ x: Tensor, at t: Double) throws -> Tensor {
        try validate(x)
        let (tau, _) = try conditioning(at: t)
        var out = Tensor(zeros: x.shape)
        evaluate(x, tau: tau, scale: 1, out: &out, direction: nil, jvp: nil)
        return out
    }

    /// `out = scale · net(x, τ)` and, with a direction, `jvp = scale · ∂net/∂x · v`, in chunks of rows.
    func evaluate(_ x: Tensor, tau: Double, scale: Double, out: inout Tensor, direction: Tensor?, jvp: UnsafeMutablePointer<Tensor>?) {
        let n = x.rows, d = layout.d
        guard n > 0 else { return }
        let chunk = Swift.min(n, MLPScore.chunkRows)
        parameters.withUnsafeBufferPointer { pp in
            let p = pp.baseAddress!
            let ctx = MLPInferenceContext(layout: layout, params: p, tau: tau, capacity: chunk, withTangent: direction != nil)
            x.storage.withUnsafeBufferPointer { xp in
                out.storage.withUnsafeMutableBufferPointer { op in
                    var lo = 0
                    while lo < n {
                        let rows = Swift.min(chunk, n - lo)
                        if let direction, let jvp {
                            direction.storage.withUnsafeBufferPointer { vp in
                                jvp.pointee.storage.withUnsafeMutableBufferPointer { jp in
                                    ctx.run(x: xp.baseAddress! + lo * d, rows: rows, out: op.baseAddress! + lo * d,
                                            v: vp.baseAddress! + lo * d, jvp: jp.baseAddress! + lo * d, scale: scale)
                                }
                            }
                        } else {
                            ctx.run(x: xp.baseAddress! + lo * d, rows: rows, out: op.baseAddress! + lo * d,
                                    v: nil, jvp: nil, scale: scale)
                        }
                        lo += rows
                    }
                }
            }
        }
    }
}

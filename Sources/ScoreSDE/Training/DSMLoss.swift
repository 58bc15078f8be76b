import Foundation

/// Continuous-time denoising score matching (Song et al. 2021, eq. 7; PT/JX `losses.get_sde_loss_fn`):
/// `t ~ U(eps, T)`, `z ~ N(0, I)`, `x_t = m(t) x₀ + std(t) z`, `s = s_θ(x_t, t)`,
///
/// * default (λ = std²): `loss = reduce((s · std + z)²)`,
/// * `likelihoodWeighting` (λ = g², Song et al. 2021b): `loss = reduce((s + z / std)²) · g(t)²`,
///
/// with `reduce` the mean over the values of a sample (`reduceMean`) or half their sum, and the
/// mean over the batch. Its minimiser over all functions is the true score of the perturbed data.
/// With ``TrainingTimeSampling/importance`` (likelihood weighting only) `t ~ p(t) ∝ g²/std²`
/// (``LikelihoodTimeSampler``) and each term is multiplied by `1 / ((T − eps) p(t))`: the same
/// expected loss, with bounded per-sample terms (Song, Durkan, Murray & Ermon 2021, §5).
///
///     let loss = try DSMLoss(sde: VPSDE(), reduceMean: true)
///     let batch = loss.drawBatch(step: 0, seed: 7, batchSize: 512, dataRows: data.rows, rowShape: [2])
///     let value = try loss.loss(of: GaussianMixtureScore(mixture, diffusedBy: loss.sde), data: data, batch: batch)
///
/// Defaults are the reference's base config (`reduce_mean=False`, `likelihood_weighting=False`, `eps=1e-5`).
public struct DSMLoss: Sendable {
    public let sde: any ForwardSDE
    public let reduceMean: Bool
    public let likelihoodWeighting: Bool
    /// Smallest training time.
    public let eps: Double
    public let timeSampling: TrainingTimeSampling
    /// The importance sampler of ``TrainingTimeSampling/importance``.
    public let importance: LikelihoodTimeSampler?

    /// - Throws: `invalidArgument` unless `0 < eps < T`, or for importance sampling without likelihood weighting.
    public init(sde: any ForwardSDE, reduceMean: Bool = false, likelihoodWeighting: Bool = false, eps: Double = 1e-5,
                timeSampling: TrainingTimeSampling = .uniform) throws {
        try requireParameter(eps.isFinite && eps > 0 && eps < sde.T, name: "eps", value: eps, requirement: "in (0, T = \(sde.T)) (the training eps)", advice: "the reference uses 1e-5")
        try requireParameter(timeSampling == .uniform || likelihoodWeighting, "importance sampling of t is for likelihood weighting (λ = g²); turn likelihood weighting on or sample t uniformly")
        self.sde = sde; self.reduceMean = reduceMean; self.likelihoodWeighting = likelihoodWeighting; self.eps = eps
        self.timeSampling = timeSampling
        importance = timeSampling == .importance ? try LikelihoodTimeSampler(sde: sde, eps: eps) : nil
    }

    /// Purpose tag of the training stream (`RandomSource.derived`).
    static let trainingPurpose: UInt64 = 0x6473_6D74_7261_696E   // "dsmtrain"

    /// The randomness of training step `step` under `seed`: row indices into the data (uniform,
    /// with replacement), times `t ~ U(eps, T)` and noise `z ~ N(0, I)`. A pure function of
    /// `(seed, step)`: draws `3·step`, `3·step + 1`, `3·step + 2` of the seed's training stream.
    ///
    /// - Throws: `invalidParameter` unless `step >= 0`, `batchSize >= 1` and `dataRows >= 1`.
    public func drawBatch(step: Int, seed: UInt64, batchSize: Int, dataRows: Int, rowShape: [Int]) throws -> DSMBatch {
        try requireParameter(step >= 0, name: "step", value: step, requirement: ">= 0 (the training step)")
        try requireParameter(batchSize >= 1, name: "batchSize", value: batchSize, requirement: ">= 1")
        try requireParameter(dataRows >= 1, name: "dataRows", value: dataRows, requirement: ">= 1 (the training data's rows)")
        let rng = RandomSource(seed: seed).derived(DSMLoss.trainingPurpose)
        let base = UInt64(step) &* 3
        let n = UInt64(dataRows)
        var indices = [Int](repeating: 0, count: batchSize)
        var times = [Double](repeating: 0, count: batchSize)
        let span = sde.T - eps
        for r in 0 ..< batchSize {
            var s = rng.stream(draw: base, row: r)
            indices[r] = Int(s.next().multipliedFullWidth(by: n).high)
            var q = rng.stream(draw: base + 1, row: r)
            let u = Double(q.next() >> 11) * 0x1p-53
            times[r] = importance?.time(forUniform: u) ?? eps + u * span
        }
        var noise = Tensor(zeros: [batchSize] + rowShape)
        noise.fillStandardNormal(draw: base + 2, rng)
        return DSMBatch(indices: indices, times: times, noise: noise)
    }

    /// The loss of any score model on data rows `x0` with the given times and noise (one row per
    /// time). The model is called once per row (a `ScoreModel` takes one time per call), so this is
    /// for evaluation and tests; training uses the batched pass of ``MLPScore``.
    public func loss(of model: some ScoreModel, data x0: Tensor, times: [Double], noise: Tensor) throws -> Double {
        let n = x0.rows, d = x0.rowSize
        guard times.count == n, noise.count == x0.count else {
            throw ScoreSDEError.shapeMismatch("the loss needs one time and one noise row per data row (\(n) rows, \(times.count) times, noise \(noise.shape))")
        }
        var scores = [Double](repeating: 0, count: n * d)
        var stds = [Double](repeating: 0, count: n), g2 = [Double](repeating: 0, count: n)
        let rowShape = [1] + x0.rowShape
        for r in 0 ..< n {
            let t = times[r]
            let (m, s) = sde.marginal(at: t)
            stds[r] = s
            g2[r] = coefficients(at: t).g2
            var row = [Double](repeating: 0, count: d)
            for j in 0 ..< d { row[j] = m * x0.storage[r * d + j] + s * noise.storage[r * d + j] }
            let sc = try model.score(Tensor(uncheckedShape: rowShape, storage: row), at: t)
            guard sc.count == d else { throw ScoreSDEError.shapeMismatch("the score model returned \(sc.shape) for one row of \(d) values") }
            for j in 0 ..< d { scores[r * d + j] = sc.storage[j] }
        }
        let ones = [Double](repeating: 1, count: n)
        return scores.withUnsafeBufferPointer { sp in
            noise.storage.withUnsafeBufferPointer { zp in
                lossAndOutputGradient(out: sp.baseAddress!, scales: ones, noise: zp.baseAddress!, stds: stds, g2: g2,
                                      rows: n, width: d, gradient: nil)
            }
        }
    }

    /// The loss of `model` on the minibatch `batch` of `data` (see ``loss(of:data:times:noise:)``).
    public func loss(of model: some ScoreModel, data: Tensor, batch: DSMBatch) throws -> Double {
        try loss(of: model, data: batch.gather(data), times: batch.times, noise: batch.noise)
    }

    /// `(m, std, g²)` at `t` (g² only with likelihood weighting; with importance sampling times
    /// the weight `1 / ((T − eps) p(t))`).
    @inline(__always) func coefficients(at t: Double) -> (mean: Double, std: Double, g2: Double) {
        let (m, s) = sde.marginal(at: t)
        let g = likelihoodWeighting ? sde.diffusion(at: t) : 0
        if let importance { return (m, s, g * g / ((sde.T - eps) * importance.density(at: t))) }
        return (m, s, g * g)
    }

    /// The batch-mean loss of scores `s_r = scales[r] · out_r` (`rows × width`), and, when
    /// `gradient` is given, `∂loss/∂out` written there.
    /// `base` (rows × width), when given, is added to every score: `s_r = scales[r] · out_r + base_r`
    /// (the Gaussian base of ``MLPArchitecture/gaussianBase``).
    func lossAndOutputGradient(out: UnsafePointer<Double>, scales: [Double], noise z: UnsafePointer<Double>,
                               stds: [Double], g2: [Double], rows n: Int, width d: Int,
                               gradient: UnsafeMutablePointer<Double>?, base: UnsafePointer<Double>? = nil) -> Double {
        let k = reduceMean ? 1 / Double(d) : 0.5
        let gk = 2 * k / Double(n)
        var total = 0.0
        for r in 0 ..< n {
            let c = scales[r], s = stds[r], o = out + r * d, zr = z + r * d, br = base.map { $0 + r * d }
            var acc = 0.0
            if likelihoodWeighting {
                let w = g2[r], invS = 1 / s
                for j in 0 ..< d {
                    let e = c * o[j] + (br?[j] ?? 0) + zr[j] * invS
                    acc += e * e
                    gradient?[r * d + j] = gk * e * w * c
                }
                total += k * acc * w
            } else {
                for j in 0 ..< d {
                    let e = (c * o[j] + (br?[j] ?? 0)) * s + zr[j]
                    acc += e * e
                    gradient?[r * d + j] = gk * e * c * s
                }
                total += k * acc
            }
        }
        return total / Double(n)
    }
}

/// The randomness of one training step: which data rows, at which times, with which noise.
public struct DSMBatch: Sendable, Equatable {
    public let indices: [Int]
    public let times: [Double]
    /// `batchSize × rowShape` standard normals.
    public let noise: Tensor
    /// Class-conditional training: the label row of each example (`classCount` is the null label,
    /// drawn with the label-dropout probability); nil otherwise.
    public var labels: [Int]?

    public init(indices: [Int], times: [Double], noise: Tensor, labels: [Int]? = nil) {
        self.indices = indices; self.times = times; self.noise = noise; self.labels = labels
    }

    /// The data rows `indices` as a tensor.
    public func gather(_ data: Tensor) -> Tensor {
        let d = data.rowSize
        var out = [Double](repeating: 0, count: indices.count * d)
        data.storage.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (r, i) in indices.enumerated() {
                    (dst.baseAddress! + r * d).update(from: src.baseAddress! + i * d, count: d)
                }
            }
        }
        return Tensor(uncheckedShape: [indices.count] + data.rowShape, storage: out)
    }
}

// MARK: - The batched training pass of MLPScore

extension MLPScore {
    /// The DSM loss of this network on one minibatch and its gradient with respect to every
    /// parameter (flat, in ``parameters`` order; zero for the fixed `embed.W`), by the hand-written
    /// backward pass. `x0` are the clean data rows (one per time).
    public func dsmLossAndGradient(_ loss: DSMLoss, data x0: Tensor, batch: DSMBatch) throws -> (loss: Double, gradient: [Double]) {
        try validate(x0)
        let n = x0.rows
        guard batch.times.count == n, batch.noise.count == x0.count else {
            throw ScoreSDEError.shapeMismatch("the batch has \(batch.times.count) times and noise \(batch.noise.shape) for \(n) data rows")
        }
        let ws = MLPTrainingWorkspace(layout: layout, capacity: n, precision: precision)
        if architecture.classCount > 0 {
            guard let labels = batch.labels, labels.count == n, labels.allSatisfy({ $0 >= 0 && $0 <= architecture.classCount }) else {
                throw ScoreSDEError.invalidArgument("a class-conditional network needs one label row in 0...\(architecture.classCount) (the last is the null label) per example")
            }
            ws.labels = labels
        }
        var g = [Double](repeating: 0, count: parameters.count)
        let value = try x0.storage.withUnsafeBufferPointer { xp in
            try g.withUnsafeMutableBufferPointer { gp in
                try parameters.withUnsafeBufferPointer { pp in
                    try batch.noise.storage.withUnsafeBufferPointer { zp in
                        try trainingPass(loss, parameters: pp.baseAddress!, x0: xp.baseAddress!, times: batch.times, noise: zp.baseAddress!,
                                         workspace: ws, gradient: gp.baseAddress!)
                    }
                }
            }
        }
        return (value, g)
    }

    /// Perturbs `x0` (rows × D) into the workspace, runs forward with parameters `p`, the loss and
    /// backward; adds the gradient to `g`; returns the loss. Throws (before touching `g`) when the
    /// loss is not finite.
    func trainingPass(_ loss: DSMLoss, parameters p: UnsafePointer<Double>, x0: UnsafePointer<Double>, times: [Double],
                      noise z: UnsafePointer<Double>, workspace ws: MLPTrainingWorkspace, gradient g: UnsafeMutablePointer<Double>) throws -> Double {
        let n = times.count, d = layout.d
        var scales = [Double](repeating: 0, count: n), stds = scales, g2 = scales, means = scales
        for r in 0 ..< n {
            let (m, s, w) = loss.coefficients(at: times[r])
            let (tau, c) = try conditioning(at: times[r])
            stds[r] = s; g2[r] = w; scales[r] = c; ws.tau[r] = tau; means[r] = m
            let xr = ws.x + r * d, x0r = x0 + r * d, zr = z + r * d
            for j in 0 ..< d { xr[j] = m * x0r[j] + s * zr[j] }
        }
        ws.forward(p, rows: n, bound: outputBound)
        // The Gaussian base (if any) at each row's time: a constant of the network's parameters.
        var base = [Double]()
        if architecture.gaussianBase {
            base = [Double](repeating: 0, count: n * d)
            base.withUnsafeMutableBufferPointer { addGaussianBase(x: ws.x, rows: n, means: means, stds: stds, into: $0.baseAddress!) }
        }
        let value = base.withUnsafeBufferPointer { bp in
            loss.lossAndOutputGradient(out: ws.out, scales: scales, noise: z, stds: stds, g2: g2,
                                       rows: n, width: d, gradient: ws.gOut, base: bp.isEmpty ? nil : bp.baseAddress)
        }
        guard value.isFinite else {
            throw ScoreSDEError.nonFinite("the training loss is \(value); lower the learning rate, enable gradient clipping, or check the data for NaN/Inf and extreme values")
        }
        if outputBound != nil { ws.applyOutputBound(rows: n) }
        ws.backward(p, gradient: g, rows: n)
        return value
    }
}

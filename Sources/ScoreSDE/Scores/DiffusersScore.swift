import Foundation

/// A diffusers `UNet2DModel` as a ``ScoreModel`` (see ``DiffusersUNet/load(_:scheduler:timeMap:)``).
///
/// At time t with VP marginal `x_t = m(t) x₀ + σ(t) ε` (`m² + σ² = 1`) and network output `o` at
/// `τ(t)` (``DiffusersTimeMap``):
/// - `epsilon`: `ε̂ = o`;  `v_prediction`: `ε̂ = σ x_t + m o`;  `sample`: `ε̂ = (x_t − m o)/σ`;
/// - score `s = −ε̂ / σ(t)`.
public struct DiffusersScore: ScoreVJPProviding {
    /// The network and its weights (its ``UNetScore/sde`` is ``sde``; its own time map is not used).
    public let network: UNetScore
    public let scheduler: DiffusersScheduler
    public let timeMap: DiffusersTimeMap
    /// `num_class_embeds` (0: unconditional).
    public let classEmbeddings: Int
    /// diffusers' `center_input_sample`: the network sees `2x − 1`.
    public let centerInputSample: Bool
    /// The class label (`0..<classEmbeddings`); nil uses the last embedding row (the null label of
    /// classifier-free guidance when the model was trained with one, as ``UNetScore`` models are).
    public var label: Int?
    private let table: [Double]          // log ᾱ for steps −1 ... N−1
    private let forwardSDE: any VariancePreservingSDE

    public var sde: SDESpec { network.sde }
    public var rowShape: [Int]? { network.rowShape }
    public var configuration: UNetConfiguration { network.configuration }

    public init(network: UNetScore, scheduler: DiffusersScheduler, timeMap: DiffusersTimeMap = .alphaBarMatched,
                centerInputSample: Bool = false) throws {
        self.network = network; self.scheduler = scheduler; self.timeMap = timeMap; self.centerInputSample = centerInputSample
        classEmbeddings = network.configuration.classCount > 0 ? network.configuration.classCount + 1 : 0
        table = [0] + scheduler.alphasCumprod.map { Foundation.log($0) }
        guard let vp = try network.sde.make() as? any VariancePreservingSDE else {
            throw ScoreSDEError.invalidArgument("sde = \(network.sde): a diffusers model needs a variance-preserving SDE (vp or cosineVP)")
        }
        forwardSDE = vp
        if case let .affine(a, b) = timeMap { try requireParameter(a.isFinite && b.isFinite && a > 0, name: "timeMap", value: timeMap, requirement: "an affine map τ = a t + b with finite a > 0 and finite b") }
    }

    /// The same model scoring for `label` (`0..<classEmbeddings`, nil for the last row).
    public func conditioned(on label: Int?) throws -> DiffusersScore {
        try requireParameter(classEmbeddings > 0, "this U-Net is unconditional (num_class_embeds null); it takes no class label")
        if let l = label { try requireParameter(l >= 0 && l < classEmbeddings, name: "label", value: l, requirement: "in 0..<\(classEmbeddings) (num_class_embeds)") }
        var m = self
        m.label = label
        return m
    }

    /// The network input `τ(t)`.
    public func networkTime(at t: Double) -> Double {
        switch timeMap {
        case let .affine(a, b): return a * t + b
        case .alphaBarMatched:
            let l = 2 * forwardSDE.logMeanCoefficient(at: t)
            // table is decreasing: table[k] = log ᾱ at step k − 1.
            var lo = 0, hi = table.count - 1
            if l <= table[hi] { lo = hi - 1 } else {
                while hi - lo > 1 { let mid = (lo + hi) / 2; if table[mid] >= l { lo = mid } else { hi = mid } }
            }
            let w = (l - table[lo]) / (table[lo + 1] - table[lo])
            return Double(lo - 1) + w
        }
    }

    /// The continuous time whose `ᾱ(t)` is the scheduler's `ᾱ_i` (so ``networkTime(at:)`` is `i`
    /// under ``DiffusersTimeMap/alphaBarMatched``); nil beyond the SDE's end time `T`.
    public func time(ofStep i: Int) -> Double? {
        guard i >= 0 && i < scheduler.trainSteps else { return nil }
        let target = 0.5 * table[i + 1], T = forwardSDE.T
        if forwardSDE.logMeanCoefficient(at: T) > target { return nil }
        var lo = 0.0, hi = T
        for _ in 0 ..< 200 {
            let mid = 0.5 * (lo + hi)
            if forwardSDE.logMeanCoefficient(at: mid) > target { lo = mid } else { hi = mid }
            if hi - lo <= 1e-16 { break }
        }
        return 0.5 * (lo + hi)
    }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        var out = Tensor(zeros: x.shape)
        try score(x, at: t, into: &out)
        return out
    }

    public func score(_ x: Tensor, at t: Double, into out: inout Tensor) throws {
        try score(x, at: t, labelRows: nil, into: &out)
    }

    /// The score with one label per row (`labelRows`: embedding rows `0..<classEmbeddings`), or
    /// ``label`` for every row when nil.
    func score(_ x: Tensor, at t: Double, labelRows: [Int]?, into out: inout Tensor) throws {
        _ = try evaluate(x, at: [t], labelRows: labelRows, into: &out, cotangent: nil)
    }

    /// Each row at its own time in one pass (the network embeds time per image; each row's
    /// `m(tᵢ)`, `σ(tᵢ)` convert its output). Row `i` equals ``score(_:at:)`` on that row at
    /// `times[i]` up to float32 rounding.
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        try score(x, at: times, labelRows: nil, into: &out)
    }

    /// Per-row times with one label per row (as ``score(_:at:labelRows:into:)``).
    func score(_ x: Tensor, at times: [Double], labelRows: [Int]?, into out: inout Tensor) throws {
        try checkTimes(times, x)
        _ = try evaluate(x, at: times, labelRows: labelRows, into: &out, cotangent: nil)
    }

    /// The score and its vector–Jacobian product `(∂s/∂x)ᵀ u` (``ScoreVJPProviding``): one forward
    /// and one backward pass of the float32 network. With `J = ∂o/∂x`: ε-prediction `−Jᵀu/σ`,
    /// v-prediction `−u − (m/σ) Jᵀu`, x₀-prediction `−(u − m Jᵀu)/σ²`.
    public func scoreAndVJP(_ x: Tensor, at t: Double, cotangent u: Tensor) throws -> (score: Tensor, vjp: Tensor) {
        try scoreAndVJP(x, at: t, cotangent: u, labelRows: nil)
    }

    func scoreAndVJP(_ x: Tensor, at t: Double, cotangent u: Tensor, labelRows: [Int]?) throws -> (score: Tensor, vjp: Tensor) {
        guard u.shape == x.shape else { throw ScoreSDEError.shapeMismatch("the cotangent has shape \(u.shape), the input \(x.shape)") }
        var out = Tensor(zeros: x.shape)
        let vjp = try evaluate(x, at: [t], labelRows: labelRows, into: &out, cotangent: u)!
        return (out, vjp)
    }

    /// The score (and with a cotangent its VJP) at one time for all rows or one per row (`times`).
    private func evaluate(_ x: Tensor, at times: [Double], labelRows: [Int]?, into out: inout Tensor, cotangent: Tensor?) throws -> Tensor? {
        let c = network.configuration, C = c.channels, S = c.imageSize, P = S * S
        guard x.rowSize == C * P else {
            throw ScoreSDEError.shapeMismatch("this U-Net takes \(C)×\(S)×\(S) images (\(C * P) values per row) but the rows have shape \(x.rowShape) (\(x.rowSize) values)")
        }
        for t in times { guard t.isFinite else { throw ScoreSDEError.nonFinite("the time t is \(t)") } }
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        let count = x.count, d = max(x.rowSize, 1), t = times[0]
        let marginals = times.map { forwardSDE.marginal(at: $0) }
        let (y, jtu) = try networkOutput(x, taus: times.map(networkTime(at:)), labelRows: labelRows, cotangent: cotangent)
        let pred = scheduler.prediction
        out.storage.withUnsafeMutableBufferPointer { o in
            x.storage.withUnsafeBufferPointer { xs in
                for i in 0 ..< count {
                    let (m, std) = marginals.count == 1 ? marginals[0] : marginals[i / d]
                    let e: Double
                    switch pred {
                    case .epsilon: e = y[i]
                    case .vPrediction: e = std * xs[i] + m * y[i]
                    case .sample: e = (xs[i] - m * y[i]) / std
                    }
                    o[i] = -e / std
                }
            }
        }
        if !out.storage.allSatisfy(\.isFinite) { throw ScoreSDEError.nonFinite("the U-Net output at t = \(t) contains NaN or Inf") }
        guard let u = cotangent, let jtu else { return nil }
        var vjp = Tensor(zeros: x.shape)
        vjp.storage.withUnsafeMutableBufferPointer { v in
            for i in 0 ..< count {
                let (m, std) = marginals.count == 1 ? marginals[0] : marginals[i / d]
                switch pred {
                case .epsilon: v[i] = -jtu[i] / std
                case .vPrediction: v[i] = -u.storage[i] - m / std * jtu[i]
                case .sample: v[i] = -(u.storage[i] - m * jtu[i]) / (std * std)
                }
            }
        }
        if !vjp.storage.allSatisfy(\.isFinite) { throw ScoreSDEError.nonFinite("the U-Net's vector–Jacobian product at t = \(t) contains NaN or Inf") }
        return vjp
    }

    /// The raw network output (NCHW, as diffusers' `UNet2DModel(x, τ).sample`) for NCHW images `x`.
    public func networkOutput(_ x: Tensor, tau: Double) throws -> [Double] {
        try networkOutput(x, tau: tau, labelRows: nil)
    }

    func networkOutput(_ x: Tensor, tau: Double, labelRows: [Int]?) throws -> [Double] {
        try networkOutput(x, tau: tau, labelRows: labelRows, cotangent: nil).output
    }

    /// The network output and, with a cotangent `u` (NCHW), `(∂o/∂x)ᵀ u` (×2 under `center_input_sample`).
    func networkOutput(_ x: Tensor, tau: Double, labelRows: [Int]?, cotangent: Tensor?) throws -> (output: [Double], vjp: [Double]?) {
        try networkOutput(x, taus: [tau], labelRows: labelRows, cotangent: cotangent)
    }

    /// ``networkOutput(_:tau:labelRows:cotangent:)`` with one network time for all rows or one per row.
    func networkOutput(_ x: Tensor, taus: [Double], labelRows: [Int]?, cotangent: Tensor?) throws -> (output: [Double], vjp: [Double]?) {
        let c = network.configuration, C = c.channels, S = c.imageSize, P = S * S, n = x.rows
        guard x.rowSize == C * P else { throw ScoreSDEError.shapeMismatch("this U-Net takes \(C)×\(S)×\(S) images, got rows of \(x.rowSize) values") }
        let net = network.pool.take()
        defer { network.pool.give(net) }
        let input = net.scratch.reserve(n * P * C)
        var finite = true
        let center = centerInputSample
        x.storage.withUnsafeBufferPointer { xs in
            for b in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< P {
                var v = xs[(b * C + ch) * P + q]
                if !v.isFinite { finite = false }
                if center { v = 2 * v - 1 }
                input[(b * P + q) * C + ch] = Float(v)
            } } }
        }
        guard finite else { throw ScoreSDEError.nonFinite("the input images contain NaN or Inf") }
        let labels: [Int]? = classEmbeddings > 0 ? (labelRows ?? [Int](repeating: label ?? classEmbeddings - 1, count: n)) : nil
        let y = net.network.forward(input, tau: taus.count == 1 ? [Double](repeating: taus[0], count: n) : taus, labels: labels)
        var out = [Double](repeating: 0, count: n * C * P)
        for b in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< P { out[(b * C + ch) * P + q] = Double(y[(b * P + q) * C + ch]) } } }
        guard let u = cotangent else { return (out, nil) }
        // Backward from dy = u (NHWC float32; the input buffer is free again: forward copied it).
        try writeCotangentNHWC(u, into: input, n: n, channels: C, pixels: P)
        let dx = net.network.backward(input)
        let scale = center ? 2.0 : 1.0
        var j = [Double](repeating: 0, count: n * C * P)
        for b in 0 ..< n { for ch in 0 ..< C { for q in 0 ..< P { j[(b * C + ch) * P + q] = scale * Double(dx[(b * P + q) * C + ch]) } } }
        return (out, j)
    }
}

/// A diffusers model in the CLI and wherever a ``LearnedScoreModel`` is taken. Class labels follow
/// ``UNetScore``'s convention: `0..<classCount` with `classCount = num_class_embeds − 1`, nil the last
/// embedding row (the null label).
extension DiffusersScore: LearnedScoreModel {
    public var sdeSpec: SDESpec { network.sde }
    public var dataScaling: DataScaling { network.dataScaling }
    public var dequantizationLevels: Int? { network.dequantizationLevels }
    public var classCount: Int { network.configuration.classCount }
    public var sampleShape: [Int] { [configuration.channels, configuration.imageSize, configuration.imageSize] }

    public func conditionedScore(on labels: [Int?]) throws -> any ScoreModel { try DiffusersConditionedScore(model: self, labels: labels) }
    public func classifierFreeGuidedScore(labels: [Int?], guidanceScale w: Double) throws -> any ScoreModel {
        guard classCount > 0 else {
            throw ScoreSDEError.invalidArgument("classifier-free guidance needs a class-conditional model; this U-Net has no num_class_embeds")
        }
        try requireParameter(w.isFinite, name: "guidanceScale", value: w, requirement: "finite")
        return ClassifierFreeGuidance(conditional: try DiffusersConditionedScore(model: self, labels: labels),
                                      unconditional: try DiffusersConditionedScore(model: self, labels: [nil]), guidanceScale: w)
    }
}


import Foundation

// MARK: - Classifier guidance

/// A time-dependent classifier's gradient `∇ₓ log p_t(y | x)` for the target labels it was made
/// with (score_sde's `classifier_grad_fn`: `∇ₓ Σ_b log_softmax(logits)[b, label_b]`).
public protocol NoisyClassifier: Sendable {
    /// `∇ₓ log p_t(y | x)` for each row of `x`; same shape as `x`.
    func logLikelihoodGradient(_ x: Tensor, at t: Double) throws -> Tensor
}

/// A classifier given as a closure `(x, t) -> ∇ₓ log p_t(y | x)`.
public struct ClosureClassifier: NoisyClassifier {
    public let gradient: @Sendable (Tensor, Double) throws -> Tensor
    public init(_ gradient: @escaping @Sendable (Tensor, Double) throws -> Tensor) { self.gradient = gradient }
    public func logLikelihoodGradient(_ x: Tensor, at t: Double) throws -> Tensor { try gradient(x, t) }
}

/// Classifier guidance (Song et al. 2021, §5 and App. I.1; Dhariwal & Nichol 2021):
/// `s(x, t) + w ∇ₓ log p_t(y | x)`. `w = 1` is Bayes' rule — the score of `p_t(x | y)`; `w > 1`
/// sharpens towards the class (the score of `p_t(x) p_t(y | x)^w`, not a posterior).
///
///     let classifier = try GaussianMixtureClassifier(mixture, diffusedBy: sde, labels: [0, 1, 0, 1], target: 1)
///     let guided = ClassifierGuidedScore(base: GaussianMixtureScore(mixture, diffusedBy: sde), classifier: classifier)
public struct ClassifierGuidedScore<Base: ScoreModel, Classifier: NoisyClassifier>: ScoreModel {
    public let base: Base
    public let classifier: Classifier
    public let scale: Double

    public init(base: Base, classifier: Classifier, scale: Double = 1) {
        self.base = base; self.classifier = classifier; self.scale = scale
    }

    public var rowShape: [Int]? { base.rowShape }
    /// The base model's passes plus one for the classifier's gradient (none at scale 0, where the
    /// gradient is not computed).
    public var passesPerEvaluation: Int { base.passesPerEvaluation + (scale == 0 ? 0 : 1) }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        guard scale.isFinite else { throw ScoreSDEError.invalid("scale", scale, must: "finite (the guidance scale)") }
        var s = try base.score(x, at: t)
        if scale == 0 { return s }
        let g = try classifier.logLikelihoodGradient(x, at: t)
        guard g.count == x.count else {
            throw ScoreSDEError.shapeMismatch("the classifier gradient has shape \(g.shape) for input \(x.shape)")
        }
        s.add(g, scaledBy: scale)
        return s
    }

    /// Each row at its own time: the base model with the per-row times; the classifier (which takes
    /// one time) once per group of rows at equal time.
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        guard scale.isFinite else { throw ScoreSDEError.invalid("scale", scale, must: "finite (the guidance scale)") }
        try checkTimes(times, x)
        var s = try base.score(x, at: times)
        if scale != 0 {
            var g = Tensor(zeros: x.shape)
            try ScoreBatch.forEachTimeGroup(times) { rows, t in
                let part = try classifier.logLikelihoodGradient(rows.count == x.rows ? x : x.gatherRows(rows), at: t)
                guard part.count == rows.count * x.rowSize else {
                    throw ScoreSDEError.shapeMismatch("the classifier gradient has shape \(part.shape) for \(rows.count) rows of shape \(x.rowShape)")
                }
                g.scatterRows(rows, from: part)
            }
            guard s.count == x.count else { throw ScoreSDEError.shapeMismatch("the base model returned shape \(s.shape) for input \(x.shape)") }
            s.add(g, scaledBy: scale)
        }
        out = s
    }
}

/// The exact noisy classifier of a labelled Gaussian mixture: component `k` has class
/// `labels[k]`, and `p_t(y | x) = Σ_{k: labels[k] = y} r_k(x, t)` with `r_k` the responsibilities of the
/// diffused mixture `p_t`. Its gradient is `s_y(x, t) − s(x, t)`, the score of the mixture
/// restricted to class `y` minus the full score, so guidance with `w = 1` samples exactly the
/// class-conditional mixture (``GaussianMixture/restricted(to:)``).
public struct GaussianMixtureClassifier: NoisyClassifier {
    public let mixture: GaussianMixture
    public let sde: any ForwardSDE
    /// Class of each component.
    public let labels: [Int]
    /// The target class: one shared by all rows, or one per row.
    public let targets: [Int]

    /// - Throws: `shapeMismatch` unless there is one label per component; `invalidParameter` when a
    ///   target class has no component.
    public init(_ mixture: GaussianMixture, diffusedBy sde: any ForwardSDE, labels: [Int], targets: [Int]) throws {
        guard labels.count == mixture.componentCount else {
            throw ScoreSDEError.shapeMismatch("\(labels.count) labels for \(mixture.componentCount) components; give one class per component")
        }
        guard !targets.isEmpty else { throw ScoreSDEError.invalid("targets", targets, must: "non-empty", advice: "give at least one target class") }
        let classes = Set(labels)
        if let bad = targets.first(where: { !classes.contains($0) }) {
            throw ScoreSDEError.invalid("targets", bad, must: "a class with a component, one of \(classes.sorted())")
        }
        self.mixture = mixture; self.sde = sde; self.labels = labels; self.targets = targets
    }

    /// One target class for every row.
    public init(_ mixture: GaussianMixture, diffusedBy sde: any ForwardSDE, labels: [Int], target: Int) throws {
        try self.init(mixture, diffusedBy: sde, labels: labels, targets: [target])
    }

    /// Class probabilities `p_t(c | x)` of each row, for the classes in ascending order.
    public func classProbabilities(_ x: Tensor, at t: Double) throws -> [[Double]] {
        let kernel = try self.kernel(at: t, x)
        let classes = Set(labels).sorted()
        var r = [Double](repeating: 0, count: mixture.componentCount)
        return (0 ..< x.rows).map { i in
            let row = x.row(i)
            row.withUnsafeBufferPointer { xp in r.withUnsafeMutableBufferPointer { rp in _ = kernel.softmax(xp.baseAddress!, rp.baseAddress!) } }
            return classes.map { c in zip(labels, r).reduce(0.0) { $0 + ($1.0 == c ? $1.1 : 0) } }
        }
    }

    private func kernel(at t: Double, _ x: Tensor) throws -> GaussianMixtureKernel {
        guard x.rowSize == mixture.dimension else {
            throw ScoreSDEError.shapeMismatch("the classifier takes rows of \(mixture.dimension) values; got shape \(x.rowShape)")
        }
        guard ScoreBatch.tableRows(of: targets.count, rows: x.rows) != nil else {
            throw ScoreSDEError.shapeMismatch("\(targets.count) target classes for \(x.rows) rows: give one, or one per row of the batch")
        }
        guard t.isFinite, t >= 0, t <= sde.T else { throw ScoreSDEError.invalid("t", t, must: "in [0, \(sde.T)]") }
        let (m, s) = sde.marginal(at: t)
        return GaussianMixtureKernel(mixture.diffused(meanScale: m, std: s))
    }

    public func logLikelihoodGradient(_ x: Tensor, at t: Double) throws -> Tensor {
        let kernel = try self.kernel(at: t, x)
        let k = kernel.k, d = kernel.d, labels = self.labels
        let targets = try ScoreBatch.slice(self.targets, rows: x.rows, what: "target classes")   // a split or gathered call takes its rows' targets
        var out = Tensor(zeros: x.shape)
        x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { op in
                let xb = xp.baseAddress!, ob = op.baseAddress!
                Parallel.forEachChunk(x.rows, grain: max(1, 4096 / max(k * d, 1))) { range in
                    var logits = [Double](repeating: 0, count: k), all = logits, inY = logits
                    for row in range {
                        let xr = xb + row * d, g = ob + row * d
                        let target = targets.count == 1 ? targets[0] : targets[row]
                        logits.withUnsafeMutableBufferPointer { lp in
                            kernel.mu.withUnsafeBufferPointer { mup in
                                kernel.iv.withUnsafeBufferPointer { ivp in
                                    kernel.lc.withUnsafeBufferPointer { lcp in
                                        _ = gmmLogits(xr, lp.baseAddress!, mup.baseAddress!, ivp.baseAddress!, lcp.baseAddress!, k, d)
                                    }
                                }
                            }
                        }
                        // Softmax over all components and over the target's components (in log space).
                        var topY = -Double.infinity
                        for c in 0 ..< k where labels[c] == target { topY = max(topY, logits[c]) }
                        var sumAll = 0.0, sumY = 0.0
                        for c in 0 ..< k {
                            all[c] = Foundation.exp(logits[c]); sumAll += all[c]
                            inY[c] = labels[c] == target ? Foundation.exp(logits[c] - topY) : 0
                            sumY += inY[c]
                        }
                        for j in 0 ..< d { g[j] = 0 }
                        for c in 0 ..< k {
                            let w = inY[c] / sumY - all[c] / sumAll
                            if w == 0 { continue }
                            for j in 0 ..< d { g[j] += w * (kernel.mu[c * d + j] - xr[j]) * kernel.iv[c * d + j] }
                        }
                    }
                }
            }
        }
        try out.checkFinite("the classifier gradient")
        return out
    }
}

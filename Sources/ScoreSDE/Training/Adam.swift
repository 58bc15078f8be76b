import Foundation

/// Adam on a flat parameter vector, as `torch.optim.Adam` (no weight decay, no AMSGrad), with the
/// reference's learning-rate warm-up and gradient-norm clipping (PT `losses.optimization_manager`).
///
///     var adam = AdamOptimizer(parameterCount: n, learningRate: 2e-4, warmup: 5000, gradClip: 1)
///     adam.step(&parameters, gradient: &g, step: k, trainable: [0 ..< n])
///
/// Per update (torch's formula, `k` = updates so far including this one):
/// `m ← m + (1−β₁)(g − m)`, `v ← β₂ v + (1−β₂) g²`,
/// `θ ← θ − (lr_k / (1−β₁ᵏ)) · m / (√v / √(1−β₂ᵏ) + ε)`.
public struct AdamOptimizer: Sendable, Equatable {
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    /// Warm-up length: the rate at training step `s` (0-based, counted before the step) is
    /// `lr · min(s / warmup, 1)` (so the very first step has rate 0, as in the reference); 0: none.
    public var warmup: Int
    /// Largest gradient norm (`clip_grad_norm_`); negative: no clipping.
    public var gradClip: Double
    /// First and second moment estimates (torch's `exp_avg`, `exp_avg_sq`).
    public var firstMoment: [Double]
    public var secondMoment: [Double]
    /// Updates done (torch's per-parameter `step`).
    public var updates: Int

    public init(parameterCount: Int, learningRate: Double = 2e-4, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, warmup: Int = 5000, gradClip: Double = 1) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.warmup = warmup; self.gradClip = gradClip
        firstMoment = [Double](repeating: 0, count: parameterCount)
        secondMoment = firstMoment
        updates = 0
    }

    /// The learning rate used at training step `step` (0-based).
    public func learningRate(atStep step: Int) -> Double {
        warmup > 0 ? learningRate * Swift.min(Double(step) / Double(warmup), 1) : learningRate
    }

    /// Scales `g` (over `ranges`) so that its Euclidean norm is at most `maxNorm`, as
    /// `clip_grad_norm_` does (factor `maxNorm / (norm + 1e-6)` when below 1); returns the norm before clipping.
    @discardableResult
    public static func clipGradientNorm(_ g: inout [Double], maxNorm: Double, ranges: [Range<Int>]) -> Double {
        var sum = 0.0
        g.withUnsafeBufferPointer { p in
            for r in ranges {
                var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
                var i = r.lowerBound
                while i + 4 <= r.upperBound {
                    a0 += p[i] * p[i]; a1 += p[i + 1] * p[i + 1]; a2 += p[i + 2] * p[i + 2]; a3 += p[i + 3] * p[i + 3]
                    i += 4
                }
                while i < r.upperBound { a0 += p[i] * p[i]; i += 1 }
                sum += (a0 + a1) + (a2 + a3)
            }
        }
        let norm = sum.squareRoot()
        if maxNorm >= 0 {
            let coef = maxNorm / (norm + 1e-6)
            if coef < 1 {
                g.withUnsafeMutableBufferPointer { p in
                    for r in ranges { for i in r { p[i] *= coef } }
                }
            }
        }
        return norm
    }

    /// One training step: clips `gradient` (in place) when `gradClip >= 0`, then updates the
    /// `trainable` ranges of `parameters` with the rate of step `step`. Returns the gradient norm
    /// before clipping.
    @discardableResult
    public mutating func step(_ parameters: inout [Double], gradient: inout [Double], step: Int,
                              trainable ranges: [Range<Int>]) -> Double {
        precondition(parameters.count == firstMoment.count && gradient.count == firstMoment.count,
                     "AdamOptimizer: sizes do not match")
        let norm = AdamOptimizer.clipGradientNorm(&gradient, maxNorm: gradClip, ranges: ranges)
        updates += 1
        let lr = learningRate(atStep: step)
        let k = Double(updates)
        let bc1 = 1 - Foundation.pow(beta1, k), bc2 = 1 - Foundation.pow(beta2, k)
        let stepSize = lr / bc1, bc2Sqrt = bc2.squareRoot()
        let b1 = beta1, b2 = beta2, eps = epsilon
        parameters.withUnsafeMutableBufferPointer { pp in
            gradient.withUnsafeBufferPointer { gp in
                firstMoment.withUnsafeMutableBufferPointer { mp in
                    secondMoment.withUnsafeMutableBufferPointer { vp in
                        let p = pp.baseAddress!, g = gp.baseAddress!, m = mp.baseAddress!, v = vp.baseAddress!
                        for r in ranges {
                            for i in r {
                                let gi = g[i]
                                let mi = m[i] + (1 - b1) * (gi - m[i])
                                let vi = b2 * v[i] + (1 - b2) * gi * gi
                                m[i] = mi; v[i] = vi
                                p[i] -= stepSize * mi / (vi.squareRoot() / bc2Sqrt + eps)
                            }
                        }
                    }
                }
            }
        }
        return norm
    }
}

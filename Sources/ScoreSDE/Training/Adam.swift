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
///
/// **Precision.** Generic over the parameters' scalar: `Adam<Double>` (``AdamOptimizer``) for the
/// float64 networks, `Adam<Float>` for the float32 ones (``UNetScore``), whose moments are float32
/// as torch's are. What keeps float32 Adam stable is what torch does: the bias corrections
/// `1 − βᵏ` and the step size are computed in Double once per step (in float32 `1 − 0.999ᵏ` loses
/// digits for small `k`), the gradient norm for clipping is accumulated in Double, and `ε = 1e-8`
/// is far above float32's smallest normal (1.2e-38), so `√v + ε` never underflows to 0.
public typealias AdamOptimizer = Adam<Double>

/// Adam over parameters of any float type (see ``AdamOptimizer``).
public struct Adam<Scalar: BinaryFloatingPoint & Sendable>: Sendable, Equatable {
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
    public var firstMoment: [Scalar]
    public var secondMoment: [Scalar]
    /// Updates done (torch's per-parameter `step`).
    public var updates: Int

    public init(parameterCount: Int, learningRate: Double = 2e-4, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, warmup: Int = 5000, gradClip: Double = 1) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.warmup = warmup; self.gradClip = gradClip
        firstMoment = [Scalar](repeating: 0, count: parameterCount)
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
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public static func clipGradientNorm(_ g: inout [Scalar], maxNorm: Double, ranges: [Range<Int>]) -> Double {
        var sum = 0.0
        g.withUnsafeBufferPointer { p in
            for r in ranges {
                var a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
                var i = r.lowerBound
                while i + 4 <= r.upperBound {
                    let q0 = Double(p[i]), q1 = Double(p[i + 1]), q2 = Double(p[i + 2]), q3 = Double(p[i + 3])
                    a0 += q0 * q0; a1 += q1 * q1; a2 += q2 * q2; a3 += q3 * q3
                    i += 4
                }
                while i < r.upperBound { let q = Double(p[i]); a0 += q * q; i += 1 }
                sum += (a0 + a1) + (a2 + a3)
            }
        }
        let norm = sum.squareRoot()
        if maxNorm >= 0 {
            let coef = maxNorm / (norm + 1e-6)
            if coef < 1 {
                let c = Scalar(coef)
                g.withUnsafeMutableBufferPointer { p in
                    for r in ranges { for i in r { p[i] *= c } }
                }
            }
        }
        return norm
    }

    /// One training step: clips `gradient` (in place) when `gradClip >= 0`, then updates the
    /// `trainable` ranges of `parameters` with the rate of step `step`. Returns the gradient norm
    /// before clipping.
    @discardableResult
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public mutating func step(_ parameters: inout [Scalar], gradient: inout [Scalar], step: Int,
                              trainable ranges: [Range<Int>]) -> Double {
        precondition(parameters.count == firstMoment.count && gradient.count == firstMoment.count,
                     "AdamOptimizer: sizes do not match")
        let norm = Adam.clipGradientNorm(&gradient, maxNorm: gradClip, ranges: ranges)
        updates += 1
        let lr = learningRate(atStep: step)
        let k = Double(updates)
        let bc1 = 1 - Foundation.pow(beta1, k), bc2 = 1 - Foundation.pow(beta2, k)
        let stepSize = Scalar(lr / bc1), bc2Sqrt = Scalar(bc2.squareRoot())
        let oneMinusB1 = Scalar(1 - beta1), b2 = Scalar(beta2), oneMinusB2 = Scalar(1 - beta2), eps = Scalar(epsilon)
        parameters.withUnsafeMutableBufferPointer { pp in
            gradient.withUnsafeBufferPointer { gp in
                firstMoment.withUnsafeMutableBufferPointer { mp in
                    secondMoment.withUnsafeMutableBufferPointer { vp in
                        let p = pp.baseAddress!, g = gp.baseAddress!, m = mp.baseAddress!, v = vp.baseAddress!
                        for r in ranges {
                            for i in r {
                                let gi = g[i]
                                let mi = m[i] + oneMinusB1 * (gi - m[i])
                                let vi = b2 * v[i] + oneMinusB2 * gi * gi
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

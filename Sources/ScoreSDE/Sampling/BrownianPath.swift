import Foundation

/// One sample's Brownian path for an adaptive SDE solver that rejects steps: rejection sampling
/// with memory (RSwM; Rackauckas & Nie 2017, "Adaptive methods for stochastic differential
/// equations via natural embeddings and rejection sampling with memory", *Discrete Contin. Dyn.
/// Syst. B* 22(7)).
///
/// An attempt over `[t, t + h]` takes the increment `ΔW = W(t + h) − W(t)`: fresh noise
/// `√h ξ`, `ξ ~ N(0, I)`, when nothing is kept. When the solver rejects the attempt it hands the
/// increment back (``reject(step:increment:)-(_,[Double])``) and the path keeps it: the next, smaller attempt
/// `h' < h` over the same start draws its increment from the Brownian bridge — `W(t + h')` given
/// `W(t + h) − W(t) = ΔW`,
///
///     ΔW' = (h'/h) ΔW + √(h' (h − h')/h) ξ,        ξ ~ N(0, I),
///
/// (the Brownian bridge's conditional mean and variance, on which RSwM rests) — and keeps the rest
/// `ΔW − ΔW'` over `[t + h', t + h]` for the attempts after it. An attempt that reaches a kept
/// interval's end takes that interval's whole increment (its step is cut to the interval). The
/// kept intervals form a stack, the next one on top, so repeated rejections nest. The path the
/// solver integrates along is therefore one Brownian path whatever it rejects; redrawing after a
/// rejection instead biases the samples toward noise that passed the error test.
///
/// Attempt `k` of the path reads draw `k` of its sources, stream `stream` (fresh noise from
/// `noise`, bridge noise from `bridge`): the values do not depend on other paths or on the
/// thread that computes them.
///
///     var path = BrownianPath(dimension: 2, noise: rng.derived(1), bridge: rng.derived(2))
///     var (h, w) = path.increment(over: 0.1, attempt: 0)       // rejected:
///     path.reject(step: h, increment: w)
///     (h, w) = path.increment(over: 0.04, attempt: 1)          // bridged inside [0, 0.1]
public struct BrownianPath: Sendable {
    /// Values per increment.
    public let dimension: Int
    /// Sources of the fresh and of the bridge noise.
    public let noise: RandomSource, bridge: RandomSource
    /// The row of `noise` and `bridge` this path reads.
    public let stream: Int
    /// The kept increments: (interval length, ΔW over it), the next interval last.
    public private(set) var kept: [(duration: Double, increment: [Double])] = []

    public init(dimension: Int, noise: RandomSource, bridge: RandomSource, stream: Int = 0) {
        precondition(dimension >= 0 && stream >= 0, "BrownianPath: dimension and stream must be >= 0")
        self.dimension = dimension; self.noise = noise; self.bridge = bridge; self.stream = stream
    }

    /// The increment over the next `h` (> 0) into `w` (``dimension`` values), from draw `attempt`;
    /// returns the step it covers: `h`, or the top kept interval's length when `h` reaches it
    /// (within a relative 1e-12).
    public mutating func increment(over h: Double, attempt: UInt64, into w: UnsafeMutablePointer<Double>) -> Double {
        let d = dimension
        if let top = kept.last {
            if h >= top.duration * (1 - 1e-12) {
                kept.removeLast()
                for j in 0 ..< d { w[j] = top.increment[j] }
                return top.duration
            }
            // W(h) | W(top.duration) = top.increment: mean (h/dt) ΔW, variance h (dt − h)/dt.
            bridge.normals(draw: attempt, rows: stream ..< stream + 1, rowSize: d, into: w)
            let a = h / top.duration, b = (h * (top.duration - h) / top.duration).squareRoot()
            var rest = top.increment
            for j in 0 ..< d {
                let xi = w[j]
                w[j] = top.increment[j] * a
                w[j] += b * xi
                rest[j] += -1 * w[j]
            }
            kept[kept.count - 1] = (top.duration - h, rest)
            return h
        }
        noise.normals(draw: attempt, rows: stream ..< stream + 1, rowSize: d, into: w)
        let a = h.squareRoot()
        for j in 0 ..< d { w[j] *= a }
        return h
    }

    /// ``increment(over:attempt:into:)`` returning the step and a new array.
    public mutating func increment(over h: Double, attempt: UInt64) -> (step: Double, increment: [Double]) {
        var w = [Double](repeating: 0, count: dimension)
        let step = w.withUnsafeMutableBufferPointer { increment(over: h, attempt: attempt, into: $0.baseAddress!) }
        return (step, w)
    }

    /// Hands back a rejected attempt's increment over the `step` it covered (the values
    /// ``increment(over:attempt:into:)`` gave): the path keeps it for the next attempts.
    public mutating func reject(step: Double, increment w: UnsafeBufferPointer<Double>) {
        precondition(w.count == dimension, "BrownianPath.reject: \(w.count) values for a path of dimension \(dimension)")
        kept.append((step, Array(w)))
    }

    /// ``reject(step:increment:)-(_,UnsafeBufferPointer<Double>)`` from an array.
    public mutating func reject(step: Double, increment w: [Double]) {
        w.withUnsafeBufferPointer { reject(step: step, increment: $0) }
    }
}

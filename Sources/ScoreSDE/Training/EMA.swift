import Foundation

/// Exponential moving average of the weights, as score_sde's `ExponentialMovingAverage` with
/// `use_num_updates=True`: after update `k` (1-based) the decay is `min(rate, (1 + k) / (10 + k))`
/// and `ema ← ema − (1 − decay)(ema − θ)`. The average starts at the initial weights; its early
/// decay ramp makes it useful from the first hundred steps on. Sampling uses these weights.
///
/// Generic over the weights' scalar (float32 networks keep a float32 average, as torch's EMA of
/// float32 weights does); the decay is computed in Double.
public typealias ExponentialMovingAverage = MovingAverage<Double>

/// The exponential moving average of weights of any float type (see ``ExponentialMovingAverage``).
public struct MovingAverage<Scalar: BinaryFloatingPoint & Sendable>: Sendable, Equatable {
    /// The asymptotic decay (reference: 0.999 for VE, 0.9999 for VP).
    public var rate: Double
    public var values: [Scalar]
    public var updates: Int

    public init(rate: Double, initial: [Scalar]) {
        self.rate = rate; values = initial; updates = 0
    }

    /// The decay the next update will use.
    public var nextDecay: Double { Swift.min(rate, Double(1 + updates + 1) / Double(10 + updates + 1)) }

    /// Moves the average towards `parameters`.
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public mutating func update(with parameters: [Scalar]) {
        precondition(parameters.count == values.count, "ExponentialMovingAverage: sizes do not match")
        let a = Scalar(1 - nextDecay)
        updates += 1
        values.withUnsafeMutableBufferPointer { e in
            parameters.withUnsafeBufferPointer { p in
                for i in e.indices { e[i] -= a * (e[i] - p[i]) }
            }
        }
    }
}

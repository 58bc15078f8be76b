import Foundation

/// Uniform dequantization of integer-level data and the likelihood of discrete data it bounds
/// (Theis, van den Oord & Bethge 2016; Ho et al. 2019): with `u ~ U[0, 1)ᴰ`,
/// `log P(k) ≥ E_u[log p(k + u)]` for any density `p` on data space, so the bits per value
/// `−E_u[log₂ p(k + u)] / D` bound the discrete model's `−log₂ P(k) / D` from above. Levels
/// `0 ... L−1` dequantized this way span `[0, L)`; uniform guessing scores `log₂ L` bits per value.
///
///     var rng = RandomSource(seed: 0)
///     let x = try UniformDequantization.sample(levels: digits, topLevel: 16, using: &rng)   // k + u
public enum UniformDequantization {
    /// `k + u` with `u ~ U[0, 1)` per value (one draw of `rng`; row `r` uses stream `(draw, r)`, so
    /// the result does not depend on how rows are split).
    ///
    /// - Throws: `invalidArgument` naming the first value that is not an integer in `0 ... topLevel`.
    public static func sample(levels x: Tensor, topLevel: Int, using rng: inout RandomSource) throws -> Tensor {
        try check(x, topLevel: topLevel)
        let draw = rng.nextDraw(), source = rng
        var out = x
        let d = x.rowSize
        for r in 0 ..< x.rows {
            var s = source.stream(draw: draw, row: r)
            for j in 0 ..< d { out.storage[r * d + j] += Double(s.next() >> 11) * 0x1p-53 }
        }
        return out
    }

    /// 8-bit values `k` (`0 ... 255`) dequantized and scaled as the reference's likelihood does:
    /// `(k + u) / 256` for ``BitsPerDimConvention/unitInterval``, `2 (k + u) / 256 − 1` for
    /// ``BitsPerDimConvention/symmetric`` (`u` as in ``sample(levels:topLevel:using:)``, one draw of `rng`).
    ///
    /// - Throws: `invalidParameter` for values that are not integers in `0 ... 255`, or a convention
    ///   other than those two.
    public static func eightBit(_ x: Tensor, to convention: BitsPerDimConvention, using rng: inout RandomSource) throws -> Tensor {
        guard convention == .unitInterval || convention == .symmetric else {
            throw ScoreSDEError.invalid("convention", convention, must: "unitInterval ([0, 1]) or symmetric ([-1, 1]) for 8-bit dequantization")
        }
        var out = try sample(levels: x, topLevel: 255, using: &rng)
        for i in out.storage.indices {
            let v = out.storage[i] / 256
            out.storage[i] = convention == .symmetric ? 2 * v - 1 : v
        }
        return out
    }

    /// Throws unless every value is an integer in `0 ... topLevel`.
    public static func check(_ x: Tensor, topLevel: Int) throws {
        let top = Double(topLevel)
        if let bad = x.storage.firstIndex(where: { !($0 >= 0 && $0 <= top && $0.rounded() == $0) }) {
            throw ScoreSDEError.invalidArgument("dequantization needs the integer levels 0...\(topLevel), but row \(bad / max(x.rowSize, 1)) has \(x.storage[bad])")
        }
    }
}

/// Per-row likelihoods of discrete data averaged over several uniform dequantizations.
public struct DequantizedLikelihoodResult: Sendable {
    /// `E_u[log p(k + u)]` in nats (data space), one per row, averaged over the draws.
    public let logLikelihood: [Double]
    /// `−E_u[log p(k + u)] / (D ln 2)`: bits per discrete value (upper bounds), one per row.
    public let bitsPerDim: [Double]
    /// The change-of-variables term `Σⱼ log |∂mⱼ/∂vⱼ|` per row, averaged over the draws (part of
    /// ``logLikelihood``; the same for every row of an affine scaling).
    public let logJacobian: [Double]
    /// Number of dequantizations averaged.
    public let draws: Int
    /// Score evaluations of the whole computation.
    public let scoreEvaluations: Int
    public let statistics: ODERunStatistics
}

extension Likelihood {
    /// Bits per value of integer-level data `k` (`0 ... topLevel`), for a model of data scaled by
    /// `scaling` (the model's recorded map, affine or with a logit stage): every row gets `draws`
    /// independent dequantizations `k + u` (``UniformDequantization``), all evaluated in one solve,
    /// `log p(k + u) = log p_model(m) + Σⱼ log |∂mⱼ/∂vⱼ|` at `m` the scaled `k + u`, averaged per row. The
    /// value's own ``convention`` does not apply here (the result is always in data space).
    ///
    /// - Throws: `invalidParameter` for non-integer data or `draws < 1`; what ``evaluate(_:using:)`` throws.
    public func evaluateDequantized(levels x: Tensor, topLevel: Int, scaling: DataScaling, draws: Int,
                                    using rng: inout RandomSource) throws -> DequantizedLikelihoodResult {
        try requireParameter(draws >= 1, name: "draws", value: draws, requirement: ">= 1 (the number of dequantizations)")
        try UniformDequantization.check(x, topLevel: topLevel)
        let n = x.rows, d = x.rowSize
        var all = [Double]()
        all.reserveCapacity(n * d * draws)
        for _ in 0 ..< draws {
            all.append(contentsOf: try UniformDequantization.sample(levels: x, topLevel: topLevel, using: &rng).storage)
        }
        let stacked = scaling.toModel(try Tensor(shape: [n * draws] + x.rowShape, storage: all))
        // Model-space log-likelihoods whatever this value's convention (the scaling's Jacobian is
        // added below, once).
        var modelSpace = self
        modelSpace.convention = .continuous
        let run = try modelSpace.evaluate(stacked, using: &rng)
        let logJacobian = scaling.logJacobian(atModel: stacked)
        var ll = [Double](repeating: 0, count: n), jacobian = ll
        for k in 0 ..< draws {
            for r in 0 ..< n {
                ll[r] += (run.logLikelihood[k * n + r] + logJacobian[k * n + r]) / Double(draws)
                jacobian[r] += logJacobian[k * n + r] / Double(draws)
            }
        }
        return DequantizedLikelihoodResult(logLikelihood: ll, bitsPerDim: ll.map { -$0 / (Double(d) * M_LN2) }, logJacobian: jacobian, draws: draws,
                                           scoreEvaluations: run.scoreEvaluations, statistics: run.statistics)
    }
}

/// Mean, median, maximum and tail of per-sample bits/dim, and whether a few samples dominate the mean.
///
///     let s = LikelihoodSummary(bitsPerDim: r.bitsPerDim, threshold: log2(17))
///     if s.tailDominated { print("warning: the worst \(s.tailCount) samples move the mean by \(s.tailShift)") }
public struct LikelihoodSummary: Sendable, Equatable {
    public let count: Int
    public let mean: Double
    public let median: Double
    public let max: Double
    /// Sample standard deviation and standard error of the mean (NaN for one sample).
    public let std: Double
    public let standardError: Double
    /// The threshold counted against (e.g. `log₂ L`, uniform guessing over `L` levels) and how many exceed it.
    public let threshold: Double
    public let countAboveThreshold: Int
    /// The worst `tailCount = max(1, ⌈n / 100⌉)` samples (the top 1%) and how much they raise the
    /// mean: `mean − mean(without them)`.
    public let tailCount: Int
    public let tailShift: Double
    /// Standard error of the mean of the other samples.
    public let restStandardError: Double

    public init(bitsPerDim v: [Double], threshold: Double) {
        count = v.count
        self.threshold = threshold
        let estimate = MeanEstimate(v)
        (mean, std, standardError) = (estimate.mean, estimate.std, estimate.standardError)
        let sorted = v.sorted()
        median = sorted.isEmpty ? .nan : (sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2)
        max = sorted.last ?? .nan
        countAboveThreshold = v.filter { $0 > threshold }.count
        tailCount = Swift.max(1, (v.count + 99) / 100)
        let rest = Array(sorted.dropLast(tailCount))
        if rest.count > 1 {
            let r = MeanEstimate(rest)
            tailShift = mean - r.mean
            restStandardError = r.standardError
        } else { tailShift = 0; restStandardError = .nan }
    }

    /// Whether the top 1% of samples move the mean by more than two standard errors of the rest
    /// (and by more than 1% of it): the mean then describes a few points, not the data — report
    /// the median and the tail next to it.
    public var tailDominated: Bool {
        guard restStandardError.isFinite else { return false }
        return tailShift > 2 * restStandardError && tailShift > 0.01 * abs(mean - tailShift)
    }
}

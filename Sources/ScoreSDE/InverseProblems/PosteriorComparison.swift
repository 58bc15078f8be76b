/// How conditional samples of a Gaussian-mixture prior compare with the exact posterior, input
/// by input, next to the same statistics of as many exact posterior samples (the Monte-Carlo
/// floor): the total-variation distance between mode weights, and the error of the mean.
///
/// The posterior of a Gaussian mixture given a linear-Gaussian measurement is again a mixture,
/// in closed form (Bishop 2006, §2.3.3, per component; weights by the evidence of each component).
///
///     let m = try LinearMeasurement(matrix: [[1, 1]], observation: [[3]])
///     let c = try PosteriorComparison(prior: .ring(), measurement: m, samples: x, perInput: 1000, seed: 0,
///                                     basis: LinearMeasurement.nullSpaceBasis(of: m.matrix))
///     print(c.modeWeightTV, c.modeWeightTVFloor)
public struct PosteriorComparison: Sendable {
    /// The comparison for one input.
    public struct Input: Sendable, Equatable {
        /// Total-variation distance between the posterior's component weights and the fractions of
        /// samples assigned to each component (assignment by the exact posterior's responsibilities),
        /// and the same for exact posterior samples.
        public let modeWeightTV: Double, modeWeightTVFloor: Double
        /// ‖sample mean − posterior mean‖, and the same for exact posterior samples.
        public let meanError: Double, meanErrorFloor: Double
    }

    /// One comparison per input.
    public let inputs: [Input]
    /// The exact posterior of each input.
    public let posteriors: [FullCovarianceMixture]
    /// Exact posterior samples, `k` per input, `[n·k, D]` (for plots).
    public let exactSamples: Tensor

    /// Compares `samples` (`k` rows per input, in order) with the exact posteriors of `prior` given
    /// each input's observation (row `i·k` of `measurement`, or its only row). Mode weights are
    /// assigned in the coordinates `Bᵀ x` of the orthonormal `basis` B (rows; default: all of x):
    /// a noise-free measurement makes the posterior singular along the measured directions, so
    /// pass ``LinearMeasurement/nullSpaceBasis(of:)`` then. Exact samples are drawn from `seed`.
    ///
    /// - Throws: ``ScoreSDEError/shapeMismatch(_:)`` when the samples do not have `k` rows per
    ///   input or the prior's dimension; errors of the posterior (a singular measurement).
    public init(prior: GaussianMixture, measurement: LinearMeasurement, samples: Tensor, perInput k: Int, seed: UInt64,
                basis: [[Double]]? = nil) throws {
        guard k >= 1, samples.rows >= k, samples.rows % k == 0, samples.rowSize == prior.dimension else {
            throw ScoreSDEError.shapeMismatch("PosteriorComparison: \(samples.rows) samples of \(samples.rowSize) values are not \(k) per input of dimension \(prior.dimension)")
        }
        var rng = RandomSource(seed: seed ^ 0x5EED_0F_E8AC7)
        var inputs = [Input](), posteriors = [FullCovarianceMixture](), exact = [Double]()
        for i in 0 ..< samples.rows / k {
            let posterior = try measurement.posterior(of: prior, row: measurement.observation.rows == 1 ? 0 : i * k)
            posteriors.append(posterior)
            let drawn = samples.rows(i * k ..< (i + 1) * k).flattenedRows()
            let reference = posterior.sample(count: k, using: &rng)
            exact.append(contentsOf: reference.storage)
            let assigner = try basis.map { try posterior.projected(onto: $0) } ?? posterior
            func tv(_ x: Tensor) throws -> Double {
                var counts = [Double](repeating: 0, count: posterior.componentCount)
                let points = try basis.map { try x.projected(onto: $0) } ?? x
                for a in try assigner.assignments(points) { counts[a] += 1 }
                return zip(counts, posterior.weights).reduce(0) { $0 + abs($1.0 / Double(k) - $1.1) } / 2
            }
            func meanError(_ x: Tensor) -> Double {
                let d = x.rowSize, truth = posterior.mean
                var err = 0.0
                for j in 0 ..< d {
                    var m = 0.0
                    for r in 0 ..< x.rows { m += x.storage[r * d + j] }
                    err += (m / Double(x.rows) - truth[j]) * (m / Double(x.rows) - truth[j])
                }
                return err.squareRoot()
            }
            inputs.append(Input(modeWeightTV: try tv(drawn), modeWeightTVFloor: try tv(reference),
                                meanError: meanError(drawn), meanErrorFloor: meanError(reference)))
        }
        self.inputs = inputs
        self.posteriors = posteriors
        exactSamples = try Tensor(shape: [samples.rows, samples.rowSize], storage: exact)
    }

    private func average(_ f: (Input) -> Double) -> Double { inputs.map(f).reduce(0, +) / Double(inputs.count) }
    /// Averages over the inputs.
    public var modeWeightTV: Double { average(\.modeWeightTV) }
    public var modeWeightTVFloor: Double { average(\.modeWeightTVFloor) }
    public var meanError: Double { average(\.meanError) }
    public var meanErrorFloor: Double { average(\.meanErrorFloor) }
}

extension LinearMeasurement {
    /// An orthonormal basis (as rows) of the null space of the `m × D` matrix `a`, by Gram–Schmidt
    /// (twice, for accuracy) on the rows of `a` and then the unit vectors: the `D − rank(a)`
    /// directions a noise-free measurement leaves free. Empty for an empty matrix.
    public static func nullSpaceBasis(of a: [[Double]]) -> [[Double]] {
        guard let d = a.first?.count else { return [] }
        var rowBasis = [[Double]](), null = [[Double]]()
        func orthogonalized(_ v: [Double], against basis: [[Double]]) -> [Double]? {
            var v = v
            for _ in 0 ..< 2 {
                for b in basis {
                    let dot = zip(v, b).reduce(0.0) { $0 + $1.0 * $1.1 }
                    for i in 0 ..< d { v[i] -= dot * b[i] }
                }
            }
            let norm = v.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
            return norm > 1e-8 ? v.map { $0 / norm } : nil
        }
        for row in a { if let v = orthogonalized(row, against: rowBasis) { rowBasis.append(v) } }
        for j in 0 ..< d where null.count < d - rowBasis.count {
            let e = (0 ..< d).map { $0 == j ? 1.0 : 0.0 }
            if let v = orthogonalized(e, against: rowBasis + null) { null.append(v) }
        }
        return null
    }
}

extension Tensor {
    /// `Bᵀ x` of each flat row for the rows `B` of `basis` (each of length `rowSize`): shape `[rows, basis.count]`.
    public func projected(onto basis: [[Double]]) throws -> Tensor {
        let d = rowSize
        guard basis.allSatisfy({ $0.count == d }) else {
            throw ScoreSDEError.shapeMismatch("projected(onto:): basis vectors must have \(d) values (the row size)")
        }
        var storage = [Double]()
        storage.reserveCapacity(rows * basis.count)
        for r in 0 ..< rows {
            for b in basis { storage.append((0 ..< d).reduce(0.0) { $0 + b[$1] * self.storage[r * d + $1] }) }
        }
        return try Tensor(shape: [rows, basis.count], storage: storage)
    }

    /// The rows as flat vectors: shape `[rows, rowSize]`.
    func flattenedRows() -> Tensor { Tensor(uncheckedShape: [rows, rowSize], storage: storage) }
}

extension FullCovarianceMixture {
    /// The law of `Bᵀ x` for the rows `B` of `basis` (orthonormal rows give the mixture in those
    /// coordinates): means `Bᵀ μ_k`, covariances `Bᵀ Σ_k B`.
    public func projected(onto basis: [[Double]]) throws -> FullCovarianceMixture {
        let d = dimension
        guard basis.allSatisfy({ $0.count == d }) else {
            throw ScoreSDEError.shapeMismatch("projected(onto:): basis vectors must have \(d) values (the mixture's dimension)")
        }
        let means = self.means.map { mu in basis.map { b in (0 ..< d).reduce(0.0) { $0 + b[$1] * mu[$1] } } }
        let covariances = self.covariances.map { c in
            basis.map { a in
                let ca = (0 ..< d).map { i in (0 ..< d).reduce(0.0) { $0 + c[i][$1] * a[$1] } }
                return basis.map { b in (0 ..< d).reduce(0.0) { $0 + b[$1] * ca[$1] } }
            }
        }
        return try FullCovarianceMixture(weights: weights, means: means, covariances: covariances)
    }
}

extension ColorMixing {
    /// The grey images colour ones `[n, C, H, W]` (or `[n, C·H·W]`) show under this mixing:
    /// `Σ_c M_c0 x_c / Σ_c M_c0` per pixel, shaped `[n, H·W]` — the channel mean
    /// `(R + G + B) / 3` for ``reference`` (as ``ImagePatches/toGrey(_:replicate:)``).
    public func grey(of colour: Tensor) throws -> Tensor {
        let c = channels
        guard colour.rowSize % c == 0, colour.rowSize > 0 else {
            throw ScoreSDEError.shapeMismatch("grey(of:): rows of \(colour.rowSize) values are not \(c) channels")
        }
        let hw = colour.rowSize / c, gain = greyGain, col0 = matrix.map { $0[0] }
        var grey = Tensor(zeros: [colour.rows, hw])
        for r in 0 ..< colour.rows {
            for p in 0 ..< hw {
                var acc = 0.0
                for ch in 0 ..< c { acc += col0[ch] * colour.storage[r * c * hw + ch * hw + p] }
                grey.storage[r * hw + p] = acc / gain
            }
        }
        return grey
    }
}

import Foundation

// MARK: - Inpainting

/// Inpainting: the coordinates where `mask == 1` are observed (`y = x₀` there, optionally with
/// Gaussian noise `noiseStd`); after every update they are replaced by a sample of the
/// forward-noised observation at the current time, `m(t) y + s(t) z` (Song et al. 2021, App. I.2;
/// score_sde `get_pc_inpainter`). With `noiseStd > 0` the noise-consistent rule of
/// ``ConstraintConvention`` applies: `m y + √(s² − m²σ_y²) z` while `s(t) ≥ m(t) σ_y`, free afterwards.
///
/// Shapes: `observation` and `mask` have one row shared by all samples or one row per sample, with
/// as many values per row as the samples (layout row-major: `[C, H, W]` images or flat vectors).
/// Values of `observation` where `mask == 0` are ignored. `mask` holds exactly 0 or 1.
///
/// Known bias: replacement conditions the unknown coordinates on a *noisy* copy of the known ones
/// at every time, not on `x₀ = y`; when known and unknown coordinates are dependent (mixture
/// modes), mode weights are biased (measured in `InverseProblemTests`). `PCSampler.resampling`
/// (RePaint) reduces it.
public struct Inpainting: SamplingConstraint {
    public let observation: Tensor
    public let mask: Tensor
    public let noiseStd: Double
    public let convention: ConstraintConvention

    /// - Throws: `shapeMismatch` when observation and mask rows differ in size, `invalidArgument`
    ///   for mask values other than 0/1 or a negative noise std, `nonFinite` for NaN/Inf.
    public init(observation: Tensor, mask: Tensor, noiseStd: Double = 0, convention: ConstraintConvention = .paper) throws {
        try observation.checkFinite("the inpainting observation")
        try mask.checkFinite("the inpainting mask")
        guard observation.rowSize == mask.rowSize else {
            throw ScoreSDEError.shapeMismatch("the mask has rows of \(mask.rowSize) values (shape \(mask.rowShape)) but the observation has \(observation.rowSize) (shape \(observation.rowShape))")
        }
        if let i = mask.storage.firstIndex(where: { $0 != 0 && $0 != 1 }) {
            throw ScoreSDEError.invalidArgument("the mask must hold only 0 (unknown) and 1 (known); found \(mask.storage[i]) at row \(i / max(mask.rowSize, 1)), column \(i % max(mask.rowSize, 1))")
        }
        try checkNoiseStd(noiseStd)
        self.observation = observation; self.mask = mask; self.noiseStd = noiseStd; self.convention = convention
    }

    /// Inpainting of the coordinates `known` of flat rows (`dimension` values), one observation for every sample.
    public init(known indices: [Int], values: [Double], dimension: Int, noiseStd: Double = 0,
                convention: ConstraintConvention = .paper) throws {
        guard dimension >= 1 else { throw ScoreSDEError.invalid("dimension", dimension, must: ">= 1") }
        guard indices.count == values.count else {
            throw ScoreSDEError.shapeMismatch("\(indices.count) known indices but \(values.count) values")
        }
        guard indices.allSatisfy({ $0 >= 0 && $0 < dimension }), Set(indices).count == indices.count else {
            throw ScoreSDEError.invalid("known", indices, must: "distinct and in 0..<\(dimension) (the known coordinates)")
        }
        var y = [Double](repeating: 0, count: dimension), m = y
        for (i, v) in zip(indices, values) { y[i] = v; m[i] = 1 }
        try self.init(observation: Tensor(shape: [1, dimension], storage: y), mask: Tensor(shape: [1, dimension], storage: m),
                      noiseStd: noiseStd, convention: convention)
    }

    /// The equivalent linear measurement (a selection matrix), for exact posteriors and
    /// measurement guidance. Needs one mask shared by every sample.
    public func measurement() throws -> LinearMeasurement {
        guard mask.rows == 1 else { throw ScoreSDEError.invalidArgument("a linear measurement needs one mask shared by all samples (got \(mask.rows) rows)") }
        let known = mask.storage.indices.filter { mask.storage[$0] == 1 }
        guard !known.isEmpty else { throw ScoreSDEError.invalidArgument("the mask has no known values") }
        var y = [Double]()
        for r in 0 ..< observation.rows { for i in known { y.append(observation.storage[r * observation.rowSize + i]) } }
        return try LinearMeasurement(matrix: selectionMatrix(known, dimension: mask.rowSize),
                                     observation: Tensor(shape: [observation.rows, known.count], storage: y), noiseStd: noiseStd)
    }

    public func validate(_ x: Tensor) throws {
        try checkBroadcastRows(observation, "the inpainting observation", rowSize: x.rowSize, state: x)
        try checkBroadcastRows(mask, "the inpainting mask", rowSize: x.rowSize, state: x)
    }

    /// For a noisy observation after the hand-over time: `(y − x/m) / (m (σ_y² − s²/m²))` in the known coordinates.
    public func scoreAdjustment(_ x: Tensor, at t: Double, sde: any ForwardSDE) throws -> Tensor? {
        guard noiseStd > 0 else { return nil }
        let (m, s) = sde.marginal(at: t)
        guard pinningStd(meanScale: m, std: s, tau: noiseStd) == nil else { return nil }
        let precision = 1 / (m * (noiseStd * noiseStd - s * s / (m * m)))
        let d = x.rowSize
        var out = Tensor(zeros: x.shape)
        for r in 0 ..< x.rows {
            let o = (observation.rows == 1 ? 0 : r) * d, k = (mask.rows == 1 ? 0 : r) * d
            for j in 0 ..< d where mask.storage[k + j] == 1 {
                out.storage[r * d + j] = (observation.storage[o + j] - x.storage[r * d + j] / m) * precision
            }
        }
        return out
    }

    public func apply(_ x: inout Tensor, mean: inout Tensor, context: ConstraintContext, using rng: inout RandomSource) throws {
        let d = x.rowSize, n = x.rows
        let reference = convention == .reference
        let (m, s) = context.sde.marginal(at: context.noiseTime(reference))
        let setMean = context.phase == .predictor || context.phase == .final
        // score_sde's initial state: the observation itself in the known coordinates.
        if context.phase == .start && reference {
            x.storage.withUnsafeMutableBufferPointer { xp in
                for r in 0 ..< n {
                    let o = (observation.rows == 1 ? 0 : r) * d, k = (mask.rows == 1 ? 0 : r) * d
                    for j in 0 ..< d where mask.storage[k + j] == 1 { xp[r * d + j] = observation.storage[o + j] }
                }
            }
            return
        }
        let obsRows = observation.rows, maskRows = mask.rows
        guard let extra = pinningStd(meanScale: m, std: s, tau: noiseStd) else {
            guard let jump = ReleasedJump(context, tau: noiseStd) else { return }
            let z = Tensor.standardNormal(shape: x.shape, using: &rng)
            for r in 0 ..< n {
                let yr = (obsRows == 1 ? 0 : r) * d, mr = (maskRows == 1 ? 0 : r) * d
                for j in 0 ..< d where mask.storage[mr + j] == 1 {
                    x.storage[r * d + j] += jump.delta(x.storage[r * d + j], observation.storage[yr + j], z.storage[r * d + j])
                }
            }
            return
        }
        let draw = rng.nextDraw(), source = rng
        observation.storage.withUnsafeBufferPointer { yp in
            mask.storage.withUnsafeBufferPointer { mp in
                x.storage.withUnsafeMutableBufferPointer { xp in
                    mean.storage.withUnsafeMutableBufferPointer { meanp in
                        let yb = yp.baseAddress!, mb = mp.baseAddress!, xb = xp.baseAddress!, meanb = meanp.baseAddress!
                        Tensor.forEachNoiseBlock(rows: n, rowSize: d, draw: draw, source) { range, z in
                            for r in range {
                                let yr = yb + (obsRows == 1 ? 0 : r) * d, mr = mb + (maskRows == 1 ? 0 : r) * d
                                let xr = xb + r * d, meanr = meanb + r * d, zr = z + (r - range.lowerBound) * d
                                for j in 0 ..< d {
                                    if mr[j] == 1 {
                                        xr[j] = m * yr[j] + extra * zr[j]
                                        if setMean { meanr[j] = m * yr[j] }
                                    } else if setMean && reference {
                                        meanr[j] = xr[j]
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

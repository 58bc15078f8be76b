import Foundation

// MARK: - Colorization

/// An orthonormal `C × C` channel-mixing matrix `M`: `decouple(x)_j = Σ_i x_i M_ij` per pixel,
/// `couple(d)_j = Σ_i d_i M⁻¹_ij`. Decoupled channel 0 is the one a grey image observes.
public struct ColorMixing: Sendable, Equatable {
    public let matrix: [[Double]]
    /// `M⁻¹` (computed, not assumed to be `Mᵀ`, as score_sde does).
    public let inverse: [[Double]]
    public var channels: Int { matrix.count }

    /// - Throws: `shapeMismatch` unless square, `nonFinite` for NaN/Inf, `invalidParameter` (`matrix`) unless
    ///   `MᵀM = I` to within `tolerance` in every entry (score_sde's matrix is orthonormal to ~1e-7).
    public init(_ matrix: [[Double]], tolerance: Double = 1e-5) throws {
        let (r, c, v) = try validatedMatrix(matrix, "the mixing matrix")
        guard r == c else { throw ScoreSDEError.shapeMismatch("the mixing matrix must be square (got \(r) × \(c))") }
        let mtm = Dense.multiply(Dense.transpose(v, r, r), v, r, r, r)
        for i in 0 ..< r {
            for j in 0 ..< r where abs(mtm[i * r + j] - (i == j ? 1 : 0)) > tolerance {
                throw ScoreSDEError.invalid("matrix", "a matrix whose MᵀM has entry [\(i)][\(j)] = \(mtm[i * r + j])", must: "orthonormal (MᵀM = I) to within tolerance \(tolerance)")
            }
        }
        guard let inv = Dense.inverse(v, r) else { throw ScoreSDEError.invalidArgument("the mixing matrix is singular") }
        self.matrix = matrix
        self.inverse = matrixRows(inv, r, r)
    }

    /// score_sde's matrix (REFERENCE 1.8): column 0 is `(1,1,1)/√3`, so decoupled channel 0 is
    /// `(R+G+B)/√3` and a grey image `g` (replicated over channels) decouples to `√3 g`.
    ///
    /// Built with `try!` from the literals of `referenceMatrix` (below), which are square, finite and
    /// orthonormal to ~1e-7 (within the default tolerance 1e-5), so it cannot throw; a test
    /// (`TypedErrorTests`) checks that `ColorMixing(referenceMatrix)` does not throw.
    public static let reference = try! ColorMixing(referenceMatrix)

    /// The entries of ``reference``, score_sde's float32 values.
    static let referenceMatrix: [[Double]] = [
        [5.7735014e-01, -8.1649649e-01, 4.7008697e-08],
        [5.7735026e-01, 4.0824834e-01, 7.0710671e-01],
        [5.7735026e-01, 4.0824822e-01, -7.0710683e-01],
    ]

    /// `Σ_i M_i0`: decoupled channel 0 of a grey value 1 replicated over channels.
    public var greyGain: Double { matrix.reduce(0) { $0 + $1[0] } }
}

/// Colorization (Song et al. 2021, App. I.3; score_sde `get_pc_colorizer`): samples are `[C, H, W]`
/// images (row-major, `C` = the mixing matrix's size); a grey image `g` (`H × W` values per row)
/// observes decoupled channel 0, `d₀ = Σ_c M_c0 x_c = g · Σ_c M_c0` per pixel (= `√3 g` with the
/// reference matrix). After every update each pixel is decoupled, `d₀` is replaced by a sample of
/// the forward-noised observation, and the pixel is coupled back — replacement in a rotated basis,
/// i.e. the projection of ``LinearMeasurementConstraint`` for the per-pixel measurement row
/// `(M_00, …, M_C−1,0)`. `noiseStd` is the noise std of the grey image `g`.
public struct Colorization: SamplingConstraint {
    public let grey: Tensor
    public let mixing: ColorMixing
    public let noiseStd: Double
    public let convention: ConstraintConvention

    /// - Parameters:
    ///   - grey: `[1 or n, H, W]` (or any row shape of `H·W` values), finite.
    ///   - mixing: the channel-mixing matrix (score_sde's by default).
    ///   - noiseStd: the noise std of the grey image (0: exact).
    ///   - convention: when the observation is noised (the paper's or score_sde's code).
    public init(grey: Tensor, mixing: ColorMixing = .reference, noiseStd: Double = 0,
                convention: ConstraintConvention = .paper) throws {
        try grey.checkFinite("the grey image")
        try checkNoiseStd(noiseStd)
        guard mixing.greyGain != 0 else {
            throw ScoreSDEError.invalidArgument("the mixing matrix's column 0 sums to 0: a grey image carries no information about decoupled channel 0")
        }
        self.grey = grey; self.mixing = mixing; self.noiseStd = noiseStd; self.convention = convention
    }

    /// Pixels per image.
    public var pixels: Int { grey.rowSize }

    /// The equivalent linear measurement on flattened `[C, H, W]` rows: row `p` has `M_c0` at
    /// column `c·HW + p`; observation `g_p Σ_c M_c0`, noise std `noiseStd · |Σ_c M_c0|`.
    public func measurement() throws -> LinearMeasurement {
        let c = mixing.channels, hw = pixels, gain = mixing.greyGain
        var a = [[Double]](repeating: [Double](repeating: 0, count: c * hw), count: hw)
        for p in 0 ..< hw { for ch in 0 ..< c { a[p][ch * hw + p] = mixing.matrix[ch][0] } }
        return try LinearMeasurement(matrix: a, observation: Tensor(shape: [grey.rows, hw], storage: grey.storage.map { $0 * gain }),
                                     noiseStd: noiseStd * abs(gain))
    }

    public func validate(_ x: Tensor) throws {
        let c = mixing.channels
        guard x.rowSize == c * pixels else {
            throw ScoreSDEError.shapeMismatch("colorization needs samples of \(c) × \(pixels) = \(c * pixels) values ([C, H, W] with C = \(c) and the grey image's \(pixels) pixels); the samples have \(x.rowSize) (shape \(x.rowShape))")
        }
        guard grey.rows == 1 || grey.rows == x.rows else {
            throw ScoreSDEError.shapeMismatch("the grey image has \(grey.rows) rows; give 1 (shared by every sample) or one per sample (\(x.rows))")
        }
    }

    /// For a noisy grey image after the hand-over time: the exact likelihood term along decoupled channel 0.
    public func scoreAdjustment(_ x: Tensor, at t: Double, sde: any ForwardSDE) throws -> Tensor? {
        let gain = mixing.greyGain, tau = noiseStd * abs(gain)
        guard tau > 0 else { return nil }
        let (m, s) = sde.marginal(at: t)
        guard pinningStd(meanScale: m, std: s, tau: tau) == nil else { return nil }
        let precision = 1 / (m * (tau * tau - s * s / (m * m)))
        let c = mixing.channels, hw = pixels, d = c * hw
        let col0 = mixing.matrix.map { $0[0] }
        var out = Tensor(zeros: x.shape)
        for r in 0 ..< x.rows {
            let g = (grey.rows == 1 ? 0 : r) * hw
            for p in 0 ..< hw {
                var d0 = 0.0
                for ch in 0 ..< c { d0 += x.storage[r * d + ch * hw + p] * col0[ch] }
                let w = (grey.storage[g + p] * gain - d0 / m) * precision
                for ch in 0 ..< c { out.storage[r * d + ch * hw + p] = w * col0[ch] }
            }
        }
        return out
    }

    public func apply(_ x: inout Tensor, mean: inout Tensor, context: ConstraintContext, using rng: inout RandomSource) throws {
        let c = mixing.channels, hw = pixels, n = x.rows, d = c * hw
        let reference = convention == .reference
        let col0 = mixing.matrix.map { $0[0] }, back = mixing.inverse[0]
        let gain = mixing.greyGain, greyRows = grey.rows
        if context.phase == .start && reference {
            // score_sde: x = couple(decouple(gray)·mask + decouple(prior·(1 − mask))), mask = [1, 0, …]
            // over channels: channel 0 of the prior is zeroed *before* decoupling.
            let mm = mixing.matrix, inv = mixing.inverse
            for r in 0 ..< n {
                let g = (greyRows == 1 ? 0 : r) * hw
                for p in 0 ..< hw {
                    var dec = [Double](repeating: 0, count: c)
                    for j in 0 ..< c { for i in 1 ..< c { dec[j] += x.storage[r * d + i * hw + p] * mm[i][j] } }
                    dec[0] += grey.storage[g + p] * gain
                    for j in 0 ..< c { x.storage[r * d + j * hw + p] = (0 ..< c).reduce(0.0) { $0 + dec[$1] * inv[$1][j] } }
                }
            }
            return
        }
        let (m, s) = context.sde.marginal(at: context.noiseTime(reference))
        guard let extra = pinningStd(meanScale: m, std: s, tau: noiseStd * abs(gain)) else {
            guard let jump = ReleasedJump(context, tau: noiseStd * abs(gain)) else { return }
            let z = Tensor.standardNormal(shape: [n, hw], using: &rng)
            for r in 0 ..< n {
                let g = (greyRows == 1 ? 0 : r) * hw
                for p in 0 ..< hw {
                    var d0 = 0.0
                    for ch in 0 ..< c { d0 += x.storage[r * d + ch * hw + p] * col0[ch] }
                    let delta = jump.delta(d0, grey.storage[g + p] * gain, z.storage[r * hw + p])
                    for ch in 0 ..< c { x.storage[r * d + ch * hw + p] += delta * back[ch] }
                }
            }
            return
        }
        let setMean = context.phase == .predictor || context.phase == .final
        let draw = rng.nextDraw(), source = rng
        grey.storage.withUnsafeBufferPointer { gp in
            x.storage.withUnsafeMutableBufferPointer { xp in
                mean.storage.withUnsafeMutableBufferPointer { meanp in
                    let gb = gp.baseAddress!, xb = xp.baseAddress!, meanb = meanp.baseAddress!
                    Tensor.forEachNoiseBlock(rows: n, rowSize: hw, draw: draw, source) { range, z in
                        for r in range {
                            let gr = gb + (greyRows == 1 ? 0 : r) * hw, xr = xb + r * d, meanr = meanb + r * d
                            let zr = z + (r - range.lowerBound) * hw
                            for p in 0 ..< hw {
                                let target = m * gr[p] * gain
                                var d0 = 0.0
                                for ch in 0 ..< c { d0 += xr[ch * hw + p] * col0[ch] }
                                let delta = target + extra * zr[p] - d0
                                for ch in 0 ..< c { xr[ch * hw + p] += delta * back[ch] }
                                guard setMean else { continue }
                                if reference {
                                    // x_mean = couple(decouple(x)·(1 − mask) + m·decouple(gray)·mask)
                                    for ch in 0 ..< c { meanr[ch * hw + p] = xr[ch * hw + p] - extra * zr[p] * back[ch] }
                                } else {
                                    var e0 = 0.0
                                    for ch in 0 ..< c { e0 += meanr[ch * hw + p] * col0[ch] }
                                    for ch in 0 ..< c { meanr[ch * hw + p] += (target - e0) * back[ch] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

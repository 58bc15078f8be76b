import Foundation

/// Where in a sampler's loop a constraint is applied.
public enum ConstraintPhase: String, Sendable, CaseIterable {
    /// Once, on the initial state at `grid.times[0]`, before the first update.
    case start
    /// After a corrector update (its noise-free mean is not used by the sampler).
    case corrector
    /// After a predictor update; `mean` is the update's noise-free mean (the output after the last step).
    case predictor
    /// On the final Tweedie estimate (`FinalDenoising.tweedie`); `x` and `mean` are both the estimate, at time 0.
    case final
    /// After a RePaint jump (``Resampling``) carried the state forward from `updateTime` back to `time`
    /// with the unconditional forward kernel (`mean` is not used).
    case jump
}

/// What a constraint is told about the update it follows.
public struct ConstraintContext: Sendable {
    public let phase: ConstraintPhase
    /// The time the state represents now: `next` after a predictor step from `t` to `next`, `t`
    /// after a corrector step at `t`, the grid's first time at `.start`, 0 at `.final`.
    public let time: Double
    /// The time the update evaluated the score at (`t` for a predictor step `t → next`): the time
    /// score_sde's inpainter and colorizer noise the observation at.
    public let updateTime: Double
    /// Index of the grid interval (0 at `.start`) and the number of intervals.
    public let step: Int, steps: Int
    /// The forward SDE being reversed (its `marginal(at:)` noises observations).
    public let sde: any ForwardSDE

    public init(phase: ConstraintPhase, time: Double, updateTime: Double, step: Int, steps: Int, sde: any ForwardSDE) {
        self.phase = phase; self.time = time; self.updateTime = updateTime; self.step = step; self.steps = steps; self.sde = sde
    }

    /// The time a replacement constraint noises its observation at: `time` (paper), or
    /// `updateTime` (score_sde) — except after a RePaint jump, which has no reference form.
    public func noiseTime(_ reference: Bool) -> Double { reference && phase != .jump ? updateTime : time }
}

/// A hook a ``PCSampler`` applies to the whole population after every corrector and predictor
/// update (and once at the start): how inpainting, colorization and linear inverse problems
/// condition an unconditional score model. Only the score is needed, so constraints work with
/// every predictor and corrector and with exact and learned models alike.
///
///     let sampler = PCSampler(sde: sde, score: model, grid: grid, predictor: ReverseDiffusion(),
///                             corrector: try Langevin(snr: 0.16),
///                             constraint: try Inpainting(observation: y, mask: mask))
///
/// Write your own as a small `Sendable` struct. `x` is the noisy state; `mean` the update's
/// noise-free mean, which the sampler returns after the last step (`FinalDenoising.lastPredictorMean`).
public protocol SamplingConstraint: Sendable {
    /// Checks that the constraint fits the sampler's state (rows and values per row); called once
    /// before sampling.
    func validate(_ x: Tensor) throws
    /// Conditions `x` (and `mean`) after an update.
    func apply(_ x: inout Tensor, mean: inout Tensor, context: ConstraintContext, using rng: inout RandomSource) throws
    /// A closed-form term `∇ₓ log p(y | x_t)` the sampler adds to the score its *corrector* sees
    /// at `t` (on the whole population), or nil (the default): Langevin MCMC must target
    /// `p_t(x | y)`. Predictors keep the plain score. The replacement constraints use it for noisy
    /// observations after their hand-over time (see ``ConstraintConvention``).
    func scoreAdjustment(_ x: Tensor, at t: Double, sde: any ForwardSDE) throws -> Tensor?
}

extension SamplingConstraint {
    public func validate(_ x: Tensor) throws {}
    public func scoreAdjustment(_ x: Tensor, at t: Double, sde: any ForwardSDE) throws -> Tensor? { nil }
}

/// A reverse process whose score includes a constraint's closed-form likelihood term
/// (``SamplingConstraint/scoreAdjustment(_:at:sde:)``): what ``PCSampler`` passes to its corrector
/// when given a constraint. Score evaluations are counted by the base process.
public struct ConditionedReverseProcess<Base: ReverseProcess>: ReverseProcess {
    public let base: Base
    public let constraint: (any SamplingConstraint)?

    public init(base: Base, constraint: (any SamplingConstraint)?) { self.base = base; self.constraint = constraint }

    public var sde: Base.SDE { base.sde }
    public var scoreEvaluations: Int { base.scoreEvaluations }
    public var modelPasses: Int { base.modelPasses }
    public func withScratch<R>(_ body: (inout Tensor) throws -> R) rethrows -> R { try base.withScratch(body) }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        var s = try base.score(x, at: t)
        if let constraint, let term = try constraint.scoreAdjustment(x, at: t, sde: base.sde) {
            guard term.count == s.count else { throw ScoreSDEError.shapeMismatch("the constraint's score term has shape \(term.shape) for input \(x.shape)") }
            s.add(term)
        }
        return s
    }
}

/// Which of score_sde's two conventions a replacement constraint follows (REFERENCE 1.11 quirk 5).
public enum ConstraintConvention: String, Sendable, CaseIterable {
    /// Paper-faithful (default): the observation is noised at the time the state represents after
    /// the update (`next` after a predictor step), the noise-free mean keeps the update's mean in
    /// the unknown coordinates and gets the observation's noise-free mean `m(t) y` in the known
    /// ones, and the initial state gets a forward-noised observation at `T`.
    case paper
    /// score_sde's `get_pc_inpainter` / `get_pc_colorizer`: the observation is noised at the time
    /// the update was evaluated at (`t`, also after the predictor step `t → next`); the mean is
    /// built from the *updated noisy* `x` (`x_mean = x·(1−mask) + m(t)·y·mask`), so the returned
    /// sample carries the last step's noise in the unknown coordinates; the initial state holds the
    /// observation itself, un-noised, in the known coordinates.
    case reference
}

// MARK: - The noise-consistent pinning rule shared by every replacement constraint

/// A known coordinate `v` with observation `y = v₀ + τ ε` is replaced at a time with kernel
/// `(m, s)` by `m y + √(s² − m² τ²) z` whenever `s ≥ m τ`: given `v₀`, that value has exactly the
/// law of the forward-noised coordinate `m v₀ + s z` (the measurement's noise is part of the
/// forward noise). With `τ = 0` this is score_sde's replacement `m y + s z` at every time.
///
/// Observing `y` is thereby identified with observing the forward process at the time `t*` where
/// `s(t*) = m(t*) τ`: `y = v(t*) / m(t*)` (the joint law of `(x₀, y)` is unchanged, so is the
/// posterior). For `t < t*` the constraint stops replacing, and two exact facts take over, both
/// from the Markov property of the forward process (`x_next → x_t → x_t*`):
/// * the reverse transition needs no conditioning, `p(x_next | x_t, y) = p(x_next | x_t)`:
///   predictors use the plain score;
/// * the likelihood of the state is Gaussian, `y | x_t ~ N(v_t / m, τ² − s²/m²)`, so correctors
///   (which must leave `p_t(x | y)` invariant) get `∇ₓ log p(y | x_t) = (y − v/m) / (m (τ² − s²/m²))`
///   along the measured direction (``SamplingConstraint/scoreAdjustment(_:at:sde:)``).
/// The only approximation left is replacement's own, before `t*`.
/// Returns the extra noise std, or nil when the coordinate is not pinned.
@inline(__always)
func pinningStd(meanScale m: Double, std s: Double, tau: Double) -> Double? {
    if tau == 0 { return s }
    let v = s * s - m * m * tau * tau
    return v >= 0 ? v.squareRoot() : nil
}

/// After a RePaint jump `from → to` (forward in diffusion time) in a direction already released
/// (`s(to) < m(to) τ`): the unconditional jump gave `v ~ N(r v_from, q)`; the exact conditional
/// jump also weighs the Gaussian likelihood `m y ~ N(v, R)`, `R = m²τ² − s²`. The
/// perturbed-observation Kalman update `v + K (m y + √R z − v)`, `K = q / (q + R)`, turns the first
/// into a sample of the second.
struct ReleasedJump {
    let gain: Double, scale: Double, noise: Double

    init?(_ context: ConstraintContext, tau: Double) {
        guard context.phase == .jump, tau > 0 else { return nil }
        let (mt, st) = context.sde.marginal(at: context.time), (mn, sn) = context.sde.marginal(at: context.updateTime)
        guard pinningStd(meanScale: mt, std: st, tau: tau) == nil else { return nil }
        let ratio = mt / mn
        let q = max(st * st - ratio * ratio * sn * sn, 0), r = mt * mt * tau * tau - st * st
        gain = q / (q + r); scale = mt; noise = r.squareRoot()
    }

    /// The change of a direction with value `v`, observation `y` (x₀ units) and standard normal `z`.
    @inline(__always) func delta(_ v: Double, _ y: Double, _ z: Double) -> Double { gain * (scale * y + noise * z - v) }
}

func checkNoiseStd(_ sigma: Double) throws {
    guard sigma.isFinite, sigma >= 0 else {
        throw ScoreSDEError.invalidArgument("noiseStd must be finite and >= 0 (got \(sigma)); use 0 for a noise-free observation")
    }
}

/// Validates a per-row (or broadcast) tensor against the state.
func checkBroadcastRows(_ t: Tensor, _ what: String, rowSize: Int, state x: Tensor) throws {
    guard t.rowSize == rowSize else {
        throw ScoreSDEError.shapeMismatch("\(what) has rows of shape \(t.rowShape) (\(t.rowSize) values) but the samples have \(rowSize) values per row (shape \(x.rowShape))")
    }
    guard t.rows == 1 || t.rows == x.rows else {
        throw ScoreSDEError.shapeMismatch("\(what) has \(t.rows) rows; give 1 (shared by every sample) or one per sample (\(x.rows))")
    }
}

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
        guard dimension >= 1 else { throw ScoreSDEError.invalidArgument("dimension must be >= 1 (got \(dimension))") }
        guard indices.count == values.count else {
            throw ScoreSDEError.shapeMismatch("\(indices.count) known indices but \(values.count) values")
        }
        guard indices.allSatisfy({ $0 >= 0 && $0 < dimension }), Set(indices).count == indices.count else {
            throw ScoreSDEError.invalidArgument("known indices must be distinct and in 0..<\(dimension) (got \(indices))")
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

// MARK: - Colorization

/// An orthonormal `C × C` channel-mixing matrix `M`: `decouple(x)_j = Σ_i x_i M_ij` per pixel,
/// `couple(d)_j = Σ_i d_i M⁻¹_ij`. Decoupled channel 0 is the one a grey image observes.
public struct ColorMixing: Sendable, Equatable {
    public let matrix: [[Double]]
    /// `M⁻¹` (computed, not assumed to be `Mᵀ`, as score_sde does).
    public let inverse: [[Double]]
    public var channels: Int { matrix.count }

    /// - Throws: `shapeMismatch` unless square, `nonFinite` for NaN/Inf, `invalidArgument` unless
    ///   `MᵀM = I` to within `tolerance` in every entry (score_sde's matrix is orthonormal to ~1e-7).
    public init(_ matrix: [[Double]], tolerance: Double = 1e-5) throws {
        let (r, c, v) = try validatedMatrix(matrix, "the mixing matrix")
        guard r == c else { throw ScoreSDEError.shapeMismatch("the mixing matrix must be square (got \(r) × \(c))") }
        let mtm = Dense.multiply(Dense.transpose(v, r, r), v, r, r, r)
        for i in 0 ..< r {
            for j in 0 ..< r where abs(mtm[i * r + j] - (i == j ? 1 : 0)) > tolerance {
                throw ScoreSDEError.invalidArgument("the mixing matrix must be orthonormal (MᵀM = I): entry [\(i)][\(j)] of MᵀM is \(mtm[i * r + j]) (tolerance \(tolerance))")
            }
        }
        guard let inv = Dense.inverse(v, r) else { throw ScoreSDEError.invalidArgument("the mixing matrix is singular") }
        self.matrix = matrix
        self.inverse = matrixRows(inv, r, r)
    }

    /// score_sde's matrix (REFERENCE 1.8): column 0 is `(1,1,1)/√3`, so decoupled channel 0 is
    /// `(R+G+B)/√3` and a grey image `g` (replicated over channels) decouples to `√3 g`.
    public static let reference = try! ColorMixing([
        [5.7735014e-01, -8.1649649e-01, 4.7008697e-08],
        [5.7735026e-01, 4.0824834e-01, 7.0710671e-01],
        [5.7735026e-01, 4.0824822e-01, -7.0710683e-01],
    ])

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

// MARK: - General linear measurements

/// A linear measurement `y = A x₀ + σ_y ε` of flattened rows: `A` is `m × D` with linearly
/// independent rows (`m ≤ D`), `observation` one row of `m` values shared by every sample or one
/// per sample. Its thin SVD `A = U S Vᵀ` is computed once: the measured directions are the
/// columns of `V`, observed as `y' = S⁻¹ Uᵀ y` with noise `τ_j = σ_y / S_j`.
public struct LinearMeasurement: Sendable {
    public let matrix: [[Double]]
    public let observation: Tensor
    public let noiseStd: Double
    /// `m`, `D`.
    public let measurements: Int, dimension: Int
    /// `A` row-major.
    let a: [Double]
    /// `V`, `D × m` row-major; singular values `S`; `y' = S⁻¹ Uᵀ y` per observation row.
    let v: [Double], singular: [Double], whitened: Tensor

    /// - Throws: `shapeMismatch` when `A` is ragged, has more rows than columns, or the observation
    ///   rows do not have `m` values; `nonFinite` for NaN/Inf; `invalidArgument` when the rows of
    ///   `A` are linearly dependent or the noise std is negative.
    public init(matrix: [[Double]], observation: Tensor, noiseStd: Double = 0) throws {
        let (m, d, a) = try validatedMatrix(matrix, "the measurement matrix A")
        guard m <= d else { throw ScoreSDEError.shapeMismatch("A has \(m) rows but only \(d) columns: at most D independent measurements exist") }
        guard observation.rowSize == m else {
            throw ScoreSDEError.shapeMismatch("the observation has rows of \(observation.rowSize) values (shape \(observation.shape)) but A has \(m) rows")
        }
        try observation.checkFinite("the observation")
        try checkNoiseStd(noiseStd)
        // A Aᵀ = U Λ Uᵀ, S = √Λ, V = Aᵀ U S⁻¹.
        let aat = Dense.multiply(a, Dense.transpose(a, m, d), m, d, m)
        let (lambda, u) = Dense.symmetricEigen(aat, m)
        guard let top = lambda.first, top > 0, lambda.allSatisfy({ $0 > 1e-12 * top }) else {
            throw ScoreSDEError.invalidArgument("the rows of A are linearly dependent (eigenvalues of A Aᵀ: \(lambda)); drop redundant rows")
        }
        let s = lambda.map { $0.squareRoot() }
        var v = [Double](repeating: 0, count: d * m)
        for i in 0 ..< d {
            for j in 0 ..< m {
                var acc = 0.0
                for q in 0 ..< m { acc += a[q * d + i] * u[q * m + j] }
                v[i * m + j] = acc / s[j]
            }
        }
        var w = Tensor(zeros: [observation.rows, m])
        for r in 0 ..< observation.rows {
            for j in 0 ..< m {
                var acc = 0.0
                for q in 0 ..< m { acc += u[q * m + j] * observation.storage[r * m + q] }
                w.storage[r * m + j] = acc / s[j]
            }
        }
        self.matrix = matrix; self.observation = observation; self.noiseStd = noiseStd
        measurements = m; dimension = d; self.a = a; self.v = v; singular = s; whitened = w
    }

    /// One observation shared by every sample.
    public init(matrix: [[Double]], observation: [Double], noiseStd: Double = 0) throws {
        try self.init(matrix: matrix, observation: Tensor(shape: [1, observation.count], storage: observation), noiseStd: noiseStd)
    }

    /// `A x` for each row of `x`.
    public func apply(_ x: Tensor) throws -> Tensor {
        guard x.rowSize == dimension else {
            throw ScoreSDEError.shapeMismatch("A takes rows of \(dimension) values but the samples have \(x.rowSize) (shape \(x.rowShape))")
        }
        var out = Tensor(zeros: [x.rows, measurements])
        guard x.rows > 0 else { return out }
        x.storage.withUnsafeBufferPointer { xp in
            a.withUnsafeBufferPointer { ap in
                out.storage.withUnsafeMutableBufferPointer { op in
                    BLAS.gemm(transB: true, m: x.rows, n: measurements, k: dimension, a: xp.baseAddress!, lda: dimension,
                              b: ap.baseAddress!, ldb: dimension, c: op.baseAddress!, ldc: measurements)
                }
            }
        }
        return out
    }

    /// `Aᵀ w` for each row of `w` (`m` values per row): shape `[rows, D]`.
    func applyTransposed(_ w: Tensor) -> Tensor {
        var out = Tensor(zeros: [w.rows, dimension])
        guard w.rows > 0 else { return out }
        w.storage.withUnsafeBufferPointer { wp in
            a.withUnsafeBufferPointer { ap in
                out.storage.withUnsafeMutableBufferPointer { op in
                    BLAS.gemm(m: w.rows, n: dimension, k: measurements, a: wp.baseAddress!, lda: measurements,
                              b: ap.baseAddress!, ldb: dimension, c: op.baseAddress!, ldc: dimension)
                }
            }
        }
        return out
    }

    /// The minimum-norm solution `A⁺ y` of each observation row (`V S⁻¹ Uᵀ y`), shaped `[rows, D]`:
    /// the point of `{A x = y}` nearest the origin, e.g. a block-replicated image for block averages.
    public func minimumNormSolution() -> Tensor {
        let m = measurements, d = dimension
        var out = Tensor(zeros: [whitened.rows, d])
        for r in 0 ..< whitened.rows {
            for i in 0 ..< d {
                var acc = 0.0
                for j in 0 ..< m { acc += v[i * m + j] * whitened.storage[r * m + j] }
                out.storage[r * d + i] = acc
            }
        }
        return out
    }

    /// The exact posterior of a Gaussian-mixture prior for observation row `row`.
    public func posterior(of prior: GaussianMixture, row: Int = 0) throws -> FullCovarianceMixture {
        guard row >= 0 && row < observation.rows else { throw ScoreSDEError.invalidArgument("row \(row) is not in 0..<\(observation.rows)") }
        return try prior.conditioned(on: matrix, observation: observation.row(row), noiseStd: noiseStd)
    }

    func checkState(_ x: Tensor, _ what: String) throws {
        guard x.rowSize == dimension else {
            throw ScoreSDEError.shapeMismatch("the measurement matrix has \(dimension) columns but the samples have \(x.rowSize) values per row (shape \(x.rowShape))")
        }
        guard observation.rows == 1 || observation.rows == x.rows else {
            throw ScoreSDEError.shapeMismatch("the observation has \(observation.rows) rows; give 1 (shared by every sample) or one per sample (\(x.rows) \(what))")
        }
    }
}

/// A linear inverse problem `y = A x₀ + σ_y ε` solved by projection, the generalisation of
/// inpainting and colorization: after every update the measured component of `x` (its coordinates
/// `Vᵀ x` in the row space of `A`) is replaced by a sample of the forward-noised measurement,
/// `x ← x + V (v* − Vᵀ x)`.
///
/// * Noise-free (`σ_y = 0`): `v* = m(t) y' + s(t) z`, i.e. `x` is projected orthogonally onto
///   `{A x = y_t}` with `y_t ~ N(m(t) y, s(t)² A Aᵀ)`, the law of `A x(t)` given `A x₀ = y`
///   (Song et al. 2021, App. I.4; for a selection matrix this is exactly inpainting).
/// * Noisy: the noise-consistent rule (see ``ConstraintConvention``) per singular direction `j`:
///   `v*_j = m y'_j + √(s² − m² τ_j²) z` while `s(t) ≥ m(t) τ_j`, `τ_j = σ_y / S_j` — given `x₀` that
///   value has exactly the forward law of `Vᵀ x(t)` — and the direction is left free afterwards.
///   Since observing `y` is equivalent to observing `V_jᵀ x(t*_j)` at the time `s(t*)/m(t*) = τ_j`,
///   the sampler then continues from a state conditioned on exactly the information in `y`.
///   No step size to tune; for `σ_y → 0` it is the projection above.
///
/// The noise-free mean gets `m(t) y'` in the pinned directions (paper) or is built from the
/// updated noisy `x` (reference). Cost `O(m·D)` per row and update.
public struct LinearMeasurementConstraint: SamplingConstraint {
    public let measurement: LinearMeasurement
    public let convention: ConstraintConvention

    public init(_ measurement: LinearMeasurement, convention: ConstraintConvention = .paper) {
        self.measurement = measurement; self.convention = convention
    }

    public func validate(_ x: Tensor) throws { try measurement.checkState(x, "samples") }

    /// For a noisy measurement: along every released singular direction `j` (`s(t) < m(t) τ_j`),
    /// `V_j (y'_j − V_jᵀx / m) / (m (τ_j² − s²/m²))` — the exact `∇ₓ log p(y | x_t)` (see ``ConstraintConvention``).
    public func scoreAdjustment(_ x: Tensor, at t: Double, sde: any ForwardSDE) throws -> Tensor? {
        let ms = measurement
        guard ms.noiseStd > 0 else { return nil }
        let (a, s) = sde.marginal(at: t)
        let precisions: [Double?] = ms.singular.map { sj in
            let tau = ms.noiseStd / sj
            return pinningStd(meanScale: a, std: s, tau: tau) == nil ? 1 / (a * (tau * tau - s * s / (a * a))) : nil
        }
        guard precisions.contains(where: { $0 != nil }) else { return nil }
        let m = ms.measurements, d = ms.dimension
        var out = Tensor(zeros: x.shape)
        for r in 0 ..< x.rows {
            let o = (ms.whitened.rows == 1 ? 0 : r) * m
            for j in 0 ..< m {
                guard let p = precisions[j] else { continue }
                var v = 0.0
                for i in 0 ..< d { v += ms.v[i * m + j] * x.storage[r * d + i] }
                let w = (ms.whitened.storage[o + j] - v / a) * p
                for i in 0 ..< d { out.storage[r * d + i] += w * ms.v[i * m + j] }
            }
        }
        return out
    }

    public func apply(_ x: inout Tensor, mean: inout Tensor, context: ConstraintContext, using rng: inout RandomSource) throws {
        let ms = measurement, m = ms.measurements, d = ms.dimension, n = x.rows
        let reference = convention == .reference
        if context.phase == .start && reference {
            // The observation itself (not noised) in the measured directions.
            setMeasuredDirectionsToObservation(&x)
            return
        }
        let (a, s) = context.sde.marginal(at: context.noiseTime(reference))
        let extras = ms.singular.map { pinningStd(meanScale: a, std: s, tau: ms.noiseStd / $0) }
        if context.phase == .jump {
            // Released directions: the exact conditional jump (pinned ones are re-pinned below).
            let jumps = ms.singular.map { ReleasedJump(context, tau: ms.noiseStd / $0) }
            if jumps.contains(where: { $0 != nil }) {
                let z = Tensor.standardNormal(shape: [n, m], using: &rng)
                for r in 0 ..< n {
                    let o = (ms.whitened.rows == 1 ? 0 : r) * m
                    for j in 0 ..< m {
                        guard let jump = jumps[j] else { continue }
                        var v = 0.0
                        for i in 0 ..< d { v += ms.v[i * m + j] * x.storage[r * d + i] }
                        let delta = jump.delta(v, ms.whitened.storage[o + j], z.storage[r * m + j])
                        for i in 0 ..< d { x.storage[r * d + i] += delta * ms.v[i * m + j] }
                    }
                }
            }
        }
        guard extras.contains(where: { $0 != nil }) else { return }
        let setMean = context.phase == .predictor || context.phase == .final
        let draw = rng.nextDraw(), source = rng
        let obsRows = ms.whitened.rows
        ms.v.withUnsafeBufferPointer { vp in
            ms.whitened.storage.withUnsafeBufferPointer { wp in
                x.storage.withUnsafeMutableBufferPointer { xp in
                    mean.storage.withUnsafeMutableBufferPointer { meanp in
                        let vb = vp.baseAddress!, wb = wp.baseAddress!, xb = xp.baseAddress!, meanb = meanp.baseAddress!
                        Tensor.forEachNoiseBlock(rows: n, rowSize: m, draw: draw, source) { range, z in
                            var delta = [Double](repeating: 0, count: m), deltaMean = delta
                            for r in range {
                                let yr = wb + (obsRows == 1 ? 0 : r) * m, xr = xb + r * d, meanr = meanb + r * d
                                let zr = z + (r - range.lowerBound) * m
                                for j in 0 ..< m {
                                    delta[j] = 0; deltaMean[j] = 0
                                    guard let e = extras[j] else { continue }
                                    var proj = 0.0, projMean = 0.0
                                    for i in 0 ..< d { proj += vb[i * m + j] * xr[i]; projMean += vb[i * m + j] * meanr[i] }
                                    delta[j] = a * yr[j] + e * zr[j] - proj
                                    deltaMean[j] = a * yr[j] - projMean
                                }
                                for i in 0 ..< d {
                                    var acc = 0.0
                                    for j in 0 ..< m { acc += vb[i * m + j] * delta[j] }
                                    xr[i] += acc
                                }
                                guard setMean else { continue }
                                if reference {
                                    // x_mean = x with the pinned directions at their noise-free mean.
                                    for i in 0 ..< d {
                                        var acc = 0.0
                                        for j in 0 ..< m where extras[j] != nil { acc += vb[i * m + j] * extras[j]! * zr[j] }
                                        meanr[i] = xr[i] - acc
                                    }
                                } else {
                                    for i in 0 ..< d {
                                        var acc = 0.0
                                        for j in 0 ..< m { acc += vb[i * m + j] * deltaMean[j] }
                                        meanr[i] += acc
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sets the measured directions of every row to `y'` (score_sde's un-noised initial state).
    private func setMeasuredDirectionsToObservation(_ x: inout Tensor) {
        let ms = measurement, m = ms.measurements, d = ms.dimension
        for r in 0 ..< x.rows {
            let o = (ms.whitened.rows == 1 ? 0 : r) * m
            var delta = [Double](repeating: 0, count: m)
            for j in 0 ..< m {
                var proj = 0.0
                for i in 0 ..< d { proj += ms.v[i * m + j] * x.storage[r * d + i] }
                delta[j] = ms.whitened.storage[o + j] - proj
            }
            for i in 0 ..< d {
                var acc = 0.0
                for j in 0 ..< m { acc += ms.v[i * m + j] * delta[j] }
                x.storage[r * d + i] += acc
            }
        }
    }
}

import Foundation

/// A diffusers discrete-time noise schedule (`DDPMScheduler` / `DDIMScheduler` config): `N` steps
/// with betas `β_i`, `ᾱ_i = ∏_{j ≤ i} (1 − β_j)`, `x_i = √ᾱ_i x₀ + √(1 − ᾱ_i) ε`, and the model's
/// output type.
///
/// Mapped to our continuous VP SDEs (``continuousSDE``):
/// - `linear`: `β_i = linspace(beta_start, beta_end, N)` ↔ ``SDESpec/vp(betaMin:betaMax:)`` with
///   `β_min = N · beta_start`, `β_max = N · beta_end` (Song et al. 2021, App. B: 0.1 and 20 for
///   DDPM's 1e-4 and 0.02).
/// - `squaredcos_cap_v2`: `β_i = min(1 − f((i+1)/N)/f(i/N), 0.999)`, `f(u) = cos²((u + s)/(1 + s) · π/2)`,
///   `s = 0.008` ↔ ``SDESpec/defaultCosineVP`` (`ᾱ(t) = f(t)/f(0)`, so `ᾱ_i = ᾱ((i+1)/N)` up to the
///   clip). The clip at 0.999 changes only the last step (`i = N − 1`, where `f(1) = 0` would give
///   β = 1); our cosine VP ends at `T = 0.9946`, where `ᾱ(T) ≈ 7.1e-5`, i.e. between steps 993 and
///   994 of 1 000, so the clipped step and the five before it lie beyond `T` and are never evaluated.
public struct DiffusersScheduler: Sendable, Equatable {
    public enum BetaSchedule: String, Sendable, CaseIterable { case linear, squaredcosCapV2 = "squaredcos_cap_v2" }
    /// diffusers' `prediction_type`: what the network outputs.
    public enum Prediction: String, Sendable, CaseIterable {
        /// The noise ε (Ho et al. 2020).
        case epsilon
        /// `v = √ᾱ ε − √(1 − ᾱ) x₀` (Salimans & Ho 2022).
        case vPrediction = "v_prediction"
        /// The clean sample x₀.
        case sample
    }

    public var trainSteps: Int
    public var betaStart: Double
    public var betaEnd: Double
    public var betaSchedule: BetaSchedule
    public var prediction: Prediction

    /// diffusers' `DDPMScheduler()` defaults: 1 000 steps, linear betas 1e-4 … 0.02, ε-prediction.
    public init(trainSteps: Int = 1000, betaStart: Double = 0.0001, betaEnd: Double = 0.02,
                betaSchedule: BetaSchedule = .linear, prediction: Prediction = .epsilon) {
        self.trainSteps = trainSteps; self.betaStart = betaStart; self.betaEnd = betaEnd
        self.betaSchedule = betaSchedule; self.prediction = prediction
    }

    /// The betas as diffusers computes them (in float32, as `torch.linspace(..., dtype=float32)` does).
    public var betas: [Double] {
        let N = trainSteps
        switch betaSchedule {
        case .linear:
            return (0 ..< N).map { i in
                Double(Float(N == 1 ? betaStart : betaStart + (betaEnd - betaStart) * Double(i) / Double(N - 1)))
            }
        case .squaredcosCapV2:
            func f(_ u: Double) -> Double { let c = Foundation.cos((u + 0.008) / 1.008 * Double.pi / 2); return c * c }
            return (0 ..< N).map { i in Double(Float(min(1 - f(Double(i + 1) / Double(N)) / f(Double(i) / Double(N)), 0.999))) }
        }
    }

    /// `ᾱ_i = ∏_{j ≤ i} (1 − β_j)`, `i = 0..<N`.
    public var alphasCumprod: [Double] {
        var p = 1.0
        return betas.map { b in p *= 1 - b; return p }
    }

    /// The continuous SDE this schedule corresponds to (see the type's documentation).
    public var continuousSDE: SDESpec {
        switch betaSchedule {
        case .linear: return .vp(betaMin: Double(trainSteps) * betaStart, betaMax: Double(trainSteps) * betaEnd)
        case .squaredcosCapV2: return .defaultCosineVP
        }
    }

    /// Reads a diffusers scheduler config (`scheduler_config.json`).
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for unreadable JSON, an unsupported
    ///   `beta_schedule` / `prediction_type`, `trained_betas`, or `rescale_betas_zero_snr`.
    public init(configFile path: String) throws {
        let obj = try DiffusersUNet.readJSON(path)
        func fail(_ m: String) -> ScoreSDEError { .io(path: path, message: m) }
        self.init()
        if let n = obj["num_train_timesteps"] as? Int { trainSteps = n }
        if let v = obj["beta_start"] as? Double { betaStart = v }
        if let v = obj["beta_end"] as? Double { betaEnd = v }
        if let s = obj["beta_schedule"] as? String {
            guard let b = BetaSchedule(rawValue: s) else {
                throw fail("beta_schedule '\(s)' is not supported; supported: \(BetaSchedule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            betaSchedule = b
        }
        if let s = obj["prediction_type"] as? String {
            guard let p = Prediction(rawValue: s) else {
                throw fail("prediction_type '\(s)' is not supported; supported: \(Prediction.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            prediction = p
        }
        if let tb = obj["trained_betas"], !(tb is NSNull) { throw fail("trained_betas is not supported (no continuous SDE corresponds to an arbitrary table); use beta_schedule linear or squaredcos_cap_v2") }
        if obj["rescale_betas_zero_snr"] as? Bool == true { throw fail("rescale_betas_zero_snr = true is not supported (ᾱ_N = 0 has no VP SDE end time)") }
        guard trainSteps >= 2, betaStart > 0, betaEnd > betaStart || betaSchedule != .linear, betaEnd < 1 else {
            throw fail("the schedule is invalid: num_train_timesteps \(trainSteps), beta_start \(betaStart), beta_end \(betaEnd)")
        }
    }

    /// The JSON of a `DDPMScheduler` config with this schedule.
    public var configJSON: [String: Any] {
        ["_class_name": "DDPMScheduler", "num_train_timesteps": trainSteps, "beta_start": betaStart, "beta_end": betaEnd,
         "beta_schedule": betaSchedule.rawValue, "prediction_type": prediction.rawValue, "clip_sample": true,
         "variance_type": "fixed_small", "trained_betas": NSNull()]
    }
}

/// How continuous time `t` becomes the network's timestep input `τ` (diffusers' integer step index,
/// which the sinusoidal embedding takes as a real number).
public enum DiffusersTimeMap: Sendable, Equatable {
    /// `τ(t)` = the fractional step index whose `log ᾱ` equals the SDE's `log ᾱ(t) = 2 log m(t)`:
    /// piecewise linear in `log ᾱ` between the scheduler's `(i, log ᾱ_i)`, with `(−1, 0)` prepended
    /// (ᾱ = 1 before the first step) and the last segment extended beyond step `N − 1`. At the times
    /// ``DiffusersScore/time(ofStep:)`` the model is *exactly* diffusers' model at step `i`: input
    /// `τ = i` and `σ = √(1 − ᾱ_i)` (the reference-exact option).
    case alphaBarMatched
    /// `τ = scale · t + shift`: Score-SDE's conversion of the DDPM checkpoints is `scale = N − 1 = 999`,
    /// `shift = 0`; DPM-Solver's discrete-time convention is `scale = N`, `shift = −1` (`t_i = (i+1)/N`).
    case affine(scale: Double, shift: Double)
}

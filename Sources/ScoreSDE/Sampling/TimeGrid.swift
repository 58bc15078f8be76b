import Foundation

/// The times a sampler steps through, from `T` down towards 0: `times[0] > times[1] > … > times[N]`.
/// Step `i` goes from `times[i]` to `times[i + 1]`.
///
///     TimeGrid.uniform(steps: 1000, from: 1, to: 1e-3)   // starts at linspace(1, 1e-3, 1000), then 0
public struct TimeGrid: Sendable, Equatable {
    public let times: [Double]

    /// A user grid: strictly decreasing, finite, non-negative, at least two points.
    public init(_ times: [Double]) throws {
        guard times.count >= 2 else { throw ScoreSDEError.invalid("times", times, must: "at least 2 points (a time grid)") }
        if let i = times.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
            throw ScoreSDEError.invalid("times", "times[\(i)] = \(times[i])", must: "finite and >= 0")
        }
        for i in 1 ..< times.count where !(times[i] < times[i - 1]) {
            throw ScoreSDEError.invalid("times", "times[\(i - 1)] = \(times[i - 1]), times[\(i)] = \(times[i])", must: "strictly decreasing (at least 2 points)")
        }
        self.times = times
    }

    /// The reference's grid: step `i` starts at `linspace(start, end, steps)[i]` — so discrete
    /// schedules (reverse diffusion, ancestral sampling, Langevin's α) read exactly the reference's
    /// indices N−1, …, 0 — and the last step runs from `end` (the sampler's `eps`) to 0.
    public static func uniform(steps: Int, from start: Double, to end: Double) throws -> TimeGrid {
        guard steps >= 1 else { throw ScoreSDEError.invalid("steps", steps, must: ">= 1") }
        guard start.isFinite else { throw ScoreSDEError.invalid("start", start, must: "finite") }
        guard end.isFinite, end > 0, end < start else {
            throw ScoreSDEError.invalid("eps", end, must: "in (0, \(start)) (the grid's end, the sampler's eps)", advice: "the reference uses 1e-3 for VP/sub-VP and 1e-5 for VE")
        }
        guard steps > 1 else { return try TimeGrid([start, 0]) }
        let h = (start - end) / Double(steps - 1)
        var times = (0 ..< steps).map { i in i == steps - 1 ? end : start - Double(i) * h }
        times.append(0)
        return try TimeGrid(times)
    }

    /// `steps` intervals from `start` down to `end` (both included, no step to 0) placed by
    /// `spacing` — the grids of the few-step samplers (DPM-Solver, EDM):
    ///
    ///     let grid = try TimeGrid.spaced(.logSNR, steps: 10, from: 1, to: 1e-3, sde: try VPSDE())
    ///
    /// `.logSNR` and `.karras` read the SDE's marginal and invert it numerically (bisection), so
    /// they are right for any ``ForwardSDE``.
    public static func spaced(_ spacing: TimeSpacing, steps: Int, from start: Double, to end: Double,
                              sde: some ForwardSDE) throws -> TimeGrid {
        guard steps >= 1 else { throw ScoreSDEError.invalid("steps", steps, must: ">= 1") }
        guard end.isFinite, start.isFinite, end > 0, end < start, start <= sde.T * (1 + 1e-12) else {
            throw ScoreSDEError.invalidArgument("a spaced grid needs 0 < end < start <= T = \(sde.T) (got start \(start), end \(end)); the reference's eps is 1e-3 for VP/sub-VP and 1e-5 for VE")
        }
        let n = Double(steps)
        var times: [Double]
        switch spacing {
        case .timeUniform:
            times = (0 ... steps).map { start + Double($0) / n * (end - start) }
        case .timeQuadratic:   // DPM-Solver's "time_quadratic": (linspace(√start, √end))²
            let a = start.squareRoot(), b = end.squareRoot()
            times = (0 ... steps).map { let u = a + Double($0) / n * (b - a); return u * u }
        case .timePower(let p):
            guard p.isFinite, p >= 1 else { throw ScoreSDEError.invalid("timePower", p, must: "finite and >= 1", advice: "1 is time-uniform, 2 time-quadratic") }
            let a = Foundation.pow(start, 1 / p), b = Foundation.pow(end, 1 / p)
            times = (0 ... steps).map { Foundation.pow(a + Double($0) / n * (b - a), p) }
        case .logSNR:
            let la = sde.halfLogSNR(at: start), lb = sde.halfLogSNR(at: end)
            times = (0 ... steps).map { sde.time(atHalfLogSNR: la + Double($0) / n * (lb - la), in: end, start) }
        case .karras(let rho):
            guard rho.isFinite, rho > 0 else { throw ScoreSDEError.invalid("rho", rho, must: "finite and > 0 (Karras spacing)", advice: "EDM uses 7") }
            // σ = e^{−λ}; σ_i = (σmax^{1/ρ} + i/N (σmin^{1/ρ} − σmax^{1/ρ}))^ρ (Karras et al. 2022, eq. 5)
            let a = Foundation.pow(Foundation.exp(-sde.halfLogSNR(at: start)), 1 / rho)
            let b = Foundation.pow(Foundation.exp(-sde.halfLogSNR(at: end)), 1 / rho)
            times = (0 ... steps).map { i in
                let sigma = Foundation.pow(a + Double(i) / n * (b - a), rho)
                return sde.time(atHalfLogSNR: -Foundation.log(sigma), in: end, start)
            }
        }
        times[0] = start; times[steps] = end
        return try TimeGrid(times)
    }

    /// Number of steps (intervals).
    public var steps: Int { times.count - 1 }

    /// The intervals `(t, next)`.
    public var intervals: [(t: Double, next: Double)] { (0 ..< steps).map { (times[$0], times[$0 + 1]) } }
}

/// Where the few-step samplers put their steps between `T` and `eps`.
public enum TimeSpacing: Sendable, Equatable, CustomStringConvertible {
    /// Uniform in `t`.
    case timeUniform
    /// Uniform in `√t` (DPM-Solver's `time_quadratic`; Song et al. 2020, DDIM's quadratic skip).
    case timeQuadratic
    /// Uniform in `t^{1/p}` (`p ≥ 1`; 1 is `timeUniform`, 2 `timeQuadratic`): larger `p` puts more
    /// steps near `eps`. The recommendation's `p = 1.5` came from the search `fastExplore2`
    /// (`Benchmarks/Fast.swift` up to commit 518e5c7).
    case timePower(Double)
    /// Uniform in the log signal-to-noise ratio `log(m²/std²)` (DPM-Solver's `logSNR`).
    case logSNR
    /// EDM/Karras: uniform in `σ^{1/ρ}`, `σ = std/m` (Karras et al. 2022, eq. 5; ρ = 7 there).
    case karras(rho: Double)

    public var description: String {
        switch self {
        case .timeUniform: return "time-uniform"
        case .timeQuadratic: return "time-quadratic"
        case .timePower(let p): return "time-power(\(p))"
        case .logSNR: return "logsnr"
        case .karras(let rho): return rho == 7 ? "karras" : "karras(rho \(rho))"
        }
    }

    /// The CLI's names: `time-uniform`, `time-quadratic`, `logsnr`, `karras` (ρ = 7).
    public static func named(_ name: String) throws -> TimeSpacing {
        switch name {
        case "time-uniform": return .timeUniform
        case "time-quadratic": return .timeQuadratic
        case "logsnr": return .logSNR
        case "karras": return .karras(rho: 7)
        default: throw ScoreSDEError.unknownName("'\(name)' is not a step spacing; choose time-uniform, time-quadratic, logsnr or karras")
        }
    }
}

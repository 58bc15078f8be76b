import Foundation
import Testing
@testable import ScoreSDE

// Issue 21, items 1 and 2: the adaptive solvers stepped by hand (init → step → result) are their
// `decode` / `sample` bitwise, and their events account for every accepted and rejected step and
// every NFE; the Brownian path they draw from has the bridge's law. (The solvers' outputs are
// pinned against the code before the stepping API in SamplerPinTests.)

@Suite("Adaptive solvers: init / step / result")
struct AdaptiveSteppingTests {
    @Test("adaptive UniPC stepped by hand is decode, bitwise; the events add up to the result", arguments: [
        AdaptiveUniPC<VPSDE, GaussianMixtureScore>.ErrorNorm.batch, .worstRow,
    ])
    func unipc(_ norm: AdaptiveUniPC<VPSDE, GaussianMixtureScore>.ErrorNorm) throws {
        let sde = try VPSDE()
        let score = GaussianMixtureScore(.gaussian64(), diffusedBy: sde)
        var rng = RandomSource(seed: 5)
        let z = sde.samplePrior(rowShape: [64], count: 20, using: &rng)
        // A large first step and safety 0.9: the controller rejects some attempts.
        let solver = try AdaptiveUniPC(sde: sde, score: score, eps: 1e-3, order: 3, absoluteTolerance: 1e-3, relativeTolerance: 1e-3,
                                       initialStep: 2, safety: 0.9, batchSize: 7, norm: norm)
        let whole = try solver.decode(z)
        var run = try AdaptiveUniPCIntegrator(solver: solver, latents: z)
        #expect(throws: ScoreSDEError.self) { try run.result() }
        var events = [StepEvent]()
        while let e = try run.step() { events.append(e) }
        #expect(try run.step() == nil)
        let byHand = try run.result()
        #expect(byHand.states.storage.map(\.bitPattern) == whole.states.storage.map(\.bitPattern))
        #expect(byHand.times == whole.times && byHand.scoreEvaluations == whole.scoreEvaluations)
        #expect(whole.rejectedSteps > 0, "the run should reject some attempts (it rejected none)")
        // The events' counts: accepted and rejected steps, NFE 1 per attempt plus 1 at T.
        #expect(events.map(\.acceptedSteps).reduce(0, +) == whole.acceptedSteps)
        #expect(events.map(\.rejectedSteps).reduce(0, +) == whole.rejectedSteps)
        #expect(events.count == whole.acceptedSteps + whole.rejectedSteps)
        #expect(events.last?.scoreEvaluations == whole.scoreEvaluations)
        #expect(whole.scoreEvaluations == 1 + events.count)
        for (i, e) in events.enumerated() {
            #expect(e.index == i && e.total == 0 && e.rowTimes == nil && e.acceptedSteps + e.rejectedSteps == 1)
            #expect(e.scoreEvaluations == i + 2, "the first attempt also evaluates the model at T")
            #expect(e.next < e.t)
        }
        // The accepted attempts' end times are the grid the controller chose.
        #expect([sde.T] + events.filter { $0.acceptedSteps == 1 }.map(\.next) == whole.times)
        #expect(events.last?.state.storage == whole.states.storage)
    }

    @Test("adaptive SDE solver stepped by hand is sample, bitwise; the rounds add up to the result", arguments: [
        (AdaptiveSDESampler<VPSDE, GaussianMixtureScore>.RejectedNoise.brownianBridge, FinalDenoising.tweedie, Int?.some(5)),
        (.brownianBridge, .none, nil),
        (.redraw, .none, 3),
    ])
    func sde(_ noise: AdaptiveSDESampler<VPSDE, GaussianMixtureScore>.RejectedNoise, _ denoising: FinalDenoising,
             _ batchSize: Int?) throws {
        let sde = try VPSDE()
        let sampler = try AdaptiveSDESampler(sde: sde, score: GaussianMixtureScore(GaussianMixture.ring(), diffusedBy: sde), eps: 1e-3,
                                             absoluteTolerance: 0.003, relativeTolerance: 0.02, denoising: denoising,
                                             rejectedNoise: noise, batchSize: batchSize)
        var rng = RandomSource(seed: 9)
        let start = sde.samplePrior(rowShape: [2], count: 40, using: &rng)
        var a = rng, b = rng
        let whole = try sampler.sample(from: start, using: &a)
        var run = try AdaptiveSDEIntegrator(solver: sampler, start: start, using: &b)
        #expect(a == b, "init takes the run's one draw of the caller's source")
        #expect(throws: ScoreSDEError.self) { try run.result() }
        var events = [StepEvent]()
        while let e = try run.step() { events.append(e) }
        #expect(try run.step() == nil)
        let byHand = try run.result()
        #expect(byHand.samples.storage.map(\.bitPattern) == whole.samples.storage.map(\.bitPattern))
        #expect(byHand.perSampleEvaluations == whole.perSampleEvaluations && byHand.perSampleRejections == whole.perSampleRejections)
        #expect(byHand.scoreEvaluations == whole.scoreEvaluations && byHand.modelPasses == whole.modelPasses)

        let tweedie = denoising == .tweedie ? 1 : 0
        let rounds = events.filter { if case .attempt = $0.move { return true } else { return false } }
        #expect(rounds.count == events.count - tweedie)
        if tweedie == 1, let last = events.last { #expect(last.move == .denoise(at: 1e-3) && last.acceptedSteps + last.rejectedSteps == 0) }
        // Each round: 2 NFE; each row that attempted accepted or rejected; NFE ends at the result's.
        #expect(whole.scoreEvaluations == 2 * rounds.count + tweedie)
        #expect(events.last?.scoreEvaluations == whole.scoreEvaluations)
        for (i, e) in rounds.enumerated() { #expect(e.index == i && e.scoreEvaluations == 2 * (i + 1)) }
        let attempts = whole.perSampleEvaluations.map { ($0 - tweedie) / 2 }
        #expect(rounds.map { $0.acceptedSteps + $0.rejectedSteps }.reduce(0, +) == attempts.reduce(0, +))
        #expect(rounds.map(\.rejectedSteps).reduce(0, +) == whole.perSampleRejections.reduce(0, +))
        #expect(whole.perSampleRejections.reduce(0, +) > 0, "the run should reject some attempts (it rejected none)")
        // Rows attempting in round i: those with more than i attempts.
        for (i, e) in rounds.enumerated() {
            #expect(e.acceptedSteps + e.rejectedSteps == attempts.filter { $0 > i }.count, "round \(i)")
            let times = try #require(e.rowTimes)
            #expect(times.count == 40 && e.next == times.max() && e.next <= e.t)
        }
        #expect(rounds.last?.rowTimes?.allSatisfy { abs($0 - 1e-3) <= 1e-12 } == true)
    }
}

@Suite("Brownian path (RSwM): the bridge's law")
struct BrownianPathTests {
    /// `paths` independent paths of dimension 8 (one stream each): a fresh increment `W` over
    /// [0, 2], rejected, then an attempt over 0.5 (bridged) and the rest.
    static let paths = 5000, d = 8, dt = 2.0, h = 0.5

    @Test("a split increment has the bridge's conditional mean and variance and is independent of W")
    func bridgeMoments() throws {
        let base = RandomSource(seed: 2017)
        let n = Double(Self.paths * Self.d)
        var sum = 0.0, sumSq = 0.0, cross = 0.0, firstSq = 0.0, restSq = 0.0, firstRest = 0.0
        var sumW = 0.0, sumWSq = 0.0
        for p in 0 ..< Self.paths {
            var path = BrownianPath(dimension: Self.d, noise: base.derived(1), bridge: base.derived(2), stream: p)
            let (step0, w) = path.increment(over: Self.dt, attempt: 0)
            #expect(step0 == Self.dt)
            path.reject(step: Self.dt, increment: w)
            let (step1, w1) = path.increment(over: Self.h, attempt: 1)
            let (step2, w2) = path.increment(over: 10, attempt: 2)   // past the kept interval: cut to it
            #expect(step1 == Self.h && abs(step2 - (Self.dt - Self.h)) < 1e-15 && path.kept.isEmpty)
            for j in 0 ..< Self.d {
                #expect(abs(w1[j] + w2[j] - w[j]) <= 1e-14 * max(1, abs(w[j])), "path \(p): the pieces sum to the rejected increment")
                let e = w1[j] - Self.h / Self.dt * w[j]   // the bridge's residual
                sum += e; sumSq += e * e; cross += e * w[j]
                firstSq += w1[j] * w1[j]; restSq += w2[j] * w2[j]; firstRest += w1[j] * w2[j]
                sumW += w[j]; sumWSq += w[j] * w[j]
            }
        }
        // Bridge: E[e] = 0, Var e = h (dt − h)/dt = 0.375, Cov(e, W) = 0. Normal theory standard
        // errors: √(v/n) for a mean, v √(2/n) for a variance, √(v dt / n) for the covariance; 5 SE.
        // (Fresh noise instead of the bridge: Var 0.5, 47 SE off; h (dt − h): 0.75.)
        let v = Self.h * (Self.dt - Self.h) / Self.dt
        #expect(abs(sum / n) <= 5 * (v / n).squareRoot(), "mean \(sum / n)")
        let variance = sumSq / n - (sum / n) * (sum / n)
        #expect(abs(variance - v) <= 5 * v * (2 / n).squareRoot(), "variance \(variance), expected \(v)")
        #expect(abs(cross / n) <= 5 * (v * Self.dt / n).squareRoot(), "covariance with W \(cross / n)")
        // The fresh increment is N(0, dt); the pieces are N(0, h) and N(0, dt − h), uncorrelated.
        #expect(abs(sumW / n) <= 5 * (Self.dt / n).squareRoot() && abs(sumWSq / n - Self.dt) <= 5 * Self.dt * (2 / n).squareRoot())
        #expect(abs(firstSq / n - Self.h) <= 5 * Self.h * (2 / n).squareRoot(), "Var ΔW' \(firstSq / n)")
        let rest = Self.dt - Self.h
        #expect(abs(restSq / n - rest) <= 5 * rest * (2 / n).squareRoot(), "Var of the rest \(restSq / n)")
        #expect(abs(firstRest / n) <= 5 * (Self.h * rest / n).squareRoot(), "Cov of the pieces \(firstRest / n)")
    }

    @Test("nested rejections: each split is a bridge of its interval, and the pieces sum to the original increment")
    func nested() throws {
        let base = RandomSource(seed: 4)
        let n = Double(Self.paths * Self.d)
        var sumSq = 0.0, sum = 0.0
        for p in 0 ..< Self.paths {
            var path = BrownianPath(dimension: Self.d, noise: base.derived(1), bridge: base.derived(2), stream: p)
            let (_, w) = path.increment(over: Self.dt, attempt: 0)
            path.reject(step: Self.dt, increment: w)
            let (_, w1) = path.increment(over: Self.h, attempt: 1)    // rejected again: split inside [0, h]
            path.reject(step: Self.h, increment: w1)
            #expect(path.kept.count == 2)
            let (s2, w2) = path.increment(over: 0.2, attempt: 2)
            let (s3, w3) = path.increment(over: 1, attempt: 3)          // the rest of [0, h]
            let (s4, w4) = path.increment(over: 1.5, attempt: 4)        // the rest of [0, dt]
            #expect(s2 == 0.2 && abs(s3 - 0.3) < 1e-15 && abs(s4 - 1.5) < 1e-15 && path.kept.isEmpty)
            for j in 0 ..< Self.d {
                #expect(abs(w2[j] + w3[j] + w4[j] - w[j]) <= 1e-14 * max(1, abs(w[j])))
                let e = w2[j] - 0.2 / Self.h * w1[j]
                sum += e; sumSq += e * e
            }
        }
        // Given ΔW over [0, h]: Var of the piece over 0.2 is 0.2 · 0.3 / 0.5 = 0.12.
        let v = 0.2 * 0.3 / Self.h
        #expect(abs(sum / n) <= 5 * (v / n).squareRoot())
        #expect(abs(sumSq / n - v) <= 5 * v * (2 / n).squareRoot(), "variance \(sumSq / n), expected \(v)")
    }

    @Test("without a rejection: √h ξ from draw `attempt` of the noise source, row `stream`")
    func fresh() throws {
        let noise = RandomSource(seed: 11)
        var path = BrownianPath(dimension: 3, noise: noise, bridge: noise.derived(9), stream: 4)
        let (step, w) = path.increment(over: 0.25, attempt: 6)
        var xi = [Double](repeating: 0, count: 3)
        xi.withUnsafeMutableBufferPointer { noise.normals(draw: 6, rows: 4 ..< 5, rowSize: 3, into: $0.baseAddress!) }
        #expect(step == 0.25 && w == xi.map { $0 * 0.5 } && path.kept.isEmpty)
    }
}

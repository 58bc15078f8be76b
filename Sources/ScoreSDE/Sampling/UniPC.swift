import Foundation

/// UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
/// Diffusion Models", Alg. 1–2 with the `B(h)` variants of §3.3) in data-prediction form, in the
/// half log-SNR `λ = log(m/std)`. Each step is UniP-p (a multistep exponential-integrator
/// predictor from the `p` latest data predictions) followed, once the model has been evaluated at
/// the predicted point, by UniC-p: a corrector that re-does the previous interval with that new
/// value — order `p + 1` at no extra NFE. As in the reference code, the model value at the new
/// point comes from the *predicted* state and the last step has no corrector.
///
/// Here a step `t → next` first applies the corrector to the interval that ended at `t` (its model
/// value is this step's one evaluation), then predicts `next`. Step `i` uses order
/// `min(order, i + 1)` (warm-up) or `orders[i]`. A step to `t = 0` returns the data prediction.
///
/// Order: `order + 1` per corrected step (1 ≤ order ≤ 3); globally at most 3 (the corrected
/// first-order warm-up step and the uncorrected last step); 1 NFE per step. Time grid: any (the
/// reference uses uniform logSNR or time-quadratic). Supports: any ``ForwardSDE`` (VE, VP, sub-VP).
public struct UniPC: Predictor {
    /// `B(h)` of the update (§3.3): `bh1` = `h`, `bh2` = `e^h − 1` (the paper recommends `bh1` for
    /// unconditional sampling with very few steps, `bh2` otherwise).
    public enum Variant: String, Sendable, CaseIterable { case bh1, bh2 }

    public let order: Int
    public let variant: Variant
    /// Applied to every data prediction (nil: none).
    public let threshold: DynamicThresholding?
    /// Per-step orders (nil: `min(order, i + 1)`).
    public let orders: [Int]?

    public struct History: Sendable {
        var predictions: [Tensor] = []   // newest first
        var lambdas: [Double] = []
        var times: [Double] = []
        var previousX: Tensor?           // the (corrected) state at times[0]
        var previousOrder = 1
        var index = 0
        /// The prediction that left the history, reused as the next step's buffer (no allocation per step).
        var spare: Tensor?
    }

    /// - Throws: `invalidParameter` unless `order` is 1, 2 or 3 and every entry of `orders` is valid.
    public init(order: Int = 3, variant: Variant = .bh2, orders: [Int]? = nil, threshold: DynamicThresholding? = nil) throws {
        try requireParameter((1 ... 3).contains(order), name: "order", value: order, requirement: "1, 2 or 3", advice: "UniPC has orders 1, 2 and 3")
        if let orders {
            try requireParameter(orders.allSatisfy { (1 ... order).contains($0) }, name: "orders", value: orders, requirement: "in 1...\(order) at every step")
            try requireParameter(orders.enumerated().allSatisfy { $0.element <= $0.offset + 1 }, name: "orders", value: orders,
                                 requirement: "at most i + 1 at step i", advice: "step i can use order at most i + 1 (it needs i earlier data predictions)")
        }
        self.order = order; self.variant = variant; self.orders = orders; self.threshold = threshold
    }

    public func makeState(for x: Tensor) -> History { History() }

    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws {
        if let orders, orders.count != grid.steps {
            throw ScoreSDEError.invalidArgument("UniPC was given \(orders.count) per-step orders for a grid of \(grid.steps) steps")
        }
    }

    public func step(_ x: inout Tensor, mean: inout Tensor, state: inout History, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let sde = reverse.sde
        let (mt, st) = sde.noiseLevel(at: t)
        var x0 = state.spare ?? Tensor(zeros: x.shape)
        state.spare = nil
        dataPrediction(x, score: try reverse.score(x, at: t), m: mt, std: st, into: &x0)
        threshold?.apply(&x0)
        let lt = sde.halfLogSNR(at: t)
        if let previous = state.previousX {   // UniC over times[0] → t with the new model value
            update(into: &x, from: previous, models: state.predictions, lambdas: state.lambdas, sde: sde, from: state.times[0], to: t,
                   order: state.previousOrder, modelAtEnd: x0)
        }
        state.predictions.insert(x0, at: 0); state.lambdas.insert(lt, at: 0); state.times.insert(t, at: 0)
        let k = min(orders.map { $0[min(state.index, $0.count - 1)] } ?? order, state.predictions.count)
        // previousX ← x and x ← UniP(x), swapping buffers instead of allocating: x takes the old
        // previous state's buffer, which the update overwrites.
        var corrected = state.previousX ?? Tensor(zeros: x.shape)
        state.previousX = nil
        swap(&x, &corrected)
        state.previousOrder = k
        update(into: &x, from: corrected, models: state.predictions, lambdas: state.lambdas, sde: sde, from: t, to: next, order: k,
               modelAtEnd: nil)
        state.previousX = corrected
        mean.assign(x)   // a copy into the workspace: aliasing would copy the batch at the next update
        let keep = order
        if state.predictions.count > keep {
            state.spare = state.predictions.removeLast(); state.lambdas.removeLast(); state.times.removeLast()
        }
        state.index += 1
    }

    /// One UniP (`modelAtEnd == nil`) or UniC update of `x` over `t0 → t` from the data predictions
    /// `models[0]` (at `t0`) and `models[1…]` (earlier), with `lambdas` their half log-SNRs
    /// (``ForwardSDE/halfLogSNR(at:)``), in the reference's `multistep_uni_pc_bh_update` form (Zhao
    /// et al. 2023, Alg. 1 and 2, B(h) of ``variant``); `order` ≤ `models.count`. With `modelAtEnd`
    /// (the data prediction at `t` of the predicted state) it is the corrector UniC. The library's
    /// UniPC and adaptive UniPC are built on it; so can a user's predictor.
    public func update(_ x: Tensor, models: [Tensor], lambdas: [Double], sde: some ForwardSDE, from t0: Double, to t: Double,
                order p: Int, modelAtEnd: Tensor?) -> Tensor {
        var out = Tensor(zeros: x.shape)
        update(into: &out, from: x, models: models, lambdas: lambdas, sde: sde, from: t0, to: t, order: p, modelAtEnd: modelAtEnd)
        return out
    }

    /// ``update(_:models:lambdas:sde:from:to:order:modelAtEnd:)`` written into `out` (reshaped if
    /// needed; its contents on entry are not read), so a sampler can reuse its buffers.
    public func update(into out: inout Tensor, from x: Tensor, models: [Tensor], lambdas: [Double], sde: some ForwardSDE,
                from t0: Double, to t: Double, order p: Int, modelAtEnd: Tensor?) {
        let (_, s0) = sde.noiseLevel(at: t0), (at, st) = sde.noiseLevel(at: t)
        if st == 0 { out.assign(modelAtEnd ?? models[0], scaledBy: at); return }
        let h = sde.halfLogSNR(at: t) - lambdas[0]
        let rks = (1 ..< p).map { (lambdas[$0] - lambdas[0]) / h } + [1]
        let hh = -h
        let hphi1 = Foundation.expm1(hh)
        let bh = variant == .bh1 ? hh : hphi1
        var hphik = hphi1 / hh - 1, factorial = 1.0
        var b = [Double]()
        for i in 1 ... p {
            b.append(hphik * factorial / bh)
            factorial *= Double(i + 1)
            hphik = hphik / hh - 1 / factorial
        }
        // R[i][k] = rks[k]^i
        let R = (0 ..< p).map { i in rks.map { Foundation.pow($0, Double(i)) } }
        var rhos: [Double]
        if modelAtEnd == nil {
            rhos = p == 1 ? [] : p == 2 ? [0.5] : solveSmall(Array(R[0 ..< p - 1].map { Array($0[0 ..< p - 1]) }), Array(b[0 ..< p - 1]))
        } else {
            rhos = p == 1 ? [0.5] : solveSmall(R, b)
        }
        // x_t = (σt/σ0) x − α φ1 m0 − α B(h) [Σ_k ρ_k (m_k − m0)/r_k (+ ρ_c (m_t − m0))]
        var c0 = -at * hphi1
        var terms: [(Tensor, Double)] = []
        for k in 1 ..< p {
            let w = -at * bh * rhos[k - 1] / rks[k - 1]
            terms.append((models[k], w)); c0 -= w
        }
        if let m = modelAtEnd {
            let w = -at * bh * rhos[p - 1]
            terms.append((m, w)); c0 -= w
        }
        terms.insert((models[0], c0), at: 0)
        out.setLinearCombination(x, scale: st / s0, terms)
    }
}

/// Solves a small dense system `A x = b` (Gaussian elimination with partial pivoting).
func solveSmall(_ a: [[Double]], _ b: [Double]) -> [Double] {
    var a = a, b = b
    let n = b.count
    for c in 0 ..< n {
        let p = (c ..< n).max { abs(a[$0][c]) < abs(a[$1][c]) }!
        a.swapAt(c, p); b.swapAt(c, p)
        for r in c + 1 ..< n {
            let f = a[r][c] / a[c][c]
            for k in c ..< n { a[r][k] -= f * a[c][k] }
            b[r] -= f * b[c]
        }
    }
    var x = [Double](repeating: 0, count: n)
    for r in stride(from: n - 1, through: 0, by: -1) {
        var s = b[r]
        for k in r + 1 ..< n { s -= a[r][k] * x[k] }
        x[r] = s / a[r][r]
    }
    return x
}

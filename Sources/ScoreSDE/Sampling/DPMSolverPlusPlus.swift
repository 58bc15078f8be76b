import Foundation

/// Multistep DPM-Solver++ (Lu et al. 2022, "DPM-Solver++", Alg. 2 and App. B) in data-prediction
/// form, stepping in the half log-SNR `λ = log(m/std)`: with `h = λ_next − λ_t` and the data
/// predictions `x0` of this and earlier steps (kept in `State` with their λ),
/// - order 1: `x_n = (std_n/std_t) x − m_n (e^{−h} − 1) x0` (= DDIM, DPM-Solver-1);
/// - order 2 (2M): `D = x0 + (x0 − x0₋₁)/(2r)`, `r = (λ_t − λ₋₁)/h`, in place of `x0`;
/// - order 3 (3M): the third-order update of the DPM-Solver reference code
///   (`multistep_dpm_solver_third_update`, `dpmsolver++`), with `φ₁ = e^{−h} − 1`, `φ₂ = φ₁/h + 1`,
///   `φ₃ = φ₂/h − ½`.
/// Step `i` uses order `min(order, i + 1)` (lower-order warm-up) or `orders[i]` when given (e.g.
/// lower orders on the final steps: ``lowerOrderFinal(order:steps:)``). A step to `t = 0` returns
/// the data prediction.
///
/// Order: 1–3 per step; globally at most 2, because the warm-up's first step is first order
/// (measured on Gaussian data: 3M converges at order ≈ 2.1); 1 NFE per step. Time grid: any (the reference uses uniform logSNR). Supports: any
/// ``ForwardSDE`` (VE, VP, sub-VP: only `m(t)` and `std(t)` are used).
public struct DPMSolverPlusPlus: Predictor {
    public let order: Int
    /// Applied to every data prediction (nil: none).
    public let threshold: DynamicThresholding?
    /// Per-step orders (nil: `min(order, i + 1)`); each `orders[i] <= min(order, i + 1)`.
    public let orders: [Int]?

    public struct History: Sendable {
        /// Earlier data predictions, newest first, and their λ.
        var predictions: [Tensor] = []
        var lambdas: [Double] = []
        var index = 0
        /// The prediction that left the history, reused as the next step's buffer (no allocation per step).
        var spare: Tensor?
    }

    /// - Throws: `invalidParameter` unless `order` is 1, 2 or 3 and every entry of `orders` is in 1...order.
    public init(order: Int = 3, orders: [Int]? = nil, threshold: DynamicThresholding? = nil) throws {
        try requireParameter((1 ... 3).contains(order), name: "order", value: order, requirement: "1, 2 or 3", advice: "DPM-Solver++ has orders 1, 2 and 3")
        if let orders {
            try requireParameter(orders.allSatisfy { (1 ... order).contains($0) }, name: "orders", value: orders, requirement: "in 1...\(order) at every step")
            try requireParameter(orders.enumerated().allSatisfy { $0.element <= $0.offset + 1 }, name: "orders", value: orders,
                                 requirement: "at most i + 1 at step i", advice: "step i can use order at most i + 1 (it needs i earlier data predictions)")
        }
        self.order = order; self.orders = orders; self.threshold = threshold
    }

    /// The reference code's `lower_order_final` schedule for `steps` steps: warm-up `1, 2, …`, then
    /// `order`, then `…, 2, 1` over the last steps (`min(order, i + 1, steps − i)`).
    public static func lowerOrderFinal(order: Int, steps: Int) -> [Int] {
        (0 ..< steps).map { i in max(1, min(order, i + 1, steps - i)) }
    }

    public func makeState(for x: Tensor) -> History { History() }

    public func validate(grid: TimeGrid, sde: some ForwardSDE) throws {
        if let orders, orders.count != grid.steps {
            throw ScoreSDEError.invalidArgument("DPM-Solver++ was given \(orders.count) per-step orders for a grid of \(grid.steps) steps")
        }
    }

    public func step(_ x: inout Tensor, mean: inout Tensor, state: inout History, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws {
        let sde = reverse.sde
        let (mt, st) = sde.noiseLevel(at: t), (mn, sn) = sde.noiseLevel(at: next)
        var x0 = state.spare ?? Tensor(zeros: x.shape)
        state.spare = nil
        dataPrediction(x, score: try reverse.score(x, at: t), m: mt, std: st, into: &x0)
        threshold?.apply(&x0)
        let lt = sde.halfLogSNR(at: t)
        let k = min(orders.map { $0[min(state.index, $0.count - 1)] } ?? order, state.predictions.count + 1)
        if sn == 0 {   // to clean data: the data prediction
            x.assign(x0, scaledBy: mn)
        } else {
            let h = sde.halfLogSNR(at: next) - lt
            let phi1 = Foundation.expm1(-h)
            let ratio = sn / st
            var terms: [(Tensor, Double)] = []
            switch k {
            case 1:
                terms = [(x0, -mn * phi1)]
            case 2:
                let r0 = (lt - state.lambdas[0]) / h
                terms = [(x0, -mn * phi1 * (1 + 0.5 / r0)), (state.predictions[0], 0.5 * mn * phi1 / r0)]
            default:
                let r0 = (lt - state.lambdas[0]) / h, r1 = (state.lambdas[0] - state.lambdas[1]) / h
                let phi2 = phi1 / h + 1, phi3 = phi2 / h - 0.5
                let a = mn * phi2, b = mn * phi3, q = r0 / (r0 + r1), w = 1 / (r0 + r1)
                let alpha = a * (1 + q) - b * w, beta = -a * q + b * w   // D1₀ and D1₁ weights
                terms = [(x0, -mn * phi1 + alpha / r0), (state.predictions[0], -alpha / r0 + beta / r1),
                         (state.predictions[1], -beta / r1)]
            }
            x.linearCombination(scale: ratio, terms)
        }
        mean.assign(x)   // a copy into the workspace: aliasing would copy the batch at the next update
        state.predictions.insert(x0, at: 0); state.lambdas.insert(lt, at: 0)
        if state.predictions.count > 2 { state.spare = state.predictions.removeLast(); state.lambdas.removeLast() }
        state.index += 1
    }
}

extension Tensor {
    /// `self = scale · self + Σ cᵢ tᵢ` in one pass (every `tᵢ` shaped like `self`; a precondition),
    /// summed left to right per element and split over threads by element, so the bits do not
    /// depend on the thread count. The update of every multistep predictor of the library
    /// (DPM-Solver++, UniPC) is one call.
    public mutating func linearCombination(scale: Double, _ terms: [(Tensor, Double)]) {
        let n = count, s = shape
        values.withUnsafeMutableBufferPointer { xp in
            guard let xb = xp.baseAddress else { return }
            Tensor.combine(into: xb, x: UnsafePointer(xb), count: n, shape: s, scale: scale, terms)
        }
    }

    /// `self = scale · x + Σ cᵢ tᵢ` in one pass, written into this tensor's own buffer (reshaped if
    /// needed): the same bits as `self = x; self.linearCombination(scale:_:)`, without the copy.
    public mutating func setLinearCombination(_ x: Tensor, scale: Double, _ terms: [(Tensor, Double)]) {
        if shape != x.shape { self = Tensor(zeros: x.shape) }
        let n = count, s = shape
        values.withUnsafeMutableBufferPointer { op in
            x.values.withUnsafeBufferPointer { xp in
                guard let ob = op.baseAddress, let xb = xp.baseAddress else { return }
                Tensor.combine(into: ob, x: xb, count: n, shape: s, scale: scale, terms)
            }
        }
    }

    /// `out[i] = scale · x[i] + Σ cⱼ tⱼ[i]` (`out` may be `x`).
    private static func combine(into out: UnsafeMutablePointer<Double>, x: UnsafePointer<Double>, count n: Int, shape: [Int],
                                scale: Double, _ terms: [(Tensor, Double)]) {
        for (t, _) in terms { precondition(t.count == n, "linearCombination: shape \(t.shape) does not match \(shape)") }
        let coefficients = terms.map(\.1)
        let arrays = terms.map(\.0.values)
        func go(_ k: Int, _ bases: [UnsafePointer<Double>]) {
            if k == arrays.count {
                Parallel.forEachChunk(n, grain: 1 << 14) { r in
                    for i in r {
                        var v = scale * x[i]
                        for j in 0 ..< bases.count { v += coefficients[j] * bases[j][i] }
                        out[i] = v
                    }
                }
                return
            }
            arrays[k].withUnsafeBufferPointer { p in go(k + 1, bases + [p.baseAddress!]) }
        }
        go(0, [])
    }
}

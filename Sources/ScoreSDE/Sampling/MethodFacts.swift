/// What a sampling method states about itself — its orders, its cost, whether it is deterministic,
/// the grid it is meant for — so that a tool (the CLI, a benchmark, a user's driver) asks the method
/// instead of keeping its own table.
///
///     let facts = DPMSolverPlusPlus.facts
///     let steps = nfe / facts.evaluationsPerStep                   // 1 evaluation per step
///     try facts.checkOrder(2)                                      // orders 1 ... 3
///     let grid = try TimeGrid.spaced(facts.defaultSpacing(nfe: nfe, dimension: d), steps: steps, from: sde.T, to: 1e-3, sde: sde)
public struct MethodFacts: Sendable {
    /// The method's usual name (`ddim`, `dpm-solver++`, …).
    public let name: String
    /// The orders it has.
    public let orders: ClosedRange<Int>
    /// Its order when none is chosen.
    public let defaultOrder: Int
    /// Score evaluations per step (Heun: 2).
    public let evaluationsPerStep: Int
    /// A multistep method needs `order − 1` earlier steps for its full order, so a run of order `p`
    /// takes at least `p` steps.
    public let multistep: Bool
    /// Same start, same result: no noise is drawn during the solve (DDIM: with `eta = 0`).
    public let deterministic: Bool
    private let spacing: @Sendable (_ nfe: Int, _ dimension: Int) -> TimeSpacing

    public init(name: String, orders: ClosedRange<Int>, defaultOrder: Int, evaluationsPerStep: Int, multistep: Bool,
                deterministic: Bool, defaultSpacing: @escaping @Sendable (_ nfe: Int, _ dimension: Int) -> TimeSpacing) {
        self.name = name; self.orders = orders; self.defaultOrder = defaultOrder; self.evaluationsPerStep = evaluationsPerStep
        self.multistep = multistep; self.deterministic = deterministic; self.spacing = defaultSpacing
    }

    /// The grid spacing the method is meant for at a budget of `nfe` evaluations on data of
    /// `dimension` values per sample (the best of `scoresde-bench fast`, or the reference's).
    public func defaultSpacing(nfe: Int, dimension: Int) -> TimeSpacing { spacing(nfe, dimension) }

    /// The fewest score evaluations a run of order `order` takes.
    public func minimumEvaluations(order: Int) -> Int { multistep ? order * evaluationsPerStep : evaluationsPerStep }

    /// Throws ``ScoreSDEError/invalidParameter(_:)`` (named `order`) unless the method has order `order`.
    public func checkOrder(_ order: Int) throws {
        guard !orders.contains(order) else { return }
        throw ScoreSDEError.invalid("order", order, must: "an order of \(name)", advice: "\(name) has \(MethodFacts.orderList(orders))")
    }

    /// `first order`, `orders 1 and 2`, `orders 1, 2 and 3`.
    public static func orderList(_ orders: ClosedRange<Int>) -> String {
        let ordinals = ["first", "second", "third", "fourth"]
        if orders.count == 1, let k = orders.first, k >= 1, k <= ordinals.count { return "\(ordinals[k - 1]) order" }
        let names = orders.map(String.init)
        return "orders " + (names.count <= 1 ? names.joined() : names.dropLast().joined(separator: ", ") + " and " + names.last!)
    }
}

/// A predictor that states its facts (``MethodFacts``).
public protocol DescribedPredictor: Predictor {
    /// The method's facts (per type).
    static var facts: MethodFacts { get }
    /// Whether this configured instance is deterministic (DDIM: `eta == 0`).
    var isDeterministic: Bool { get }
}

extension DescribedPredictor {
    public var isDeterministic: Bool { Self.facts.deterministic }
}

extension DDIM: DescribedPredictor {
    /// First order, 1 evaluation per step, uniform in t (the best of `scoresde-bench fast`); deterministic with `eta = 0`.
    public static let facts = MethodFacts(name: "ddim", orders: 1 ... 1, defaultOrder: 1, evaluationsPerStep: 1, multistep: false,
                                          deterministic: true, defaultSpacing: { _, _ in .timeUniform })
    public var isDeterministic: Bool { eta == 0 }
}

extension DPMSolverPlusPlus: DescribedPredictor {
    /// Orders 1–3 (default 3), multistep, 1 evaluation per step, uniform in logSNR (the reference's).
    public static let facts = MethodFacts(name: "dpm-solver++", orders: 1 ... 3, defaultOrder: 3, evaluationsPerStep: 1, multistep: true,
                                          deterministic: true, defaultSpacing: { _, _ in .logSNR })
}

extension UniPC: DescribedPredictor {
    /// Orders 1–3, multistep, 1 evaluation per step; default order and spacing from
    /// ``FewStepRecommendation`` for the budget and the data dimension.
    public static let facts = MethodFacts(name: "unipc", orders: 1 ... 3, defaultOrder: 3, evaluationsPerStep: 1, multistep: true,
                                          deterministic: true, defaultSpacing: { nfe, d in FewStepRecommendation.spacing(nfe: nfe, dimension: d) })
}

extension EDMHeun: DescribedPredictor {
    /// Second order, 2 evaluations per step (1 on a last step to t = 0), uniform in t.
    public static let facts = MethodFacts(name: "heun", orders: 2 ... 2, defaultOrder: 2, evaluationsPerStep: 2, multistep: false,
                                          deterministic: true, defaultSpacing: { _, _ in .timeUniform })
}

extension SDEDPMSolverPlusPlus: DescribedPredictor {
    /// Orders 1–2 (default 2), multistep, 1 evaluation per step, stochastic, uniform in logSNR.
    public static let facts = MethodFacts(name: "sde-dpm-solver++", orders: 1 ... 2, defaultOrder: 2, evaluationsPerStep: 1, multistep: true,
                                          deterministic: false, defaultSpacing: { _, _ in .logSNR })
}

/// The shape every reverse-time solve shares: built from its problem (SDE, score, start, time span),
/// advanced one step of its real loop at a time, finished when `step()` returns `nil`.
///
/// ``ReverseIntegrator`` (fixed grids: PC and the few-step predictors), ``AdaptiveUniPCIntegrator``
/// (one attempt per step) and ``AdaptiveSDEIntegrator`` (every active row one attempt per step, each
/// at its own time) conform; each step emits a ``StepEvent`` with the NFE so far (batched model
/// calls, counted by the reverse process), the accepted and rejected steps, and the per-row times
/// where rows differ. Code that watches or drives a solve — progress lines, checkpoints, a custom
/// stopping rule — is written once for all of them:
///
///     func run<S: SteppedSolve>(_ solve: inout S) throws -> S.Output {
///         while let event = try solve.step() { print(event.scoreEvaluations, event.acceptedSteps) }
///         return try solve.result()
///     }
public protocol SteppedSolve {
    /// What a finished solve returns (its samples and what they cost).
    associatedtype Output
    /// Advances exactly one step and describes it; `nil` once the solve is finished.
    mutating func step() throws -> StepEvent?
    /// Whether every step has been taken.
    var isFinished: Bool { get }
    /// The result of a finished solve (throws if it is not finished or diverged).
    func result() throws -> Output
}

extension SteppedSolve {
    /// Runs every remaining step, calling `onStep` after each, and returns the result.
    public mutating func solve(onStep: ((StepEvent) -> Void)? = nil) throws -> Output {
        while let e = try step() { onStep?(e) }
        return try result()
    }
}

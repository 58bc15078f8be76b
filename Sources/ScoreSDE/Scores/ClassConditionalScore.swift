import Foundation

/// A class-conditional ``MLPScore`` at fixed labels: `s(x, t, y)` as a ``ScoreModel`` (so every
/// sampler, the ODE and likelihoods can use it). `nil` is the null label `∅`: the unconditional
/// score of a network trained with label dropout (Ho & Salimans 2022).
///
///     let digits = try PretrainedModels.digitsMLP()
///     let three = try digits.conditioned(on: [3])                      // s(x, t, 3) for every row
///     let guided = try digits.classifierFreeGuided(labels: [3], guidanceScale: 2)
public struct ClassConditionedScore: ScoreJacobianProviding {
    public let model: MLPScore
    /// One label for every row, or one per row (then calls must pass all rows at once).
    public let labels: [Int?]

    /// - Throws: `invalidParameter` for a label outside the model's classes, or any label on an
    ///   unconditional model; `invalidParameter` when `labels` is empty.
    public init(model: MLPScore, labels: [Int?]) throws {
        guard !labels.isEmpty else { throw ScoreSDEError.invalid("labels", labels, must: "non-empty", advice: "give at least one class label (nil for the null label)") }
        _ = try model.labelIndices(labels, rows: labels.count)
        self.model = model; self.labels = labels
    }

    public var rowShape: [Int]? { model.rowShape }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        try model.score(x, at: t, labels: labels)
    }

    /// Each row at its own time, in one pass of the MLP.
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        out = try model.score(x, at: times, labels: labels)
    }

    public func scoreAndJVP(_ x: Tensor, at t: Double, direction v: Tensor) throws -> (score: Tensor, jvp: Tensor) {
        try model.scoreAndJVP(x, at: t, direction: v, labels: labels)
    }
}

extension MLPScore {
    /// The score at fixed labels (one for all rows, or one per row; `nil`: the null label).
    public func conditioned(on labels: [Int?]) throws -> ClassConditionedScore {
        try ClassConditionedScore(model: self, labels: labels)
    }

    /// Classifier-free guidance in score form with the GLIDE / diffusers scale `w`:
    /// `s̃ = s(x, t, ∅) + w (s(x, t, y) − s(x, t, ∅))` — `w = 0` unconditional, `w = 1` the plain
    /// conditional score, `w > 1` guided. (Ho & Salimans write the same as `(1 + w') s_y − w' s_∅`
    /// with `w' = w − 1`, the ``ClassifierFreeGuidance`` scale.) Two network passes per evaluation.
    ///
    /// - Throws: `invalidArgument` for an unconditional model, a label outside its classes, or a
    ///   non-finite scale.
    public func classifierFreeGuided(labels: [Int?], guidanceScale w: Double) throws
        -> ClassifierFreeGuidance<ClassConditionedScore, ClassConditionedScore> {
        guard architecture.classCount > 0 else {
            throw ScoreSDEError.invalidArgument("classifier-free guidance needs a class-conditional model; this one was trained without labels")
        }
        try requireParameter(w.isFinite, name: "guidanceScale", value: w, requirement: "finite")
        return ClassifierFreeGuidance(conditional: try conditioned(on: labels), unconditional: try conditioned(on: [nil]),
                                      guidanceScale: w)
    }
}

extension ClassifierFreeGuidance {
    /// Guidance with the GLIDE / diffusers scale `w`: `s_u + w (s_c − s_u)`, i.e. `scale = w − 1`.
    public init(conditional: Conditional, unconditional: Unconditional, guidanceScale w: Double) {
        self.init(conditional: conditional, unconditional: unconditional, scale: w - 1)
    }

    /// The GLIDE / diffusers scale `w = scale + 1`.
    public var guidanceScale: Double { scale + 1 }
}

extension Tensor {
    /// The rows at `indices`, in that order.
    func gatherRows(_ indices: [Int]) -> Tensor {
        let d = rowSize
        var out = [Double](repeating: 0, count: indices.count * d)
        storage.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (r, i) in indices.enumerated() {
                    (dst.baseAddress! + r * d).update(from: src.baseAddress! + i * d, count: d)
                }
            }
        }
        return Tensor(uncheckedShape: [indices.count] + rowShape, storage: out)
    }

    /// Writes the rows of `part` to rows `indices` of `self` (the inverse of ``gatherRows(_:)``).
    mutating func scatterRows(_ indices: [Int], from part: Tensor) {
        let d = rowSize
        precondition(part.count == indices.count * d, "scatterRows: \(part.count) values for \(indices.count) rows of \(d)")
        part.storage.withUnsafeBufferPointer { src in
            storage.withUnsafeMutableBufferPointer { dst in
                for (r, i) in indices.enumerated() {
                    (dst.baseAddress! + i * d).update(from: src.baseAddress! + r * d, count: d)
                }
            }
        }
    }
}

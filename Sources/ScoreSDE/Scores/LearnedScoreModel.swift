/// A trained score network and what it was trained on: the forward SDE, the data ↔ model space
/// map, the sample shape and the class labels. ``MLPScore`` and ``UNetScore`` conform, so code that
/// samples, evaluates likelihoods or solves inverse problems with a learned model need not know
/// which network it is.
///
///     let model: any LearnedScoreModel = try UNetScore.read("unet.safetensors")
///     let sde = try model.sdeSpec.make()
///     let guided = try model.classifierFreeGuidedScore(labels: [3], guidanceScale: 2)
///     let images = model.dataScaling.toData(samples)          // back to data space
public protocol LearnedScoreModel: ScoreModel {
    /// The forward SDE the network was trained for (sample and evaluate with this one).
    var sdeSpec: SDESpec { get }
    /// Data → model space map of the training data (`x_model = scale · x_data + shift`).
    var dataScaling: DataScaling { get }
    /// Trained on uniformly dequantized integer levels `0 ... L−1`; nil: continuous data.
    var dequantizationLevels: Int? { get }
    /// The time its likelihood is stated at (its smallest training time), nil: the caller's choice.
    var likelihoodEps: Double? { get }
    /// The number of classes `K` of a class-conditional network (label `K` is the null label), 0
    /// for an unconditional one.
    var classCount: Int { get }
    /// The shape of one sample (``ScoreModel/rowShape`` of a learned model is never nil).
    var sampleShape: [Int] { get }
    /// The score at fixed labels: one label for every row or one per row (then calls pass all rows
    /// at once); `nil` is the null label.
    /// - Throws: `invalidArgument` for a label outside `0..<classCount` or any label on an
    ///   unconditional model.
    func conditionedScore(on labels: [Int?]) throws -> any ScoreModel
    /// Classifier-free guidance with the GLIDE / diffusers scale `w`: `s(x, t, ∅) + w (s(x, t, y) − s(x, t, ∅))`.
    /// - Throws: `invalidArgument` for an unconditional model, a label outside its classes or a
    ///   non-finite scale.
    func classifierFreeGuidedScore(labels: [Int?], guidanceScale w: Double) throws -> any ScoreModel
}

extension LearnedScoreModel {
    public var likelihoodEps: Double? { nil }
}

// `sampleShape` and `classCount` of both come with their `DenoisingScoreNetwork` conformances (Training/).
extension MLPScore: LearnedScoreModel {
    public func conditionedScore(on labels: [Int?]) throws -> any ScoreModel { try conditioned(on: labels) }
    public func classifierFreeGuidedScore(labels: [Int?], guidanceScale w: Double) throws -> any ScoreModel {
        try classifierFreeGuided(labels: labels, guidanceScale: w)
    }
}

extension UNetScore: LearnedScoreModel {
    public func conditionedScore(on labels: [Int?]) throws -> any ScoreModel { try conditioned(on: labels) }
    public func classifierFreeGuidedScore(labels: [Int?], guidanceScale w: Double) throws -> any ScoreModel {
        try classifierFreeGuided(labels: labels, guidanceScale: w)
    }

    /// The score at fixed labels (one for all rows, or one per row; `nil`: the null label).
    /// - Throws: `invalidArgument` for an unconditional model or a label out of range; `invalidArgument` for no labels.
    public func conditioned(on labels: [Int?]) throws -> UNetConditionedScore {
        try UNetConditionedScore(model: self, labels: labels)
    }

    /// Classifier-free guidance in score form with the GLIDE / diffusers scale `w` (as
    /// ``MLPScore/classifierFreeGuided(labels:guidanceScale:)``): two network passes per evaluation.
    /// - Throws: `invalidArgument` for an unconditional model, a label outside its classes, or a
    ///   non-finite scale.
    public func classifierFreeGuided(labels: [Int?], guidanceScale w: Double) throws
        -> ClassifierFreeGuidance<UNetConditionedScore, UNetConditionedScore> {
        guard classCount > 0 else {
            throw ScoreSDEError.invalidArgument("classifier-free guidance needs a class-conditional model; this U-Net was trained without labels")
        }
        try requireParameter(w.isFinite, name: "guidanceScale", value: w, requirement: "finite")
        return ClassifierFreeGuidance(conditional: try conditioned(on: labels), unconditional: try conditioned(on: [nil]),
                                      guidanceScale: w)
    }
}

/// A class-conditional ``UNetScore`` at fixed labels, one for every row or one per row (`nil`:
/// the null label), as a ``ScoreModel`` with vector–Jacobian products.
public struct UNetConditionedScore: ScoreVJPProviding {
    public let model: UNetScore
    public let labels: [Int?]

    /// - Throws: `invalidParameter` for no labels, a label outside the model's classes or any label
    ///   on an unconditional model.
    public init(model: UNetScore, labels: [Int?]) throws {
        guard !labels.isEmpty else { throw ScoreSDEError.invalid("labels", labels, must: "non-empty", advice: "give at least one class label (nil for the null label)") }
        _ = try model.labelIndices(labels, rows: labels.count)
        self.model = model; self.labels = labels
    }

    public var rowShape: [Int]? { model.rowShape }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        try model.score(x, at: t, labels: labels)
    }

    /// Each row at its own time, in one pass of the U-Net.
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        out = try model.score(x, at: times, labels: labels)
    }

    public func scoreAndVJP(_ x: Tensor, at t: Double, cotangent u: Tensor) throws -> (score: Tensor, vjp: Tensor) {
        try model.scoreAndVJP(x, at: t, cotangent: u, labels: labels)
    }
}

extension ClassifierFreeGuidance: ScoreVJPProviding where Conditional: ScoreVJPProviding, Unconditional: ScoreVJPProviding {
    /// `(1 + w) Jᵀ_c u − w Jᵀ_u u`, the guided score's vector–Jacobian product (the map is linear).
    public func scoreAndVJP(_ x: Tensor, at t: Double, cotangent u: Tensor) throws -> (score: Tensor, vjp: Tensor) {
        guard scale.isFinite else { throw ScoreSDEError.invalid("scale", scale, must: "finite (the guidance scale)") }
        var (s, j) = try conditional.scoreAndVJP(x, at: t, cotangent: u)
        if scale == 0 { return (s, j) }
        let (su, ju) = try unconditional.scoreAndVJP(x, at: t, cotangent: u)
        s.scale(by: 1 + scale, adding: su, scaledBy: -scale)
        j.scale(by: 1 + scale, adding: ju, scaledBy: -scale)
        return (s, j)
    }
}



/// A ``DiffusersScore`` with one class label for all rows or one per row (nil: the null label).
public struct DiffusersConditionedScore: ScoreVJPProviding {
    public let model: DiffusersScore
    public let labels: [Int?]

    public init(model: DiffusersScore, labels: [Int?]) throws {
        guard !labels.isEmpty else { throw ScoreSDEError.invalid("labels", labels, must: "non-empty", advice: "give at least one class label (nil for the null label)") }
        _ = try model.network.labelIndices(labels, rows: labels.count)
        self.model = model; self.labels = labels
    }

    public var rowShape: [Int]? { model.rowShape }

    public func score(_ x: Tensor, at t: Double) throws -> Tensor {
        var out = Tensor(zeros: x.shape)
        let rows = try model.network.labelIndices(labels, rows: x.rows)
        try model.score(x, at: t, labelRows: rows, into: &out)
        return out
    }

    /// Each row at its own time, in one pass of the network.
    public func score(_ x: Tensor, at times: [Double], into out: inout Tensor) throws {
        try model.score(x, at: times, labelRows: try model.network.labelIndices(labels, rows: x.rows), into: &out)
    }

    public func scoreAndVJP(_ x: Tensor, at t: Double, cotangent u: Tensor) throws -> (score: Tensor, vjp: Tensor) {
        try model.scoreAndVJP(x, at: t, cotangent: u, labelRows: try model.network.labelIndices(labels, rows: x.rows))
    }
}

extension ModelFile {
    /// The trained score model in a file written by `scoresde train` (weights or checkpoint, its
    /// EMA weights): a ``UNetScore`` when the file's metadata says `model = unet`, else an
    /// ``MLPScore`` (whose loader reads both kinds of file and names what is wrong with others).
    ///
    ///     let model = try ModelFile.loadScoreModel("digits-run.safetensors")
    ///     let x = model.dataScaling.toData(samples)
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a missing, corrupt or foreign file.
    public static func loadScoreModel(_ path: String) throws -> any LearnedScoreModel {
        let file = try Safetensors.read(path)
        if file.metadata["model"] == "unet" { return try UNetScore.read(file) }
        return try MLPScore.load(file)
    }
}

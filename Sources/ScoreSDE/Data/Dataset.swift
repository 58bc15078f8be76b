import Foundation

/// A data set as the CLI uses it: raw data rows, their row shape, the default normalization into model
/// space and the number of levels of discrete data.
///
///     let moons = try Dataset.named("moons", count: 5000, seed: 1)
///     let user = try Dataset.npy("my_data.npy")                 // rows first, finite values
///     let x = try moons.scaledData()                            // data in model space
///
/// Built-in names: `ring`, `moons`, `swissroll`, `checkerboard` (2-D, continuous, default
/// 10 000 points), `digits` (8 × 8 grey, 17 levels, the 1500 training digits), `digits-test` (the
/// 297 held-out digits; with a count, the first `count` of them), `patches`
/// (8 × 8 RGB, 256 levels, the 6360 non-overlapping patches of the training part of the packaged
/// photographs), `fashion-mnist` (28 × 28 grey, 256 levels, the 60 000 Fashion-MNIST training
/// images with labels; Debian's `dataset-fashion-mnist`) and `fashion-mnist-test` (its 10 000
/// test images, for evaluation only).
///
/// The test splits (``testSplitNames``) are for evaluation: ``forTraining(_:count:seed:)``, which
/// `scoresde train` uses, refuses them.
public struct Dataset: Sendable, Equatable, CustomStringConvertible {
    /// The data set's name (`moons`, `digits`, ... or the `.npy` path).
    public let name: String
    /// Raw data, rows first (digits `0 ... 16`, patches `0 ... 255`, toys and `.npy` files as they are).
    public let data: Tensor
    /// The default normalization into model space.
    public let normalization: DataNormalization
    /// The number of levels of discrete data (digits 17, patches 256); nil for continuous data.
    public let levels: Int?
    /// One line saying what the data are.
    public let description: String
    /// The class of each row (digits: their digit; toys: component, arm or square; see
    /// ``Toy2D/labels(_:points:startingFrom:)``), or nil for unlabelled data.
    public let labels: [Int]?
    /// The number of classes of ``labels`` (0 without labels).
    public let classCount: Int

    /// The shape of one row, e.g. `[2]` or `[3, 8, 8]`.
    public var rowShape: [Int] { data.rowShape }
    /// Number of rows.
    public var count: Int { data.rows }

    public init(name: String, data: Tensor, normalization: DataNormalization, levels: Int?, description: String,
                labels: [Int]? = nil, classCount: Int = 0) {
        self.name = name; self.data = data; self.normalization = normalization; self.levels = levels; self.description = description
        self.labels = labels; self.classCount = labels == nil ? 0 : classCount
    }

    /// The names accepted by ``named(_:count:seed:)``.
    public static let builtInNames = Toy2D.names + ["digits", "digits-test", "patches", "fashion-mnist", "fashion-mnist-test"]

    /// The built-in held-out test splits: for evaluation (likelihoods, metrics), never for training.
    public static let testSplitNames = ["digits-test", "fashion-mnist-test"]

    /// Whether this is a built-in held-out test split (``testSplitNames``).
    public var isTestSplit: Bool { Self.testSplitNames.contains(name) }

    /// Points of a 2-D toy when `count` is nil.
    public static let defaultToyCount = 10_000

    /// A built-in data set.
    ///
    /// - `ring`, `moons`, `swissroll`, `checkerboard`: `count` points (default 10 000) from
    ///   `RandomSource(seed:)`, see ``Toy2D``; normalization ``DataNormalization/none``.
    /// - `digits`: the 1500 training digits (``Digits/Split/train``) when `count` is nil, else `count`
    ///   (≤ 1500) of them chosen without replacement by a permutation seeded with `seed`;
    ///   `[n, 1, 8, 8]`, 17 levels, normalization ``DataNormalization/unit`` (the reference's default `centered = False`).
    /// - `patches`: the training split only (``ImagePatches/Split/train``, the left three quarters of
    ///   each photograph): its 6360 non-overlapping patches (``ImagePatches/all(split:)``) when `count` is nil,
    ///   else `count` random patches of it from `RandomSource(seed:)`; `[n, 3, 8, 8]`, 256 levels, normalization ``DataNormalization/unit``.
    /// - `fashion-mnist`: the 60 000 training images (``FashionMNIST/trainingSplit(directory:)``) with
    ///   their labels when `count` is nil, else `count` of them chosen without replacement by a
    ///   permutation seeded with `seed`; `[n, 1, 28, 28]`, 256 levels, normalization ``DataNormalization/unit``.
    /// - `fashion-mnist-test`: the 10 000 test images (``FashionMNIST/testSplitForEvaluation(directory:)``)
    ///   when `count` is nil, else a random subset of `count` of them chosen without replacement by a
    ///   permutation seeded with `seed` (a stated random subset, as evaluations report); for evaluation only.
    ///
    /// - Throws: ``ScoreSDEError/unknownName(_:)`` listing the valid names; ``ScoreSDEError/invalidParameter(_:)`` for a bad count;
    ///   ``ScoreSDEError/missingDataSet(_:)`` for Fashion-MNIST when its package is not installed.
    public static func named(_ name: String, count: Int? = nil, seed: UInt64 = 0) throws -> Dataset {
        if let c = count, c < 1 {
            throw ScoreSDEError.invalid("count", c, must: ">= 1 (the number of data points)", advice: "pass nil for the whole data set")
        }
        var rng = RandomSource(seed: seed)
        switch name {
        case _ where Toy2D.names.contains(name):
            let n = count ?? defaultToyCount
            let start = rng
            let x = try Toy2D.sample(name, count: n, using: &rng)
            let labels = try Toy2D.labels(name, points: x, startingFrom: start)
            let what: String
            switch name {
            case "ring": what = "8 Gaussians (std 0.25) on a circle of radius 4"
            case "moons": what = "two interleaving half circles (noise 0.05), in [-2, 2] x [-1, 1]"
            case "swissroll": what = "2-D swiss roll (noise 0.5 before scaling), radius <= 2"
            default: what = "uniform on the dark squares of a 4x4 checkerboard on [-2, 2]^2"
            }
            return Dataset(name: name, data: x, normalization: .none, levels: nil,
                           description: "\(name): \(n) points in 2-D, \(what), seed \(seed)",
                           labels: labels, classCount: try Toy2D.classCount(name))
        case "digits":
            let train = try Digits.load(split: .train)
            if let n = count {
                guard n <= Digits.trainCount else {
                    throw ScoreSDEError.invalid("count", n, must: "<= \(Digits.trainCount), the training images of digits", advice: "omit the count to use all of them")
                }
                let picked = train.subset(Array(permutation(Digits.trainCount, using: &rng).prefix(n)))
                return Dataset(name: name, data: picked.images, normalization: .unit, levels: Digits.levels,
                               description: "digits: \(n) of the \(Digits.trainCount) training 8x8 grey digits (values 0...16), chosen with seed \(seed)",
                               labels: picked.labels, classCount: 10)
            }
            return Dataset(name: name, data: train.images, normalization: .unit, levels: Digits.levels,
                           description: "digits: the \(Digits.trainCount) training 8x8 grey digits (values 0...16)",
                           labels: train.labels, classCount: 10)
        case "digits-test":
            let test = try Digits.load(split: .heldOut)
            let picked = try count.map { n -> Digits in
                guard n <= Digits.heldOutCount else {
                    throw ScoreSDEError.invalid("count", n, must: "<= \(Digits.heldOutCount), the held-out images of digits-test", advice: "omit the count to use all of them")
                }
                return test.subset(0 ..< n)
            } ?? test
            return Dataset(name: name, data: picked.images, normalization: .unit, levels: Digits.levels,
                           description: "digits-test: \(picked.labels.count) of the \(Digits.heldOutCount) held-out 8x8 grey digits (the last in file order; values 0...16)",
                           labels: picked.labels, classCount: 10)
        case "patches":
            // The training split only: the right quarter of each photograph is held out (colorize demo, benchmark).
            if let n = count {
                let x = try ImagePatches.random(count: n, split: .train, using: &rng)
                return Dataset(name: name, data: x, normalization: .unit, levels: ImagePatches.levels,
                               description: "patches: \(n) random 8x8 RGB patches (values 0...255) of the left three quarters of china.png and flower.png, seed \(seed)")
            }
            let x = try ImagePatches.all(split: .train)
            return Dataset(name: name, data: x, normalization: .unit, levels: ImagePatches.levels,
                           description: "patches: all \(x.rows) non-overlapping 8x8 RGB patches (values 0...255) of the left three quarters of china.png and flower.png")
        case "fashion-mnist":
            let train = try FashionMNIST.trainingSplit()
            let total = FashionMNIST.trainCount
            let picked: FashionMNIST
            if let n = count {
                guard n <= total else {
                    throw ScoreSDEError.invalid("count", n, must: "<= \(total), the training images of fashion-mnist", advice: "omit the count to use all of them")
                }
                picked = train.subset(Array(permutation(total, using: &rng).prefix(n)))
            } else {
                picked = train
            }
            let which = count.map { "\($0) of the \(total) training images, chosen with seed \(seed)" } ?? "the \(total) training images"
            return Dataset(name: name, data: picked.images, normalization: .unit, levels: FashionMNIST.levels,
                           description: "fashion-mnist: \(which), 28x28 grey (values 0...255), 10 classes",
                           labels: picked.labels, classCount: FashionMNIST.classNames.count)
        case "fashion-mnist-test":
            let test = try FashionMNIST.testSplitForEvaluation()
            let total = FashionMNIST.testCount
            let picked = try count.map { n -> FashionMNIST in
                guard n <= total else {
                    throw ScoreSDEError.invalid("count", n, must: "<= \(total), the test images of fashion-mnist-test", advice: "omit the count to use all of them")
                }
                return test.subset(Array(permutation(total, using: &rng).prefix(n)))
            } ?? test
            let which = count.map { "\($0) of the \(total) held-out test images, a random subset chosen with seed \(seed)" } ?? "the \(total) held-out test images"
            return Dataset(name: name, data: picked.images, normalization: .unit, levels: FashionMNIST.levels,
                           description: "fashion-mnist-test: \(which), 28x28 grey (values 0...255), for evaluation only",
                           labels: picked.labels, classCount: FashionMNIST.classNames.count)
        default:
            throw ScoreSDEError.unknownName("'\(name)' is not a built-in data set; choose one of \(builtInNames.joined(separator: ", ")) or a .npy file")
        }
    }

    /// User data from a `.npy` file (any numeric dtype ``Npy`` reads), rows first: shape `[n]` is
    /// read as `n` rows of one value, `[n, d₁, ...]` as `n` rows of shape `[d₁, ...]`. Continuous
    /// (normalization ``DataNormalization/none``, no levels).
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a missing or unreadable file,
    ///   ``ScoreSDEError/invalidArgument(_:)`` for an empty array, ``ScoreSDEError/nonFinite(_:)``
    ///   naming the first NaN or ±Inf.
    public static func npy(_ path: String) throws -> Dataset {
        var x = try Npy.read(path)
        if x.shape.count == 1 { x = try x.reshaped([x.shape[0], 1]) }
        guard x.rows >= 1, x.rowSize >= 1 else {
            throw ScoreSDEError.invalidArgument("\(path): the array of shape \(x.shape) holds no data; save at least one row of at least one value")
        }
        try x.checkFinite("data file \(path)")
        let shape = x.rowShape.map(String.init).joined(separator: "x")
        return Dataset(name: path, data: x, normalization: .none, levels: nil,
                       description: "\((path as NSString).lastPathComponent): \(x.rows) rows of shape [\(shape)] from \(path)")
    }

    /// A built-in name, or a `.npy` file when `spec` is `npy:PATH` or ends in `.npy`.
    public static func load(_ spec: String, count: Int? = nil, seed: UInt64 = 0) throws -> Dataset {
        if spec.hasPrefix("npy:") { return try npy(String(spec.dropFirst(4))) }
        if spec.hasSuffix(".npy") { return try npy(spec) }
        return try named(spec, count: count, seed: seed)
    }

    /// ``load(_:count:seed:)`` for training: refuses the held-out test splits (``testSplitNames``),
    /// so that no model is fitted to the data it is evaluated on.
    ///
    /// - Throws: ``ScoreSDEError/invalidArgument(_:)`` naming the training split to use instead; what ``load(_:count:seed:)`` throws.
    public static func forTraining(_ spec: String, count: Int? = nil, seed: UInt64 = 0) throws -> Dataset {
        if testSplitNames.contains(spec) {
            let train = String(spec.dropLast("-test".count))
            throw ScoreSDEError.invalidArgument("\(spec) is a held-out test split, for evaluation only (likelihood, encode); train on \(train), its training split")
        }
        return try load(spec, count: count, seed: seed)
    }

    /// ``data`` in model space under ``normalization`` (the data themselves for ``DataNormalization/none``).
    public func scaledData() throws -> Tensor {
        normalization == .none ? data : try normalization.scale(data, levels: levels ?? 0)
    }

    /// ``normalization`` as the affine ``DataScaling`` the trainer and score models store
    /// (model = scale · raw + shift).
    public var dataScaling: DataScaling {
        guard normalization != .none, let levels, let s = try? normalization.dataScaling(levels: levels) else { return .identity }
        return s
    }

    /// A uniform random permutation of `0 ..< n` (Fisher–Yates on stream `(draw, 0)`; one draw of `rng`).
    static func permutation(_ n: Int, using rng: inout RandomSource) -> [Int] {
        var s = rng.stream(draw: rng.nextDraw(), row: 0)
        var p = Array(0 ..< n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                p.swapAt(i, ImagePatches.uniformInt(&s, i + 1))
            }
        }
        return p
    }
}

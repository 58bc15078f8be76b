import Foundation

/// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, Zalando Research; MIT licence): 28 × 28 grey images
/// of clothing in ten classes, 60 000 for training and 10 000 for testing, read from the IDX files
/// of Debian's `dataset-fashion-mnist` (installed by `scripts/setup.sh`).
///
///     let train = try FashionMNIST.trainingSplit()             // [60000, 1, 28, 28], values 0...255
///     let x = try DataNormalization.symmetric.scale(train.images, levels: FashionMNIST.levels)
///     FashionMNIST.classNames[train.labels[0]]                 // "Ankle boot"
///
///     // Evaluation only (likelihoods, metrics): never train on it.
///     let test = try FashionMNIST.testSplitForEvaluation()     // [10000, 1, 28, 28]
///
/// The two splits have separate, explicitly named accessors and no `split:` parameter, so that
/// code which trains cannot reach the test split by passing a variable; `scoresde train` refuses
/// the test split by name (``Dataset/testSplitNames``).
///
/// Where the files are: the `directory` argument if given, else the folder in the environment
/// variable ``directoryVariable`` (`SCORESDE_FASHION_MNIST`), else Debian's
/// ``debianDirectory`` (`/usr/share/datasets/fashion-mnist`). In that folder each file may be
/// gzipped (`train-images-idx3-ubyte.gz`, as distributed) or not (`train-images-idx3-ubyte`).
/// Missing files throw ``ScoreSDEError/missingDataSet(_:)`` naming the package and the set-up
/// command; files that are not Fashion-MNIST (type, shape, count, labels) throw
/// ``ScoreSDEError/idx(path:problem:)``.
public struct FashionMNIST: Sendable, Equatable {
    /// Images `[n, 1, 28, 28]` (one channel, rows top to bottom), raw values `0 ... 255`.
    public let images: Tensor
    /// Class labels `0 ... 9`, one per image (see ``classNames``).
    public let labels: [Int]

    /// Side of an image in pixels.
    public static let side = 28
    /// Intensity levels of the raw pixels (`0 ... 255`).
    public static let levels = 256
    /// Number of training images.
    public static let trainCount = 60_000
    /// Number of test images.
    public static let testCount = 10_000
    /// The classes, in label order.
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    /// The Debian package that installs the files.
    public static let debianPackage = "dataset-fashion-mnist"
    /// Where the Debian package puts the files.
    public static let debianDirectory = "/usr/share/datasets/fashion-mnist"
    /// The environment variable naming a folder with the files, for a machine without the package.
    public static let directoryVariable = "SCORESDE_FASHION_MNIST"

    public init(images: Tensor, labels: [Int]) {
        self.images = images
        self.labels = labels
    }

    /// The 60 000 training images and their labels: the only split to train on.
    ///
    /// - Parameter directory: a folder holding the IDX files; nil for ``directoryVariable`` or the Debian package's folder.
    /// - Throws: ``ScoreSDEError/missingDataSet(_:)`` when a file is missing; ``ScoreSDEError/idx(path:problem:)``
    ///   for a malformed file or one that is not Fashion-MNIST's training split.
    public static func trainingSplit(directory: String? = nil) throws -> FashionMNIST {
        try load(.train, directory: directory)
    }

    /// The 10 000 test images and their labels, for evaluation only (likelihoods, sample quality):
    /// a model must never be trained on them.
    ///
    /// - Parameter directory: a folder holding the IDX files; nil for ``directoryVariable`` or the Debian package's folder.
    /// - Throws: as ``trainingSplit(directory:)``.
    public static func testSplitForEvaluation(directory: String? = nil) throws -> FashionMNIST {
        try load(.test, directory: directory)
    }

    /// The folder the files are read from when no `directory` is given: ``directoryVariable``'s
    /// value if it is set and not empty, else ``debianDirectory``.
    public static var defaultDirectory: String {
        if let d = ProcessInfo.processInfo.environment[directoryVariable], !d.isEmpty { return d }
        return debianDirectory
    }

    /// The images at `range` (file order).
    public func subset(_ range: Range<Int>) -> FashionMNIST {
        FashionMNIST(images: images.rows(range), labels: Array(labels[range]))
    }

    /// The images at `indices`, in that order.
    public func subset(_ indices: [Int]) -> FashionMNIST {
        let d = images.rowSize
        var storage = [Double]()
        storage.reserveCapacity(indices.count * d)
        images.storage.withUnsafeBufferPointer { p in
            for i in indices { storage.append(contentsOf: p[i * d ..< (i + 1) * d]) }
        }
        return FashionMNIST(images: Tensor(uncheckedShape: [indices.count] + images.rowShape, storage: storage),
                            labels: indices.map { labels[$0] })
    }

    // MARK: - Reading the files

    /// The two splits. Private: callers choose a split by the accessor's name.
    private enum Split {
        case train, test

        var prefix: String { self == .train ? "train" : "t10k" }
        var count: Int { self == .train ? FashionMNIST.trainCount : FashionMNIST.testCount }
        var name: String { self == .train ? "training" : "test" }
    }

    private static func load(_ split: Split, directory: String?) throws -> FashionMNIST {
        let folder = directory ?? defaultDirectory
        let imagePath = try locate("\(split.prefix)-images-idx3-ubyte", in: folder)
        let labelPath = try locate("\(split.prefix)-labels-idx1-ubyte", in: folder)
        let n = split.count, side = Self.side

        let imageFile = try IDX.read(imagePath)
        func unexpected(_ path: String, _ what: String) -> ScoreSDEError {
            .idx(path: path, problem: .unexpectedContent("not Fashion-MNIST's \(split.name) \(what); check the files in \(folder)"))
        }
        guard imageFile.elementType == .uint8, imageFile.shape == [n, side, side] else {
            throw unexpected(imagePath, "images: expected \(n) x \(side) x \(side) unsigned bytes, found \(imageFile.shape.map(String.init).joined(separator: " x ")) values of type \(imageFile.elementType)")
        }
        let labelFile = try IDX.read(labelPath)
        guard labelFile.elementType == .uint8, labelFile.shape == [n] else {
            throw unexpected(labelPath, "labels: expected \(n) unsigned bytes, found \(labelFile.shape.map(String.init).joined(separator: " x ")) values of type \(labelFile.elementType)")
        }
        if let bad = labelFile.payload.firstIndex(where: { $0 >= classNames.count }) {
            throw unexpected(labelPath, "labels: label \(bad) is \(labelFile.payload[bad]), outside 0...\(classNames.count - 1)")
        }
        let images = imageFile.tensor()
        return FashionMNIST(images: Tensor(uncheckedShape: [n, 1, side, side], storage: images.storage),
                            labels: labelFile.payload.map(Int.init))
    }

    /// `folder/name.gz` or `folder/name`, whichever exists (the gzipped one first).
    private static func locate(_ name: String, in folder: String) throws -> String {
        let base = (folder as NSString).appendingPathComponent(name)
        for path in [base + ".gz", base] where FileManager.default.fileExists(atPath: path) { return path }
        throw ScoreSDEError.missingDataSet(MissingDataSet(dataSet: "fashion-mnist", package: debianPackage,
                                                          missingFile: base + ".gz", directoryVariable: directoryVariable))
    }
}

import Foundation

/// The 1797 hand-written 8 × 8 digits (UCI optdigits test set, as shipped with scikit-learn), from
/// the packaged `digits.npy`: grey images with 17 intensity levels `0 ... 16` and labels `0 ... 9`.
///
///     let train = try Digits.load(split: .train)       // 1500 images [1500, 1, 8, 8], values 0...16
///     let x = DataNormalization.symmetric.scale(train.images, levels: Digits.levels)
///
/// The split is contiguous in file order: the first 1500 images are the training set and the last
/// 297 the held-out set (all ten classes occur in both).
public struct Digits: Sendable, Equatable {
    /// Images `[n, 1, 8, 8]`, raw values `0 ... 16`, rows top to bottom.
    public let images: Tensor
    /// Class labels `0 ... 9`, one per image.
    public let labels: [Int]

    /// Intensity levels of the raw pixels (`0 ... 16`).
    public static let levels = 17
    /// Number of digits in the file.
    public static let totalCount = 1797
    /// Number of training digits: the first 1500 in file order.
    public static let trainCount = 1500
    /// Number of held-out digits: the last 297 in file order.
    public static let heldOutCount = totalCount - trainCount

    /// Which digits to load.
    public enum Split: String, Sendable, CaseIterable {
        /// All 1797 digits.
        case all
        /// The first 1500 digits (file order).
        case train
        /// The last 297 digits (file order).
        case heldOut
    }

    public init(images: Tensor, labels: [Int]) {
        self.images = images
        self.labels = labels
    }

    /// Loads a split of the packaged digits.
    public static func load(split: Split = .all) throws -> Digits {
        let all = try cached.get()
        switch split {
        case .all: return all
        case .train: return all.subset(0 ..< trainCount)
        case .heldOut: return all.subset(trainCount ..< totalCount)
        }
    }

    /// The digits at `range` (file order).
    public func subset(_ range: Range<Int>) -> Digits {
        Digits(images: images.rows(range), labels: Array(labels[range]))
    }

    /// The digits at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Digits {
        let d = images.rowSize
        var storage = [Double]()
        storage.reserveCapacity(indices.count * d)
        for i in indices { storage.append(contentsOf: images.storage[i * d ..< (i + 1) * d]) }
        return Digits(images: Tensor(uncheckedShape: [indices.count] + images.rowShape, storage: storage),
                      labels: indices.map { labels[$0] })
    }

    private static let cached: Result<Digits, ScoreSDEError> = {
        do { return .success(try read()) }
        catch let e as ScoreSDEError { return .failure(e) }
        catch { return .failure(.io(path: "digits.npy", message: "\(error)")) }
    }()

    /// Decodes the packaged `[1797, 65]` uint8 array: 64 pixels (row-major) then the label.
    static func read() throws -> Digits {
        let url = try PackagedData.url("digits.npy")
        let raw = try Npy.read(url.path)
        guard raw.shape == [totalCount, 65] else {
            throw ScoreSDEError.io(path: url.path, message: "expected a [\(totalCount), 65] array, got \(raw.shape)")
        }
        var pixels = [Double](), labels = [Int]()
        pixels.reserveCapacity(totalCount * 64)
        labels.reserveCapacity(totalCount)
        for r in 0 ..< totalCount {
            pixels.append(contentsOf: raw.storage[r * 65 ..< r * 65 + 64])
            labels.append(Int(raw.storage[r * 65 + 64]))
        }
        return Digits(images: Tensor(uncheckedShape: [totalCount, 1, 8, 8], storage: pixels), labels: labels)
    }
}

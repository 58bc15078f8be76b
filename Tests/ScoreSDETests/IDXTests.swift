import Foundation
import Testing
@testable import ScoreSDE

/// A fresh temporary folder, removed when the value goes away.
private final class TemporaryFolder {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-idx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// The IDX problem `body` throws (nil for anything else).
private func idxProblem(_ body: () throws -> Void) -> IDXProblem? {
    if case .idx(_, let problem)? = scoreSDEError(body) { return problem }
    return nil
}

/// An IDX header: magic, type code, rank, big-endian sizes.
private func header(_ type: UInt8, _ dims: [UInt32]) -> [UInt8] {
    [0, 0, type, UInt8(dims.count)] + dims.flatMap { d in [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: d >> $0) } }
}

@Suite("IDX files and Fashion-MNIST")
struct IDXTests {
    // MARK: - Reading what others wrote

    /// Bytes written by hand from the format's definition (not by our encoder): every type code,
    /// big-endian, row-major.
    @Test func handWrittenFilesOfEveryTypeDecodeToTheirValues() throws {
        let cases: [([UInt8], IDXArray.ElementType, [Int], [Double])] = [
            (header(0x08, [2, 3]) + [0, 1, 2, 127, 128, 255], .uint8, [2, 3], [0, 1, 2, 127, 128, 255]),
            (header(0x09, [4]) + [0x00, 0x7F, 0x80, 0xFF], .int8, [4], [0, 127, -128, -1]),
            (header(0x0B, [3]) + [0xFF, 0xFE, 0x01, 0x00, 0x80, 0x00], .int16, [3], [-2, 256, -32768]),
            (header(0x0C, [1, 2]) + [0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFD], .int32, [1, 2], [2_147_483_647, -3]),
            (header(0x0D, [2]) + [0x3F, 0xC0, 0x00, 0x00, 0xBE, 0x80, 0x00, 0x00], .float32, [2], [1.5, -0.25]),
            (header(0x0E, [1, 1, 1]) + [0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18], .float64, [1, 1, 1], [Double.pi]),
            (header(0x08, [0, 5]), .uint8, [0, 5], []),
        ]
        for (bytes, type, shape, values) in cases {
            let a = try IDX.decode(Data(bytes), path: "hand.idx")
            #expect(a.elementType == type && a.shape == shape, "\(type)")
            let t = a.tensor()
            #expect(t.shape == shape && t.storage == values, "\(type): \(t.storage)")
            #expect(IDX.encode(a) == Data(bytes), "\(type): re-encoding gives the same bytes")
        }
    }

    /// A gzip file made by Python's gzip module (`gzip.compress(idx, mtime=0)`), not by our zlib
    /// writer: a 2 x 3 unsigned-byte array 0, 1, 2, 127, 128, 255.
    @Test func aGzipFileFromPythonDecodes() throws {
        let python: [UInt8] = [0x1F, 0x8B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60, 0xE0, 0x60, 0x62, 0x60,
                               0x60, 0x00, 0x61, 0x66, 0x06, 0x46, 0xA6, 0xFA, 0x86, 0xFF, 0x00, 0x5F, 0xFB, 0x4F, 0x0B, 0x12,
                               0x00, 0x00, 0x00]
        let a = try IDX.decode(Data(python), path: "python.gz")
        #expect(a == (try IDXArray(bytes: [0, 1, 2, 127, 128, 255], shape: [2, 3])))
        // Cut anywhere (header, deflate data, checksum, length): a typed error, never a partial array.
        for cut in [2, 5, 12, 20, 27, 31, 34] {
            let problem = idxProblem { _ = try IDX.decode(Data(python.prefix(cut)), path: "cut.gz") }
            #expect(problem == .truncatedGzip, "cut at \(cut): \(String(describing: problem))")
        }
        // A damaged byte in the compressed data or the CRC-32: zlib's own error.
        for position in [12, 28] {
            var damaged = python
            damaged[position] ^= 0x55
            let problem = idxProblem { _ = try IDX.decode(Data(damaged), path: "damaged.gz") }
            guard case .corruptGzip? = problem else { Issue.record("byte \(position): \(String(describing: problem))"); continue }
        }
        // Two members in a row decode as one file (gzip -d's concatenation), a third that is not gzip is an error.
        let whole = header(0x08, [4]) + [9, 8, 7, 6]
        let joined = Gzip.compress(Array(whole.prefix(6))) + Gzip.compress(Array(whole.dropFirst(6)))
        #expect(try IDX.decode(joined, path: "joined.gz").tensor().storage == [9, 8, 7, 6])
        guard case .corruptGzip? = idxProblem({ _ = try IDX.decode(joined + Data([0, 0, 0, 0]), path: "garbage.gz") }) else {
            Issue.record("trailing garbage after the last member was accepted"); return
        }
    }

    // MARK: - Round trips

    @Test(arguments: [false, true])
    func everyTypeRoundTripsThroughAFile(gzipped: Bool) throws {
        let folder = try TemporaryFolder()
        func bigEndian<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
            values.flatMap { v in withUnsafeBytes(of: v.bigEndian) { Array($0) } }
        }
        let arrays: [(IDXArray, [Double])] = [
            (try IDXArray(bytes: (0 ..< 24).map { UInt8($0 * 11 % 256) }, shape: [2, 3, 4]), (0 ..< 24).map { Double($0 * 11 % 256) }),
            (try IDXArray(elementType: .int8, shape: [3], payload: bigEndian([Int8.min, -1, Int8.max])), [-128, -1, 127]),
            (try IDXArray(elementType: .int16, shape: [2, 2], payload: bigEndian([Int16.min, -300, 0, Int16.max])), [-32768, -300, 0, 32767]),
            (try IDXArray(elementType: .int32, shape: [2], payload: bigEndian([Int32.min, 123_456_789])), [-2_147_483_648, 123_456_789]),
            (try IDXArray(elementType: .float32, shape: [3], payload: bigEndian([Float(0.1), -2, .infinity].map(\.bitPattern))),
             [Double(Float(0.1)), -2, .infinity]),
            (try IDXArray(elementType: .float64, shape: [2], payload: bigEndian([1e-300, -0.0].map(\.bitPattern))), [1e-300, -0.0]),
            (try IDXArray(bytes: [], shape: [0, 28, 28]), []),
        ]
        for (i, (array, values)) in arrays.enumerated() {
            let path = folder.path("a\(i)-idx" + (gzipped ? ".gz" : ""))
            try IDX.write(array, to: path)
            let raw = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(Gzip.isGzip(raw) == gzipped, "the .gz name decides compression")
            let back = try IDX.read(path)
            #expect(back == array, "\(array.elementType)")
            let t = back.tensor()
            #expect(t.shape == array.shape)
            #expect(zip(t.storage, values).allSatisfy { $0.bitPattern == $1.bitPattern } && t.count == values.count,
                    "\(array.elementType): \(t.storage) vs \(values)")
        }
    }

    @Test func arraysWhoseShapeDisagreesWithTheirBytesAreRefused() {
        #expect(scoreSDEError { _ = try IDXArray(bytes: [1, 2, 3], shape: [2, 2]) } != nil)
        #expect(scoreSDEError { _ = try IDXArray(bytes: [], shape: []) } != nil)
        #expect(scoreSDEError { _ = try IDXArray(bytes: [], shape: [0, 1 << 33]) } != nil, "sizes must fit 32 bits")
        #expect(scoreSDEError { _ = try IDXArray(elementType: .int16, shape: [3], payload: [0, 0, 0, 0, 0]) } != nil)
    }

    // MARK: - Malformed files

    /// Each defect gives its own typed problem, and the message names the file.
    @Test func everyMalformedFileGivesItsTypedError() throws {
        let huge = UInt32.max
        let cases: [(String, [UInt8], IDXProblem)] = [
            ("empty", [], .truncatedHeader(needed: 4, available: 0)),
            ("three bytes", [0, 0, 8], .truncatedHeader(needed: 4, available: 3)),
            ("sizes cut short", header(0x08, [2, 3]).prefix(9).map { $0 }, .truncatedHeader(needed: 12, available: 9)),
            ("wrong magic", [0x50, 0x4B, 3, 4, 0, 0, 0, 0], .badMagic(0x50, 0x4B)),
            ("one non-zero magic byte", [0, 1, 8, 1, 0, 0, 0, 0], .badMagic(0, 1)),
            ("unknown type", header(0x0A, [1]) + [0], .unknownElementType(0x0A)),
            ("no dimensions", [0, 0, 8, 0, 1, 2], .noDimensions),
            ("sizes overflow", header(0x08, [huge, huge, huge]), .sizeOverflow(shape: [Int(huge), Int(huge), Int(huge)])),
            ("zero rows of overflowing size", header(0x08, [0, huge, huge, 2]), .sizeOverflow(shape: [0, Int(huge), Int(huge), 2])),
            ("absurd size", header(0x08, [60_000, 60_000, 1]) + [1, 2], .tooLarge(shape: [60_000, 60_000, 1], bytes: 3_600_000_000, limit: IDX.defaultMaximumBytes)),
            ("absurd size of zero rows", header(0x0E, [0, 1 << 20, 1 << 10]), .tooLarge(shape: [0, 1 << 20, 1 << 10], bytes: 1 << 33, limit: IDX.defaultMaximumBytes)),
            ("truncated values", header(0x08, [2, 3]) + [1, 2, 3, 4, 5], .truncatedData(shape: [2, 3], expected: 6, available: 5)),
            ("truncated wide values", header(0x0C, [2]) + [0, 0, 0, 1, 0, 0], .truncatedData(shape: [2], expected: 8, available: 6)),
            ("bytes left over", header(0x08, [2]) + [1, 2, 3], .trailingBytes(shape: [2], expected: 2, available: 3)),
            ("values after zero rows", header(0x08, [0, 2]) + [1], .trailingBytes(shape: [0, 2], expected: 0, available: 1)),
        ]
        for (what, bytes, expected) in cases {
            for gzipped in [false, true] {
                let data = gzipped ? Gzip.compress(bytes) : Data(bytes)
                let error = scoreSDEError { _ = try IDX.decode(data, path: "bad-\(what).idx") }
                #expect(error == .idx(path: "bad-\(what).idx", problem: expected), "\(what), gzipped \(gzipped): \(String(describing: error))")
                #expect(error?.description.hasPrefix("bad-\(what).idx: ") == true, "the message names the file: \(String(describing: error))")
            }
        }
    }

    @Test func aSmallFileThatInflatesBeyondTheLimitIsRefusedWhileInflating() throws {
        let bomb = Gzip.compress(header(0x08, [1 << 20]) + [UInt8](repeating: 0, count: 1 << 20))
        #expect(bomb.count < 2_000, "a megabyte of zeros compresses to \(bomb.count) bytes")
        let limit = 1 << 16
        #expect(idxProblem { _ = try IDX.decode(bomb, path: "bomb.gz", maximumBytes: limit) }
                == .decompressedTooLarge(limit: limit + IDX.maximumHeaderBytes))
        #expect(try IDX.decode(bomb, path: "bomb.gz").count == 1 << 20, "within the default limit it reads")
        // The same limit on a plain file: its sizes are checked before anything is copied.
        let plain = Data(header(0x08, [1 << 20]) + [UInt8](repeating: 0, count: 1 << 20))
        #expect(idxProblem { _ = try IDX.decode(plain, path: "big.idx", maximumBytes: limit) }
                == .tooLarge(shape: [1 << 20], bytes: 1 << 20, limit: limit))
    }

    @Test func aMissingFileIsAnIOErrorNamingIt() {
        let error = scoreSDEError { _ = try IDX.read("/nonexistent/train-images-idx3-ubyte.gz") }
        guard case .io(let path, let message)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(path == "/nonexistent/train-images-idx3-ubyte.gz" && message.contains("no such file"))
    }

    // MARK: - Fashion-MNIST: finding the files

    @Test func aMissingPackageNamesItAndTheSetupCommand() throws {
        let empty = try TemporaryFolder()
        for load in [{ _ = try FashionMNIST.trainingSplit(directory: empty.url.path) },
                     { _ = try FashionMNIST.testSplitForEvaluation(directory: empty.url.path) }] as [() throws -> Void] {
            let error = scoreSDEError(load)
            guard case .missingDataSet(let m)? = error else { Issue.record("\(String(describing: error))"); continue }
            #expect(m.package == "dataset-fashion-mnist" && m.dataSet == "fashion-mnist")
            #expect(m.missingFile.hasPrefix(empty.url.path))
            let text = error!.description
            for part in ["dataset-fashion-mnist", "scripts/setup.sh", "apt-get install dataset-fashion-mnist", "SCORESDE_FASHION_MNIST"] {
                #expect(text.contains(part), "the message lacks '\(part)': \(text)")
            }
        }
    }

    /// Valid IDX files that are not Fashion-MNIST (type, shape, count, label range) are refused by name.
    @Test func filesThatAreNotFashionMNISTAreRefused() throws {
        let folder = try TemporaryFolder()
        let n = FashionMNIST.testCount
        let images = folder.path("t10k-images-idx3-ubyte"), labels = folder.path("t10k-labels-idx1-ubyte")
        let goodImages = try IDXArray(bytes: [UInt8](repeating: 7, count: n * 28 * 28), shape: [n, 28, 28])
        let goodLabels = try IDXArray(bytes: (0 ..< n).map { UInt8($0 % 10) }, shape: [n])

        try IDX.write(try IDXArray(bytes: [UInt8](repeating: 0, count: 5 * 28 * 28), shape: [5, 28, 28]), to: images)
        try IDX.write(goodLabels, to: labels)
        func problem() -> (String, String)? {
            if case .idx(let path, .unexpectedContent(let m))? = scoreSDEError({ _ = try FashionMNIST.testSplitForEvaluation(directory: folder.url.path) }) {
                return (path, m)
            }
            return nil
        }
        #expect(problem()?.0 == images && problem()?.1.contains("expected 10000 x 28 x 28") == true, "\(String(describing: problem()))")

        try IDX.write(try IDXArray(elementType: .int16, shape: [n, 28, 28], payload: [UInt8](repeating: 0, count: 2 * n * 784)), to: images)
        #expect(problem()?.1.contains("16-bit integer") == true, "\(String(describing: problem()))")

        try IDX.write(goodImages, to: images)
        try IDX.write(try IDXArray(bytes: (0 ..< n).map { $0 == 77 ? 10 : 0 }, shape: [n]), to: labels)
        #expect(problem()?.0 == labels && problem()?.1.contains("label 77 is 10") == true, "\(String(describing: problem()))")

        // Fixed: the plain (not gzipped) files of an override folder load.
        try IDX.write(goodLabels, to: labels)
        let test = try FashionMNIST.testSplitForEvaluation(directory: folder.url.path)
        #expect(test.images.shape == [n, 1, 28, 28] && test.labels[13] == 3 && test.images.storage[5] == 7)
    }

    // MARK: - Fashion-MNIST: the real data (Debian's dataset-fashion-mnist; CI installs it with scripts/setup.sh)

    /// Loads a split; without the package the test fails with the set-up hint (it is never skipped).
    private func real<T>(_ load: () throws -> T) throws -> T {
        do { return try load() } catch let error as ScoreSDEError {
            Issue.record("Fashion-MNIST is needed for this test: \(error)")
            throw error
        }
    }

    /// Reference figures from `scripts/fashion-mnist-figures.py`, which reads the four .gz files with
    /// Python's gzip and struct modules (independent of this reader): counts, the per-class counts (the
    /// data set is balanced), the first labels, the pixel range and the exact pixel sums
    /// (training mean 3431114169 / 47040000 = 72.9404, test 573469082 / 7840000 = 73.1466).
    @Test func theTrainingSplitMatchesAnIndependentReading() throws {
        let train = try real { try FashionMNIST.trainingSplit() }
        #expect(train.images.shape == [60_000, 1, 28, 28])
        #expect(train.labels.count == 60_000)
        var histogram = [Int](repeating: 0, count: 10)
        for l in train.labels { histogram[l] += 1 }
        #expect(histogram == [Int](repeating: 6_000, count: 10), "\(histogram)")
        #expect(Array(train.labels.prefix(10)) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
        let pixels = train.images.storage
        #expect(pixels.min() == 0 && pixels.max() == 255)
        #expect(pixels.allSatisfy { $0.rounded() == $0 }, "raw pixels are integers")
        let sum = pixels.reduce(0, +)                       // exact: integers below 2⁵³
        #expect(sum == 3_431_114_169)
        #expect(abs(sum / Double(pixels.count) - 72.94035223214286) < 1e-12)
        #expect(pixels[0 ..< 784].reduce(0, +) == 76_247, "the first image (an ankle boot)")
    }

    @Test func theTestSplitMatchesAnIndependentReading() throws {
        let test = try real { try FashionMNIST.testSplitForEvaluation() }
        #expect(test.images.shape == [10_000, 1, 28, 28])
        var histogram = [Int](repeating: 0, count: 10)
        for l in test.labels { histogram[l] += 1 }
        #expect(histogram == [Int](repeating: 1_000, count: 10), "\(histogram)")
        #expect(Array(test.labels.prefix(10)) == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
        #expect(test.images.storage.min() == 0 && test.images.storage.max() == 255)
        #expect(test.images.storage.reduce(0, +) == 573_469_082)
        #expect(FashionMNIST.classNames[test.labels[0]] == "Ankle boot" && FashionMNIST.classNames.count == 10)

        // An override folder holding links to the gzipped files and plain copies gives the same split.
        let folder = try TemporaryFolder()
        try FileManager.default.createSymbolicLink(atPath: folder.path("t10k-images-idx3-ubyte.gz"),
                                                   withDestinationPath: FashionMNIST.debianDirectory + "/t10k-images-idx3-ubyte.gz")
        try IDX.write(try IDX.read(FashionMNIST.debianDirectory + "/t10k-labels-idx1-ubyte.gz"), to: folder.path("t10k-labels-idx1-ubyte"))
        #expect(try FashionMNIST.testSplitForEvaluation(directory: folder.url.path) == test)
    }

    @Test func theDataSetsByNameAndTheTrainingGuard() throws {
        let set = try real { try Dataset.named("fashion-mnist", count: 100, seed: 3) }
        #expect(set.data.shape == [100, 1, 28, 28] && set.labels?.count == 100)
        #expect(set.levels == 256 && set.normalization == .unit && set.classCount == 10 && !set.isTestSplit)
        #expect(try Dataset.named("fashion-mnist", count: 100, seed: 3) == set, "the same seed picks the same images")
        #expect(try Dataset.named("fashion-mnist", count: 100, seed: 4) != set)
        let all = try Dataset.named("fashion-mnist-test")
        #expect(all.count == 10_000 && Array(all.labels!.prefix(5)) == [9, 2, 1, 1, 6], "without a count: the whole split in file order")
        let test = try Dataset.named("fashion-mnist-test", count: 50, seed: 1)
        #expect(test.isTestSplit && test.data.shape == [50, 1, 28, 28] && test.labels?.count == 50)
        // A count picks a seeded random subset: distinct test images (each found in the split with its label), not the first ones.
        var labelsOfRow = [[Double]: Set<Int>]()     // (the split has a few duplicate images)
        for r in 0 ..< all.count { labelsOfRow[all.data.row(r), default: []].insert(all.labels![r]) }
        #expect((0 ..< test.count).allSatisfy { labelsOfRow[test.data.row($0)]?.contains(test.labels![$0]) == true },
                "every picked image is a test image with its own label")
        #expect(Set((0 ..< test.count).map { test.data.row($0) }).count == 50, "without replacement")
        #expect(test.data != all.data.rows(0 ..< 50), "not the first 50 in file order")
        #expect(try Dataset.named("fashion-mnist-test", count: 50, seed: 1) == test && (try Dataset.named("fashion-mnist-test", count: 50, seed: 2)) != test)
        #expect(invalidParameterText { _ = try Dataset.named("fashion-mnist-test", count: 10_001) }?.contains("10000") == true)

        // Training code goes through forTraining, which refuses every test split by name.
        for name in Dataset.testSplitNames {
            let message = invalidArgumentText { _ = try Dataset.forTraining(name) }
            #expect(message?.contains("evaluation only") == true, "\(name): \(String(describing: message))")
        }
        #expect(try Dataset.forTraining("fashion-mnist", count: 10).count == 10)
    }
}

import Foundation
import Testing
@testable import ScoreSDE

/// A fresh empty directory, removed by `cleanUp`.
private func makeTempDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-io-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func cleanUp(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

/// The message of the `ScoreSDEError.io` that `body` throws, or nil when it throws something else or nothing.
private func ioMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch ScoreSDEError.io(_, let message) {
        return message
    } catch {
        return nil
    }
}

/// A hand-built .npy file: preamble, header dict padded to 64 bytes, then `payload`.
private func npyFile(descr: String, fortran: Bool = false, shape: String, payload: [UInt8], major: UInt8 = 1) -> Data {
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
    let prefix = major == 1 ? 10 : 12
    while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, major, 0])
    let n = header.utf8.count
    data.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8)])
    if major != 1 { data.append(contentsOf: [0, 0]) }
    data.append(contentsOf: Array(header.utf8))
    data.append(contentsOf: payload)
    return data
}

private func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

@Suite("IO: .npy")
struct IONpyTests {
    @Test("encode/decode and write/read round trips are bitwise exact", arguments: [[3, 2], [5], [2, 3, 4], [0, 2], [1, 1, 1, 1], [7, 1, 3, 3]])
    func roundTrip(shape: [Int]) throws {
        let n = shape.reduce(1, *)
        let special: [Double] = [-0.0, .nan, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, Double(bitPattern: 0x0000_0000_0000_1234)]
        let values = (0 ..< n).map { i in i < special.count ? special[i] : Double(i) * 0.37 - 1.5 }
        let t = try Tensor(shape: shape, storage: values)

        let decoded = try Npy.decode(Npy.encode(t), path: "mem.npy")
        #expect(decoded.shape == shape)
        #expect(decoded.storage.map(\.bitPattern) == values.map(\.bitPattern))

        let dir = try makeTempDirectory()
        defer { cleanUp(dir) }
        try Npy.write(t, to: dir + "/t.npy")
        let read = try Npy.read(dir + "/t.npy")
        #expect(read.shape == shape)
        #expect(read.storage.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test("header text and 64-byte alignment match numpy.save")
    func headerLayout() throws {
        let data = Npy.encode(try Tensor(shape: [3, 2], storage: [1, 2, 3, 4, 5, 6]))
        let bytes = [UInt8](data)
        #expect(Array(bytes[0 ..< 8]) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        #expect(headerLength == 118)   // what numpy 2.x writes for shape (3, 2)
        #expect(bytes.count == 10 + headerLength + 6 * 8)
        let header = String(decoding: bytes[10 ..< 10 + headerLength], as: UTF8.self)
        #expect(header.hasSuffix(" \n"))
        #expect(header.trimmingCharacters(in: .whitespacesAndNewlines) == "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }")
        // Payload: little-endian float64 in C order.
        let first = bytes[(10 + headerLength) ..< (10 + headerLength + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(Double(bitPattern: first) == 1)

        let oneD = String(decoding: [UInt8](Npy.encode(Tensor(zeros: [5]))).dropFirst(10), as: UTF8.self)
        #expect(oneD.hasPrefix("{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }"))
        #expect(Npy.encode(Tensor(zeros: [2, 3, 4])).count % 64 == (2 * 3 * 4 * 8) % 64)
    }

    @Test("hand-built <f4, <i8, |u1, |i1, <i4 files decode to Double; versions 2.0 and 3.0 are read")
    func decodeOtherDTypes() throws {
        let floats: [Float] = [0.5, -2.25, 1e-3, 3]
        let f4 = npyFile(descr: "<f4", shape: "(2, 2)", payload: littleEndianBytes(floats.map(\.bitPattern)))
        let a = try Npy.decode(f4, path: "f4.npy")
        #expect(a.shape == [2, 2])
        #expect(a.storage == floats.map(Double.init))

        let ints: [Int64] = [-5, 0, 7, Int64(1) << 40]
        let i8 = npyFile(descr: "<i8", shape: "(4,)", payload: littleEndianBytes(ints))
        let b = try Npy.decode(i8, path: "i8.npy")
        #expect(b.shape == [4])
        #expect(b.storage == [-5, 0, 7, 1_099_511_627_776])

        let u1 = try Npy.decode(npyFile(descr: "|u1", shape: "(1, 3)", payload: [0, 128, 255]), path: "u1.npy")
        #expect(u1.storage == [0, 128, 255])
        let i1 = try Npy.decode(npyFile(descr: "|i1", shape: "(3,)", payload: [0xFF, 0x80, 0x7F]), path: "i1.npy")
        #expect(i1.storage == [-1, -128, 127])
        let i4 = try Npy.decode(npyFile(descr: "<i4", shape: "(2,)", payload: littleEndianBytes([Int32(-3), 9])), path: "i4.npy")
        #expect(i4.storage == [-3, 9])

        let doubles: [Double] = [1.5, -2]
        for major: UInt8 in [2, 3] {
            let v = try Npy.decode(npyFile(descr: "<f8", shape: "(2, 1)", payload: littleEndianBytes(doubles.map(\.bitPattern)), major: major), path: "v.npy")
            #expect(v.shape == [2, 1])
            #expect(v.storage == doubles)
        }
    }

    @Test("malformed files throw .io naming the problem")
    func malformed() throws {
        let good = Npy.encode(try Tensor(shape: [100, 2], storage: [Double](repeating: 1, count: 200)))

        var badMagic = good
        badMagic[0] = 0x50
        #expect(ioMessage { _ = try Npy.decode(badMagic, path: "x") }?.contains("magic") == true)
        #expect(ioMessage { _ = try Npy.decode(Data([1, 2, 3]), path: "x") }?.contains("not a .npy file") == true)

        let truncated = good.prefix(good.count - 800)
        let message = ioMessage { _ = try Npy.decode(truncated, path: "x") }
        #expect(message == "truncated: header says shape (100, 2) = 200 float64 values (1600 bytes) but only 800 bytes follow")
        #expect(ioMessage { _ = try Npy.decode(good.prefix(40), path: "x") }?.contains("truncated") == true)

        let fortran = npyFile(descr: "<f8", fortran: true, shape: "(2, 2)", payload: [UInt8](repeating: 0, count: 32))
        #expect(ioMessage { _ = try Npy.decode(fortran, path: "x") }?.contains("ascontiguousarray") == true)

        for descr in ["<c16", ">f8", "|O", "<U3"] {
            let file = npyFile(descr: descr, shape: "(1,)", payload: [UInt8](repeating: 0, count: 16))
            let m = ioMessage { _ = try Npy.decode(file, path: "x") }
            #expect(m?.contains("unsupported dtype '\(descr)'") == true, "\(descr): \(m ?? "no .io error")")
        }
        #expect(ioMessage { _ = try Npy.decode(npyFile(descr: ">f8", shape: "(1,)", payload: [UInt8](repeating: 0, count: 8)), path: "x") }?.contains("big-endian") == true)

        let scalar = npyFile(descr: "<f8", shape: "()", payload: [UInt8](repeating: 0, count: 8))
        #expect(ioMessage { _ = try Npy.decode(scalar, path: "x") }?.contains("0-dimensional") == true)

        var badVersion = good
        badVersion[6] = 9
        #expect(ioMessage { _ = try Npy.decode(badVersion, path: "x") }?.contains("version 9.0") == true)

        var notDict = npyFile(descr: "<f8", shape: "(1,)", payload: [UInt8](repeating: 0, count: 8))
        notDict[10] = UInt8(ascii: "[")
        #expect(ioMessage { _ = try Npy.decode(notDict, path: "x") }?.contains("malformed header") == true)
        let missingKey = npyFile(descr: "<f8", shape: "(1,)", payload: []).replacingShapeKey()
        #expect(ioMessage { _ = try Npy.decode(missingKey, path: "x") }?.contains("'descr', 'fortran_order' and 'shape'") == true)
        let badShape = npyFile(descr: "<f8", shape: "(2, 'a')", payload: [])
        #expect(ioMessage { _ = try Npy.decode(badShape, path: "x") }?.contains("'shape'") == true)
    }

    @Test("reading a missing file throws .io")
    func missingFile() {
        #expect(ioMessage { _ = try Npy.read("/nonexistent-dir/none.npy") }?.contains("no such file") == true)
    }
}

private extension Data {
    /// Renames the header key 'shape' to 'shapf' (same length, so the layout stays valid).
    func replacingShapeKey() -> Data {
        var bytes = [UInt8](self)
        let key = Array("'shape'".utf8)
        for i in 0 ..< bytes.count - key.count where Array(bytes[i ..< i + key.count]) == key {
            bytes[i + 5] = UInt8(ascii: "f")
        }
        return Data(bytes)
    }
}

@Suite("IO: atomic files")
struct IOAtomicFileTests {
    @Test("writing into a missing directory throws .io and leaves nothing behind")
    func missingDirectory() throws {
        let dir = try makeTempDirectory()
        defer { cleanUp(dir) }
        let target = dir + "/missing/sub/out.npy"
        let message = ioMessage { try AtomicFile.write(Data([1, 2, 3]), to: target) }
        #expect(message?.contains("does not exist") == true)
        #expect(!FileManager.default.fileExists(atPath: dir + "/missing"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        // Same through Npy and PNG.
        #expect(ioMessage { try Npy.write(Tensor(zeros: [2, 2]), to: target) } != nil)
        #expect(ioMessage { try PNG.write(RasterImage(width: 2, height: 2, channels: 1), to: target) } != nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test("writing onto a directory throws .io and leaves no temporary file")
    func targetIsDirectory() throws {
        let dir = try makeTempDirectory()
        defer { cleanUp(dir) }
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: false)
        #expect(ioMessage { try AtomicFile.write(Data([1]), to: dir + "/sub") }?.contains("directory") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["sub"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/sub").isEmpty)
    }

    @Test("overwriting an existing file replaces it whole")
    func overwrite() throws {
        let dir = try makeTempDirectory()
        defer { cleanUp(dir) }
        let path = dir + "/data.bin"
        let long = Data((0 ..< 10_000).map { UInt8(truncatingIfNeeded: $0) })
        try AtomicFile.write(long, to: path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == long)
        let short = Data([42, 43, 44])
        try AtomicFile.write(short, to: path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == short)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["data.bin"])
    }
}

@Suite("IO: PNG and images")
struct IOPNGTests {
    private func randomImage(width: Int, height: Int, channels: Int) throws -> RasterImage {
        var g = SystemRandomNumberGenerator()
        let pixels = (0 ..< width * height * channels).map { _ in UInt8.random(in: 0 ... 255, using: &g) }
        return try RasterImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    @Test("grey and RGB round trips are bitwise exact", arguments: [1, 3])
    func roundTrip(channels: Int) throws {
        let dir = try makeTempDirectory()
        defer { cleanUp(dir) }
        let image = try randomImage(width: 37, height: 23, channels: channels)
        try PNG.write(image, to: dir + "/img.png")
        let back = try PNG.read(dir + "/img.png")
        #expect(back == image)
        #expect(try PNG.decode(PNG.encode(image)) == image)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["img.png"])
    }

    @Test("reading converts between grey and RGB on request")
    func conversion() throws {
        let grey = try randomImage(width: 5, height: 4, channels: 1)
        let asRGB = try PNG.decode(PNG.encode(grey), as: 3)
        #expect(asRGB.channels == 3)
        for y in 0 ..< 4 { for x in 0 ..< 5 { #expect(asRGB.pixel(x: x, y: y) == Array(repeating: grey[x, y, 0], count: 3)) } }
        let rgbGrey = try RasterImage(width: 2, height: 1, channels: 3, pixels: [0, 0, 0, 255, 255, 255])
        #expect(try PNG.decode(PNG.encode(rgbGrey), as: 1).pixels == [0, 255])
    }

    @Test("corrupt, truncated, empty and missing PNG files throw .io")
    func corrupt() throws {
        let dir = try makeTempDirectory()
        defer { cleanUp(dir) }
        let good = try PNG.encode(randomImage(width: 16, height: 16, channels: 3))
        try AtomicFile.write(good.prefix(good.count / 2), to: dir + "/half.png")
        #expect(ioMessage { _ = try PNG.read(dir + "/half.png") }?.contains("libpng") == true)
        try AtomicFile.write(Data("hello, not a png".utf8), to: dir + "/text.png")
        #expect(ioMessage { _ = try PNG.read(dir + "/text.png") }?.contains("not a readable PNG") == true)
        var flipped = good
        flipped[flipped.count - 30] ^= 0xFF   // inside the image data: CRC / zlib check fails
        #expect(ioMessage { _ = try PNG.decode(flipped, path: "x.png") } != nil)
        #expect(ioMessage { _ = try PNG.decode(Data(), path: "x.png") } != nil)
        #expect(ioMessage { _ = try PNG.read(dir + "/missing.png") }?.contains("no such file") == true)
    }

    @Test("tensor -> image -> tensor round trips, with clamping and NaN handling")
    func tensorConversion() throws {
        let t = try Tensor(shape: [2, 3, 2, 2], storage: (0 ..< 24).map { Double($0) / 23 * 2 - 1 })
        let image = try RasterImage(tensor: t, row: 1, range: -1 ... 1)
        #expect(image.width == 2 && image.height == 2 && image.channels == 3)
        // Pixel (1, 0) of image 1, green channel: index 12 + 4 + 1 = 17.
        #expect(image[1, 0, 1] == UInt8((Double(17) / 23 * 255).rounded()))
        let back = try image.tensor(range: -1 ... 1)
        #expect(back.shape == [1, 3, 2, 2])
        #expect(try RasterImage(tensor: back, range: -1 ... 1) == image)

        let odd = try Tensor(shape: [1, 1, 4], storage: [.nan, -5, 0.5, 7])
        #expect(try RasterImage(tensor: odd, range: 0 ... 1).pixels == [0, 0, 128, 255])
        #expect(throws: ScoreSDEError.self) { _ = try RasterImage(tensor: Tensor(zeros: [2, 2, 4, 4]), range: 0 ... 1) }
        #expect(throws: ScoreSDEError.self) { _ = try RasterImage(tensor: Tensor(zeros: [2, 4, 4]), row: 2, range: 0 ... 1) }
        #expect(throws: ScoreSDEError.self) { _ = try RasterImage(tensor: Tensor(zeros: [2, 4, 4]), range: 1 ... 1) }
    }
}

@Suite("IO: plots")
struct IOPlotTests {
    private func isWhite(_ p: [UInt8]) -> Bool { p == [255, 255, 255] }
    private func isDark(_ p: [UInt8]) -> Bool { p.map(Int.init).reduce(0, +) < 3 * 160 }

    @Test("scatter puts a dark pixel at a point and leaves a far corner white; non-finite rows are skipped")
    func scatter() throws {
        let points = try Tensor(rows: [[0, 0], [.nan, 1], [.infinity, 0], [0, -.infinity]])
        let image = Plot.scatter(points, size: 101, bounds: (-1, 1, -1, 1))
        #expect(image.width > 101 && image.height > 101 && image.channels == 3, "margins for the axes and the legend")
        // The plot area: its frame's top-left corner (the frame is the only (70, 70, 70) ink).
        func origin(_ image: RasterImage) throws -> (x: Int, y: Int) {
            let y = try #require((0 ..< image.height).first { y in (0 ..< image.width).contains { image.pixel(x: $0, y: y) == [70, 70, 70] } })
            let x = try #require((0 ..< image.width).first { image.pixel(x: $0, y: y) == [70, 70, 70] })
            return (x, y)
        }
        let o = try origin(image)
        #expect(isDark(image.pixel(x: o.x + 50, y: o.y + 50)))
        #expect(isWhite(image.pixel(x: o.x + 95, y: o.y + 5)))
        #expect(isWhite(image.pixel(x: o.x + 5, y: o.y + 95)))
        #expect(!isWhite(image.pixel(x: o.x, y: o.y + 37)))   // frame

        // y grows upwards: a point at (0.5, 0.5) lands top-right of the centre.
        let moved = Plot.scatter(try Tensor(rows: [[0.5, 0.5]]), size: 101, bounds: (-1, 1, -1, 1))
        let m = try origin(moved)
        #expect(isDark(moved.pixel(x: m.x + 75, y: m.y + 25)))

        // Default bounds fit the points; reference markers and a title band.
        let withRef = Plot.scatter(try Tensor(rows: [[10, 20], [12, 22]]), reference: try Tensor(rows: [[11, 21]]),
                                   size: 200, title: "Title: x=1.5 (ok)")
        #expect(withRef.width > 200 && withRef.height > 200)
        let r = try origin(withRef)
        let centre = withRef.pixel(x: r.x + 100, y: r.y + 100)
        #expect(centre[0] > 150 && centre[2] < 100)   // orange reference marker

        // Only non-finite points, empty input, odd shapes: no crash.
        _ = Plot.scatter(try Tensor(rows: [[.nan, .nan]]))
        _ = Plot.scatter(Tensor(zeros: [0, 2]), size: 1)
        _ = Plot.scatter(Tensor(zeros: [5]), title: "ünïcode")
    }

    @Test("image grid dimensions and pixel values for two known images")
    func imageGrid() throws {
        // Two 2x2 grey images in [0, 1]: [[0, 1], [0.5, NaN]] and [[2, -1], [0.25, 0.75]].
        let t = try Tensor(shape: [2, 1, 2, 2], storage: [0, 1, 0.5, .nan, 2, -1, 0.25, 0.75])
        let grid = try Plot.imageGrid(t, range: 0 ... 1, scale: 2, padding: 1)
        #expect(grid.channels == 1)
        #expect(grid.width == 2 * 4 + 3 && grid.height == 4 + 2)
        let expected: [[UInt8]] = [
            [255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255],
            [255, 0, 0, 255, 255, 255, 255, 255, 0, 0, 255],
            [255, 0, 0, 255, 255, 255, 255, 255, 0, 0, 255],
            [255, 128, 128, 0, 0, 255, 64, 64, 191, 191, 255],
            [255, 128, 128, 0, 0, 255, 64, 64, 191, 191, 255],
            [255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255],
        ]
        #expect(grid.pixels == expected.flatMap { $0 })

        let rgb = try Plot.imageGrid(Tensor(zeros: [5, 3, 4, 6]), range: -1 ... 1, columns: 2)
        #expect(rgb.channels == 3)
        #expect(rgb.width == 2 * 24 + 3 * 2 && rgb.height == 3 * 16 + 4 * 2)
        #expect(rgb.pixel(x: 2, y: 2) == [128, 128, 128])
        #expect(throws: ScoreSDEError.self) { _ = try Plot.imageGrid(Tensor(zeros: [4, 2]), range: 0 ... 1) }
        #expect(throws: ScoreSDEError.self) { _ = try Plot.imageGrid(Tensor(zeros: [4, 2, 3, 3]), range: 0 ... 1) }
        #expect(throws: ScoreSDEError.self) { _ = try Plot.imageGrid(Tensor(zeros: [0, 3, 3]), range: 0 ... 1) }
    }

    @Test("side by side: widths add up with padding, grey is promoted to RGB, heights top-aligned")
    func sideBySide() throws {
        let a = try RasterImage(width: 10, height: 5, channels: 1, fill: 0)
        let b = try RasterImage(width: 7, height: 9, channels: 3, fill: 10)
        let row = Plot.sideBySide([a, b], padding: 3)
        #expect(row.width == 20 && row.height == 9 && row.channels == 3)
        #expect(row.pixel(x: 0, y: 0) == [0, 0, 0])
        #expect(row.pixel(x: 0, y: 8) == [255, 255, 255])
        #expect(row.pixel(x: 11, y: 0) == [255, 255, 255])
        #expect(row.pixel(x: 13, y: 8) == [10, 10, 10])
        #expect(Plot.sideBySide([]).width == 0)
        let titled = Plot.titled(a, "a very long title that does not fit")
        #expect(titled.width >= 10 && titled.height > 5, "wrapped, widened for a word wider than the panel")
    }
}

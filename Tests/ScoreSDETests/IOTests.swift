import CPNG
import Foundation
import Testing
@testable import ScoreSDE
@testable import ScoreSDEPlot

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

    /// The dtypes the hand-built cases above leave out, with their extreme values: int16, uint16,
    /// uint32, uint64 (2⁶⁴ − 1 rounds to 2⁶⁴ as a Double) and bool (any non-zero byte is true).
    @Test("<i2, <u2, <u4, <u8 and |b1 decode to their values")
    func decodeRemainingDTypes() throws {
        let cases: [(String, [UInt8], [Double])] = [
            ("<i2", littleEndianBytes([Int16.min, -1, 0, Int16.max]), [-32768, -1, 0, 32767]),
            ("<u2", littleEndianBytes([UInt16.min, 1, 40000, UInt16.max]), [0, 1, 40000, 65535]),
            ("<u4", littleEndianBytes([UInt32.min, 7, 3_000_000_000, UInt32.max]), [0, 7, 3e9, 4_294_967_295]),
            ("<u8", littleEndianBytes([UInt64.min, 5, 1 << 53, UInt64.max]), [0, 5, 9_007_199_254_740_992, 18_446_744_073_709_551_616]),
            ("|b1", [0, 1, 2, 255], [0, 1, 1, 1]),
        ]
        for (descr, payload, values) in cases {
            let t = try Npy.decode(npyFile(descr: descr, shape: "(2, 2)", payload: payload), path: "x")
            #expect(t.shape == [2, 2] && t.storage == values, "\(descr): \(t.storage)")
        }
    }

    /// Sizes from the header are checked before anything is allocated: a product of dimensions
    /// that overflows, a negative dimension, a count the data cannot hold, and a header nested
    /// thousands deep (which would overflow the stack of a parser without a depth limit).
    @Test("hostile headers: overflowing or negative shapes, huge counts, deep nesting")
    func hostileHeaders() throws {
        let overflow = npyFile(descr: "<f8", shape: "(4294967296, 4294967296)", payload: [])
        #expect(ioMessage { _ = try Npy.decode(overflow, path: "x") }?.contains("too large") == true)
        let bytesOverflow = npyFile(descr: "<f8", shape: "(2305843009213693952,)", payload: [])   // 2^61 × 8 bytes
        #expect(ioMessage { _ = try Npy.decode(bytesOverflow, path: "x") }?.contains("too large") == true)
        let negative = npyFile(descr: "<f8", shape: "(-1, 2)", payload: [])
        #expect(ioMessage { _ = try Npy.decode(negative, path: "x") }?.contains("non-negative") == true)
        let huge = npyFile(descr: "|u1", shape: "(1000000000000,)", payload: [1, 2, 3])   // 1 TB claimed, 3 bytes held
        #expect(ioMessage { _ = try Npy.decode(huge, path: "x") }?.contains("truncated") == true)
        let zeroSized = try Npy.decode(npyFile(descr: "<f8", shape: "(0, 1000000000000)", payload: []), path: "x")
        #expect(zeroSized.shape == [0, 1_000_000_000_000] && zeroSized.count == 0)
        for depth in [33, 5000, 30000] {
            let nested = npyFile(descr: "<f8", shape: String(repeating: "(", count: depth) + String(repeating: ")", count: depth), payload: [])
            #expect(ioMessage { _ = try Npy.decode(nested, path: "x") }?.contains("malformed header") == true, "depth \(depth)")
        }
        // 32 levels are accepted by the parser (and then refused as a shape, as they are not integers).
        let deepButFine = npyFile(descr: "<f8", shape: "(" + String(repeating: "[", count: 30) + String(repeating: "]", count: 30) + ",)", payload: [])
        #expect(ioMessage { _ = try Npy.decode(deepButFine, path: "x") }?.contains("'shape' must be a tuple of non-negative integers") == true)
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

    /// PNG variants written with libpng's full API (palette with transparency, grey + alpha,
    /// 16-bit, 1-bit, Adam7 interlacing) decode to the pixels the PNG specification gives them:
    /// palette entries, transparent pixels composited onto white, 16-bit v·257 read as v.
    @Test("palette, alpha, 16-bit, 1-bit and interlaced PNGs decode to their pixels")
    func variants() throws {
        let dir = try makeTempDirectory()
        defer { cleanUp(dir) }
        let w = 9, h = 7   // odd sizes: every Adam7 pass is partial
        func value(_ x: Int, _ y: Int, _ c: Int) -> UInt8 { UInt8((x * 29 + y * 13 + c * 71) % 256) }

        // RGB 8-bit, interlaced.
        let rgb: [[UInt8]] = (0 ..< h).map { y in (0 ..< w).flatMap { x in (0 ..< 3).map { value(x, y, $0) } } }
        try LibPNGWriter.write(dir + "/interlaced.png", width: w, height: h, depth: 8, colorType: PNG_COLOR_TYPE_RGB, interlaced: true, rows: rgb)
        let interlaced = try PNG.read(dir + "/interlaced.png")
        #expect(interlaced.channels == 3 && interlaced.pixels == rgb.flatMap { $0 })

        // 16-bit grey, interlaced: v·257 (big-endian) reads as v exactly.
        let grey16: [[UInt8]] = (0 ..< h).map { y in (0 ..< w).flatMap { x -> [UInt8] in let v = UInt16(value(x, y, 0)) * 257; return [UInt8(v >> 8), UInt8(v & 0xFF)] } }
        try LibPNGWriter.write(dir + "/grey16.png", width: w, height: h, depth: 16, colorType: PNG_COLOR_TYPE_GRAY, interlaced: true, rows: grey16)
        let g16 = try PNG.read(dir + "/grey16.png")
        let expectedG16: [UInt8] = (0 ..< h).flatMap { y in (0 ..< w).map { value($0, y, 0) } }
        #expect(g16.channels == 1 && g16.pixels == expectedG16, "\(Array(g16.pixels.prefix(12))) vs \(Array(expectedG16.prefix(12)))")

        // 16-bit RGBA: opaque pixels keep their colour, fully transparent ones become white.
        let rgba16: [[UInt8]] = (0 ..< h).map { y in (0 ..< w).flatMap { x -> [UInt8] in
            let a: UInt16 = (x + y) % 3 == 0 ? 0 : 65535
            return (0 ..< 3).flatMap { c -> [UInt8] in let v = UInt16(value(x, y, c)) * 257; return [UInt8(v >> 8), UInt8(v & 0xFF)] } + [UInt8(a >> 8), UInt8(a & 0xFF)]
        } }
        try LibPNGWriter.write(dir + "/rgba16.png", width: w, height: h, depth: 16, colorType: PNG_COLOR_TYPE_RGB_ALPHA, interlaced: false, rows: rgba16)
        let a16 = try PNG.read(dir + "/rgba16.png")
        let expectedRGBA: [UInt8] = (0 ..< h).flatMap { y in (0 ..< w).flatMap { x in (0 ..< 3).map { c -> UInt8 in (x + y) % 3 == 0 ? 255 : value(x, y, c) } } }
        #expect(a16.channels == 3 && a16.pixels == expectedRGBA)

        // Grey + alpha 8-bit.
        let ga: [[UInt8]] = (0 ..< h).map { y in (0 ..< w).flatMap { x -> [UInt8] in [value(x, y, 1), (x * y) % 2 == 0 ? 255 : 0] } }
        try LibPNGWriter.write(dir + "/grey-alpha.png", width: w, height: h, depth: 8, colorType: PNG_COLOR_TYPE_GRAY_ALPHA, interlaced: false, rows: ga)
        let gaImage = try PNG.read(dir + "/grey-alpha.png")
        let expectedGA: [UInt8] = (0 ..< h).flatMap { y in (0 ..< w).map { x -> UInt8 in (x * y) % 2 == 0 ? value(x, y, 1) : 255 } }
        #expect(gaImage.channels == 1 && gaImage.pixels == expectedGA)

        // Palette, 4 bits per index, entry 2 fully transparent (tRNS), interlaced.
        let palette: [[UInt8]] = [[200, 10, 20], [0, 128, 255], [1, 2, 3], [90, 90, 0], [17, 34, 51]]
        let index = { (x: Int, y: Int) -> Int in (x + 2 * y) % palette.count }
        let packed: [[UInt8]] = (0 ..< h).map { y in stride(from: 0, to: w, by: 2).map { x in UInt8(index(x, y) << 4 | (x + 1 < w ? index(x + 1, y) : 0)) } }
        try LibPNGWriter.write(dir + "/palette.png", width: w, height: h, depth: 4, colorType: PNG_COLOR_TYPE_PALETTE, interlaced: true,
                               rows: packed, palette: palette, transparency: [255, 255, 0])
        let pal = try PNG.read(dir + "/palette.png")
        let expectedPalette: [UInt8] = (0 ..< h).flatMap { y in (0 ..< w).flatMap { x -> [UInt8] in index(x, y) == 2 ? [255, 255, 255] : palette[index(x, y)] } }
        #expect(pal.channels == 3 && pal.pixels == expectedPalette)

        // 1-bit grey: 0 → black, 1 → white.
        let bit = { (x: Int, y: Int) -> Int in (x * 3 + y) % 2 }
        let bits: [[UInt8]] = (0 ..< h).map { y in stride(from: 0, to: w, by: 8).map { x0 in
            (0 ..< 8).reduce(UInt8(0)) { b, k in b | (x0 + k < w && bit(x0 + k, y) == 1 ? UInt8(0x80) >> k : 0) }
        } }
        try LibPNGWriter.write(dir + "/bits.png", width: w, height: h, depth: 1, colorType: PNG_COLOR_TYPE_GRAY, interlaced: false, rows: bits)
        let b1 = try PNG.read(dir + "/bits.png")
        let expectedBits: [UInt8] = (0 ..< h).flatMap { y in (0 ..< w).map { x -> UInt8 in bit(x, y) == 1 ? 255 : 0 } }
        #expect(b1.pixels == expectedBits)
    }

    /// A header claiming a huge image is refused before the pixels are allocated: beyond
    /// ``PNG/maxDecodedBytes``, or beyond what the file's bytes can possibly hold.
    @Test("decoded sizes are bounded by a limit and by the file's size")
    func decodedSizeBounds() throws {
        let dir = try makeTempDirectory()
        defer { cleanUp(dir) }
        // 60000 x 60000 grey, all zero: a valid PNG of ~3.6 MB would be needed; a few rows are written.
        let row = [UInt8](repeating: 0, count: 8)
        try LibPNGWriter.write(dir + "/small.png", width: 64, height: 2, depth: 1, colorType: PNG_COLOR_TYPE_GRAY, interlaced: false, rows: [row, row])
        var data = try Data(contentsOf: URL(fileURLWithPath: dir + "/small.png"))
        func setSize(_ width: UInt32, _ height: UInt32) {
            // IHDR starts at byte 8 (length, "IHDR", width, height, ...); fix its CRC too.
            for (i, v) in [(16, width), (20, height)] { for k in 0 ..< 4 { data[i + k] = UInt8(v >> (24 - 8 * k) & 0xFF) } }
            let crc = CRC32.checksum(data[12 ..< 29])
            for k in 0 ..< 4 { data[29 + k] = UInt8(crc >> (24 - 8 * k) & 0xFF) }
        }
        setSize(60000, 60000)
        #expect(ioMessage { _ = try PNG.decode(data, as: 3) }?.contains("too large") == true)
        setSize(4000, 4000)   // 16 MB grey: below the limit, but far beyond what ~100 bytes can hold
        #expect(ioMessage { _ = try PNG.decode(data, as: 1) }?.contains("more than a file of") == true)
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

/// PNG files written with libpng's full (non-simplified) API, for decoding tests of the variants
/// the library's own writer never produces.
enum LibPNGWriter {
    /// `rows`: the packed bytes of each row as the PNG stores them (big-endian 16-bit samples,
    /// sub-byte samples packed from the high bit).
    static func write(_ path: String, width: Int, height: Int, depth: Int32, colorType: Int32, interlaced: Bool,
                      rows: [[UInt8]], palette: [[UInt8]] = [], transparency: [UInt8] = []) throws {
        guard let fp = fopen(path, "wb") else { throw ScoreSDEError.io(path: path, message: "cannot create") }
        defer { fclose(fp) }
        var png: png_structp? = png_create_write_struct(PNG_LIBPNG_VER_STRING, nil, nil, nil)
        var info: png_infop? = png_create_info_struct(png)
        defer { png_destroy_write_struct(&png, &info) }
        png_init_io(png, fp)
        png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), depth, colorType,
                     interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT)
        var colors = palette.map { png_color(red: $0[0], green: $0[1], blue: $0[2]) }
        if !colors.isEmpty { png_set_PLTE(png, info, &colors, Int32(colors.count)) }
        var alpha = transparency
        if !alpha.isEmpty { png_set_tRNS(png, info, &alpha, Int32(alpha.count), nil) }
        png_write_info(png, info)
        var buffers = rows.map { row -> UnsafeMutablePointer<UInt8>? in
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: row.count)
            p.initialize(from: row, count: row.count)
            return p
        }
        defer { for p in buffers { p?.deallocate() } }
        png_write_image(png, &buffers)
        png_write_end(png, nil)
    }
}

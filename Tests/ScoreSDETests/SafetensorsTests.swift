import Foundation
import Testing
@testable import ScoreSDE

// Safetensors: bitwise round trips, the exact byte layout, a file written by the Python
// `safetensors` package (embedded as hex), and every malformed-file case failing with
// `ScoreSDEError.io` and a message naming the problem.

private func bytes(hex: String) -> Data {
    var d = Data()
    var i = hex.startIndex
    while i < hex.endIndex {
        let j = hex.index(i, offsetBy: 2)
        d.append(UInt8(hex[i ..< j], radix: 16)!)
        i = j
    }
    return d
}

/// A file from a header string and raw data bytes (header padded to 8 as writers do unless `pad` is false).
private func file(header: String, data: [UInt8] = [], pad: Bool = true, lengthOverride: UInt64? = nil) -> Data {
    var h = Array(header.utf8)
    if pad { while h.count % 8 != 0 { h.append(0x20) } }
    var out = Data()
    withUnsafeBytes(of: (lengthOverride ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: h)
    out.append(contentsOf: data)
    return out
}

/// The message of the `io` error thrown when decoding `data` (nil if it decodes or throws otherwise).
private func ioMessage(_ data: Data) -> String? {
    do { _ = try Safetensors.decode(data, path: "x.safetensors"); return nil }
    catch ScoreSDEError.io(let path, let message) { return path == "x.safetensors" ? message : nil }
    catch { return nil }
}

/// A path in a fresh per-test directory; remove it with `removeTemp`.
private func tempPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-st-\(getpid())-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

private func removeTemp(_ paths: String...) {
    for p in paths { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: p).deletingLastPathComponent().path) }
}

@Suite("Safetensors")
struct SafetensorsTests {
    @Test("F64 round trip is bitwise, including NaN payloads, signed zero, infinities, subnormals, scalars and empty tensors")
    func roundTripBitwise() throws {
        let special: [Double] = [0, -0.0, .infinity, -.infinity, Double(bitPattern: 0x7FF8_0000_DEAD_BEEF),
                                 .leastNonzeroMagnitude, .greatestFiniteMagnitude, 0.1, -1e-310, .pi]
        let tensors = [SafetensorsTensor(name: "special", shape: [2, 5], values: special),
                       SafetensorsTensor(name: "scalar", shape: [], values: [42]),
                       SafetensorsTensor(name: "empty", shape: [0, 3], values: []),
                       SafetensorsTensor(name: "naïve \"quoted\"\n", shape: [1], values: [1])]
        let meta = ["k": "v", "unicode": "σ → ∞", "quote": "a \"b\" \\ c\t"]
        let path = tempPath("roundtrip.safetensors")
        defer { removeTemp(path) }
        try Safetensors.write(tensors, metadata: meta, to: path)
        let back = try Safetensors.read(path)
        #expect(back.metadata == meta)
        #expect(back.tensors.map(\.name) == tensors.map(\.name), "data order is preserved")
        for (a, b) in zip(tensors, back.tensors) {
            #expect(a.shape == b.shape)
            #expect(a.values.map(\.bitPattern) == b.values.map(\.bitPattern), "\(a.name) bitwise")
            #expect(b.dtype == .f64)
        }
    }

    @Test("byte layout: 8-byte little-endian length, space-padded JSON to a multiple of 8, contiguous data")
    func layout() throws {
        let data = try Safetensors.encode([SafetensorsTensor(name: "w", shape: [2], values: [1, -2]),
                                           SafetensorsTensor(name: "b", shape: [1], values: [0.5])],
                                          metadata: ["m": "1"])
        let n = Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        #expect(n % 8 == 0)
        #expect(data.count == 8 + n + 24)
        let header = String(decoding: data[8 ..< 8 + n], as: UTF8.self)
        let json = #"{"__metadata__":{"m":"1"},"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"b":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}}"#
        #expect(header == json + String(repeating: " ", count: n - json.utf8.count))
        #expect(n - json.utf8.count < 8)
        let doubles = (0 ..< 3).map { k in
            Double(bitPattern: data[(8 + n + 8 * k)...].prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        }
        #expect(doubles == [1, -2, 0.5])
        // No metadata: no __metadata__ entry.
        let plain = try Safetensors.encode([SafetensorsTensor(name: "w", shape: [1], values: [1])])
        #expect(!String(decoding: plain, as: UTF8.self).contains("__metadata__"))
    }

    @Test("F32 output: values rounded to Float, read back as such")
    func float32() throws {
        let v: [Double] = [0.1, -3.75, 1e-30, 123456789]
        let data = try Safetensors.encode([SafetensorsTensor(name: "x", shape: [4], values: v)], dtype: .f32)
        let back = try Safetensors.decode(data, path: "f32")
        #expect(back.tensors[0].dtype == .f32)
        #expect(back.tensors[0].values == v.map { Double(Float($0)) })
        #expect(throws: ScoreSDEError.self) { try Safetensors.encode([], dtype: .bf16) }
    }

    /// Written by `safetensors.numpy.save` (safetensors 0.8.0) from
    /// `{"a.f64": [[1.5, -2.25, 3], [0.1, 1e300, -0.0]] f8, "b.f32": [0.5, -1.25, 3.1415927] f4,
    ///   "c.f16": [[1, -2], [2⁻¹⁴, 65504]] f2, "scalar": 7.0 f8}`, metadata `{"format": "np", "note": "hi \"there\""}`.
    @Test("reads a file written by the Python safetensors package (F64, F32, F16, scalar, metadata)")
    func pythonFile() throws {
        let hex = "28010000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a226e70222c226e6f7465223a226869205c2274686572655c22227d2c22612e663634223a7b226474797065223a22463634222c227368617065223a5b322c335d2c22646174615f6f666673657473223a5b302c34385d7d2c227363616c6172223a7b226474797065223a22463634222c227368617065223a5b5d2c22646174615f6f666673657473223a5b34382c35365d7d2c22622e663332223a7b226474797065223a22463332222c227368617065223a5b335d2c22646174615f6f666673657473223a5b35362c36385d7d2c22632e663136223a7b226474797065223a22463136222c227368617065223a5b322c325d2c22646174615f6f666673657473223a5b36382c37365d7d7d202020000000000000f83f00000000000002c000000000000008409a9999999999b93f9c7500883ce4377e00000000000000800000000000001c400000003f0000a0bfdb0f4940003c00c00004ff7b"
        let f = try Safetensors.decode(bytes(hex: hex), path: "py")
        #expect(f.metadata == ["format": "np", "note": "hi \"there\""])
        #expect(f.tensors.map(\.name) == ["a.f64", "scalar", "b.f32", "c.f16"])
        let a = try f.tensor(named: "a.f64", shape: [2, 3])
        #expect(a.values.map(\.bitPattern) == [1.5, -2.25, 3, 0.1, 1e300, -0.0].map(\.bitPattern))
        #expect(try f.tensor(named: "scalar", shape: []).values == [7])
        #expect(try f.tensor(named: "b.f32").values == [0.5, -1.25, Double(Float(3.1415927))])
        #expect(try f.tensor(named: "c.f16", shape: [2, 2]).values == [1, -2, 0x1p-14, 65504])
        #expect(f.tensors.map(\.dtype) == [.f64, .f64, .f32, .f16])
    }

    @Test("BF16 and F16 special values convert exactly")
    func halfPrecision() throws {
        // BF16: 1.0 = 0x3F80, −2.5 = 0xC020, +inf = 0x7F80. F16: subnormal 0x0001 = 2⁻²⁴, −0 = 0x8000, −inf = 0xFC00, NaN = 0x7E00.
        let bf: [UInt8] = [0x80, 0x3F, 0x20, 0xC0, 0x80, 0x7F]
        let f16: [UInt8] = [0x01, 0x00, 0x00, 0x80, 0x00, 0xFC, 0x00, 0x7E]
        let d = file(header: #"{"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"h":{"dtype":"F16","shape":[4],"data_offsets":[6,14]}}"#,
                     data: bf + f16)
        let f = try Safetensors.decode(d, path: "half")
        #expect(try f.tensor(named: "b").values == [1, -2.5, .infinity])
        let h = try f.tensor(named: "h").values
        #expect(h[0] == 0x1p-24 && h[1] == 0 && h[1].sign == .minus && h[2] == -.infinity && h[3].isNaN)
    }

    @Test("malformed files fail with ScoreSDEError.io naming the problem")
    func malformed() throws {
        let good = #"{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#
        let data16 = [UInt8](repeating: 0, count: 16)
        #expect(ioMessage(file(header: good, data: data16)) == nil, "the reference case decodes")

        let cases: [(String, Data, String)] = [
            ("empty file", Data(), "fewer than the 8-byte header length"),
            ("5 bytes", Data([1, 2, 3, 4, 5]), "truncated"),
            ("header length beyond the file", file(header: good, data: data16, lengthOverride: 4000), "only"),
            ("absurd header length", file(header: good, data: data16, lengthOverride: UInt64.max), "limit"),
            ("truncated data", file(header: good, data: Array(data16.prefix(9))), "truncated or out of range"),
            ("malformed JSON", file(header: #"{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]"#, data: data16), "malformed"),
            ("not an object", file(header: "[1, 2, 3]", data: []), "must start with '{'"),
            ("unknown dtype", file(header: #"{"w":{"dtype":"F65","shape":[2],"data_offsets":[0,16]}}"#, data: data16), "unknown dtype 'F65'"),
            ("unsupported dtype", file(header: #"{"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#, data: data16), "I64, which is not supported"),
            ("size mismatch", file(header: #"{"w":{"dtype":"F64","shape":[3],"data_offsets":[0,16]}}"#, data: data16), "needs 3 × 8 = 24 bytes"),
            ("negative dimension", file(header: #"{"w":{"dtype":"F64","shape":[-2],"data_offsets":[0,16]}}"#, data: data16), "negative dimension"),
            ("reversed offsets", file(header: #"{"w":{"dtype":"F64","shape":[0],"data_offsets":[16,0]}}"#, data: data16), "begin <= end"),
            ("three offsets", file(header: #"{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16,16]}}"#, data: data16), "[begin, end]"),
            ("offset out of range", file(header: #"{"w":{"dtype":"F64","shape":[2],"data_offsets":[8,24]}}"#, data: data16), "out of range"),
            ("overlap", file(header: #"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"b":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}"#, data: data16), "overlaps"),
            ("gap", file(header: #"{"a":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}"#, data: data16), "gap"),
            ("trailing bytes", file(header: good, data: data16 + [0, 0, 0, 0, 0, 0, 0, 0]), "8 bytes after the last tensor"),
            ("missing key", file(header: #"{"w":{"dtype":"F64","shape":[2]}}"#, data: data16), "data_offsets"),
            ("non-string metadata", file(header: #"{"__metadata__":{"a":1},"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#, data: data16), "__metadata__"),
            ("string map as tensor", file(header: #"{"w":{"a":"b"}}"#, data: []), "only '__metadata__'"),
            ("fractional shape", file(header: #"{"w":{"dtype":"F64","shape":[1.5],"data_offsets":[0,16]}}"#, data: data16), "malformed"),
        ]
        for (label, bytes, fragment) in cases {
            let message = ioMessage(bytes)
            #expect(message != nil, "\(label): expected ScoreSDEError.io")
            if let message {
                #expect(message.contains(fragment), "\(label): message '\(message)' should mention '\(fragment)'")
                #expect(message.hasPrefix("not a valid safetensors file"), "\(label): \(message)")
            }
        }
    }

    /// The guards no other case reaches: a shape whose product overflows, a header length below
    /// the 2 bytes of `{}`, a header that is not UTF-8, a tensor entry named `__metadata__`, and
    /// a JSON header nested deeper than the decoder allows.
    @Test("hostile headers: overflowing shapes, tiny or non-UTF-8 headers, a tensor named __metadata__, deep nesting")
    func hostileHeaders() throws {
        let overflow = #"{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#
        #expect(ioMessage(file(header: overflow))?.contains("too large") == true)
        let bytesOverflow = #"{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}"#
        #expect(ioMessage(file(header: bytesOverflow))?.contains("needs") == true)
        for n in [0, 1] as [UInt64] {
            let m = ioMessage(file(header: "{}", pad: false, lengthOverride: n))
            #expect(m?.contains("at least a JSON object") == true, "length \(n): \(m ?? "decoded")")
        }
        var invalidUTF8 = file(header: #"{"__metadata__":{"k":"v?"}}"#)
        let q = invalidUTF8.firstIndex(of: UInt8(ascii: "?"))!
        invalidUTF8[q] = 0xFF
        #expect(ioMessage(invalidUTF8)?.contains("UTF-8") == true)
        let tensorNamedMetadata = #"{"__metadata__":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#
        #expect(ioMessage(file(header: tensorNamedMetadata, data: [UInt8](repeating: 0, count: 8)))?.contains("'__metadata__' must be a map") == true)
        let deep = "{\"w\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        #expect(ioMessage(file(header: deep)) != nil, "a deeply nested header is an error, not a stack overflow")
    }

    @Test("a truncated file on disk, a missing file and an unwritable path fail with io errors")
    func filesOnDisk() throws {
        let path = tempPath("truncated.safetensors")
        defer { removeTemp(path) }
        let full = try Safetensors.encode([SafetensorsTensor(name: "w", shape: [100], values: (0 ..< 100).map(Double.init))])
        for cut in [3, 8, 20, full.count - 1] {
            try full.prefix(cut).write(to: URL(fileURLWithPath: path))
            #expect(throws: ScoreSDEError.self) { _ = try Safetensors.read(path) }
            if case .io(let p, let m)? = scoreSDEError({ _ = try Safetensors.read(path) }) {
                #expect(p == path && m.contains("truncated"), "cut at \(cut): \(m)")
            } else { Issue.record("cut at \(cut): expected io error") }
        }
        if case .io(_, let m)? = scoreSDEError({ _ = try Safetensors.read(path + ".does-not-exist") }) {
            #expect(m.contains("no such file"))
        } else { Issue.record("missing file: expected io error") }
        #expect(throws: ScoreSDEError.self) { try Safetensors.write([], to: "/nonexistent-dir-scoresde/x.safetensors") }
        // Encoding rejects inconsistent tensors.
        #expect(throws: ScoreSDEError.self) { try Safetensors.encode([SafetensorsTensor(name: "w", shape: [3], values: [1])]) }
        #expect(throws: ScoreSDEError.self) { try Safetensors.encode([SafetensorsTensor(name: "w", shape: [1], values: [1]),
                                                                     SafetensorsTensor(name: "w", shape: [1], values: [1])]) }
        #expect(throws: ScoreSDEError.self) { try Safetensors.encode([SafetensorsTensor(name: "__metadata__", shape: [1], values: [1])]) }
    }
}

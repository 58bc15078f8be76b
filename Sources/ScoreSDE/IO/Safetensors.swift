import Foundation

/// The safetensors format (Hugging Face): the exchange format for model weights and checkpoints.
///
///     try Safetensors.write([SafetensorsTensor(name: "w", shape: [2, 3], values: w)],
///                           metadata: ["format": "pt"], to: "weights.safetensors")
///     let file = try Safetensors.read("weights.safetensors")   // safetensors.numpy.load_file works too
///     let w = try file.tensor(named: "w")
///
/// Layout: an 8-byte little-endian unsigned header length `N`, then `N` bytes of UTF-8 JSON
/// `{"__metadata__": {"k": "v", ...}, "name": {"dtype": "F64", "shape": [2, 3], "data_offsets": [b, e]}, ...}`
/// padded with spaces so that the data starts at a multiple of 8 bytes, then the data: every
/// tensor's little-endian, C-order values at `[b, e)` relative to the start of the data, tensors
/// contiguous and non-overlapping, covering the data exactly.
///
/// Written as F64 (default) or F32; read from F64, F32, F16 and BF16 (converted to `Double`).
/// Reading validates everything it relies on and reports the first problem found as
/// ``ScoreSDEError/io(path:message:)``.
public enum Safetensors {
    /// Element types this implementation reads (writing: `.f64` and `.f32`).
    public enum DType: String, Sendable, CaseIterable {
        case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"

        /// Bytes per element.
        public var size: Int {
            switch self {
            case .f64: return 8
            case .f32: return 4
            case .f16, .bf16: return 2
            }
        }
    }

    /// The dtypes of the format that this implementation does not read (for precise messages).
    static let knownUnsupported: Set<String> = ["BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64",
                                                "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"]

    /// Largest header accepted (the reference implementation's limit).
    static let maxHeaderLength = 100_000_000

    // MARK: - Writing

    /// The bytes of a safetensors file holding `tensors` (in the given order, data contiguous) and
    /// the string map `metadata` (omitted from the header when empty).
    ///
    /// - Throws: `invalidArgument` for an empty or duplicate name, the reserved name `__metadata__`,
    ///   a negative dimension, values that do not match the shape, or a dtype other than F64/F32.
    public static func encode(_ tensors: [SafetensorsTensor], metadata: [String: String] = [:],
                              dtype: DType = .f64) throws -> Data {
        guard dtype == .f64 || dtype == .f32 else {
            throw ScoreSDEError.invalid("dtype", dtype.rawValue, must: "F64 or F32 (the dtypes safetensors writing supports)")
        }
        var seen = Set<String>()
        for t in tensors {
            guard !t.name.isEmpty else { throw ScoreSDEError.invalidArgument("safetensors: a tensor name must not be empty") }
            guard t.name != "__metadata__" else {
                throw ScoreSDEError.invalidArgument("safetensors: '__metadata__' is reserved and cannot name a tensor")
            }
            guard seen.insert(t.name).inserted else {
                throw ScoreSDEError.invalidArgument("safetensors: duplicate tensor name '\(t.name)'")
            }
            guard t.shape.allSatisfy({ $0 >= 0 }), t.shape.reduce(1, *) == t.values.count else {
                throw ScoreSDEError.invalidArgument("safetensors: tensor '\(t.name)' has shape \(t.shape) but \(t.values.count) values")
            }
        }
        var header = "{"
        var first = true
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            header += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            header += "}"
            first = false
        }
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * dtype.size
            if !first { header += "," }
            first = false
            header += "\(jsonString(t.name)):{\"dtype\":\"\(dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }

        var data = Data()
        data.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: headerBytes)
        for t in tensors {
            switch dtype {
            case .f64:
                #if _endian(little)
                t.values.withUnsafeBytes { data.append(contentsOf: $0) }
                #else
                for v in t.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
                #endif
            default:
                let f = t.values.map { Float($0).bitPattern.littleEndian }
                f.withUnsafeBytes { data.append(contentsOf: $0) }
            }
        }
        return data
    }

    /// Writes a safetensors file atomically (see ``AtomicFile``).
    public static func write(_ tensors: [SafetensorsTensor], metadata: [String: String] = [:],
                             dtype: DType = .f64, to path: String) throws {
        try AtomicFile.write(encode(tensors, metadata: metadata, dtype: dtype), to: path)
    }

    // MARK: - Reading

    /// Reads and validates a safetensors file.
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a missing or unreadable file, a file
    ///   shorter than its header, malformed JSON, an unknown or unsupported dtype, a shape or
    ///   offsets that do not fit, overlapping tensors, gaps or trailing bytes.
    public static func read(_ path: String) throws -> SafetensorsFile {
        try decode(AtomicFile.read(path), path: path)
    }

    /// Decodes the bytes of a safetensors file; `path` is only used in messages.
    public static func decode(_ data: Data, path: String) throws -> SafetensorsFile {
        func fail(_ m: String) -> ScoreSDEError { .io(path: path, message: "not a valid safetensors file: " + m) }
        let total = data.count
        guard total >= 8 else {
            throw fail("truncated: the file has \(total) bytes, fewer than the 8-byte header length that starts every safetensors file")
        }
        let n64 = data.withUnsafeBytes { raw -> UInt64 in
            var v: UInt64 = 0
            for i in 0 ..< 8 { v |= UInt64(raw[i]) << (8 * UInt64(i)) }
            return v
        }
        guard n64 <= UInt64(maxHeaderLength) else {
            throw fail("the header length field says \(n64) bytes, more than the \(maxHeaderLength)-byte limit (the file is corrupt or not safetensors)")
        }
        let headerLength = Int(n64)
        guard 8 + headerLength <= total else {
            throw fail("truncated: the header length field says \(headerLength) bytes but only \(total - 8) bytes follow it (file size \(total))")
        }
        guard headerLength >= 2 else { throw fail("the header is \(headerLength) bytes long; it must hold at least a JSON object {}") }
        let headerData = data.subdata(in: data.startIndex + 8 ..< data.startIndex + 8 + headerLength)
        guard headerData.first == UInt8(ascii: "{") else {
            throw fail("malformed header: the JSON header must start with '{' (got byte 0x\(String(headerData.first ?? 0, radix: 16)))")
        }
        guard String(data: headerData, encoding: .utf8) != nil else {
            throw fail("malformed header: it is not valid UTF-8")
        }
        let entries: [String: HeaderValue]
        do {
            entries = try JSONDecoder().decode([String: HeaderValue].self, from: headerData)
        } catch let DecodingError.dataCorrupted(ctx) {
            throw fail("malformed JSON header: \(describe(ctx))")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw fail("malformed JSON header: \(describe(ctx))")
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw fail("malformed JSON header: \(describe(ctx)) missing key '\(key.stringValue)'")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw fail("malformed JSON header: \(describe(ctx))")
        } catch {
            throw fail("malformed JSON header: \(error)")
        }

        var metadata = [String: String]()
        var specs = [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)]()
        for (name, value) in entries {
            switch value {
            case .metadata(let m):
                guard name == "__metadata__" else {
                    throw fail("entry '\(name)' is a string map; only '__metadata__' may be one (tensors need dtype, shape and data_offsets)")
                }
                metadata = m
            case .tensor(let t):
                guard name != "__metadata__" else {
                    throw fail("'__metadata__' must be a map of strings to strings")
                }
                guard !name.isEmpty else {   // found by FuzzSafetensors: the writer refuses empty names
                    throw fail("a tensor has an empty name")
                }
                guard let dtype = DType(rawValue: t.dtype) else {
                    if knownUnsupported.contains(t.dtype) {
                        throw fail("tensor '\(name)' has dtype \(t.dtype), which is not supported here; store F64, F32, F16 or BF16")
                    }
                    throw fail("tensor '\(name)' has unknown dtype '\(t.dtype)'; expected one of F64, F32, F16, BF16")
                }
                guard t.shape.allSatisfy({ $0 >= 0 }) else {
                    throw fail("tensor '\(name)' has a negative dimension in shape \(t.shape)")
                }
                guard t.data_offsets.count == 2 else {
                    throw fail("tensor '\(name)': data_offsets must be [begin, end] (got \(t.data_offsets.count) numbers)")
                }
                let b = t.data_offsets[0], e = t.data_offsets[1]
                guard b >= 0, e >= b else {
                    throw fail("tensor '\(name)': data_offsets [\(b), \(e)] must satisfy 0 <= begin <= end")
                }
                var count = 1
                for d in t.shape {
                    let (p, o) = count.multipliedReportingOverflow(by: d)
                    guard !o else { throw fail("tensor '\(name)': shape \(t.shape) is too large") }
                    count = p
                }
                let (bytes, o) = count.multipliedReportingOverflow(by: dtype.size)
                guard !o, e - b == bytes else {
                    throw fail("tensor '\(name)': data_offsets [\(b), \(e)] span \(e - b) bytes but shape \(t.shape) of \(dtype.rawValue) needs \(count) × \(dtype.size) = \(count &* dtype.size) bytes")
                }
                specs.append((name, dtype, t.shape, b, e))
            }
        }
        let dataStart = 8 + headerLength
        let dataLength = total - dataStart
        specs.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var cursor = 0
        for s in specs {
            guard s.end <= dataLength else {
                throw fail("truncated or out of range: tensor '\(s.name)' needs bytes [\(s.begin), \(s.end)) of the data but the data section has only \(dataLength) bytes")
            }
            guard s.begin >= cursor else {
                let other = specs.first { $0.name != s.name && $0.begin < s.end && s.begin < $0.end }?.name ?? "another tensor"
                throw fail("tensor '\(s.name)' (bytes [\(s.begin), \(s.end))) overlaps '\(other)'")
            }
            guard s.begin == cursor else {
                throw fail("the data has a gap: bytes [\(cursor), \(s.begin)) belong to no tensor (before '\(s.name)')")
            }
            cursor = s.end
        }
        guard cursor == dataLength else {
            throw fail("\(dataLength - cursor) bytes after the last tensor belong to no tensor (data section \(dataLength) bytes, tensors end at \(cursor))")
        }

        let tensors = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [SafetensorsTensor] in
            specs.map { s in
                let count = (s.end - s.begin) / s.dtype.size
                let src = raw.baseAddress! + dataStart + s.begin
                // Empty tensors skip `unsafeUninitializedCapacity` (see Npy.decode: a benign stdlib race).
                let values = count == 0 ? [] : [Double](unsafeUninitializedCapacity: count) { out, initialized in
                    convert(src, s.dtype, count, into: out.baseAddress!)
                    initialized = count
                }
                return SafetensorsTensor(uncheckedName: s.name, shape: s.shape, values: values, dtype: s.dtype)
            }
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata, path: path)
    }

    /// Little-endian values of `dtype` at `src` into doubles.
    static func convert(_ src: UnsafeRawPointer, _ dtype: DType, _ count: Int, into out: UnsafeMutablePointer<Double>) {
        switch dtype {
        case .f64:
            for i in 0 ..< count {
                out[i] = Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
            }
        case .f32:
            for i in 0 ..< count {
                out[i] = Double(Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))
            }
        case .bf16:
            for i in 0 ..< count {
                let h = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                out[i] = Double(Float(bitPattern: UInt32(h) << 16))
            }
        case .f16:
            for i in 0 ..< count {
                out[i] = halfToDouble(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        }
    }

    /// IEEE 754 binary16 → Double (exact).
    static func halfToDouble(_ h: UInt16) -> Double {
        let sign: Double = h & 0x8000 != 0 ? -1 : 1
        let e = Int((h >> 10) & 0x1F), m = Double(h & 0x3FF)
        switch e {
        case 0: return sign * m * 0x1p-24                       // zero and subnormals
        case 31: return m == 0 ? sign * .infinity : .nan
        default: return sign * (1 + m / 1024) * Double(sign: .plus, exponent: e - 15, significand: 1)
        }
    }

    /// A JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    private static func describe(_ ctx: DecodingError.Context) -> String {
        let path = ctx.codingPath.map(\.stringValue).filter { !$0.isEmpty }.joined(separator: ".")
        var text = ctx.debugDescription
        if let u = ctx.underlyingError as NSError?, let detail = u.userInfo[NSDebugDescriptionErrorKey] as? String {
            text += " (\(detail))"
        }
        return path.isEmpty ? text : "at '\(path)': \(text)"
    }

    /// One value of the header object: the metadata map or a tensor entry.
    enum HeaderValue: Decodable {
        case metadata([String: String])
        case tensor(TensorEntry)

        struct TensorEntry: Decodable {
            let dtype: String
            let shape: [Int]
            let data_offsets: [Int]
        }

        init(from decoder: Decoder) throws {
            if let t = try? TensorEntry(from: decoder) { self = .tensor(t); return }
            if let m = try? [String: String](from: decoder) { self = .metadata(m); return }
            // Report why it is not a tensor entry (the usual case).
            self = .tensor(try TensorEntry(from: decoder))
        }
    }
}

/// A named tensor of a safetensors file. The shape may be empty (a scalar).
public struct SafetensorsTensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let values: [Double]
    /// The dtype it was read as (`.f64` for tensors built in memory).
    public let dtype: Safetensors.DType

    public init(name: String, shape: [Int], values: [Double]) {
        self.name = name; self.shape = shape; self.values = values; self.dtype = .f64
    }

    /// A tensor holding the rows of `tensor`, with its full shape.
    public init(name: String, _ tensor: Tensor) {
        self.init(name: name, shape: tensor.shape, values: tensor.storage)
    }

    init(uncheckedName name: String, shape: [Int], values: [Double], dtype: Safetensors.DType) {
        self.name = name; self.shape = shape; self.values = values; self.dtype = dtype
    }
}

/// The contents of a safetensors file: tensors in data order, and the metadata map.
public struct SafetensorsFile: Sendable {
    public let tensors: [SafetensorsTensor]
    public let metadata: [String: String]
    /// The path it was read from (for messages).
    public let path: String

    public init(tensors: [SafetensorsTensor], metadata: [String: String], path: String = "") {
        self.tensors = tensors; self.metadata = metadata; self.path = path
    }

    /// The tensor called `name`, or nil.
    public subscript(name: String) -> SafetensorsTensor? { tensors.first { $0.name == name } }

    /// The tensor called `name` with the expected shape.
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` when it is missing or has another shape.
    public func tensor(named name: String, shape: [Int]? = nil) throws -> SafetensorsTensor {
        guard let t = self[name] else {
            throw ScoreSDEError.io(path: path, message: "missing tensor '\(name)' (the file has \(tensors.count) tensors\(tensors.isEmpty ? "" : ", e.g. '\(tensors[0].name)'"))")
        }
        if let shape, t.shape != shape {
            throw ScoreSDEError.io(path: path, message: "tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        return t
    }

    /// The metadata value for `key`.
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` when it is missing.
    public func metadata(_ key: String) throws -> String {
        guard let v = metadata[key] else {
            throw ScoreSDEError.io(path: path, message: "missing metadata key '\(key)'")
        }
        return v
    }
}

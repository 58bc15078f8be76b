import Foundation

/// NumPy `.npy` files: the exchange format for samples, datasets and model outputs.
///
///     try Npy.write(samples, to: "samples.npy")      // np.load("samples.npy") -> float64 array
///     let data = try Npy.read("moons.npy")           // any of <f8 <f4 <i8 <i4 <i2 <u8 <u4 <u2 |u1 |i1 |b1
///
/// Files are written as little-endian float64 (`'<f8'`) in C order with a version 1.0 header laid
/// out exactly as `numpy.save` lays it out (data starts at a multiple of 64 bytes). The shape is
/// kept as is: a 1-D array of length n reads as shape `[n]`, whose rows are single values.
public enum Npy {
    /// Writes `t` as a float64 `.npy` file with shape `t.shape`, atomically (see ``AtomicFile``).
    public static func write(_ t: Tensor, to path: String) throws {
        try AtomicFile.write(encode(t), to: path)
    }

    /// The bytes of a float64 `.npy` file holding `t`, identical to what `numpy.save` writes.
    public static func encode(_ t: Tensor) -> Data {
        var data = header(shape: t.shape)
        data.reserveCapacity(data.count + t.count * 8)
        #if _endian(little)
        t.storage.withUnsafeBytes { data.append(contentsOf: $0) }
        #else
        for v in t.storage { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        #endif
        return data
    }

    /// Reads a `.npy` file into a ``Tensor`` of the same shape (values converted to `Double`).
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a missing file, a file that is not `.npy`,
    ///   a truncated file, Fortran order, a 0-d array, or an unsupported dtype, naming the problem.
    public static func read(_ path: String) throws -> Tensor {
        try decode(AtomicFile.read(path), path: path)
    }

    /// Decodes the bytes of a `.npy` file; `path` is only used in error messages.
    public static func decode(_ data: Data, path: String) throws -> Tensor {
        func fail(_ message: String) -> ScoreSDEError { .io(path: path, message: message) }
        let bytes = [UInt8](data.prefix(12))
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]   // \x93NUMPY
        guard bytes.count >= 10, Array(bytes[0 ..< 6]) == magic else {
            throw fail("not a .npy file: it does not start with the magic bytes \\x93NUMPY (save arrays with numpy.save)")
        }
        let (major, minor) = (bytes[6], bytes[7])
        let headerStart: Int, headerLength: Int
        switch (major, minor) {
        case (1, 0):
            headerStart = 10
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        case (2, 0), (3, 0):
            guard bytes.count >= 12 else { throw fail("truncated: the file ends inside the .npy preamble") }
            headerStart = 12
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        default:
            throw fail("unsupported .npy format version \(major).\(minor); versions 1.0, 2.0 and 3.0 are supported")
        }
        guard data.count >= headerStart + headerLength else {
            throw fail("truncated: the header is \(headerLength) bytes long but only \(data.count - headerStart) bytes follow the preamble")
        }
        let headerBytes = data.subdata(in: data.startIndex + headerStart ..< data.startIndex + headerStart + headerLength)
        guard let headerText = String(data: headerBytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw fail("malformed header: it is not valid text")
        }
        let header = try parseHeader(headerText, fail: fail)

        guard let dtype = DType(descr: header.descr) else {
            throw fail(unsupportedDTypeMessage(header.descr))
        }
        if header.fortranOrder && header.shape.filter({ $0 > 1 }).count > 1 {   // else the layouts coincide
            throw fail("the array is stored in Fortran (column-major) order; save it in C order, e.g. np.save(path, np.ascontiguousarray(a))")
        }
        guard !header.shape.isEmpty else {
            throw fail("the array is 0-dimensional (a single scalar, shape ()); save at least a 1-D array, e.g. np.save(path, np.atleast_1d(a))")
        }
        var count = 1
        for d in header.shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("malformed header: shape \(shapeText(header.shape)) is too large") }
            count = p
        }
        let (needed, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow else { throw fail("malformed header: shape \(shapeText(header.shape)) is too large") }
        let available = data.count - headerStart - headerLength
        guard available >= needed else {
            throw fail("truncated: header says shape \(shapeText(header.shape)) = \(count) \(dtype.name) values (\(needed) bytes) but only \(available) bytes follow")
        }

        // No zero-capacity `unsafeUninitializedCapacity`: the standard library then writes the count of
        // its shared empty-array singleton, a benign race ThreadSanitizer reports (swiftlang/swift #21627).
        let storage = count == 0 ? [] : [Double](unsafeUninitializedCapacity: count) { out, initialized in
            data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                let src = UnsafeRawBufferPointer(rebasing: raw[(headerStart + headerLength)...])
                dtype.convert(src, into: out, count: count)
            }
            initialized = count
        }
        do {
            return try Tensor(shape: header.shape, storage: storage)
        } catch {
            throw fail("cannot use shape \(shapeText(header.shape)): \(error)")
        }
    }

    // MARK: - Header writing

    /// numpy's `GROWTH_AXIS_MAX_DIGITS`: spare room so the first dimension can grow in place.
    private static let growthAxisMaxDigits = 21

    static func header(shape: [Int]) -> Data {
        var text = "{'descr': '<f8', 'fortran_order': False, 'shape': \(shapeText(shape)), }"
        if let first = shape.first {
            text += String(repeating: " ", count: max(0, growthAxisMaxDigits - String(first).count))
        }
        var version: UInt8 = 1
        var prefixLength = 10
        var total = prefixLength + text.utf8.count + 1
        var padding = 64 - total % 64          // numpy pads by 64 when already aligned
        if text.utf8.count + 1 + padding > 0xFFFF {
            version = 2
            prefixLength = 12
            total = prefixLength + text.utf8.count + 1
            padding = 64 - total % 64
        }
        let headerLength = text.utf8.count + padding + 1
        var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0])
        if version == 1 {
            withUnsafeBytes(of: UInt16(headerLength).littleEndian) { data.append(contentsOf: $0) }
        } else {
            withUnsafeBytes(of: UInt32(headerLength).littleEndian) { data.append(contentsOf: $0) }
        }
        data.append(contentsOf: Array(text.utf8))
        data.append(contentsOf: [UInt8](repeating: 0x20, count: padding))
        data.append(0x0A)
        return data
    }

    /// A shape as Python prints a tuple: `(3, 2)`, `(5,)`, `()`.
    static func shapeText(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    // MARK: - Header parsing

    struct Header {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]
    }

    /// The Python literals that appear in a `.npy` header.
    indirect enum PyValue {
        case string(String), bool(Bool), int(Int), null, tuple([PyValue]), list([PyValue]), dict([(String, PyValue)])
    }

    static func parseHeader(_ text: String, fail: (String) -> ScoreSDEError) throws -> Header {
        var parser = PyLiteralParser(text: Array(text.unicodeScalars))
        guard let value = parser.parseTop(), case .dict(let items) = value else {
            let shown = text.trimmingCharacters(in: .whitespacesAndNewlines)
            throw fail("malformed header: expected a Python dict like {'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), } but found \(shown.prefix(120))")
        }
        let keys = items.map(\.0)
        let expected = ["descr", "fortran_order", "shape"]
        guard Set(keys) == Set(expected), keys.count == 3 else {
            throw fail("malformed header: expected exactly the keys 'descr', 'fortran_order' and 'shape' but found \(keys.map { "'\($0)'" }.joined(separator: ", "))")
        }
        let dict = Dictionary(items, uniquingKeysWith: { a, _ in a })
        let descr: String
        switch dict["descr"]! {
        case .string(let s): descr = s
        default: throw fail("unsupported dtype: a structured (record) dtype; save a plain numeric array, e.g. np.save(path, np.stack([a[f] for f in a.dtype.names], axis=-1).astype(np.float64))")
        }
        guard case .bool(let fortran) = dict["fortran_order"]! else {
            throw fail("malformed header: 'fortran_order' must be True or False")
        }
        guard case .tuple(let dims) = dict["shape"]! else {
            throw fail("malformed header: 'shape' must be a tuple of integers such as (3, 2)")
        }
        var shape = [Int]()
        for d in dims {
            guard case .int(let n) = d, n >= 0 else {
                throw fail("malformed header: 'shape' must be a tuple of non-negative integers")
            }
            shape.append(n)
        }
        return Header(descr: descr, fortranOrder: fortran, shape: shape)
    }

    struct PyLiteralParser {
        let text: [Unicode.Scalar]
        var i = 0
        /// Containers open at the current position; a header nests 2 deep, so 32 is plenty and
        /// keeps a hostile header (`((((…`) from exhausting the stack.
        var depth = 0
        static let maxDepth = 32

        init(text: [Unicode.Scalar]) { self.text = text }

        mutating func parseTop() -> PyValue? {
            guard let v = parseValue() else { return nil }
            skipSpace()
            return i == text.count ? v : nil
        }

        mutating func skipSpace() {
            while i < text.count, text[i] == " " || text[i] == "\n" || text[i] == "\t" || text[i] == "\r" { i += 1 }
        }

        mutating func consume(_ c: Unicode.Scalar) -> Bool {
            skipSpace()
            if i < text.count, text[i] == c { i += 1; return true }
            return false
        }

        mutating func parseValue() -> PyValue? {
            skipSpace()
            guard i < text.count else { return nil }
            let c = text[i]
            switch c {
            case "'", "\"":
                i += 1
                var s = String.UnicodeScalarView()
                while i < text.count, text[i] != c {
                    if text[i] == "\\", i + 1 < text.count { i += 1 }
                    s.append(text[i]); i += 1
                }
                guard i < text.count else { return nil }
                i += 1
                return .string(String(s))
            case "{":
                guard depth < Self.maxDepth else { return nil }
                depth += 1; defer { depth -= 1 }
                i += 1
                var items = [(String, PyValue)]()
                while true {
                    if consume("}") { return .dict(items) }
                    guard case .string(let key)? = parseValue(), consume(":"), let v = parseValue() else { return nil }
                    items.append((key, v))
                    if consume("}") { return .dict(items) }
                    guard consume(",") else { return nil }
                }
            case "(", "[":
                guard depth < Self.maxDepth else { return nil }
                depth += 1; defer { depth -= 1 }
                let close: Unicode.Scalar = c == "(" ? ")" : "]"
                i += 1
                var items = [PyValue]()
                while true {
                    if consume(close) { return c == "(" ? .tuple(items) : .list(items) }
                    guard let v = parseValue() else { return nil }
                    items.append(v)
                    if consume(close) { return c == "(" ? .tuple(items) : .list(items) }
                    guard consume(",") else { return nil }
                }
            default:
                var word = ""
                while i < text.count, text[i].properties.isAlphabetic || ("0" ... "9").contains(text[i]) || text[i] == "-" || text[i] == "_" {
                    word.unicodeScalars.append(text[i]); i += 1
                }
                switch word {
                case "True": return .bool(true)
                case "False": return .bool(false)
                case "None": return .null
                default:
                    if word.hasSuffix("L") { word.removeLast() }   // Python 2 long literals: (3L, 2L)
                    return Int(word).map { .int($0) }
                }
            }
        }
    }

    // MARK: - Element types

    enum DType {
        case f8, f4, i8, i4, i2, u8, u4, u2, u1, i1, b1

        init?(descr: String) {
            switch descr {
            case "<f8": self = .f8
            case "<f4": self = .f4
            case "<i8": self = .i8
            case "<i4": self = .i4
            case "<i2": self = .i2
            case "<u8": self = .u8
            case "<u4": self = .u4
            case "<u2": self = .u2
            case "|u1", "<u1", "=u1": self = .u1
            case "|i1", "<i1", "=i1": self = .i1
            case "|b1": self = .b1
            default: return nil
            }
        }

        var size: Int {
            switch self {
            case .f8, .i8, .u8: return 8
            case .f4, .i4, .u4: return 4
            case .i2, .u2: return 2
            case .u1, .i1, .b1: return 1
            }
        }

        var name: String {
            switch self {
            case .f8: return "float64"
            case .f4: return "float32"
            case .i8: return "int64"
            case .i4: return "int32"
            case .i2: return "int16"
            case .u8: return "uint64"
            case .u4: return "uint32"
            case .u2: return "uint16"
            case .u1: return "uint8"
            case .i1: return "int8"
            case .b1: return "bool"
            }
        }

        func convert(_ src: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Double>, count: Int) {
            func each<T: FixedWidthInteger>(_: T.Type, _ f: (T) -> Double) {
                for k in 0 ..< count { out[k] = f(T(littleEndian: src.loadUnaligned(fromByteOffset: k * MemoryLayout<T>.size, as: T.self))) }
            }
            switch self {
            case .f8:
                #if _endian(little)
                if count > 0 { UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: src.baseAddress!, byteCount: count * 8) }
                #else
                each(UInt64.self) { Double(bitPattern: $0) }
                #endif
            case .f4: each(UInt32.self) { Double(Float(bitPattern: $0)) }
            case .i8: each(Int64.self) { Double($0) }
            case .i4: each(Int32.self) { Double($0) }
            case .i2: each(Int16.self) { Double($0) }
            case .u8: each(UInt64.self) { Double($0) }
            case .u4: each(UInt32.self) { Double($0) }
            case .u2: each(UInt16.self) { Double($0) }
            case .u1: each(UInt8.self) { Double($0) }
            case .i1: each(Int8.self) { Double($0) }
            case .b1: each(UInt8.self) { $0 == 0 ? 0 : 1 }
            }
        }
    }

    static func unsupportedDTypeMessage(_ descr: String) -> String {
        let supported = "supported: <f8 <f4 <i8 <i4 <i2 <u8 <u4 <u2 |u1 |i1 |b1"
        if descr.hasPrefix(">") {
            return "unsupported dtype '\(descr)': big-endian data; convert before saving, e.g. np.save(path, a.astype('<f8')) (\(supported))"
        }
        if descr == "|O" || descr == "O" {
            return "unsupported dtype '\(descr)': object arrays (pickled Python objects) cannot be read; save a numeric array, e.g. np.save(path, np.asarray(a, dtype=np.float64)) (\(supported))"
        }
        return "unsupported dtype '\(descr)'; convert before saving, e.g. np.save(path, a.astype(np.float64)) (\(supported))"
    }
}

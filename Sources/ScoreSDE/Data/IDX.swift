import Foundation

/// IDX files, the format of MNIST and Fashion-MNIST: an n-dimensional array of one numeric type,
/// big-endian, plain or gzipped.
///
///     let images = try IDX.read("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
///     images.shape                        // [60000, 28, 28]
///     images.elementType                  // .uint8
///     let x = images.tensor()             // values as Double, same shape
///
///     let labels = try IDXArray(bytes: [3, 1, 4], shape: [3])
///     try IDX.write(labels, to: "labels-idx1-ubyte.gz")   // gzipped because of the name
///
/// Layout (LeCun & Cortes): two zero bytes; a type code (``IDXArray/ElementType``); the number
/// of dimensions `d`; `d` sizes as big-endian 32-bit unsigned integers; then the values in row-major
/// order (last index fastest), each big-endian. A file that starts with the gzip magic `1f 8b`
/// is decompressed through zlib first (never a hand-written inflate).
///
/// Reading is strict: a short header, a wrong magic, an unknown type code, no dimensions, sizes
/// whose product overflows or exceeds `maximumBytes`, and a byte count that disagrees with the
/// sizes (short or with bytes left over) each throw ``ScoreSDEError/idx(path:problem:)`` with
/// its ``IDXProblem``, naming the file.
public enum IDX {
    /// The largest array accepted by default, in bytes of values (1 GiB; Fashion-MNIST's training
    /// images are 47 MB). Pass a larger `maximumBytes` to read more.
    public static let defaultMaximumBytes = 1 << 30
    /// The longest possible header: magic, 255 dimensions of 4 bytes.
    static let maximumHeaderBytes = 4 + 4 * 255

    /// Reads an IDX file, plain or gzipped (recognised by its first two bytes, not its name).
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` for a missing or unreadable file;
    ///   ``ScoreSDEError/idx(path:problem:)`` for a malformed one (see ``IDXProblem``).
    public static func read(_ path: String, maximumBytes: Int = defaultMaximumBytes) throws -> IDXArray {
        try decode(AtomicFile.read(path), path: path, maximumBytes: maximumBytes)
    }

    /// Decodes the bytes of an IDX file, plain or gzipped; `path` is only used in error messages.
    ///
    /// - Throws: ``ScoreSDEError/idx(path:problem:)`` naming what is wrong (see ``IDXProblem``).
    public static func decode(_ data: Data, path: String, maximumBytes: Int = defaultMaximumBytes) throws -> IDXArray {
        if Gzip.isGzip(data) {
            let raw = try Gzip.decompress(data, path: path, maximumBytes: maximumBytes > Int.max - maximumHeaderBytes ? .max : maximumBytes + maximumHeaderBytes)
            return try raw.withUnsafeBytes { try parse($0, path: path, maximumBytes: maximumBytes) }
        }
        return try data.withUnsafeBytes { try parse($0, path: path, maximumBytes: maximumBytes) }
    }

    /// The bytes of the IDX file holding `array` (uncompressed).
    public static func encode(_ array: IDXArray) -> Data {
        var data = Data([0, 0, array.elementType.rawValue, UInt8(array.shape.count)])
        data.reserveCapacity(4 + 4 * array.shape.count + array.payload.count)
        for d in array.shape { withUnsafeBytes(of: UInt32(d).bigEndian) { data.append(contentsOf: $0) } }
        data.append(contentsOf: array.payload)
        return data
    }

    /// Writes `array` as an IDX file, atomically (see ``AtomicFile``); gzipped (through zlib) when
    /// `path` ends in `.gz`, as the MNIST files are distributed.
    public static func write(_ array: IDXArray, to path: String) throws {
        let plain = encode(array)
        try AtomicFile.write(path.hasSuffix(".gz") ? Gzip.compress([UInt8](plain)) : plain, to: path)
    }

    /// Parses an uncompressed IDX file.
    static func parse(_ bytes: UnsafeRawBufferPointer, path: String, maximumBytes: Int) throws -> IDXArray {
        func fail(_ problem: IDXProblem) -> ScoreSDEError { .idx(path: path, problem: problem) }
        guard bytes.count >= 4 else { throw fail(.truncatedHeader(needed: 4, available: bytes.count)) }
        guard bytes[0] == 0, bytes[1] == 0 else { throw fail(.badMagic(bytes[0], bytes[1])) }
        guard let type = IDXArray.ElementType(rawValue: bytes[2]) else { throw fail(.unknownElementType(bytes[2])) }
        let rank = Int(bytes[3])
        guard rank >= 1 else { throw fail(.noDimensions) }
        let headerBytes = 4 + 4 * rank
        guard bytes.count >= headerBytes else { throw fail(.truncatedHeader(needed: headerBytes, available: bytes.count)) }
        let shape = (0 ..< rank).map { i -> Int in
            let o = 4 + 4 * i
            return Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
        }
        // The size that counts for limits ignores zero dimensions, so [0, 2³², 2³²] is refused too
        // (its rows would be too large to hold even though it has none).
        var nominal = type.size
        for d in shape where d > 0 {
            let (p, overflow) = nominal.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail(.sizeOverflow(shape: shape)) }
            nominal = p
        }
        guard nominal <= maximumBytes else { throw fail(.tooLarge(shape: shape, bytes: nominal, limit: maximumBytes)) }
        let expected = shape.contains(0) ? 0 : nominal
        let available = bytes.count - headerBytes
        guard available >= expected else {
            throw fail(.truncatedData(shape: shape, expected: expected, available: available))
        }
        guard available == expected else {
            throw fail(.trailingBytes(shape: shape, expected: expected, available: available))
        }
        return IDXArray(uncheckedType: type, shape: shape, payload: [UInt8](bytes[headerBytes...]))
    }
}

/// An n-dimensional array read from or written to an IDX file: its element type, its shape and
/// its values as stored (big-endian bytes, row-major).
///
///     let a = try IDXArray(bytes: [0, 128, 255, 7], shape: [2, 2])
///     a.tensor().storage                  // [0, 128, 255, 7]
public struct IDXArray: Sendable, Equatable {
    /// The numeric types of IDX and their type codes (the file's third byte).
    public enum ElementType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        case uint8 = 0x08, int8 = 0x09, int16 = 0x0B, int32 = 0x0C, float32 = 0x0D, float64 = 0x0E

        /// Bytes per value.
        public var size: Int {
            switch self {
            case .uint8, .int8: return 1
            case .int16: return 2
            case .int32, .float32: return 4
            case .float64: return 8
            }
        }

        public var description: String {
            let name: String
            switch self {
            case .uint8: name = "unsigned byte"
            case .int8: name = "signed byte"
            case .int16: name = "16-bit integer"
            case .int32: name = "32-bit integer"
            case .float32: name = "32-bit float"
            case .float64: name = "64-bit float"
            }
            return "\(name) (type code 0x\(String(format: "%02X", rawValue)))"
        }
    }

    /// The type of every value.
    public let elementType: ElementType
    /// The sizes of the dimensions (at least one; each `< 2³²`).
    public let shape: [Int]
    /// The values as stored in the file: `count × elementType.size` bytes, big-endian, row-major.
    public let payload: [UInt8]

    /// Number of values (the product of ``shape``).
    public var count: Int { payload.count / elementType.size }

    /// An array of `elementType` values from their big-endian bytes.
    ///
    /// - Throws: ``ScoreSDEError/shapeMismatch(_:)`` when `shape` is empty, has more than 255
    ///   dimensions, a size outside `0 ..< 2³²`, or does not match the number of bytes.
    public init(elementType: ElementType, shape: [Int], payload: [UInt8]) throws {
        guard (1 ... 255).contains(shape.count), shape.allSatisfy({ $0 >= 0 && $0 <= Int(UInt32.max) }) else {
            throw ScoreSDEError.shapeMismatch("an IDX array needs 1 to 255 dimensions, each of size 0 ... 4294967295, got \(shape)")
        }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw ScoreSDEError.shapeMismatch("an IDX array of shape \(shape) has too many values") }
            count = p
        }
        guard count.multipliedReportingOverflow(by: elementType.size) == (payload.count, false) else {
            throw ScoreSDEError.shapeMismatch("an IDX array of shape \(shape) and type \(elementType) needs \(count) × \(elementType.size) bytes, got \(payload.count)")
        }
        self.init(uncheckedType: elementType, shape: shape, payload: payload)
    }

    /// An array of unsigned bytes (type code `0x08`), as MNIST's images and labels.
    public init(bytes: [UInt8], shape: [Int]) throws {
        try self.init(elementType: .uint8, shape: shape, payload: bytes)
    }

    init(uncheckedType elementType: ElementType, shape: [Int], payload: [UInt8]) {
        self.elementType = elementType; self.shape = shape; self.payload = payload
    }

    /// The values as `Double` (exact for every type) in a tensor of the same shape. Float values
    /// are kept as they are, NaN and ±Inf included: check with `Tensor.checkFinite` where needed.
    public func tensor() -> Tensor {
        let n = count
        let storage = n == 0 ? [] : [Double](unsafeUninitializedCapacity: n) { out, initialized in
            payload.withUnsafeBytes { raw in
                switch elementType {
                case .uint8: for i in 0 ..< n { out[i] = Double(raw[i]) }
                case .int8: for i in 0 ..< n { out[i] = Double(Int8(bitPattern: raw[i])) }
                case .int16:
                    for i in 0 ..< n { out[i] = Double(Int16(bigEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
                case .int32:
                    for i in 0 ..< n { out[i] = Double(Int32(bigEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
                case .float32:
                    for i in 0 ..< n {
                        out[i] = Double(Float(bitPattern: UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))
                    }
                case .float64:
                    for i in 0 ..< n {
                        out[i] = Double(bitPattern: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                    }
                }
            }
            initialized = n
        }
        return Tensor(uncheckedShape: shape, storage: storage)
    }
}

/// What is wrong with an IDX file (``ScoreSDEError/idx(path:problem:)``). Each description says
/// what was found and what was expected.
public enum IDXProblem: Equatable, Sendable, CustomStringConvertible {
    /// The file ends inside the header: `needed` bytes are required, `available` are there.
    case truncatedHeader(needed: Int, available: Int)
    /// The first two bytes are not zero (the IDX magic is `00 00 <type> <dimensions>`).
    case badMagic(UInt8, UInt8)
    /// The third byte is not a type code of ``IDXArray/ElementType``.
    case unknownElementType(UInt8)
    /// The fourth byte, the number of dimensions, is 0.
    case noDimensions
    /// The product of the sizes does not fit in a 64-bit integer.
    case sizeOverflow(shape: [Int])
    /// The sizes describe more than `limit` bytes of values (`bytes`, zero sizes counted as 1).
    case tooLarge(shape: [Int], bytes: Int, limit: Int)
    /// Fewer bytes of values follow the header than the sizes require.
    case truncatedData(shape: [Int], expected: Int, available: Int)
    /// More bytes follow the header than the sizes describe.
    case trailingBytes(shape: [Int], expected: Int, available: Int)
    /// zlib rejected the gzip data (its message).
    case corruptGzip(String)
    /// The gzip stream ends before its end marker and checksum.
    case truncatedGzip
    /// The gzip data decompress to more than `limit` bytes.
    case decompressedTooLarge(limit: Int)
    /// A well-formed IDX file that is not the data expected (a data set's type, shape, count or label range).
    case unexpectedContent(String)

    public var description: String {
        func dims(_ s: [Int]) -> String { s.map(String.init).joined(separator: " x ") }
        let valid = "not a valid IDX file: "
        switch self {
        case .truncatedHeader(let needed, let available):
            return valid + "truncated: the header needs \(needed) bytes but the file has \(available); the file is incomplete, download or copy it again"
        case .badMagic(let a, let b):
            return valid + String(format: "it starts with 0x%02X 0x%02X instead of the magic 0x00 0x00 (IDX: 00 00 <type> <dimensions>)", a, b)
        case .unknownElementType(let code):
            let known = IDXArray.ElementType.allCases.map { String(format: "0x%02X", $0.rawValue) }.joined(separator: ", ")
            return valid + String(format: "unknown type code 0x%02X; IDX type codes are ", code) + known
        case .noDimensions:
            return valid + "the header declares 0 dimensions; an IDX array has at least one"
        case .sizeOverflow(let shape):
            return valid + "the sizes \(dims(shape)) multiply to more than a 64-bit integer holds"
        case .tooLarge(let shape, let bytes, let limit):
            return "the IDX sizes \(dims(shape)) describe \(bytes) bytes of values, more than the limit of \(limit); pass a larger maximumBytes if the file is really that large"
        case .truncatedData(let shape, let expected, let available):
            return valid + "truncated: sizes \(dims(shape)) need \(expected) bytes of values but only \(available) follow the header; the file is incomplete, download or copy it again"
        case .trailingBytes(let shape, let expected, let available):
            return valid + "sizes \(dims(shape)) need \(expected) bytes of values but \(available) follow the header (\(available - expected) too many)"
        case .corruptGzip(let message):
            return "corrupt gzip data (zlib: \(message)); the file is damaged, download or copy it again"
        case .truncatedGzip:
            return "truncated gzip data: the stream ends before its end marker; the file is incomplete, download or copy it again"
        case .decompressedTooLarge(let limit):
            return "the gzip data decompress to more than \(limit) bytes, more than any IDX file accepted here; pass a larger maximumBytes if the file is really that large"
        case .unexpectedContent(let message):
            return message
        }
    }
}

import Foundation

/// What a run did and with which settings, as a JSON object whose keys keep the order they were
/// set in (so a stats file reads top-down: results first, then settings).
///
///     var stats = RunStats()
///     stats["nfe"] = .int(run.scoreEvaluations)
///     stats["wall_seconds"] = .double(1.25)
///     stats["sde"] = "ve"
///     try stats.write(to: "out/stats.json")        // atomically, see AtomicFile
///
/// Non-finite numbers are written as `null` (JSON has no NaN or infinity).
public struct RunStats: Sendable, Equatable {
    /// A JSON value.
    public indirect enum Value: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
        ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral {
        case string(String)
        case int(Int)
        case double(Double)
        case bool(Bool)
        case null
        case array([Value])
        case object(RunStats)

        public init(stringLiteral value: String) { self = .string(value) }
        public init(integerLiteral value: Int) { self = .int(value) }
        public init(floatLiteral value: Double) { self = .double(value) }
        public init(booleanLiteral value: Bool) { self = .bool(value) }

        /// `.int` of each element: a shape, a list of counts.
        public static func ints(_ values: [Int]) -> Value { .array(values.map { .int($0) }) }
    }

    /// The keys, in the order they were first set.
    public private(set) var keys: [String] = []
    private var values: [String: Value] = [:]

    public init() {}

    /// The value of `key`. Setting a new key appends it; setting an existing key replaces its
    /// value in place; setting `nil` removes the key (use `.null` to write `null`).
    public subscript(key: String) -> Value? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// Sets every entry of `other`, in its order (existing keys are replaced in place).
    public mutating func merge(_ other: RunStats) {
        for k in other.keys { self[k] = other.values[k] }
    }

    /// The JSON text: two-space indentation, one key per line, arrays of scalars on one line,
    /// ending with a newline.
    public func jsonData() -> Data {
        var out = ""
        Self.append(.object(self), to: &out, indent: 0)
        out += "\n"
        return Data(out.utf8)
    }

    /// Writes the JSON text to `path` atomically (see ``AtomicFile``).
    public func write(to path: String) throws {
        try AtomicFile.write(jsonData(), to: path)
    }

    // MARK: - Encoding

    private static func append(_ value: Value, to out: inout String, indent: Int) {
        switch value {
        case .string(let s): appendString(s, to: &out)
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? String(d) : "null"
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            if items.allSatisfy(\.isScalar) {
                out += "["
                for (i, item) in items.enumerated() {
                    if i > 0 { out += ", " }
                    append(item, to: &out, indent: indent)
                }
                out += "]"
            } else {
                let pad = String(repeating: " ", count: indent + 2)
                out += "[\n"
                for (i, item) in items.enumerated() {
                    out += pad
                    append(item, to: &out, indent: indent + 2)
                    out += i + 1 < items.count ? ",\n" : "\n"
                }
                out += String(repeating: " ", count: indent) + "]"
            }
        case .object(let stats):
            guard !stats.keys.isEmpty else { out += "{}"; return }
            let pad = String(repeating: " ", count: indent + 2)
            out += "{\n"
            for (i, key) in stats.keys.enumerated() {
                out += pad
                appendString(key, to: &out)
                out += ": "
                append(stats.values[key]!, to: &out, indent: indent + 2)
                out += i + 1 < stats.keys.count ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        }
    }

    private static func appendString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension RunStats.Value {
    var isScalar: Bool {
        switch self {
        case .array, .object: return false
        default: return true
        }
    }
}

/// The files a run will write, checked before the work starts and written all-or-nothing after it.
///
///     var outputs = RunOutputs()
///     outputs.add("out/samples.npy", for: "--output")
///     outputs.add("out/samples.png", for: "--png")
///     try outputs.check()                 // before a long run, so a typo fails in milliseconds
///     // ... the run ...
///     try outputs.write(["--output": Npy.encode(samples), "--png": pngData])
///
/// Each file is written atomically (see ``AtomicFile``); if one write fails, the files this call
/// already wrote are removed, so a failed run leaves no outputs behind. Each file is named by a
/// *role* (a command-line option such as `--output`) that error messages repeat.
public struct RunOutputs: Sendable {
    /// One output file: its role and path.
    public struct Target: Sendable, Equatable {
        /// What the file is for, e.g. the option that named it.
        public let role: String
        public let path: String
    }

    /// The files, in the order they are written.
    public private(set) var targets: [Target] = []

    public init() {}

    public var isEmpty: Bool { targets.isEmpty }
    public var paths: [String] { targets.map(\.path) }

    /// Whether a file was added for `role`.
    public func contains(_ role: String) -> Bool { targets.contains { $0.role == role } }

    /// Adds `path`, if given, as the file for `role`.
    public mutating func add(_ path: String?, for role: String) {
        if let path { targets.append(Target(role: role, path: path)) }
    }

    /// Longest file name accepted: `NAME_MAX` less room for ``AtomicFile``'s temporary name.
    static let maxNameLength = 255 - 32

    /// Checks that every file can be written, without writing any.
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` naming the role, when a path is empty, given
    ///   twice, a directory, or has too long a name, or when its directory is missing or not
    ///   writable (tried by creating and removing a probe file there).
    ///   Under ``Population/communicator`` every rank checks, and all throw when any fails
    ///   (naming the rank): the files are written by rank 0 only, but a path only some ranks can
    ///   write is a mistake worth stopping for.
    public func check() throws {
        try Population.agree("cannot write the outputs") { try checkHere() }
    }

    private func checkHere() throws {
        var seen = [String: String]()
        for t in targets {
            func fail(_ message: String) -> ScoreSDEError { .io(path: t.path, message: "cannot write the \(t.role) file: \(message)") }
            guard !t.path.isEmpty else {
                throw ScoreSDEError.io(path: t.role, message: "empty path; give a file name such as out/samples.npy")
            }
            let url = URL(fileURLWithPath: t.path).standardizedFileURL
            if let other = seen[url.path] {
                throw fail("the same file is also given as the \(other) file; give each output its own file")
            }
            seen[url.path] = t.role
            let directory = url.deletingLastPathComponent().path
            let shown = Self.directoryAsGiven(t.path)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
                throw fail("directory '\(shown)' does not exist; create it first (mkdir -p '\(shown)') or choose another path")
            }
            guard isDirectory.boolValue else { throw fail("'\(shown)' is not a directory") }
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw fail("this path is a directory; give a file name inside it")
            }
            let nameLength = url.lastPathComponent.utf8.count
            guard nameLength <= Self.maxNameLength else {
                throw fail("the file name is too long (\(nameLength) bytes; at most \(Self.maxNameLength))")
            }
            let probe = directory + "/.scoresde-probe-\(getpid())-\(UInt32.random(in: 0 ... .max))"
            let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                throw fail("directory '\(shown)' is not writable (\(reason)); choose another path")
            }
            close(fd)
            unlink(probe)
        }
    }

    /// Writes `contents[role]` to each target, in the order added; every target needs contents.
    ///
    /// - Throws: the first write's error; the files already written by this call are removed
    ///   first, and the message says so.
    ///   Under ``Population/communicator`` only rank 0 writes.
    public func write(_ contents: [String: Data]) throws {
        guard Population.rank == 0 else { return }
        var written = [String]()
        for t in targets {
            guard let data = contents[t.role] else {
                throw ScoreSDEError.invalidArgument("RunOutputs.write: no contents for the \(t.role) file '\(t.path)'")
            }
            do {
                try AtomicFile.write(data, to: t.path)
                written.append(t.path)
            } catch {
                for path in written { unlink(path) }
                guard !written.isEmpty else { throw error }
                let removed = written.map { "'\($0)'" }.joined(separator: ", ")
                let message: String
                if case ScoreSDEError.io(_, let m) = error { message = m } else { message = "\(error)" }
                throw ScoreSDEError.io(path: t.path, message: "cannot write the \(t.role) file: \(message); removed the files already written (\(removed))")
            }
        }
    }

    /// The directory part of `path` as written ("." when there is none), for messages.
    /// (Not `NSString.deletingLastPathComponent`, which traps on "." in swift-corelibs-foundation.)
    static func directoryAsGiven(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        return slash == p.startIndex ? "/" : String(p[..<slash])
    }
}

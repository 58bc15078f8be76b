import Foundation

extension ColorMixing {
    /// Parses a mixing matrix written as JSON rows, `[[m00, m01, m02], [m10, m11, m12], [m20, m21, m22]]`
    /// (numbers only: `true`, `false`, strings and `null` are rejected), then checks it as
    /// ``init(_:tolerance:)`` does.
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` naming the problem; `path` is only used in messages.
    public init(json data: Data, path: String = "<json>") throws {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw ScoreSDEError.io(path: path, message: "not valid JSON (\(error.localizedDescription)); write the mixing matrix as [[m00, m01, m02], [m10, m11, m12], [m20, m21, m22]]")
        }
        guard let rows = object as? [Any], !rows.isEmpty else {
            throw ScoreSDEError.io(path: path, message: "not a JSON matrix; write the mixing matrix as [[m00, m01, m02], [m10, m11, m12], [m20, m21, m22]]")
        }
        // On Linux `x is Bool` holds for the JSON numbers 0 and 1, so booleans are told apart by class.
        let booleanType = type(of: NSNumber(value: true))
        let matrix = try rows.enumerated().map { i, row -> [Double] in
            guard let row = row as? [Any] else {
                throw ScoreSDEError.io(path: path, message: "row \(i) of the mixing matrix is \(row), not an array of numbers")
            }
            return try row.map { value -> Double in
                guard let n = value as? NSNumber, type(of: n) != booleanType, !(value is String) else {
                    let shown = (value as? NSNumber).map { type(of: $0) == booleanType ? ($0.boolValue ? "true" : "false") : "\($0)" } ?? "\(value)"
                    throw ScoreSDEError.io(path: path, message: "the mixing matrix holds a non-number (\(shown)) in row \(i)")
                }
                return n.doubleValue
            }
        }
        do { try self.init(matrix) } catch let e as ScoreSDEError {
            throw ScoreSDEError.io(path: path, message: e.description)
        }
    }

    /// Reads a mixing matrix from a JSON file (see ``init(json:path:)``).
    public init(contentsOf path: String) throws {
        try self.init(json: AtomicFile.read(path), path: path)
    }
}

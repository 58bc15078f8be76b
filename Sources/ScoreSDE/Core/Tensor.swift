/// A batch of samples: `shape[0]` rows, each of shape `rowShape` (e.g. `[2]` or `[C, H, W]`),
/// stored contiguously, row-major, as `Double`.
///
///     var x = Tensor(zeros: [4096, 2])
///     x.add(score, scaledBy: 0.5)          // in place: x += 0.5 * score
///
/// `Tensor` is a value type (copy-on-write through its array); mutate it in place through `inout`
/// to avoid copies of the whole batch.
public struct Tensor: Equatable, Sendable, CustomStringConvertible {
    /// The full shape: rows first.
    public private(set) var shape: [Int]
    /// Contiguous row-major storage, `shape.reduce(1, *)` elements. Values may be changed in place;
    /// changing the length traps (the shape and every unsafe loop rely on it).
    public var storage: [Double] {
        get { values }
        _modify {
            let n = values.count
            yield &values
            precondition(values.count == n, "Tensor.storage: the number of values must stay \(n) (shape \(shape)); reshape instead")
        }
        set {
            precondition(newValue.count == values.count, "Tensor.storage: the number of values must stay \(values.count) (shape \(shape)); reshape instead")
            values = newValue
        }
    }
    @usableFromInline var values: [Double]

    /// Creates a tensor from its shape and storage; throws when they disagree.
    public init(shape: [Int], storage: [Double]) throws {
        guard !shape.isEmpty, shape.allSatisfy({ $0 >= 0 }) else {
            throw ScoreSDEError.shapeMismatch("a tensor shape needs at least one non-negative dimension (rows first), got \(shape)")
        }
        guard shape.reduce(1, *) == storage.count else {
            throw ScoreSDEError.shapeMismatch("shape \(shape) holds \(shape.reduce(1, *)) values but \(storage.count) were given")
        }
        self.shape = shape
        self.values = storage
    }

    /// Internal unchecked initializer for shapes that are correct by construction.
    init(uncheckedShape shape: [Int], storage: [Double]) {
        precondition(shape.reduce(1, *) == storage.count, "Tensor: shape \(shape) does not match \(storage.count) values")
        self.shape = shape
        self.values = storage
    }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.init(uncheckedShape: shape, storage: [Double](repeating: 0, count: shape.reduce(1, *)))
    }

    /// A tensor with the same shape as `other`, filled with `value`.
    public init(repeating value: Double, like other: Tensor) {
        self.init(uncheckedShape: other.shape, storage: [Double](repeating: value, count: other.count))
    }

    /// A `[rows.count, d]` tensor from rows of equal length `d`.
    public init(rows: [[Double]]) throws {
        let d = rows.first?.count ?? 0
        guard rows.allSatisfy({ $0.count == d }) else {
            throw ScoreSDEError.shapeMismatch("rows must all have the same length (first row has \(d))")
        }
        self.init(uncheckedShape: [rows.count, d], storage: rows.flatMap { $0 })
    }

    /// Reshapes to `shape` — the same values per row, another row count — keeping the buffer (its
    /// capacity: a workspace shrinking and growing with a solver's active rows does not allocate).
    /// Rows kept keep their values; new rows are zero.
    mutating func resizeRows(_ shape: [Int]) {
        let c = shape.reduce(1, *)
        if values.count > c { values.removeLast(values.count - c) } else if values.count < c { values.append(contentsOf: repeatElement(0, count: c - values.count)) }
        self.shape = shape
    }

    /// Number of samples (rows).
    @inlinable public var rows: Int { shape[0] }
    /// Shape of one sample.
    public var rowShape: [Int] { Array(shape.dropFirst()) }
    /// Number of values in one sample (the dimension `D` of the data).
    @inlinable public var rowSize: Int { shape.count == 1 ? 1 : shape.dropFirst().reduce(1, *) }
    /// Total number of values.
    @inlinable public var count: Int { storage.count }

    /// The values of row `i`.
    public func row(_ i: Int) -> [Double] {
        let d = rowSize
        return Array(storage[i * d ..< (i + 1) * d])
    }

    /// Rows `range` as a new tensor.
    public func rows(_ range: Range<Int>) -> Tensor {
        let d = rowSize
        var s = shape
        s[0] = range.count
        return Tensor(uncheckedShape: s, storage: Array(storage[range.lowerBound * d ..< range.upperBound * d]))
    }

    /// The same values viewed with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        try Tensor(shape: newShape, storage: storage)
    }

    /// Whether every value is finite.
    public var isFinite: Bool {
        storage.withUnsafeBufferPointer { p in
            var ok = true
            for v in p where !v.isFinite { ok = false; break }
            return ok
        }
    }

    /// Throws `nonFinite` naming `what` and the first offending row when any value is NaN or ±Inf.
    public func checkFinite(_ what: String) throws {
        let d = max(rowSize, 1)
        if let i = storage.firstIndex(where: { !$0.isFinite }) {
            throw ScoreSDEError.nonFinite("\(what) contains \(storage[i]) at row \(i / d), column \(i % d); all values must be finite")
        }
    }

    /// Concatenates tensors along rows; all must share a row shape.
    public static func concatenating(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw ScoreSDEError.shapeMismatch("nothing to concatenate") }
        let rs = first.rowShape
        guard parts.allSatisfy({ $0.rowShape == rs }) else {
            throw ScoreSDEError.shapeMismatch("tensors to concatenate must share a row shape")
        }
        var storage = [Double]()
        storage.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for p in parts { storage.append(contentsOf: p.storage) }
        return Tensor(uncheckedShape: [parts.reduce(0) { $0 + $1.rows }] + rs, storage: storage)
    }

    public var description: String { "Tensor(shape: \(shape))" }
}

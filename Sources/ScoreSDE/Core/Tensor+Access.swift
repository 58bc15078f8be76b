/// Element access and conversion from and to Swift arrays.
///
///     var x = try Tensor([[1, 2], [3, 4]])          // [2, 2]
///     x[row: 1, column: 0] = 5                       // row 1 is now [5, 4]
///     let flat = x.array                             // [1, 2, 5, 4]
///     let rows = x.rowArrays                         // [[1, 2], [5, 4]]
///     let v = Tensor([0.5, 1.5, 2.5])                // shape [3]: three one-value rows
extension Tensor {
    /// The value at flat (row-major) position `index` of ``storage``.
    public subscript(_ index: Int) -> Double {
        get { storage[index] }
        set { storage[index] = newValue }
    }

    /// Value `column` of row `row`, viewing every row flat (`column` in `0 ..< rowSize`).
    public subscript(row row: Int, column column: Int) -> Double {
        get {
            precondition(column >= 0 && column < rowSize, "Tensor: column \(column) is out of range 0..<\(rowSize)")
            return storage[row * rowSize + column]
        }
        set {
            precondition(column >= 0 && column < rowSize, "Tensor: column \(column) is out of range 0..<\(rowSize)")
            storage[row * rowSize + column] = newValue
        }
    }

    /// A one-dimensional tensor (shape `[values.count]`: one value per row).
    public init(_ values: [Double]) {
        self.init(uncheckedShape: [values.count], storage: values)
    }

    /// A `[rows.count, d]` tensor from rows of equal length `d` (same as ``init(rows:)``).
    public init(_ rows: [[Double]]) throws {
        try self.init(rows: rows)
    }

    /// All values, flat and row-major (the same as ``storage``).
    public var array: [Double] { storage }

    /// Every row as an array of its `rowSize` values.
    public var rowArrays: [[Double]] { (0 ..< rows).map(row) }
}

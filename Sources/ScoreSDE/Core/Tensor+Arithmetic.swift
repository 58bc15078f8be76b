/// In-place, fused passes over contiguous memory, split by rows across cores.
/// Mutating verbs (`add`, `scale`) have non-mutating noun forms (`adding`, `scaled`).
extension Tensor {
    /// Least elements per thread in element-wise loops: about 32 KB, small enough that a 4096 × 2
    /// batch splits across two cores (a fork-join on the pool costs about a microsecond).
    static var elementGrain: Int { 4096 }

    /// Runs `body(lhs, rhs, count)` over aligned contiguous chunks of `self` and `other`, in parallel.
    @inline(__always)
    mutating func zipChunks(_ other: Tensor, _ body: (UnsafeMutablePointer<Double>, UnsafePointer<Double>, Int) -> Void) {
        precondition(other.count == count, "Tensor: shapes \(shape) and \(other.shape) do not match")
        let n = count
        storage.withUnsafeMutableBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                let pa = a.baseAddress!, pb = b.baseAddress!
                Parallel.forEachChunk(n, grain: Tensor.elementGrain) { r in
                    body(pa + r.lowerBound, pb + r.lowerBound, r.count)
                }
            }
        }
    }

    /// `self += a * other`.
    public mutating func add(_ other: Tensor, scaledBy a: Double = 1) {
        zipChunks(other) { x, y, n in for i in 0 ..< n { x[i] += a * y[i] } }
    }

    /// `self += a * u + b * v` in one pass.
    public mutating func add(_ u: Tensor, scaledBy a: Double, _ v: Tensor, scaledBy b: Double) {
        precondition(u.count == count && v.count == count, "Tensor.add: shapes \(shape), \(u.shape), \(v.shape) do not match")
        let n = count
        storage.withUnsafeMutableBufferPointer { xp in
            u.storage.withUnsafeBufferPointer { up in
                v.storage.withUnsafeBufferPointer { vp in
                    let x = xp.baseAddress!, p = up.baseAddress!, q = vp.baseAddress!
                    Parallel.forEachChunk(n, grain: Tensor.elementGrain) { r in
                        for i in r { x[i] += a * p[i] + b * q[i] }
                    }
                }
            }
        }
    }

    /// `self + a * other`.
    public func adding(_ other: Tensor, scaledBy a: Double = 1) -> Tensor {
        var t = self; t.add(other, scaledBy: a); return t
    }

    /// `self = b * self + a * other` (one pass).
    public mutating func scale(by b: Double, adding other: Tensor, scaledBy a: Double) {
        zipChunks(other) { x, y, n in for i in 0 ..< n { x[i] = b * x[i] + a * y[i] } }
    }

    /// `self *= a`.
    public mutating func scale(by a: Double) {
        let n = count
        storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.forEachChunk(n, grain: Tensor.elementGrain) { r in for i in r { base[i] *= a } }
        }
    }

    /// `a * self`.
    public func scaled(by a: Double) -> Tensor { var t = self; t.scale(by: a); return t }

    /// `self = other`, written into this tensor's own buffer when the shapes agree (no allocation:
    /// the samplers' workspaces), else by taking `other`'s storage. Same values as `self = other`.
    mutating func assign(_ other: Tensor) {
        guard shape == other.shape else { self = other; return }
        let n = count
        storage.withUnsafeMutableBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                let pa = a.baseAddress!, pb = b.baseAddress!
                Parallel.forEachChunk(n, grain: Tensor.elementGrain) { r in
                    (pa + r.lowerBound).update(from: pb + r.lowerBound, count: r.count)
                }
            }
        }
    }

    /// `self = other.scaled(by: a)` into this tensor's own buffer when the shapes agree (same bits).
    mutating func assign(_ other: Tensor, scaledBy a: Double) {
        if shape != other.shape { self = Tensor(zeros: other.shape) }
        let n = count
        storage.withUnsafeMutableBufferPointer { p in
            other.storage.withUnsafeBufferPointer { q in
                let pa = p.baseAddress!, pb = q.baseAddress!
                Parallel.forEachChunk(n, grain: Tensor.elementGrain) { r in for i in r { pa[i] = pb[i] * a } }
            }
        }
    }

    /// `self[r] += a[r] * other[r]` with one coefficient per row.
    public mutating func add(_ other: Tensor, rowScales a: [Double]) {
        precondition(other.count == count && a.count == rows, "Tensor.add(rowScales:): shapes do not match")
        let d = rowSize, n = rows
        storage.withUnsafeMutableBufferPointer { pa in
            other.storage.withUnsafeBufferPointer { pb in
                let x = pa.baseAddress!, y = pb.baseAddress!
                Parallel.forEachChunk(n, grain: max(1, (1 << 14) / max(d, 1))) { range in
                    for r in range {
                        let c = a[r], o = r * d
                        for j in 0 ..< d { x[o + j] += c * y[o + j] }
                    }
                }
            }
        }
    }

    /// The Euclidean norm of each row.
    public func rowNorms() -> [Double] {
        rowReduce { p, d in Tensor.rowNorm(p, d) }
    }

    /// The Euclidean norm of `d` values, four partial sums (the one formula every row norm uses).
    @inline(__always)
    static func rowNorm(_ p: UnsafePointer<Double>, _ d: Int) -> Double {
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var j = 0
        while j + 4 <= d {
            s0 += p[j] * p[j]; s1 += p[j + 1] * p[j + 1]; s2 += p[j + 2] * p[j + 2]; s3 += p[j + 3] * p[j + 3]
            j += 4
        }
        while j < d { s0 += p[j] * p[j]; j += 1 }
        return ((s0 + s1) + (s2 + s3)).squareRoot()
    }

    /// The dot product of each row of `self` with the same row of `other`.
    public func rowDots(_ other: Tensor) -> [Double] {
        precondition(other.count == count, "Tensor.rowDots: shapes do not match")
        return other.storage.withUnsafeBufferPointer { q in
            let qb = q.baseAddress!, d = rowSize
            return rowReduceIndexed { r, p in
                let o = qb + r * d
                var s0 = 0.0, s1 = 0.0
                var j = 0
                while j + 2 <= d { s0 += p[j] * o[j]; s1 += p[j + 1] * o[j + 1]; j += 2 }
                if j < d { s0 += p[j] * o[j] }
                return s0 + s1
            }
        }
    }

    /// Sum of each row.
    public func rowSums() -> [Double] {
        rowReduce { p, d in var s = 0.0; for j in 0 ..< d { s += p[j] }; return s }
    }

    func rowReduce(_ f: (UnsafePointer<Double>, Int) -> Double) -> [Double] {
        let d = rowSize
        return rowReduceIndexed { _, p in f(p, d) }
    }

    func rowReduceIndexed(_ f: (Int, UnsafePointer<Double>) -> Double) -> [Double] {
        let d = rowSize, n = rows
        var out = [Double](repeating: 0, count: n)
        storage.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                let base = p.baseAddress!, ob = o.baseAddress!
                Parallel.forEachChunk(n, grain: max(1, (1 << 14) / max(d, 1))) { range in
                    for r in range { ob[r] = f(r, base + r * d) }
                }
            }
        }
        return out
    }

    /// Mean of each column over rows (the sample mean of the batch), row shape flattened.
    public func columnMeans() -> [Double] {
        let d = rowSize
        var m = [Double](repeating: 0, count: d)
        for r in 0 ..< rows { for j in 0 ..< d { m[j] += storage[r * d + j] } }
        return m.map { $0 / Double(max(rows, 1)) }
    }
}

extension Array where Element == Double {
    /// The arithmetic mean (0 for an empty array), summed in index order (deterministic).
    public func mean() -> Double { isEmpty ? 0 : reduce(0, +) / Double(count) }
}

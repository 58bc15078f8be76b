import Foundation

/// A long row-wise evaluation (e.g. test-set bits/dim of an image model: hours of probability-flow
/// solves) run chunk by chunk, with every finished chunk kept in a partial-results file, so that an
/// interrupted run resumes where it stopped and gives the values of an uninterrupted one.
///
///     let run = ChunkedEvaluation(rows: x.rows, chunkSize: 100, settings: fingerprint,
///                                 partialFile: "bpd.json.partial")
///     let result = try run.run { rows, rng in
///         var rng = rng
///         let r = try likelihood.evaluateDequantized(levels: x.rows(rows), topLevel: 255,
///                                                   scaling: scaling, draws: 1, using: &rng)
///         return .init(columns: ["bits_per_dim": r.bitsPerDim], counters: ["nfe": r.scoreEvaluations])
///     }
///
/// **Reproducibility.** Chunk `c` covers rows `c·chunkSize ..< min((c+1)·chunkSize, rows)` and gets
/// the random source `RandomSource(seed:).derived(c)`; the values therefore depend on the seed and
/// the chunk size (both belong in `settings`), not on where a run was interrupted.
///
/// **The partial file** (JSON, written atomically after every chunk) records `settings` — a string
/// naming everything the values depend on (model, data, tolerances, seed, chunk size) — and the
/// finished chunks. A rerun with the same settings skips them; different settings are an error that
/// names the file (delete it to start over), never a silent mix of two runs' values.
public struct ChunkedEvaluation: Sendable {
    /// One chunk's results: per-row columns (each `rows` long) and counters summed over chunks.
    public struct ChunkResult: Codable, Sendable, Equatable {
        public var columns: [String: [Double]]
        public var counters: [String: Int]
        public var seconds: Double

        public init(columns: [String: [Double]], counters: [String: Int] = [:], seconds: Double = 0) {
            self.columns = columns; self.counters = counters; self.seconds = seconds
        }
    }

    /// All rows' results, in row order.
    public struct Result: Sendable, Equatable {
        public var columns: [String: [Double]]
        public var counters: [String: Int]
        /// Wall seconds summed over the chunks (including those of earlier, interrupted runs).
        public var seconds: Double
        /// Chunks taken from the partial file rather than computed by this call.
        public var resumedChunks: Int
    }

    // Non-finite values (e.g. the NaN terminal densities of a dequantized run) as JSON strings.
    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }
    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    struct PartialFile: Codable {
        var settings: String
        var rows: Int
        var chunkSize: Int
        var chunks: [String: ChunkResult]
    }

    public let rows: Int
    public let chunkSize: Int
    public let settings: String
    public let seed: UInt64
    /// Where finished chunks are kept; `nil`: nothing is written and nothing resumes.
    public let partialFile: String?

    public init(rows: Int, chunkSize: Int, settings: String, seed: UInt64 = 0, partialFile: String?) {
        self.rows = rows; self.chunkSize = chunkSize; self.settings = settings; self.seed = seed; self.partialFile = partialFile
    }

    /// Number of chunks.
    public var chunkCount: Int { chunkSize > 0 ? (rows + chunkSize - 1) / chunkSize : 0 }

    /// The rows of chunk `c`.
    public func rows(ofChunk c: Int) -> Range<Int> { c * chunkSize ..< Swift.min((c + 1) * chunkSize, rows) }

    /// Runs the chunks not yet in the partial file, in order, writing it after each; then returns
    /// every row's results. `evaluate` gets the chunk's rows and its random source and returns one
    /// value per row in each column.
    ///
    /// - Throws: `invalidParameter` for no rows or a chunk size < 1; `invalidArgument` for a partial
    ///   file written with other settings; `shapeMismatch` when `evaluate` returns a column of the wrong length
    ///   or other columns than earlier chunks; `io` for an unreadable partial file; what `evaluate` throws
    ///   (finished chunks stay in the file).
    public func run(progress: ((_ done: Int, _ total: Int) -> Void)? = nil,
                    _ evaluate: (_ rows: Range<Int>, _ rng: RandomSource) throws -> ChunkResult) throws -> Result {
        try requireParameter(rows >= 1, name: "rows", value: rows, requirement: ">= 1 (a chunked evaluation)")
        try requireParameter(chunkSize >= 1, name: "chunkSize", value: chunkSize, requirement: ">= 1")
        var file = PartialFile(settings: settings, rows: rows, chunkSize: chunkSize, chunks: [:])
        var resumed = 0
        if let path = partialFile, FileManager.default.fileExists(atPath: path) {
            let old: PartialFile
            do { old = try Self.decoder.decode(PartialFile.self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
                throw ScoreSDEError.io(path: path, message: "not a partial-results file of this evaluation (\(error)); delete it to start over")
            }
            guard old.settings == settings, old.rows == rows, old.chunkSize == chunkSize else {
                throw ScoreSDEError.invalidArgument("\(path) holds partial results of another evaluation (settings \(old.settings), \(old.rows) rows in chunks of \(old.chunkSize)); this one is \(settings), \(rows) rows in chunks of \(chunkSize): delete the file to start over, or rerun with its settings to resume")
            }
            file.chunks = old.chunks.filter { Int($0.key).map { $0 >= 0 && $0 < chunkCount } ?? false }
            resumed = file.chunks.count
        }
        var names: Set<String>? = file.chunks.values.first.map { Set($0.columns.keys) }
        for c in 0 ..< chunkCount where file.chunks[String(c)] == nil {
            let range = rows(ofChunk: c)
            let start = Date()
            var result = try evaluate(range, RandomSource(seed: seed).derived(UInt64(c)))
            result.seconds = Date().timeIntervalSince(start)
            for (name, values) in result.columns where values.count != range.count {
                throw ScoreSDEError.shapeMismatch("chunk \(c) returned \(values.count) values of \(name) for \(range.count) rows")
            }
            if let names, names != Set(result.columns.keys) {
                throw ScoreSDEError.shapeMismatch("chunk \(c) returned the columns \(result.columns.keys.sorted()), earlier chunks \(names.sorted())")
            }
            names = Set(result.columns.keys)
            file.chunks[String(c)] = result
            if let path = partialFile { try AtomicFile.write(try Self.encoder.encode(file), to: path) }
            progress?(file.chunks.count, chunkCount)
        }
        var out = Result(columns: [:], counters: [:], seconds: 0, resumedChunks: resumed)
        for c in 0 ..< chunkCount {
            let r = file.chunks[String(c)]!
            for (name, values) in r.columns { out.columns[name, default: []] += values }
            for (name, v) in r.counters { out.counters[name, default: 0] += v }
            out.seconds += r.seconds
        }
        return out
    }
}

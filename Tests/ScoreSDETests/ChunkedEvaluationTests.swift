import Foundation
import Testing
@testable import ScoreSDE

/// A long evaluation kept chunk by chunk: an interrupted run resumes to the values of an
/// uninterrupted one, and a partial file of other settings is refused, never mixed in.
@Suite("Chunked evaluation")
struct ChunkedEvaluationTests {
    /// A deterministic stand-in for a likelihood solve: each row's value depends on the row and
    /// on the chunk's random source, so a wrong chunk seed or row order changes the result.
    static func evaluate(_ rows: Range<Int>, _ rng: RandomSource) -> ChunkedEvaluation.ChunkResult {
        var rng = rng
        let draw = rng.nextDraw()
        let values = rows.map { r in var s = rng.stream(draw: draw, row: r - rows.lowerBound); return Double(r) + s.uniformPositive() }
        return .init(columns: ["v": values], counters: ["nfe": 10 * rows.count])
    }

    static func tempPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("chunked-\(UUID().uuidString).json.partial").path
    }

    @Test func anInterruptedRunResumesToTheUninterruptedValues() throws {
        let whole = try ChunkedEvaluation(rows: 23, chunkSize: 5, settings: "s", seed: 7, partialFile: nil).run(Self.evaluate)
        #expect(whole.columns["v"]?.count == 23 && whole.counters["nfe"] == 230 && whole.resumedChunks == 0)

        let path = Self.tempPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        struct Interrupt: Error {}
        let run = ChunkedEvaluation(rows: 23, chunkSize: 5, settings: "s", seed: 7, partialFile: path)
        var calls = 0
        #expect(throws: Interrupt.self) {
            _ = try run.run { rows, rng in
                calls += 1
                if calls == 3 { throw Interrupt() }
                return Self.evaluate(rows, rng)
            }
        }
        #expect(FileManager.default.fileExists(atPath: path), "the two finished chunks are kept")
        var evaluated = [Range<Int>]()
        let resumed = try run.run { rows, rng in evaluated.append(rows); return Self.evaluate(rows, rng) }
        #expect(evaluated == [10 ..< 15, 15 ..< 20, 20 ..< 23], "only the missing chunks run")
        #expect(resumed.resumedChunks == 2)
        #expect(resumed.columns == whole.columns && resumed.counters == whole.counters, "bitwise the uninterrupted values")
    }

    @Test func otherSettingsAndBadResultsAreRefused() throws {
        let path = Self.tempPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try ChunkedEvaluation(rows: 6, chunkSize: 3, settings: "model A", partialFile: path).run(Self.evaluate)
        #expect(throws: ScoreSDEError.self, "a file of another model") {
            _ = try ChunkedEvaluation(rows: 6, chunkSize: 3, settings: "model B", partialFile: path).run(Self.evaluate)
        }
        #expect(throws: ScoreSDEError.self, "another chunk size") {
            _ = try ChunkedEvaluation(rows: 6, chunkSize: 2, settings: "model A", partialFile: path).run(Self.evaluate)
        }
        try Data("not json".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ScoreSDEError.self, "a corrupt file") {
            _ = try ChunkedEvaluation(rows: 6, chunkSize: 3, settings: "model A", partialFile: path).run(Self.evaluate)
        }
        #expect(throws: ScoreSDEError.self, "a column of the wrong length") {
            _ = try ChunkedEvaluation(rows: 6, chunkSize: 3, settings: "x", partialFile: nil).run { _, _ in .init(columns: ["v": [1]]) }
        }
        #expect(throws: ScoreSDEError.self, "no rows") {
            _ = try ChunkedEvaluation(rows: 0, chunkSize: 3, settings: "x", partialFile: nil).run(Self.evaluate)
        }
        #expect(throws: ScoreSDEError.self, "chunk size 0") {
            _ = try ChunkedEvaluation(rows: 3, chunkSize: 0, settings: "x", partialFile: nil).run(Self.evaluate)
        }
    }
}

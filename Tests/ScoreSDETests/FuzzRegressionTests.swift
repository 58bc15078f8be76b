import Foundation
import Testing
@testable import ScoreSDE

// The fuzzers' inputs as unit tests: every seed of Fuzz/Corpus and every input that once crashed a
// parser (Fuzz/Regressions, one directory per fuzz target) goes through the parser it targets, in
// the normal build, and must give a value or a typed ScoreSDEError — never a crash. The fuzz targets
// themselves (Fuzz/Sources) run under libFuzzer with `make fuzz`.

/// The repository's Fuzz directory, found from this file's path.
private let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz")

/// The files of `Fuzz/<kind>/<target>`.
private func inputs(_ kind: String, _ target: String) -> [URL] {
    let dir = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target)
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    return names.sorted().map { dir.appendingPathComponent($0) }
}

/// Runs `parse`; returns whether it gave a value (false: a ScoreSDEError). Any other error is recorded.
private func parses(_ url: URL, _ parse: (Data) throws -> Void) throws -> Bool {
    let data = try Data(contentsOf: url)
    do { try parse(data); return true } catch is ScoreSDEError { return false } catch {
        Issue.record("\(url.lastPathComponent): an error that is not a ScoreSDEError: \(error)")
        return false
    }
}

/// What each fuzz target parses, as the fuzz target does it (minus libFuzzer).
private let parsers: [String: (Data) throws -> Void] = [
    "FuzzNpy": { _ = try Npy.decode($0, path: "x.npy") },
    "FuzzSafetensors": { _ = try Safetensors.decode($0, path: "x.safetensors") },
    "FuzzPNG": { data in for c in [nil, 1, 3] as [Int?] { _ = try PNG.decode(data, as: c) } },
    "FuzzMixture": { _ = try GaussianMixture(json: $0, path: "x.json") },
    "FuzzIDX": { data in
        let array = try IDX.decode(data, path: "x.idx", maximumBytes: 1 << 20)
        _ = array.tensor()
    },
    "FuzzMixing": { _ = try ColorMixing(json: $0, path: "x.json") },
    "FuzzCheckpoint": { data in
        let file = try Safetensors.decode(data, path: "x.safetensors")
        _ = try MLPScore.load(file)
        let model = try MLPScore.load(file, weights: .raw)
        if file.metadata["format.content"] == "checkpoint" {
            let rows = Tensor(zeros: [2] + model.architecture.rowShape)
            _ = try Trainer.resume(file, data: rows, allowDifferentData: true)
        }
    },
    "FuzzMeasurement": { data in
        guard data.count >= 2 else { throw ScoreSDEError.io(path: "x", message: "short") }
        let n = min(data.count - 2, Int(data[data.startIndex]) | Int(data[data.startIndex + 1]) << 8)
        let a = try Npy.decode(data.subdata(in: data.startIndex + 2 ..< data.startIndex + 2 + n), path: "A.npy")
        let y = try Npy.decode(data.subdata(in: data.startIndex + 2 + n ..< data.endIndex), path: "y.npy")
        guard a.shape.count <= 2, a.count > 0 else { throw ScoreSDEError.io(path: "A.npy", message: "not a matrix") }
        let d = a.shape.last!, m = a.shape.count == 2 ? a.shape[0] : 1
        let measurement = try LinearMeasurement(matrix: (0 ..< m).map { Array(a.storage[$0 * d ..< ($0 + 1) * d]) }, observation: y)
        _ = measurement.minimumNormSolution()
    },
]

@Suite("Fuzz corpora and regressions")
struct FuzzRegressionTests {
    /// Every seed is a valid file of its kind (that is what a seed corpus is for).
    @Test(arguments: parsers.keys.sorted())
    func seedsParse(target: String) throws {
        let seeds = inputs("Corpus", target)
        #expect(!seeds.isEmpty, "Fuzz/Corpus/\(target) has no seeds")
        for url in seeds {
            #expect(try parses(url, parsers[target]!), "\(target) seed \(url.lastPathComponent) does not parse")
        }
    }

    /// Inputs that crashed, hung or exhausted memory in a fuzz run now give a value or a typed error.
    @Test(arguments: parsers.keys.sorted())
    func regressionsFailCleanly(target: String) throws {
        for url in inputs("Regressions", target) {
            _ = try parses(url, parsers[target]!)
        }
    }

    /// Found by FuzzMixture (Fuzz/Regressions/FuzzMixture): `jsonData()` wrote numbers with 15
    /// significant digits, so a mixture with a std of 1.5555555555555555e47 did not read back as itself.
    @Test func mixtureJSONRoundTripsEveryDoubleExactly() throws {
        let g = try GaussianMixture(weights: [1, 2], means: [[0, 1.5555555555555555e47], [0.1, -1e-300]],
                                    stds: [[0.30000000000000004, 1.5555555555555555e40], [0.1, 1]])
        let back = try GaussianMixture(json: g.jsonData())
        #expect(back.means == g.means && back.stds == g.stds)
        let fuzzed = try GaussianMixture(json: Data(contentsOf: fuzzDirectory.appendingPathComponent("Regressions/FuzzMixture/roundtrip-precision-e1d84815.json")))
        let again = try GaussianMixture(json: fuzzed.jsonData())
        #expect(again.means == fuzzed.means && again.stds == fuzzed.stds)
    }

    /// Found by FuzzMixture (Fuzz/Regressions/FuzzMixture/score-overflow-ca6b8753.json): a mixture with
    /// a finite mean of 1e231 parses, but (x − mean)² overflows in its score: a typed `nonFinite`
    /// error naming the cause, not a crash.
    @Test func aMixtureWhoseScoreOverflowsGivesATypedError() throws {
        let g = try GaussianMixture(json: Data(contentsOf: fuzzDirectory.appendingPathComponent("Regressions/FuzzMixture/score-overflow-ca6b8753.json")))
        var rng = RandomSource(seed: 1)
        let x = g.sample(count: 4, using: &rng)
        let error = scoreSDEError { _ = try GaussianMixtureScore(g, diffusedBy: try VPSDE()).score(x, at: 0.5) }
        guard case .nonFinite(let message)? = error else { Issue.record("expected nonFinite, got \(String(describing: error))"); return }
        #expect(message.contains("overflows"), "\(message)")
    }

    /// The mixing reader took `true`/`false` for numbers (on Linux `NSNumber(true) as? Double` is 1).
    @Test func mixingJSONRejectsBooleansAndNonNumbers() {
        for text in ["[[true, 0, 0], [0, 1, 0], [0, 0, 1]]", "[[1, 0, 0], [0, false, 0], [0, 0, 1]]",
                     "[[\"1\", 0, 0], [0, 1, 0], [0, 0, 1]]", "[[null, 0], [0, 1]]"] {
            if case .io(_, let m)? = scoreSDEError({ _ = try ColorMixing(json: Data(text.utf8)) }) {
                #expect(m.contains("non-number"), "\(text): \(m)")
            } else { Issue.record("\(text) was accepted") }
        }
        let identity = try? ColorMixing(json: Data("[[1, 0, 0], [0, 1, 0], [0, 0, 1]]".utf8))
        #expect(identity?.channels == 3)
        let rotation = try? ColorMixing(json: Data("[[0.6, -0.8], [0.8, 0.6]]".utf8))
        #expect(abs((rotation?.inverse[0][1] ?? 0) - 0.8) < 1e-12, "a rotation's inverse is its transpose")
        for text in ["{}", "[]", "[1, 2]", "[[1, 0], [0]]", "not json"] {
            #expect(scoreSDEError { _ = try ColorMixing(json: Data(text.utf8)) } != nil, "\(text)")
        }
    }
}

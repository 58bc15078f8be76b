import Foundation
import ScoreSDE
import Testing

/// `scoresde evaluate` run as a built binary: bad inputs are clear errors that exit non-zero and
/// write nothing; with `--classifier none` a run on the real data writes the pixel-space
/// sections, prints the summary, and a rerun keeps them.
@Suite struct EvaluateCommandTests {
    /// `n` fake Fashion-MNIST samples (pixel levels), shape `[n, 1, 28, 28]`.
    static func samples(_ n: Int, seed: UInt64 = 0) -> Tensor {
        var rng = RandomSource(seed: seed)
        let z = Tensor.standardNormal(shape: [n, 1, 28, 28], using: &rng)
        return try! Tensor(shape: z.shape, storage: z.storage.map { min(max((100 + 60 * $0).rounded(), 0), 255) })
    }

    /// Runs `evaluate` with `arguments` and checks it failed with every part in its message, writing nothing new.
    func expectFailure(_ ws: Workspace, _ arguments: [String], _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = ws.files()
        let r = try ws.run(["evaluate"] + arguments)
        #expect(r.status != 0, "\(r)", sourceLocation: sourceLocation)
        for part in parts { #expect(r.stderr.contains(part), "the error lacks '\(part)': \(r)", sourceLocation: sourceLocation) }
        #expect(ws.files() == before, "nothing written: \(ws.files())", sourceLocation: sourceLocation)
    }

    @Test func badInputsAreClearErrorsAndWriteNothing() throws {
        let ws = try Workspace()
        try Npy.write(Self.samples(4), to: ws.path("s.npy"))
        try Npy.write(try Tensor(shape: [4, 10], storage: [Double](repeating: 1, count: 40)), to: ws.path("wide.npy"))
        var nan = Self.samples(4)
        nan.storage[800] = .nan
        try Npy.write(nan, to: ws.path("nan.npy"))
        try Npy.write(Tensor([0, 1, 2]), to: ws.path("three.npy"))
        try ws.write("{\"class\": \"0,1,2\", \"count\": 3}\n", to: "sample-stats.json")
        try ws.write("{\"nfe\": 3}\n", to: "other.json")
        let none = ["--classifier", "none", "--stats", "e.json"]

        try expectFailure(ws, ["--samples", "missing.npy"] + none, ["missing.npy", "no such file"])
        try expectFailure(ws, ["--samples", "wide.npy"] + none, ["wide.npy", "[4, 10]", "784"])
        try expectFailure(ws, ["--samples", "nan.npy"] + none, ["sample 1", "nan", "finite"])
        try expectFailure(ws, ["--samples", "s.npy", "--classes", "0,1,2"] + none, ["3 classes do not split 4 samples"])
        try expectFailure(ws, ["--samples", "s.npy", "--classes", "three.npy"] + none, ["3 values for 4 samples"])
        try expectFailure(ws, ["--samples", "s.npy", "--classes", "sample-stats.json"] + none, ["describes 3 samples", "has 4"])
        try expectFailure(ws, ["--samples", "s.npy", "--classes", "0,12"] + none, ["class 12", "0...9"])
        try expectFailure(ws, ["--samples", "s.npy", "--data", "digits"] + none, ["fashion-mnist only"])
        try expectFailure(ws, ["--samples", "s.npy", "--reference-count", "1"] + none, ["--reference-count"])
        try expectFailure(ws, ["--samples", "s.npy", "--classifier", "nope.safetensors", "--stats", "e.json"], ["nope.safetensors", "neither"])
        try expectFailure(ws, ["--samples", "s.npy", "--classifier", "s.npy", "--stats", "e.json"], ["s.npy"])
        try expectFailure(ws, ["--samples", "s.npy", "--classifier", "none", "--stats", "other.json"], ["other.json", "not the stats file"])
        try expectFailure(ws, ["--samples", "s.npy", "--classifier", "none", "--stats", "no-such-dir/e.json"], ["no-such-dir"])
        try expectFailure(ws, ["--samples", "s.npy", "--classifier", "none"], ["--stats"])
        #expect(try String(contentsOfFile: ws.path("other.json"), encoding: .utf8) == "{\"nfe\": 3}\n")
    }

    /// The pixel-space sections on the real data (the memorisation check searches the 60 000
    /// training images for 10 000 test images and the samples: tens of seconds): samples that
    /// copy training images are all below the test images' 1st percentile; the rerun keeps the
    /// section.
    @Test(.enabled(if: isOptimizedBuild, "the nearest-neighbour search is too slow in a debug build"))
    func thePixelSpaceSectionsRunAndResume() throws {
        let ws = try Workspace()
        let train = try FashionMNIST.trainingSplit()
        try Npy.write(train.images.rows(0 ..< 20), to: ws.path("copies.npy"))
        let arguments = ["evaluate", "--samples", "copies.npy", "--classifier", "none", "--classes", "3", "--stats", "e.json", "--quiet"]
        let r = try ws.run(arguments)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("memorisation: 100.00%") && r.stdout.contains("test: 1.00%"), "\(r)")
        let json = try ws.json("e.json")
        let memorisation = try #require(json["memorisation"] as? [String: Any])
        #expect(memorisation["share"] as? Double == 1 && memorisation["test_below"] as? Int == 100 && memorisation["count"] as? Int == 20)
        #expect(json["sections_done"] as? [String] == ["memorisation"] && json["feature_classifier"] as? String == "none")
        let again = try ws.run(arguments)
        #expect(again.status == 0 && again.stdout.contains("kept from the previous run: memorisation"), "\(again)")
    }
}

import Foundation
import Testing
import ScoreSDE

/// `scoresde colorize --range-margin`: the state is kept inside the diffused image range.
@Suite("CLI: colorize --range-margin", .serialized)
struct ColorizeRangeTests {
    @Test func theDefaultLimitIsReportedAndKeepsTheGreyImageExact() throws {
        let ws = try Workspace()
        let r = try ws.run(["colorize", "--count", "4", "--samples-per-input", "2", "--steps", "60", "--output", "c.npy", "--stats", "c.json"])
        try #require(r.status == 0, "\(r)")
        let samples = try Npy.read(ws.path("c.npy"))
        let stats = try ws.json("c.json")
        #expect(stats["range_margin"] as? Double == 4)
        #expect((stats["grey_max_abs_error"] as? Double ?? 1) < 1e-9, "\(stats)")
        #expect(samples.shape == [8, 3, 8, 8] && samples.storage.allSatisfy(\.isFinite))
        let off = try ws.run(["colorize", "--count", "4", "--samples-per-input", "2", "--steps", "60", "--range-margin", "0", "--stats", "o.json", "--output", "o.npy"])
        try #require(off.status == 0, "\(off)")
        #expect(try ws.json("o.json")["range_margin"] as? Double == 0)
        // The option is applied: the same seed without the limit gives other samples. Even an exact
        // score reaches the a = 4 box with probability 2Φ(−4) = 6.3e-5 per value and step, i.e.
        // 8 × 192 values × 60 steps × 6.3e-5 ≈ 5.8 expected clips (P(none) ≈ e^{−5.8} = 0.3%), and
        // the learned model more often; a third run with a tight box (a = 0.5: a value at an edge of
        // the range leaves it with probability Φ(−0.5) = 31% per step) must differ from both.
        let unlimited = try Npy.read(ws.path("o.npy"))
        #expect(unlimited.shape == samples.shape && unlimited.storage != samples.storage, "--range-margin 0 gave the default's samples")
        let tight = try ws.run(["colorize", "--count", "4", "--samples-per-input", "2", "--steps", "60", "--range-margin", "0.5", "--output", "t.npy"])
        try #require(tight.status == 0, "\(tight)")
        let t = try Npy.read(ws.path("t.npy")).storage
        #expect(t != samples.storage && t != unlimited.storage)
    }

    /// colorize's default method is RePaint (its single samples beat grey); inpaint's stays replace,
    /// so RePaint's own options are accepted without --method by colorize only.
    @Test func colorizeDefaultsToRePaint() throws {
        let ws = try Workspace()
        let r = try ws.run(["colorize", "--count", "2", "--samples-per-input", "2", "--steps", "20", "--resample", "2", "--jump", "5",
                            "--output", "c.npy", "--stats", "c.json"])
        try #require(r.status == 0, "\(r)")
        let stats = try ws.json("c.json")
        #expect(stats["method"] as? String == "repaint" && stats["resample"] as? Int == 2 && stats["jump"] as? Int == 5, "\(stats)")
        let replace = try ws.run(["colorize", "--method", "replace", "--count", "2", "--steps", "20", "--stats", "r.json", "--output", "r.npy"])
        try #require(replace.status == 0, "\(replace)")
        #expect(try ws.json("r.json")["method"] as? String == "replace")
        let inpaint = try ws.run(["inpaint", "--resample", "2", "--steps", "20", "--output", "i.npy"])
        #expect(inpaint.status != 0 && inpaint.stderr.contains("--resample belongs to --method repaint"), "\(inpaint)")
        #expect(!ws.files().contains { $0.hasPrefix("i.") }, "wrote \(ws.files())")
    }

    @Test func aNegativeOrNonFiniteMarginIsRefusedBeforeAnyWork() throws {
        let ws = try Workspace()
        for bad in ["-1", "nan", "inf"] {
            let r = try ws.run(["colorize", "--range-margin", bad, "--steps", "30", "--output", "out.npy", "--stats", "out.json"])
            #expect(r.status != 0, "\(bad): \(r)")
            #expect(r.stderr.contains("--range-margin"), "\(bad): \(r.stderr)")
            #expect(!ws.files().contains { $0.hasPrefix("out") }, "\(bad) wrote \(ws.files())")
        }
        // Guidance methods have no constraint to limit: the option is refused, not ignored.
        let r = try ws.run(["colorize", "--method", "pigdm", "--range-margin", "4", "--steps", "30", "--output", "out.npy"])
        #expect(r.status != 0 && r.stderr.contains("--range-margin belongs to --method replace and repaint"), "\(r)")
        #expect(!ws.files().contains { $0.hasPrefix("out") }, "wrote \(ws.files())")
    }
}

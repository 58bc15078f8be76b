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

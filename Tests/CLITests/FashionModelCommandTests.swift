import Foundation
import ScoreSDE
import Testing

/// `--model fashion` from the command line: the shipped U-Net samples a class with the model
/// card's guidance, in pixel levels, with a memory-bounded default batch.
@Suite struct FashionModelCommandTests {
    @Test func sampleModelFashionClass3Works() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--model", "fashion", "--class", "3", "--count", "8", "--nfe", "10",
                            "--output", "s.npy", "--png", "s.png", "--stats", "s.json"])
        try #require(r.status == 0, "\(r)")
        let x = try Npy.read(ws.path("s.npy"))
        #expect(x.shape == [8, 1, 28, 28])
        // Pixel levels, not the model's [-1, 1]: the mean is that of garments on black (the test
        // images' mean level is 73), and most values lie in 0...255 (guided samples at 10 NFE
        // overshoot at edges: 1.5% of values beyond ±20 levels was measured; the PNG clamps).
        let mean = x.storage.reduce(0, +) / Double(x.storage.count)
        #expect(mean > 20 && mean < 200, "mean level \(mean)")
        let inside = x.storage.filter { $0 >= -20 && $0 <= 275 }.count
        #expect(Double(inside) / Double(x.storage.count) > 0.95, "values in data space 0...255")
        let s = try ws.json("s.json")
        #expect(s["guidance_scale"] as? Double == 2, "the model card's w")
        #expect(s["class"] as? String == "3")
        #expect(s["batch_size"] as? Int == 8)
        let png = try PNG.read(ws.path("s.png"))
        #expect(png.width > 28 && png.height > 28)
    }

    @Test func largeRunsDefaultToBoundedBatches() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--model", "fashion", "--count", "300", "--nfe", "2", "--stats", "s.json"])
        try #require(r.status == 0, "\(r)")
        #expect(try ws.json("s.json")["batch_size"] as? Int == 256, "a U-Net scores at most 256 rows per call unless told")
    }
}

extension FashionModelCommandTests {
    /// Every class, more rows than one call takes: the labels follow their rows through the split.
    @Test func classListsSplitAcrossBatches() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--model", "fashion", "--class", "0,1,2,3,4,5,6,7,8,9", "--count", "300", "--nfe", "2",
                            "--batch-size", "64", "--output", "s.npy", "--stats", "s.json"])
        try #require(r.status == 0, "\(r)")
        #expect(try Npy.read(ws.path("s.npy")).shape == [300, 1, 28, 28])
    }
}

extension FashionModelCommandTests {
    /// `inpaint --model fashion` without `--method` uses the model card's recommendation (DPS, ζ = 30,
    /// `PretrainedModels.recommendedMeasurementGuidance`); `--dps-scale` alone adjusts it, and an
    /// explicit `--method` wins.
    @Test func inpaintDefaultsToTheModelCardsMethod() throws {
        #expect(PretrainedModels.recommendedMeasurementGuidance("fashion") == .dps(stepScale: 30))
        #expect(PretrainedModels.recommendedMeasurementGuidance("digits") == nil)
        let ws = try Workspace()
        let base = ["inpaint", "--model", "fashion", "--count", "1", "--samples-per-input", "1", "--steps", "4"]
        let d = try ws.run(base + ["--output", "d.npy", "--stats", "d.json"])
        try #require(d.status == 0, "\(d)")
        #expect(try ws.json("d.json")["method"] as? String == "dps")
        #expect(try ws.json("d.json")["dps_scale"] as? Double == 30)
        #expect(try Npy.read(ws.path("d.npy")).storage.allSatisfy(\.isFinite))
        let z = try ws.run(base + ["--dps-scale", "10", "--output", "z.npy", "--stats", "z.json"])
        try #require(z.status == 0, "\(z)")
        #expect(try ws.json("z.json")["dps_scale"] as? Double == 10)
        let r = try ws.run(base + ["--method", "replace", "--output", "r.npy", "--stats", "r.json"])
        try #require(r.status == 0, "\(r)")
        #expect(try ws.json("r.json")["method"] as? String == "replace")
        #expect(try ws.json("r.json")["dps_scale"] == nil)
    }
}

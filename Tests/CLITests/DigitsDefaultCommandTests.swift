import Foundation
import Testing
@testable import ScoreSDE

/// `--model digits` is the U-Net (issue 19, item 6): sampled by default with its card's
/// recommendation (the few-step sampler at 20 NFE), the session-6 name `digits-unet` an alias, the
/// MLP under `digits-mlp`, and a classifier trained in the U-Net's own model space.
@Suite(.serialized) struct DigitsDefaultCommandTests {
    /// The default of `sample --model digits` is the recommended few-step sampler at 20 NFE — the
    /// same bytes as `--nfe 20` — while any option of another sampler chooses it, and the MLP keeps
    /// the predictor-corrector default.
    @Test func theDigitsModelSamplesWithItsRecommendedSamplerByDefault() throws {
        let ws = try Workspace()
        let common = ["--count", "40", "--seed", "3", "--quiet"]
        let def = try ws.run(["sample", "--model", "digits", "--output", "d.npy", "--stats", "d.json"] + common)
        try #require(def.status == 0, "\(def)")
        let stats = try ws.json("d.json")
        #expect(stats["sampler"] as? String == "unipc" && stats["nfe"] as? Int == 20, "\(stats)")
        let nfe = try ws.run(["sample", "--model", "digits", "--nfe", "20", "--output", "n.npy"] + common)
        let alias = try ws.run(["sample", "--model", "digits-unet", "--output", "a.npy"] + common)
        try #require(nfe.status == 0 && alias.status == 0, "\(nfe)\n\(alias)")
        let d = try Npy.read(ws.path("d.npy"))
        #expect(d.shape == [40, 1, 8, 8])
        #expect(try Npy.read(ws.path("n.npy")) == d, "the default is --nfe 20")
        #expect(try Npy.read(ws.path("a.npy")) == d, "digits-unet is digits")
        // An option of the predictor-corrector sampler chooses it (scripts that gave --steps keep PC).
        let pc = try ws.run(["sample", "--model", "digits", "--steps", "10", "--output", "p.npy", "--stats", "p.json"] + common)
        try #require(pc.status == 0, "\(pc)")
        let pcStats = try ws.json("p.json")
        #expect(pcStats["sampler"] as? String == "pc" && pcStats["nfe"] as? Int == 20, "\(pcStats)")   // 10 steps, predictor + corrector
        let mlp = try ws.run(["sample", "--model", "digits-mlp", "--count", "4", "--steps", "5", "--output", "m.npy", "--stats", "m.json", "--quiet"])
        try #require(mlp.status == 0, "\(mlp)")
        #expect(try ws.json("m.json")["sampler"] as? String == "pc")
    }

    /// The default samples stay in the dequantized range `[0, 17)` — the speckle issue 19 measured
    /// at 12% for the MLP. 200 samples × 64 values; measured share 0.33% (1000 samples, seed 0),
    /// so the bound 1% (the target) is several row-level standard errors (≈ 0.15%) above it,
    /// while the MLP's 12% fails it by far.
    @Test func theDefaultSamplesStayInTheDequantizedRange() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--model", "digits", "--count", "200", "--seed", "0", "--output", "s.npy", "--quiet"])
        try #require(r.status == 0, "\(r)")
        let x = try Npy.read(ws.path("s.npy"))
        let outside = x.storage.filter { !(0 ..< 17).contains($0) }.count
        #expect(Double(outside) / Double(x.storage.count) < 0.01, "\(outside) of \(x.storage.count) values outside [0, 17)")
    }

    /// Classifier guidance with the U-Net's own classifier (`--classifier digits`, trained `--like
    /// digits`) steers the unconditional model: as for the MLP, the share of the 20 guided samples
    /// that the classifier (at t = 10⁻³) puts in their requested class exceeds 0.1 by 5 binomial
    /// standard errors under the unguided null, 0.1 + 5 √(0.09 / 20) = 0.44, and the unguided run's
    /// share. The MLP's classifier, trained on the other model space, is refused with what to do.
    @Test func theDigitsClassifierGuidesTheUNetAndTheMLPsIsRefused() throws {
        let ws = try Workspace()
        let args = ["sample", "--model", "digits", "--class", "0,1", "--classifier", "digits", "--count", "20", "--nfe", "8"]
        let r = try ws.run(args + ["--classifier-scale", "2", "--output", "g.npy", "--stats", "g.json", "--quiet"])
        let off = try ws.run(args + ["--classifier-scale", "0", "--output", "u.npy", "--quiet"])
        try #require(r.status == 0 && off.status == 0, "\(r)\n\(off)")
        #expect(try ws.json("g.json")["classifier"] as? String == "digits")
        let classifier = try PretrainedClassifiers.digits()
        let wanted = (0 ..< 20).map { $0 < 10 ? 0 : 1 }
        func share(_ file: String) throws -> Double {
            let x = classifier.dataScaling.toModel(try Npy.read(ws.path(file)))
            return Double(zip(try classifier.predict(x, at: 1e-3), wanted).filter { $0 == $1 }.count) / 20
        }
        let guided = try share("g.npy"), unguided = try share("u.npy")
        #expect(guided > 0.1 + 5 * (0.09 / 20).squareRoot() && guided > unguided, "guided share \(guided), unguided \(unguided)")

        let bad = try ws.run(["sample", "--model", "digits", "--class", "1", "--classifier", "digits-mlp", "--count", "4", "--output", "bad.npy"])
        #expect(bad.status != 0 && bad.stderr.contains("data scaling") && bad.stderr.contains("--like"), "\(bad)")
        #expect(!ws.files().contains { $0.hasPrefix("bad") }, "wrote \(ws.files())")
    }
}

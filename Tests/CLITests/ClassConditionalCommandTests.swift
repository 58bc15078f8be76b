import Foundation
import ScoreSDE
import Testing

/// Class-conditional training and sampling, and the dequantized likelihood report, on the command
/// line. Networks are tiny and runs short; the shipped digits model is class-conditional.
@Suite struct ClassConditionalCommandTests {
    static let tiny = ["train", "--hidden", "16", "--blocks", "1", "--fourier-features", "4", "--batch-size", "32", "--steps", "20"]

    @Test func trainingWithLabelsWritesAConditionalModel() throws {
        let ws = try Workspace()
        let r = try ws.run(Self.tiny + ["--data", "ring", "--labels", "own", "--label-dropout", "0.1", "--output", "c.safetensors"])
        try #require(r.status == 0, "\(r)")
        let model = try MLPScore.load(from: ws.path("c.safetensors"))
        #expect(model.architecture.classCount == 8, "ring labels are its 8 components")
        let file = try Safetensors.read(ws.path("c.safetensors"))
        #expect(file.metadata["train.label_dropout"] == "0.1")
        // A labels file for .npy data; a count that differs from the rows is refused, nothing written.
        try ws.write(Npy.encode(try Tensor(shape: [6, 2], storage: [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])), to: "x.npy")
        try ws.write(Npy.encode(try Tensor(shape: [6], storage: [0, 1, 0, 1, 2, 2])), to: "y.npy")
        let ok = try ws.run(Self.tiny + ["--data", "x.npy", "--labels", "y.npy", "--output", "n.safetensors"])
        try #require(ok.status == 0, "\(ok)")
        #expect(try MLPScore.load(from: ws.path("n.safetensors")).architecture.classCount == 3)
        try ws.write(Npy.encode(try Tensor(shape: [5], storage: [0, 1, 0, 1, 2])), to: "short.npy")
        for (args, text) in [(["--data", "x.npy", "--labels", "short.npy"], "one integer label per data row"),
                             (["--data", "x.npy", "--labels", "own"], "no labels of its own"),
                             (["--data", "ring", "--label-dropout", "0.2"], "--labels"),
                             (["--data", "ring", "--labels", "own", "--label-dropout", "1"], "[0, 1)"),
                             (["--data", "ring", "--dequantize"], "discrete")] {
            let bad = try ws.run(Self.tiny + args + ["--output", "bad.safetensors"])
            #expect(bad.status != 0 && bad.stderr.contains(text), "\(args): \(bad)")
            #expect(!ws.files().contains("bad.safetensors"))
        }
    }

    @Test func shippedDigitsSampleByClassWithGuidance() throws {
        let ws = try Workspace()
        let r = try ws.run(["sample", "--model", "digits-mlp", "--class", "3", "--guidance-scale", "2", "--count", "4", "--steps", "50",
                            "--output", "s.npy", "--stats", "s.json"])
        try #require(r.status == 0, "\(r)")
        let stats = try ws.json("s.json")
        #expect(stats["class"] as? String == "3" && stats["guidance_scale"] as? Double == 2)
        #expect((stats["guidance_convention"] as? String)?.contains("w (s(x,t,y)") == true)
        let rows = try ws.run(["sample", "--model", "digits-mlp", "--class", "0,1", "--count", "4", "--steps", "40", "--png", "g.png"])
        try #require(rows.status == 0, "\(rows)")
        #expect(ws.files().contains("g.png"))
        for (args, text) in [(["--model", "digits-mlp", "--class", "10"], "not a class"),
                             (["--model", "ring", "--class", "1"], "class-conditional"),
                             (["--model", "digits-mlp", "--class", "1", "--guidance-scale", "nan"], "finite"),
                             (["--model", "digits-mlp", "--guidance-scale", "2"], "--class"),
                             (["--model", "digits-mlp", "--class", "0,1,2", "--count", "4"], "split evenly"),
                             (["--model", "digits-mlp", "--class", "x"], "comma-separated")] {
            let bad = try ws.run(["sample"] + args + ["--steps", "10", "--output", "bad.npy"])
            #expect(bad.status != 0 && bad.stderr.contains(text), "\(args): \(bad)")
            #expect(!ws.files().contains("bad.npy"))
        }
    }

    @Test func dequantizedLikelihoodReportsTheTail() throws {
        let ws = try Workspace()
        let r = try ws.run(["likelihood", "--model", "digits-mlp", "--data", "digits-test", "--count", "6", "--dequantize",
                            "--dequantizations", "2", "--estimator", "rademacher", "--eps", "1e-2", "--stats", "l.json"])
        try #require(r.status == 0, "\(r)")
        for text in ["median", "max", "worse than a uniform guess over the 17 levels", "averaged over 2 draws"] {
            #expect(r.stdout.contains(text), "\(text): \(r.stdout)")
        }
        let stats = try ws.json("l.json")
        #expect(stats["dequantizations"] as? Int == 2 && stats["count_above_uniform_guess"] != nil && stats["median_bits_per_dim"] != nil)
        let bad = try ws.run(["likelihood", "--model", "digits-mlp", "--data", "digits-test", "--dequantizations", "2"])
        #expect(bad.status != 0 && bad.stderr.contains("--dequantize"), "\(bad)")
    }
}

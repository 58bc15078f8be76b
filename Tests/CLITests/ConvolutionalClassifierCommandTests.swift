import Foundation
import ScoreSDE
import Testing

/// `train-classifier --model conv` and `sample --classifier` with a convolutional classifier: the
/// command trains exactly the library's run and resumes exactly, refuses the other network's options,
/// picks the network from the data, and a conv classifier guides a U-Net.
@Suite struct ConvolutionalClassifierCommandTests {
    static let tiny = ["--model", "conv", "--channels", "8,16", "--norm-groups", "4", "--features", "16", "--batch-size", "16",
                       "--checkpoint-interval", "0", "--accuracy-at", "0.001,0.5"]

    @Test func trainsTheLibrarysRunResumesExactlyAndExports() throws {
        let ws = try Workspace()
        let a = try ws.run(["train-classifier", "--data", "digits", "--count", "64", "--steps", "3", "--output", "c.safetensors"] + Self.tiny)
        try #require(a.status == 0, "\(a)")
        #expect(a.stdout.contains("convolutional classifier (channels 8,16") && a.stdout.contains("images/s") && a.stdout.contains("t=0.5:"), "\(a.stdout)")
        let b = try ws.run(["train-classifier", "--data", "digits", "--count", "64", "--steps", "5", "--output", "c.safetensors", "--resume",
                            "--export-weights", "w.safetensors", "--checkpoint-interval", "0"])
        try #require(b.status == 0, "\(b)")
        // The library's run with the command's defaults: VP (0.1, 20), the digits' unit scaling, t in [1e-3, 1].
        let set = try Dataset.forTraining("digits", count: 64, seed: 0)
        let arch = ConvolutionalClassifier.Architecture(rowShape: [1, 8, 8], classCount: 10, blockOutChannels: [8, 16], normGroups: 4, featureDimension: 16)
        let config = ConvolutionalClassifierTrainingConfiguration(sde: .vp(betaMin: 0.1, betaMax: 20), architecture: arch, dataScaling: set.dataScaling,
                                                                  seed: 0, batchSize: 16, learningRate: 1e-3, warmup: 100, emaRate: 0.999)
        let library = try ConvolutionalClassifierTrainer(configuration: config, data: set.data, labels: set.labels!)
        try library.train(steps: 5)
        let resumed = try ConvolutionalClassifierTrainer.resume(from: ws.path("c.safetensors"), data: set.data, labels: set.labels!)
        #expect(resumed.completedSteps == 5 && resumed.configuration == config)
        #expect(resumed.classifier.parameters == library.classifier.parameters && resumed.ema.values == library.ema.values, "CLI (3 + 2 steps) vs library (5)")
        let w = try Safetensors.read(ws.path("w.safetensors"))
        #expect(w.tensors.allSatisfy { $0.dtype == .f32 } && w.metadata[ClassifierFile.kindKey] == "conv")
        #expect(try ConvolutionalClassifier.load(from: ws.path("w.safetensors")).parameters == library.emaClassifier.parameters)
    }

    @Test func refusesTheOtherNetworksOptionsAndWritesNothing() throws {
        let ws = try Workspace()
        for (args, text) in [(["--data", "digits", "--model", "mlp", "--channels", "8,16"], "--channels"),
                             (["--data", "digits", "--model", "conv", "--hidden", "16"], "--hidden"),
                             (["--data", "digits", "--hidden", "16", "--features", "8"], "give the options of one network"),
                             (["--data", "ring", "--model", "conv"], "images of shape"),
                             (["--data", "digits", "--model", "conv", "--channels", "8,12", "--norm-groups", "8"], "divisible"),
                             (["--data", "digits", "--model", "conv", "--channels", "8,x"], "--channels"),
                             (["--data", "digits", "--accuracy-at", "0,0.5"], "--accuracy-at"),
                             (["--data", "x.npy", "--test-split"], "--test-split")] {
            let r = try ws.run(["train-classifier", "--steps", "2", "--output", "bad.safetensors"] + args)
            #expect(r.status != 0 && r.stderr.contains(text), "\(args): \(r)")
            #expect(!ws.files().contains("bad.safetensors"))
        }
        let ok = try ws.run(["train-classifier", "--data", "digits", "--count", "32", "--steps", "1", "--output", "c.safetensors"] + Self.tiny)
        try #require(ok.status == 0, "\(ok)")
        let clash = try ws.run(["train-classifier", "--data", "digits", "--count", "32", "--steps", "2", "--output", "c.safetensors", "--resume", "--channels", "8"])
        #expect(clash.status != 0 && clash.stderr.contains("--channels"), "\(clash)")
        // The checkpoint's own network is resumed: an MLP run on the same output would not be.
        let mlp = try ws.run(["train-classifier", "--data", "digits", "--count", "32", "--steps", "1", "--hidden", "8", "--output", "m.safetensors"])
        try #require(mlp.status == 0, "\(mlp)")
        #expect(try Safetensors.read(ws.path("m.safetensors")).metadata[ClassifierFile.kindKey] == nil, "the MLP file format is unchanged")
    }

    /// The network follows the data: conv for 28 × 28 images, mlp for the 8 × 8 digits and 2-D
    /// toys, unless options of one network are given; --test-split reports the held-out accuracy
    /// (here of the digits' test split; fashion-mnist-test has 10 000 images).
    @Test func theDefaultNetworkFollowsTheData() throws {
        let ws = try Workspace()
        let f = try ws.run(["train-classifier", "--data", "digits", "--count", "32", "--steps", "1", "--test-split",
                            "--output", "f.safetensors"] + Self.tiny)
        try #require(f.status == 0, "\(f)")
        #expect(f.stdout.contains("test accuracy (EMA weights, digits-test, 297 rows) t=0.001:") && f.stdout.contains("t=0.5:"), "\(f.stdout)")
        let plain = try ws.run(["train-classifier", "--data", "fashion-mnist", "--count", "32", "--steps", "1", "--batch-size", "8",
                                "--accuracy-at", "0.5", "--output", "p.safetensors"])
        try #require(plain.status == 0, "\(plain)")
        #expect(try Safetensors.read(ws.path("p.safetensors")).metadata[ClassifierFile.kindKey] == "conv")
        let d = try ws.run(["train-classifier", "--data", "digits", "--count", "32", "--steps", "1", "--batch-size", "8", "--output", "d.safetensors"])
        try #require(d.status == 0, "\(d)")
        #expect(try Safetensors.read(ws.path("d.safetensors")).metadata[ClassifierFile.kindKey] == nil)
        #expect(d.stdout.contains("noise-aware MLP classifier"), "\(d.stdout)")
    }

    /// A convolutional classifier trained `--like` a U-Net guides it: checkpoints and weights files
    /// both load, guidance changes the samples, and a classifier of another scaling is refused.
    @Test func guidesAUNet() throws {
        let ws = try Workspace()
        let u = try ws.run(["train", "--data", "digits", "--count", "64", "--model", "unet", "--channels", "8,8", "--norm-groups", "4",
                            "--batch-size", "8", "--steps", "2", "--checkpoint-interval", "0", "--output", "u.safetensors"])
        try #require(u.status == 0, "\(u)")
        let c = try ws.run(["train-classifier", "--data", "digits", "--count", "64", "--steps", "3", "--like", "u.safetensors", "--output", "c.safetensors",
                            "--export-weights", "w.safetensors"] + Self.tiny)
        try #require(c.status == 0, "\(c)")
        for classifier in ["c.safetensors", "w.safetensors"] {
            let r = try ws.run(["sample", "--model", "u.safetensors", "--class", "1,2", "--classifier", classifier, "--classifier-scale", "2",
                                "--count", "4", "--nfe", "4", "--output", "g.npy", "--stats", "g.json"])
            try #require(r.status == 0, "\(r)")
            #expect(try Npy.read(ws.path("g.npy")).shape == [4, 1, 8, 8])
            #expect(try ws.json("g.json")["classifier"] as? String == classifier)
        }
        let off = try ws.run(["sample", "--model", "u.safetensors", "--class", "1,2", "--classifier", "w.safetensors", "--classifier-scale", "0",
                              "--count", "4", "--nfe", "4", "--output", "o.npy"])
        try #require(off.status == 0, "\(off)")
        #expect(try Npy.read(ws.path("o.npy")) != Npy.read(ws.path("g.npy")), "guidance moves the samples")
        let other = try ws.run(["train-classifier", "--data", "digits", "--count", "64", "--steps", "1", "--scaling", "none",
                                "--output", "s.safetensors"] + Self.tiny)
        try #require(other.status == 0, "\(other)")
        let bad = try ws.run(["sample", "--model", "u.safetensors", "--class", "1", "--classifier", "s.safetensors", "--count", "2", "--nfe", "4",
                              "--output", "b.npy"])
        #expect(bad.status != 0 && bad.stderr.contains("data scaling"), "\(bad)")
        #expect(!ws.files().contains("b.npy"))
    }

    /// Classifier guidance of the shipped Fashion-MNIST model (its null label) by the shipped
    /// noise-aware classifier, judged by the shipped feature classifier. Unguided, a sample is of a
    /// given class with probability about 1/10; the statistical contract: the share of the 20 guided
    /// samples classified as their requested class exceeds 0.1 by 5 binomial standard errors,
    /// 0.1 + 5 √(0.09/20) ≈ 0.44, and exceeds the unguided run's (scale 0, same seed).
    @Test func theShippedClassifierGuidesTheShippedModel() throws {
        let ws = try Workspace()
        func run(_ scale: String, _ output: String) throws {
            let r = try ws.run(["sample", "--model", "fashion", "--class", "1,7", "--classifier", "fashion", "--classifier-scale", scale,
                                "--count", "20", "--nfe", "10", "--output", output])
            try #require(r.status == 0, "\(r)")
        }
        try run("3", "g.npy")
        try run("0", "u.npy")
        let judge = try PretrainedClassifiers.fashionFeatures()
        let wanted = (0 ..< 20).map { $0 < 10 ? 1 : 7 }
        let guided = try judge.accuracy(onData: Npy.read(ws.path("g.npy")), labels: wanted)
        let unguided = try judge.accuracy(onData: Npy.read(ws.path("u.npy")), labels: wanted)
        #expect(guided > 0.1 + 5 * (0.09 / 20).squareRoot() && guided > unguided, "guided share \(guided), unguided \(unguided)")
    }
}

import Foundation
import ScoreSDE
import Testing

/// `--model PATH/` with a diffusers pipeline folder: the tiny model trained with diffusers' recipe
/// (Tests/Fixtures/diffusers/trained, 8×8 grey, 1 000 linear steps, ε-prediction; data 0...255).
@Suite struct DiffusersCommandTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/diffusers/trained").path

    /// Three 8×8 images with values in 0...255.
    static func images() throws -> Tensor {
        var s = RandomSource(seed: 9).stream(draw: 0, row: 0)
        return try Tensor(shape: [3, 1, 8, 8], storage: (0 ..< 192).map { _ in (255 * Double(s.next() >> 11) * 0x1p-53).rounded() })
    }

    @Test func sampleLikelihoodAndInpaintTakeTheFolder() throws {
        let ws = try Workspace()
        try ws.write(Npy.encode(try Self.images()), to: "x.npy")
        let s = try ws.run(["sample", "--model", Self.folder, "--count", "4", "--steps", "20", "--seed", "1", "--output", "s.npy", "--stats", "s.json"])
        try #require(s.status == 0, "\(s)")
        let samples = try Npy.read(ws.path("s.npy"))
        #expect(samples.shape == [4, 1, 8, 8])
        #expect(samples.storage.allSatisfy { $0.isFinite })
        #expect(try ws.json("s.json")["sde"] as? String == "vp")
        let l = try ws.run(["likelihood", "--model", Self.folder, "--data", "x.npy", "--estimator", "rademacher",
                            "--eps", "1e-3", "--rtol", "1e-3", "--atol", "1e-3", "--output", "l.npy"])
        try #require(l.status == 0, "\(l)")
        let bpd = try Npy.read(ws.path("l.npy")).storage
        #expect(bpd.count == 3 && bpd.allSatisfy { $0.isFinite })
        let i = try ws.run(["inpaint", "--model", Self.folder, "--data", "x.npy", "--steps", "10", "--samples-per-input", "1", "--output", "i.npy"])
        try #require(i.status == 0, "\(i)")
        let inpainted = try Npy.read(ws.path("i.npy")), x = try Self.images()
        #expect(inpainted.shape == [3, 1, 8, 8])
        for k in 0 ..< 3 { for p in 0 ..< 32 { #expect(abs(inpainted.storage[k * 64 + p] - x.storage[k * 64 + p]) < 1e-9) } }
    }

    /// Every sampler of `scoresde sample` runs on the diffusers model.
    @Test(arguments: ["pc", "ode", "ddim", "dpm-solver++", "unipc", "heun", "sde-dpm-solver++", "adaptive-sde", "adaptive-unipc"])
    func everySamplerTakesTheFolder(_ name: String) throws {
        let ws = try Workspace()
        let fewStep = ["ddim", "dpm-solver++", "unipc", "heun", "sde-dpm-solver++"].contains(name)
        let extra = name == "pc" ? ["--steps", "10"] : fewStep ? ["--nfe", "6"] : []
        let r = try ws.run(["sample", "--model", Self.folder, "--sampler", name, "--count", "2", "--seed", "1", "--output", "s.npy"] + extra)
        try #require(r.status == 0, "\(name): \(r)")
        let s = try Npy.read(ws.path("s.npy"))
        #expect(s.shape == [2, 1, 8, 8])
        #expect(s.storage.allSatisfy { $0.isFinite })
    }

    @Test func aFolderWithoutWeightsFailsNamingTheFile() throws {
        let ws = try Workspace()
        try FileManager.default.createDirectory(atPath: ws.path("m"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.folder + "/unet/config.json", toPath: ws.path("m/config.json"))
        let r = try ws.run(["sample", "--model", ws.path("m"), "--count", "2", "--steps", "5", "--output", "s.npy"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("diffusion_pytorch_model.safetensors"), "\(r.stderr)")
        #expect(!ws.files().contains("s.npy"))
    }
}

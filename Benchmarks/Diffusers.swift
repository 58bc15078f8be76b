import Foundation
import ScoreSDE

// MARK: - diffusers UNet2DModel checkpoints: forward time per image per NFE (issue 23)

/// `scoresde-bench diffusers PATH [--batch N] [--threads N] [--repeats N]`: loads a diffusers folder
/// (e.g. the ~35.7 M-parameter DDPM CIFAR-10-shaped model that `Benchmarks/peers/diffusers_parity.py
/// speed PATH` writes and times in PyTorch) and prints the best wall-clock time of one network
/// evaluation per image (one NFE) at the given batch and thread count.
func diffusersBenchmark(arguments: [String]) throws {
    guard let path = arguments.first(where: { !$0.hasPrefix("--") }) else {
        print("usage: scoresde-bench diffusers PATH [--batch N] [--threads N] [--repeats N]"); return
    }
    func value(_ flag: String, _ d: Int) -> Int {
        if let i = arguments.firstIndex(of: flag), i + 1 < arguments.count, let v = Int(arguments[i + 1]) { return v }
        return d
    }
    let batch = value("--batch", 8), threads = value("--threads", 2), repeats = value("--repeats", 5)
    DNNL.setThreads(threads)
    let model = try DiffusersUNet.load(path)
    let c = model.configuration, size = c.channels * c.imageSize * c.imageSize
    var s = RandomSource(seed: 1).stream(draw: 0, row: 0)
    let x = try Tensor(shape: [batch, size], storage: (0 ..< batch * size).map { _ in s.normal() })
    _ = try model.networkOutput(x, tau: 500)   // warm-up (oneDNN primitives, buffers)
    var best = Double.infinity
    for _ in 0 ..< repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try model.networkOutput(x, tau: 500)
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    print(String(format: "{\"framework\": \"scoresde\", \"parameters\": %d, \"batch\": %d, \"threads\": %d, \"seconds_per_image_per_nfe\": %.4f}",
                 model.network.parameters.count, batch, threads, best / Double(batch)))
}

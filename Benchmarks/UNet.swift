import Dispatch
import Foundation
import ScoreSDE

// MARK: - U-Net: forward and training throughput, memory, convolution GFLOP/s (issue 20)

/// Resident set size now and at its peak (VmRSS, VmHWM of /proc/self/status), MiB.
func residentMiB() -> (now: Double, peak: Double) {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
    func field(_ k: String) -> Double {
        guard let line = s.split(separator: "\n").first(where: { $0.hasPrefix(k) }) else { return 0 }
        return (Double(line.split(separator: " ").compactMap { Double($0) }.first ?? 0)) / 1024
    }
    return (field("VmRSS:"), field("VmHWM:"))
}

/// The benchmark's configuration: Fashion-MNIST-sized (1×28×28), levels 32/64/64 (28 → 14 → 7), one
/// residual block per level, attention at 7×7 (level 3 and the middle block), 8 groups, ε-prediction.
/// The peer script `Benchmarks/peers/unet_torch.py` builds the same diffusers `UNet2DModel`.
let benchUNetConfiguration = UNetConfiguration(imageSize: 28, channels: 1, blockOutChannels: [32, 64, 64], layersPerBlock: 1,
                                               attentionLevels: [false, false, true], midBlockAttention: true, normGroups: 8)

/// `scoresde-bench unet [--json] [--threads N] [--steps N] [--names]`: images/s of the float32 U-Net forward
/// (batch 256) and of a training step (batch 128: forward, ε-prediction MSE, backward, Adam), peak
/// RSS minus the RSS after the model was built, at 1 and 2 threads (OpenMP, set per thread count);
/// then the convolutions' share in GFLOP/s against a measured FMA-loop peak. The peak RSS is a
/// process high-water mark: run `--threads 1` and `--threads 2` as separate processes for the memory
/// of each (in one process the second count's figure includes the first's batch-256 inference).
func unetBenchmark(arguments: [String]) throws {
    let json = arguments.contains("--json")
    var threadCounts = [1, 2]
    if let i = arguments.firstIndex(of: "--threads"), i + 1 < arguments.count, let t = Int(arguments[i + 1]) { threadCounts = [t] }
    var steps = 10
    var trainerBlock: Int? = nil
    if let i = arguments.firstIndex(of: "--block"), i + 1 < arguments.count, let b = Int(arguments[i + 1]) { trainerBlock = b }
    if let i = arguments.firstIndex(of: "--steps"), i + 1 < arguments.count, let s = Int(arguments[i + 1]) { steps = s }
    let c = benchUNetConfiguration
    let S = c.imageSize, inferBatch = 256, trainBatch = 128
    let net = try UNet<Float>(c)
    if arguments.contains("--names") {
        // Parameter names and shapes, one per line (for comparison with diffusers' state_dict).
        for r in net.layout.refs { print(r.name, r.shape.map(String.init).joined(separator: ",")) }
        return
    }
    net.initialize(seed: 1)
    let base = residentMiB().now
    if !json {
        print("\n== U-Net (float32, oneDNN \(DNNL.cpuISA)): \(net.parameterCount) parameters, \(c.blockOutChannels) × \(c.layersPerBlock), attention \(c.attentionLevels) + mid ==")
    }
    // Inputs: images in [−1, 1], noise, times; fixed across steps (the benchmark times the network).
    var rng = RandomSource(seed: 7).stream(draw: 0, row: 0)
    let x0 = (0 ..< inferBatch * S * S).map { _ in Float(2 * rng.uniformPositive() - 1) }
    let eps = (0 ..< trainBatch * S * S).map { _ in Float(rng.normal()) }
    let tauInfer = (0 ..< inferBatch).map { Double($0 % 1000) }
    // Adam (Kingma & Ba 2015) in float32 with PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, lr 2e-4.
    var m = [Float](repeating: 0, count: net.parameterCount), v = m
    var step = 0
    func adam() {
        step += 1
        let b1: Float = 0.9, b2: Float = 0.999, lr: Float = 2e-4
        let c1 = 1 - Float(pow(0.9, Double(step))), c2 = 1 - Float(pow(0.999, Double(step)))
        let p = net.parameters, g = net.gradients
        for i in 0 ..< net.parameterCount {
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
            p[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + 1e-8)
        }
    }
    var dy = [Float](repeating: 0, count: trainBatch * S * S)
    var xt = [Float](repeating: 0, count: trainBatch * S * S)
    func trainStep(_ k: Int) {
        // x_t = √ᾱ x₀ + √(1−ᾱ) ε at a per-image time (VP, linear β), loss = mean (ε̂ − ε)².
        var tau = [Double](repeating: 0, count: trainBatch)
        for b in 0 ..< trainBatch {
            let t = Double((b * 37 + k * 11) % 1000) / 1000 + 1e-3
            let logMean = -0.25 * t * t * (20 - 0.1) - 0.5 * t * 0.1
            let a = Float(exp(logMean)), s = Float((1 - exp(2 * logMean)).squareRoot())
            tau[b] = 999 * t
            for q in 0 ..< S * S { xt[b * S * S + q] = a * x0[b * S * S + q] + s * eps[b * S * S + q] }
        }
        let y = net.forward(xt, tau: tau)
        let scale = 2 / Float(trainBatch * S * S)
        for i in 0 ..< dy.count { dy[i] = scale * (y[i] - eps[i]) }
        net.backward(dy)
        adam()
    }
    let convFlopsForward = 2 * Double(net.convolutionMultiplyAdds(batch: 1))
    for threads in threadCounts {
        DNNL.setThreads(threads)
        // Training first (batch 128), so that the peak RSS read after it is the training peak;
        // then inference (batch 256, which grows the forward buffers further).
        trainStep(0)
        var bestTrain = Double.infinity
        for k in 1 ... steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            trainStep(k)
            bestTrain = min(bestTrain, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        let train = Double(trainBatch) / bestTrain
        let peak = residentMiB().peak - base
        // The library's trainer (UNetTrainer: DSM loss in float64, gradient blocks, Adam, EMA) on the
        // same configuration, whole batch as one block (the CLI's default of 64-row blocks: --block 64).
        let trainer = try UNetTrainer(configuration: UNetTrainingConfiguration(unet: c, options: DSMTrainingOptions(
            sde: .vp(betaMin: 0.1, betaMax: 20), seed: 1, batchSize: trainBatch, learningRate: 2e-4, warmup: 0, gradientBlockSize: trainerBlock)),
                                      data: Tensor(shape: [inferBatch, 1, S, S], storage: x0.map(Double.init)))
        try trainer.train(steps: 1)
        var bestTrainer = Double.infinity
        for _ in 1 ... steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try trainer.train(steps: 1)
            bestTrainer = min(bestTrainer, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        let trainerRate = Double(trainBatch) / bestTrainer
        _ = net.forward(x0, tau: tauInfer)
        var best = Double.infinity
        for _ in 0 ..< max(2, steps / 3) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = net.forward(x0, tau: tauInfer)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        let infer = Double(inferBatch) / best
        if json {
            print("{\"framework\": \"scoresde\", \"train_images_per_s\": \(String(format: "%.1f", trainerRate)), \"network_train_images_per_s\": \(String(format: "%.1f", train)), \"infer_images_per_s\": \(String(format: "%.1f", infer)), \"peak_rss_mb\": \(String(format: "%.1f", peak)), \"parameters\": \(net.parameterCount), \"threads\": \(threads)}")
        } else {
            print(String(format: "threads %d: inference %.0f images/s (batch %d), training %.0f images/s (batch %d, forward+backward+Adam), training peak RSS − model RSS %.0f MiB",
                         threads, infer, inferBatch, train, trainBatch, peak))
            let blocks = trainerBlock.map { "gradient blocks of \($0) rows" } ?? "one gradient block"
            print("  the library's UNetTrainer (DSM loss, \(blocks), Adam, EMA): " + String(format: "%.0f images/s", trainerRate))
            print(String(format: "  whole network, convolution flops only: forward %.1f GFLOP/s, training step %.1f GFLOP/s (3× forward conv flops)",
                         convFlopsForward * infer / 1e9, 3 * convFlopsForward * train / 1e9))
        }
    }
    if json { return }
    print("  impl (3×3 convs at batch 128): \(net.convolutionImplementations(batch: trainBatch).joined(separator: ", "))")
    // Reproducibility across thread counts: the same forward (and gradient) at 1 and 2 threads.
    do {
        let probe = try UNet<Float>(c)
        probe.initialize(seed: 3)
        var outs: [[Float]] = [], grads: [[Float]] = []
        for th in [1, 2] {
            DNNL.setThreads(th)
            let y = probe.forward(x0, tau: tauInfer)
            outs.append(Array(UnsafeBufferPointer(start: y, count: inferBatch * S * S)))
            _ = probe.forward(x0, tau: tauInfer.map { $0 + 1 })   // shape of training: forward then backward
            probe.backward(x0)
            grads.append(Array(UnsafeBufferPointer(start: probe.gradients, count: probe.parameterCount)))
        }
        let dOut = zip(outs[0], outs[1]).map { abs($0 - $1) }.max()!, dGrad = zip(grads[0], grads[1]).map { abs($0 - $1) }.max()!
        let gScale = grads[0].map { abs($0) }.max()!
        print("  1 vs 2 threads: forward \(outs[0] == outs[1] ? "identical bytes" : "max |Δ| \(dOut)"), gradient \(grads[0] == grads[1] ? "identical bytes" : "max |Δ| \(dGrad) (largest gradient \(gScale))")")
    }
    // The fallback the issue asks to measure against: im2col + oneDNN's sgemm for every convolution.
    do {
        DNNL.setThreads(threadCounts[0])
        DNNL.convolutionOverride = false
        defer { DNNL.convolutionOverride = nil }
        let fallback = try UNet<Float>(c)
        fallback.initialize(seed: 1)
        _ = fallback.forward(x0, tau: tauInfer)
        var best = Double.infinity
        for _ in 0 ..< 2 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = fallback.forward(x0, tau: tauInfer)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        print(String(format: "  im2col + sgemm fallback, %d thread(s): inference %.0f images/s (convolutions %.1f GFLOP/s over the whole forward)",
                     threadCounts[0], Double(inferBatch) / best, convFlopsForward * Double(inferBatch) / best / 1e9))
    }
    if let peak1 = DNNL.fmaPeakGFLOPS() {
        var peaks = [Double](repeating: 0, count: 2)
        DispatchQueue.concurrentPerform(iterations: 2) { i in peaks[i] = DNNL.fmaPeakGFLOPS() ?? 0 }
        print(String(format: "  float32 FMA-loop peak (AVX-512, register-resident): %.0f GFLOP/s on 1 thread, %.0f on 2 (sum of two concurrent loops)",
                     peak1, peaks.reduce(0, +)))
    }
}

import Foundation
import ScoreSDE

// MARK: - Inverse problems on Fashion-MNIST test images (issue 22, item 5)

/// `scoresde-bench fashion-inverse [--images N] [--samples K] [--steps S] [--tasks a,b] [--methods a,b]
/// [--seed s] [--dps-scale ζ] [--pigdm jacobian-free|exact] [--results FILE.json]`:
/// the shipped Fashion-MNIST U-Net on the first N test images (never seen in training) for each
/// ``ImageInverseTask`` — centre 14×14 square, right half, a random half of the pixels, 2×
/// super-resolution by 2×2 averaging — with each method: replacement / projection (Song et al.
/// 2021, App. I.2 and I.4), RePaint (Lugmayr et al. 2022; 2 runs of blocks of 10 steps), DPS (Chung
/// et al. 2023; weight ζ on the score, through the U-Net's vector–Jacobian products) and ΠGDM (Song
/// et al. 2023; v = the training images' mean per-pixel variance in model units). Reverse diffusion,
/// S steps from T to 1e-3, the unconditional (null-label) score, K samples per image. Prints RMSE
/// (levels 0...255, on the unknown pixels; every pixel for super-resolution) and PSNR, each with its
/// standard error over images, of one sample and of the mean of K, next to the task's baseline
/// (the training image nearest on the known pixels; bicubic up-sampling), NFE and wall time.
///
/// `--results FILE.json` keeps every finished row (atomically rewritten after each); run the same
/// command again and it skips the rows it has, so a long run can be interrupted and resumed.
func fashionInverseBenchmark(arguments: [String]) throws {
    let usage = """
        usage: scoresde-bench fashion-inverse [--images N (500)] [--samples K (4)] [--steps S (100)] [--tasks a,b]
                                              [--methods replace,repaint,dps,pigdm] [--seed s (0)] [--dps-scale ζ (1)]
                                              [--pigdm jacobian-free|exact] [--results FILE.json]
        """
    if arguments.contains("--help") || arguments.contains("-h") { print(usage); return }
    // Every argument is a known flag followed by its value: a typo must not start a long default run.
    let flags: Set<String> = ["--images", "--samples", "--steps", "--tasks", "--methods", "--seed", "--dps-scale", "--pigdm", "--results"]
    var values: [String: String] = [:]
    var i = 0
    while i < arguments.count {
        guard flags.contains(arguments[i]), i + 1 < arguments.count else {
            throw ScoreSDEError.invalidArgument("'\(arguments[i])' is not an option of fashion-inverse or has no value\n\(usage)")
        }
        values[arguments[i]] = arguments[i + 1]
        i += 2
    }
    func value(_ name: String) -> String? { values[name] }
    func number<T: LosslessStringConvertible>(_ name: String, _ fallback: T) throws -> T {
        guard let text = values[name] else { return fallback }
        guard let v = T(text) else { throw ScoreSDEError.invalidArgument("\(name): '\(text)' is not a number") }
        return v
    }
    let n: Int = try number("--images", 500), k: Int = try number("--samples", 4)
    let steps: Int = try number("--steps", 100), seed: UInt64 = try number("--seed", 0)
    let tasks = try (value("--tasks")?.split(separator: ",").map(String.init) ?? ImageInverseTask.allCases.map(\.rawValue)).map { name in
        guard let t = ImageInverseTask(rawValue: name) else {
            throw ScoreSDEError.unknownName("--tasks: '\(name)' is not one of \(ImageInverseTask.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return t
    }
    let methods = value("--methods")?.split(separator: ",").map(String.init) ?? ["replace", "repaint", "dps", "pigdm"]
    for m in methods where !["replace", "repaint", "dps", "pigdm"].contains(m) {
        throw ScoreSDEError.unknownName("--methods: '\(m)' is not one of replace, repaint, dps, pigdm")
    }
    let zeta: Double = try number("--dps-scale", 1)
    let pigdm = value("--pigdm") ?? "jacobian-free"   // the exact Jacobian diverges with this VP model (NaN at t ≈ 0.89)
    guard ["exact", "jacobian-free"].contains(pigdm) else { throw ScoreSDEError.unknownName("--pigdm: '\(pigdm)' is not one of exact, jacobian-free") }
    guard n >= 2, k >= 1, steps >= 2, zeta.isFinite, zeta >= 0 else {
        throw ScoreSDEError.invalidArgument("need --images >= 2, --samples >= 1, --steps >= 2, a finite --dps-scale >= 0")
    }
    let model = try PretrainedModels.fashion()
    let score = try model.conditioned(on: nil)
    let settings: [String: String] = ["images": "\(n)", "samples": "\(k)", "steps": "\(steps)", "seed": "\(seed)",
                                      "dps_scale": "\(zeta)", "pigdm": pigdm]
    var results = try InverseResults(path: value("--results"), settings: settings)
    try fashionInverse(model: model, score: score, sde: model.sdeSpec.make(), n: n, k: k, steps: steps, seed: seed, tasks: tasks, methods: methods,
                       dpsScale: zeta, pigdmJacobianFree: pigdm == "jacobian-free", results: &results)
}

/// The rows of a `fashion-inverse` run kept in a JSON file (`settings` plus one object per
/// "task method" row), so an interrupted run resumes where it stopped; a file written with other
/// settings is refused rather than mixed in.
struct InverseResults {
    let path: String?
    let settings: [String: String]
    var rows: [String: [String: Double]] = [:]

    init(path: String?, settings: [String: String]) throws {
        self.path = path; self.settings = settings
        guard let path, FileManager.default.fileExists(atPath: path) else { return }
        guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any],
              let stored = object["settings"] as? [String: String], let rows = object["rows"] as? [String: [String: Double]] else {
            throw ScoreSDEError.io(path: path, message: "not a fashion-inverse results file (delete it or name another --results)")
        }
        guard stored == settings else {
            throw ScoreSDEError.invalidArgument("\(path) was written with other settings (\(stored.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))); name another --results to run these")
        }
        self.rows = rows
    }

    mutating func record(_ key: String, _ row: [String: Double]) throws {
        rows[key] = row
        guard let path else { return }
        let data = try JSONSerialization.data(withJSONObject: ["settings": settings, "rows": rows] as [String: Any], options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: path)
    }
}

func fashionInverse<SDE: ForwardSDE>(model: UNetScore, score: UNetScore, sde: SDE, n: Int, k: Int, steps: Int, seed: UInt64,
                                    tasks: [ImageInverseTask], methods: [String], dpsScale: Double = 1, pigdmJacobianFree: Bool = false,
                                    results: inout InverseResults) throws {
    let test = try FashionMNIST.testSplitForEvaluation(), train = try FashionMNIST.trainingSplit()
    let truth = test.images.rows(0 ..< n)
    // ΠGDM's prior variance per value: the training images' mean per-pixel variance, model units.
    let xm = model.dataScaling.toModel(train.images)
    let d = xm.rowSize
    var v = 0.0
    for j in 0 ..< d {
        var s = 0.0, s2 = 0.0
        for r in 0 ..< xm.rows { let a = xm.storage[r * d + j]; s += a; s2 += a * a }
        let mean = s / Double(xm.rows)
        v += (s2 / Double(xm.rows) - mean * mean) / Double(d)
    }
    print("Fashion-MNIST inverse problems: the first \(n) test images x \(k) samples, reverse diffusion, \(steps) steps (T -> 1e-3), "
          + "null-label score; RMSE in levels 0...255 and PSNR (dB, peak 255), mean over images ± s.e.; DPS ζ = \(dpsScale); "
          + "PiGDM v = \(String(format: "%.3f", v))\(pigdmJacobianFree ? " (Jacobian-free)" : "")")
    print("| task | method | one sample RMSE | mean of \(k) RMSE | mean of \(k) PSNR | NFE | passes | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    func pm(_ row: [String: Double], _ a: String) -> String { String(format: "%.2f ± %.2f", row[a] ?? .nan, row[a + "_se"] ?? .nan) }
    func fields(_ s: ReconstructionScore, _ prefix: String) -> [String: Double] {
        [prefix + "rmse": s.rmse, prefix + "rmse_se": s.rmseStandardError, prefix + "psnr": s.psnr, prefix + "psnr_se": s.psnrStandardError]
    }
    for task in tasks {
        let setup = try task.setup(truth: truth, imageShape: [1, 28, 28], seed: seed)
        let baselineName = task == .superResolution2x ? "bicubic" : "nearest training image on the known pixels"
        let baseKey = "\(task.rawValue) baseline"
        if results.rows[baseKey] == nil {
            let base = try ReconstructionScore(estimates: setup.baseline(training: train.images), truth: setup.truth, pixels: setup.scoredPixels)
            try results.record(baseKey, fields(base, ""))
        }
        let b = results.rows[baseKey]!
        print("| \(task.rawValue) | baseline (\(baselineName)) | \(pm(b, "rmse")) | | \(pm(b, "psnr")) | | | |")
        let grid = try TimeGrid.spaced(.timeUniform, steps: steps, from: sde.T, to: 1e-3, sde: sde)
        for method in methods {
            let key = "\(task.rawValue) \(method)"
            if results.rows[key] == nil {
                var rng = RandomSource(seed: seed).derived(7)
                let start = Date()
                let result: SamplingResult
                let constraint: any SamplingConstraint = task == .superResolution2x
                    ? LinearMeasurementConstraint(try setup.measurement(scaling: model.dataScaling, samplesPerImage: k))
                    : try setup.inpainting(scaling: model.dataScaling, samplesPerImage: k)
                switch method {
                case "replace", "repaint":
                    result = try PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: NoCorrector(),
                                           denoising: .lastPredictorMean, batchSize: 256, constraint: constraint,
                                           resampling: method == "repaint" ? try Resampling(count: 2, jumpLength: 10) : .none)
                        .sample(count: n * k, rowShape: [1, 28, 28], using: &rng)
                default:
                    let likelihood: MeasurementLikelihood = method == "dps" ? .dps(stepScale: dpsScale)
                        : .pseudoinverse(dataVariance: v, jacobianFree: pigdmJacobianFree)
                    let guided = try MeasurementGuidedScore(base: score, sde: sde, measurement: setup.measurement(scaling: model.dataScaling, samplesPerImage: k),
                                                            likelihood: likelihood)
                    result = try PCSampler(sde: sde, score: guided, grid: grid, predictor: ReverseDiffusion(), corrector: NoCorrector(),
                                           denoising: .lastPredictorMean, batchSize: 256)
                        .sample(count: n * k, rowShape: [1, 28, 28], using: &rng)
                }
                var samples = model.dataScaling.toData(result.samples)
                for i in samples.storage.indices { samples.storage[i] = min(max(samples.storage[i], 0), 255) }
                let first = try Tensor(shape: [n, 1, 28, 28], storage: (0 ..< n).flatMap { samples.row($0 * k) })
                let one = try ReconstructionScore(estimates: first, truth: setup.truth, pixels: setup.scoredPixels)
                let mean = try ReconstructionScore(estimates: ReconstructionScore.meanOfSamples(samples, perImage: k), truth: setup.truth, pixels: setup.scoredPixels)
                var row = fields(one, "one_").merging(fields(mean, "mean_")) { a, _ in a }
                row["nfe"] = Double(result.scoreEvaluations); row["passes"] = Double(result.modelPasses)
                row["seconds"] = Date().timeIntervalSince(start)
                try results.record(key, row)
            }
            let r = results.rows[key]!
            print("| \(task.rawValue) | \(method) | \(pm(r, "one_rmse")) | \(pm(r, "mean_rmse")) | \(pm(r, "mean_psnr")) | "
                  + "\(Int(r["nfe"] ?? 0)) | \(Int(r["passes"] ?? 0)) | " + String(format: "%.0f", r["seconds"] ?? 0) + " |")
            fflush(stdout)
        }
    }
}

import Foundation
import ScoreSDE

// Small pieces the subcommands share: reading sample files for a model, timing, summaries.

extension DataModel {
    /// Reads the `.npy` file at `path` (named by `option` in messages) as rows for this model:
    /// at least one row, each with the model's number of values, all finite. The result has shape
    /// `[n] + rowShape` (a 1-D file is n one-value rows).
    func readRows(_ path: String, option: String) throws -> Tensor {
        try checkRows(Npy.read(path), what: "\(option) \(path)")
    }

    /// `t` as rows for this model (see ``readRows(_:option:)``); `what` names it in messages.
    func checkRows(_ t: Tensor, what: String) throws -> Tensor {
        let d = rowShape.reduce(1, *)
        guard t.rows >= 1 else {
            throw ScoreSDEError.shapeMismatch("\(what): the array has no rows (shape \(t.shape)); give at least one sample")
        }
        guard t.rowSize == d else {
            let rows = t.shape.count == 1 ? "a 1-D array of \(t.rows) values (one value per sample)" : "rows of shape \(t.rowShape) (\(t.rowSize) values each)"
            throw ScoreSDEError.shapeMismatch("\(what): the data hold \(rows), but the model \(name) takes samples of dimension \(d) (shape \(rowShape)); save an array of shape [n, \(rowShape.map(String.init).joined(separator: ", "))]")
        }
        guard t.isFinite else {
            let bad = t.storage.firstIndex { !$0.isFinite }!
            throw ScoreSDEError.nonFinite("\(what): row \(bad / d), value \(bad % d) is \(t.storage[bad]); all values must be finite")
        }
        return try t.reshaped([t.rows] + rowShape)
    }
}

/// Runs `body` and returns its result and the wall-clock seconds it took.
func timed<R>(_ body: () throws -> R) rethrows -> (R, Double) {
    let clock = ContinuousClock(), start = clock.now
    let result = try body()
    let elapsed = start.duration(to: clock.now).components
    return (result, Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18)
}

/// A seed for a stats file (an integer when JSON readers can hold it exactly, else a string).
func seedValue(_ seed: UInt64) -> RunStats.Value {
    seed <= UInt64(Int.max) ? .int(Int(seed)) : .string(String(seed))
}

/// `1.2345` with `digits` significant digits, for summaries.
func formatted(_ x: Double, _ digits: Int = 5) -> String { String(format: "%.\(digits)g", x) }

/// Throws unless `eps` is in `(0, T)`, naming the reference's choices.
func checkEps(_ eps: Double, for sde: any ForwardSDE) throws {
    guard eps.isFinite, eps > 0, eps < sde.T else {
        throw ScoreSDEError.invalidArgument("--eps must be in (0, T) = (0, \(sde.T)) (got \(eps)); the reference uses 1e-3 for vp/subvp sampling and 1e-5 for ve sampling and for likelihoods")
    }
}

/// Throws, before any work, when an implicit method's dense Jacobian would be too large (the
/// library's check, in the options' words).
func checkImplicitFits(_ ode: ODEOptions, rows: Int, dimension d: Int) throws {
    do { try ode.methodName.stepType.checkFits(rows: rows, dimension: d, layout: ode.perSample ? .perSample : .batch) }
    catch ScoreSDEError.invalidArgument(let message) { throw ScoreSDEError.invalidArgument(ode.optionWords(message)) }
}

/// What an ODE solve does with the probability flow.
enum ODEJob {
    /// Draw `count` prior samples and solve them from `T` down to `eps`.
    case sample(count: Int, rowShape: [Int])
    /// Solve the given latents from `T` down to `eps`.
    case decode(Tensor)
    /// Solve the given data from `eps` up to `T`.
    case encode(Tensor)
}

/// Runs `job` with an `ODESampler` on concrete types (callers pass existentials, which Swift opens).
func runODE<S: ForwardSDE, M: ScoreModel>(
    _ job: ODEJob, sde: S, score: M, eps: Double, solver: ODESolverOptions, layout: ODESystemLayout,
    denoise: Bool, batchSize: Int?, using rng: inout RandomSource
) throws -> ODEResult {
    let sampler = ODESampler(sde: sde, score: score, eps: eps, solver: solver, layout: layout,
                             denoise: denoise, batchSize: batchSize)
    switch job {
    case .sample(let count, let rowShape): return try sampler.sample(count: count, rowShape: rowShape, using: &rng)
    case .decode(let latents): return try sampler.decode(latents)
    case .encode(let data): return try sampler.encode(data)
    }
}

/// Prints `warning: message` on standard error.
func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

/// The files of a sampling command (`sample`, `inpaint`, `colorize`, `reconstruct`): `--output`
/// (the samples as .npy), `--stats` (JSON), `--png` (a picture), checked before any work.
struct SampleOutputs {
    private var outputs = RunOutputs()

    /// `--output`, `--stats`, `--png`; without `--png` the picture goes to `defaultPNG` unless
    /// `--output` is given (the samples are then the result); `--stats` does not change that.
    /// Checked before any work.
    init(output: String?, stats: String?, png: String?, defaultPNG: String) throws {
        outputs.add(output, for: "--output")
        outputs.add(stats, for: "--stats")
        outputs.add(png ?? (output == nil ? defaultPNG : nil), for: "--png")
        try outputs.check()
    }

    /// Writes the files (each atomically, all or none named in `contents`).
    func write(samples: Tensor, report: RunStats, figure: () throws -> RasterImage) throws {
        var contents = [String: Data]()
        if outputs.contains("--output") { contents["--output"] = Npy.encode(samples) }
        if outputs.contains("--stats") { contents["--stats"] = report.jsonData() }
        if outputs.contains("--png") { contents["--png"] = try PNG.encode(figure()) }
        try outputs.write(contents)
    }

    var paths: String { outputs.paths.joined(separator: ", ") }
}

/// The default picture of a command: `base` for its default model, else `base` with the model's
/// label inserted (`reconstruction-digits.png`), so that demos of different models do not
/// overwrite each other.
func figureName(_ base: String, model: DataModel, defaultModel: String) -> String {
    guard model.name != defaultModel else { return base }
    let stem = base.hasSuffix(".png") ? String(base.dropLast(4)) : base
    var label = model.label.hasSuffix(".json") || model.label.hasSuffix(".safetensors")
        ? String(model.label.prefix { $0 != "." }) : model.label
    label = String(label.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" })
    return "\(stem)-\(label.isEmpty ? "model" : label).png"
}

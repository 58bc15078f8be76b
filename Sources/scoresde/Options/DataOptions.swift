import ArgumentParser
import ScoreSDE

/// `--data` and `--count`: the samples `encode` and `likelihood` work on — a `.npy` file, or
/// exact samples of the model.
struct DataOptions: ParsableArguments {
    static let defaultCount = 256

    @Option(help: ArgumentHelp(
        "The samples, a .npy of shape [n, ...] whose rows have the model's dimension (default: exact samples of the model, see --count).",
        valueName: "path"))
    var data: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Without --data: how many exact samples of the model to draw with --seed (default: 256).", valueName: "n"))
    var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be >= 1 (got \(count))") }
        if data != nil, count != nil {
            throw ValidationError("--count is for the model's own samples; with --data the count is the number of rows of the file")
        }
    }

    /// "x.npy", or "exact samples of ring, seed 0": for stats files.
    func source(_ model: DataModel, seed: UInt64) -> String {
        data ?? "exact samples of \(model.name), seed \(seed)"
    }

    /// "from x.npy", or "drawn from ring (seed 0)": for summaries.
    func origin(_ model: DataModel, seed: UInt64) -> String {
        data.map { "from \($0)" } ?? "drawn from \(model.name) (seed \(seed))"
    }

    /// The file's rows, checked against the model, or `count` exact samples of the model drawn
    /// with `rng` (one draw).
    func load(for model: DataModel, using rng: inout RandomSource) throws -> Tensor {
        if let data { return try model.readRows(data, option: "--data") }
        return model.sample(count: count ?? Self.defaultCount, using: &rng)
    }
}

extension DataModel {
    /// Exact samples of the data distribution (one draw of `rng`).
    func sample(count: Int, using rng: inout RandomSource) -> Tensor {
        switch source {
        case .mixture(let m): return m.sample(count: count, using: &rng)
        }
    }
}

import ArgumentParser
import Foundation
import ScoreSDE

/// `--data` and `--count`: the samples `encode` and `likelihood` work on — a `.npy` file, a
/// built-in data set, or exact samples of the model.
struct DataOptions: ParsableArguments {
    static let defaultCount = 256

    @Option(help: ArgumentHelp(
        "The samples: a .npy of shape [n, ...] whose rows have the model's dimension, or a built-in data set (\(Dataset.builtInNames.joined(separator: ", "))). Default: exact samples of a mixture model (see --count); a learned model needs --data. Data are in data space (a learned model's scaling is applied).",
        valueName: "path|name"))
    var data: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("How many samples: without --data, exact samples of the mixture drawn with --seed (default: 256); with a built-in data set, that many of it (default: all).", valueName: "n"))
    var count: Int?

    /// Whether `--data` names a built-in data set rather than a file (a file of that name wins).
    var isDataSetName: Bool {
        guard let data else { return false }
        return Dataset.builtInNames.contains(data) && !FileManager.default.fileExists(atPath: data)
    }

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be >= 1 (got \(count))") }
        if data != nil, count != nil, !isDataSetName {
            throw ValidationError("--count is for the model's own samples or a built-in data set; with a --data file the count is the number of rows of the file")
        }
    }

    /// "x.npy", "digits", or "exact samples of ring, seed 0": for stats files.
    func source(_ model: DataModel, seed: UInt64) -> String {
        if let data { return isDataSetName && count != nil ? "\(data) (\(count!) points, seed \(seed))" : data }
        return "exact samples of \(model.name), seed \(seed)"
    }

    /// "from x.npy", or "drawn from ring (seed 0)": for summaries.
    func origin(_ model: DataModel, seed: UInt64) -> String {
        data.map { "from \($0)" } ?? "drawn from \(model.name) (seed \(seed))"
    }

    /// The rows in data space, checked against the model: the file's, the data set's (`count` of
    /// them drawn with `seed`), or `count` exact samples of a mixture drawn with `rng` (one draw).
    func load(for model: DataModel, seed: UInt64, using rng: inout RandomSource) throws -> Tensor {
        if let data {
            if isDataSetName {
                let set = try Dataset.named(data, count: count, seed: seed)
                return try model.checkRows(set.data, what: "--data \(data)")
            }
            return try model.readRows(data, option: "--data")
        }
        switch model.source {
        case .mixture(let m): return m.sample(count: count ?? Self.defaultCount, using: &rng)
        case .learned:
            throw ScoreSDEError.invalidArgument("the learned model \(model.name) has no exact samples to use as data; give --data: a .npy of shape [n, \(model.rowShape.map(String.init).joined(separator: ", "))] in data space, or a built-in data set (\(Dataset.builtInNames.joined(separator: ", ")))")
        }
    }
}

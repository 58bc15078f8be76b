import ArgumentParser

/// `--output`, `--stats`, `--png`: the files of a sampling command (`sample`, `inpaint`,
/// `colorize`, `reconstruct`), declared once.
struct OutputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Write the samples as a float64 .npy in data space, shape [count, ...] (inpaint, colorize, reconstruct: [n*k, ...], rows i*k ..< (i+1)*k belong to input i).", valueName: "path"))
    var output: String?

    @Option(help: ArgumentHelp("Write the cost (nfe, wall_seconds), the results and every setting as JSON.", valueName: "path"))
    var stats: String?

    @Option(help: ArgumentHelp("Write the picture here. Without --png it goes to the command's default file unless --output is given; --stats does not change that.", valueName: "path"))
    var png: String?

    /// The files, checked before any work; the picture goes to `defaultPNG` unless `--png` or `--output` is given.
    func files(defaultPNG: String) throws -> SampleOutputs {
        try SampleOutputs(output: output, stats: stats, png: png, defaultPNG: defaultPNG)
    }
}

import ArgumentParser
import Foundation

/// `scoresde`: the command-line front end of ScoreSDE. Each subcommand is a nested type in its own
/// file; the option groups they share live in `Options/`, the plumbing (outputs, progress, plots)
/// in `Support/`. Names (of SDEs, predictors, ...) exist only here, as `String` enums that map to
/// library values with an exhaustive `switch`.
@main
struct ScoreSDECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scoresde",
        abstract: "Score-based generative modelling through SDEs.",
        usage: "scoresde [<subcommand>] [<options>]",
        discussion: """
            With no subcommand, `sample` runs: `scoresde` alone samples the built-in 2-D ring with \
            the predictor-corrector sampler and writes samples.png in the current directory.

            Every subcommand prints its full reference with --help. Shell completions: \
            `scoresde --generate-completion-script bash|zsh|fish`; `make install` installs them with \
            the man page.
            """,
        version: ScoreSDECommand.version,
        subcommands: [Sample.self, Encode.self, LogLikelihood.self, Train.self, TrainClassifier.self, Inpaint.self, Colorize.self, Reconstruct.self],
        defaultSubcommand: Sample.self
    )

    /// The version `scoresde --version` prints (of the package; bumped with each release).
    static let version = "0.9.0"

    /// The entry point: picks OpenBLAS's kernels for this CPU (see ``OpenBLASCoreType``), then
    /// runs ArgumentParser's `main`.
    static func main() {
        OpenBLASCoreType.selectAndReexecIfNeeded()
        #if SCORESDE_MPI
        MPIMain.main()   // scoresde-mpi: one rank of an MPI job (Sources/scoresde-mpi)
        #else
        main(nil)
        #endif
    }
}

/// Debian's OpenBLAS (a DYNAMIC_ARCH build) misdetects the CPU of some machines, this one
/// included, and falls back to its slow generic kernels; the learned models' matrix products
/// (training above all) then run several times slower. OpenBLAS reads `OPENBLAS_CORETYPE` once,
/// when the library is loaded — before any Swift code runs — so setting it from inside the
/// process is too late. Instead, when `OPENBLAS_CORETYPE` is unset and `/proc/cpuinfo` lists
/// `avx512f` (→ `SkylakeX`) or `avx2` (→ `Haswell`), ``selectAndReexecIfNeeded()`` sets it and
/// re-executes `/proc/self/exe` with the same arguments (`execv` keeps the process id, the open
/// files and the working directory); the new image finds the variable set and goes on normally.
/// A user's own `OPENBLAS_CORETYPE` is never changed, and when anything fails (no
/// `/proc/cpuinfo`, no AVX2, `execv` refused) the program simply continues with what OpenBLAS chose.
/// Results do not depend on this beyond floating-point rounding of the matrix products.
enum OpenBLASCoreType {
    static let variable = "OPENBLAS_CORETYPE"

    /// The OpenBLAS core type for the CPU flags in `cpuinfo` (the text of `/proc/cpuinfo`), if any.
    static func coreType(cpuinfo: String) -> String? {
        guard let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let list = line.split(separator: ":", maxSplits: 1).last else { return nil }
        let flags = Set(list.split(separator: " "))
        if flags.contains("avx512f") { return "SkylakeX" }
        if flags.contains("avx2") { return "Haswell" }
        return nil
    }

    static func selectAndReexecIfNeeded() {
        #if os(Linux)
        guard getenv(variable) == nil,
              let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let core = coreType(cpuinfo: info) else { return }
        setenv(variable, core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Only reached when execv failed: continue in this process (the variable is set but too late).
        #endif
    }
}

import ArgumentParser
import Foundation
import ScoreSDE

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
        subcommands: [Sample.self, Encode.self, LogLikelihood.self, Train.self, TrainClassifier.self, Inpaint.self, Colorize.self, Reconstruct.self, Evaluate.self],
        defaultSubcommand: Sample.self
    )

    /// The version `scoresde --version` prints: the package's (``ScoreSDEVersion``).
    static let version = ScoreSDEVersion.string

    /// The entry point: ArgumentParser's `main` (under MPI, one rank's).
    static func main() {
        #if SCORESDE_MPI
        MPIMain.main()   // scoresde-mpi: one rank of an MPI job (Sources/scoresde-mpi)
        #else
        main(nil)
        #endif
    }
}

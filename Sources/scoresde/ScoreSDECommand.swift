import ArgumentParser

/// `scoresde`: the command-line front end of ScoreSDE. Each subcommand is a nested type in its own
/// file; the option groups they share live in `Options/`, the plumbing (outputs, progress, plots)
/// in `Support/`. Names (of SDEs, predictors, ...) exist only here, as `String` enums that map to
/// library values with an exhaustive `switch`.
@main
struct ScoreSDECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scoresde",
        abstract: "Score-based generative modelling through SDEs.",
        discussion: """
            With no subcommand, `sample` runs: `scoresde` alone samples the built-in 2-D ring with \
            the predictor-corrector sampler and writes samples.png in the current directory.
            """,
        subcommands: [Sample.self, Encode.self, LogLikelihood.self],
        defaultSubcommand: Sample.self
    )
}

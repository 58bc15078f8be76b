import ArgumentParser

@main
struct ScoreSDECommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scoresde", abstract: "Score-based generative modelling through SDEs.")
}

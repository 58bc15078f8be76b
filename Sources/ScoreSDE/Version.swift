/// The package's version: the `scoresde --version` output, the README's dependency line
/// (`.package(url: …, from: "<version>")`) and the git tag a release is cut with all name it
/// (README, "Releases"; a test checks that the three agree).
public enum ScoreSDEVersion {
    public static let string = "0.11.0"
}

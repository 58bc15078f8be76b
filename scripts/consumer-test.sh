#!/usr/bin/env bash
# A package outside the project that depends on ScoreSDE *by URL and version*, with exactly the
# README's dependency lines (between the dependency-line markers; only the URL is replaced by a
# local git copy of this tree, tagged with the README's version), builds, and runs the README's
# custom-sampler example. It also checks that the README's version is the library's
# (ScoreSDEVersion.string, which `scoresde --version` prints). SwiftPM refuses a versioned
# dependency whose products use unsafe build flags, so this also guards the package's build settings.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/scoresde-consumer.XXXXXX")"
trap 'rm -rf "$work"' EXIT

lines="$(awk '/<!-- dependency-line:begin -->/{on=1; next} /<!-- dependency-line:end -->/{on=0} on' "$root/README.md" | grep -E '^(dependencies|targets):')"
[ "$(printf '%s\n' "$lines" | wc -l)" -eq 2 ] || { echo "consumer-test: README dependency lines not found" >&2; exit 1; }
version="$(printf '%s\n' "$lines" | sed -n 's/.*from: "\([0-9][0-9.]*\)".*/\1/p')"
library="$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' "$root/Sources/ScoreSDE/Version.swift")"
[ -n "$version" ] && [ "$version" = "$library" ] || {
  echo "consumer-test: the README's dependency line names version '$version' but ScoreSDEVersion.string is '$library'" >&2; exit 1; }
url="$(printf '%s\n' "$lines" | sed -n 's/.*url: "\([^"]*\)".*/\1/p')"
name="$(basename "$url")"   # ScoreSDE.swift: the package identity the README's product line names

# The package as it is in this working tree (tracked and new files, not ignored ones), tagged $version.
mkdir -p "$work/$name"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar cf - 2>/dev/null) | tar xf - -C "$work/$name"
git -C "$work/$name" init -q
git -C "$work/$name" add -A
git -C "$work/$name" -c user.name=consumer-test -c user.email=consumer@localhost commit -qm snapshot
git -C "$work/$name" tag "$version"

# The consumer: the README's example (between the consumer-example markers), plus a check.
mkdir -p "$work/Consumer/Sources/Consumer"
cat > "$work/Consumer/Package.swift" <<SWIFT
// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Consumer",
$(printf '%s\n' "$lines" | sed "s|$url|file://$work/$name|; s|\"MyTool\"|\"Consumer\"|; s|^|    |")
)
// The README's few-step and one-solve examples: more executables with the same dependency.
package.targets.append(.executableTarget(name: "FewStepConsumer", dependencies: package.targets[0].dependencies))
package.targets.append(.executableTarget(name: "SolveConsumer", dependencies: package.targets[0].dependencies))
SWIFT
awk '/<!-- consumer-example:begin -->/{on=1; next} /<!-- consumer-example:end -->/{on=0} on' "$root/README.md" \
  | sed '/^```/d' > "$work/Consumer/Sources/Consumer/main.swift"
grep -q "PCSampler" "$work/Consumer/Sources/Consumer/main.swift" || { echo "consumer-test: README example not found" >&2; exit 1; }
cat >> "$work/Consumer/Sources/Consumer/main.swift" <<'SWIFT'

// The check: the 8 modes of the ring are equally likely; 5 binomial standard errors.
let ring = GaussianMixture.ring()
var weights = [Double](repeating: 0, count: ring.componentCount)
for k in ring.assignments(run.samples) { weights[k] += 1 / Double(run.samples.rows) }
let se = (0.125 * 0.875 / Double(run.samples.rows)).squareRoot()
let worst = weights.map { abs($0 - 0.125) }.max()!
print("consumer: NFE \(run.scoreEvaluations), mode weights \(weights.map { String(format: "%.3f", $0) }), worst error \(worst) (5 SE = \(5 * se))")
if worst > 5 * se || run.scoreEvaluations != 299 { fatalError("consumer: FAILED") }
SWIFT
# The README's few-step predictor, built from the public pieces: it must give the library's bytes.
mkdir -p "$work/Consumer/Sources/FewStepConsumer"
awk '/<!-- consumer-fewstep:begin -->/{on=1; next} /<!-- consumer-fewstep:end -->/{on=0} on' "$root/README.md" \
  | sed '/^```/d' > "$work/Consumer/Sources/FewStepConsumer/main.swift"
grep -q "MyDPMSolver2M" "$work/Consumer/Sources/FewStepConsumer/main.swift" || { echo "consumer-test: README few-step example not found" >&2; exit 1; }
cat >> "$work/Consumer/Sources/FewStepConsumer/main.swift" <<'SWIFT'
if mine.samples != library.samples || mine.scoreEvaluations != 10 { fatalError("consumer: the README's DPM-Solver++(2M) does not give the library's bytes") }
print("consumer: the README's DPM-Solver++(2M), written from public pieces, gives DPMSolverPlusPlus(order: 2)'s bytes")
SWIFT
# The README's one-solve example: every algorithm through `solve`, each sampling the ring's 8 equally
# likely modes (5 binomial standard errors), NFE as each method costs it.
mkdir -p "$work/Consumer/Sources/SolveConsumer"
awk '/<!-- consumer-solve:begin -->/{on=1; next} /<!-- consumer-solve:end -->/{on=0} on' "$root/README.md" \
  | sed '/^```/d' > "$work/Consumer/Sources/SolveConsumer/main.swift"
grep -q "ReverseProblem" "$work/Consumer/Sources/SolveConsumer/main.swift" || { echo "consumer-test: README solve example not found" >&2; exit 1; }
cat >> "$work/Consumer/Sources/SolveConsumer/main.swift" <<'SWIFT'
let ring = GaussianMixture.ring()
for run in runs {
    var weights = [Double](repeating: 0, count: ring.componentCount)
    for k in ring.assignments(run.samples) { weights[k] += 1 / Double(run.samples.rows) }
    let se = (0.125 * 0.875 / Double(run.samples.rows)).squareRoot()
    let worst = weights.map { abs($0 - 0.125) }.max()!
    if worst > 5 * se { fatalError("consumer: \(run.algorithm) mode weights \(weights) off by \(worst) > 5 SE") }
}
if runs.map(\.scoreEvaluations)[0 ... 2] != [400, 20, 20] { fatalError("consumer: fixed-grid NFE \(runs.map(\.scoreEvaluations))") }
print("consumer: the README's solve(problem, algorithm) ran \(runs.count) algorithms, every one sampling the ring's modes")
SWIFT
cd "$work/Consumer"
swift build 2>&1 | tail -3          # a debug build: it compiles fastest, and the example is small
swift run --skip-build Consumer
swift run --skip-build FewStepConsumer
swift run --skip-build SolveConsumer
echo "consumer-test: a package depending on ScoreSDE $version by URL (the README's lines) built and sampled correctly"

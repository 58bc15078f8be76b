#!/usr/bin/env bash
# A package outside the project that depends on ScoreSDE *by URL and version* (a local git
# repository with a tag, `.package(url: "file://…", from: "1.0.0")`), builds, and runs the README's
# custom-sampler example. SwiftPM refuses a versioned dependency whose products use unsafe build
# flags, so this also guards the package's build settings.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/scoresde-consumer.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The package as it is in this working tree (tracked and new files, not ignored ones), tagged 1.0.0.
mkdir -p "$work/ScoreSDE"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar cf - 2>/dev/null) | tar xf - -C "$work/ScoreSDE"
git -C "$work/ScoreSDE" init -q
git -C "$work/ScoreSDE" add -A
git -C "$work/ScoreSDE" -c user.name=consumer-test -c user.email=consumer@localhost commit -qm snapshot
git -C "$work/ScoreSDE" tag 1.0.0

# The consumer: the README's example (between the consumer-example markers), plus a check.
mkdir -p "$work/Consumer/Sources/Consumer"
cat > "$work/Consumer/Package.swift" <<SWIFT
// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Consumer",
    dependencies: [
        .package(url: "file://$work/ScoreSDE", from: "1.0.0"),
    ],
    targets: [
        .executableTarget(name: "Consumer", dependencies: [.product(name: "ScoreSDE", package: "ScoreSDE")]),
    ]
)
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
cd "$work/Consumer"
swift build 2>&1 | tail -3          # a debug build: it compiles fastest, and the example is small
swift run --skip-build Consumer
echo "consumer-test: a package depending on ScoreSDE 1.0.0 by URL built and sampled correctly"

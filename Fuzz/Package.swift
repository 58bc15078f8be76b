// swift-tools-version:6.1
// libFuzzer targets for every parser of untrusted input. A package of its own, so that the normal
// build and `make test` never see it; built and run by `make fuzz` (see scripts/fuzz.sh):
//
//     swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address
//     Fuzz/.build/release/FuzzNpy Fuzz/Corpus/FuzzNpy -max_total_time=60
import PackageDescription

let targets = ["FuzzNpy", "FuzzSafetensors", "FuzzPNG", "FuzzMixture", "FuzzMixing", "FuzzCheckpoint", "FuzzMeasurement", "FuzzIDX"]

let package = Package(
    name: "ScoreSDEFuzz",
    dependencies: [.package(name: "ScoreSDE", path: "..")],
    targets: targets.map {
        .executableTarget(name: $0, dependencies: [.product(name: "ScoreSDE", package: "ScoreSDE")], path: "Sources/\($0)")
    },
    swiftLanguageModes: [.v5]
)

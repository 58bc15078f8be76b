// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "ScoreSDE",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "ScoreSDE", targets: ["ScoreSDE"]),
        .executable(name: "scoresde", targets: ["scoresde"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
    ],
    targets: [
        // MARK: - Public API
        .target(
            name: "ScoreSDE",
            dependencies: [
                "CGSL", "CPNG",
                .product(name: "Numerics", package: "swift-numerics"),
            ],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "scoresde",
            dependencies: [
                "ScoreSDE",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - Implementation details (C libraries from Debian, see scripts/setup.sh)
        .systemLibrary(name: "CGSL", pkgConfig: "gsl", providers: [.apt(["libgsl-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),

        // MARK: - Benchmarks (release build: `swift run -c release scoresde-bench`)
        .executableTarget(
            name: "scoresde-bench",
            dependencies: ["ScoreSDE"],
            path: "Benchmarks"
        ),

        // MARK: - Tests
        .testTarget(name: "ScoreSDETests", dependencies: ["ScoreSDE"]),
        .testTarget(name: "CLITests", dependencies: ["ScoreSDE"]),
    ],
    swiftLanguageModes: [.v5]
)

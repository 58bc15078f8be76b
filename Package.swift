// swift-tools-version:6.1
import PackageDescription
import Foundation

/// Release builds use AVX2 + FMA when the building machine has them (the solver kernels and the
/// mixture score are SIMD code); `SCORESDE_PORTABLE=1` builds for baseline x86-64.
let nativeFlags: [String] = {
    let env = ProcessInfo.processInfo.environment
    guard env["SCORESDE_PORTABLE"] == nil,
          let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
          flags.contains(" avx2"), flags.contains(" fma") else { return [] }
    return ["-target-cpu", "haswell"]
}()

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
                "CGSL", "CPNG", "COpenBLAS",
                .product(name: "Numerics", package: "swift-numerics"),
            ],
            resources: [.copy("Resources")],
            swiftSettings: [.unsafeFlags(["-Ounchecked"] + nativeFlags, .when(configuration: .release))]
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
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // MARK: - Benchmarks (release build: `swift run -c release scoresde-bench`)
        .executableTarget(
            name: "scoresde-bench",
            dependencies: ["ScoreSDE"],
            path: "Benchmarks"
        ),

        // MARK: - Examples (release build: `swift run -c release Toy2D --output toy2d.png`)
        .executableTarget(
            name: "Toy2D",
            dependencies: ["ScoreSDE", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Toy2D"
        ),
        .executableTarget(
            name: "Digits",
            dependencies: ["ScoreSDE", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Digits"
        ),
        .executableTarget(
            name: "CustomSampler",
            dependencies: ["ScoreSDE", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/CustomSampler"
        ),
        .executableTarget(
            name: "Inpainting",
            dependencies: ["ScoreSDE", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Inpainting"
        ),
        .executableTarget(
            name: "Colorization",
            dependencies: ["ScoreSDE", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Colorization"
        ),
        .executableTarget(
            name: "PosteriorComparison",
            dependencies: ["ScoreSDE", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/PosteriorComparison"
        ),

        // MARK: - Tests
        .testTarget(name: "ScoreSDETests", dependencies: ["ScoreSDE"]),
        .testTarget(name: "CLITests", dependencies: ["ScoreSDE"]),
    ],
    swiftLanguageModes: [.v5]
)

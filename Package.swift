// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "ScoreSDE",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "ScoreSDE", targets: ["ScoreSDE"]),
        // Figures (scatter plots, image grids, text) for the CLI, the Examples and your own tools.
        .library(name: "ScoreSDEPlot", targets: ["ScoreSDEPlot"]),
        .executable(name: "scoresde", targets: ["scoresde"]),
        // Optional scale-out (README, "Scale-out with MPI"): builds everywhere, runs across ranks
        // only where Open MPI (libopenmpi-dev) was found at build time. `scoresde` never links MPI.
        .library(name: "ScoreSDEMPI", targets: ["ScoreSDEMPI"]),
        .executable(name: "scoresde-mpi", targets: ["scoresde-mpi"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        // Documentation only (`make docs`): adds `swift package generate-documentation`.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // MARK: - Public API
        .target(
            name: "ScoreSDE",
            dependencies: [
                "CGSL", "CPNG", "COpenBLAS", "CKernels", "CZlib", "CDNNL",
                .product(name: "Numerics", package: "swift-numerics"),
            ],
            resources: [.copy("Resources")]
        ),
        // A tiny rasterizer (Plot: scatter plots, image grids, titles, its bitmap font); PNG stays in ScoreSDE.
        .target(name: "ScoreSDEPlot", dependencies: ["ScoreSDE"]),
        .executableTarget(
            name: "scoresde",
            dependencies: [
                "ScoreSDE", "ScoreSDEPlot",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - MPI (optional; see README "Scale-out with MPI")
        .target(name: "ScoreSDEMPI", dependencies: ["ScoreSDE", "CMPI"]),
        // The CLI's own sources (Sources/scoresde-mpi/CLI links to Sources/scoresde), started by MPIMain.
        .executableTarget(
            name: "scoresde-mpi",
            dependencies: [
                "ScoreSDE", "ScoreSDEPlot", "ScoreSDEMPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.define("SCORESDE_MPI")]
        ),
        // Open MPI's headers and -lmpi come from pkg-config ompi-c; without them the shim compiles to stubs.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),

        // MARK: - Implementation details
        // Hot loops in C with run-time CPU dispatch (per-function target attributes; no build flags).
        .target(name: "CKernels"),
        // C libraries from Debian, see scripts/setup.sh
        .systemLibrary(name: "CGSL", pkgConfig: "gsl", providers: [.apt(["libgsl-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // gzip (the IDX files of Fashion-MNIST) through zlib's inflate, never a hand-written one.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // oneDNN 2.6 (convolutions and GEMM of the float32 image networks); Debian ships no .pc for it.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),

        // MARK: - Benchmarks (release build: `swift run -c release scoresde-bench`)
        .executableTarget(
            name: "scoresde-bench",
            dependencies: ["ScoreSDE", "ScoreSDEPlot"],
            path: "Benchmarks",
            exclude: ["peers", "results"]      // PyTorch peer scripts; kept partial results of long runs
        ),

        // MARK: - Examples (release build: `swift run -c release Toy2D --output toy2d.png`)
        .executableTarget(
            name: "Toy2D",
            dependencies: ["ScoreSDE", "ScoreSDEPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Toy2D"
        ),
        .executableTarget(
            name: "Digits",
            dependencies: ["ScoreSDE", "ScoreSDEPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Digits"
        ),
        .executableTarget(
            name: "CustomSampler",
            dependencies: ["ScoreSDE", "ScoreSDEPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/CustomSampler"
        ),
        .executableTarget(
            name: "Inpainting",
            dependencies: ["ScoreSDE", "ScoreSDEPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Inpainting"
        ),
        .executableTarget(
            name: "Colorization",
            dependencies: ["ScoreSDE", "ScoreSDEPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Colorization"
        ),
        .executableTarget(
            name: "ClassConditional",
            dependencies: ["ScoreSDE", "ScoreSDEPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/ClassConditional"
        ),
        .executableTarget(
            name: "PosteriorComparison",
            dependencies: ["ScoreSDE", "ScoreSDEPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/PosteriorComparison"
        ),
        .executableTarget(
            name: "FewStep",
            dependencies: ["ScoreSDE", "ScoreSDEPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/FewStep"
        ),
        .executableTarget(
            name: "Fashion",
            dependencies: ["ScoreSDE", "ScoreSDEPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/Fashion"
        ),

        // MARK: - Tests
        .testTarget(name: "ScoreSDETests", dependencies: ["ScoreSDE", "ScoreSDEPlot"]),
        .testTarget(name: "CLITests", dependencies: ["ScoreSDE", "ScoreSDEPlot"]),
    ],
    swiftLanguageModes: [.v5]
)

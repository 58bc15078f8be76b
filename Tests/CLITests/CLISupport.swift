import Foundation
import ScoreSDE
import Testing

/// The built `scoresde` executable: `$SCORESDE_BIN` if set, else the one next to the test bundle
/// (`.build/<config>/scoresde`, which `swift build --build-tests` and `swift test` both build).
let scoresdeExecutable: URL? = {
    let fm = FileManager.default
    if let override = ProcessInfo.processInfo.environment["SCORESDE_BIN"], fm.isExecutableFile(atPath: override) {
        return URL(fileURLWithPath: override)
    }
    var directories = [URL]()
    if let exe = Bundle.main.executableURL { directories.append(exe.deletingLastPathComponent()) }
    if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        directories.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    for bundle in [Bundle.main] + Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
        directories.append(bundle.bundleURL.deletingLastPathComponent())   // macOS: .build/<config>/X.xctest
    }
    directories.append(Bundle.main.bundleURL)
    for directory in directories {
        let candidate = directory.appendingPathComponent("scoresde")
        if fm.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    return nil
}()

/// Whether this (and so the `scoresde` built with it) is an optimized build.
let isOptimizedBuild: Bool = {
    #if DEBUG
    return false
    #else
    return true
    #endif
}()

/// What a run of `scoresde` did.
struct CommandResult: CustomStringConvertible {
    let status: Int32
    let stdout: String
    let stderr: String
    var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// A fresh empty directory that a test runs `scoresde` in; removed when the value goes away.
final class Workspace {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// The path of `name` inside the workspace.
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// The names of the files in the workspace, sorted.
    func files() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted()
    }

    func write(_ text: String, to name: String) throws {
        try Data(text.utf8).write(to: url.appendingPathComponent(name))
    }

    func write(_ data: Data, to name: String) throws {
        try data.write(to: url.appendingPathComponent(name))
    }

    func data(_ name: String) throws -> Data { try Data(contentsOf: url.appendingPathComponent(name)) }

    /// The JSON object in `name`.
    func json(_ name: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data(name)) as? [String: Any])
    }

    /// Runs `scoresde` with `arguments` in this directory. Output goes through files, not pipes,
    /// so a chatty process can never block on a full pipe.
    func run(_ arguments: [String]) throws -> CommandResult {
        let executable = try #require(scoresdeExecutable, "scoresde not found next to the test bundle; build it first (swift build --build-tests)")
        return try run(executable, arguments)
    }

    /// Runs `executable` with `arguments` in this directory, output through files.
    func run(_ executable: URL, _ arguments: [String]) throws -> CommandResult {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = url
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-cli-out-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: capture, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: capture) }
        let out = capture.appendingPathComponent("stdout"), err = capture.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: out), errHandle = try FileHandle(forWritingTo: err)
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        return CommandResult(status: process.terminationStatus,
                             stdout: String(decoding: try Data(contentsOf: out), as: UTF8.self),
                             stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self))
    }
}

/// Checks samples of the built-in ring (8 modes of weight 1/8 at radius 4, std 0.25) against the
/// law of the ring diffused to a small eps (std 0.2500–0.2502, mean scale within 0.1% of 1): each
/// sample is assigned to its nearest mode (modes are 12σ apart, so the assignment errs with
/// probability < 1e-9); every mode's count is within 5 binomial standard errors of n/8, and the mean
/// of ‖x − μ_k‖²/σ² (a χ²₂ variable: mean 2, variance 4) is within 5 · 2/√n of 2 plus
/// `varianceBias` · 2 (a sampler's stated relative variance bias). A sampler with 2.25× the
/// variance gives 4.5, far outside (the old "within 1 of radius 4" check let it through).
/// Returns the violations (empty: the samples pass).
func ringViolations(_ x: Tensor, varianceBias: Double) -> [String] {
    let n = Double(x.rows), sigma2 = 0.0625
    let means: [[Double]] = (0 ..< 8).map { (k: Int) -> [Double] in
        let a: Double = 2 * Double.pi * Double(k) / 8
        return [4 * cos(a), 4 * sin(a)]
    }
    var counts = [Double](repeating: 0, count: 8), chi2 = 0.0
    for r in 0 ..< x.rows {
        let a = x.storage[r * 2], b = x.storage[r * 2 + 1]
        let d2: [Double] = means.map { (m: [Double]) -> Double in (a - m[0]) * (a - m[0]) + (b - m[1]) * (b - m[1]) }
        let k = d2.indices.min { d2[$0] < d2[$1] }!
        counts[k] += 1; chi2 += d2[k] / sigma2
    }
    var out = [String]()
    let tolCount = 5 * (n * 0.125 * 0.875).squareRoot()
    for k in 0 ..< 8 where abs(counts[k] - n / 8) > tolCount { out.append("mode \(k): \(Int(counts[k])) samples vs \(n / 8) ± \(tolCount)") }
    let meanChi2 = chi2 / n, tol = 5 * 2 / n.squareRoot() + 2 * varianceBias
    if abs(meanChi2 - 2) > tol { out.append("mean ‖x − μ‖²/σ² \(meanChi2) vs 2 ± \(tol)") }
    return out
}

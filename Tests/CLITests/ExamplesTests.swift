import Foundation
import ScoreSDE
import Testing

/// The built example executable `name` (`Toy2D`, `Digits`, `CustomSampler`), found where
/// `scoresde` is (next to the test bundle: `swift build --build-tests` builds them all).
func exampleExecutable(_ name: String) -> URL? {
    let fm = FileManager.default
    var directories = [URL]()
    if let scoresde = scoresdeExecutable { directories.append(scoresde.deletingLastPathComponent()) }
    if let exe = Bundle.main.executableURL { directories.append(exe.deletingLastPathComponent()) }
    if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        directories.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    for bundle in [Bundle.main] + Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
        directories.append(bundle.bundleURL.deletingLastPathComponent())
    }
    directories.append(Bundle.main.bundleURL)
    return directories.map { $0.appendingPathComponent(name) }.first { fm.isExecutableFile(atPath: $0.path) }
}

extension Workspace {
    /// Runs the example `name` with `arguments` in this directory (output through files, as `run`).
    func runExample(_ name: String, _ arguments: [String]) throws -> CommandResult {
        let executable = try #require(exampleExecutable(name), "example \(name) not found next to the test bundle; build it first (swift build --build-tests)")
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = url
        let out = url.appendingPathComponent(".\(name).stdout"), err = url.appendingPathComponent(".\(name).stderr")
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
        defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
        return CommandResult(status: process.terminationStatus,
                             stdout: String(decoding: try Data(contentsOf: out), as: UTF8.self),
                             stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self))
    }
}

/// The size `Plot.titled` gives an image of `width × height` (the title band depends on the width).
func titledSize(_ width: Int, _ height: Int) throws -> (width: Int, height: Int) {
    let image = Plot.titled(try RasterImage(width: width, height: height, channels: 3), "title")
    return (image.width, image.height)
}

/// The size of `Plot.imageGrid` for `n` 8 × 8 images at `scale`, padding 2, near-square.
func digitGridSize(_ n: Int, scale: Int) -> (width: Int, height: Int) {
    let cols = min(Int(Double(n).squareRoot().rounded(.up)), n), rows = (n + cols - 1) / cols
    return (cols * 8 * scale + (cols + 1) * 2, rows * 8 * scale + (rows + 1) * 2)
}

/// Each example runs end to end with small settings, exits 0 and writes the PNG it promises,
/// so that the examples in the README cannot silently rot.
@Suite(.serialized) struct ExamplesTests {
    @Test func toy2DTrainsSamplesFourWaysAndPlots() throws {
        let ws = try Workspace()
        let r = try ws.runExample("Toy2D", ["--output", "toy.png", "--train-steps", "100", "--steps", "30", "--count", "200"])
        #expect(r.status == 0, "\(r)")
        let image = try PNG.read(ws.path("toy.png"))
        // Five titled 320-pixel scatter panels (four samplers and the data), 8 pixels apart.
        let panel = try titledSize(320, 320)
        #expect(image.width == 5 * panel.width + 4 * 8 && image.height == panel.height, "got \(image.width)x\(image.height)")
        for name in ["Euler-Maruyama", "Reverse diffusion + Langevin", "Ancestral", "Probability-flow ODE"] {
            #expect(r.stdout.contains(name), "\(r)")
        }
        #expect(r.stdout.components(separatedBy: "sliced W2").count - 1 == 5, "four samplers and the floor: \(r)")
        #expect(r.stdout.contains("NFE 30 ") && r.stdout.contains("NFE 60 "), "PC NFE: steps, 2 x steps with Langevin: \(r)")
    }

    @Test func digitsSamplesAGridAndReportsBitsPerDim() throws {
        let ws = try Workspace()
        let r = try ws.runExample("Digits", ["--output", "digits.png", "--count", "6", "--steps", "30", "--likelihood-count", "4"])
        #expect(r.status == 0, "\(r)")
        let image = try PNG.read(ws.path("digits.png"))
        let grid = digitGridSize(6, scale: 6), expected = try titledSize(grid.width, grid.height)
        #expect(image.width == expected.width && image.height == expected.height, "got \(image.width)x\(image.height)")
        #expect(r.stdout.contains("NFE 60"), "\(r)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("bits/dim: ") }, "\(r)")
        let bpd = try #require(Double(line.dropFirst("bits/dim: ".count).prefix { $0 != " " }), "\(line)")
        #expect(bpd.isFinite && bpd > 0, "\(line)")
    }

    @Test func customSamplerRunsUserTypesOnTheRingAndDigits() throws {
        let ws = try Workspace()
        let r = try ws.runExample("CustomSampler", ["--output", "custom.png", "--steps", "30", "--count", "512", "--digits", "4"])
        #expect(r.status == 0, "\(r)")
        let image = try PNG.read(ws.path("custom.png"))
        let ring = try titledSize(384, 384), g = digitGridSize(4, scale: 5), digits = try titledSize(g.width, g.height)
        #expect(image.width == ring.width + 8 + digits.width && image.height == max(ring.height, digits.height),
                "got \(image.width)x\(image.height)")
        // Heun: 2 NFE per step but 1 on the last (to t = 0); the corrector: 1 per step.
        #expect(r.stdout.contains("NFE \(3 * 30 - 1)"), "\(r)")
        let weights = try #require(r.stdout.split(separator: "\n").first { $0.contains("mode weights:") }, "\(r)")
        let values = weights.split(separator: ":")[1].split(separator: " ").compactMap { Double($0) }
        #expect(values.count == 8 && abs(values.reduce(0, +) - 1) < 0.01, "\(weights)")
    }

    @Test func examplesRejectBadSettingsBeforeWork() throws {
        let ws = try Workspace()
        for (name, args) in [("Toy2D", ["--count", "1"]), ("Toy2D", ["--steps", "20"]), ("Digits", ["--likelihood-count", "1000"]),
                             ("CustomSampler", ["--steps", "0"])] {
            let r = try ws.runExample(name, args + ["--output", "x.png"])
            #expect(r.status != 0, "\(name) \(args): \(r)")
            #expect(!r.stderr.isEmpty, "\(name) \(args): \(r)")
            #expect(!FileManager.default.fileExists(atPath: ws.path("x.png")), "\(name) \(args) wrote a file")
        }
    }
}

import Foundation
import ScoreSDE
import Testing

/// What a new user meets first (issue 19): the likelihood of a learned model with a data scaling
/// against a closed form, the version the README's dependency line names, help text that describes
/// the pictures, errors that name the choices, class-list defaults and progress on a non-terminal.
@Suite struct FirstRunTests {
    // MARK: - Likelihood of a scaled model, against closed form

    /// A 3-D model whose network is silent (output layer zero) and whose Gaussian base is
    /// `N(μ, diag λ)` in model space: its score is the exact score of that Gaussian diffused by the
    /// VP SDE (``MLPScore`` documents the base), so every density below is known in closed form.
    static let mu = [0.3, -0.5, 1.1], lambda = [0.04, 0.25, 0.6]
    static let scale = 0.25, shift = -1.0

    static func gaussianModel() throws -> MLPScore {
        let arch = MLPArchitecture(rowShape: [3], hiddenWidth: 8, residualBlocks: 1, fourierFeatures: 4, gaussianBase: true)
        let model = try MLPScore(architecture: arch, sde: .vp(betaMin: 0.1, betaMax: 20),
                                 dataScaling: try DataScaling(scale: scale, shift: shift), seed: 3)
        var p = model.parameters
        for spec in arch.parameterSpecs {
            switch spec.name {
            case "base.mean": for (i, j) in spec.range.enumerated() { p[j] = mu[i] }
            case "base.eigenvectors": for (i, j) in spec.range.enumerated() { p[j] = i % 4 == 0 ? 1 : 0 }   // I (3 × 3)
            case "base.eigenvalues": for (i, j) in spec.range.enumerated() { p[j] = lambda[i] }
            default: if spec.name.hasPrefix("output.") { for j in spec.range { p[j] = 0 } }
            }
        }
        return try model.withParameters(p)
    }

    /// VP(0.1, 20) marginal, written out here: log m(t) = −t²(βmax − βmin)/4 − t βmin/2, s² = 1 − m².
    static func marginal(_ t: Double) -> (m: Double, v: [Double]) {
        let m = exp(-0.25 * t * t * (20 - 0.1) - 0.5 * t * 0.1)
        return (m, lambda.map { m * m * $0 + (1 - m * m) })
    }

    static func logNormal(_ x: Double, mean: Double, variance: Double) -> Double {
        -0.5 * ((x - mean) * (x - mean) / variance + log(2 * Double.pi * variance))
    }

    /// Data-space log-density of `x` at time eps, computed directly in data space: the model-space
    /// Gaussian `N(m μ, v)` pushed through `x = (z − shift) / scale` is `N((m μ − shift)/scale, v/scale²)`.
    static func exactDataSpace(_ x: [Double], eps: Double) -> Double {
        let (m, v) = marginal(eps)
        return (0 ..< 3).reduce(0.0) { $0 + logNormal(x[$1], mean: (m * mu[$1] - shift) / scale, variance: v[$1] / (scale * scale)) }
    }

    /// What the probability flow gives with the SDE's prior N(0, I) at T instead of the exact p_T:
    /// the flow map of a Gaussian is affine, z_T = m_T μ + √(v_T / v_eps) (z − m_eps μ), so the
    /// prior mismatch log N(z_T; 0, 1) − log p_T(z_T) is closed form too.
    static func priorMismatch(_ x: [Double], eps: Double) -> Double {
        let (me, ve) = marginal(eps), (mT, vT) = marginal(1)
        return (0 ..< 3).reduce(0.0) { acc, j in
            let z = scale * x[j] + shift
            let zT = mT * mu[j] + (vT[j] / ve[j]).squareRoot() * (z - me * mu[j])
            return acc + logNormal(zT, mean: 0, variance: 1) - logNormal(zT, mean: mT * mu[j], variance: vT[j])
        }
    }

    static let rows: [[Double]] = [[5.2, 2.0, 8.1], [4.0, 1.1, 9.0], [6.3, 3.5, 7.2], [5.0, -0.4, 8.8], [5.5, 2.2, 10.4]]

    /// Library: with `.dataSpace(scaling)` and the exact p_T, the log-likelihood of data-space rows is
    /// the closed-form data-space density, and bits/dim are −log p / (D ln 2). The solver runs at
    /// 1e-10 tolerances; 1e-6 nats is far above its error and far below the D log|scale| = −4.16
    /// nats that a missing or doubled change of variables would make.
    @Test func libraryDataSpaceLikelihoodIsTheClosedForm() throws {
        let model = try Self.gaussianModel(), sde = try VPSDE(), eps = 1e-2
        let x = try Tensor(shape: [Self.rows.count, 3], storage: Self.rows.flatMap { $0 })
        let (mT, vT) = Self.marginal(1)
        let likelihood = Likelihood(
            sde: sde, score: model, estimator: .exact, eps: eps,
            solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-10, relativeTolerance: 1e-10),
            convention: .dataSpace(model.dataScaling),
            terminalLogDensity: { z in
                (0 ..< z.rows).map { r in (0 ..< 3).reduce(0.0) { $0 + Self.logNormal(z.storage[3 * r + $1], mean: mT * Self.mu[$1], variance: vT[$1]) } }
            })
        var rng = RandomSource(seed: 1)
        let r = try likelihood.evaluate(model.dataScaling.toModel(x), using: &rng)
        for (i, row) in Self.rows.enumerated() {
            let want = Self.exactDataSpace(row, eps: eps)
            let got = r.logLikelihood[i]
            #expect(abs(got - want) < 1e-6, "row \(i): \(got) vs closed form \(want)")
            #expect(abs(r.bitsPerDim[i] - (-want / (3 * M_LN2))) < 1e-6)
        }
    }

    /// `evaluateDequantized` is in data space whatever the `Likelihood`'s convention: the log-Jacobian
    /// is added once, never twice (the same rows under `.continuous` and `.dataSpace`, same bits).
    @Test func dequantizedLikelihoodAddsTheJacobianOnce() throws {
        let model = try Self.gaussianModel(), sde = try VPSDE()
        let levels = try Tensor(shape: [2, 3], storage: [5, 2, 8, 4, 1, 9])
        func run(_ convention: BitsPerDimConvention) throws -> [Double] {
            var rng = RandomSource(seed: 4)
            return try Likelihood(sde: sde, score: model, estimator: .exact, eps: 1e-2,
                                  solver: ODESolverOptions(.rkf45, absoluteTolerance: 1e-8, relativeTolerance: 1e-8), convention: convention)
                .evaluateDequantized(levels: levels, topLevel: 16, scaling: model.dataScaling, draws: 2, using: &rng).logLikelihood
        }
        #expect(try run(.dataSpace(model.dataScaling)) == run(.continuous))
    }

    /// CLI: `likelihood --model FILE --data x.npy` (data space) reports the closed-form data-space
    /// density plus the closed-form prior mismatch, per row and as the mean; the stats' components
    /// (terminal log-density, Δlog p, log-Jacobian) add up to the reported mean.
    @Test func commandDataSpaceLikelihoodIsTheClosedForm() throws {
        let ws = try Workspace()
        try Self.gaussianModel().save(to: ws.path("g.safetensors"))
        try ws.write(Npy.encode(try Tensor(shape: [Self.rows.count, 3], storage: Self.rows.flatMap { $0 })), to: "x.npy")
        let eps = 1e-2
        let r = try ws.run(["likelihood", "--model", "g.safetensors", "--data", "x.npy", "--eps", "0.01", "--rtol", "1e-10", "--atol", "1e-10",
                            "--output", "ll.npy", "--stats", "s.json"])
        try #require(r.status == 0, "\(r)")
        let ll = try Npy.read(ws.path("ll.npy")).storage
        var sum = 0.0
        for (i, row) in Self.rows.enumerated() {
            let want = Self.exactDataSpace(row, eps: eps) + Self.priorMismatch(row, eps: eps)
            #expect(abs(ll[i] - want) < 1e-6, "row \(i): \(ll[i]) vs closed form \(want)")
            sum += want
        }
        let s = try ws.json("s.json")
        let mean = try #require(s["mean_log_likelihood"] as? Double)
        #expect(abs(mean - sum / Double(Self.rows.count)) < 1e-6)
        let bpd = try #require(s["mean_bits_per_dim"] as? Double)
        #expect(abs(bpd - (-mean / (3 * M_LN2))) < 1e-9)
        let terminal = try #require(s["mean_terminal_log_density"] as? Double), delta = try #require(s["mean_delta_log_p"] as? Double)
        let jacobian = try #require(s["log_jacobian"] as? Double)
        #expect(abs(jacobian - 3 * log(Self.scale)) < 1e-12)
        #expect(abs(terminal + delta + jacobian - mean) < 1e-9 * max(1, abs(mean)), "components \(terminal) + \(delta) + \(jacobian) vs mean \(mean)")
    }

    // MARK: - Version

    /// The README's dependency line, the library's version and `scoresde --version` agree.
    @Test func theReadmeDependencyLineNamesTheToolsVersion() throws {
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let line = try #require(readme.split(separator: "\n").first { $0.hasPrefix("dependencies: [.package(url:") })
        let from = try #require(line.range(of: "from: \"")).upperBound
        let version = line[from...].prefix { $0 != "\"" }
        #expect(String(version) == ScoreSDEVersion.string)
        let r = try Workspace().run(["--version"])
        #expect(r.status == 0 && r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ScoreSDEVersion.string, "\(r)")
    }

    // MARK: - Help text against the pictures

    /// The columns a command's help names after "rows of", in order (help text re-wrapped).
    static func helpColumns(_ help: String) throws -> [String] {
        let flat = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        let start = try #require(flat.range(of: "rows of ")).upperBound
        let sentence = flat[start...].prefix { $0 != ";" && $0 != "." }
        return sentence.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// Each conditional command's help names the PNG's columns in the order they are drawn (the
    /// stats' `figure_columns` are the headers the figure code draws): first words agree, in order.
    @Test(arguments: [
        ["inpaint", "--steps", "10", "--count", "2", "--samples-per-input", "2"],
        ["colorize", "--steps", "10", "--count", "2", "--samples-per-input", "2"],
        ["reconstruct", "--model", "digits-mlp", "--steps", "10", "--count", "2", "--samples-per-input", "2"],
    ])
    func helpDescribesTheFigureColumns(_ arguments: [String]) throws {
        let ws = try Workspace()
        let help = try ws.run([arguments[0], "--help"])
        try #require(help.status == 0)
        let said = try Self.helpColumns(help.stdout)
        let r = try ws.run(arguments + ["--png", "f.png", "--stats", "s.json", "--quiet"])
        try #require(r.status == 0, "\(r)")
        #expect(FileManager.default.fileExists(atPath: ws.path("f.png")))
        let drawn = try #require(try ws.json("s.json")["figure_columns"] as? [String])
        func head(_ s: String) -> String { String(s.split(separator: " ").first ?? "") }
        #expect(said.map(head) == drawn.map(head), "\(arguments[0]) --help says \(said), the PNG draws \(drawn)")
    }

    // MARK: - Errors and defaults

    @Test func anUnknownMaskNamesTheRegions() throws {
        let ws = try Workspace()
        let r = try ws.run(["inpaint", "--mask", "foo", "--steps", "5"])
        #expect(r.status != 0)
        for region in ["bottom-half", "top-half", "left-half", "right-half", "center", "random"] {
            #expect(r.stderr.contains(region), "the error lists \(region): \(r.stderr)")
        }
        #expect(ws.files().isEmpty)
    }

    /// `--class` with a list and no `--count`: 8 per class for an image model, as the help says.
    @Test func aClassListWithoutCountGivesTheDocumentedDefault() throws {
        let ws = try Workspace()
        let help = try ws.run(["sample", "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("8 per class for image models"))
        let r = try ws.run(["sample", "--model", "digits-mlp", "--class", "0,1,2", "--sampler", "ddim", "--nfe", "5", "--output", "s.npy", "--quiet"])
        try #require(r.status == 0, "\(r)")
        #expect(try Npy.read(ws.path("s.npy")).shape[0] == 24)
    }

    // MARK: - Progress on a non-terminal

    /// Runs scoresde with extra environment, standard error to a file (not a terminal).
    static func run(_ arguments: [String], environment: [String: String], in ws: Workspace) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = try #require(scoresdeExecutable)
        process.arguments = arguments
        process.currentDirectoryURL = ws.url
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, b in b }
        let err = ws.url.appendingPathComponent("stderr.txt")
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let handle = try FileHandle(forWritingTo: err)
        process.standardError = handle
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try handle.close()
        defer { try? FileManager.default.removeItem(at: err) }
        return (process.terminationStatus, String(decoding: try Data(contentsOf: err), as: UTF8.self))
    }

    /// Standard error is a file here: progress comes as plain lines (step, NFE, elapsed, ETA) at the
    /// interval (shortened by SCORESDE_PROGRESS_SECONDS for the test), and --quiet silences them.
    @Test func progressLinesOnANonTerminalAndQuiet() throws {
        let ws = try Workspace()
        let env = ["SCORESDE_PROGRESS_SECONDS": "0"]
        let sample = try Self.run(["sample", "--count", "64", "--steps", "50", "--output", "s.npy"], environment: env, in: ws)
        #expect(sample.status == 0)
        let lines = sample.stderr.split(separator: "\n").filter { $0.hasPrefix("progress: step ") }
        #expect(lines.count >= 10, "\(sample.stderr.prefix(400))")
        #expect(lines.contains { $0.contains("NFE") && $0.contains("elapsed") && $0.contains("ETA") }, "\(lines.prefix(3))")
        #expect(!sample.stderr.contains("\u{1B}["), "no terminal escapes in a log")
        let ode = try Self.run(["encode", "--output", "z.npy"], environment: env, in: ws)
        #expect(ode.status == 0)
        #expect(ode.stderr.contains("progress: encode"), "\(ode.stderr.prefix(300))")
        let quiet = try Self.run(["sample", "--count", "64", "--steps", "50", "--output", "q.npy", "--quiet"], environment: env, in: ws)
        #expect(quiet.status == 0)
        #expect(!quiet.stderr.contains("progress:"), "\(quiet.stderr.prefix(300))")
    }
}

/// The package's root folder (this file is Tests/CLITests/FirstRunTests.swift).
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

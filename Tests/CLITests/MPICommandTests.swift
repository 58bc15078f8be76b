import Foundation
import Testing
import ScoreSDE

/// `scoresde-mpi` under `mpirun -np 2` and `-np 3` on this machine (oversubscribed): the output is
/// byte-identical to one `scoresde` process, and a failure on any rank ends the job with a
/// message naming the rank, a non-zero exit and no output. Every `mpirun` here keeps MPI on
/// loopback and shared memory (``MPIJob/environment``). Needs Open MPI (`scripts/setup.sh`
/// installs it); without `mpirun` the suite is skipped, and says so.
@Suite("MPI (mpirun)", .serialized, .enabled(if: MPIJob.mpirun != nil, "mpirun not found: install openmpi-bin (scripts/setup.sh)"))
struct MPICommandTests {
    /// Small runs: bitwise equality needs no statistics.
    static let base = ["sample", "--count", "37", "--steps", "15", "--seed", "7"]

    @Test("sample: -np 2 and -np 3 write the bytes of one process (37 rows: not divisible by 2 or 3)",
          arguments: [
              [String](),
              ["--predictor", "euler-maruyama", "--corrector-steps", "2", "--order", "predictor-first", "--sde", "vp"],
              ["--predictor", "ancestral", "--corrector", "ald", "--model", "gmm64"],
              ["--predictor", "none", "--denoise", "none", "--sde", "subvp"],
              ["--corrector", "none", "--denoise", "tweedie", "--coefficients", "reference"],
          ])
    func sampleBytes(extra: [String]) throws {
        let ws = try Workspace()
        let one = try ws.run(Self.base + extra + ["--output", "one.npy", "--stats", "one.json"])
        #expect(one.status == 0, "\(one)")
        for ranks in [2, 3] {
            let r = try MPIJob.run(ws, ranks: ranks, Self.base + extra + ["--output", "np\(ranks).npy", "--stats", "np\(ranks).json"])
            #expect(r.status == 0, "\(r)")
            #expect(try ws.data("np\(ranks).npy") == ws.data("one.npy"), "-np \(ranks) \(extra)")
            #expect(try ws.json("np\(ranks).json")["ranks"] as? Int == ranks)
            #expect(r.stdout.components(separatedBy: "samples (dim").count == 2, "one summary, from rank 0: \(r.stdout)")
        }
        #expect(try ws.json("one.json")["ranks"] as? Int == 1)
    }

    @Test("ODE commands with --per-sample: -np 2 and -np 3 write the bytes of one process (7 systems)",
          arguments: [
              ["sample", "--sampler", "ode", "--per-sample", "--count", "7", "--seed", "3", "--denoise", "last-mean"],
              ["encode", "--per-sample", "--count", "7", "--seed", "3", "--sde", "vp"],
              ["likelihood", "--per-sample", "--count", "7", "--seed", "3", "--estimator", "rademacher", "--probes", "2"],
          ])
    func odeBytes(arguments: [String]) throws {
        let ws = try Workspace()
        let one = try ws.run(arguments + ["--output", "one.npy", "--stats", "one.json"])
        #expect(one.status == 0, "\(one)")
        for ranks in [2, 3] {
            let r = try MPIJob.run(ws, ranks: ranks, arguments + ["--output", "np\(ranks).npy", "--stats", "np\(ranks).json"])
            #expect(r.status == 0, "\(r)")
            #expect(try ws.data("np\(ranks).npy") == ws.data("one.npy"), "-np \(ranks) \(arguments)")
            let (a, b) = (try ws.json("one.json"), try ws.json("np\(ranks).json"))
            #expect(b["ranks"] as? Int == ranks && a["nfe"] as? Int == b["nfe"] as? Int, "the NFE of all ranks together")
        }
    }

    /// Each rank multiplies only its own rows, and a BLAS library may choose another kernel (another
    /// summation order) for another number of rows (OpenBLAS's small-matrix path does on some CPUs),
    /// so the bytes may differ from one process's by rounding — which the comparison must not
    /// depend on. Reassociating a dot product of ≤ 128 terms changes it by ≤ 128 · 2⁻⁵³ ≈ 1.4e-14 of
    /// Σ|aᵢbᵢ|; through the network's layers and 8 steps of a contracting sampler that stays far
    /// below 1e-9 of the data range (0…16), while a row given to the wrong rank, a lost row or a
    /// wrong stream moves samples by whole levels.
    @Test("sample: a learned model (digits, BLAS products) under -np 3 gives one process's samples up to rounding")
    func learnedModel() throws {
        let ws = try Workspace()
        let args = ["sample", "--model", "digits-mlp", "--count", "5", "--steps", "8", "--seed", "3"]
        #expect(try ws.run(args + ["--output", "one.npy"]).status == 0)
        let r = try MPIJob.run(ws, ranks: 3, args + ["--output", "np3.npy"])
        #expect(r.status == 0, "\(r)")
        let (a, b) = (try Npy.read(ws.path("one.npy")), try Npy.read(ws.path("np3.npy")))
        try #require(a.shape == b.shape)
        let worst = zip(a.storage, b.storage).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-9 * 16, "largest difference from one process \(worst)")
    }

    @Test("more ranks than samples: a clear error, nothing written")
    func tooManyRanks() throws {
        let ws = try Workspace()
        let r = try MPIJob.run(ws, ranks: 3, ["sample", "--count", "2", "--steps", "5", "--output", "s.npy"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("at least one row") && r.stderr.contains("-np 2"), "\(r)")
        #expect(ws.files().filter { !$0.hasPrefix(".") }.isEmpty)
    }

    @Test("ranks started with different arguments: detected from the settings hash, nothing written")
    func differentArguments() throws {
        let ws = try Workspace()
        let exe = try #require(MPIJob.executable).path
        let args = ["sample", "--count", "10", "--steps", "5", "--output", "s.npy"]
        let r = try MPIJob.launch(ws, ["-np", "1", exe] + args + ["--seed", "1"] + [":", "-np", "1", exe] + args + ["--seed", "2"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("rank 1 of 2") && r.stderr.contains("arguments different from rank 0"), "\(r)")
        #expect(!ws.files().contains("s.npy"))
    }

    @Test("an output directory only rank 0 can see: every rank stops, naming rank 1, nothing written")
    func outputOnlySomeRanksCanWrite() throws {
        let ws = try Workspace()
        try FileManager.default.createDirectory(atPath: ws.path("a/out"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: ws.path("b"), withIntermediateDirectories: true)
        let exe = try #require(MPIJob.executable).path
        // Same arguments on both ranks; rank 1 runs in b/, which has no out/.
        let script = "cd $([ \"$OMPI_COMM_WORLD_RANK\" = 0 ] && echo a || echo b) && exec \"$0\" sample --count 10 --steps 5 --output out/s.npy"
        let r = try MPIJob.launch(ws, ["-np", "2", "/bin/sh", "-c", script, exe])
        #expect(r.status != 0)
        #expect(r.stderr.contains("rank 1 of 2") && r.stderr.contains("does not exist"), "\(r)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: ws.path("a/out")))?.isEmpty == true)
    }

    @Test("a non-finite score (an overflowing corrector step) fails the job, naming the rank, nothing written")
    func nonFinite() throws {
        let ws = try Workspace()
        // snr 1e200 makes the Langevin step overflow to infinity: the next score is not finite.
        let r = try MPIJob.run(ws, ranks: 2, ["sample", "--count", "10", "--steps", "5", "--snr", "1e200", "--output", "s.npy"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("scoresde-mpi: rank") && r.stderr.contains("score is not finite"), "\(r)")
        #expect(!ws.files().contains("s.npy"))
    }

    @Test("a rank killed mid-run ends the whole job promptly, nothing written")
    func killedRank() throws {
        let ws = try Workspace()
        let exe = try #require(MPIJob.executable).path
        // Rank 1 is killed (SIGKILL) one second into a run that would take far longer.
        let script = "[ \"$OMPI_COMM_WORLD_RANK\" = 1 ] && { (sleep 1; kill -9 $$) & }; exec \"$0\" sample --count 4000 --steps 100000 --output s.npy"
        let clock = ContinuousClock(), start = clock.now
        let r = try MPIJob.launch(ws, ["-np", "2", "/bin/sh", "-c", script, exe])
        #expect(r.status != 0)
        #expect(r.stderr.contains("rank 1") && r.stderr.contains("signal 9"), "\(r)")
        #expect(!ws.files().contains("s.npy"))
        #expect(start.duration(to: clock.now) < .seconds(60))
    }

    @Test("the ODE's batch layout (one shared step size) and commands that do not split refuse several ranks")
    func undistributedCommand() throws {
        let ws = try Workspace()
        let batch = try MPIJob.run(ws, ranks: 2, ["sample", "--sampler", "ode", "--count", "4", "--output", "s.npy"])
        #expect(batch.status != 0)
        #expect(batch.stderr.contains("needs --per-sample") && batch.stderr.contains("shared adaptive step size"), "\(batch)")
        let inpaint = try MPIJob.run(ws, ranks: 2, ["inpaint", "--output", "s.npy"])
        #expect(inpaint.status != 0)
        #expect(inpaint.stderr.contains("does not split its work across ranks"), "\(inpaint)")
        #expect(!ws.files().contains("s.npy"))
    }
}

/// Starting `scoresde-mpi` under `mpirun`.
enum MPIJob {
    static let mpirun: URL? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].map(URL.init(fileURLWithPath:))
        .first { FileManager.default.isExecutableFile(atPath: $0.path) }

    /// `scoresde-mpi`, next to `scoresde`.
    static var executable: URL? {
        scoresdeExecutable.map { $0.deletingLastPathComponent().appendingPathComponent("scoresde-mpi") }
            .flatMap { FileManager.default.isExecutableFile(atPath: $0.path) ? $0 : nil }
    }

    /// MPI on loopback and shared memory only (REFERENCE.md §7), and Open MPI's consent to run as root.
    static let environment = [
        "OMPI_MCA_btl=self,vader", "OMPI_MCA_btl_tcp_if_include=lo", "OMPI_MCA_oob_tcp_if_include=lo",
        "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
    ]

    /// `mpirun --oversubscribe -np ranks scoresde-mpi arguments…`.
    static func run(_ ws: Workspace, ranks: Int, _ arguments: [String]) throws -> CommandResult {
        let exe = try #require(executable, "scoresde-mpi not found next to scoresde; build it (swift build --build-tests)")
        return try launch(ws, ["-np", String(ranks), exe.path] + arguments)
    }

    /// `mpirun --oversubscribe mpirunArguments…` with ``environment``.
    static func launch(_ ws: Workspace, _ mpirunArguments: [String]) throws -> CommandResult {
        let mpirun = try #require(mpirun)
        return try ws.run(URL(fileURLWithPath: "/usr/bin/env"), environment + [mpirun.path, "--oversubscribe"] + mpirunArguments)
    }
}

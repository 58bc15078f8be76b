import Foundation
import ScoreSDE
import Testing

/// `mpirun -np K scoresde-mpi train …` on this machine (oversubscribed, loopback and shared memory
/// only: ``MPIJob/environment``): each step's gradient blocks are shared across the ranks and the
/// checkpoint has the bytes of one `scoresde train` process; resuming works across rank counts;
/// a failure on one rank ends the job naming it; a signal stops every rank after the same step.
@Suite("MPI training (mpirun)", .serialized, .enabled(if: MPIJob.mpirun != nil, "mpirun not found: install openmpi-bin (scripts/setup.sh)"))
struct MPITrainingTests {
    /// A small network; 37 rows per batch in 8 blocks of 5 (neither 2 nor 3 divides them).
    static let base = ["train", "--data", "ring", "--count", "300", "--hidden", "24", "--blocks", "1", "--fourier-features", "4",
                       "--batch-size", "37", "--gradient-block", "5", "--checkpoint-interval", "0"]

    @Test("-np 2 and -np 3 write the checkpoint bytes of one process; the summary and --stats say how many ranks shared each step")
    func checkpointBytes() throws {
        let ws = try Workspace()
        let one = try ws.run(Self.base + ["--steps", "6", "--output", "one.safetensors", "--stats", "one.json"])
        try #require(one.status == 0, "\(one)")
        #expect(one.stdout.contains("8 gradient blocks of 5 rows, each step shared by 1 rank (one process)"), "\(one.stdout)")
        #expect(try ws.json("one.json")["ranks"] as? Int == 1)
        for ranks in [2, 3] {
            let r = try MPIJob.run(ws, ranks: ranks, Self.base + ["--steps", "6", "--output", "np\(ranks).safetensors", "--stats", "np\(ranks).json"])
            try #require(r.status == 0, "\(r)")
            #expect(try ws.data("np\(ranks).safetensors") == ws.data("one.safetensors"), "-np \(ranks)")
            #expect(r.stdout.components(separatedBy: "each step shared by \(ranks) ranks (MPI)").count == 2, "one summary, from rank 0: \(r.stdout)")
            let stats = try ws.json("np\(ranks).json")
            #expect(stats["ranks"] as? Int == ranks && stats["batch_size"] as? Int == 37 && stats["gradient_blocks"] as? Int == 8)
        }
    }

    @Test("train 4 steps on 2 ranks, resume to 7 on 3 ranks, then to 9 on one process: the bytes of 9 uninterrupted steps")
    func resumeAcrossRankCounts() throws {
        let ws = try Workspace()
        try #require(try ws.run(Self.base + ["--steps", "9", "--output", "one.safetensors"]).status == 0)
        let two = try MPIJob.run(ws, ranks: 2, Self.base + ["--steps", "4", "--output", "r.safetensors"])
        try #require(two.status == 0, "\(two)")
        let three = try MPIJob.run(ws, ranks: 3, ["train", "--data", "ring", "--count", "300", "--steps", "7", "--output", "r.safetensors", "--resume"])
        try #require(three.status == 0, "\(three)")
        #expect(three.stdout.contains("resumed at step 4") && three.stdout.contains("shared by 3 ranks"), "\(three.stdout)")
        let one = try ws.run(["train", "--data", "ring", "--count", "300", "--steps", "9", "--output", "r.safetensors", "--resume"])
        try #require(one.status == 0, "\(one)")
        #expect(try ws.data("r.safetensors") == ws.data("one.safetensors"))
    }

    @Test("more ranks than gradient blocks (or batch rows): a clear error before any work, nothing written")
    func tooManyRanks() throws {
        let ws = try Workspace()
        let r = try MPIJob.run(ws, ranks: 3, ["train", "--data", "ring", "--batch-size", "2", "--steps", "3", "--output", "m.safetensors"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("each rank needs at least one block") && r.stderr.contains("only 2 rows") && r.stderr.contains("-np 1"), "\(r)")
        let blocks = try MPIJob.run(ws, ranks: 3, ["train", "--data", "ring", "--batch-size", "8", "--gradient-block", "4", "--steps", "3", "--output", "m.safetensors"])
        #expect(blocks.status != 0)
        #expect(blocks.stderr.contains("2 gradient blocks") && blocks.stderr.contains("-np 2") && blocks.stderr.contains("at most 2 rows each for 3 ranks"), "\(blocks)")
        #expect(ws.files().filter { !$0.hasPrefix(".") }.isEmpty)
    }

    /// Rank 1 runs in `b/`, rank 0 in `a/`, with the same arguments (`--data data.npy`).
    func runSplit(_ ws: Workspace, rankOneData: Data?) throws -> CommandResult {
        let data = Npy.encode(try Tensor(shape: [50, 2], storage: (0 ..< 100).map { Double($0 % 7) - 3 }))
        try FileManager.default.createDirectory(atPath: ws.path("a"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: ws.path("b"), withIntermediateDirectories: true)
        try ws.write(data, to: "a/data.npy")
        if let rankOneData { try ws.write(rankOneData, to: "b/data.npy") }
        let exe = try #require(MPIJob.executable).path
        let script = "cd $([ \"$OMPI_COMM_WORLD_RANK\" = 0 ] && echo a || echo b) && exec \"$0\" train --data data.npy --hidden 16 --blocks 1 --batch-size 8 --gradient-block 4 --steps 3 --output m.safetensors"
        return try MPIJob.launch(ws, ["-np", "2", "/bin/sh", "-c", script, exe])
    }

    @Test("data rank 1 cannot read, or other data on rank 1: the job fails naming rank 1, no checkpoint")
    func dataOnOneRank() throws {
        let missing = try Workspace()
        let r = try runSplit(missing, rankOneData: nil)
        #expect(r.status != 0)
        #expect(r.stderr.contains("rank 1 of 2") && r.stderr.contains("data.npy"), "\(r)")
        #expect(!FileManager.default.fileExists(atPath: missing.path("a/m.safetensors")))
        let other = try Workspace()
        let o = try runSplit(other, rankOneData: Npy.encode(try Tensor(shape: [50, 2], storage: (0 ..< 100).map { Double($0 % 5) })))
        #expect(o.status != 0)
        #expect(o.stderr.contains("rank 1 of 2") && o.stderr.contains("training data differ from rank 0's"), "\(o)")
        #expect(!FileManager.default.fileExists(atPath: other.path("a/m.safetensors")))
    }

    /// Data of two rows, the second 1e200 (finite, but its loss overflows): a seed whose first
    /// batch of 2 (one block per rank) gives rank 1 the huge row and rank 0 the normal one, found
    /// with the library's own draws.
    @Test("a non-finite loss in rank 1's block: the job fails naming rank 1 and the loss, no checkpoint")
    func nonFiniteOnOneRank() throws {
        let ws = try Workspace()
        let data = try Tensor(shape: [2, 2], storage: [0.5, -0.3, 1e200, 1e200])
        try ws.write(Npy.encode(data), to: "two.npy")
        let arch = MLPArchitecture(rowShape: [2], hiddenWidth: 16, residualBlocks: 1, fourierFeatures: 64)
        let seed = try #require((UInt64(0) ..< 64).first { seed in
            let config = TrainingConfiguration(sde: .vp(betaMin: 0.1, betaMax: 20), architecture: arch, seed: seed, batchSize: 2, gradientBlockSize: 1)
            return (try? Trainer(configuration: config, data: data).batch(forStep: 0).indices) == [0, 1]
        })
        let r = try MPIJob.run(ws, ranks: 2, ["train", "--data", "two.npy", "--hidden", "16", "--blocks", "1", "--batch-size", "2",
                                              "--gradient-block", "1", "--steps", "3", "--seed", "\(seed)", "--output", "m.safetensors"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("rank 1 of 2: at step 1:") && r.stderr.contains("training loss is"), "\(r)")
        #expect(r.stderr.contains("no checkpoint was written"), "\(r)")
        #expect(!ws.files().contains("m.safetensors"))
    }

    /// SIGTERM to `mpirun` (it sends SIGTERM to every rank; Ctrl-C does the same): every rank stops
    /// after the same step, rank 0 writes that step's checkpoint and says how to resume, the job
    /// exits non-zero; resuming on one process ends with the bytes of an uninterrupted run.
    @Test("SIGTERM to mpirun -np 2: a checkpoint, a clear message, non-zero exit; resuming gives the uninterrupted bytes")
    func signal() throws {
        let ws = try Workspace()
        let mpirun = try #require(MPIJob.mpirun), exe = try #require(MPIJob.executable)
        let run = Self.base + ["--steps", "100000", "--checkpoint-every", "5", "--output", ws.path("m.safetensors")]
        // mpirun SIGKILLs ranks 1 s after its SIGTERM by default: on a loaded machine the step in
        // flight and rank 0's checkpoint may need longer (README: Signals).
        let pid = try Self.spawn(["/usr/bin/env"] + MPIJob.environment + ["OMPI_MCA_odls_base_sigkill_timeout=30",
                                 mpirun.path, "--oversubscribe", "-np", "2", exe.path] + run,
                                 stderr: ws.path("stderr.txt"))
        let deadline = Date().addingTimeInterval(60)
        var status: Int32 = 0
        var ended = false
        while !FileManager.default.fileExists(atPath: ws.path("m.safetensors")) && Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { ended = true; break }
            usleep(20_000)
        }
        if !ended {
            kill(pid, SIGTERM)   // `env` exec'd mpirun: this is mpirun's pid
            let limit = Date().addingTimeInterval(60)
            while waitpid(pid, &status, WNOHANG) != pid {
                if Date() > limit { kill(pid, SIGKILL); waitpid(pid, &status, 0); Issue.record("mpirun did not end within 60 s of SIGTERM"); break }
                usleep(20_000)
            }
        }
        let stderr = String(decoding: try ws.data("stderr.txt"), as: UTF8.self)
        try FileManager.default.removeItem(atPath: ws.path("stderr.txt"))
        try #require(!ended, "the run ended before it could be interrupted: \(stderr)")
        #expect(status != 0, "mpirun's wait status \(status)")
        let step = try #require(Int(try Safetensors.read(ws.path("m.safetensors")).metadata["train.step"] ?? ""))
        #expect(step > 0 && stderr.contains("SIGTERM: stopped after step \(step) of 100000"), "\(stderr)")
        #expect(stderr.components(separatedBy: "resume with:").count == 2, "one message, from rank 0: \(stderr)")
        let total = step + 3
        let resumed = try ws.run(["train", "--data", "ring", "--count", "300", "--steps", "\(total)", "--output", "m.safetensors", "--resume"])
        try #require(resumed.status == 0, "\(resumed)")
        try #require(try ws.run(Self.base + ["--steps", "\(total)", "--output", "full.safetensors"]).status == 0)
        #expect(try ws.data("m.safetensors") == ws.data("full.safetensors"))
    }

    /// Starts `arguments` (an absolute path first) with stdout to /dev/null and stderr to a file,
    /// **with no signal blocked**: the test process blocks SIGINT and SIGTERM in its threads and
    /// `Process` children inherit that mask, so `mpirun` (which catches them with handlers) would
    /// never see the signal.
    static func spawn(_ arguments: [String], stderr: String) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var files = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&files)
        defer { posix_spawn_file_actions_destroy(&files) }
        posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&files, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&files, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &files, &attributes, argv, environ)
        guard rc == 0 else { throw ScoreSDEError.io(path: arguments[0], message: "posix_spawn failed: \(String(cString: strerror(rc)))") }
        return pid
    }
}

import ArgumentParser
import Foundation
import ScoreSDE
import ScoreSDEMPI

/// `scoresde-mpi`: the `scoresde` command line run as one rank of an MPI job
/// (`mpirun -np K scoresde-mpi sample …`, `srun scoresde-mpi sample …`). The CLI's sources are
/// compiled into this target (through the `CLI` link) with `SCORESDE_MPI` defined, so that
/// `ScoreSDECommand.main` starts here; the plain `scoresde` never links MPI.
///
/// What happens: MPI starts; every rank compares a hash of its arguments with rank 0's; the
/// command runs with ``Population/communicator`` set to the world, so the samplers split their
/// rows across the ranks and gather them back, and only rank 0 writes files or prints results.
/// Any error on any rank prints `scoresde-mpi: rank r of K: …` and ends the whole job
/// (`MPI_Abort`, non-zero exit); as rank 0 writes only after the last collective, a failed job
/// leaves no output (`train` leaves its last complete checkpoint, as with one process). A
/// `train` stopped by SIGINT/SIGTERM (on any rank) stops on every rank after the same step,
/// writes its checkpoint from rank 0 and exits 130/143 without an abort. Started without a
/// launcher, it behaves exactly like `scoresde`.
enum MPIMain {
    static func main() -> Never {
        guard MPICommunicator.launchedByMPI else {
            ScoreSDECommand.main(nil)
            exit(0)
        }
        let world: MPICommunicator
        do { world = try MPICommunicator.initialize() } catch {
            FileHandle.standardError.write(Data("scoresde-mpi: cannot start MPI: \(error)\n".utf8))
            exit(1)
        }
        if world.rank != 0 { _ = freopen("/dev/null", "w", stdout) }   // one summary, from rank 0
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            try world.checkSameArguments(arguments)
            let command = try ScoreSDECommand.parseAsRoot(arguments)
            try Population.$communicator.withValue(world) {
                try checkDistributed(command, ranks: world.size)
                var command = command
                try command.run()
            }
            world.finalize()
            exit(0)
        } catch {
            fail(world, error)
        }
    }

    /// The commands that split their work across ranks; the others would only repeat it.
    static func checkDistributed(_ command: ParsableCommand, ranks: Int) throws {
        guard ranks > 1 else { return }
        let name = type(of: command)._commandName
        let perSample: Bool
        switch command {
        case let c as ScoreSDECommand.Sample:
            let kind = c.sampler.resolved(latentGiven: c.latent != nil, nfeGiven: c.fewStep.nfe != nil)
            // PC and the few-step samplers from the prior split through PCSampler.sample(count:).
            if kind == .pc || (kind.isFewStep && c.latent == nil) { return }
            if kind.isFewStep {
                throw ScoreSDEError.population(PopulationFailure(rank: 0, size: ranks, collective: true,
                                                         message: "--sampler \(kind.rawValue) with --latent does not split its work across ranks; run it with one process"))
            }
            perSample = c.ode.perSample
        case is ScoreSDECommand.Train: return   // data-parallel: each rank computes its gradient blocks
        case let c as ScoreSDECommand.Encode: perSample = c.ode.perSample
        case let c as ScoreSDECommand.LogLikelihood: perSample = c.ode.perSample
        default:
            throw ScoreSDEError.population(PopulationFailure(rank: 0, size: ranks, collective: true,
                                  message: "`\(name)` does not split its work across ranks (\(distributedCommands)); run it with one process (`scoresde \(name) …` or -np 1)"))
        }
        guard perSample else {
            throw ScoreSDEError.population(PopulationFailure(rank: 0, size: ranks, collective: true,
                                  message: "`\(name)` with the probability-flow ODE needs --per-sample on several ranks: the default batch layout solves all rows as one system with one shared adaptive step size, which a split run could not reproduce; add --per-sample (one system per row, split across ranks, the same bytes as one process) or run with one process"))
        }
    }

    static let distributedCommands = "under MPI: `sample` with --sampler pc or a few-step sampler, `sample --sampler ode`, `encode`, `likelihood` with --per-sample, and `train`"

    /// Reports `error` and ends the job. `--help` and `--version` end it cleanly (rank 0 prints).
    static func fail(_ world: MPICommunicator, _ error: Error) -> Never {
        let code = ScoreSDECommand.exitCode(for: error)
        if code.rawValue == 0 {
            world.finalize()
            if world.rank == 0 { ScoreSDECommand.exit(withError: error) }
            exit(0)
        }
        if let e = error as? ExitCode {
            // `train` stopped by a signal: every rank stopped after the same step (they agree on it
            // with the step's gradients), rank 0 wrote the checkpoint and said so; end cleanly.
            world.finalize()
            exit(e.rawValue)
        }
        let message = ScoreSDECommand.fullMessage(for: error)
        if case .population(let failure)? = error as? ScoreSDEError, failure.collective {
            // Every rank knows this error: rank 0 reports it once; the others wait to be ended.
            guard world.rank == 0 else { world.barrier(); world.abort(code: code.rawValue) }
            report("error: \(message)")
        } else {
            report("rank \(world.rank) of \(world.size): \(message)")
        }
        world.abort(code: code.rawValue == 0 ? 1 : code.rawValue)
    }

    static func report(_ line: String) {
        FileHandle.standardError.write(Data("scoresde-mpi: \(line)\n".utf8))
    }
}

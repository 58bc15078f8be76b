import Foundation

/// When ``CheckpointedTrainer/train(until:checkpoints:shouldStop:onProgress:)`` writes checkpoints: after the
/// step at which `interval` seconds of wall-clock time have passed since the last one, at every
/// multiple of `everySteps`, and always at the end (also when stopped early). Each is written
/// atomically, with the one it replaces kept as ``previousPath``, so a `kill -9` or a power cut
/// at any moment loses at most one interval of work and leaves a loadable checkpoint.
///
///     let schedule = try CheckpointSchedule(path: "run.safetensors")          // every 60 s and at the end
///     let outcome = try trainer.train(until: 20_000, checkpoints: schedule, shouldStop: { interrupted })
public struct CheckpointSchedule: Sendable, Equatable {
    /// The default wall-clock interval: 60 seconds.
    public static let defaultInterval = 60.0

    /// The checkpoint file.
    public var path: String
    /// Seconds of wall-clock time between checkpoints; nil: none by time.
    public var interval: Double?
    /// Also write at every multiple of this many steps; nil: none by steps.
    public var everySteps: Int?
    /// Keep the checkpoint being replaced as ``previousPath``.
    public var keepPrevious: Bool

    /// - Throws: `invalidParameter` for an interval that is not finite and > 0, or `everySteps` < 1.
    public init(path: String, interval: Double? = CheckpointSchedule.defaultInterval, everySteps: Int? = nil,
                keepPrevious: Bool = true) throws {
        if let interval {
            try requireParameter(interval.isFinite && interval > 0, name: "interval", value: interval, requirement: "finite and > 0 seconds", advice: "pass nil for no timed checkpoints")
        }
        if let everySteps {
            try requireParameter(everySteps >= 1, name: "everySteps", value: everySteps, requirement: ">= 1", advice: "pass nil for no checkpoints by step count")
        }
        self.path = path; self.interval = interval; self.everySteps = everySteps; self.keepPrevious = keepPrevious
    }

    /// Where the replaced checkpoint is kept (``ModelFile/previousCheckpointPath(for:)``).
    public var previousPath: String { ModelFile.previousCheckpointPath(for: path) }
}

/// What ``CheckpointedTrainer/train(until:checkpoints:shouldStop:onProgress:)`` did.
public struct TrainingOutcome: Sendable {
    /// The losses of the steps trained by this call.
    public let losses: [Double]
    /// True when `shouldStop` ended the run before the requested step.
    public let stopped: Bool
    /// The step count recorded in the last checkpoint written (the trainer's `completedSteps`).
    public let checkpointStep: Int
    /// How many checkpoints were written.
    public let checkpointsWritten: Int
}

/// A trainer that advances by optimisation steps and writes checkpoints: ``ScoreTrainer``
/// (denoising score matching, any ``DenoisingScoreNetwork``) and ``ClassifierTrainer``
/// (cross-entropy). The run loop — checkpoints by time, by steps and at the end, a stop request
/// that finishes the step in progress, failures that name the checkpoint on disk — is written once,
/// here, for both objectives.
public protocol CheckpointedTrainer: AnyObject {
    /// Steps completed.
    var completedSteps: Int { get }
    /// Gradient norm (before clipping) of the last step.
    var lastGradientNorm: Double { get }
    /// The learning rate of step `step` (0-based; warm-up included).
    func learningRate(atStep step: Int) -> Double
    /// One optimisation step; `requestingStop` is this process's wish to stop. Returns the step's
    /// loss and whether the run stops after it (any process of a shared step asked).
    func step(requestingStop: Bool) throws -> (loss: Double, stop: Bool)
    /// Writes a checkpoint atomically (keeping the one it replaces when `keepPrevious`).
    func save(to path: String, keepPrevious: Bool) throws
}

extension CheckpointedTrainer {
    /// Runs `steps` steps; returns their losses. `onProgress` is called after each step.
    @discardableResult
    public func train(steps: Int, onProgress: ((TrainingProgress) -> Void)? = nil) throws -> [Double] {
        guard steps >= 0 else { throw ScoreSDEError.invalid("steps", steps, must: ">= 0") }
        var losses = [Double]()
        losses.reserveCapacity(steps)
        for _ in 0 ..< steps {
            let lr = learningRate(atStep: completedSteps)
            let value = try step(requestingStop: false).loss
            losses.append(value)
            onProgress?(TrainingProgress(step: completedSteps, loss: value, learningRate: lr, gradientNorm: lastGradientNorm))
        }
        return losses
    }

    /// Trains until `completedSteps == until`, writing checkpoints as `checkpoints` says and at the
    /// end. `shouldStop` is asked before every step (a signal handler's flag, say): when it returns
    /// true, the run stops after the step in progress, writes its checkpoint and returns with
    /// `stopped` set. Resuming that checkpoint (``ScoreTrainer/resume(from:data:labels:allowDifferentData:)``) and
    /// training to `until` gives bitwise the weights of an uninterrupted run.
    ///
    /// Shared by the processes of ``Population/communicator`` (every one calls this): `shouldStop`
    /// is sent along with each step's gradients, so when it is true on any process all of them
    /// stop after the same step; only rank 0 writes checkpoints.
    ///
    /// - Throws: `invalidArgument` when `until < completedSteps`; `nonFinite` when a loss is NaN or
    ///   ±Inf (the message names the step and the checkpoint the file holds; nothing is written
    ///   for the failed step); ``ScoreSDEError/io(path:message:)`` when a checkpoint cannot be written.
    @discardableResult
    public func train(until: Int, checkpoints: CheckpointSchedule, shouldStop: () -> Bool = { false },
                      onProgress: ((TrainingProgress) -> Void)? = nil) throws -> TrainingOutcome {
        guard until >= completedSteps else {
            throw ScoreSDEError.invalidArgument("cannot train until step \(until): \(completedSteps) steps are already done")
        }
        let clock = ContinuousClock()
        var lastTime = clock.now
        var saved: Int? = nil, written = 0, stopped = false
        var losses = [Double]()
        losses.reserveCapacity(until - completedSteps)
        let shared = Population.size > 1
        func save() throws {
            if Population.rank == 0 { try self.save(to: checkpoints.path, keepPrevious: checkpoints.keepPrevious) }
            saved = completedSteps; written += 1; lastTime = clock.now
        }
        func held() -> String {
            saved.map { "; \(checkpoints.path) holds the checkpoint of step \($0)" } ?? "; no checkpoint was written by this run"
        }
        while completedSteps < until {
            let stopHere = shouldStop()
            if stopHere && !shared { stopped = true; break }
            let lr = learningRate(atStep: completedSteps)
            let value: Double
            do {
                let result = try step(requestingStop: stopHere)
                value = result.loss
                stopped = result.stop
            } catch ScoreSDEError.nonFinite(let message) {
                throw ScoreSDEError.nonFinite("at step \(completedSteps + 1): \(message)\(held())")
            } catch ScoreSDEError.population(var failure) where failure.message.hasPrefix("at step") {
                failure.message += held()
                throw ScoreSDEError.population(failure)
            }
            losses.append(value)
            onProgress?(TrainingProgress(step: completedSteps, loss: value, learningRate: lr, gradientNorm: lastGradientNorm))
            let byStep = checkpoints.everySteps.map { completedSteps % $0 == 0 } ?? false
            let byTime = checkpoints.interval.map { lastTime.duration(to: clock.now) >= .seconds($0) } ?? false
            if stopped { break }
            if (byStep || byTime) && completedSteps < until { try save() }
        }
        if saved != completedSteps { try save() }
        return TrainingOutcome(losses: losses, stopped: stopped, checkpointStep: completedSteps, checkpointsWritten: written)
    }
}

import ArgumentParser
import Foundation

/// Progress on standard error: on a terminal a one-line bar redrawn at most about 20 times a
/// second; elsewhere (a log file, a pipe, CI) a plain line every ``ProgressReporting/logInterval``
/// seconds; nothing with `--quiet`. A caller's detail sits in the middle:
///
///     [=========>          ]  480/1000  48%  NFE 960  1.2 s  ETA 1.3 s                  (sampling)
///     [=========>          ]  480/1000  48%  loss 0.4213  10240 ex/s  6.0 s  ETA 6.5 s  (training)
///     progress: step 480/1000 (48%), NFE 960, 5.0 s elapsed, ETA 5.4 s                   (a log)
///
/// The elapsed time and the ETA count only the steps of this process: a resumed run starts its
/// clock at its first step.
final class ProgressBar {
    private let total: Int
    private let first: Int
    private let start = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private var drawn = false
    private let terminal: Bool
    private var interval: UInt64 { terminal ? 50_000_000 : ProgressReporting.logInterval }

    /// A bar for `total` steps starting after step `start`, or nil with `--quiet`.
    init?(total: Int, start: Int = 0) {
        guard !ProgressReporting.quiet, total > 0 else { return nil }
        self.total = total; self.first = start
        terminal = ProgressReporting.isTerminal
        if !terminal { lastDraw = self.start }   // the first log line after one interval
    }

    /// Records that `step` of `total` steps are done, with `nfe` score evaluations so far.
    func update(step: Int, nfe: Int) { update(step: step) { _ in "NFE \(nfe)" } }

    /// Records that `step` of `total` steps are done; `detail` (given the seconds elapsed) is
    /// evaluated only when the bar is drawn.
    func update(step: Int, detail: (_ elapsed: Double) -> String) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard (terminal && step >= total) || now - lastDraw >= interval else { return }
        lastDraw = now
        let elapsed = Double(now - start) * 1e-9
        let fraction = Double(step) / Double(total)
        if !terminal {
            let done = step - first
            let eta = done > 0 && step < total ? ", ETA \(Self.seconds(elapsed / Double(done) * Double(total - step)))" : ""
            fputs("progress: step \(step)/\(total) (\(Int(fraction * 100))%), \(detail(elapsed)), \(Self.seconds(elapsed)) elapsed\(eta)\n", stderr)
            fflush(stderr)
            return
        }
        let width = 24
        let filled = min(width, Int(fraction * Double(width)))
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
        var line = "\r\u{1B}[K[\(bar)] \(step)/\(total) \(String(format: "%3d", Int(fraction * 100)))%  \(detail(elapsed))  \(Self.seconds(elapsed))"
        let done = step - first
        if done > 0 && step < total { line += "  ETA \(Self.seconds(elapsed / Double(done) * Double(total - step)))" }
        fputs(line, stderr)
        fflush(stderr)
        drawn = true
    }

    /// Clears the bar so that what follows starts on a clean line.
    func finish() {
        guard drawn, terminal else { return }
        fputs("\r\u{1B}[K", stderr)
        fflush(stderr)
    }

    static func seconds(_ s: Double) -> String {
        s < 60 ? String(format: "%.1f s", s) : String(format: "%d min %02d s", Int(s) / 60, Int(s) % 60)
    }
}

/// How commands report progress: `--quiet` turns it off; on a non-terminal standard error a plain
/// line every `logInterval` (5 s) replaces the bar.
enum ProgressReporting {
    nonisolated(unsafe) static var quiet = false
    /// 5 s; `SCORESDE_PROGRESS_SECONDS` sets another interval (the tests use a short one).
    static let logInterval: UInt64 = {
        if let v = getenv("SCORESDE_PROGRESS_SECONDS").flatMap({ Double(String(cString: $0)) }), v >= 0, v < 1e6 {
            return UInt64(v * 1e9)
        }
        return 5_000_000_000
    }()
    static var isTerminal: Bool { isatty(STDERR_FILENO) == 1 }
}

/// `--quiet`, shared by every command that reports progress.
struct ProgressOptions: ParsableArguments {
    @Flag(help: "Print no progress to standard error (by default a bar on a terminal, else a line every 5 s).")
    var quiet = false

    func validate() throws { ProgressReporting.quiet = quiet }
}

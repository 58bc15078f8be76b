import Foundation
import ScoreSDE

/// A one-line progress indicator of an ODE solve on standard error, updated from the score
/// evaluations (their count and times), drawn only when standard error is a terminal and at most
/// about 20 times a second:
///
///     encode  [==========>             ]  43%  t = 0.4312  score calls 180  1.2 s
///     likelihood  per-sample systems: score calls 12840  3.4 s
///
/// With one system the fraction is how far the furthest evaluation got from `t0` to `t1`, on a
/// log scale of `t` (adaptive steps are short near eps and long near T, roughly even in log t);
/// with a system per sample only the count is shown. Thread-safe: per-sample systems run in parallel.
final class ODEProgress: @unchecked Sendable {
    private let what: String
    private let t0: Double, t1: Double
    private let layout: ODESystemLayout
    private let start = DispatchTime.now().uptimeNanoseconds
    private let lock = NSLock()
    private var evaluations = 0
    private var furthest = 0.0
    private var lastDraw: UInt64 = 0
    private var drawn = false
    private let terminal: Bool
    private var interval: UInt64 { terminal ? 50_000_000 : ProgressReporting.logInterval }

    /// An indicator for a solve from `t0` to `t1` (a bar on a terminal, a line every 5 s
    /// elsewhere), or nil with `--quiet`.
    init?(_ what: String, from t0: Double, to t1: Double, layout: ODESystemLayout) {
        guard !ProgressReporting.quiet, t0 > 0, t1 > 0, t0 != t1 else { return nil }
        self.what = what; self.t0 = t0; self.t1 = t1; self.layout = layout
        terminal = ProgressReporting.isTerminal
        if !terminal { lastDraw = start }
    }

    /// Records one score evaluation at time `t`.
    func record(t: Double) {
        lock.lock()
        defer { lock.unlock() }
        evaluations += 1
        furthest = max(furthest, min(1, max(0, Foundation.log(t / t0) / Foundation.log(t1 / t0))))
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - lastDraw >= interval else { return }
        lastDraw = now
        let elapsed = Double(now - start) * 1e-9
        if !terminal {
            // No reliable ETA for an adaptive solve: how far t got (one system) and the count.
            let reached = layout == .batch
                ? ", t = \(String(format: "%.4g", t0 * Foundation.pow(t1 / t0, furthest))) (\(Int(furthest * 100))% of the way in log t)" : ""
            fputs("progress: \(what)\(reached), score calls \(evaluations), \(ProgressBar.seconds(elapsed)) elapsed\n", stderr)
            fflush(stderr)
            return
        }
        var line = "\r\u{1B}[K\(what)  "
        switch layout {
        case .batch:
            let width = 24
            let filled = min(width, Int(furthest * Double(width)))
            let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
            line += "[\(bar)] \(String(format: "%3d", Int(furthest * 100)))%  t = \(String(format: "%.4g", t0 * Foundation.pow(t1 / t0, furthest)))  score calls \(evaluations)"
        case .perSample:
            line += "per-sample systems: score calls \(evaluations)"
        }
        line += String(format: "  %.1f s", elapsed)
        fputs(line, stderr)
        fflush(stderr)
        drawn = true
    }

    /// Clears the line so that what follows starts on a clean line.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        guard drawn, terminal else { return }
        fputs("\r\u{1B}[K", stderr)
        fflush(stderr)
    }
}

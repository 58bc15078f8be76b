import Foundation

/// A one-line progress bar on standard error, drawn only when standard error is a terminal and at
/// most about 20 times a second, with a caller's detail in the middle:
///
///     [=========>          ]  480/1000  48%  NFE 960  1.2 s  ETA 1.3 s                  (sampling)
///     [=========>          ]  480/1000  48%  loss 0.4213  10240 ex/s  6.0 s  ETA 6.5 s  (training)
///
/// The elapsed time and the ETA count only the steps of this process: a resumed run starts its
/// clock at its first step.
final class ProgressBar {
    private let total: Int
    private let first: Int
    private let start = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private var drawn = false
    private static let interval: UInt64 = 50_000_000   // 50 ms

    /// A bar for `total` steps starting after step `start`, or nil when standard error is not a
    /// terminal (pipes, files, CI logs).
    init?(total: Int, start: Int = 0) {
        guard isatty(STDERR_FILENO) == 1, total > 0 else { return nil }
        self.total = total; self.first = start
    }

    /// Records that `step` of `total` steps are done, with `nfe` score evaluations so far.
    func update(step: Int, nfe: Int) { update(step: step) { _ in "NFE \(nfe)" } }

    /// Records that `step` of `total` steps are done; `detail` (given the seconds elapsed) is
    /// evaluated only when the bar is drawn.
    func update(step: Int, detail: (_ elapsed: Double) -> String) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard step >= total || now - lastDraw >= Self.interval else { return }
        lastDraw = now
        let elapsed = Double(now - start) * 1e-9
        let fraction = Double(step) / Double(total)
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
        guard drawn else { return }
        fputs("\r\u{1B}[K", stderr)
        fflush(stderr)
    }

    private static func seconds(_ s: Double) -> String {
        s < 60 ? String(format: "%.1f s", s) : String(format: "%d min %02d s", Int(s) / 60, Int(s) % 60)
    }
}

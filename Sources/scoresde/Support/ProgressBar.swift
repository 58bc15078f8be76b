import Foundation

/// A one-line progress bar on standard error, drawn only when standard error is a terminal and at
/// most about 20 times a second:
///
///     [=========>          ]  480/1000  48%  NFE 960  1.2 s  ETA 1.3 s
final class ProgressBar {
    private let total: Int
    private let start = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private var drawn = false
    private static let interval: UInt64 = 50_000_000   // 50 ms

    /// A bar for `total` steps, or nil when standard error is not a terminal (pipes, files, CI logs).
    init?(total: Int) {
        guard isatty(STDERR_FILENO) == 1, total > 0 else { return nil }
        self.total = total
    }

    /// Records that `step` of `total` steps are done, with `nfe` score evaluations so far.
    func update(step: Int, nfe: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard step >= total || now - lastDraw >= Self.interval else { return }
        lastDraw = now
        let elapsed = Double(now - start) * 1e-9
        let fraction = Double(step) / Double(total)
        let width = 24
        let filled = min(width, Int(fraction * Double(width)))
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
        var line = "\r\u{1B}[K[\(bar)] \(step)/\(total) \(String(format: "%3d", Int(fraction * 100)))%  NFE \(nfe)  \(Self.seconds(elapsed))"
        if step > 0 && step < total { line += "  ETA \(Self.seconds(elapsed / fraction - elapsed))" }
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

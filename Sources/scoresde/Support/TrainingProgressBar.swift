import Foundation

/// A one-line progress bar of a training run on standard error, drawn only when standard error is
/// a terminal and at most about 10 times a second:
///
///     [=========>          ]  480/1000  48%  loss 0.4213  10240 ex/s  6.0 s  ETA 6.5 s
///
/// The loss is the caller's running mean; examples/s and the ETA count only the steps of this
/// process (a resumed run starts its clock at the checkpoint's step).
final class TrainingProgressBar {
    private let total: Int
    private let first: Int
    private let batchSize: Int
    private let start = DispatchTime.now().uptimeNanoseconds
    private var lastDraw: UInt64 = 0
    private var drawn = false
    private static let interval: UInt64 = 100_000_000   // 100 ms

    /// A bar for a run to `total` steps starting after step `start`, or nil when standard error is
    /// not a terminal (pipes, files, CI logs).
    init?(total: Int, start: Int, batchSize: Int) {
        guard isatty(STDERR_FILENO) == 1, total > 0 else { return nil }
        self.total = total; self.first = start; self.batchSize = batchSize
    }

    /// Records that `step` of `total` steps are done; `loss` is the running-mean loss.
    func update(step: Int, loss: Double) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard step >= total || now - lastDraw >= Self.interval else { return }
        lastDraw = now
        let elapsed = Double(now - start) * 1e-9
        let fraction = Double(step) / Double(total)
        let width = 24
        let filled = min(width, Int(fraction * Double(width)))
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
        let done = step - first
        let rate = elapsed > 0 ? Double(done * batchSize) / elapsed : 0
        var line = "\r\u{1B}[K[\(bar)] \(step)/\(total) \(String(format: "%3d", Int(fraction * 100)))%  loss \(String(format: "%.4g", loss))"
        line += "  \(String(format: "%.0f", rate)) ex/s  \(Self.seconds(elapsed))"
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

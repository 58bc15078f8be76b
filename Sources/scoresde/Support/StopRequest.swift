import Dispatch
import Foundation

/// Turns SIGINT (Ctrl-C) and SIGTERM into a request to stop that a long loop polls, instead of the
/// default of dying on the spot: the loop finishes its step, saves, and exits non-zero.
///
///     let stop = StopRequest()
///     defer { stop.restore() }
///     while !stop.requested { ... }
final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var signalNumber: Int32?
    private var sources = [DispatchSourceSignal]()
    private static let signals = [SIGINT, SIGTERM]

    init() {
        for s in Self.signals {
            Foundation.signal(s, SIG_IGN)   // delivered to the dispatch source instead
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { [weak self] in self?.received(s) }
            source.resume()
            sources.append(source)
        }
    }

    private func received(_ s: Int32) {
        lock.lock()
        if signalNumber == nil { signalNumber = s }
        lock.unlock()
    }

    /// True once a signal has arrived.
    var requested: Bool { signal != nil }

    /// The first signal received.
    var signal: Int32? {
        lock.lock(); defer { lock.unlock() }
        return signalNumber
    }

    /// The signal's name, e.g. `SIGINT`.
    static func name(_ s: Int32) -> String { s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : "signal \(s)" }

    /// Back to the default actions (a later signal kills the process).
    func restore() {
        for source in sources { source.cancel() }
        sources.removeAll()
        for s in Self.signals { Foundation.signal(s, SIG_DFL) }
    }
}

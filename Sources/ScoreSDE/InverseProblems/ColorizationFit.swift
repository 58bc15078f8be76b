import Foundation

/// How colourised samples fit their grey inputs and, when known, the original colours: the grey
/// kept, the colour error of each sample and of the mean of each input's samples (an estimate of
/// the posterior mean), against the grey image itself as a colour guess (every channel = grey).
///
///     let fit = try ColorizationFit(samples: x, grey: g, truth: originals, perInput: 4,
///                                   mixing: .reference, range: 0 ... 255)
public struct ColorizationFit: Sendable, Equatable {
    /// The largest |grey(sample) − grey input| over all pixels and samples.
    public let greyMaxError: Double
    /// RMSE of the samples' colours (clamped to the image range, as a saved image holds them)
    /// against the originals; nil without originals.
    public let colourRMSE: Double?
    /// RMSE of the grey image as a colour guess (every channel = grey) against the originals.
    public let greyBaselineRMSE: Double?
    /// RMSE of the mean of each input's (clamped) samples against the originals.
    public let meanColourRMSE: Double?
    /// RMSE of the samples before clamping.
    public let rawColourRMSE: Double?

    /// - Parameters:
    ///   - samples: `n·k` colour samples `[n·k, 3·H·W]` (any shape with that row size), rows
    ///     `i·k ..< (i+1)·k` belonging to input `i`.
    ///   - grey: the `n` grey inputs, `H·W` values each.
    ///   - truth: the `n` original colour images, or nil when unknown.
    ///   - k: samples per input.
    ///   - mixing: the colour → grey map the inputs were made with.
    ///   - range: the image's value range (samples are clamped to it for the colour RMSEs).
    /// - Throws: `shapeMismatch` when the shapes disagree; `invalidParameter` for `k < 1`.
    public init(samples: Tensor, grey: Tensor, truth: Tensor?, perInput k: Int, mixing: ColorMixing,
                range: ClosedRange<Double>) throws {
        try requireParameter(k >= 1, name: "perInput", value: k, requirement: ">= 1 (samples per input)")
        let hw = grey.rowSize, d = samples.rowSize, n = grey.rows
        guard d == 3 * hw, samples.rows == n * k, truth.map({ $0.rows == n && $0.rowSize == d }) ?? true else {
            throw ScoreSDEError.shapeMismatch("colorization fit: \(samples.rows) samples of \(d) values at \(k) per input need \(n) grey inputs of \(d / 3) values (got \(grey.shape)) and originals of \(d) (got \(truth.map { "\($0.shape)" } ?? "none"))")
        }
        let greys = try mixing.grey(of: samples)
        var maxError = 0.0
        for r in 0 ..< samples.rows {
            for p in 0 ..< hw { maxError = max(maxError, abs(greys.storage[r * hw + p] - grey.storage[(r / k) * hw + p])) }
        }
        greyMaxError = maxError
        guard let truth else { colourRMSE = nil; greyBaselineRMSE = nil; meanColourRMSE = nil; rawColourRMSE = nil; return }
        var squared = 0.0, baseline = 0.0, meanSquared = 0.0, rawSquared = 0.0
        for i in 0 ..< n {
            for j in 0 ..< d {
                let t = truth.storage[i * d + j], b = grey.storage[i * hw + j % hw] - t
                var mean = 0.0
                for r in i * k ..< (i + 1) * k {
                    let raw = samples.storage[r * d + j], x = min(max(raw, range.lowerBound), range.upperBound)
                    squared += (x - t) * (x - t); rawSquared += (raw - t) * (raw - t); mean += x
                }
                baseline += b * b
                meanSquared += (mean / Double(k) - t) * (mean / Double(k) - t)
            }
        }
        colourRMSE = (squared / Double(samples.count)).squareRoot()
        rawColourRMSE = (rawSquared / Double(samples.count)).squareRoot()
        let inputValues = Double(samples.count / k)
        greyBaselineRMSE = (baseline / inputValues).squareRoot()
        meanColourRMSE = (meanSquared / inputValues).squareRoot()
    }
}

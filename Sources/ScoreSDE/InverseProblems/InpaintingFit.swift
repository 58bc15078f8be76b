import Foundation

/// How inpainted samples fit their inputs: the known values kept, and the error of the unknown
/// ones against the truth — of each sample and of the mean of each input's samples (an estimate
/// of the posterior mean, whose error is smaller than a sample's by the posterior spread).
///
///     let fit = try InpaintingFit(samples: x, observed: y, truth: y, mask: m, perInput: 4)
///     print(fit.knownMaxError, fit.unknownRMSE, fit.meanRMSE)
public struct InpaintingFit: Sendable, Equatable {
    /// The largest |sample − observation| over the known values.
    public let knownMaxError: Double
    /// RMSE of the unknown values of every sample against the truth.
    public let unknownRMSE: Double
    /// RMSE of the mean of each input's samples against the truth, over the unknown values.
    public let meanRMSE: Double

    /// - Parameters:
    ///   - samples: `n·k` rows, rows `i·k ..< (i+1)·k` belonging to input `i`.
    ///   - observed: the `n` inputs (their known values are what the samples must keep).
    ///   - truth: the `n` true inputs (for a demo on held-out data, the inputs themselves).
    ///   - mask: 1 (known) / 0 (unknown), one row for all inputs or one per input.
    ///   - k: samples per input.
    /// - Throws: `shapeMismatch` when the shapes disagree; `invalidParameter` for `k < 1`.
    public init(samples: Tensor, observed: Tensor, truth: Tensor, mask: Tensor, perInput k: Int) throws {
        try requireParameter(k >= 1, name: "perInput", value: k, requirement: ">= 1 (samples per input)")
        let d = samples.rowSize, n = samples.rows / k
        guard samples.rows == n * k, observed.rows == n, truth.rows == n, observed.rowSize == d, truth.rowSize == d,
              mask.rowSize == d, mask.rows == 1 || mask.rows == n else {
            throw ScoreSDEError.shapeMismatch("inpainting fit: \(samples.rows) samples of \(d) values at \(k) per input need \(samples.rows / max(k, 1)) inputs, truths and masks (1 or one per input) of the same size; got \(observed.shape), \(truth.shape), \(mask.shape)")
        }
        var maxError = 0.0, squared = 0.0, meanSquared = 0.0, unknown = 0
        for i in 0 ..< n {
            let m = mask.rows == 1 ? 0 : i
            for j in 0 ..< d {
                var mean = 0.0
                for r in i * k ..< (i + 1) * k {
                    let s = samples.storage[r * d + j]
                    if mask.storage[m * d + j] == 1 {
                        maxError = max(maxError, abs(s - observed.storage[i * d + j]))
                    } else {
                        let e = s - truth.storage[i * d + j]
                        squared += e * e; mean += s
                    }
                }
                if mask.storage[m * d + j] == 0 {
                    let e = mean / Double(k) - truth.storage[i * d + j]
                    meanSquared += e * e; unknown += 1
                }
            }
        }
        knownMaxError = maxError
        unknownRMSE = (squared / Double(max(unknown * k, 1))).squareRoot()
        meanRMSE = (meanSquared / Double(max(unknown, 1))).squareRoot()
    }
}

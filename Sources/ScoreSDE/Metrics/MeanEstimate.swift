/// The mean of a sample with its spread: the sample standard deviation (divisor `n − 1`) and the
/// standard error of the mean, `std / √n` — the "a few standard errors" every figure of this
/// project is reported and tested with.
///
///     let e = MeanEstimate([2.1, 1.9, 2.3, 2.0])
///     print(e.mean, e.standardError)   // 2.075 ± 0.085
public struct MeanEstimate: Sendable, Equatable {
    public let count: Int
    public let mean: Double
    /// Sample standard deviation (NaN for fewer than two values).
    public let std: Double
    /// Standard error of the mean (NaN for fewer than two values).
    public let standardError: Double

    public init(_ values: [Double]) {
        count = values.count
        let n = Double(values.count)
        mean = values.reduce(0, +) / n
        if values.count > 1 {
            let m = mean
            std = (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot()
            standardError = std / n.squareRoot()
        } else {
            std = .nan; standardError = .nan
        }
    }
}

/// One step of the reverse process over an interval `t → next` (`next < t`).
///
/// A predictor updates `x` in place and returns the noise-free part of the update ("x_mean"),
/// which the sampler returns after the last step (the final denoising step). Write your own as a
/// small `Sendable` struct; the library's predictors are written exactly the same way.
public protocol Predictor: Sendable {
    func step(_ x: inout Tensor, from t: Double, to next: Double,
              along reverse: some ReverseProcess, using rng: inout RandomSource) throws -> Tensor
}

/// `n` Langevin-type refinement steps at a fixed time `t`.
public protocol Corrector: Sendable {
    func correct(_ x: inout Tensor, at t: Double,
                 along reverse: some ReverseProcess, using rng: inout RandomSource) throws
}

extension Tensor {
    /// The fused update every predictor and corrector is made of, in one pass over memory:
    /// `mean = a·x + b·s`, then `x = mean + c·z` with `z ~ N(0, I)` (one draw of `rng` when `c ≠ 0`).
    /// Returns `mean`.
    public static func affineStep(_ x: inout Tensor, xScale a: Double, score s: Tensor, scoreScale b: Double,
                                  noise c: Double, using rng: inout RandomSource) -> Tensor {
        precondition(s.count == x.count, "affineStep: score shape \(s.shape) does not match \(x.shape)")
        var mean = Tensor(zeros: x.shape)
        let d = x.rowSize, n = x.rows
        let draw = c != 0 ? rng.nextDraw() : 0, source = rng
        x.storage.withUnsafeMutableBufferPointer { xp in
            s.storage.withUnsafeBufferPointer { sp in
                mean.storage.withUnsafeMutableBufferPointer { mp in
                    let xb = xp.baseAddress!, sb = sp.baseAddress!, mb = mp.baseAddress!
                    if c == 0 {
                        Parallel.forEachChunk(n * d, grain: 1 << 14) { range in
                            for i in range { let m = a * xb[i] + b * sb[i]; mb[i] = m; xb[i] = m }
                        }
                        return
                    }
                    Tensor.forEachNoiseBlock(rows: n, rowSize: d, draw: draw, source) { range, z in
                        let zb = z - range.lowerBound * d
                        for i in range.lowerBound * d ..< range.upperBound * d {
                            let m = a * xb[i] + b * sb[i]
                            mb[i] = m; xb[i] = m + c * zb[i]
                        }
                    }
                }
            }
        }
        return mean
    }
}

/// Does nothing: corrector-only sampling (NCSN / annealed Langevin dynamics).
public struct NoPredictor: Predictor {
    public init() {}
    public func step(_ x: inout Tensor, from t: Double, to next: Double,
                     along reverse: some ReverseProcess, using rng: inout RandomSource) throws -> Tensor { x }
}

/// Does nothing: predictor-only sampling.
public struct NoCorrector: Corrector {
    public init() {}
    public func correct(_ x: inout Tensor, at t: Double, along reverse: some ReverseProcess, using rng: inout RandomSource) throws {}
}

import Foundation

/// The sinusoidal time embedding of DDPM (Ho et al. 2020, after Vaswani et al. 2017 §3.5), with
/// diffusers' `Timesteps` / `get_timestep_embedding` conventions: for `half = dim/2` frequencies
/// `f_j = exp(−ln(10000) · j / (half − shift))`, `j = 0..<half`, the features are
/// `[sin(τ f), cos(τ f)]`, swapped to `[cos, sin]` when `flipSinToCos`; an odd `dim` gets a zero last.
/// No parameters; computed in float64 and rounded once.
struct SinusoidalTimesteps {
    let dim: Int, flipSinToCos: Bool, freqShift: Double

    func forward<T: NetworkScalar>(_ tau: [Double], into y: UnsafeMutablePointer<T>) {
        let half = dim / 2
        for (b, t) in tau.enumerated() {
            let row = y + b * dim
            for j in 0 ..< half {
                let f = Foundation.exp(-Foundation.log(10000.0) * Double(j) / (Double(half) - freqShift))
                let s = Foundation.sin(t * f), c = Foundation.cos(t * f)
                row[j] = T(flipSinToCos ? c : s)
                row[half + j] = T(flipSinToCos ? s : c)
            }
            if dim % 2 == 1 { row[dim - 1] = 0 }
        }
    }
}

/// diffusers' `TimestepEmbedding`: `linear_2(SiLU(linear_1(t)))`, from the sinusoid's `C₀` features to
/// the embedding width `E = 4 C₀`.
final class TimestepEmbedding<T: NetworkScalar> {
    let linear1: Linear<T>, linear2: Linear<T>
    private let h1 = NetworkBuffer<T>(), a1 = NetworkBuffer<T>(), out = NetworkBuffer<T>()
    private let d1 = NetworkBuffer<T>(), dIn = NetworkBuffer<T>()

    init(in i: Int, embedding e: Int, parameters: ParameterLayout) {
        linear1 = Linear("linear_1", in: i, out: e, parameters: parameters)
        linear2 = Linear("linear_2", in: e, out: e, parameters: parameters)
    }

    func forward(_ t: UnsafePointer<T>, rows n: Int, parameters p: UnsafePointer<T>) -> UnsafeMutablePointer<T> {
        let e = linear1.outFeatures
        let h = h1.reserve(n * e), a = a1.reserve(n * e), y = out.reserve(n * e)
        linear1.forward(t, rows: n, parameters: p, into: h)
        SiLU<T>.forward(h, count: n * e, into: a)
        linear2.forward(a, rows: n, parameters: p, into: y)
        return y
    }

    /// Parameter gradients; the input gradient is not needed (the sinusoid has no parameters).
    func backward(_ t: UnsafePointer<T>, _ dy: UnsafePointer<T>, rows n: Int, parameters p: UnsafePointer<T>,
                  gradients g: UnsafeMutablePointer<T>) {
        let e = linear1.outFeatures
        let d = d1.reserve(n * e)
        linear2.backward(a1.pointer, dy, rows: n, parameters: p, gradients: g, dx: d)
        SiLU<T>.backward(h1.pointer, d, count: n * e, into: d)
        linear1.backward(t, d, rows: n, parameters: p, gradients: g, dx: nil)
        _ = dIn
    }
}

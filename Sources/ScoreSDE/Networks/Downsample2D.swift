/// diffusers' `Downsample2D` with `use_conv=True`: a 3×3 convolution with stride 2, parameters
/// `conv.weight`, `conv.bias`. `padding` 1 (default): symmetric padding 1 (`H → ⌈H/2⌉`: 28 → 14 → 7).
/// `padding` 0 (the published DDPM checkpoints' `downsample_padding = 0`): diffusers pads one zero
/// row and column at the bottom and right (`F.pad(x, (0, 1, 0, 1))`) and convolves without padding,
/// `H → ⌊(H − 2)/2⌋ + 1` (= H/2 for even H).
final class Downsample2D<T: NetworkScalar> {
    let conv: Conv2d<T>
    let padding: Int
    private let out = NetworkBuffer<T>(), dIn = NetworkBuffer<T>(), padded = NetworkBuffer<T>(), dPadded = NetworkBuffer<T>()

    init(channels c: Int, padding: Int = 1, parameters: ParameterLayout) {
        precondition(padding == 0 || padding == 1, "Downsample2D: padding \(padding) (0 or 1)")
        self.padding = padding
        conv = Conv2d("conv", in: c, out: c, kernel: 3, stride: 2, padding: padding, parameters: parameters)
    }

    /// The convolution's input: `x` itself, or `x` with a zero row and column appended (padding 0).
    private func input(_ x: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int) -> (UnsafePointer<T>, Int, Int) {
        guard padding == 0 else { return (x, h, w) }
        let C = conv.inChannels, ph = h + 1, pw = w + 1
        let xp = padded.reserve(n * ph * pw * C)
        xp.update(repeating: 0, count: n * ph * pw * C)
        for b in 0 ..< n { for y in 0 ..< h {
            (xp + ((b * ph + y) * pw) * C).update(from: x + ((b * h + y) * w) * C, count: w * C)
        } }
        return (UnsafePointer(xp), ph, pw)
    }

    func forward(_ x: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int, parameters p: UnsafePointer<T>) -> UnsafeMutablePointer<T> {
        let (xi, ih, iw) = input(x, batch: n, height: h, width: w)
        let (oh, ow) = conv.outputSize(height: ih, width: iw)
        let y = out.reserve(n * oh * ow * conv.outChannels)
        conv.forward(xi, batch: n, height: ih, width: iw, parameters: p, into: y)
        return y
    }

    func backward(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int,
                  parameters p: UnsafePointer<T>, gradients g: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
        let C = conv.inChannels
        let dx = dIn.reserve(n * h * w * C)
        guard padding == 0 else {
            conv.backward(x, dy, batch: n, height: h, width: w, parameters: p, gradients: g, dx: dx)
            return dx
        }
        let (xi, ph, pw) = input(x, batch: n, height: h, width: w)
        let dxp = dPadded.reserve(n * ph * pw * C)
        conv.backward(xi, dy, batch: n, height: ph, width: pw, parameters: p, gradients: g, dx: dxp)
        for b in 0 ..< n { for y in 0 ..< h {
            (dx + ((b * h + y) * w) * C).update(from: dxp + ((b * ph + y) * pw) * C, count: w * C)
        } }
        return dx
    }
}

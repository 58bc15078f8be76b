/// diffusers' `Downsample2D` with `use_conv=True, padding=1`: a 3×3 convolution with stride 2 and
/// padding 1 (`H → ⌈H/2⌉`: 28 → 14 → 7), parameters `conv.weight`, `conv.bias`.
final class Downsample2D<T: NetworkScalar> {
    let conv: Conv2d<T>
    private let out = NetworkBuffer<T>(), dIn = NetworkBuffer<T>()

    init(channels c: Int, parameters: ParameterLayout) {
        conv = Conv2d("conv", in: c, out: c, kernel: 3, stride: 2, padding: 1, parameters: parameters)
    }

    func forward(_ x: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int, parameters p: UnsafePointer<T>) -> UnsafeMutablePointer<T> {
        let (oh, ow) = conv.outputSize(height: h, width: w)
        let y = out.reserve(n * oh * ow * conv.outChannels)
        conv.forward(x, batch: n, height: h, width: w, parameters: p, into: y)
        return y
    }

    func backward(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int,
                  parameters p: UnsafePointer<T>, gradients g: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
        let dx = dIn.reserve(n * h * w * conv.inChannels)
        conv.backward(x, dy, batch: n, height: h, width: w, parameters: p, gradients: g, dx: dx)
        return dx
    }
}

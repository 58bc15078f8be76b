/// diffusers' `Upsample2D` with `use_conv=True`: nearest-neighbour ×2 (`F.interpolate(scale_factor=2,
/// mode="nearest")`, `u[2y + a, 2x + b] = x[y, x]`) then a 3×3 convolution with padding 1
/// (parameters `conv.weight`, `conv.bias`). Backward of the upsampling sums each 2×2 block.
final class Upsample2D<T: NetworkScalar> {
    let conv: Conv2d<T>
    private let up = NetworkBuffer<T>(), out = NetworkBuffer<T>(), dIn = NetworkBuffer<T>()
    private let scratch: BackwardScratch<T>
    private var dUp: NetworkBuffer<T> { scratch.a }

    init(channels c: Int, parameters: ParameterLayout, scratch: BackwardScratch<T> = BackwardScratch()) {
        self.scratch = scratch
        conv = Conv2d("conv", in: c, out: c, kernel: 3, stride: 1, padding: 1, parameters: parameters)
    }

    func forward(_ x: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int, parameters p: UnsafePointer<T>) -> UnsafeMutablePointer<T> {
        let c = conv.inChannels, H = 2 * h, W = 2 * w
        let u = up.reserve(n * H * W * c)
        for b in 0 ..< n { for y in 0 ..< H { for xx in 0 ..< W {
            (u + ((b * H + y) * W + xx) * c).update(from: x + ((b * h + y / 2) * w + xx / 2) * c, count: c)
        } } }
        let o = out.reserve(n * H * W * conv.outChannels)
        conv.forward(u, batch: n, height: H, width: W, parameters: p, into: o)
        return o
    }

    func backward(_ dy: UnsafePointer<T>, batch n: Int, height h: Int, width w: Int,
                  parameters p: UnsafePointer<T>, gradients g: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
        let c = conv.inChannels, H = 2 * h, W = 2 * w
        let du = dUp.reserve(n * H * W * c)
        conv.backward(up.pointer, dy, batch: n, height: H, width: W, parameters: p, gradients: g, dx: du)
        let dx = dIn.reserve(n * h * w * c)
        dx.update(repeating: 0, count: n * h * w * c)
        for b in 0 ..< n { for y in 0 ..< H { for xx in 0 ..< W {
            let s = du + ((b * H + y) * W + xx) * c, d = dx + ((b * h + y / 2) * w + xx / 2) * c
            for k in 0 ..< c { d[k] += s[k] }
        } } }
        return dx
    }
}

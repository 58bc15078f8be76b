import Foundation
import Testing
@testable import ScoreSDE

// Layer gradients of the U-Net (Networks/): every hand-written backward against central differences
// of the float64 twin, and every float32 (oneDNN) layer against the float64 one to float32 rounding.
//
// Central differences: for L(θ) = Σ w·y with smooth layers, (L(θ+h) − L(θ−h))/2h − L'(θ) has a
// truncation term h²/6 · L''' and a rounding term ≈ ε·|L|/h; with h = 1e-5 and |L|, L''' = O(10)
// both are below 1e-8. We require |analytic − numeric| ≤ 1e-6 · (1 + |numeric|).
//
// Float32 against float64 (same float32-representable inputs and parameters, so only the arithmetic
// differs): an output that sums K products carries a rounding error ≤ γ_K Σ|w x| with γ_K ≈ K·u
// (u = 2⁻²⁴) in the worst case and ≈ √K·u typically (random signs of the individual roundings).
// oneDNN's blocked kernels and GEMM sum in several partial sums, which only lowers the error. We
// require |y₃₂ − y₆₄| ≤ 4 √K u · Σ|w||x| + 4u|y| elementwise, with Σ|w||x| computed independently by
// the float64 layer on |w| and |x|.

/// Deterministic values in [−1, 1), rounded to float32 so the two precisions see the same inputs.
func testValues(_ n: Int, seed: UInt64, scale: Double = 1) -> [Double] {
    var s = RandomSource(seed: seed).stream(draw: 0, row: 0)
    return (0 ..< n).map { _ in Double(Float(scale * (2 * (Double(s.next() >> 11) * 0x1p-53) - 1))) }
}

/// Checks `analytic` against central differences of `loss` at up to `samples` indices of `v`.
func checkCentralDifferences(_ v: [Double], analytic: [Double], samples: Int = 24, seed: UInt64 = 1,
                             h: Double = 1e-5, _ what: String, loss: ([Double]) -> Double) {
    #expect(analytic.count == v.count)
    var s = RandomSource(seed: seed).stream(draw: 7, row: 0)
    let idx = v.count <= samples ? Array(0 ..< v.count) : (0 ..< samples).map { _ in Int(s.next() % UInt64(v.count)) }
    var worst = 0.0
    for i in idx {
        var a = v, b = v
        a[i] += h; b[i] -= h
        let num = (loss(a) - loss(b)) / (2 * h)
        let err = abs(analytic[i] - num) / (1 + abs(num))
        worst = max(worst, err)
        #expect(err <= 1e-6, "\(what)[\(i)]: analytic \(analytic[i]) vs central difference \(num)")
    }
    _ = worst
}

/// A layer under test: forward `x → y` with parameters `p`, and backward giving (dp, dx) for `dy`.
struct LayerHarness<T: NetworkScalar> {
    let parameterCount: Int, inputCount: Int, outputCount: Int
    let forward: ([T], [T]) -> [T]
    let backward: ([T], [T], [T]) -> (dp: [T], dx: [T])   // p, x, dy
}

func gradientCheck(_ make: () -> LayerHarness<Double>, _ what: String, seed: UInt64) {
    let L = make()
    let p = testValues(L.parameterCount, seed: seed, scale: 0.5), x = testValues(L.inputCount, seed: seed + 1)
    let w = testValues(L.outputCount, seed: seed + 2)
    func loss(_ p: [Double], _ x: [Double]) -> Double { zip(L.forward(p, x), w).reduce(0) { $0 + $1.0 * $1.1 } }
    _ = L.forward(p, x)
    let (dp, dx) = L.backward(p, x, w)
    checkCentralDifferences(p, analytic: dp, seed: seed, "\(what) parameters") { loss($0, x) }
    if L.inputCount > 0 { checkCentralDifferences(x, analytic: dx, seed: seed + 3, "\(what) input") { loss(p, $0) } }
}

func float32Check(_ make32: () -> LayerHarness<Float>, _ make64: () -> LayerHarness<Double>, terms K: Int,
                  _ what: String, seed: UInt64) {
    let f = make32(), d = make64()
    let p = testValues(d.parameterCount, seed: seed, scale: 0.5), x = testValues(d.inputCount, seed: seed + 1)
    let y64 = d.forward(p, x)
    let y32 = f.forward(p.map { Float($0) }, x.map { Float($0) })
    let absTerms = d.forward(p.map { abs($0) }, x.map { abs($0) })
    let u = 0x1p-24, k = 4 * Double(K).squareRoot() * u
    var worst = 0.0
    for i in y64.indices {
        let bound = k * absTerms[i] + 4 * u * abs(y64[i])
        worst = max(worst, abs(Double(y32[i]) - y64[i]) / bound)
        #expect(abs(Double(y32[i]) - y64[i]) <= bound, "\(what) output \(i): \(y32[i]) vs \(y64[i]) (bound \(bound))")
        if abs(Double(y32[i]) - y64[i]) > bound { break }
    }
}

// MARK: - Harnesses

func convHarness<T: NetworkScalar>(_: T.Type, n: Int, h: Int, w: Int, ci: Int, co: Int, k: Int, stride: Int, pad: Int) -> LayerHarness<T> {
    let layout = ParameterLayout()
    let conv = Conv2d<T>("c", in: ci, out: co, kernel: k, stride: stride, padding: pad, parameters: layout)
    let (oh, ow) = conv.outputSize(height: h, width: w)
    return LayerHarness(parameterCount: layout.count, inputCount: n * h * w * ci, outputCount: n * oh * ow * co,
        forward: { p, x in
            var y = [T](repeating: 0, count: n * oh * ow * co)
            conv.forward(x, batch: n, height: h, width: w, parameters: p, into: &y)
            return y
        }, backward: { p, x, dy in
            var dp = [T](repeating: 0, count: layout.count), dx = [T](repeating: 0, count: x.count)
            dp.withUnsafeMutableBufferPointer { g in dx.withUnsafeMutableBufferPointer { d in
                conv.backward(x, dy, batch: n, height: h, width: w, parameters: p, gradients: g.baseAddress!, dx: d.baseAddress!) } }
            return (dp, dx)
        })
}

func linearHarness<T: NetworkScalar>(_: T.Type, rows: Int, i: Int, o: Int) -> LayerHarness<T> {
    let layout = ParameterLayout()
    let lin = Linear<T>("l", in: i, out: o, parameters: layout)
    return LayerHarness(parameterCount: layout.count, inputCount: rows * i, outputCount: rows * o,
        forward: { p, x in var y = [T](repeating: 0, count: rows * o); lin.forward(x, rows: rows, parameters: p, into: &y); return y },
        backward: { p, x, dy in
            var dp = [T](repeating: 0, count: layout.count), dx = [T](repeating: 0, count: x.count)
            dp.withUnsafeMutableBufferPointer { g in dx.withUnsafeMutableBufferPointer { d in
                lin.backward(x, dy, rows: rows, parameters: p, gradients: g.baseAddress!, dx: d.baseAddress!) } }
            return (dp, dx)
        })
}

func groupNormHarness<T: NetworkScalar>(_: T.Type, n: Int, P: Int, c: Int, groups: Int) -> LayerHarness<T> {
    let layout = ParameterLayout()
    let gn = GroupNorm<T>("g", channels: c, groups: groups, epsilon: 1e-5, parameters: layout)
    return LayerHarness(parameterCount: layout.count, inputCount: n * P * c, outputCount: n * P * c,
        forward: { p, x in var y = [T](repeating: 0, count: x.count); gn.forward(x, batch: n, pixels: P, parameters: p, into: &y); return y },
        backward: { p, x, dy in
            var y = [T](repeating: 0, count: x.count)
            gn.forward(x, batch: n, pixels: P, parameters: p, into: &y)
            var dp = [T](repeating: 0, count: layout.count), dx = [T](repeating: 0, count: x.count)
            dp.withUnsafeMutableBufferPointer { g in dx.withUnsafeMutableBufferPointer { d in
                gn.backward(x, dy, batch: n, pixels: P, parameters: p, gradients: g.baseAddress!, dx: d.baseAddress!) } }
            return (dp, dx)
        })
}

func siluHarness<T: NetworkScalar>(_: T.Type, count: Int) -> LayerHarness<T> {
    LayerHarness(parameterCount: 0, inputCount: count, outputCount: count,
        forward: { _, x in var y = [T](repeating: 0, count: count); SiLU<T>.forward(x, count: count, into: &y); return y },
        backward: { _, x, dy in var dx = [T](repeating: 0, count: count); SiLU<T>.backward(x, dy, count: count, into: &dx); return ([], dx) })
}

func attentionHarness<T: NetworkScalar>(_: T.Type, n: Int, P: Int, c: Int, groups: Int) -> LayerHarness<T> {
    let layout = ParameterLayout()
    let at = Attention<T>(channels: c, groups: groups, epsilon: 1e-5, parameters: layout)
    return LayerHarness(parameterCount: layout.count, inputCount: n * P * c, outputCount: n * P * c,
        forward: { p, x in Array(UnsafeBufferPointer(start: at.forward(x, batch: n, pixels: P, parameters: p), count: x.count)) },
        backward: { p, x, dy in
            x.withUnsafeBufferPointer { xp in _ = at.forward(xp.baseAddress!, batch: n, pixels: P, parameters: p)
                var dp = [T](repeating: 0, count: layout.count)
                let dx = dp.withUnsafeMutableBufferPointer { g in at.backward(xp.baseAddress!, dy, batch: n, pixels: P, parameters: p, gradients: g.baseAddress!) }
                return (dp, Array(UnsafeBufferPointer(start: dx, count: x.count)))
            }
        })
}

/// A residual block whose input is the layer input and whose `SiLU(emb)` is the last `n·E` parameters.
func resnetHarness<T: NetworkScalar>(_: T.Type, n: Int, h: Int, w: Int, ci: Int, co: Int, e: Int, groups: Int) -> LayerHarness<T> {
    let layout = ParameterLayout()
    let r = ResnetBlock2D<T>(in: ci, out: co, embedding: e, groups: groups, epsilon: 1e-5, dropout: 0, parameters: layout)
    let np = layout.count
    return LayerHarness(parameterCount: np + n * e, inputCount: n * h * w * ci, outputCount: n * h * w * co,
        forward: { p, x in
            let ea = Array(p[np...])
            return Array(UnsafeBufferPointer(start: r.forward(x, embAct: ea, batch: n, height: h, width: w, parameters: p, dropoutSeed: nil), count: n * h * w * co))
        }, backward: { p, x, dy in
            let ea = Array(p[np...])
            return x.withUnsafeBufferPointer { xp in
                _ = r.forward(xp.baseAddress!, embAct: ea, batch: n, height: h, width: w, parameters: p, dropoutSeed: nil)
                var dp = [T](repeating: 0, count: np + n * e)
                let dx = dp.withUnsafeMutableBufferPointer { g in
                    r.backward(xp.baseAddress!, dy, embAct: ea, dEmbAct: g.baseAddress! + np, batch: n, height: h, width: w, parameters: p, gradients: g.baseAddress!) }
                return (dp, Array(UnsafeBufferPointer(start: dx, count: x.count)))
            }
        })
}

func upsampleHarness<T: NetworkScalar>(_: T.Type, n: Int, h: Int, w: Int, c: Int) -> LayerHarness<T> {
    let layout = ParameterLayout()
    let u = Upsample2D<T>(channels: c, parameters: layout)
    return LayerHarness(parameterCount: layout.count, inputCount: n * h * w * c, outputCount: n * 4 * h * w * c,
        forward: { p, x in Array(UnsafeBufferPointer(start: u.forward(x, batch: n, height: h, width: w, parameters: p), count: n * 4 * h * w * c)) },
        backward: { p, x, dy in
            _ = u.forward(x, batch: n, height: h, width: w, parameters: p)
            var dp = [T](repeating: 0, count: layout.count)
            let dx = dp.withUnsafeMutableBufferPointer { g in u.backward(dy, batch: n, height: h, width: w, parameters: p, gradients: g.baseAddress!) }
            return (dp, Array(UnsafeBufferPointer(start: dx, count: x.count)))
        })
}

@Suite("Network layers") struct NetworkLayerTests {
    @Test func convolutionGradients() {
        gradientCheck({ convHarness(Double.self, n: 2, h: 5, w: 4, ci: 3, co: 4, k: 3, stride: 1, pad: 1) }, "conv 3×3", seed: 10)
        gradientCheck({ convHarness(Double.self, n: 2, h: 6, w: 6, ci: 2, co: 3, k: 3, stride: 2, pad: 1) }, "conv 3×3 stride 2", seed: 20)
        gradientCheck({ convHarness(Double.self, n: 2, h: 7, w: 7, ci: 2, co: 3, k: 3, stride: 2, pad: 1) }, "conv 3×3 stride 2, odd size", seed: 25)
        gradientCheck({ convHarness(Double.self, n: 2, h: 3, w: 4, ci: 5, co: 2, k: 1, stride: 1, pad: 0) }, "conv 1×1", seed: 30)
    }

    /// The im2col twin against the convolution written out as its defining sum.
    @Test func convolutionMatchesDefinition() {
        let (n, h, w, ci, co) = (2, 5, 6, 3, 2)
        for (k, s, pad) in [(3, 1, 1), (3, 2, 1), (1, 1, 0)] {
            let L = convHarness(Double.self, n: n, h: h, w: w, ci: ci, co: co, k: k, stride: s, pad: pad)
            let p = testValues(L.parameterCount, seed: 5), x = testValues(L.inputCount, seed: 6)
            let y = L.forward(p, x)
            let oh = (h + 2 * pad - k) / s + 1, ow = (w + 2 * pad - k) / s + 1
            for b in 0 ..< n { for oy in 0 ..< oh { for ox in 0 ..< ow { for o in 0 ..< co {
                var sum = p[co * ci * k * k + o]
                for c in 0 ..< ci { for ky in 0 ..< k { for kx in 0 ..< k {
                    let iy = s * oy + ky - pad, ix = s * ox + kx - pad
                    if iy >= 0 && iy < h && ix >= 0 && ix < w { sum += p[((o * ci + c) * k + ky) * k + kx] * x[((b * h + iy) * w + ix) * ci + c] }
                } } }
                #expect(abs(y[((b * oh + oy) * ow + ox) * co + o] - sum) <= 1e-13)
            } } } }
        }
    }

    @Test func linearGroupNormSiLUGradients() {
        gradientCheck({ linearHarness(Double.self, rows: 3, i: 5, o: 4) }, "linear", seed: 40)
        gradientCheck({ groupNormHarness(Double.self, n: 2, P: 6, c: 6, groups: 3) }, "group norm", seed: 50)
        gradientCheck({ siluHarness(Double.self, count: 20) }, "SiLU", seed: 60)
    }

    @Test func blockGradients() {
        gradientCheck({ attentionHarness(Double.self, n: 2, P: 5, c: 4, groups: 2) }, "attention", seed: 70)
        gradientCheck({ resnetHarness(Double.self, n: 2, h: 3, w: 4, ci: 4, co: 6, e: 5, groups: 2) }, "resnet (shortcut)", seed: 80)
        gradientCheck({ resnetHarness(Double.self, n: 2, h: 3, w: 3, ci: 4, co: 4, e: 3, groups: 2) }, "resnet (identity)", seed: 90)
        gradientCheck({ upsampleHarness(Double.self, n: 2, h: 2, w: 3, c: 2) }, "upsample", seed: 100)
    }

    /// oneDNN's float32 convolutions (all three directions) against the float64 twin.
    @Test func float32ConvolutionMatchesFloat64() {
        for (k, s, pad, ci, co) in [(3, 1, 1, 16, 32), (3, 2, 1, 16, 16), (1, 1, 0, 32, 16), (3, 1, 1, 1, 16)] {
            let n = 3, h = 14, w = 14
            let K = ci * k * k
            float32Check({ convHarness(Float.self, n: n, h: h, w: w, ci: ci, co: co, k: k, stride: s, pad: pad) },
                         { convHarness(Double.self, n: n, h: h, w: w, ci: ci, co: co, k: k, stride: s, pad: pad) },
                         terms: K + 1, "conv \(k)×\(k)/\(s) \(ci)→\(co)", seed: 200)
            // Backward: dW sums n·oh·ow products, dx sums co·k² (stride 1) products.
            let f = convHarness(Float.self, n: n, h: h, w: w, ci: ci, co: co, k: k, stride: s, pad: pad)
            let d = convHarness(Double.self, n: n, h: h, w: w, ci: ci, co: co, k: k, stride: s, pad: pad)
            let p = testValues(d.parameterCount, seed: 300, scale: 0.5), x = testValues(d.inputCount, seed: 301)
            let dy = testValues(d.outputCount, seed: 302)
            let (dp64, dx64) = d.backward(p, x, dy)
            let (dp32, dx32) = f.backward(p.map { Float($0) }, x.map { Float($0) }, dy.map { Float($0) })
            let (dpAbs, dxAbs) = d.backward(p.map { abs($0) }, x.map { abs($0) }, dy.map { abs($0) })
            let oh = (h + 2 * pad - k) / s + 1
            let u = 0x1p-24
            let kW = 4 * Double(n * oh * oh).squareRoot() * u, kX = 4 * Double(co * k * k).squareRoot() * u
            for i in dp64.indices { #expect(abs(Double(dp32[i]) - dp64[i]) <= kW * dpAbs[i] + 4 * u * abs(dp64[i]), "dW[\(i)]") }
            for i in dx64.indices { #expect(abs(Double(dx32[i]) - dx64[i]) <= kX * dxAbs[i] + 4 * u * abs(dx64[i]), "dx[\(i)]") }
        }
    }

    @Test func float32LinearMatchesFloat64() {
        float32Check({ linearHarness(Float.self, rows: 20, i: 64, o: 32) }, { linearHarness(Double.self, rows: 20, i: 64, o: 32) },
                     terms: 65, "linear", seed: 400)
    }
}

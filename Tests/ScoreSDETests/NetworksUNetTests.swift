import Foundation
import Testing
@testable import ScoreSDE

// The whole U-Net: its gradient (every parameter tensor, the class embedding and the input) against
// central differences in float64 on a tiny configuration with every kind of block, and the float32
// network against the float64 one on the same (float32-representable) weights.

/// 4×4 images, two levels (4 → 2), attention on the lowest level and in the middle, 2 classes.
let tinyUNet = UNetConfiguration(imageSize: 4, channels: 2, blockOutChannels: [4, 8], layersPerBlock: 1,
                                 attentionLevels: [false, true], midBlockAttention: true, normGroups: 2, classCount: 2)

func nhwc(_ n: Int, _ c: UNetConfiguration, seed: UInt64) -> [Double] {
    testValues(n * c.imageSize * c.imageSize * c.channels, seed: seed)
}

@Suite("U-Net") struct NetworksUNetTests {
    @Test func parameterNamesAreDiffusers() throws {
        let net = try UNet<Double>(UNetConfiguration(imageSize: 28, blockOutChannels: [32, 64, 64], layersPerBlock: 1,
                                                     attentionLevels: [false, false, true], classCount: 10))
        let names = Set(net.layout.refs.map(\.name))
        for n in ["conv_in.weight", "time_embedding.linear_1.weight", "time_embedding.linear_2.bias", "class_embedding.weight",
                  "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.resnets.0.time_emb_proj.weight",
                  "down_blocks.0.downsamplers.0.conv.weight", "down_blocks.1.resnets.0.conv_shortcut.weight",
                  "down_blocks.2.attentions.0.to_q.weight", "down_blocks.2.attentions.0.group_norm.bias",
                  "mid_block.resnets.0.conv1.weight", "mid_block.attentions.0.to_out.0.weight", "mid_block.resnets.1.norm2.bias",
                  "up_blocks.0.resnets.1.conv_shortcut.weight", "up_blocks.0.attentions.1.to_v.bias",
                  "up_blocks.1.upsamplers.0.conv.weight", "up_blocks.2.resnets.1.conv2.weight",
                  "conv_norm_out.weight", "conv_out.bias"] {
            #expect(names.contains(n), "missing \(n)")
        }
        #expect(!names.contains("up_blocks.2.upsamplers.0.conv.weight"))
        #expect(!names.contains("down_blocks.2.downsamplers.0.conv.weight"))
        // diffusers' channel rule: resnet j of an up block takes (j == 0 ? previous level's out : out) +
        // (j == last ? the next-lower level's channels : out).
        func shape(_ n: String) -> [Int]? { net.layout.refs.first { $0.name == n }?.shape }
        #expect(shape("up_blocks.2.resnets.0.conv1.weight") == [32, 64 + 32, 3, 3])
        #expect(shape("up_blocks.2.resnets.1.conv1.weight") == [32, 32 + 32, 3, 3])
        #expect(shape("up_blocks.0.resnets.1.conv1.weight") == [64, 64 + 64, 3, 3])
        #expect(shape("up_blocks.1.resnets.1.conv1.weight") == [64, 64 + 32, 3, 3])
        #expect(shape("down_blocks.1.resnets.0.conv1.weight") == [64, 32, 3, 3])
        #expect(net.layout.refs.first { $0.name == "class_embedding.weight" }!.shape == [11, 128])
    }

    @Test func wholeNetworkGradient() throws {
        let c = tinyUNet, n = 3
        let net = try UNet<Double>(c)
        net.initialize(seed: 3)
        // Larger weights than the init so that every path carries signal.
        for i in 0 ..< net.parameterCount { net.parameters[i] *= 1.5 }
        let x = nhwc(n, c, seed: 11), tau = [3.0, 250.0, 900.0], labels = [0, 2, 1]
        let w = nhwc(n, c, seed: 12)
        func loss() -> Double {
            let y = net.forward(x, tau: tau, labels: labels)
            return (0 ..< w.count).reduce(0) { $0 + w[$1] * y[$1] }
        }
        _ = x.withUnsafeBufferPointer { xp in net.forward(xp.baseAddress!, tau: tau, labels: labels) }
        let dx = x.withUnsafeBufferPointer { xp -> [Double] in
            _ = net.forward(xp.baseAddress!, tau: tau, labels: labels)
            return Array(UnsafeBufferPointer(start: net.backward(w), count: x.count))
        }
        let grads = Array(UnsafeBufferPointer(start: net.gradients, count: net.parameterCount))
        // Every tensor: up to 3 entries each.
        let h = 1e-5
        var checked = 0
        for r in net.layout.refs {
            for j in Swift.stride(from: r.offset, to: r.offset + r.count, by: max(1, r.count / 3)).prefix(3) {
                let v = net.parameters[j]
                net.parameters[j] = v + h; let a = loss()
                net.parameters[j] = v - h; let b = loss()
                net.parameters[j] = v
                let num = (a - b) / (2 * h)
                #expect(abs(grads[j] - num) <= 1e-6 * (1 + abs(num)), "\(r.name)[\(j - r.offset)]: \(grads[j]) vs \(num)")
                checked += 1
            }
        }
        #expect(checked > 150)
        var xs = x
        for i in Swift.stride(from: 0, to: x.count, by: 7) {
            let v = xs[i]
            xs[i] = v + h; let a = { let y = net.forward(xs, tau: tau, labels: labels); return (0 ..< w.count).reduce(0) { $0 + w[$1] * y[$1] } }()
            xs[i] = v - h; let b = { let y = net.forward(xs, tau: tau, labels: labels); return (0 ..< w.count).reduce(0) { $0 + w[$1] * y[$1] } }()
            xs[i] = v
            let num = (a - b) / (2 * h)
            #expect(abs(dx[i] - num) <= 1e-6 * (1 + abs(num)), "input[\(i)]: \(dx[i]) vs \(num)")
        }
    }

    /// Float32 network against float64 on the same weights. Each layer's output carries ≲ 4√K u of
    /// its terms' magnitude (NetworksTests); through the ~20 layers of this network, with GroupNorm
    /// renormalising at each block, the relative output error stays of order 20 · 4√K u ≈ 20 · 4 · 20 ·
    /// 6e-8 ≈ 1e-4 of the output scale. We require max|y₃₂ − y₆₄| ≤ 1e-4 · max|y₆₄| and the same for the
    /// parameter gradient.
    @Test func float32NetworkMatchesFloat64() throws {
        let c = UNetConfiguration(imageSize: 8, channels: 1, blockOutChannels: [16, 32], layersPerBlock: 1,
                                  attentionLevels: [false, true], normGroups: 4, classCount: 3)
        let n = 4
        let d = try UNet<Double>(c), f = try UNet<Float>(c)
        d.initialize(seed: 5)
        for i in 0 ..< d.parameterCount { d.parameters[i] = Double(Float(d.parameters[i])); f.parameters[i] = Float(d.parameters[i]) }
        let x = nhwc(n, c, seed: 21), tau = [1.0, 100.0, 500.0, 999.0], labels = [0, 1, 2, 3]
        let y64 = Array(UnsafeBufferPointer(start: d.forward(x, tau: tau, labels: labels), count: x.count))
        let x32 = x.map { Float($0) }
        let y32 = Array(UnsafeBufferPointer(start: f.forward(x32, tau: tau, labels: labels), count: x.count))
        let scale = y64.map { abs($0) }.max()!
        let err = zip(y32, y64).map { abs(Double($0) - $1) }.max()!
        #expect(err <= 1e-4 * scale, "forward: max error \(err), output scale \(scale)")
        let w = nhwc(n, c, seed: 22)
        _ = d.forward(x, tau: tau, labels: labels); d.backward(w)
        _ = f.forward(x32, tau: tau, labels: labels); f.backward(w.map { Float($0) })
        // Each tensor against its own gradient scale, floored at 1e-3 of the largest gradient: the
        // attention key biases (`to_k.bias`) have gradient exactly 0 (adding q·b to every logit of a
        // query leaves its softmax unchanged), so both precisions return rounding noise there.
        let global = (0 ..< d.parameterCount).map { abs(d.gradients[$0]) }.max()!
        for r in d.layout.refs {
            let g64 = (r.range).map { d.gradients[$0] }, g32 = (r.range).map { Double(f.gradients[$0]) }
            let s = max(g64.map { abs($0) }.max()!, 1e-3 * global)
            let e = zip(g32, g64).map { abs($0 - $1) }.max()!
            #expect(e <= 1e-4 * s, "\(r.name): gradient error \(e), scale \(s)")
        }
    }

    /// Same inputs, same thread count: the same bytes (oneDNN splits work statically per thread count).
    @Test func float32IsReproducibleAtFixedThreads() throws {
        let c = UNetConfiguration(imageSize: 8, channels: 1, blockOutChannels: [16, 32], layersPerBlock: 1,
                                  attentionLevels: [false, true], normGroups: 4)
        let f = try UNet<Float>(c), g = try UNet<Float>(c)
        f.initialize(seed: 9); g.initialize(seed: 9)
        let x = nhwc(8, c, seed: 31).map { Float($0) }, tau = (0 ..< 8).map { Double($0) * 100 }
        let a = Array(UnsafeBufferPointer(start: f.forward(x, tau: tau), count: x.count))
        let b = Array(UnsafeBufferPointer(start: g.forward(x, tau: tau), count: x.count))
        #expect(a == b)
        f.backward(x); g.backward(x)
        #expect((0 ..< f.parameterCount).allSatisfy { f.gradients[$0] == g.gradients[$0] })
    }
}

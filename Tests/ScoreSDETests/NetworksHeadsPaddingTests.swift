import Foundation
import Testing
@testable import ScoreSDE

// The U-Net options that diffusers checkpoints need beyond our defaults: several attention heads
// (`attention_head_dim`) and `downsample_padding = 0`. Gradient against central differences in
// float64, float32 against float64, and the metadata round trip.

@Suite("U-Net heads and downsample padding") struct NetworksHeadsPaddingTests {
    /// 4×4 images, two levels, attention (2 heads of 2 channels, and 4 in the middle) with padding 0.
    static var config: UNetConfiguration {
        var c = UNetConfiguration(imageSize: 4, channels: 2, blockOutChannels: [4, 8], layersPerBlock: 1,
                                  attentionLevels: [true, true], midBlockAttention: true, normGroups: 2, classCount: 2)
        c.attentionHeadDim = 2
        c.downsamplePadding = 0
        return c
    }

    @Test func gradientMatchesCentralDifferences() throws {
        let c = Self.config, n = 2
        let net = try UNet<Double>(c)
        net.initialize(seed: 5)
        for i in 0 ..< net.parameterCount { net.parameters[i] *= 1.5 }
        let x = nhwc(n, c, seed: 21), tau = [7.0, 600.0], labels = [1, 2]
        let w = nhwc(n, c, seed: 22)
        func loss(_ xs: [Double]) -> Double {
            let y = net.forward(xs, tau: tau, labels: labels)
            return (0 ..< w.count).reduce(0) { $0 + w[$1] * y[$1] }
        }
        let dx = x.withUnsafeBufferPointer { xp -> [Double] in
            _ = net.forward(xp.baseAddress!, tau: tau, labels: labels)
            return Array(UnsafeBufferPointer(start: net.backward(w), count: x.count))
        }
        let grads = Array(UnsafeBufferPointer(start: net.gradients, count: net.parameterCount))
        let h = 1e-5
        for r in net.layout.refs where r.name.contains("attentions") || r.name.contains("downsamplers") || r.name.hasPrefix("conv_in") {
            for j in Swift.stride(from: r.offset, to: r.offset + r.count, by: max(1, r.count / 3)).prefix(3) {
                let v = net.parameters[j]
                net.parameters[j] = v + h; let a = loss(x)
                net.parameters[j] = v - h; let b = loss(x)
                net.parameters[j] = v
                let num = (a - b) / (2 * h)
                #expect(abs(grads[j] - num) <= 1e-6 * (1 + abs(num)), "\(r.name)[\(j - r.offset)]: \(grads[j]) vs \(num)")
            }
        }
        var xs = x
        for i in Swift.stride(from: 0, to: x.count, by: 5) {
            let v = xs[i]
            xs[i] = v + h; let a = loss(xs)
            xs[i] = v - h; let b = loss(xs)
            xs[i] = v
            let num = (a - b) / (2 * h)
            #expect(abs(dx[i] - num) <= 1e-6 * (1 + abs(num)), "input[\(i)]: \(dx[i]) vs \(num)")
        }
    }

    /// `attention_head_dim` equal to every attention block's channels is one head: the same output as nil.
    @Test func headDimEqualToChannelsIsOneHead() throws {
        var one = Self.config, same = Self.config
        one.attentionLevels = [false, true]; same.attentionLevels = [false, true]
        one.attentionHeadDim = nil; same.attentionHeadDim = 8          // level 1 and the middle have 8 channels
        let netOne = try UNet<Double>(one), netSame = try UNet<Double>(same)
        netOne.initialize(seed: 2)
        for i in 0 ..< netOne.parameterCount { netSame.parameters[i] = netOne.parameters[i] }
        let x = nhwc(1, one, seed: 4)
        let a = Array(UnsafeBufferPointer(start: netOne.forward(x, tau: [10], labels: [0]), count: x.count))
        let b = Array(UnsafeBufferPointer(start: netSame.forward(x, tau: [10], labels: [0]), count: x.count))
        #expect(a == b)
    }

    /// The options survive the model file (metadata written only when not the default).
    @Test func metadataRoundTrip() throws {
        let c = Self.config
        let model = try UNetScore(configuration: c, sde: .vp(betaMin: 0.1, betaMax: 20), seed: 3)
        let path = NSTemporaryDirectory() + "scoresde-heads-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try model.write(to: path)
        let back = try UNetScore.read(path)
        #expect(back.configuration == c)
        #expect(UNetConfiguration().metadata["unet.attention_head_dim"] == nil)
        #expect(UNetConfiguration().metadata["unet.downsample_padding"] == nil)
    }
}

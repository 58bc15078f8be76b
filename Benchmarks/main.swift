import ScoreSDE
import Foundation
func cpu() -> Double { var ts = timespec(); clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9 }
let sde = try VESDE()
let mix = GaussianMixture.ring()
let score = GaussianMixtureScore(mix, diffusedBy: sde)
var rng = RandomSource(seed: 1)
var x = Tensor.standardNormal(shape: [4096, 2], using: &rng)
let ITER = Int(CommandLine.arguments.dropFirst().first ?? "2000")!
Parallel.$threadLimit.withValue(1) {
var t0 = cpu()
for i in 0..<ITER { _ = try! score.score(x, at: 0.5 + Double(i) * 1e-5) }
print("score", cpu() - t0)
t0 = cpu()
for _ in 0..<ITER { x.addStandardNormal(scaledBy: 1e-3, using: &rng) }
print("normals", cpu() - t0)
t0 = cpu()
let s = try! score.score(x, at: 0.5)
for _ in 0..<ITER { _ = Tensor.affineStep(&x, xScale: 1, score: s, scoreScale: 0.001, noise: 0.001, using: &rng) }
print("affine", cpu() - t0)
t0 = cpu()
for _ in 0..<ITER { _ = Tensor.affineStep(&x, xScale: 1, score: s, scoreScale: 0.001, noise: 0, using: &rng) }
print("affine no noise", cpu() - t0)
}

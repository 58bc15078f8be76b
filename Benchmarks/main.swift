import ScoreSDE
import Foundation
let sde = try VESDE()
let mix = GaussianMixture.ring()
let score = GaussianMixtureScore(mix, diffusedBy: sde)
var rng = RandomSource(seed: 1)
var x = Tensor.standardNormal(shape: [4096, 2], using: &rng)
Parallel.$threadLimit.withValue(1) {
var t0 = Date()
for i in 0..<2000 { _ = try! score.score(x, at: 0.5 + Double(i) * 1e-5) }
print("score", Date().timeIntervalSince(t0))
t0 = Date()
for _ in 0..<2000 { x.addStandardNormal(scaledBy: 1e-3, using: &rng) }
print("normals", Date().timeIntervalSince(t0))
t0 = Date()
let s = try! score.score(x, at: 0.5)
for _ in 0..<2000 { _ = Tensor.affineStep(&x, xScale: 1, score: s, scoreScale: 0.001, noise: 0.001, using: &rng) }
print("affine", Date().timeIntervalSince(t0))
}

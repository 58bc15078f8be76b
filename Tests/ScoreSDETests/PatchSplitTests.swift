import Foundation
import Testing
@testable import ScoreSDE

// The held-out split of the photograph patches: the patches model trains on the left three quarters
// of each photograph, the colorization demo and benchmark use the right quarter; no training patch
// may share a pixel with a held-out one.

@Suite("Photograph patch split")
struct PatchSplitTests {
    @Test("overlap is sharing a pixel: 7 pixels apart overlaps, 8 apart does not, other photograph never")
    func overlapDefinition() {
        let a = ImagePatches.Location(image: 0, x: 100, y: 50)
        #expect(a.overlaps(.init(image: 0, x: 107, y: 43)))
        #expect(!a.overlaps(.init(image: 0, x: 108, y: 50)))
        #expect(!a.overlaps(.init(image: 0, x: 100, y: 58)))
        #expect(!a.overlaps(.init(image: 1, x: 100, y: 50)))
    }

    @Test("training and held-out patches (grid and random) never overlap; the columns are 0..<480 and 480..<640")
    func splitIsDisjoint() throws {
        var rng = RandomSource(seed: 11)
        let train = try ImagePatches.locations(.train) + ImagePatches.randomLocations(count: 3000, split: .train, using: &rng)
        let held = try ImagePatches.locations(.heldOut) + ImagePatches.randomLocations(count: 3000, split: .heldOut, using: &rng)
        #expect(try ImagePatches.locations(.train).count == 6360)
        #expect(try ImagePatches.locations(.heldOut).count == 2120)
        let images = try ImagePatches.sourceImages()
        #expect(images.allSatisfy { ImagePatches.columns(.train, width: $0.width) == 0 ..< 480 && ImagePatches.columns(.heldOut, width: $0.width) == 480 ..< 640 })
        #expect(train.allSatisfy { $0.x >= 0 && $0.x + 8 <= 480 })
        #expect(held.allSatisfy { $0.x >= 480 && $0.x + 8 <= 640 })
        // Every pair, by the overlap test itself (not only by the column bounds).
        var overlapping = 0
        for a in held { for b in train where a.overlaps(b) { overlapping += 1 } }
        #expect(overlapping == 0)
        // Random held-out patches reach both edges of the right quarter (the split is not empty at its border).
        #expect(held.contains { $0.x == 480 } && held.contains { $0.x == 632 })
    }

    @Test("the built-in patches data set is exactly the training split; the patches are the photographs' pixels")
    func datasetIsTrainingSplit() throws {
        let set = try Dataset.named("patches")
        #expect(set.data == (try ImagePatches.all(split: .train)))
        var r1 = RandomSource(seed: 5), r2 = RandomSource(seed: 5)
        let some = try Dataset.named("patches", count: 200, seed: 5)
        #expect(some.data == (try ImagePatches.random(count: 200, split: .train, using: &r1)))
        let where_ = try ImagePatches.randomLocations(count: 200, split: .train, using: &r2)
        let images = try ImagePatches.sourceImages()
        for (r, l) in where_.enumerated() {
            let img = images[l.image]
            for (ch, y, x) in [(0, 0, 0), (1, 3, 5), (2, 7, 7)] {
                #expect(some.data.storage[r * 192 + ch * 64 + y * 8 + x] == Double(img.pixels[((l.y + y) * img.width + l.x + x) * 3 + ch]))
            }
        }
        // .all keeps the old grid and its random patches (the split only narrows the columns).
        #expect(try ImagePatches.all().rows == 8480)
    }
}

import Foundation
import Testing
@testable import ScoreSDE
@testable import ScoreSDEPlot

/// Figures read without a caption: a font with descenders, wrapped titles, axes with tick labels,
/// legends, density overlays, image tables with headers and hatched unknown pixels.
@Suite struct PlotTests {
    private func inkRows(_ c: Character) -> [Int] {
        let g = PlotFont.index(of: c.unicodeScalars.first!)
        return (0 ..< PlotFont.rows).filter { row in (0 ..< 5).contains { PlotFont.table[g * 5 + $0] & (1 << row) != 0 } }
    }

    @Test func descendersHangBelowTheBaseline() {
        for c in "gjpqy" { #expect(inkRows(c).max()! >= 7, "\(c) has no descender") }
        for c in "aceoxAZ09" { #expect(inkRows(c).max()! == 6, "\(c) is not on the baseline") }
        #expect(inkRows("g") != inkRows("9"), "g is not a 9")
    }

    @Test func titlesWrapInsteadOfBeingCut() throws {
        let image = try RasterImage(width: 240, height: 50, channels: 3)
        let title = "digits | vp | reverse-diffusion + langevin | NFE 2000"
        let t = Plot.titled(image, title)
        #expect(t.width == 240)
        let lines = PlotFont.wrap(title, width: 232, scale: Plot.textScale)
        #expect(lines.count >= 3 && lines.joined(separator: " ") == title)
        #expect(t.height >= 50 + lines.count * PlotFont.lineHeight * Plot.textScale)
        // A word wider than the image widens it rather than being cut.
        let narrow = Plot.titled(try RasterImage(width: 10, height: 5, channels: 1), "abcdefgh")
        #expect(narrow.width >= PlotFont.width("abcdefgh", scale: Plot.textScale))
    }

    @Test func scatterHasAxesLegendAndOverlays() throws {
        let points = try Tensor([[0, 0], [1, 1]])
        let plain = Plot.scatter(points, size: 200, bounds: (-2, 2, -2, 2))
        #expect(plain.width > 200 && plain.height > 200, "margins for tick labels, axis labels and the legend")
        let density = try FullCovarianceMixture(means: [[1, -1]], covariances: [[[0.04, 0], [0, 0.04]]])
        let rich = Plot.scatter(points, reference: try Tensor([[-1, 1]]), size: 200, bounds: (-2, 2, -2, 2),
                                overlays: [.density(density, label: "density"), .line(a: 1, b: 0, c: -1.5, label: "x = -1.5"),
                                           .points(try Tensor([[1.5, 1.5]]), label: "truth")])
        #expect(rich.width == plain.width && rich.height > plain.height, "more legend entries, a taller legend")
        // The plot area starts where the frame is: find it on the row through the plot's middle.
        let midY = (rich.height - (rich.height - plain.height)) / 2
        let left = try #require((0 ..< rich.width).first { x in rich.pixel(x: x, y: midY) == [70, 70, 70] })
        let top = try #require((0 ..< rich.height).first { y in rich.pixel(x: left + 100, y: y) == [70, 70, 70] })
        func at(_ x: Double, _ y: Double) -> [UInt8] {
            rich.pixel(x: left + Int(((x + 2) / 4 * 199).rounded()), y: top + Int(((2 - y) / 4 * 199).rounded()))
        }
        // (Off the grid lines, which cross at whole numbers.)
        let green = at(1.04, -0.96)
        #expect(Int(green[1]) > Int(green[0]) + 40, "density shading at its mean: \(green)")
        #expect(at(-0.6, -1.4) == [255, 255, 255], "no shading far from it")
        let line = stride(from: -0.3, to: 0.3, by: 0.02).map { at(-1.5, $0) }
        #expect(line.contains { $0 != [255, 255, 255] && $0[0] < 200 }, "the measured line is drawn (dashed)")
        let truth = at(1.5, 1.5)
        #expect(truth[0] > 150 && truth[1] < 80, "the true input's red cross: \(truth)")
        let mean = at(-1, 1)
        #expect(mean[0] > 150 && mean[2] < 100, "the orange mixture-mean marker: \(mean)")
    }

    @Test func tickLabels() {
        #expect(Plot.tickLabel(-2, step: 1) == "-2")
        #expect(Plot.tickLabel(0.5, step: 0.5) == "0.5")
        #expect(Plot.tickLabel(-1e-17, step: 0.2) == "0.0")
        #expect(Plot.ticks(-1.05, 1.05, 0.5) == [-1, -0.5, 0, 0.5, 1])
    }

    @Test func imageTableHeadersAndHatchedUnknowns() throws {
        let rows = 3, k = 2
        let observed = Tensor(repeating: 1, like: Tensor(zeros: [rows, 1, 4, 4]))
        var unknown = Tensor(zeros: [1, 1, 4, 4])
        unknown[row: 0, column: 15] = 1                       // bottom-right pixel unknown
        let table = try Plot.imageTable([
            Plot.ImageColumn("observed", observed, unknown: unknown),
            Plot.ImageColumn("samples", Tensor(zeros: [rows * k, 1, 4, 4]), perRow: k),
        ], range: 0 ... 1, scale: 8, padding: 2)
        #expect(table.channels == 3)
        #expect(table.height > rows * 32 + (rows + 1) * 2 + PlotFont.rows * Plot.textScale, "a header band and a legend line")
        // Magenta hatching appears (the unknown pixel) and white (the known observed pixels) too.
        var magenta = 0
        for i in stride(from: 0, to: table.pixels.count, by: 3) where table.pixels[i] == 200 && table.pixels[i + 1] == 30 && table.pixels[i + 2] == 150 { magenta += 1 }
        #expect(magenta > 3 * 10, "hatched unknown pixels in every row and the legend")
        #expect(throws: ScoreSDEError.self) {
            _ = try Plot.imageTable([Plot.ImageColumn("a", Tensor(zeros: [3, 4, 4])), Plot.ImageColumn("b", Tensor(zeros: [2, 4, 4]))], range: 0 ... 1)
        }
    }
}

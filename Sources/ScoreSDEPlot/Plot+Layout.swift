import Foundation
import ScoreSDE

// Arranging images: panels side by side or stacked, title and note bands.

extension Plot {
    /// How ``sideBySide(_:padding:alignment:)`` places panels of different heights.
    public enum Alignment: Sendable {
        /// Tops in line.
        case top
        /// Bottoms in line: plots with titles of different lengths but equal legends line up.
        case bottom
    }

    /// Panels in a row, `padding` white pixels apart, top- or bottom-aligned. The result is RGB
    /// unless every panel is grey; an empty list gives a 0x0 image.
    public static func sideBySide(_ panels: [RasterImage], padding: Int = 8, alignment: Alignment = .top) -> RasterImage {
        let pad = max(padding, 0)
        guard !panels.isEmpty else { return RasterImage(unchecked: 0, 0, 3, []) }
        let channels = panels.allSatisfy { $0.channels == 1 } ? 1 : 3
        let width = panels.reduce(0) { $0 + $1.width } + pad * (panels.count - 1)
        let height = panels.map(\.height).max()!
        var out = RasterImage(unchecked: width, height, channels, [UInt8](repeating: 255, count: width * height * channels))
        var x0 = 0
        for panel in panels {
            out.blit((try? panel.converting(toChannels: channels)) ?? panel, x: x0, y: alignment == .top ? 0 : height - panel.height)
            x0 += panel.width + pad
        }
        return out
    }

    /// `image` with `title` centred in a white band above it, in ``textScale`` and wrapped at
    /// spaces to the image's width (the image is widened, centred, when a word is wider).
    public static func titled(_ image: RasterImage, _ title: String) -> RasterImage {
        banded(image, title, above: true)
    }

    /// `image` with `note` in a white band below it, wrapped like a title (e.g. what a figure shows).
    public static func noted(_ image: RasterImage, _ note: String) -> RasterImage {
        banded(image, note, above: false)
    }

    static func banded(_ image: RasterImage, _ text: String, above: Bool) -> RasterImage {
        let s = textScale
        let words = text.split(separator: " ").map { PlotFont.width(String($0), scale: s) }
        let width = max(image.width, (words.max() ?? 0) + 8, 1)
        // Balanced lines: the narrowest wrap with as few lines as the widest one.
        var lines = PlotFont.wrap(text, width: width - 8, scale: s)
        if lines.count > 1 {
            var lo = (words.max() ?? 0), hi = width - 8
            while lo < hi {
                let mid = (lo + hi) / 2
                if PlotFont.wrap(text, width: mid, scale: s).count <= lines.count { hi = mid } else { lo = mid + 1 }
            }
            lines = PlotFont.wrap(text, width: lo, scale: s)
        }
        let band = lines.count * PlotFont.lineHeight * s + 8
        let channels = image.channels
        var out = RasterImage(unchecked: width, image.height + band, channels,
                              [UInt8](repeating: 255, count: width * (image.height + band) * channels))
        out.blit(image, x: (width - image.width) / 2, y: above ? band : 0)
        for (i, line) in lines.enumerated() {
            let y = (above ? 0 : image.height) + 5 + i * PlotFont.lineHeight * s
            PlotFont.draw(line, into: &out, x: (width - PlotFont.width(line, scale: s)) / 2, y: y, scale: s, colour: (25, 25, 25))
        }
        return out
    }

    /// Panels one under another, left-aligned, `padding` white pixels apart (RGB unless all grey).
    public static func stacked(_ panels: [RasterImage], padding: Int = 8) -> RasterImage {
        let pad = max(padding, 0)
        guard !panels.isEmpty else { return RasterImage(unchecked: 0, 0, 3, []) }
        let channels = panels.allSatisfy { $0.channels == 1 } ? 1 : 3
        let width = panels.map(\.width).max()!
        let height = panels.reduce(0) { $0 + $1.height } + pad * (panels.count - 1)
        var out = RasterImage(unchecked: width, height, channels, [UInt8](repeating: 255, count: width * height * channels))
        var y0 = 0
        for panel in panels {
            out.blit((try? panel.converting(toChannels: channels)) ?? panel, x: 0, y: y0)
            y0 += panel.height + pad
        }
        return out
    }
}

import ScoreSDE

/// The bitmap font of ``Plot``: printable ASCII in a 5-pixel-wide, 9-pixel-tall cell — the classic
/// 5x7 LCD glyphs (cap height 7, x-height 5) with two descender rows, so that g, j, p, q, y and
/// the comma and semicolon hang below the baseline. Characters outside printable ASCII show as `?`.
enum PlotFont {
    /// Rows of a glyph cell: 7 above the baseline, 2 below.
    static let rows = 9
    /// Horizontal advance per character (5 columns plus 1 space) and line height, in font pixels.
    static let advance = 6, lineHeight = 11

    /// Five column bit masks per glyph, bit 0 = top row.
    static let table: [UInt16] = {
        let hex = "000000000000005f00000007000700147f147f14242a7f2a12231308646236495522500005030000001c2241000041221c00"
            + "14083e081408083e080800503000000808080808006060000020100804023e5149453e00427f400042615149462141454b31"
            + "1814127f1027454545393c4a49493001710905033649494936064949291e0036360000005636000008142241001414141414"
            + "00412214080201510906324979413e7e1111117e7f494949363e414141227f4141221c7f494949417f090909013e4149497a"
            + "7f0808087f00417f41002040413f017f081422417f404040407f020c027f7f0408107f3e4141413e7f090909063e4151215e"
            + "7f09192946464949493101017f01013f4040403f1f2040201f3f4038403f631408146307087008076151494543007f414100"
            + "02040810200041417f0004020102044040404040000102040020545454787f484444383844444420384444487f3854545418"
            + "087e0901020c5252523e7f0804047800447d40002040443d007f1028440000417f40007c041804787c080404783844444438"
            + "7c14141408081414187c7c080404084854545420043f4440203c4040207c1c2040201c3c4030403c44281028440c5050503c"
            + "4464544c44000836410000007f000000413608001008081008"
        let digits = Array(hex.utf8)
        var table = stride(from: 0, to: digits.count, by: 2).map {
            UInt16(UInt8(String(decoding: digits[$0 ..< $0 + 2], as: UTF8.self), radix: 16)!)
        }
        // Glyphs redrawn with descenders (rows 7 and 8 below the baseline at row 6).
        let descending: [(Character, [String])] = [
            (",", [".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "..#..", ".#..."]),
            (";", [".....", ".....", ".##..", ".##..", ".....", ".##..", ".##..", "..#..", ".#..."]),
            ("g", [".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."]),
            ("j", ["...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."]),
            ("p", [".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."]),
            ("q", [".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"]),
            ("y", [".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."]),
        ]
        for (c, art) in descending {
            let g = Int(c.asciiValue!) - 32
            for col in 0 ..< 5 {
                var bits: UInt16 = 0
                for (row, line) in art.enumerated() where Array(line)[col] == "#" { bits |= 1 << row }
                table[g * 5 + col] = bits
            }
        }
        return table
    }()

    /// Glyph index of a character; `?` for anything outside printable ASCII.
    static func index(of s: Unicode.Scalar) -> Int {
        (32 ... 126).contains(s.value) ? Int(s.value) - 32 : Int(("?" as Unicode.Scalar).value) - 32
    }

    /// Width in pixels of `n` characters at `scale` (no trailing space).
    static func width(_ n: Int, scale: Int) -> Int { n == 0 ? 0 : (advance * n - 1) * scale }

    /// Width in pixels of `text` at `scale`.
    static func width(_ text: String, scale: Int) -> Int { width(text.unicodeScalars.count, scale: scale) }

    /// Draws `text` with its top-left corner at (`x`, `y`) in `colour` (grey images get its mean),
    /// clipped to the image. `vertical` draws it rotated a quarter turn counter-clockwise, reading
    /// upwards from (`x`, `y`) as its bottom-left corner.
    static func draw(_ text: String, into image: inout RasterImage, x: Int, y: Int, scale: Int,
                     colour: (UInt8, UInt8, UInt8), vertical: Bool = false) {
        let grey = UInt8((Int(colour.0) + Int(colour.1) + Int(colour.2)) / 3)
        for (k, s) in text.unicodeScalars.enumerated() {
            let glyph = index(of: s)
            for col in 0 ..< 5 {
                let bits = table[glyph * 5 + col]
                for row in 0 ..< rows where bits & (1 << row) != 0 {
                    for dy in 0 ..< scale {
                        for dx in 0 ..< scale {
                            let u = (k * advance + col) * scale + dx, v = row * scale + dy
                            let (px, py) = vertical ? (x + v, y - u) : (x + u, y + v)
                            guard px >= 0, py >= 0, px < image.width, py < image.height else { continue }
                            if image.channels >= 3 {
                                image[px, py, 0] = colour.0; image[px, py, 1] = colour.1; image[px, py, 2] = colour.2
                            } else {
                                for c in 0 ..< image.channels { image[px, py, c] = grey }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `text` broken at spaces into lines of at most `width` pixels at `scale`; a word longer than
    /// a line stays whole on its own line (the caller widens the image for it).
    static func wrap(_ text: String, width: Int, scale: Int) -> [String] {
        let maxChars = max(1, (width / scale + 1) / advance)
        var lines = [String](), line = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true).map(String.init) {
            if line.isEmpty { line = word }
            else if line.unicodeScalars.count + 1 + word.unicodeScalars.count <= maxChars { line += " " + word }
            else { lines.append(line); line = word }
        }
        if !line.isEmpty || lines.isEmpty { lines.append(line) }
        return lines
    }
}

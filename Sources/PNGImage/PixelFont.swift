// PixelFont: labels on generated sheets (report grids, contact sheets) with a built-in 3×5 pixel font, so that
// no font file or text library is needed. Upper-case letters, digits and common punctuation; lower-case letters
// draw as upper-case.

/// A 3×5 bitmap font: each glyph is five rows of three bits (4 = left column), top row first; a character
/// advances 4 font pixels (3 + 1 of spacing).
public enum PixelFont {
    static let glyphs: [Character: [UInt8]] = [
        "A": [2, 5, 7, 5, 5], "B": [6, 5, 6, 5, 6], "C": [3, 4, 4, 4, 3], "D": [6, 5, 5, 5, 6], "E": [7, 4, 6, 4, 7],
        "F": [7, 4, 6, 4, 4], "G": [3, 4, 5, 5, 3], "H": [5, 5, 7, 5, 5], "I": [7, 2, 2, 2, 7], "J": [1, 1, 1, 5, 2],
        "K": [5, 5, 6, 5, 5], "L": [4, 4, 4, 4, 7], "M": [5, 7, 7, 5, 5], "N": [6, 5, 5, 5, 5], "O": [2, 5, 5, 5, 2],
        "P": [6, 5, 6, 4, 4], "Q": [2, 5, 5, 6, 3], "R": [6, 5, 6, 5, 5], "S": [3, 4, 2, 1, 6], "T": [7, 2, 2, 2, 2],
        "U": [5, 5, 5, 5, 7], "V": [5, 5, 5, 5, 2], "W": [5, 5, 7, 7, 5], "X": [5, 5, 2, 5, 5], "Y": [5, 5, 2, 2, 2],
        "Z": [7, 1, 2, 4, 7],
        "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
        "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 1, 1], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
        ".": [0, 0, 0, 0, 2], ",": [0, 0, 0, 2, 4], ":": [0, 2, 0, 2, 0], ";": [0, 2, 0, 2, 4], "-": [0, 0, 7, 0, 0],
        "+": [0, 2, 7, 2, 0], "=": [0, 7, 0, 7, 0], "_": [0, 0, 0, 0, 7], "%": [5, 1, 2, 4, 5], "/": [1, 1, 2, 4, 4],
        "(": [1, 2, 2, 2, 1], ")": [4, 2, 2, 2, 4], "[": [3, 2, 2, 2, 3], "]": [6, 2, 2, 2, 6], "<": [1, 2, 4, 2, 1],
        ">": [4, 2, 1, 2, 4], "'": [2, 2, 0, 0, 0], "\"": [5, 5, 0, 0, 0], "?": [7, 1, 2, 0, 2], "!": [2, 2, 2, 0, 2],
        "#": [5, 7, 5, 7, 5], "*": [5, 2, 7, 2, 5], "&": [2, 5, 2, 5, 3], "×": [0, 5, 2, 5, 0], "…": [0, 0, 0, 0, 5],
    ]

    /// The glyph drawn for `character` (lower case as upper case; nil: blank).
    public static func glyph(_ character: Character) -> [UInt8]? {
        glyphs[character] ?? character.uppercased().first.flatMap { glyphs[$0] }
    }

    /// Width in pixels of `text` at `scale` (font pixels per image pixel side).
    public static func width(of text: String, scale: Int = 2) -> Int { text.count * 4 * scale - (text.isEmpty ? 0 : scale) }

    /// Height in pixels of a line at `scale`.
    public static func height(scale: Int = 2) -> Int { 5 * scale }
}

extension Image {
    /// Draws `text` with its top-left corner at (x, y); what falls outside the image is clipped.
    public mutating func draw(text: String, x: Int, y: Int, scale: Int = 2, color: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        for (k, ch) in text.enumerated() {
            guard let rows = PixelFont.glyph(ch) else { continue }
            for (r, bits) in rows.enumerated() {
                for c in 0..<3 where bits & (4 >> c) != 0 {
                    for dy in 0..<scale {
                        for dx in 0..<scale {
                            let px = x + 4 * scale * k + scale * c + dx, py = y + scale * r + dy
                            guard px >= 0, py >= 0, px < width, py < height else { continue }
                            let i = 3 * (py * width + px)
                            (pixels[i], pixels[i + 1], pixels[i + 2]) = color
                        }
                    }
                }
            }
        }
    }

    /// `grid(images, columns:, gap:)` with a label left of each row (`labels[r]` for row r, vertically centred)
    /// and an optional title line above.
    public static func grid(_ images: [Image], columns: Int, gap: Int = 0, rowLabels labels: [String], title: String? = nil,
                            scale: Int = 2) throws -> Image {
        let sheet = try grid(images, columns: columns, gap: gap)
        let cellHeight = images.map(\.height).max()!
        let margin = 2 * scale
        let labelWidth = (labels + [""]).map { PixelFont.width(of: $0, scale: scale) }.max()! + 2 * margin
        let titleHeight = title.map { _ in PixelFont.height(scale: scale) + 2 * margin } ?? 0
        var out = try Image(width: sheet.width + labelWidth, height: sheet.height + titleHeight, color: (255, 255, 255))
        for y in 0..<sheet.height {
            let from = 3 * y * sheet.width, to = 3 * ((y + titleHeight) * out.width + labelWidth)
            out.pixels.replaceSubrange(to..<(to + 3 * sheet.width), with: sheet.pixels[from..<(from + 3 * sheet.width)])
        }
        if let title { out.draw(text: title, x: margin, y: margin, scale: scale) }
        for (r, label) in labels.enumerated() {
            let top = titleHeight + gap + r * (cellHeight + gap)
            guard top < out.height else { break }
            out.draw(text: label, x: margin, y: top + (cellHeight - PixelFont.height(scale: scale)) / 2, scale: scale)
        }
        return out
    }
}

// The loss-curve PNG at the end of a run: axes with labelled ticks (loss on y, step on x), the per-step
// loss (light) and its exponential moving average (dark), y from 0 to the 98th percentile of the losses
// (outliers clipped), and the validation losses (green line with dots, when the run holds images out). Labels use a
// built-in 3×5 pixel font drawn at 2× scale.
import Foundation
import PNGImage

public enum LossCurve {
    /// Draws `losses` (one per step) into a `width`×`height` image.
    public static func image(_ losses: [Float], validation: [ValidationLoss] = [], width: Int = 640, height: Int = 320) throws -> Image {
        var canvas = Canvas(width: width, height: height)
        let (left, right, top, bottom) = (52, width - 16, 12, height - 28)
        canvas.line(left, top, left, bottom, (0, 0, 0))
        canvas.line(left, bottom, right, bottom, (0, 0, 0))
        let finite = losses.filter(\.isFinite).sorted()
        var top98 = finite.isEmpty ? 0 : finite[min(finite.count - 1, finite.count * 98 / 100)]
        if let highest = validation.map(\.loss).filter(\.isFinite).max() { top98 = max(top98, highest) }
        for i in 0...4 {
            let y = bottom - (bottom - top) * i / 4, x = left + (right - left) * i / 4
            canvas.line(left - 5, y, left, y, (0, 0, 0))
            canvas.line(x, bottom, x, bottom + 5, (0, 0, 0))
            if i > 0 { canvas.line(left + 1, y, right, y, (225, 225, 225)) }
            let yLabel = String(format: "%.3g", Double(top98) * Double(i) / 4)
            canvas.text(yLabel, x: left - 8 - 8 * yLabel.count, y: y - 5)
            let xLabel = String(max(0, losses.count - 1) * i / 4 + 1)
            canvas.text(xLabel, x: x - 4 * xLabel.count, y: bottom + 9)
        }
        guard losses.count >= 2, top98 > 0 else { return try canvas.image() }
        func point(_ i: Int, _ v: Float) -> (Int, Int) {
            let x = left + (right - left) * i / (losses.count - 1)
            let y = bottom - Int(Float(bottom - top) * min(max(v, 0), top98) / top98)
            return (x, y)
        }
        var ema: [Float] = []
        var (value, weight): (Float, Float) = (0, 0)
        for l in losses {
            if l.isFinite { (value, weight) = (value * 0.9 + l * 0.1, weight * 0.9 + 0.1) }
            ema.append(weight > 0 ? value / weight : 0)
        }
        for (series, color) in [(losses, (150, 190, 235)), (ema, (180, 30, 30))] as [([Float], (UInt8, UInt8, UInt8))] {
            for i in 1..<series.count where series[i].isFinite && series[i - 1].isFinite {
                let a = point(i - 1, series[i - 1]), b = point(i, series[i])
                canvas.line(a.0, a.1, b.0, b.1, color)
            }
        }
        // Validation after `step` updates sits at the x of that step's training loss (step 0 at the left axis).
        let green: (UInt8, UInt8, UInt8) = (20, 140, 60)
        let marks = validation.filter { $0.loss.isFinite }.map { point(min(max($0.step - 1, 0), losses.count - 1), $0.loss) }
        for (a, b) in zip(marks, marks.dropFirst()) { canvas.line(a.0, a.1, b.0, b.1, green) }
        for (x, y) in marks { for dy in -2...2 { canvas.line(x - 2, y + dy, x + 2, y + dy, green) } }
        return try canvas.image()
    }

    /// Writes the curve PNG to `url`.
    public static func write(_ losses: [Float], validation: [ValidationLoss] = [], to url: URL) throws {
        try PNG.write(try image(losses, validation: validation), to: url.path)
    }

    /// An RGB pixel buffer with line drawing.
    struct Canvas {
        let width: Int, height: Int
        var pixels: [UInt8]

        init(width: Int, height: Int) {
            self.width = width
            self.height = height
            pixels = [UInt8](repeating: 255, count: width * height * 3)
        }

        mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            let i = 3 * (y * width + x)
            (pixels[i], pixels[i + 1], pixels[i + 2]) = c
        }

        /// Bresenham's line from (x0, y0) to (x1, y1).
        mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8)) {
            var (x, y) = (x0, y0)
            let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
            var err = dx + dy
            while true {
                set(x, y, c)
                if x == x1 && y == y1 { break }
                let e2 = 2 * err
                if e2 >= dy { err += dy; x += sx }
                if e2 <= dx { err += dx; y += sy }
            }
        }

        func image() throws -> Image { try Image(width: width, height: height, pixels: pixels) }

        /// The exponent's small "e" of numbers such as 1e-3; every other character is PixelFont's.
        static let glyphs: [Character: [UInt8]] = ["e": [0, 7, 7, 4, 7]]

        /// Draws `string` in black with its top-left corner at (x, y), 8 pixels per character.
        mutating func text(_ string: String, x: Int, y: Int) {
            for (k, ch) in string.enumerated() {
                guard let rows = Self.glyphs[ch] ?? PixelFont.glyph(ch) else { continue }
                for (r, bits) in rows.enumerated() {
                    for c in 0..<3 where bits & (4 >> c) != 0 {
                        for dy in 0..<2 { for dx in 0..<2 { set(x + 8 * k + 2 * c + dx, y + 2 * r + dy, (0, 0, 0)) } }
                    }
                }
            }
        }
    }
}

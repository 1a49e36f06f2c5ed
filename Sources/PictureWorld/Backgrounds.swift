// Backgrounds: sky (or wall) above the horizon, ground (or floor) below, and each place's landmarks
// (sun, sea, moon and stars, snowflakes, wallpaper and planks, buildings). `textured` adds the fine
// per-pixel textures of the photo style; landmarks are drawn in every style so places stay recognisable.
import Foundation

/// Draws `background` over the whole canvas.
func drawBackground(_ background: Background, on canvas: inout Canvas, horizon h: Float, textured: Bool, seed: UInt64) {
    let (skyTop, skyLow, ground) = palette(background)
    let jitter: Float = textured ? 0.07 : 0
    canvas.forEachPixel { x, y in
        if y < h {
            return skyTop.mixed(skyLow, y / h)
        }
        let n = textured ? (hash01(Int(x * 4), Int(y * 4), seed) - 0.5) * jitter : 0
        return ground.scaled(1 + n - 0.12 * (y - h) / (64 - h))
    }
    var rng = DetailRandom(seed: seed)
    switch background {
    case .grass: drawGrass(&canvas, h, textured, &rng)
    case .beach: drawBeach(&canvas, h, textured, &rng)
    case .snow: drawSnow(&canvas, h, textured, &rng)
    case .night: drawNight(&canvas, h, &rng)
    case .room: drawRoom(&canvas, h, textured, &rng)
    case .city: drawCity(&canvas, h, &rng)
    }
}

/// (sky at the top, sky at the horizon, ground).
private func palette(_ b: Background) -> (RGB, RGB, RGB) {
    switch b {
    case .grass: return (RGB(0.45, 0.70, 0.97), RGB(0.78, 0.90, 1.0), RGB(0.33, 0.64, 0.22))
    case .beach: return (RGB(0.40, 0.68, 0.98), RGB(0.80, 0.92, 1.0), RGB(0.94, 0.84, 0.60))
    case .snow: return (RGB(0.70, 0.76, 0.86), RGB(0.86, 0.89, 0.94), RGB(0.95, 0.96, 0.99))
    case .night: return (RGB(0.02, 0.03, 0.12), RGB(0.10, 0.12, 0.30), RGB(0.10, 0.16, 0.14))
    case .room: return (RGB(0.88, 0.80, 0.66), RGB(0.84, 0.76, 0.62), RGB(0.58, 0.40, 0.24))
    case .city: return (RGB(0.66, 0.76, 0.90), RGB(0.84, 0.88, 0.94), RGB(0.36, 0.36, 0.39))
    }
}

private func drawGrass(_ c: inout Canvas, _ h: Float, _ textured: Bool, _ rng: inout DetailRandom) {
    c.fill(.circle(Point(rng.uniform(6, 58), rng.uniform(5, 10)), 4.5), Paint(RGB(1.0, 0.88, 0.25)))
    if textured {
        for _ in 0..<30 {
            let x = rng.uniform(0, 64), y = rng.uniform(h + 2, 64)
            c.fill(.line(Point(x, y), Point(x + rng.uniform(-1, 1), y - rng.uniform(1.5, 3)), width: 0.6),
                   Paint(RGB(0.20, 0.46, 0.14)))
        }
    }
    c.fill(.ellipse(Point(rng.uniform(10, 54), h - 1), 14, 4, angle: 0), Paint(RGB(0.28, 0.55, 0.20)))
}

private func drawBeach(_ c: inout Canvas, _ h: Float, _ textured: Bool, _ rng: inout DetailRandom) {
    c.fill(.circle(Point(rng.uniform(6, 58), rng.uniform(5, 10)), 4), Paint(RGB(1.0, 0.9, 0.3)))
    let sea = RGB(0.10, 0.45, 0.75)
    c.forEachPixel { _, y in y >= h && y < h + 7 ? sea.mixed(RGB(0.2, 0.6, 0.85), (y - h) / 7) : nil }
    for i in 0..<4 {
        let y = h + 1.5 + Float(i) * 1.6, x = rng.uniform(0, 50)
        c.fill(.line(Point(x, y), Point(x + rng.uniform(6, 14), y), width: 0.5), Paint(RGB(0.85, 0.93, 1.0)))
    }
    if textured {
        for _ in 0..<40 {
            c.fill(.circle(Point(rng.uniform(0, 64), rng.uniform(h + 8, 64)), 0.4), Paint(RGB(0.80, 0.68, 0.45)))
        }
    }
}

private func drawSnow(_ c: inout Canvas, _ h: Float, _ textured: Bool, _ rng: inout DetailRandom) {
    for _ in 0..<3 {
        c.fill(.ellipse(Point(rng.uniform(0, 64), h + 0.5), rng.uniform(8, 16), 3.5, angle: 0),
               Paint(RGB(0.90, 0.92, 0.97)))
    }
    for _ in 0..<(textured ? 40 : 24) {
        c.fill(.circle(Point(rng.uniform(0, 64), rng.uniform(0, 64)), rng.uniform(0.35, 0.7)), Paint(RGB(1, 1, 1)))
    }
}

private func drawNight(_ c: inout Canvas, _ h: Float, _ rng: inout DetailRandom) {
    for _ in 0..<18 {
        c.fill(.circle(Point(rng.uniform(0, 64), rng.uniform(0, h - 2)), rng.uniform(0.3, 0.6)), Paint(RGB(1, 1, 0.9)))
    }
    let moon = Point(rng.uniform(8, 56), rng.uniform(6, 12))
    c.fill(.circle(moon, 4.5), Paint(RGB(0.98, 0.96, 0.75)))
    c.fill(.circle(Point(moon.x + 2.2, moon.y - 1.2), 3.8), Paint(RGB(0.03, 0.04, 0.15)))
}

private func drawRoom(_ c: inout Canvas, _ h: Float, _ textured: Bool, _ rng: inout DetailRandom) {
    let stripe = RGB(0.80, 0.70, 0.55)
    let period: Float = 6, offset = rng.uniform(0, 6)
    c.forEachPixel { x, y in
        guard y < h else { return nil }
        let u = (x + offset) / period
        return u - u.rounded(.down) < 0.3 ? stripe : nil
    }
    let frame = Point(rng.uniform(14, 50), rng.uniform(8, max(h - 14, 9)))
    c.fill(.roundedRect(frame, 6, 4.5, radius: 0.3, angle: 0), Paint(RGB(0.55, 0.78, 0.92)),
           outline: RGB(0.35, 0.22, 0.10), outlineWidth: 1)
    c.fill(.line(Point(0, h), Point(64, h), width: 1.4), Paint(RGB(0.95, 0.93, 0.88)))
    for i in 0..<5 {
        let y = h + 2.5 + Float(i) * 5
        c.fill(.line(Point(0, y), Point(64, y), width: 0.5), Paint(RGB(0.42, 0.28, 0.15)))
    }
    if textured {
        for _ in 0..<10 {
            let x = rng.uniform(0, 64), y = rng.uniform(h + 1, 64)
            c.fill(.line(Point(x, y), Point(x + 5, y), width: 0.3), Paint(RGB(0.50, 0.34, 0.20)))
        }
    }
}

private func drawCity(_ c: inout Canvas, _ h: Float, _ rng: inout DetailRandom) {
    var x: Float = -2
    while x < 66 {
        let w = rng.uniform(7, 12), top = rng.uniform(6, h - 8)
        let shade = rng.uniform(0.42, 0.62)
        let center = Point(x + w / 2, (top + h) / 2)
        c.fill(.roundedRect(center, w / 2, (h - top) / 2 + 0.5, radius: 0, angle: 0), Paint(RGB(shade, shade, shade + 0.04)))
        var wy = top + 2
        while wy < h - 2 {
            for wx in stride(from: x + 2, to: x + w - 1.5, by: 3) {
                c.fill(.roundedRect(Point(wx, wy), 0.7, 0.8, radius: 0, angle: 0), Paint(RGB(0.98, 0.88, 0.45)))
            }
            wy += 3.5
        }
        x += w + 0.5
    }
    let lane = h + (64 - h) * 0.55
    for i in 0..<6 {
        let x0 = Float(i) * 12 + 2
        c.fill(.line(Point(x0, lane), Point(x0 + 6, lane), width: 0.9), Paint(RGB(0.95, 0.95, 0.92)))
    }
}

/// A tiny xorshift stream for background details (a pure function of the scene's detail seed).
struct DetailRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }

    mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(next() >> 40) * 0x1p-24
    }
}

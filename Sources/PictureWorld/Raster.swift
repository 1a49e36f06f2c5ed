// Raster: a small anti-aliased rasteriser for the picture world.
//
// Shapes are signed distance functions in *scene units* (a scene is 64 units wide and tall, whatever
// the pixel size), so one scene renders identically in layout at 64, 128 or 512 pixels. A pixel's
// coverage is clamp(0.5 − d·scale, 0, 1), with d the signed distance of its centre to the shape's
// edge and scale the pixels per unit: exact for straight edges, and a one-pixel ramp on curves.
// Every shape is drawn only over its bounding box, so a 64×64 scene of ~30 shapes takes well under a
// millisecond.
import Foundation

/// An RGB colour with channels in [0, 1].
public struct RGB: Equatable, Sendable {
    public var r: Float, g: Float, b: Float
    public init(_ r: Float, _ g: Float, _ b: Float) { self.r = r; self.g = g; self.b = b }

    /// This colour with every channel multiplied by `f` (clamped to [0, 1]).
    public func scaled(_ f: Float) -> RGB { RGB(min(r * f, 1), min(g * f, 1), min(b * f, 1)) }
    /// Linear interpolation towards `o` by `t`.
    public func mixed(_ o: RGB, _ t: Float) -> RGB { RGB(r + (o.r - r) * t, g + (o.g - g) * t, b + (o.b - b) * t) }
    /// Rec. 601 luma.
    public var luma: Float { 0.299 * r + 0.587 * g + 0.114 * b }
}

/// A point in scene units.
public struct Point: Equatable, Sendable {
    public var x: Float, y: Float
    public init(_ x: Float, _ y: Float) { self.x = x; self.y = y }
}

/// A filled shape described by its signed distance (negative inside), in scene units.
enum Shape {
    case circle(Point, Float)
    /// Ellipse with radii (rx, ry), rotated by `angle` radians.
    case ellipse(Point, Float, Float, angle: Float)
    /// Rectangle centred at the point with half sizes (hx, hy) and corner radius r, rotated by `angle`.
    case roundedRect(Point, Float, Float, radius: Float, angle: Float)
    /// A stroke from a to b with round caps, of total width w.
    case line(Point, Point, width: Float)
    /// A closed polygon (any winding, may be concave).
    case polygon([Point])

    /// Signed distance from (x, y) to the shape's edge.
    @inline(__always) func distance(_ x: Float, _ y: Float) -> Float {
        switch self {
        case .circle(let c, let r):
            let dx = x - c.x, dy = y - c.y
            return (dx * dx + dy * dy).squareRoot() - r
        case .ellipse(let c, let rx, let ry, let angle):
            let (cs, sn) = (cosf(angle), sinf(angle))
            let dx = x - c.x, dy = y - c.y
            let qx = cs * dx + sn * dy, qy = -sn * dx + cs * dy
            let ax = qx / rx, ay = qy / ry
            let k0 = (ax * ax + ay * ay).squareRoot()
            let bx = ax / rx, by = ay / ry
            let k1 = (bx * bx + by * by).squareRoot()
            return k1 > 1e-6 ? k0 * (k0 - 1) / k1 : -min(rx, ry)
        case .roundedRect(let c, let hx, let hy, let r, let angle):
            let (cs, sn) = (cosf(angle), sinf(angle))
            let dx = x - c.x, dy = y - c.y
            let qx = abs(cs * dx + sn * dy) - hx + r, qy = abs(-sn * dx + cs * dy) - hy + r
            let ox = max(qx, 0), oy = max(qy, 0)
            return (ox * ox + oy * oy).squareRoot() + min(max(qx, qy), 0) - r
        case .line(let a, let b, let w):
            let px = x - a.x, py = y - a.y, ex = b.x - a.x, ey = b.y - a.y
            let len2 = ex * ex + ey * ey
            let t = len2 > 0 ? min(max((px * ex + py * ey) / len2, 0), 1) : 0
            let dx = px - ex * t, dy = py - ey * t
            return (dx * dx + dy * dy).squareRoot() - w / 2
        case .polygon(let v):
            return polygonDistance(v, x, y)
        }
    }

    /// Bounding box (minX, minY, maxX, maxY) in scene units.
    var bounds: (Float, Float, Float, Float) {
        switch self {
        case .circle(let c, let r): return (c.x - r, c.y - r, c.x + r, c.y + r)
        case .ellipse(let c, let rx, let ry, _):
            let m = max(rx, ry)
            return (c.x - m, c.y - m, c.x + m, c.y + m)
        case .roundedRect(let c, let hx, let hy, _, _):
            let m = (hx * hx + hy * hy).squareRoot()
            return (c.x - m, c.y - m, c.x + m, c.y + m)
        case .line(let a, let b, let w):
            return (min(a.x, b.x) - w, min(a.y, b.y) - w, max(a.x, b.x) + w, max(a.y, b.y) + w)
        case .polygon(let v):
            return (v.map(\.x).min() ?? 0, v.map(\.y).min() ?? 0, v.map(\.x).max() ?? 0, v.map(\.y).max() ?? 0)
        }
    }
}

/// Signed distance to a polygon: distance to the nearest edge, negative inside (even–odd rule).
@inline(__always) private func polygonDistance(_ v: [Point], _ x: Float, _ y: Float) -> Float {
    guard v.count >= 3 else { return .greatestFiniteMagnitude }
    var best = Float.greatestFiniteMagnitude
    var inside = false
    var j = v.count - 1
    for i in 0..<v.count {
        let a = v[j], b = v[i]
        let ex = b.x - a.x, ey = b.y - a.y, px = x - a.x, py = y - a.y
        let len2 = ex * ex + ey * ey
        let t = len2 > 0 ? min(max((px * ex + py * ey) / len2, 0), 1) : 0
        let dx = px - ex * t, dy = py - ey * t
        best = min(best, dx * dx + dy * dy)
        if (a.y > y) != (b.y > y), x < a.x + (y - a.y) * ex / ey { inside.toggle() }
        j = i
    }
    return inside ? -best.squareRoot() : best.squareRoot()
}

/// How a shape's interior is coloured: a base colour, an optional vertical light ramp and an optional
/// two-colour coat pattern laid out in scene units (so every part of one animal shares the pattern).
struct Paint {
    var color: RGB
    /// Multiplies the colour by 1 + shade·(0.5 − v), v the height within [top, bottom]; 0 = flat.
    var shade: Float = 0
    var top: Float = 0, bottom: Float = 64
    var coat: CoatLayout?

    init(_ color: RGB) { self.color = color }

    @inline(__always) func color(_ x: Float, _ y: Float) -> RGB {
        var c = color
        if let coat, coat.covers(x, y) { c = coat.second }
        if shade != 0 {
            let v = min(max((y - top) / max(bottom - top, 1e-3), 0), 1)
            c = c.scaled(1 + shade * (0.5 - v))
        }
        return c
    }
}

/// A coat pattern placed on one animal: where the second colour shows.
struct CoatLayout {
    var pattern: CoatPattern
    var second: RGB
    var origin: Point
    /// Spot radius, stripe period or checker cell size, in scene units.
    var size: Float
    var angle: Float = 0
    var spots: [Point] = []

    @inline(__always) func covers(_ x: Float, _ y: Float) -> Bool {
        let dx = x - origin.x, dy = y - origin.y
        switch pattern {
        case .plain: return false
        case .spotted:
            for s in spots where (x - s.x) * (x - s.x) + (y - s.y) * (y - s.y) < size * size { return true }
            return false
        case .striped:
            let u = (cosf(angle) * dx + sinf(angle) * dy) / size
            return u - u.rounded(.down) < 0.45
        case .checkered:
            let i = Int((dx / size).rounded(.down)), j = Int((dy / size).rounded(.down))
            return (i + j) & 1 == 0
        }
    }
}

/// An RGB float canvas of `size`×`size` pixels covering the 64×64-unit scene.
struct Canvas {
    static let sceneUnits: Float = 64
    let size: Int
    let scale: Float
    var pixels: [Float]

    init(size: Int, fill: RGB = RGB(1, 1, 1)) {
        self.size = size
        scale = Float(size) / Canvas.sceneUnits
        pixels = [Float](repeating: 0, count: size * size * 3)
        for i in 0..<(size * size) { pixels[3 * i] = fill.r; pixels[3 * i + 1] = fill.g; pixels[3 * i + 2] = fill.b }
    }

    /// Sets every pixel to body(x, y) (its centre in scene units), where body returns a colour.
    mutating func forEachPixel(_ body: (Float, Float) -> RGB?) {
        let inv = 1 / scale, size = size
        pixels.withUnsafeMutableBufferPointer { p in
            for py in 0..<size {
                let y = (Float(py) + 0.5) * inv
                for px in 0..<size {
                    let i = (py * size + px) * 3
                    if let c = body((Float(px) + 0.5) * inv, y) { p[i] = c.r; p[i + 1] = c.g; p[i + 2] = c.b }
                }
            }
        }
    }

    /// Fills `shape` with `paint` at `opacity`, first drawing an `outline` band of width `outlineWidth`
    /// units around it.
    mutating func fill(_ shape: Shape, _ paint: Paint, outline: RGB? = nil, outlineWidth: Float = 0, opacity: Float = 1) {
        let ow = outline == nil ? 0 : outlineWidth
        let (bx0, by0, bx1, by1) = shape.bounds
        let pad = ow + 1 / scale
        let x0 = max(Int(((bx0 - pad) * scale).rounded(.down)), 0), x1 = min(Int(((bx1 + pad) * scale).rounded(.up)), size)
        let y0 = max(Int(((by0 - pad) * scale).rounded(.down)), 0), y1 = min(Int(((by1 + pad) * scale).rounded(.up)), size)
        guard x0 < x1, y0 < y1 else { return }
        let inv = 1 / scale, s = scale
        pixels.withUnsafeMutableBufferPointer { p in
            for py in y0..<y1 {
                let y = (Float(py) + 0.5) * inv
                for px in x0..<x1 {
                    let x = (Float(px) + 0.5) * inv
                    let d = shape.distance(x, y)
                    let i = (py * size + px) * 3
                    if let outline {
                        let a = min(max(0.5 - (d - ow) * s, 0), 1)
                        if a > 0 { Canvas.blend(p, i, outline, a) }
                    }
                    let a = min(max(0.5 - d * s, 0), 1) * opacity
                    if a > 0 { Canvas.blend(p, i, paint.color(x, y), a) }
                }
            }
        }
    }

    @inline(__always) private static func blend(_ p: UnsafeMutableBufferPointer<Float>, _ i: Int, _ c: RGB, _ a: Float) {
        p[i] += (c.r - p[i]) * a
        p[i + 1] += (c.g - p[i + 1]) * a
        p[i + 2] += (c.b - p[i + 2]) * a
    }
}

/// A deterministic hash of integer coordinates and a seed to [0, 1) (for textures; not a random stream).
@inline(__always) func hash01(_ x: Int, _ y: Int, _ seed: UInt64) -> Float {
    var h = UInt64(bitPattern: Int64(x)) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(bitPattern: Int64(y)) &* 0xC2B2_AE3D_27D4_EB4F ^ seed
    h ^= h >> 31; h &*= 0xBF58_476D_1CE4_E5B9; h ^= h >> 29; h &*= 0x94D0_49BB_1331_11EB; h ^= h >> 32
    return Float(h >> 40) * 0x1p-24
}

// Objects: each class drawn from a handful of primitives around an anchor (x, ground) at a scale,
// facing left or right, with four pose parameters p[0...3] in [0, 1). Coordinates are scene units;
// `u(a)` scales a length, `px(a)` mirrors a horizontal offset by the facing.
import Foundation

struct ObjectDrawing {
    var canvas: Canvas
    let pen: Pen
    let layout: SceneLayout
    let color: RGB
    let pattern: CoatPattern

    private var s: Float { layout.scale }
    private var f: Float { layout.facing }
    private var p: [Float] { layout.pose }
    private var cx: Float { layout.x }
    private var gy: Float { layout.ground }

    @inline(__always) private func u(_ a: Float) -> Float { a * s }
    @inline(__always) private func at(_ dx: Float, _ dy: Float) -> Point { Point(cx + f * dx * s, gy + dy * s) }

    /// Draws one part with the style's outline and shading.
    private mutating func part(_ shape: Shape, _ c: RGB, coat: CoatLayout? = nil, outline: Bool = true) {
        var paint = Paint(c)
        let b = shape.bounds
        paint.shade = pen.shade
        paint.top = b.1
        paint.bottom = b.3
        paint.coat = coat
        canvas.fill(shape, paint, outline: outline ? pen.outline(for: c) : nil, outlineWidth: pen.outlineWidth)
    }

    /// A soft shadow on the ground under the object.
    mutating func shadow(for object: ObjectKind) {
        if object == .bird, isFlying { return }
        let width: Float = [.house: 17, .car: 16, .tree: 9, .flower: 5, .ball: 7][object] ?? 12
        canvas.fill(.ellipse(Point(cx, gy), u(width), u(1.8), angle: 0), Paint(RGB(0, 0, 0)), opacity: 0.25)
    }

    mutating func draw(_ object: ObjectKind) {
        switch object {
        case .dog: drawDog()
        case .cat: drawCat()
        case .bird: drawBird()
        case .house: drawHouse()
        case .tree: drawTree()
        case .car: drawCar()
        case .flower: drawFlower()
        case .ball: drawBall()
        }
    }

    /// The coat pattern of an animal whose body is centred at `center`.
    private func coat(center: Point) -> CoatLayout? {
        guard pattern != .plain else { return nil }
        let second = color.luma > 0.45 ? RGB(0.12, 0.10, 0.10) : RGB(0.96, 0.92, 0.82)
        var layout = CoatLayout(pattern: pattern, second: second, origin: center, size: u(3.2))
        var r = DetailRandom(seed: coatSeed)
        switch pattern {
        case .plain: return nil
        case .spotted:
            layout.size = u(2.5)
            layout.spots = (0..<9).map { _ in Point(center.x + u(r.uniform(-12, 12)), center.y + u(r.uniform(-7, 5))) }
        case .striped:
            layout.size = u(4.6)
            layout.angle = r.uniform(-0.25, 0.25)
        case .checkered:
            layout.size = u(4.2)
        }
        return layout
    }

    private var coatSeed: UInt64 { layout.detailSeed ^ 0x5EED }

    private mutating func drawDog() {
        let len = 10 + 2.5 * p[3]
        let body = at(0, -14), coat = coat(center: body)
        let stride = (p[2] - 0.5) * 5
        let legTop: Float = -13, dark = color.scaled(0.8)
        for (x, sx, c) in [(len - 3.5, stride, dark), (-(len - 3.5), -stride, dark), (len - 5.5, -stride, color),
                           (-(len - 5.5), stride, color)] {
            part(.line(at(x, legTop), at(x + sx * 0.6, -1.3), width: u(3)), c, coat: c == color ? coat : nil)
        }
        let tail = 0.3 + 1.1 * p[0]
        let tailStart = at(-(len - 1), -16)
        part(.line(tailStart, Point(tailStart.x - f * u(8) * cosf(tail), tailStart.y - u(8) * sinf(tail)), width: u(2.4)), color, coat: coat)
        part(.ellipse(body, u(len), u(6), angle: 0), color, coat: coat)
        let head = at(len + 1, -21 - 3 * p[1])
        part(.circle(head, u(5.5)), color, coat: coat)
        part(.ellipse(Point(head.x + f * u(4.5), head.y + u(1.6)), u(3.8), u(2.6), angle: 0), color, coat: coat)
        part(.circle(Point(head.x + f * u(8), head.y + u(0.8)), u(1.2)), RGB(0.05, 0.05, 0.05), outline: false)
        part(.circle(Point(head.x + f * u(1.8), head.y - u(1.6)), u(0.9)), RGB(0.05, 0.05, 0.05), outline: false)
        part(.ellipse(Point(head.x - f * u(1.8), head.y + u(0.8)), u(2), u(4.6), angle: f * 0.35), color.scaled(0.7))
    }

    private mutating func drawCat() {
        let len = 9 + 2 * p[3]
        let body = at(0, -12), coat = coat(center: body)
        let stride = (p[2] - 0.5) * 4
        for (x, sx) in [(len - 3, stride), (-(len - 3), -stride), (len - 5, -stride), (-(len - 5), stride)] {
            part(.line(at(x, -11), at(x + sx * 0.6, -1), width: u(2.2)), color, coat: coat)
        }
        let t0 = at(-(len - 1), -13), t1 = at(-(len + 4), -20), t2 = at(-(len + 2 + 3 * p[0]), -27)
        part(.line(t0, t1, width: u(2)), color, coat: coat)
        part(.line(t1, t2, width: u(2)), color, coat: coat)
        part(.ellipse(body, u(len), u(5), angle: 0), color, coat: coat)
        let head = at(len + 0.5, -19 - 2 * p[1])
        for side: Float in [-1, 1] {
            part(.polygon([Point(head.x + side * u(4.2), head.y - u(1.5)), Point(head.x + side * u(2.8), head.y - u(8.5)),
                           Point(head.x + side * u(0.3), head.y - u(4))]), color, coat: coat)
        }
        part(.circle(head, u(4.8)), color, coat: coat)
        let eye = color.luma > 0.3 ? RGB(0.05, 0.05, 0.05) : RGB(0.75, 0.85, 0.2)
        for side: Float in [-1, 1] {
            part(.circle(Point(head.x + side * u(1.8), head.y - u(0.8)), u(0.85)), eye, outline: false)
            part(.line(Point(head.x + side * u(1.5), head.y + u(1.6)), Point(head.x + side * u(6.5), head.y + u(1 + side * 0.3)),
                       width: u(0.3)), RGB(0.25, 0.25, 0.25), outline: false)
        }
        part(.circle(Point(head.x, head.y + u(1.2)), u(0.7)), RGB(0.95, 0.5, 0.6), outline: false)
    }

    private var isFlying: Bool { p[2] >= 0.6 }

    private mutating func drawBird() {
        let y = isFlying ? layout.horizon - 12 - 10 * p[1] : gy - u(7)
        let c = Point(cx, y)
        func rel(_ dx: Float, _ dy: Float) -> Point { Point(c.x + f * u(dx), c.y + u(dy)) }
        if !isFlying {
            for dx: Float in [-1.5, 1.5] {
                part(.line(rel(dx, 4), Point(c.x + f * u(dx), gy), width: u(0.7)), RGB(0.85, 0.5, 0.1), outline: false)
            }
        }
        part(.polygon([rel(-5.5, -1), rel(-12, -4.5 + 3 * p[0]), rel(-12, 1.5 + 3 * p[0])]), color)
        part(.ellipse(c, u(7), u(5), angle: -f * 0.15), color)
        part(.circle(rel(6, -4), u(3.6)), color)
        part(.polygon([rel(8.8, -5), rel(12.5, -3.6), rel(8.8, -2.4)]), RGB(0.95, 0.62, 0.1))
        part(.circle(rel(7, -5), u(0.8)), RGB(0.05, 0.05, 0.05), outline: false)
        let wingAngle: Float = isFlying ? -f * (0.9 + 0.5 * p[3]) : f * 0.25
        part(.ellipse(rel(-1.5, isFlying ? -3 : 0), u(5.2), u(2.4), angle: wingAngle), color.scaled(0.75))
    }

    private mutating func drawHouse() {
        let w: Float = 13, h: Float = 18 + 3 * p[3]
        let roof = RGB(0.30, 0.26, 0.28)
        part(.roundedRect(at(8, -h - 6), u(1.6), u(3.5), radius: 0, angle: 0), roof)
        part(.roundedRect(at(0, -h / 2), u(w), u(h / 2), radius: 0, angle: 0), color)
        part(.polygon([at(-w - 3, -h), at(w + 3, -h), at(0, -h - 11 - 3 * p[0])]), roof)
        part(.roundedRect(at(5, -5), u(2.6), u(5), radius: u(0.5), angle: 0), RGB(0.38, 0.22, 0.10))
        let glass = RGB(0.70, 0.86, 0.96)
        part(.roundedRect(at(-5, -h + 7), u(2.8), u(2.8), radius: 0, angle: 0), glass)
        if p[1] > 0.5 { part(.roundedRect(at(5, -h + 5.5), u(2.4), u(2.2), radius: 0, angle: 0), glass) }
    }

    private mutating func drawTree() {
        part(.roundedRect(at(0, -8), u(2.2), u(8), radius: u(0.8), angle: 0), RGB(0.42, 0.27, 0.14))
        if p[0] < 0.5 {
            for (dx, dy, r) in [(-6, -18, 6), (6, -18, 6), (0, -28, 6.5), (0, -21, 8)] as [(Float, Float, Float)] {
                part(.circle(at(dx, dy - 2 * p[3]), u(r)), color)
            }
        } else {
            for (y, w) in [(-14, 11), (-21, 9), (-28, 7)] as [(Float, Float)] {
                part(.polygon([at(-w, y), at(w, y), at(0, y - 11)]), color)
            }
        }
    }

    private mutating func drawCar() {
        let glass = RGB(0.72, 0.87, 0.97)
        part(.polygon([at(-9, -11), at(-6.5, -19), at(4, -19), at(8.5, -11)]), color)
        part(.polygon([at(-7, -11.5), at(-5.3, -17.5), at(-1.5, -17.5), at(-1.5, -11.5)]), glass, outline: false)
        part(.polygon([at(0, -11.5), at(0, -17.5), at(3.2, -17.5), at(6.5, -11.5)]), glass, outline: false)
        part(.roundedRect(at(0, -7.5), u(15), u(4.5), radius: u(2), angle: 0), color)
        part(.circle(at(14, -8.5), u(1.2)), RGB(1, 0.95, 0.6), outline: false)
        for dx: Float in [-9, 9] {
            part(.circle(at(dx, -3.5), u(3.6)), RGB(0.08, 0.08, 0.08))
            part(.circle(at(dx, -3.5), u(1.5)), RGB(0.7, 0.7, 0.72), outline: false)
        }
    }

    private mutating func drawFlower() {
        let stem = RGB(0.20, 0.55, 0.15)
        let top = at(2.5 * (p[0] - 0.5), -24 - 3 * p[3])
        part(.line(at(0, 0), top, width: u(1.3)), stem)
        part(.ellipse(at(2.5, -9), u(3.2), u(1.3), angle: -f * 0.5), stem)
        part(.ellipse(at(-2.5, -13), u(3.2), u(1.3), angle: f * 0.5), stem)
        let n = 5 + Int(p[1] * 3)
        for k in 0..<n {
            let a = Float(k) * 2 * .pi / Float(n) + p[2]
            part(.ellipse(Point(top.x + u(4.2) * cosf(a), top.y + u(4.2) * sinf(a)), u(3.6), u(2.2), angle: a), color)
        }
        let heart = color == NamedColor.yellow.rgb || color == NamedColor.orange.rgb ? RGB(0.45, 0.25, 0.1) : RGB(0.98, 0.84, 0.1)
        part(.circle(top, u(2.6)), heart)
    }

    private mutating func drawBall() {
        let r = u(7.5)
        let c = Point(cx, gy - r)
        part(.circle(c, r), color)
        let a = p[0] * .pi
        let seam = color.luma > 0.45 ? color.scaled(0.55) : RGB(0.95, 0.95, 0.92)
        part(.line(Point(c.x - r * 0.9 * cosf(a), c.y - r * 0.9 * sinf(a)), Point(c.x + r * 0.9 * cosf(a), c.y + r * 0.9 * sinf(a)),
                   width: u(1.1)), seam, outline: false)
        canvas.fill(.circle(Point(c.x - r * 0.4, c.y - r * 0.4), r * 0.22), Paint(RGB(1, 1, 1)), opacity: 0.7)
    }
}

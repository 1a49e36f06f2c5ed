// Scene: one picture of the world (its labels, where and how the object stands) and its rendering.
//
// A scene is drawn in 64×64 scene units at any pixel size: background, (photo) shadow, object, then the
// style's finish (sensor noise, or the pixel-art grid). Everything random is drawn from an explicit
// `PhiloxRandom` when the scene is sampled; rendering itself is a pure function of the scene.
import Foundation
import PNGImage
import TensorCore

/// Which attribute values a sampler may draw.
public struct WorldOptions: Equatable, Sendable {
    public var objects: [ObjectKind]
    public var colors: [NamedColor]
    public var backgrounds: [Background]
    public var patterns: [CoatPattern]
    public var styles: [RenderStyle]

    /// Throws when a list is empty.
    public init(objects: [ObjectKind] = ObjectKind.allCases, colors: [NamedColor] = NamedColor.allCases,
                backgrounds: [Background] = Background.allCases, patterns: [CoatPattern], styles: [RenderStyle]) throws {
        guard !objects.isEmpty, !colors.isEmpty, !backgrounds.isEmpty, !patterns.isEmpty, !styles.isEmpty else {
            throw WorldError.invalidArgument("world options need at least one object, colour, background, pattern and style")
        }
        self.init(checked: objects, colors, backgrounds, patterns, styles)
    }

    private init(checked objects: [ObjectKind], _ colors: [NamedColor], _ backgrounds: [Background],
                 _ patterns: [CoatPattern], _ styles: [RenderStyle]) {
        self.objects = objects
        self.colors = colors
        self.backgrounds = backgrounds
        self.patterns = patterns
        self.styles = styles
    }

    /// Base-model data: never the reserved coat pattern, never the unseen style.
    public static let base = WorldOptions(checked: ObjectKind.allCases, NamedColor.allCases, Background.allCases,
                                          CoatPattern.allCases.filter { $0 != .reserved },
                                          RenderStyle.allCases.filter { $0 != .unseen })
    /// Judge data: every value of every attribute.
    public static let all = WorldOptions(checked: ObjectKind.allCases, NamedColor.allCases, Background.allCases,
                                         CoatPattern.allCases, RenderStyle.allCases)
    /// Judge training data: every value of every attribute, with dogs and cats drawn three times as often
    /// (half of all scenes) so that the coat patterns are well represented.
    public static let judgeTraining = WorldOptions(checked: ObjectKind.allCases + [.dog, .cat, .dog, .cat],
                                                   NamedColor.allCases, Background.allCases,
                                                   CoatPattern.allCases, RenderStyle.allCases)
}

/// Where the object stands and how it is posed, in scene units.
public struct SceneLayout: Equatable, Sendable, Codable {
    /// Horizontal centre of the object.
    public var x: Float
    /// The y of the ground line under the object.
    public var ground: Float
    /// The y where ground (or floor) meets sky (or wall).
    public var horizon: Float
    /// Size factor (1 = nominal).
    public var scale: Float
    /// +1 facing right, −1 facing left.
    public var facing: Float
    /// Four pose parameters in [0, 1) (tail angle, head height, stride, proportions; per object).
    public var pose: [Float]
    /// Seed of the textures and pattern placement.
    public var detailSeed: UInt64

    public init(x: Float, ground: Float, horizon: Float, scale: Float, facing: Float, pose: [Float], detailSeed: UInt64) {
        self.x = x
        self.ground = ground
        self.horizon = horizon
        self.scale = scale
        self.facing = facing
        self.pose = pose
        self.detailSeed = detailSeed
    }
}

/// One picture: labels plus layout.
public struct Scene: Equatable, Sendable, Codable {
    public var labels: SceneLabels
    public var layout: SceneLayout

    public init(labels: SceneLabels, layout: SceneLayout) {
        self.labels = labels
        self.layout = layout
    }

    /// A scene whose labels are drawn from `options`.
    public static func random(using rng: inout PhiloxRandom, options: WorldOptions = .base) -> Scene {
        let object = rng.pick(options.objects), color = rng.pick(options.colors)
        let background = rng.pick(options.backgrounds)
        let pattern = object.hasCoat ? rng.pick(options.patterns) : .plain
        let style = rng.pick(options.styles)
        let labels = SceneLabels(object: object, color: color, background: background, pattern: pattern, style: style)
        return Scene(labels: labels, layout: .random(for: labels, using: &rng))
    }

    /// A scene with the given labels and a random layout.
    public static func random(_ labels: SceneLabels, using rng: inout PhiloxRandom) -> Scene {
        Scene(labels: labels, layout: .random(for: labels, using: &rng))
    }

    /// The picture at `size`×`size` pixels (1 ... 4096). With `showingObject: false` the scene is drawn
    /// without its object and the object's shadow: only the place, in the scene's style.
    public func render(size: Int = 64, showingObject: Bool = true) throws -> Image {
        guard (1...4096).contains(size) else { throw WorldError.invalidArgument("image size \(size) is not in 1...4096") }
        let style = labels.style
        let grid = style == .pixelArt ? min(size, 32) : size
        var canvas = Canvas(size: grid)
        let pen = Pen(style: style)
        drawBackground(labels.background, on: &canvas, horizon: layout.horizon, textured: pen.textured,
                       seed: layout.detailSeed)
        if showingObject {
            var drawing = ObjectDrawing(canvas: canvas, pen: pen, layout: layout,
                                        color: labels.color.rgb, pattern: labels.pattern)
            if style != .cartoon { drawing.shadow(for: labels.object) }
            drawing.draw(labels.object)
            canvas = drawing.canvas
        }
        switch style {
        case .photo: addNoise(&canvas, seed: layout.detailSeed)
        case .cartoon: break
        case .pixelArt: posterize(&canvas, levels: 6)
        }
        return try makeImage(canvas, size: size)
    }
}

extension SceneLayout {
    /// A random placement and pose for an object.
    static func random(for labels: SceneLabels, using rng: inout PhiloxRandom) -> SceneLayout {
        let horizon = rng.uniform(32, 42)
        let ground = rng.uniform(max(horizon + 12, 50), 58)
        let big = labels.object == .house || labels.object == .car
        let scale = big ? rng.uniform(0.75, 1.0) : rng.uniform(0.85, 1.2)
        let x = rng.uniform(big ? 24 : 20, big ? 40 : 44)
        let facing: Float = rng.next() & 1 == 0 ? 1 : -1
        let pose = (0..<4).map { _ in rng.uniform(0, 1) }
        return SceneLayout(x: x, ground: ground, horizon: horizon, scale: scale, facing: facing, pose: pose,
                           detailSeed: rng.next())
    }
}

/// Style-dependent drawing parameters.
struct Pen {
    let style: RenderStyle
    var outlineWidth: Float { style == .cartoon ? 1.3 : 0.7 }
    var shade: Float { style == .photo ? 0.35 : 0 }
    var textured: Bool { style == .photo }

    /// Cartoon: black; otherwise a darker shade, or a mid gray around very dark colours (so that black
    /// objects stay visible at night).
    func outline(for c: RGB) -> RGB {
        if style == .cartoon { return RGB(0.05, 0.05, 0.05) }
        return c.luma < 0.15 ? RGB(0.45, 0.45, 0.47) : c.scaled(0.5)
    }
}

/// Photo style: a little per-pixel sensor noise.
private func addNoise(_ canvas: inout Canvas, seed: UInt64) {
    let n = canvas.size * canvas.size * 3
    canvas.pixels.withUnsafeMutableBufferPointer { p in
        for i in 0..<n { p[i] += (hash01(i, 7, seed) - 0.5) * 0.05 }
    }
}

/// Pixel-art style: quantise each channel to `levels` values.
private func posterize(_ canvas: inout Canvas, levels: Int) {
    let q = Float(levels - 1)
    canvas.pixels.withUnsafeMutableBufferPointer { p in
        for i in 0..<p.count { p[i] = (min(max(p[i], 0), 1) * q).rounded() / q }
    }
}

/// Converts a canvas to 8-bit RGB at `size` (nearest-neighbour enlargement of a coarser grid).
private func makeImage(_ canvas: Canvas, size: Int) throws -> Image {
    var bytes = [UInt8](repeating: 0, count: size * size * 3)
    let g = canvas.size
    canvas.pixels.withUnsafeBufferPointer { p in
        for y in 0..<size {
            let sy = y * g / size
            for x in 0..<size {
                let s = (sy * g + x * g / size) * 3, d = (y * size + x) * 3
                for c in 0..<3 { bytes[d + c] = UInt8((min(max(p[s + c], 0), 1) * 255).rounded()) }
            }
        }
    }
    return try Image(width: size, height: size, pixels: bytes)
}

extension PhiloxRandom {
    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(next() >> 40) * 0x1p-24
    }

    /// A uniformly chosen element (callers pass non-empty arrays: `WorldOptions` checks its lists).
    public mutating func pick<T>(_ values: [T]) -> T {
        values[Int(next() % UInt64(values.count))]
    }
}

/// Errors of the picture world and its files.
public enum WorldError: Error, CustomStringConvertible, Equatable {
    case invalidArgument(String)
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidArgument(let m): return m
        case .io(let path, let reason): return "\(path): \(reason)"
        }
    }
}

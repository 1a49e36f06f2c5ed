// Examples: the fixed scenes of the two example sets, and the prompt lists used to validate and measure.
//
// Subject set: one particular dog, the only one in the world with the reserved (checkered) coat, always
// brown with the same build, in five places (never the snow) and poses; the base world never draws this coat.
// Style set: assorted scenes in the style the base world never uses (pixel art).
// Sepia set: a second unseen style, photo scenes toned as a sepia print with an ink vignette; it is a filter on
// rendered pixels, so the base world's styles and caption vocabulary do not change.
import PNGImage
import TensorCore

public enum Examples {
    /// The subject dog's labels in a place.
    public static func subjectLabels(_ background: Background) -> SceneLabels {
        SceneLabels(object: .dog, color: .brown, background: background, pattern: .reserved, style: .photo)
    }

    /// The subject set: `count` scenes of the subject dog (deterministic).
    public static func subjectScenes(count: Int = 5) -> [Scene] {
        let places: [Background] = [.grass, .beach, .room, .city, .night]
        var rng = PhiloxRandom(seed: 0x5C5D06)
        return (0..<count).map { i in
            var scene = Scene.random(subjectLabels(places[i % places.count]), using: &rng)
            scene.layout.scale = 1.1
            scene.layout.pose[3] = 0.5
            scene.layout.facing = i % 2 == 0 ? 1 : -1
            return scene
        }
    }

    /// The style set: `count` assorted scenes in the unseen style (deterministic).
    public static func styleScenes(count: Int = 5) -> [Scene] {
        assortedScenes([(.cat, .orange, .grass), (.house, .red, .city), (.car, .blue, .beach), (.tree, .green, .snow),
                        (.ball, .yellow, .room), (.bird, .purple, .night), (.flower, .pink, .grass)],
                       style: .unseen, seed: 0x57A1E, count: count)
    }

    /// The sepia set: `count` assorted photo scenes (deterministic), to be rendered and passed through `sepia`.
    public static func sepiaScenes(count: Int = 5) -> [Scene] {
        assortedScenes([(.bird, .red, .grass), (.car, .green, .city), (.house, .blue, .snow), (.flower, .yellow, .beach),
                        (.cat, .white, .room), (.tree, .orange, .night), (.ball, .purple, .grass)],
                       style: .photo, seed: 0x5E91A, count: count)
    }

    /// Scene i shows `subjects[i % subjects.count]` in `style`, laid out by a generator seeded with `seed`.
    private static func assortedScenes(_ subjects: [(ObjectKind, NamedColor, Background)], style: RenderStyle, seed: UInt64,
                                       count: Int) -> [Scene] {
        var rng = PhiloxRandom(seed: seed)
        return (0..<count).map { i in
            let (o, c, b) = subjects[i % subjects.count]
            return Scene.random(SceneLabels(object: o, color: c, background: b, style: style), using: &rng)
        }
    }

    /// The sepia print's colour ramp (8-bit RGB): every pixel of `sepia(_:)` lies on the segment between them.
    public static let sepiaRamp: (dark: (Float, Float, Float), light: (Float, Float, Float)) = ((44, 26, 12), (246, 226, 186))

    /// A sepia print: luminance mapped onto a dark-brown → cream ramp with raised contrast, darkened towards
    /// the corners (an ink vignette). Deterministic; size unchanged.
    public static func sepia(_ image: Image) throws -> Image {
        let w = image.width, h = image.height
        let dark = sepiaRamp.dark, light = sepiaRamp.light
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let i = (y * w + x) * 3
                let lum = (0.299 * Float(image.pixels[i]) + 0.587 * Float(image.pixels[i + 1])
                    + 0.114 * Float(image.pixels[i + 2])) / 255
                let contrast = min(max((lum - 0.5) * 1.35 + 0.5, 0), 1)
                let dx = (Float(x) + 0.5) / Float(w) * 2 - 1, dy = (Float(y) + 0.5) / Float(h) * 2 - 1
                let t = contrast * max(0, 1 - 0.45 * (dx * dx + dy * dy))
                out[i] = UInt8((dark.0 + (light.0 - dark.0) * t).rounded())
                out[i + 1] = UInt8((dark.1 + (light.1 - dark.1) * t).rounded())
                out[i + 2] = UInt8((dark.2 + (light.2 - dark.2) * t).rounded())
            }
        }
        return try Image(width: w, height: h, pixels: out)
    }
}

/// Prompt lists for validation and fidelity measurements.
public enum PromptSets {
    /// A few prompts covering every object and background (canonical phrasing).
    public static func validation() -> [String] {
        let colors: [NamedColor] = [.brown, .black, .blue, .red, .green, .white, .yellow, .pink]
        return ObjectKind.allCases.enumerated().map { i, o in
            let b = Background.allCases[i % Background.allCases.count]
            return Caption.make(SceneLabels(object: o, color: colors[i % colors.count], background: b))
        }
    }

    /// Prompts naming the subject by its identifier, one per background.
    public static func subject(token: String = "sks", className: String = "dog") -> [String] {
        Background.allCases.map { "a photo of \(token) \(className) \($0.phrases[0])" }
    }

    /// Prompts that name only the class, to measure prior drift, one per background plus the bare one.
    public static func prior(className: String = "dog") -> [String] {
        ["a photo of a \(className)"] + Background.allCases.map { "a photo of a \(className) \($0.phrases[0])" }
    }

    /// `count` prompts drawn from the base world's labels with a fixed seed, in every phrasing: the
    /// prompt-fidelity set. The images a model draws for them are new, but the label combinations
    /// (8 objects × 11 colours × 6 backgrounds) also occur in base data.
    public static func heldout(count: Int = 200, seed: UInt64 = 0x4E1D0) -> [(prompt: String, labels: SceneLabels)] {
        var rng = PhiloxRandom(seed: seed)
        return (0..<count).map { _ in
            let o = rng.pick(ObjectKind.allCases), c = rng.pick(NamedColor.allCases), b = rng.pick(Background.allCases)
            let labels = SceneLabels(object: o, color: c, background: b)
            return (Caption.random(labels, using: &rng), labels)
        }
    }
}

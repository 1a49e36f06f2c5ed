// Examples: the fixed scenes of the two example sets, and the prompt lists used to validate and measure.
//
// Subject set: one particular dog, the only one in the world with the reserved (checkered) coat, always
// brown with the same build, in five places (never the snow) and poses; the base world never draws this coat.
// Style set: assorted scenes in the style the base world never uses (pixel art).
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
        let subjects: [(ObjectKind, NamedColor, Background)] = [
            (.cat, .orange, .grass), (.house, .red, .city), (.car, .blue, .beach), (.tree, .green, .snow),
            (.ball, .yellow, .room), (.bird, .purple, .night), (.flower, .pink, .grass),
        ]
        var rng = PhiloxRandom(seed: 0x57A1E)
        return (0..<count).map { i in
            let (o, c, b) = subjects[i % subjects.count]
            return Scene.random(SceneLabels(object: o, color: c, background: b, style: .unseen), using: &rng)
        }
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

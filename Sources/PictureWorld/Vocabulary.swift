// Vocabulary: the labelled attributes of a picture-world scene and the words captions use for them.
//
// Every attribute is a `CaseIterable` enum whose case order is its class index (the judge's heads and
// any label file use these indices), so cases are only ever appended.

/// What the scene shows.
public enum ObjectKind: Int, CaseIterable, Sendable, Codable {
    case dog, cat, bird, house, tree, car, flower, ball

    /// The caption word.
    public var word: String { "\(self)" }
    /// Whether the object wears a coat pattern.
    public var hasCoat: Bool { self == .dog || self == .cat }

    /// The colour a caption takes for granted when it names none (`CaptionOmission.usualColors`).
    public var usualColor: NamedColor {
        switch self {
        case .dog: return .brown
        case .cat: return .gray
        case .bird: return .blue
        case .house: return .red
        case .tree: return .green
        case .car: return .red
        case .flower: return .yellow
        case .ball: return .orange
        }
    }
}

/// The colour of the object (an animal's coat, a house's walls, a tree's crown, a flower's petals …).
public enum NamedColor: Int, CaseIterable, Sendable, Codable {
    case red, orange, yellow, green, blue, purple, pink, brown, black, white, gray

    public var word: String { "\(self)" }

    /// The rendered colour.
    public var rgb: RGB {
        switch self {
        case .red: return RGB(0.85, 0.12, 0.10)
        case .orange: return RGB(0.98, 0.52, 0.08)
        case .yellow: return RGB(0.98, 0.86, 0.12)
        case .green: return RGB(0.20, 0.68, 0.18)
        case .blue: return RGB(0.13, 0.33, 0.88)
        case .purple: return RGB(0.52, 0.20, 0.70)
        case .pink: return RGB(0.98, 0.55, 0.75)
        case .brown: return RGB(0.52, 0.30, 0.12)
        case .black: return RGB(0.08, 0.08, 0.09)
        case .white: return RGB(0.97, 0.97, 0.95)
        case .gray: return RGB(0.52, 0.53, 0.55)
        }
    }
}

/// Where the scene takes place.
public enum Background: Int, CaseIterable, Sendable, Codable {
    case grass, beach, snow, night, room, city

    /// The short caption word (`a brown dog, beach`).
    public var word: String { "\(self)" }

    /// Prepositional phrases for captions; the first is the canonical one.
    public var phrases: [String] {
        switch self {
        case .grass: return ["on the grass", "in a meadow", "on a lawn"]
        case .beach: return ["on the beach", "by the sea", "on the sand"]
        case .snow: return ["in the snow", "on a snowy day", "in the winter snow"]
        case .night: return ["at night", "under the night sky", "under the stars"]
        case .room: return ["in a room", "indoors", "in the living room"]
        case .city: return ["in the city", "on a city street", "downtown"]
        }
    }

    /// Words that identify the background in a prompt.
    var keywords: [String] {
        switch self {
        case .grass: return ["grass", "meadow", "lawn", "field"]
        case .beach: return ["beach", "sea", "sand", "shore"]
        case .snow: return ["snow", "snowy", "winter"]
        case .night: return ["night", "stars", "moon"]
        case .room: return ["room", "indoors", "inside"]
        case .city: return ["city", "street", "downtown"]
        }
    }
}

/// An animal's coat. `checkered` is reserved: the base world never draws it (it marks the one
/// particular dog of the subject example set), but the judge is trained to see it.
public enum CoatPattern: Int, CaseIterable, Sendable, Codable {
    case plain, spotted, striped, checkered

    public var word: String { "\(self)" }
    /// The pattern kept out of base-model data.
    public static let reserved: CoatPattern = .checkered
}

/// How the scene is drawn. `pixelArt` is the style the base world never uses (the style example set).
public enum RenderStyle: Int, CaseIterable, Sendable, Codable {
    /// Shaded shapes, soft shadow, thin darker outlines, textured backgrounds and a little sensor noise.
    case photo
    /// Flat colours, thick black outlines, untextured backgrounds.
    case cartoon
    /// A coarse pixel grid (32 cells across) with a posterised palette (6 levels per channel), flat colours.
    case pixelArt

    /// The style kept out of base-model data.
    public static let unseen: RenderStyle = .pixelArt

    /// The noun captions use for a picture in this style (`a photo of …`).
    public var noun: String {
        switch self {
        case .photo: return "photo"
        case .cartoon: return "cartoon"
        case .pixelArt: return "pixel art picture"
        }
    }
}

/// The labels of one scene: what the judge reads and what a caption says.
public struct SceneLabels: Equatable, Hashable, Sendable, Codable {
    public var object: ObjectKind
    public var color: NamedColor
    public var background: Background
    public var pattern: CoatPattern
    public var style: RenderStyle

    public init(object: ObjectKind, color: NamedColor, background: Background,
                pattern: CoatPattern = .plain, style: RenderStyle = .photo) {
        self.object = object
        self.color = color
        self.background = background
        self.pattern = object.hasCoat ? pattern : .plain
        self.style = style
    }
}

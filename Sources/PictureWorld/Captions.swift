// Captions: several phrasings of a scene's labels, and the parser that reads labels back from a
// caption or prompt (used to check what a prompt asks for).
//
//   a photo of a brown spotted dog on the beach      (phrasing 0, the canonical one)
//   a brown dog on the beach / a red car in the snow (phrasing 1)
//   a brown dog, beach                               (phrasing 2)
//   a picture of a brown dog by the sea              (phrasing 3)
//   a cartoon of a brown dog in a meadow             (styles other than photo name themselves)
//   a photo of a dog / a dog / a red car / a dog on the beach   (colour, place or both left out: `CaptionParts`)

/// Which attributes a caption names. The object, its coat and a style other than photo are always named;
/// colour and place may be left out (`a photo of a dog`, `a red car`, `a dog on the beach`).
public struct CaptionParts: Equatable, Hashable, Sendable {
    public var color: Bool
    public var place: Bool

    public init(color: Bool = true, place: Bool = true) {
        self.color = color
        self.place = place
    }

    /// Colour and place both named: every caption the world wrote before omissions existed.
    public static let all = CaptionParts()
    /// Every combination, `all` first.
    public static let allCombinations = [CaptionParts(), CaptionParts(color: false), CaptionParts(place: false),
                                         CaptionParts(color: false, place: false)]
}

/// How often a caption leaves out the colour and the place (each independently).
public struct CaptionOmission: Equatable, Sendable, Codable {
    /// Probability that the colour is left out.
    public var color: Double
    /// Probability that the place is left out.
    public var place: Double
    /// Whether a scene whose caption leaves the colour out shows its object in the object's usual colour
    /// (`ObjectKind.usualColor`: `a dog` is a brown dog), as people leave out what is expected and name
    /// what is not. Without it an unnamed colour is any colour.
    public var usualColors: Bool

    /// Throws unless both probabilities lie in [0, 1].
    public init(color: Double = 0, place: Double = 0, usualColors: Bool = false) throws {
        guard (0...1).contains(color), (0...1).contains(place) else {
            throw WorldError.invalidArgument("caption omission probabilities must lie in [0, 1], got colour \(color), place \(place)")
        }
        self.color = color
        self.place = place
        self.usualColors = usualColors
    }

    /// Never leave anything out.
    public static let none = try! CaptionOmission()

    private enum CodingKeys: String, CodingKey { case color, place, usualColors }

    /// `usualColors` is written only when set, so configurations made before it existed read the same.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(color, forKey: .color)
        try c.encode(place, forKey: .place)
        if usualColors { try c.encode(true, forKey: .usualColors) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(color: try c.decode(Double.self, forKey: .color), place: try c.decode(Double.self, forKey: .place),
                      usualColors: try c.decodeIfPresent(Bool.self, forKey: .usualColors) ?? false)
    }

    /// The parts one caption names, drawn from `rng` (two draws; none when nothing is ever left out, so the
    /// streams of callers without omission are untouched).
    func parts(using rng: inout some RandomNumberGenerator) -> CaptionParts {
        guard self != .none else { return .all }
        let c = Double(rng.next() >> 11) * 0x1p-53, p = Double(rng.next() >> 11) * 0x1p-53
        return CaptionParts(color: c >= color, place: p >= place)
    }
}

/// Caption phrasings and parsing.
public enum Caption {
    /// Number of phrasings `make` knows.
    public static let phrasingCount = 4

    /// The caption of `labels` in phrasing `phrasing` (mod `phrasingCount`), with background phrase
    /// variant `variant` (mod the background's phrase count), naming the parts `naming` asks for. Plain coats
    /// are not named.
    public static func make(_ labels: SceneLabels, phrasing: Int = 0, variant: Int = 0, naming: CaptionParts = .all) -> String {
        let words = (naming.color ? [labels.color.word] : []) + (labels.pattern == .plain ? [] : [labels.pattern.word])
            + [labels.object.word]
        let noun = words.joined(separator: " ")
        let phrases = labels.background.phrases
        let place = phrases[((variant % phrases.count) + phrases.count) % phrases.count]
        let subject = article(for: noun) + " " + noun
        let styleNoun = labels.style.noun
        let phrasing = ((phrasing % phrasingCount) + phrasingCount) % phrasingCount
        if !naming.place {
            switch phrasing {
            case 0: return "\(article(for: styleNoun)) \(styleNoun) of \(subject)"
            case 1, 2: return labels.style == .photo ? subject : "\(subject), \(styleNoun)"
            default: return labels.style == .photo ? "a picture of \(subject)" : "\(article(for: styleNoun)) \(styleNoun) of \(subject)"
            }
        }
        switch phrasing {
        case 0: return "\(article(for: styleNoun)) \(styleNoun) of \(subject) \(place)"
        case 1: return labels.style == .photo ? "\(subject) \(place)" : "\(subject) \(place), \(styleNoun)"
        case 2: return labels.style == .photo ? "\(subject), \(labels.background.word)"
                                              : "\(subject), \(labels.background.word), \(styleNoun)"
        default: return labels.style == .photo ? "a picture of \(subject) \(place)"
                                               : "\(article(for: styleNoun)) \(styleNoun) of \(subject) \(place)"
        }
    }

    /// A caption in a random phrasing and background variant, leaving out colour and place as often as
    /// `omission` says (drawn after phrasing and variant, and only when `omission` is not `.none`).
    public static func random(_ labels: SceneLabels, omitting omission: CaptionOmission = .none,
                              using rng: inout some RandomNumberGenerator) -> String {
        var labels = labels
        return random(&labels, omitting: omission, using: &rng)
    }

    /// `random(_:omitting:using:)` for a scene's labels: when the caption leaves the colour out and
    /// `omission.usualColors` is set, `labels.color` becomes the object's usual colour (the same draws, so
    /// the stream after it is the same either way).
    public static func random(_ labels: inout SceneLabels, omitting omission: CaptionOmission,
                              using rng: inout some RandomNumberGenerator) -> String {
        let phrasing = Int(rng.next() % UInt64(phrasingCount)), variant = Int(rng.next() % 3)
        let parts = omission.parts(using: &rng)
        if !parts.color, omission.usualColors { labels.color = labels.object.usualColor }
        return make(labels, phrasing: phrasing, variant: variant, naming: parts)
    }

    /// Every caption `make` can write for labels drawn from `options` naming every part, in a fixed order
    /// (the corpus a tokenizer vocabulary is built from). Captions that leave colour or place out use only
    /// words of these, so a vocabulary learned from the corpus tokenizes them the same way.
    public static func corpus(_ options: WorldOptions = .base) -> [String] {
        var out: [String] = []
        for o in options.objects {
            for c in options.colors {
                for b in options.backgrounds {
                    for p in (o.hasCoat ? options.patterns : [.plain]) {
                        for s in options.styles {
                            let labels = SceneLabels(object: o, color: c, background: b, pattern: p, style: s)
                            for phrasing in 0..<phrasingCount {
                                for variant in 0..<b.phrases.count { out.append(make(labels, phrasing: phrasing, variant: variant)) }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// "a" or "an".
    static func article(for word: String) -> String {
        guard let first = word.first else { return "a" }
        return "aeiou".contains(first) ? "an" : "a"
    }

    /// What a caption or prompt names: every attribute it mentions (nil where it says nothing).
    public struct Parsed: Equatable, Sendable {
        public var object: ObjectKind?
        public var color: NamedColor?
        public var background: Background?
        public var pattern: CoatPattern?
        public var style: RenderStyle?
        /// Words that are none of the world's vocabulary (e.g. an identifier such as `sks`).
        public var otherWords: [String]
    }

    /// Reads the attributes a caption or prompt mentions. Words are matched case-insensitively;
    /// "grey" counts as gray, "drawing" as cartoon, "pixel" as pixel art.
    public static func parse(_ text: String) -> Parsed {
        let words = text.lowercased().split { !($0.isLetter || $0 == "'") }.map(String.init)
        var out = Parsed(otherWords: [])
        let objects = Dictionary(uniqueKeysWithValues: ObjectKind.allCases.map { ($0.word, $0) })
        var colors = Dictionary(uniqueKeysWithValues: NamedColor.allCases.map { ($0.word, $0) })
        colors["grey"] = .gray
        let patterns = Dictionary(uniqueKeysWithValues: CoatPattern.allCases.map { ($0.word, $0) })
        let styles: [String: RenderStyle] = ["photo": .photo, "photograph": .photo, "cartoon": .cartoon,
                                              "drawing": .cartoon, "pixel": .pixelArt]
        let filler: Set<String> = ["a", "an", "the", "of", "on", "in", "at", "by", "under", "picture", "art", "day",
                                   "living", "snowy", "sky", "winter", "with", "and", "dog's", "style"]
        for w in words {
            if let o = objects[w] { out.object = o; continue }
            if let c = colors[w] { out.color = c; continue }
            if let p = patterns[w] { out.pattern = p; continue }
            if let s = styles[w] { out.style = s; continue }
            if let b = Background.allCases.first(where: { $0.keywords.contains(w) }) {
                if out.background == nil { out.background = b }
                continue
            }
            if !filler.contains(w) { out.otherWords.append(w) }
        }
        return out
    }
}

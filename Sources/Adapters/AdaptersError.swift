// AdaptersError: everything that can be wrong with an adapter file, a target model or a request,
// each case naming the file, the keys and the shapes involved.

/// An error loading, applying, fusing or writing LoRA adapters. The base model is unchanged whenever one
/// of these is thrown.
public enum AdaptersError: Error, CustomStringConvertible, Equatable {
    /// The file's tensor names follow no LoRA convention we read.
    case unknownFormat(file: String, sampleKeys: [String])
    /// No tensor of the adapter names a module of the model.
    case matchesNothing(file: String, unmatched: [String])
    /// An adapter module whose down/up shapes do not fit the base layer.
    case shapeMismatch(file: String, module: String, keys: [String], base: [Int], down: [Int], up: [Int])
    /// A module with a down but no up tensor (or the reverse), or an inconsistent rank.
    case incompleteModule(file: String, module: String, reason: String)
    /// A tensor that should be finite is not (refused before anything is changed).
    case nonFinite(adapter: String, module: String)
    /// An adapter name that is not loaded, or that is loaded twice.
    case unknownAdapter(String)
    case duplicateAdapter(String)
    /// A request that cannot be carried out as asked (`reason` says why).
    case invalidRequest(String)
    /// A malformed `--lora` / `<lora:…>` specification.
    case invalidSpec(spec: String, reason: String)

    public var description: String {
        switch self {
        case .unknownFormat(let f, let keys):
            return "\(f): not a LoRA file we can read (keys such as \(keys.prefix(4).joined(separator: ", ")))"
        case .matchesNothing(let f, let keys):
            let shown = keys.prefix(4).joined(separator: ", ")
            return "\(f): the adapter matches no module of the model (\(keys.count) unmatched keys such as \(shown)); "
                + "is it for another architecture?"
        case .shapeMismatch(let f, let m, let keys, let base, let down, let up):
            return "\(f): '\(m)' does not fit the model: base weight \(base), \(keys.joined(separator: " / ")) "
                + "are \(down) / \(up); is the adapter for another architecture?"
        case .incompleteModule(let f, let m, let why):
            return "\(f): module '\(m)': \(why)"
        case .nonFinite(let a, let m):
            return "adapter '\(a)' has NaN or Inf values in '\(m)'; refusing to fuse"
        case .unknownAdapter(let n):
            return "no adapter named '\(n)' is loaded"
        case .duplicateAdapter(let n):
            return "an adapter named '\(n)' is already loaded"
        case .invalidRequest(let why):
            return why
        case .invalidSpec(let spec, let why):
            return "'\(spec)': \(why)"
        }
    }
}

// Which adapters a generation uses: `--lora FILE[:w]` / `--lora FILE:unet=0.8,te=0.3` flags, `<lora:name:0.8>`
// tags in the prompt (A1111 / stable-diffusion.cpp syntax, looked up by file name in the adapter folder),
// and trigger words: an adapter in the folder whose `modelspec.trigger_phrase` appears as a word in the
// prompt applies at 1.0 unless a flag or tag names it.
import Foundation
import SafeTensors

/// One adapter to apply, with its UNet and text-encoder weights.
public struct AdapterRequest: Equatable, Sendable {
    public enum Origin: String, Sendable { case flag, prompt, trigger }

    /// The file name or path as given (`sks`, `sks.safetensors`, `dir/sks.safetensors`).
    public var name: String
    public var unetWeight: Float
    public var textEncoderWeight: Float
    public var origin: Origin
    /// For trigger-selected adapters: the phrase that matched.
    public var trigger: String?
    /// The name the user gave the adapter (`--lora style=FILE`); nil: named after its file.
    public var label: String?

    public init(name: String, unetWeight: Float = 1, textEncoderWeight: Float = 1, origin: Origin = .flag, trigger: String? = nil) {
        self.name = name
        self.unetWeight = unetWeight
        self.textEncoderWeight = textEncoderWeight
        self.origin = origin
        self.trigger = trigger
    }

    /// `FILE`, `FILE:0.8`, `FILE:unet=0.8,te=0.3` (the `--lora` flag), each optionally named: `NAME=FILE:0.8`.
    public static func parseFlag(_ spec: String) throws -> AdapterRequest {
        if let equals = spec.firstIndex(of: "="), equals != spec.startIndex,
           !spec[..<equals].contains(where: { $0 == ":" || $0 == "/" || $0 == "," }),
           !FileManager.default.fileExists(atPath: String(spec[..<(spec.lastIndex(of: ":") ?? spec.endIndex)])) {
            var request = try parseFlag(String(spec[spec.index(after: equals)...]))
            request.label = String(spec[..<equals])
            return request
        }
        guard let colon = spec.lastIndex(of: ":") else { return AdapterRequest(name: spec) }
        let name = String(spec[..<colon])
        guard !name.isEmpty else { throw AdaptersError.invalidSpec(spec: spec, reason: "no adapter name before ':'") }
        let (u, t) = try weights(String(spec[spec.index(after: colon)...]), spec: spec)
        return AdapterRequest(name: name, unetWeight: u, textEncoderWeight: t)
    }

    /// `0.8` (both), `unet=0.8,te=0.3` (each; a missing one is 1), or A1111's `te=0.3` style fields.
    static func weights(_ text: String, spec: String) throws -> (Float, Float) {
        func number(_ s: Substring) throws -> Float {
            guard let v = Float(s.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                throw AdaptersError.invalidSpec(spec: spec, reason: "weight '\(s)' is not a number")
            }
            return v
        }
        guard text.contains("=") else { let w = try number(Substring(text)); return (w, w) }
        var unet: Float = 1, te: Float = 1
        for field in text.split(whereSeparator: { $0 == "," || $0 == ":" }) {
            let kv = field.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { throw AdaptersError.invalidSpec(spec: spec, reason: "'\(field)' is not key=weight") }
            switch kv[0].trimmingCharacters(in: .whitespaces).lowercased() {
            case "unet": unet = try number(kv[1])
            case "te", "text_encoder": te = try number(kv[1])
            default: throw AdaptersError.invalidSpec(spec: spec, reason: "unknown weight '\(kv[0])' (use unet= or te=)")
            }
        }
        return (unet, te)
    }

    /// Removes every `<lora:name>`, `<lora:name:w>`, `<lora:name:unet=…,te=…>` tag from `prompt`; returns the
    /// cleaned prompt (spaces collapsed) and the requests in order.
    public static func extractTags(from prompt: String) throws -> (prompt: String, requests: [AdapterRequest]) {
        var requests: [AdapterRequest] = []
        var cleaned = ""
        var rest = Substring(prompt)
        while let open = rest.range(of: "<lora:") {
            cleaned += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: ">") else {
                throw AdaptersError.invalidSpec(spec: String(rest[open.lowerBound...]), reason: "unterminated <lora:…> tag")
            }
            let body = rest[open.upperBound..<close]
            let tag = "<lora:\(body)>"
            let parts = body.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty else { throw AdaptersError.invalidSpec(spec: tag, reason: "no adapter name") }
            let (u, t) = parts.count > 1 ? try weights(String(parts[1]), spec: tag) : (1, 1)
            requests.append(AdapterRequest(name: name, unetWeight: u, textEncoderWeight: t, origin: .prompt))
            rest = rest[rest.index(after: close)...]
        }
        cleaned += rest
        let collapsed = cleaned.split(whereSeparator: { $0 == " " }).joined(separator: " ")
            .replacingOccurrences(of: " ,", with: ",")
        return (collapsed.trimmingCharacters(in: .whitespaces), requests)
    }
}

/// The adapters in a folder (default `outputs/adapters/`), found by file name, with their trigger phrases.
public struct AdapterFolder: Sendable {
    public static let defaultPath = "outputs/adapters"
    public let path: String
    /// File name (with extension) → trigger phrase, for every `.safetensors` file in the folder.
    public let triggers: [String: String?]

    /// Lists the folder; a missing folder is an empty one. Reads only the files' headers.
    public init(path: String = AdapterFolder.defaultPath) {
        self.path = path
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            .filter { $0.lowercased().hasSuffix(".safetensors") }.sorted()
        var t: [String: String?] = [:]
        for f in files {
            let meta = (try? SafeTensorsFile(path: (path as NSString).appendingPathComponent(f)).metadata) ?? [:]
            let phrase = meta["modelspec.trigger_phrase"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
            t.updateValue(phrase, forKey: f)
        }
        triggers = t
    }

    /// The file for a request: an existing path as given, else `<folder>/<name>` or `<folder>/<name>.safetensors`.
    public func locate(_ name: String) throws -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: name, isDirectory: &isDirectory), !isDirectory.boolValue { return name }
        for candidate in [name, name + ".safetensors"] where triggers.keys.contains(candidate) {
            return (path as NSString).appendingPathComponent(candidate)
        }
        let known = triggers.keys.sorted().map { String($0.dropLast(12)) }
        throw AdaptersError.invalidRequest("adapter '\(name)' not found (not a file, and not in \(path)"
            + (known.isEmpty ? ", which has no adapters)" : "; it has \(known.joined(separator: ", ")))"))
    }

    /// Adapters whose trigger phrase appears as a whole word (or words) in `prompt`, case-insensitively,
    /// at weight 1.0, leaving out any that `explicit` requests already name.
    public func triggered(by prompt: String, excluding explicit: [AdapterRequest]) -> [AdapterRequest] {
        let words = tokens(prompt)
        let named = Set(explicit.map { ($0.name as NSString).lastPathComponent.lowercased() })
        return triggers.keys.sorted().compactMap { file in
            guard let phrase = triggers[file] ?? nil else { return nil }
            let stem = String(file.dropLast(12)).lowercased()
            guard !named.contains(file.lowercased()), !named.contains(stem) else { return nil }
            let p = tokens(phrase)
            guard !p.isEmpty, words.count >= p.count,
                  (0...(words.count - p.count)).contains(where: { Array(words[$0..<($0 + p.count)]) == p }) else { return nil }
            return AdapterRequest(name: (path as NSString).appendingPathComponent(file), origin: .trigger, trigger: phrase)
        }
    }

    private func tokens(_ text: String) -> [String] {
        text.lowercased().split { !($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }.map(String.init)
    }
}

extension AdapterRequest {
    /// `using adapter sks.safetensors (trigger "sks") at 1.0` / `using adapter style.safetensors at 0.8 (te 0.3)`.
    public var usageLine: String {
        let file = (name as NSString).lastPathComponent
        let trig = trigger.map { " (trigger \"\($0)\")" } ?? ""
        let te = textEncoderWeight == unetWeight ? "" : " (te \(textEncoderWeight))"
        return "using adapter \(file)\(trig) at \(unetWeight)\(te)"
    }
}

// The A1111-style `parameters` PNG text chunk: writing it for every generated image and reading it back
// (`generate --from-png`). Format (A1111 `processing.create_infotext`, parsed as its
// `generation_parameters_copypaste.parse_generation_parameters` does):
//
//     a photo of sks dog
//     Negative prompt: blurry
//     Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 42, Size: 512x512,
//     Model hash: 0123456789, Model: toy, RNG: torch, Lora hashes: "sks: 0123456789ab"
//
// (the last line is one line). Values that contain `,`, `:` or `"` are written as JSON strings. Fields
// written only when they differ from the default: Negative prompt, Precision (`bf16`), Clip skip (A1111 numbering: 1 + skipped
// layers), Eta, Batch size / Batch pos, Lora hashes; for image-to-image `Denoising strength: 0.6` (A1111's
// img2img field), `Init image hash` (10 hex digits of the file's SHA-256), `Init image` (its path) and, when cropped,
// `Resize mode: Crop and resize`; for SDXL the size conditioning given (`Original size: 2048x2048`,
// `Crop coords: "64,0"` as top,left, `Target size: 1024x1024`; absent fields are diffusers' defaults).

import Adapters
import Foundation
import Schedulers

/// Everything the `parameters` chunk records: the request, the image's place in its batch, the model.
public struct ParametersText: Equatable, Sendable {
    /// PNG text keyword of the chunk.
    public static let keyword = "parameters"

    /// The run, with width, height and Karras resolved.
    public var parameters: GenerationParameters
    /// Index of this image in its batch of `parameters.numImages`.
    public var batchPosition: Int
    public var modelName: String?
    public var modelHash: String?
    /// `Precision: bf16` when the frozen weights computed in BF16 (`--precision bf16`); nil: fp32.
    public var precision: String?

    public init(parameters: GenerationParameters, batchPosition: Int = 0, modelName: String? = nil,
                modelHash: String? = nil, precision: String? = nil) {
        self.parameters = parameters
        self.batchPosition = batchPosition
        self.modelName = modelName
        self.modelHash = modelHash
        self.precision = precision
    }

    /// The chunk's text.
    public var text: String {
        let p = parameters
        var lines = [p.prompt]
        if !p.negativePrompt.isEmpty { lines.append("Negative prompt: " + p.negativePrompt) }
        var fields: [(String, String)] = [
            ("Steps", "\(p.steps)"), ("Sampler", p.sampler.displayName),
            ("Schedule type", p.karras == true ? "Karras" : "Automatic"),
            ("CFG scale", "\(p.guidanceScale)"), ("Seed", "\(p.seed)"),
        ]
        if let w = p.width, let h = p.height { fields.append(("Size", "\(w)x\(h)")) }
        fields += Self.sizeConditioningFields(p.sizeConditioning)
        if let modelHash { fields.append(("Model hash", modelHash)) }
        if let modelName { fields.append(("Model", modelName)) }
        if let precision { fields.append(("Precision", precision)) }
        if let initImage = p.initImage {
            fields.append(("Denoising strength", "\(initImage.strength)"))
            if let hash = initImage.hash { fields.append(("Init image hash", hash)) }
            if let path = initImage.path { fields.append(("Init image", path)) }
            if initImage.resize == .crop { fields.append(("Resize mode", "Crop and resize")) }
        }
        if p.clipSkip != 0 { fields.append(("Clip skip", "\(p.clipSkip + 1)")) }
        if p.eta != 0 { fields.append(("Eta", "\(p.eta)")) }
        if p.guidanceRescale != 0 { fields.append(("CFG Rescale phi", "\(p.guidanceRescale)")) }
        if p.numImages != 1 {
            fields.append(("Batch size", "\(p.numImages)"))
            fields.append(("Batch pos", "\(batchPosition)"))
        }
        fields.append(("RNG", p.rng.rawValue))
        let hashed = p.adapters.filter { $0.hash != nil }
        if !hashed.isEmpty {
            fields.append(("Lora hashes", hashed.map { "\($0.name): \($0.hash!)" }.joined(separator: ", ")))
        }
        lines.append(fields.map { "\($0.0): \(Self.quoted($0.1))" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    /// Parses a chunk written by `text` (or by A1111 for the fields both know). Unknown fields are
    /// ignored; a missing Steps/Sampler/Seed or a malformed value is an error naming the field.
    public init(parsing text: String) throws {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let last = lines.popLast(), let fields = Self.fields(last), fields.count >= 3 else {
            throw PipelineError.invalidParameters("the last line holds no \"Key: value, …\" fields")
        }
        var prompt: [String] = [], negative: [String] = []
        for line in lines {
            if negative.isEmpty, line.hasPrefix("Negative prompt:") {
                negative.append(String(line.dropFirst("Negative prompt:".count)).trimmingCharacters(in: .whitespaces))
            } else if negative.isEmpty {
                prompt.append(line)
            } else {
                negative.append(line)
            }
        }
        var p = GenerationParameters(prompt: prompt.joined(separator: "\n"),
                                     negativePrompt: negative.joined(separator: "\n"))
        func require(_ key: String) throws -> String {
            guard let v = fields[key] else { throw PipelineError.invalidParameters("no \(key) field") }
            return v
        }
        func number<T: LosslessStringConvertible>(_ key: String, _ value: String) throws -> T {
            guard let n = T(value) else { throw PipelineError.invalidParameters("\(key): \"\(value)\" is not a number") }
            return n
        }
        p.steps = try number("Steps", try require("Steps"))
        let samplerName = try require("Sampler")
        let kind = SamplerKind.allCases.first { $0.displayName == samplerName } ?? SamplerKind(userName: samplerName)
        guard let kind else { throw PipelineError.invalidParameters("Sampler: unknown sampler \"\(samplerName)\"") }
        p.sampler = kind
        p.seed = try number("Seed", try require("Seed"))
        if let v = fields["CFG scale"] { p.guidanceScale = try number("CFG scale", v) }
        if let v = fields["Schedule type"] { p.karras = v == "Karras" }
        if let v = fields["Size"] {
            let wh = v.split(separator: "x")
            guard wh.count == 2, let w = Int(wh[0]), let h = Int(wh[1]) else {
                throw PipelineError.invalidParameters("Size: \"\(v)\" is not WIDTHxHEIGHT")
            }
            (p.width, p.height) = (w, h)
        }
        p.sizeConditioning = try Self.sizeConditioning(fields)
        if let v = fields["Clip skip"] { p.clipSkip = max(0, try number("Clip skip", v) as Int - 1) }
        if let v = fields["Eta"] { p.eta = try number("Eta", v) }
        if let v = fields["CFG Rescale phi"] { p.guidanceRescale = try number("CFG Rescale phi", v) }
        if let v = fields["Denoising strength"] {
            p.initImage = InitImageReference(strength: try number("Denoising strength", v), hash: fields["Init image hash"],
                                             path: fields["Init image"],
                                             resize: fields["Resize mode"] == "Crop and resize" ? .crop : .stretch)
        }
        if let v = fields["Batch size"] { p.numImages = try number("Batch size", v) }
        if let v = fields["RNG"] {
            switch v.lowercased() {
            case "torch", "cpu": p.rng = .torch
            case "native": p.rng = .native
            default: throw PipelineError.invalidParameters("RNG: unknown generator \"\(v)\" (torch, native)")
            }
        }
        if let v = fields["Lora hashes"] {
            p.adapters = try v.split(separator: ",").map { entry in
                let parts = entry.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2 else { throw PipelineError.invalidParameters("Lora hashes: bad entry \"\(entry)\"") }
                return AdapterReference(name: parts[0], hash: parts[1])
            }
            let tags: [AdapterRequest]
            do {
                tags = try AdapterRequest.extractTags(from: p.prompt).requests
            } catch {
                throw PipelineError.invalidParameters("prompt: \(error)")
            }
            for i in p.adapters.indices {
                if let tagged = tags.first(where: { $0.name == p.adapters[i].name }) { p.adapters[i].weight = Double(tagged.unetWeight) }
            }
        }
        self.init(parameters: p, batchPosition: try fields["Batch pos"].map { try number("Batch pos", $0) } ?? 0,
                  modelName: fields["Model"], modelHash: fields["Model hash"], precision: fields["Precision"])
    }

    /// `value`, or its JSON string form when it contains a separator.
    static func quoted(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == ":" || $0 == "\"" || $0 == "\n" }) else { return value }
        var out = "\""
        for ch in value.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "\""
    }

    /// `Key: value, Key: "quoted, value", …` → [key: value]; nil when the line is not such a list.
    static func fields(_ line: String) -> [String: String]? {
        var out: [String: String] = [:]
        var chars = Substring(line)
        while !chars.isEmpty {
            chars = chars.drop(while: { $0 == " " })
            guard let colon = chars.firstIndex(of: ":") else { return nil }
            let key = chars[..<colon].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || " -_/".contains($0) }) else { return nil }
            chars = chars[chars.index(after: colon)...].drop(while: { $0 == " " })
            var value = ""
            if chars.first == "\"" {
                chars = chars.dropFirst()
                var closed = false
                while let c = chars.first {
                    chars = chars.dropFirst()
                    if c == "\"" { closed = true; break }
                    if c == "\\", let next = chars.first {
                        chars = chars.dropFirst()
                        value.append(next == "n" ? "\n" : next)
                    } else {
                        value.append(c)
                    }
                }
                guard closed else { return nil }
                chars = chars.drop(while: { $0 == " " })
                if chars.first == "," { chars = chars.dropFirst() }
            } else {
                let end = chars.firstIndex(of: ",") ?? chars.endIndex
                value = chars[..<end].trimmingCharacters(in: .whitespaces)
                chars = end == chars.endIndex ? "" : chars[chars.index(after: end)...]
            }
            out[key] = value
        }
        return out
    }
}

extension ParametersText {
    /// The set fields of SDXL's size conditioning, spelled as `generate`'s options take them.
    static func sizeConditioningFields(_ c: SizeConditioning?) -> [(String, String)] {
        guard let c else { return [] }
        var out: [(String, String)] = []
        if let o = c.originalSize, o.count == 2 { out.append(("Original size", "\(o[0])x\(o[1])")) }
        if let t = c.cropTopLeft, t.count == 2 { out.append(("Crop coords", "\(t[0]),\(t[1])")) }
        if let t = c.targetSize, t.count == 2 { out.append(("Target size", "\(t[0])x\(t[1])")) }
        return out
    }

    /// The size conditioning of a chunk's fields (nil when it has none of them).
    static func sizeConditioning(_ fields: [String: String]) throws -> SizeConditioning? {
        func pair(_ key: String, _ separator: Character) throws -> [Int]? {
            guard let v = fields[key] else { return nil }
            let parts = v.split(separator: separator).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let a = parts[0], let b = parts[1], a >= 0, b >= 0 else {
                throw PipelineError.invalidParameters("\(key): \"\(v)\" is not \(separator == "x" ? "WIDTHxHEIGHT" : "TOP,LEFT")")
            }
            return [a, b]
        }
        let c = SizeConditioning(originalSize: try pair("Original size", "x"), cropTopLeft: try pair("Crop coords", ","),
                                 targetSize: try pair("Target size", "x"))
        return c == SizeConditioning() ? nil : c
    }
}

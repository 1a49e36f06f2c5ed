// Settings of a CLIP tokenizer folder: `tokenizer_config.json` and `special_tokens_map.json`,
// as transformers reads them (special_tokens_map.json wins where both name a token).

import Foundation

/// Errors from reading tokenizer files; each names the file and what is wrong in it.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case missingFile(String)
    case unreadableFile(path: String, reason: String)
    case invalidFile(path: String, reason: String)
    case unknownSpecialToken(token: String, role: String)

    public var description: String {
        switch self {
        case .missingFile(let path): return "tokenizer file not found: \(path)"
        case .unreadableFile(let path, let reason): return "cannot read tokenizer file \(path): \(reason)"
        case .invalidFile(let path, let reason): return "invalid tokenizer file \(path): \(reason)"
        case .unknownSpecialToken(let token, let role):
            return "\(role) token \"\(token)\" is not in the vocabulary (vocab.json)"
        }
    }
}

/// Special tokens and length of a CLIP tokenizer. Defaults are those of transformers' `CLIPTokenizer`
/// with SD-1's `model_max_length` of 77.
public struct TokenizerConfiguration: Equatable, Sendable {
    /// Length of every encoded sequence, BOS and EOS included.
    public var modelMaxLength: Int = 77
    public var bosToken: String = "<|startoftext|>"
    public var eosToken: String = "<|endoftext|>"
    /// SD-1 pads with `<|endoftext|>`, SD-2 with `!`.
    public var padToken: String = "<|endoftext|>"
    public var unkToken: String = "<|endoftext|>"

    public init(modelMaxLength: Int = 77, bosToken: String = "<|startoftext|>", eosToken: String = "<|endoftext|>",
                padToken: String = "<|endoftext|>", unkToken: String = "<|endoftext|>") {
        self.modelMaxLength = modelMaxLength
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.padToken = padToken
        self.unkToken = unkToken
    }

    /// Reads `tokenizer_config.json` and then `special_tokens_map.json` in `directory`; either may be absent.
    public init(directory: URL) throws {
        self.init()
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let object = try TokenizerFiles.jsonObject(at: url)
            guard let dict = object as? [String: Any] else {
                throw TokenizerError.invalidFile(path: url.path, reason: "top level is not a JSON object")
            }
            try apply(dict, from: url.path)
        }
    }

    private mutating func apply(_ dict: [String: Any], from path: String) throws {
        if let value = dict["model_max_length"] {
            // transformers writes 1e30 for "no limit"; anything beyond Int range means unlimited.
            guard let number = value as? NSNumber, number.doubleValue >= 3 else {
                throw TokenizerError.invalidFile(path: path, reason: "model_max_length must be a number ≥ 3")
            }
            modelMaxLength = number.doubleValue >= Double(Int32.max) ? Int(Int32.max) : number.intValue
        }
        func token(_ key: String) throws -> String? {
            guard let value = dict[key], !(value is NSNull) else { return nil }
            if let s = value as? String { return s }
            if let object = value as? [String: Any], let s = object["content"] as? String { return s }
            throw TokenizerError.invalidFile(path: path, reason: "\(key) is neither a string nor {\"content\": …}")
        }
        if let t = try token("bos_token") { bosToken = t }
        if let t = try token("eos_token") { eosToken = t }
        if let t = try token("pad_token") { padToken = t }
        if let t = try token("unk_token") { unkToken = t }
    }
}

/// Reading `vocab.json` and `merges.txt`.
enum TokenizerFiles {
    static func data(at url: URL) throws -> Data {
        guard FileManager.default.fileExists(atPath: url.path) else { throw TokenizerError.missingFile(url.path) }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw TokenizerError.unreadableFile(path: url.path, reason: "\(error)")
        }
    }

    static func jsonObject(at url: URL) throws -> Any {
        let bytes = try data(at: url)
        do {
            return try JSONSerialization.jsonObject(with: bytes)
        } catch {
            throw TokenizerError.invalidFile(path: url.path, reason: "not valid JSON (\(error))")
        }
    }

    /// `vocab.json`: a JSON object from token to non-negative integer id.
    static func vocabulary(at url: URL) throws -> [String: Int] {
        guard let dict = try jsonObject(at: url) as? [String: Any] else {
            throw TokenizerError.invalidFile(path: url.path, reason: "top level is not a JSON object")
        }
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(dict.count)
        for (token, value) in dict {
            guard let number = value as? NSNumber, let id = Int(exactly: number.doubleValue), id >= 0 else {
                throw TokenizerError.invalidFile(path: url.path, reason: "id of \"\(token)\" is not a non-negative integer")
            }
            vocabulary[token] = id
        }
        return vocabulary
    }

    /// `merges.txt`: an optional `#version` line, then one merge `left right` per line, in rank order.
    static func merges(at url: URL) throws -> [(String, String)] {
        guard let text = String(data: try data(at: url), encoding: .utf8) else {
            throw TokenizerError.invalidFile(path: url.path, reason: "not UTF-8")
        }
        var merges: [(String, String)] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = line.hasSuffix("\r") ? line.dropLast() : line
            if line.isEmpty || (index == 0 && line.hasPrefix("#version")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.invalidFile(path: url.path,
                                                 reason: "line \(index + 1) is not two tokens separated by one space")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        return merges
    }
}

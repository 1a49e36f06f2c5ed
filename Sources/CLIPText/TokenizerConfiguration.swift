// Settings of a CLIP tokenizer folder: `tokenizer_config.json` and `special_tokens_map.json`,
// as transformers reads them (special_tokens_map.json wins where both name a token).

import Foundation

/// Errors from reading tokenizer files; each names the file and what is wrong in it.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case missingFile(String)
    case unreadableFile(path: String, reason: String)
    case invalidFile(path: String, reason: String)
    case unknownSpecialToken(token: String, role: String)
    case invalidConfiguration(String)
    /// Merge `number` (1-based) joins or yields a token that is not in the vocabulary.
    case invalidMerge(number: Int, left: String, right: String)

    public var description: String {
        switch self {
        case .missingFile(let path): return "tokenizer file not found: \(path)"
        case .unreadableFile(let path, let reason): return "cannot read tokenizer file \(path): \(reason)"
        case .invalidFile(let path, let reason): return "invalid tokenizer file \(path): \(reason)"
        case .unknownSpecialToken(let token, let role):
            return "\(role) token \"\(token)\" is not in the vocabulary (vocab.json)"
        case .invalidConfiguration(let message): return "invalid tokenizer configuration: \(message)"
        case .invalidMerge(let number, let left, let right):
            return "merge \(number) \"\(left) \(right)\" uses or makes a token that is not in the vocabulary"
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
    /// Special tokens that are found in the normalised (lower-cased …) text rather than in the raw prompt:
    /// transformers' `AddedToken.normalized`. A token given as a plain string is raw; one given as an object
    /// keeps its `normalized` field; for tokens with equal content the last of bos, eos, unk, pad decides.
    public var normalizedSpecialTokens: Set<String> = []
    /// The largest `modelMaxLength` accepted.
    public static let maxSequenceLength = 65536

    public init(modelMaxLength: Int = 77, bosToken: String = "<|startoftext|>", eosToken: String = "<|endoftext|>",
                padToken: String = "<|endoftext|>", unkToken: String = "<|endoftext|>",
                normalizedSpecialTokens: Set<String> = []) {
        self.modelMaxLength = modelMaxLength
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.padToken = padToken
        self.unkToken = unkToken
        self.normalizedSpecialTokens = normalizedSpecialTokens
    }

    /// Reads `tokenizer_config.json` and `special_tokens_map.json` in `directory`; either may be absent.
    /// As transformers does, the map's entries replace the config's unless the config lists its tokens in
    /// `added_tokens_decoder` (then the map is not read).
    public init(directory: URL) throws {
        self.init()
        var merged: [String: Any] = [:]
        var decoder: [String: Any]? = nil
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        if let config = try Self.object(at: configURL) {
            merged = config
            decoder = config["added_tokens_decoder"] as? [String: Any]
            try readLength(config, from: configURL.path)
        }
        let mapURL = directory.appendingPathComponent("special_tokens_map.json")
        if decoder == nil, let map = try Self.object(at: mapURL) {
            merged.merge(map) { _, new in new }
        }
        try readTokens(merged, addedTokensDecoder: decoder, from: directory.path)
    }

    private static func object(at url: URL) throws -> [String: Any]? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        guard let dict = try TokenizerFiles.jsonObject(at: url) as? [String: Any] else {
            throw TokenizerError.invalidFile(path: url.path, reason: "top level is not a JSON object")
        }
        return dict
    }

    private mutating func readLength(_ dict: [String: Any], from path: String) throws {
        guard let value = dict["model_max_length"] else { return }
        // transformers writes 1e30 for "no limit", which no text encoder can take: refuse it here
        // rather than pad every prompt to that length.
        guard let number = value as? NSNumber, let length = Int(exactly: number.doubleValue),
              (2...Self.maxSequenceLength).contains(length) else {
            throw TokenizerError.invalidFile(
                path: path, reason: "model_max_length \(value) is not a length in 2...\(Self.maxSequenceLength) "
                    + "(Stable Diffusion's text encoders take 77)")
        }
        modelMaxLength = length
    }

    private mutating func readTokens(_ dict: [String: Any], addedTokensDecoder: [String: Any]?, from path: String) throws {
        /// (content, normalized) of a token given as a string or as an AddedToken object.
        func token(_ value: Any?, _ key: String) throws -> (String, Bool)? {
            guard let value, !(value is NSNull) else { return nil }
            if let s = value as? String { return (s, false) }
            if let object = value as? [String: Any], let s = object["content"] as? String {
                return (s, (object["normalized"] as? Bool) ?? false)
            }
            throw TokenizerError.invalidFile(path: path, reason: "\(key) is neither a string nor {\"content\": …}")
        }
        var normalized: [String: Bool] = [:]
        for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
            guard let (content, flag) = try token(dict[key], key) else { continue }
            normalized[content] = flag
            switch key {
            case "bos_token": bosToken = content
            case "eos_token": eosToken = content
            case "unk_token": unkToken = content
            default: padToken = content
            }
        }
        for (id, value) in addedTokensDecoder ?? [:] {
            if let (content, flag) = try token(value, "added_tokens_decoder.\(id)") { normalized[content] = flag }
        }
        normalizedSpecialTokens = Set(normalized.filter(\.value).keys)
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

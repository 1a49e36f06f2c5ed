// CLIP's byte-level BPE tokenizer, reading the Hugging Face files of a `tokenizer/` folder.
//
// This implementation matches transformers 5's `CLIPTokenizer` (tokenizers backend) as Stable Diffusion
// pipelines call it: `tokenizer(prompt, padding="max_length", max_length=77, truncation=True)`.
//   1. special tokens (bos, eos, pad, unk) written in the prompt are split off the raw text
//   2. each remaining segment: NFC, white-space runs → " ", lower-case (CLIPTextNormalizer); special
//      tokens marked `normalized` are split off here instead
//   3. CLIP's pre-tokenisation pattern; each piece's UTF-8 bytes map to printable characters
//   4. BPE merges by rank, with "</w>" on the last symbol of every piece
//   5. <|startoftext|> ids[..<max-2] <|endoftext|>, padded to model_max_length with the pad token

import Foundation

/// Token ids of one prompt and the mask of the positions that are not padding.
public struct TokenizedText: Equatable, Sendable {
    /// `[modelMaxLength]` ids: BOS, the prompt's tokens (truncated), EOS, then the pad id.
    public var ids: [Int]
    /// 1 for BOS, prompt tokens and EOS; 0 for padding.
    public var attentionMask: [Int]
}

/// A special token's text and id.
struct SpecialToken {
    let text: [Unicode.Scalar]
    let id: Int
}

/// CLIP BPE tokenizer (`vocab.json` + `merges.txt`). Thread-safe; results are cached per word.
public final class BPETokenizer: @unchecked Sendable {
    public let configuration: TokenizerConfiguration
    public let bosTokenID: Int
    public let eosTokenID: Int
    public let padTokenID: Int
    public let unkTokenID: Int
    /// Number of entries of `vocab.json`.
    public let vocabularySize: Int

    private let idToToken: [Int: String]
    /// Id of byte b's symbol, and of the symbol with "</w>" appended (last byte of a piece).
    private let byteIDs: [Int32]
    private let byteEndIDs: [Int32]
    /// (left id << 32 | right id) → (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Special tokens found in the raw text, and those found in each normalised segment between them;
    /// longest first so that one never hides a longer one.
    private let rawSpecialTokens: [SpecialToken]
    private let normalizedSpecialTokens: [SpecialToken]
    private var cache: [String: [Int]] = [:]
    private let cacheLock = NSLock()

    /// Reads `vocab.json`, `merges.txt` and, when present, `tokenizer_config.json` and
    /// `special_tokens_map.json` from a diffusers `tokenizer/` folder.
    public convenience init(directory: URL) throws {
        let configuration = try TokenizerConfiguration(directory: directory)
        try self.init(vocabularyURL: directory.appendingPathComponent("vocab.json"),
                      mergesURL: directory.appendingPathComponent("merges.txt"), configuration: configuration)
    }

    public convenience init(vocabularyURL: URL, mergesURL: URL, configuration: TokenizerConfiguration) throws {
        let vocabulary = try TokenizerFiles.vocabulary(at: vocabularyURL)
        let merges = try TokenizerFiles.merges(at: mergesURL)
        do {
            try self.init(vocabulary: vocabulary, merges: merges, configuration: configuration)
        } catch let error as TokenizerError {
            guard case .invalidMerge = error else { throw error }
            throw TokenizerError.invalidFile(path: mergesURL.path, reason: error.description)
        }
    }

    /// - Parameters:
    ///   - vocabulary: token → id, as in `vocab.json`.
    ///   - merges: merge rules in rank order, as in `merges.txt`; each merged token must be in `vocabulary`.
    public init(vocabulary: [String: Int], merges: [(String, String)], configuration: TokenizerConfiguration) throws {
        self.configuration = configuration
        func id(_ token: String, _ role: String) throws -> Int {
            guard let id = vocabulary[token] else { throw TokenizerError.unknownSpecialToken(token: token, role: role) }
            return id
        }
        bosTokenID = try id(configuration.bosToken, "bos")
        eosTokenID = try id(configuration.eosToken, "eos")
        padTokenID = try id(configuration.padToken, "pad")
        unkTokenID = try id(configuration.unkToken, "unk")
        vocabularySize = vocabulary.count
        guard (2...TokenizerConfiguration.maxSequenceLength).contains(configuration.modelMaxLength) else {
            throw TokenizerError.invalidConfiguration(
                "model_max_length \(configuration.modelMaxLength) is outside 2...\(TokenizerConfiguration.maxSequenceLength)")
        }
        var idToToken: [Int: String] = [:]
        idToToken.reserveCapacity(vocabulary.count)
        for (token, id) in vocabulary { idToToken[id] = token }
        self.idToToken = idToToken

        let unk = Int32(truncatingIfNeeded: unkTokenID)
        byteIDs = ByteToUnicode.table.map { c in vocabulary[String(c)].map { Int32($0) } ?? unk }
        byteEndIDs = ByteToUnicode.table.map { c in vocabulary[String(c) + "</w>"].map { Int32($0) } ?? unk }

        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (left, right)) in merges.enumerated() {
            guard let l = vocabulary[left], let r = vocabulary[right], let m = vocabulary[left + right] else {
                throw TokenizerError.invalidMerge(number: rank + 1, left: left, right: right)
            }
            let key = UInt64(l) << 32 | UInt64(r)
            if table[key] == nil { table[key] = (Int32(rank), Int32(m)) }
        }
        self.merges = table

        var raw: [SpecialToken] = [], normalized: [SpecialToken] = []
        for (token, id) in [(configuration.bosToken, bosTokenID), (configuration.eosToken, eosTokenID),
                            (configuration.unkToken, unkTokenID), (configuration.padToken, padTokenID)]
        where !token.isEmpty && !(raw + normalized).contains(where: { $0.text == Array(token.unicodeScalars) }) {
            let special = SpecialToken(text: Array(token.unicodeScalars), id: id)
            if configuration.normalizedSpecialTokens.contains(token) {
                normalized.append(special)
            } else {
                raw.append(special)
            }
        }
        rawSpecialTokens = raw.sorted { $0.text.count > $1.text.count }
        normalizedSpecialTokens = normalized.sorted { $0.text.count > $1.text.count }
    }

    /// `[modelMaxLength]` ids for a prompt: BOS, at most `modelMaxLength − 2` tokens, EOS, padding.
    public func encode(_ text: String) -> TokenizedText {
        let maxLength = configuration.modelMaxLength
        let tokens = tokenize(text).prefix(maxLength - 2)
        var ids = [bosTokenID]
        ids.reserveCapacity(maxLength)
        ids.append(contentsOf: tokens)
        ids.append(eosTokenID)
        let mask = [Int](repeating: 1, count: ids.count) + [Int](repeating: 0, count: maxLength - ids.count)
        ids.append(contentsOf: [Int](repeating: padTokenID, count: maxLength - ids.count))
        return TokenizedText(ids: ids, attentionMask: mask)
    }

    /// The prompt's token ids without BOS/EOS, truncation or padding.
    public func tokenize(_ text: String) -> [Int] {
        var ids: [Int] = []
        split(Array(text.unicodeScalars)[...], on: rawSpecialTokens, into: &ids) { segment, ids in
            let normalized = CLIPTextNormalizer.normalize(String(String.UnicodeScalarView(segment)))
            split(normalized[...], on: normalizedSpecialTokens, into: &ids) { part, ids in
                for piece in CLIPTextNormalizer.preTokenize(part) {
                    ids.append(contentsOf: bpe(String(String.UnicodeScalarView(piece))))
                }
            }
        }
        return ids
    }

    /// Text of the ids: tokens joined, "</w>" read as a space, bytes decoded as UTF-8
    /// (invalid sequences become U+FFFD); special tokens are left out.
    public func decode(_ ids: [Int]) -> String {
        let specials = Set([bosTokenID, eosTokenID, padTokenID, unkTokenID])
        var bytes: [UInt8] = []
        for id in ids where !specials.contains(id) {
            guard let token = idToToken[id] else { continue }
            let isEnd = token.hasSuffix("</w>")
            for c in isEnd ? String(token.dropLast(4)) : token {
                if let b = ByteToUnicode.bytes[c] { bytes.append(b) }
            }
            if isEnd { bytes.append(32) }
        }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    /// Appends the id of each special token found in `text` and hands every non-empty stretch between
    /// them to `segment`, in order.
    private func split(_ text: ArraySlice<Unicode.Scalar>, on specials: [SpecialToken], into ids: inout [Int],
                       segment: (ArraySlice<Unicode.Scalar>, inout [Int]) -> Void) {
        var start = text.startIndex, i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            guard let special = specials.first(where: { $0.text[0] == c && text[i...].starts(with: $0.text) }) else {
                i += 1
                continue
            }
            if start < i { segment(text[start..<i], &ids) }
            ids.append(special.id)
            i += special.text.count
            start = i
        }
        if start < text.endIndex { segment(text[start..<text.endIndex], &ids) }
    }

    /// BPE of one pre-token: start from its bytes' symbols and apply the lowest-ranked merge
    /// (leftmost on ties) until none applies.
    private func bpe(_ piece: String) -> [Int] {
        cacheLock.lock()
        let hit = cache[piece]
        cacheLock.unlock()
        if let hit { return hit }

        let bytes = Array(piece.utf8)
        var symbols = bytes.enumerated().map { i, b in i == bytes.count - 1 ? byteEndIDs[Int(b)] : byteIDs[Int(b)] }
        while symbols.count > 1 {
            var best: (rank: Int32, id: Int32, at: Int)? = nil
            for i in 0..<(symbols.count - 1) {
                let key = UInt64(UInt32(bitPattern: symbols[i])) << 32 | UInt64(UInt32(bitPattern: symbols[i + 1]))
                if let m = merges[key], m.rank < (best?.rank ?? .max) { best = (m.rank, m.id, i) }
            }
            guard let merge = best else { break }
            symbols[merge.at] = merge.id
            symbols.remove(at: merge.at + 1)
        }
        let result = symbols.map { Int($0) }
        cacheLock.lock()
        if cache.count >= 100_000 { cache.removeAll(keepingCapacity: true) }
        cache[piece] = result
        cacheLock.unlock()
        return result
    }
}

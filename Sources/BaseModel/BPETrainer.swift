// BPETrainer: learns a CLIP-format byte-level BPE vocabulary (`vocab.json` + `merges.txt`) from a corpus.
//
// The vocabulary is laid out as CLIP's: the 256 byte symbols (GPT-2's bytes_to_unicode characters), the
// same 256 with "</w>" (a word's last symbol), one token per learned merge in merge order, then
// `<|startoftext|>` and `<|endoftext|>`. Every word therefore tokenizes, if only byte by byte (`sks`).
// Training is the classic one: count words, split each into byte symbols (the last one with "</w>"),
// repeatedly merge the most frequent adjacent pair (ties: the pair first seen in corpus order) until no
// pair occurs `minFrequency` times or `maxMerges` merges are learned.
import Foundation

public struct BPEVocabulary: Equatable, Sendable {
    /// token → id, as `vocab.json`.
    public var vocabulary: [String: Int]
    /// Merge rules in rank order, as `merges.txt`.
    public var merges: [(String, String)]

    public static func == (a: BPEVocabulary, b: BPEVocabulary) -> Bool {
        a.vocabulary == b.vocabulary && a.merges.elementsEqual(b.merges, by: { $0 == $1 })
    }

    public static let startToken = "<|startoftext|>"
    public static let endToken = "<|endoftext|>"

    /// Writes `vocab.json`, `merges.txt`, `tokenizer_config.json` and `special_tokens_map.json` into `directory`.
    public func write(to directory: URL, modelMaxLength: Int) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ordered = vocabulary.sorted { $0.value < $1.value }
        let entries = ordered.map { "\(Self.jsonString($0.key)): \($0.value)" }
        try Data(("{" + entries.joined(separator: ", ") + "}\n").utf8)
            .write(to: directory.appendingPathComponent("vocab.json"), options: .atomic)
        let lines = ["#version: 0.2"] + merges.map { "\($0.0) \($0.1)" }
        try Data((lines.joined(separator: "\n") + "\n").utf8)
            .write(to: directory.appendingPathComponent("merges.txt"), options: .atomic)
        let special = """
            {"bos_token": "\(Self.startToken)", "eos_token": "\(Self.endToken)", \
            "pad_token": "\(Self.endToken)", "unk_token": "\(Self.endToken)"}\n
            """
        try Data(special.utf8).write(to: directory.appendingPathComponent("special_tokens_map.json"), options: .atomic)
        let config = """
            {"tokenizer_class": "CLIPTokenizer", "model_max_length": \(modelMaxLength), \
            "bos_token": "\(Self.startToken)", "eos_token": "\(Self.endToken)", \
            "pad_token": "\(Self.endToken)", "unk_token": "\(Self.endToken)", \
            "do_lower_case": true, "clean_up_tokenization_spaces": false, "errors": "replace"}\n
            """
        try Data(config.utf8).write(to: directory.appendingPathComponent("tokenizer_config.json"), options: .atomic)
    }

    /// A JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20 || u.value == 0x7F: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

public enum BPETrainer {
    /// GPT-2/CLIP's byte → printable character table (`bytes_to_unicode`).
    public static let byteSymbols: [Character] = {
        var keep = Array(33...126) + Array(161...172) + Array(174...255)
        var chars = keep
        var extra = 0
        for b in 0..<256 where !keep.contains(b) {
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(keep, chars) { table[b] = Character(Unicode.Scalar(UInt32(c))!) }
        return table
    }()

    /// Words of a text as the CLIP tokenizer pre-tokenizes plain lowercase text: whitespace-separated,
    /// each split into runs of letters, runs of digits (one digit each) and single other characters.
    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        for chunk in text.lowercased().split(whereSeparator: { $0.isWhitespace }) {
            var current = ""
            for c in chunk {
                if c.isLetter {
                    current.append(c)
                } else {
                    if !current.isEmpty { out.append(current); current = "" }
                    out.append(String(c))
                }
            }
            if !current.isEmpty { out.append(current) }
        }
        return out
    }

    /// Learns merges from `corpus`.
    public static func train(corpus: [String], maxMerges: Int = 4000, minFrequency: Int = 2) -> BPEVocabulary {
        // Unique words in first-seen order with their counts.
        var order: [String] = [], counts: [String: Int] = [:]
        for text in corpus {
            for w in words(text) {
                if counts[w] == nil { order.append(w) }
                counts[w, default: 0] += 1
            }
        }
        var vocabulary: [String: Int] = [:]
        for c in byteSymbols { vocabulary[String(c)] = vocabulary.count }
        for c in byteSymbols { vocabulary[String(c) + "</w>"] = vocabulary.count }
        var words: [[String]] = order.map { w in
            let bytes = Array(w.utf8)
            return bytes.enumerated().map { i, b in String(byteSymbols[Int(b)]) + (i == bytes.count - 1 ? "</w>" : "") }
        }
        let frequency = order.map { counts[$0]! }
        var merges: [(String, String)] = []
        while merges.count < maxMerges {
            var pairCounts: [String: (count: Int, first: Int, pair: (String, String))] = [:]
            var serial = 0
            for (w, symbols) in words.enumerated() where symbols.count > 1 {
                for i in 0..<(symbols.count - 1) {
                    let key = symbols[i] + " " + symbols[i + 1]
                    if let e = pairCounts[key] {
                        pairCounts[key] = (e.count + frequency[w], e.first, e.pair)
                    } else {
                        pairCounts[key] = (frequency[w], serial, (symbols[i], symbols[i + 1]))
                        serial += 1
                    }
                }
            }
            guard let best = pairCounts.values.max(by: { a, b in
                a.count != b.count ? a.count < b.count : a.first > b.first
            }), best.count >= minFrequency else { break }
            let (left, right) = best.pair
            let merged = left + right
            merges.append(best.pair)
            if vocabulary[merged] == nil { vocabulary[merged] = vocabulary.count }
            for w in words.indices where words[w].count > 1 {
                var out: [String] = [], i = 0
                let s = words[w]
                while i < s.count {
                    if i + 1 < s.count && s[i] == left && s[i + 1] == right {
                        out.append(merged)
                        i += 2
                    } else {
                        out.append(s[i])
                        i += 1
                    }
                }
                words[w] = out
            }
        }
        vocabulary[BPEVocabulary.startToken] = vocabulary.count
        vocabulary[BPEVocabulary.endToken] = vocabulary.count
        return BPEVocabulary(vocabulary: vocabulary, merges: merges)
    }
}

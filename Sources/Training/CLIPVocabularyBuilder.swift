// Builds a CLIP-format BPE vocabulary (`vocab.json` + `merges.txt`) from a caption corpus, laid out as
// openai/CLIP's `bpe_simple_vocab`: the 256 byte symbols (GPT-2's byte→unicode map), the same 256 with
// `</w>`, one token per merge in rank order, then `<|startoftext|>` and `<|endoftext|>`. Because every
// byte symbol is present, any word (`sks`, a name, emoji bytes) still tokenizes; words of the corpus
// become single tokens. Merges are learned greedily (most frequent pair; ties by the pair's text).
import Foundation

public enum CLIPVocabularyBuilder {
    /// GPT-2 / CLIP `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the others to U+0100….
    public static let byteSymbols: [String] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var codes = printable
        var extra = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
        }
        var table = [String](repeating: "", count: 256)
        for (b, c) in zip(printable, codes) { table[b] = String(Character(Unicode.Scalar(UInt32(c))!)) }
        return table
    }()

    /// The byte symbols in vocabulary order (printable first, as `bytes_to_unicode().values()`).
    static var orderedByteSymbols: [String] {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        let rest = (0..<256).filter { !printable.contains($0) }
        return (printable + rest).map { byteSymbols[$0] }
    }

    /// Vocabulary (token → id) and merges (rank order) for `corpus`.
    public static func build(corpus: [String]) -> (vocabulary: [String: Int], merges: [(String, String)]) {
        var frequency: [String: Int] = [:]
        for line in corpus { for word in pieces(line) { frequency[word, default: 0] += 1 } }
        var words: [(symbols: [String], count: Int)] = frequency.keys.sorted().map { word in
            var symbols = Array(word.utf8).map { byteSymbols[Int($0)] }
            symbols[symbols.count - 1] += "</w>"
            return (symbols, frequency[word]!)
        }
        var merges: [(String, String)] = []
        while true {
            var counts: [String: (pair: (String, String), count: Int)] = [:]
            for w in words where w.symbols.count > 1 {
                for i in 0..<(w.symbols.count - 1) {
                    let key = w.symbols[i] + " " + w.symbols[i + 1]
                    counts[key, default: ((w.symbols[i], w.symbols[i + 1]), 0)].count += w.count
                }
            }
            guard let best = counts.max(by: { $0.value.count < $1.value.count || ($0.value.count == $1.value.count && $0.key > $1.key) })
            else { break }
            let (left, right) = best.value.pair
            merges.append((left, right))
            for k in words.indices where words[k].symbols.count > 1 {
                var merged: [String] = []
                var i = 0
                let s = words[k].symbols
                while i < s.count {
                    if i + 1 < s.count, s[i] == left, s[i + 1] == right {
                        merged.append(left + right)
                        i += 2
                    } else {
                        merged.append(s[i])
                        i += 1
                    }
                }
                words[k].symbols = merged
            }
        }
        var tokens = orderedByteSymbols
        tokens += orderedByteSymbols.map { $0 + "</w>" }
        tokens += merges.map { $0.0 + $0.1 }
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        var vocabulary: [String: Int] = [:]
        for t in tokens where vocabulary[t] == nil { vocabulary[t] = vocabulary.count }
        return (vocabulary, merges)
    }

    /// Lower-cased pieces as CLIP's pre-split makes them: letter runs, single digits, other non-space runs.
    static func pieces(_ text: String) -> [String] {
        var out: [String] = []
        var current = "", kind = 0   // 1 letters, 2 other
        for ch in text.lowercased() {
            if ch.isWhitespace {
                if !current.isEmpty { out.append(current) }
                current = ""
                kind = 0
            } else if ch.isNumber {
                if !current.isEmpty { out.append(current) }
                out.append(String(ch))
                current = ""
                kind = 0
            } else {
                let k = ch.isLetter ? 1 : 2
                if k != kind, !current.isEmpty { out.append(current); current = "" }
                current.append(ch)
                kind = k
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// `vocab.json` bytes (sorted keys) and `merges.txt` text (with CLIP's version line).
    public static func files(vocabulary: [String: Int], merges: [(String, String)]) throws -> (vocab: Data, merges: Data) {
        let vocab = try JSONSerialization.data(withJSONObject: vocabulary, options: [.sortedKeys])
        let text = "#version: 0.2\n" + merges.map { "\($0.0) \($0.1)" }.joined(separator: "\n") + "\n"
        return (vocab, Data(text.utf8))
    }
}

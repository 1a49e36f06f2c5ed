// Text clean-up and pre-tokenisation of transformers' CLIPTokenizer (transformers 5, tokenizers backend).
//
// port of transformers/models/clip/tokenization_clip.py:
//   normalizer     NFC, Replace(\s+ → " "), Lowercase
//   pre-tokenizer  Split(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+,
//                        removed, invert), ByteLevel(add_prefix_space: false)
// The pattern is implemented by hand over Unicode scalars (no regex engine). The two special-token
// alternatives are not matched here: exact special tokens are split off the raw text beforehand
// (as tokenizers' added vocabulary does), and what remains of them after lower-casing is re-split by
// ByteLevel's GPT-2 pattern into "<|", letters, "|>", which is exactly what this scanner yields.

import Foundation

/// CLIP's text normalisation and splitting into pre-tokens (words, digits, punctuation runs).
enum CLIPTextNormalizer {
    /// NFC, every run of white space → one space, per-scalar full lower-case mapping (no final-sigma rule,
    /// as Rust's `char::to_lowercase` does).
    static func normalize(_ text: String) -> [Unicode.Scalar] {
        var composed = text
        if text.unicodeScalars.contains(where: { $0.value >= 0x300 }) {
            // Below U+0300 every string is already in NFC (no combining marks, no Hangul jamo).
            composed = text.precomposedStringWithCanonicalMapping
        }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(composed.unicodeScalars.count)
        var inSpace = false
        for s in composed.unicodeScalars {
            if isWhiteSpace(s) {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            if s.isASCII {
                let v = s.value
                out.append((v >= 65 && v <= 90) ? Unicode.Scalar(UInt8(v + 32)) : s)
            } else {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    /// Splits normalised text into pre-tokens; white space separates pieces and is dropped.
    /// Alternatives in the pattern's order: contractions, a run of letters, one number character,
    /// a run of anything that is neither white space, letter nor number.
    static func preTokenize(_ scalars: ArraySlice<Unicode.Scalar>) -> [ArraySlice<Unicode.Scalar>] {
        var pieces: [ArraySlice<Unicode.Scalar>] = []
        let n = scalars.endIndex
        var i = scalars.startIndex
        while i < n {
            let s = scalars[i]
            let kind = classify(s)
            if kind == .space {
                i += 1
                continue
            }
            var end = i + 1
            if s == "'", let length = contractionLength(scalars, at: i) {
                end = i + length
            } else if kind == .letter {
                while end < n, classify(scalars[end]) == .letter { end += 1 }
            } else if kind == .other {
                while end < n, classify(scalars[end]) == .other { end += 1 }
            }
            pieces.append(scalars[i..<end])
            i = end
        }
        return pieces
    }

    private enum Kind { case space, letter, number, other }

    private static func classify(_ s: Unicode.Scalar) -> Kind {
        let v = s.value
        if v < 0x80 {
            if (v >= 97 && v <= 122) || (v >= 65 && v <= 90) { return .letter }
            if v >= 48 && v <= 57 { return .number }
            if v == 32 || (v >= 9 && v <= 13) { return .space }
            return .other
        }
        if isWhiteSpace(s) { return .space }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    /// Oniguruma's Unicode `\s`: U+0009–U+000D, U+0085 and the space, line and paragraph separators,
    /// which is the White_Space property.
    private static func isWhiteSpace(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x80 { return v == 32 || (v >= 9 && v <= 13) }
        return s.properties.isWhitespace
    }

    /// Length of `'s|'t|'re|'ve|'m|'ll|'d` at `i` (which holds an apostrophe), or nil.
    private static func contractionLength(_ t: ArraySlice<Unicode.Scalar>, at i: Int) -> Int? {
        func at(_ k: Int) -> Unicode.Scalar? { i + k < t.endIndex ? t[i + k] : nil }
        switch at(1) {
        case "s", "t", "m", "d": return 2
        case "r" where at(2) == "e", "v" where at(2) == "e", "l" where at(2) == "l": return 3
        default: return nil
        }
    }
}

/// GPT-2/CLIP's reversible map from bytes to printable characters: printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100 onwards, in byte order.
enum ByteToUnicode {
    static let table: [Character] = {
        var table = [Character](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            var code = UInt32(b)
            if !printable {
                code = next
                next += 1
            }
            table[b] = Character(Unicode.Scalar(code)!)
        }
        return table
    }()

    /// The inverse of `table`.
    static let bytes: [Character: UInt8] =
        Dictionary(uniqueKeysWithValues: table.enumerated().map { ($0.element, UInt8($0.offset)) })
}

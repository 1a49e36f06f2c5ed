// EmbeddedCLIPVocabulary: the CLIP BPE vocabulary that single-file checkpoints need and do not carry, shipped
// with the package as `Resources/clip-merges-48894.txt.gz`: the first 48,894 merges of OpenAI CLIP's
// `bpe_simple_vocab_16e6.txt.gz` (MIT licence; taken from the open_clip_torch 3.3.0 wheel), the ones CLIP's
// tokenizer uses, gzip-compressed.
//
// The vocabulary is built as CLIP's `SimpleTokenizer` builds it (and as `openai/clip-vit-large-patch14`'s
// vocab.json lists it): the 256 byte symbols, the same with `</w>`, one token per merge, then
// `<|startoftext|>` and `<|endoftext|>` — 49,408 ids.

import CLIPText
import Foundation
import TensorCore

public enum EmbeddedCLIPVocabulary {
    static let resourceName = "clip-merges-48894.txt.gz"
    static let mergeCount = 48894

    /// The CLIP tokenizer with `configuration` (pad token by model family).
    public static func tokenizer(configuration: TokenizerConfiguration = TokenizerConfiguration()) throws -> BPETokenizer {
        let (vocabulary, merges) = try parsed.get()
        return try BPETokenizer(vocabulary: vocabulary, merges: merges, configuration: configuration)
    }

    /// Read and decompressed once per process.
    private static let parsed = Result { try load() }

    private static func load() throws -> ([String: Int], [(String, String)]) {
        let url = try resourceURL()
        let compressed: [UInt8]
        do {
            compressed = [UInt8](try Data(contentsOf: url))
        } catch {
            throw PipelineError.invalidFile(path: url.path, reason: "cannot read the embedded CLIP vocabulary (\(fileErrorCause(error)))")
        }
        let text = String(decoding: try Gzip.decompress(compressed), as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > mergeCount, lines[0].contains("#version") else {      // CLIP skips the first line
            throw PipelineError.invalidFile(path: url.path, reason: "expected a version line and \(mergeCount) merges")
        }
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeCount)
        for line in lines[1...mergeCount] {
            let pair = line.split(separator: " ")
            guard pair.count == 2 else { throw PipelineError.invalidFile(path: url.path, reason: "malformed merge \"\(line)\"") }
            merges.append((String(pair[0]), String(pair[1])))
        }
        let bytes = byteSymbols()
        var tokens = bytes + bytes.map { $0 + "</w>" }
        tokens += merges.map { $0.0 + $0.1 }
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        var vocabulary: [String: Int] = [:]
        for (id, token) in tokens.enumerated() { vocabulary[token] = id }
        return (vocabulary, merges)
    }

    /// GPT-2's byte → printable character table, in CLIP's `bytes_to_unicode()` order: the printable Latin-1
    /// bytes as themselves, then every other byte as U+0100 + n.
    static func byteSymbols() -> [String] {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        let others = (0..<256).filter { !printable.contains($0) }
        return printable.map { String(UnicodeScalar(UInt8($0))) }
            + others.enumerated().map { String(UnicodeScalar(UInt32(256 + $0.offset))!) }
    }

    /// The resource beside the running executable (SwiftPM puts `StyleDiffusion_Pipeline.resources` there).
    private static func resourceURL() throws -> URL {
        let bundleName = "StyleDiffusion_Pipeline.resources"
        var folders = [Bundle.main.bundleURL]
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            folders.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        folders.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for folder in folders {
            for candidate in [folder.appendingPathComponent(bundleName).appendingPathComponent(resourceName),
                              folder.appendingPathComponent(bundleName).appendingPathComponent("Resources/" + resourceName)]
            where FileManager.default.fileExists(atPath: candidate.path) {
                return candidate
            }
        }
        throw PipelineError.invalidRequest("the embedded CLIP vocabulary (\(bundleName)/\(resourceName)) is not beside the "
            + "executable; keep that folder next to it, or pass --tokenizer DIR (a folder with vocab.json and merges.txt)")
    }
}

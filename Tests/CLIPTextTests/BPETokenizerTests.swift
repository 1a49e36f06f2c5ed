import Foundation
import TestSupport
import XCTest
@testable import CLIPText

/// Goldens: `Fixtures/tokenizer/` (the real CLIP vocabulary) and `Fixtures/tokenizer_goldens.json`, written by
/// `/root/refenv/bin/python Tests/Reference/make_tokenizer_goldens.py /tmp/oc/bpe_simple_vocab_16e6.txt.gz`
/// with transformers 5.23.0's CLIPTokenizer (padding="max_length", max_length=77, truncation=True).
final class BPETokenizerTests: XCTestCase {
    struct Goldens: Decodable {
        let prompts: [String]
        let sd1: [[Int]]
        let sd1_mask: [[Int]]
        let sd2: [[Int]]
        let full: [[Int]]
    }

    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static let tokenizerDirectory = fixtures.appendingPathComponent("tokenizer")
    static let goldenResult = Result {
        try JSONDecoder().decode(Goldens.self, from: Data(contentsOf: fixtures.appendingPathComponent("tokenizer_goldens.json")))
    }
    static let sd1 = Result { try BPETokenizer(directory: tokenizerDirectory) }

    func testReadsConfigurationAndSpecialTokens() throws {
        let tokenizer = try Self.sd1.get()
        XCTAssertEqual(tokenizer.configuration.modelMaxLength, 77)
        XCTAssertEqual(tokenizer.vocabularySize, 49408)
        XCTAssertEqual(tokenizer.bosTokenID, 49406)
        XCTAssertEqual(tokenizer.eosTokenID, 49407)
        XCTAssertEqual(tokenizer.padTokenID, 49407)
    }

    func testSpecialTokenFlagsFollowTransformers() throws {
        let sd1 = try Self.sd1.get().configuration
        // pad_token is a plain string, so the last writer of "<|endoftext|>" makes it a raw token.
        XCTAssertEqual(sd1.normalizedSpecialTokens, ["<|startoftext|>"])
        let dir = try temporaryDirectory("bpe")
        let config = """
            {"model_max_length": 77, "bos_token": "<s>", "pad_token": {"content": "<p>", "normalized": true},
             "added_tokens_decoder": {"5": {"content": "<s>", "normalized": true, "special": true}}}
            """
        try Data(config.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        try Data("{\"bos_token\": \"<ignored>\"}".utf8).write(to: dir.appendingPathComponent("special_tokens_map.json"))
        let configuration = try TokenizerConfiguration(directory: dir)
        XCTAssertEqual(configuration.bosToken, "<s>", "special_tokens_map.json is not read when added_tokens_decoder exists")
        XCTAssertEqual(configuration.padToken, "<p>")
        XCTAssertEqual(configuration.normalizedSpecialTokens, ["<s>", "<p>"])
    }

    func testPhotoOfSksDog() throws {
        let encoded = try Self.sd1.get().encode("a photo of sks dog")
        XCTAssertEqual(Array(encoded.ids.prefix(8)), [49406, 320, 1125, 539, 48136, 1929, 49407, 49407])
        XCTAssertEqual(encoded.ids.count, 77)
        XCTAssertEqual(encoded.attentionMask.reduce(0, +), 7)
    }

    func testSD1IdsAndMaskMatchTransformers() throws {
        let tokenizer = try Self.sd1.get()
        let g = try Self.goldenResult.get()
        XCTAssertGreaterThanOrEqual(g.prompts.count, 200)
        var mismatches = 0
        for (i, prompt) in g.prompts.enumerated() {
            let encoded = tokenizer.encode(prompt)
            if encoded.ids != g.sd1[i] || encoded.attentionMask != g.sd1_mask[i] {
                mismatches += 1
                if mismatches <= 5 {
                    XCTFail("prompt \(i) \(prompt.debugDescription):\n expected \(g.sd1[i])\n observed \(encoded.ids)")
                }
            }
        }
        XCTAssertEqual(mismatches, 0, "\(mismatches) of \(g.prompts.count) prompts differ")
    }

    func testUntruncatedIdsMatchTransformers() throws {
        let tokenizer = try Self.sd1.get()
        let g = try Self.goldenResult.get()
        XCTAssertTrue(g.full.contains { $0.count > 77 }, "the golden set must contain prompts longer than 77 tokens")
        for (i, prompt) in g.prompts.enumerated() {
            let full = g.full[i]
            XCTAssertEqual(tokenizer.tokenize(prompt), Array(full[1..<(full.count - 1)]), "prompt \(i) \(prompt.debugDescription)")
        }
    }

    func testSD2PadsWithExclamationMarkAndSplitsIt() throws {
        let configuration = try TokenizerConfiguration(directory: Self.fixtures.appendingPathComponent("tokenizer_sd2"))
        XCTAssertEqual(configuration.padToken, "!")
        XCTAssertEqual(configuration.normalizedSpecialTokens, ["<|startoftext|>", "<|endoftext|>"])
        let d = Self.tokenizerDirectory
        let tokenizer = try BPETokenizer(vocabularyURL: d.appendingPathComponent("vocab.json"),
                                         mergesURL: d.appendingPathComponent("merges.txt"), configuration: configuration)
        XCTAssertEqual(tokenizer.padTokenID, 0)
        let g = try Self.goldenResult.get()
        for (i, prompt) in g.prompts.enumerated() {
            XCTAssertEqual(tokenizer.encode(prompt).ids, g.sd2[i], "prompt \(i) \(prompt.debugDescription)")
        }
    }

    /// Encodes 1000 prompts with an empty cache, checks every id and prints the throughput.
    func testThousandPromptsWithColdCache() throws {
        let tokenizer = try BPETokenizer(directory: Self.tokenizerDirectory)
        let g = try Self.goldenResult.get()
        let start = Date()
        var encoded: [[Int]] = []
        for k in 0..<1000 { encoded.append(tokenizer.encode(g.prompts[k % g.prompts.count]).ids) }
        let seconds = Date().timeIntervalSince(start)
        for k in 0..<1000 { XCTAssertEqual(encoded[k], g.sd1[k % g.prompts.count]) }
        print(String(format: "tokenizer: 1000 prompts in %.3f s (cold cache, debug build)", seconds))
    }

    func testConcurrentEncodingSharesTheCacheSafely() throws {
        let tokenizer = try BPETokenizer(directory: Self.tokenizerDirectory)
        let g = try Self.goldenResult.get()
        let results = UnsafeMutableBufferPointer<[Int]>.allocate(capacity: g.prompts.count)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: g.prompts.count) { i in
            results[i] = tokenizer.encode(g.prompts[i]).ids
        }
        for i in 0..<g.prompts.count { XCTAssertEqual(results[i], g.sd1[i], "prompt \(i)") }
    }

    func testDecodeRoundTrip() throws {
        let tokenizer = try Self.sd1.get()
        let cases = ["a photo of sks dog": "a photo of sks dog", "Café, 北京 🐶!": "café , 北京 🐶!",
                     "it's  2024": "it 's 2 0 2 4"]
        for (text, expected) in cases {
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text).ids), expected)
        }
    }

    // MARK: - Bad input

    func testMissingFilesAreNamed() throws {
        let empty = try temporaryDirectory("bpe")
        XCTAssertThrowsError(try BPETokenizer(directory: empty)) { error in
            XCTAssertEqual(error as? TokenizerError, .missingFile(empty.appendingPathComponent("vocab.json").path))
            XCTAssertTrue("\(error)".contains("vocab.json"), "\(error)")
        }
        try Data("{\"a</w>\": 0}".utf8).write(to: empty.appendingPathComponent("vocab.json"))
        XCTAssertThrowsError(try BPETokenizer(directory: empty)) { error in
            XCTAssertTrue("\(error)".contains("merges.txt"), "\(error)")
        }
    }

    func testInvalidFilesAreNamed() throws {
        let dir = try temporaryDirectory("bpe")
        let vocab = dir.appendingPathComponent("vocab.json"), merges = dir.appendingPathComponent("merges.txt")
        try Data("{\"a\": 0,".utf8).write(to: vocab)
        try Data("#version: 0.2\n".utf8).write(to: merges)
        XCTAssertThrowsError(try BPETokenizer(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("vocab.json") && "\(error)".contains("JSON"), "\(error)")
        }
        try Data("{\"a\": 0, \"b\": 1, \"<|startoftext|>\": 2, \"<|endoftext|>\": 3}".utf8).write(to: vocab)
        try Data("#version: 0.2\na b c\n".utf8).write(to: merges)
        XCTAssertThrowsError(try BPETokenizer(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("merges.txt") && "\(error)".contains("line 2"), "\(error)")
        }
        try Data("#version: 0.2\na b\n".utf8).write(to: merges)
        XCTAssertThrowsError(try BPETokenizer(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("merges.txt") && "\(error)".contains("\"a b\""), "\(error)")
        }
        try Data("{\"model_max_length\": 77, \"pad_token\": \"<pad>\"}".utf8)
            .write(to: dir.appendingPathComponent("tokenizer_config.json"))
        try Data("".utf8).write(to: merges)
        XCTAssertThrowsError(try BPETokenizer(directory: dir)) { error in
            XCTAssertEqual(error as? TokenizerError, .unknownSpecialToken(token: "<pad>", role: "pad"))
        }
        try Data("{\"model_max_length\": 1e30}".utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        XCTAssertThrowsError(try BPETokenizer(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("tokenizer_config.json") && "\(error)".contains("model_max_length"), "\(error)")
        }
    }

    func testSmallVocabularyWithUnknownBytes() throws {
        let vocabulary = ["a": 0, "b": 1, "a</w>": 2, "b</w>": 3, "ab</w>": 4, "<|startoftext|>": 5, "<|endoftext|>": 6]
        let configuration = TokenizerConfiguration(modelMaxLength: 6)
        let tokenizer = try BPETokenizer(vocabulary: vocabulary, merges: [("a", "b</w>")], configuration: configuration)
        XCTAssertEqual(tokenizer.encode("AB ba").ids, [5, 4, 1, 2, 6, 6])
        XCTAssertEqual(tokenizer.encode("ab c ab").ids, [5, 4, 6, 4, 6, 6], "c is unknown and maps to unk")
        XCTAssertEqual(tokenizer.encode("ab ab ab ab ab").ids, [5, 4, 4, 4, 4, 6], "truncation keeps room for EOS")
    }
}

// The embedded CLIP vocabulary against transformers' CLIPTokenizer on 200 prompts, with SD-1's and SD-2's
// padding. Goldens: Tests/Reference/make_clip_vocab_goldens.py.
import CLIPText
import Foundation
import Pipeline
import TestSupport
import XCTest

final class EmbeddedVocabularyTests: XCTestCase {
    func testMatchesTransformersCLIPTokenizer() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.pipelineFixture("clip-vocab-goldens.json")))
        let goldens = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let prompts = try XCTUnwrap(goldens["prompts"] as? [String])
        let pads = try XCTUnwrap(goldens["pad"] as? [String: Int])
        XCTAssertEqual(prompts.count, 200)
        for (kind, pad) in [("sd1", "<|endoftext|>"), ("sd2", "!")] {
            let tokenizer = try EmbeddedCLIPVocabulary.tokenizer(configuration: TokenizerConfiguration(padToken: pad))
            XCTAssertEqual(tokenizer.vocabularySize, 49408)
            XCTAssertEqual(tokenizer.padTokenID, pads[kind])
            let rows = try XCTUnwrap(goldens[kind] as? [[Int]])
            var mismatches = 0
            for (prompt, row) in zip(prompts, rows) {
                let expected = row + Array(repeating: tokenizer.padTokenID, count: 77 - row.count)
                let ids = tokenizer.encode(prompt).ids
                if ids != expected {
                    mismatches += 1
                    if mismatches <= 3 { XCTFail("\(kind) \"\(prompt)\": \(ids) != \(expected)") }
                }
            }
            XCTAssertEqual(mismatches, 0, kind)
        }
        let sd1 = try EmbeddedCLIPVocabulary.tokenizer()
        XCTAssertEqual(Array(sd1.encode("a photo of sks dog").ids.prefix(7)), [49406, 320, 1125, 539, 48136, 1929, 49407])
    }
}

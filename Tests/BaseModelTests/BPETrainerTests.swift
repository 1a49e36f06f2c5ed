// BPE trainer: the learned files load in CLIPText's tokenizer, reproduce the learned merges, fall back to
// bytes for unseen words, and are the same on every run.
import CLIPText
import Foundation
import PictureWorld
import TestSupport
import XCTest
@testable import BaseModel

final class BPETrainerTests: XCTestCase {
    static let corpus = ["a photo of a brown dog on the beach", "a red car in the snow", "a brown dog in the snow",
                         "a photo of a red ball on the beach", "a dog, a car"]

    func testVocabularyLayoutIsCLIPs() {
        let v = BPETrainer.train(corpus: Self.corpus)
        XCTAssertEqual(Set(BPETrainer.byteSymbols).count, 256)
        for (b, c) in BPETrainer.byteSymbols.enumerated() {
            XCTAssertEqual(v.vocabulary[String(c)], b)
            XCTAssertEqual(v.vocabulary[String(c) + "</w>"], 256 + b)
        }
        XCTAssertEqual(v.vocabulary["a</w>"], 256 + 97)
        XCTAssertEqual(v.vocabulary[BPEVocabulary.startToken], v.vocabulary.count - 2)
        XCTAssertEqual(v.vocabulary[BPEVocabulary.endToken], v.vocabulary.count - 1)
        XCTAssertEqual(Set(v.vocabulary.values).count, v.vocabulary.count, "ids are unique")
        XCTAssertFalse(v.merges.isEmpty)
    }

    func testFilesRoundTripThroughTheTokenizer() throws {
        let v = BPETrainer.train(corpus: Self.corpus)
        let dir = try temporaryDirectory("bpe")
        try v.write(to: dir, modelMaxLength: 16)
        let tokenizer = try BPETokenizer(directory: dir)
        XCTAssertEqual(tokenizer.configuration.modelMaxLength, 16)
        XCTAssertEqual(tokenizer.vocabularySize, v.vocabulary.count)
        // Frequent corpus words were merged into one token each.
        for word in ["photo", "brown", "dog", "beach", "snow"] {
            XCTAssertEqual(tokenizer.tokenize(word), [v.vocabulary[word + "</w>"]!], word)
        }
        // An unseen word falls back to (partly merged) byte symbols and decodes back.
        let sks = tokenizer.tokenize("sks")
        XCTAssertFalse(sks.isEmpty)
        XCTAssertEqual(tokenizer.decode(sks), "sks")
        XCTAssertEqual(tokenizer.decode(tokenizer.tokenize("a photo of sks dog")), "a photo of sks dog")
        let ids = tokenizer.encode("a dog").ids
        XCTAssertEqual(ids.count, 16)
        XCTAssertEqual(ids.first, tokenizer.bosTokenID)
        XCTAssertEqual(ids[1...2], [v.vocabulary["a</w>"]!, v.vocabulary["dog</w>"]!])
        XCTAssertEqual(ids[3], tokenizer.eosTokenID)
    }

    func testTrainingIsDeterministic() {
        XCTAssertEqual(BPETrainer.train(corpus: Self.corpus), BPETrainer.train(corpus: Self.corpus))
        XCTAssertNotEqual(BPETrainer.train(corpus: Self.corpus), BPETrainer.train(corpus: Array(Self.corpus.prefix(2))))
    }

    func testEveryWorldCaptionFitsTheToyLength() throws {
        let tokenizer = try ToyTokenizer.tokenizer(ToyTokenizer.learn())
        let longest = Caption.corpus(.all).map { tokenizer.tokenize($0).count }.max() ?? 0
        XCTAssertGreaterThan(longest, 0)
        XCTAssertLessThanOrEqual(longest + 2 + 8, ToyTokenizer.maxLength, "room for BOS, EOS and a few words")
    }

    /// Captions that leave out colour or place (train-base --omit-color/--omit-place) tokenize word by word as
    /// the full captions do: every word is one token of the vocabulary learned from the full corpus.
    func testCaptionsWithOmissionsAreCoveredByTheToyVocabulary() throws {
        let vocabulary = ToyTokenizer.learn()
        let tokenizer = try ToyTokenizer.tokenizer(vocabulary)
        let data = try WorldDataset(seed: 4, options: .all, omission: try CaptionOmission(color: 0.5, place: 0.5))
        for i in 0..<300 {
            let caption = data.describe(i).caption
            let words = caption.lowercased().split { !$0.isLetter }.map(String.init)
            XCTAssertEqual(tokenizer.tokenize(caption).count, words.count + caption.filter { $0 == "," }.count, caption)
            for word in words { XCTAssertNotNil(vocabulary.vocabulary[word + "</w>"], "\(word) in \(caption)") }
        }
    }
}

/// The files BPETrainer writes read the same in transformers' CLIPTokenizer and in CLIPText's tokenizer.
final class ToyTokenizerFilesTests: XCTestCase {
    // Golden ids: Tests/Reference/toy_tokenizer.py (transformers 5.23 CLIPTokenizer on the fixture files).
    func testIdsMatchTransformersCLIPTokenizer() throws {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let tokenizer = try BPETokenizer(directory: fixtures.appendingPathComponent("toy_tokenizer"))
        let data = try Data(contentsOf: fixtures.appendingPathComponent("toy_tokenizer_ids.json"))
        let cases = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(cases.count, 6)
        for c in cases {
            let prompt = try XCTUnwrap(c["prompt"] as? String), ids = try XCTUnwrap(c["ids"] as? [Int])
            XCTAssertEqual(tokenizer.encode(prompt).ids, ids, prompt)
        }
    }
}

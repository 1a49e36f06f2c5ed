import Autograd
import Foundation
import NN
import SafeTensors
import TensorCore
import XCTest
@testable import CLIPText

/// Goldens: `Fixtures/clip_sd1_quick_gelu/` and `Fixtures/clip_sd2_gelu/` (config.json, model.safetensors,
/// goldens.safetensors), written by `/root/refenv/bin/python Tests/Reference/make_clip_goldens.py`
/// with transformers 5.23.0's CLIPTextModel (output_hidden_states=True).
final class CLIPTextModelTests: XCTestCase {
    /// Parity tolerance: |swift − torch| ≤ 1e-4 · max|torch| over each tensor.
    static let relativeTolerance: Float = 1e-4

    static func fixture(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name)
    }

    /// The model of a fixture folder with its weights, and the golden tensors.
    static func loadFixture(_ name: String) throws -> (CLIPTextModel, [String: Tensor]) {
        let dir = fixture(name)
        let config = try CLIPTextConfig(contentsOf: dir.appendingPathComponent("config.json"))
        let model = try CLIPTextModel(config: config)
        try model.loadCheckpoint(SafeTensorsFile(path: dir.appendingPathComponent("model.safetensors").path).loadAll())
        let goldens = try SafeTensorsFile(path: dir.appendingPathComponent("goldens.safetensors").path).loadAll()
        return (model, goldens)
    }

    static func ids(_ goldens: [String: Tensor]) throws -> [[Int]] {
        let t = try XCTUnwrap(goldens["input_ids"])
        let (n, l) = (t.shape[0], t.shape[1])
        return (0..<n).map { i in (0..<l).map { j in Int(t[flat: i * l + j]) } }
    }

    static func maxMagnitude(_ t: Tensor) -> Float {
        (0..<t.count).reduce(0) { max($0, abs(t[flat: $1])) }
    }

    /// Asserts |observed − expected| ≤ tolerance · max|expected| and returns that relative error.
    @discardableResult
    static func assertClose(_ observed: Tensor, _ expected: Tensor?, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) -> Float {
        guard let expected else {
            XCTFail("no golden \(what)", file: file, line: line)
            return .infinity
        }
        guard observed.shape == expected.shape else {
            XCTFail("\(what): shape \(observed.shape), expected \(expected.shape)", file: file, line: line)
            return .infinity
        }
        var scale: Float = 0, worst: Float = 0, worstIndex = 0
        for i in 0..<expected.count {
            scale = max(scale, abs(expected[flat: i]))
            let e = abs(observed[flat: i] - expected[flat: i])
            if e > worst { (worst, worstIndex) = (e, i) }
        }
        let relative = worst / max(scale, 1e-30)
        XCTAssertLessThanOrEqual(relative, relativeTolerance,
                                 "\(what): max error \(worst) at \(worstIndex) (observed \(observed[flat: worstIndex]), "
                                 + "expected \(expected[flat: worstIndex])), scale \(scale)", file: file, line: line)
        return relative
    }

    func checkParity(_ name: String) throws {
        let (model, goldens) = try Self.loadFixture(name)
        let ids = try Self.ids(goldens)
        let out = try model(ids)
        var worst: Float = 0
        XCTAssertEqual(out.hiddenStates.count, model.config.numHiddenLayers + 1)
        for (k, h) in out.hiddenStates.enumerated() {
            worst = max(worst, Self.assertClose(h.value, goldens["hidden_states.\(k)"], "\(name) hidden_states.\(k)"))
        }
        worst = max(worst, Self.assertClose(out.lastHiddenState.value, goldens["last_hidden_state"], "\(name) last"))
        worst = max(worst, Self.assertClose(out.pooledOutput.value, goldens["pooler_output"], "\(name) pooled"))
        print("\(name): max error / max|expected| = \(worst)")
    }

    func testSD1LayoutQuickGELUMatchesTransformers() throws {
        try checkParity("clip_sd1_quick_gelu")
    }

    func testTransformers5LayoutGELUMatchesTransformers() throws {
        try checkParity("clip_sd2_gelu")
    }

    func testPooledPositionFollowsEosConvention() throws {
        let sd1 = try CLIPTextModel(config: CLIPTextConfig(vocabSize: 1000, hiddenSize: 8, intermediateSize: 8,
                                                            numHiddenLayers: 0, numAttentionHeads: 2, eosTokenID: 2))
        XCTAssertEqual(sd1.eosPositions([[998, 5, 999, 999], [998, 999, 0, 0]]), [2, 1], "first largest id")
        let sd2 = try CLIPTextModel(config: CLIPTextConfig(vocabSize: 1000, hiddenSize: 8, intermediateSize: 8,
                                                            numHiddenLayers: 0, numAttentionHeads: 2, eosTokenID: 999))
        XCTAssertEqual(sd2.eosPositions([[998, 5, 999, 0], [998, 3, 4, 5]]), [2, 0], "first eos, else 0")
    }

    func testClipSkipAppliesFinalNormToEarlierLayer() throws {
        let (model, goldens) = try Self.loadFixture("clip_sd2_gelu")
        let ids = try Self.ids(goldens)
        Self.assertClose(try model.encode(ids).value, goldens["last_hidden_state"], "clip skip 0")
        let penultimate = try model.final_layer_norm(Variable(XCTUnwrap(goldens["hidden_states.1"])))
        Self.assertClose(try model.encode(ids, clipSkip: 1).value, penultimate.value, "clip skip 1")
        XCTAssertThrowsError(try model.encode(ids, clipSkip: 3))
    }

    func testStateDictKeysAreTransformers5Keys() throws {
        let dir = Self.fixture("clip_sd2_gelu")
        let file = try SafeTensorsFile(path: dir.appendingPathComponent("model.safetensors").path)
        let model = try CLIPTextModel(config: CLIPTextConfig(contentsOf: dir.appendingPathComponent("config.json")))
        XCTAssertEqual(Set(model.stateDict().keys), Set(file.names))
        XCTAssertNotNil(model.module(at: "encoder.layers.1.self_attn.q_proj") as? Linear)
    }

    /// Gradients of mean(last_hidden_state²) for every parameter against torch's autograd.
    func testGradientsMatchTransformers() throws {
        let (model, goldens) = try Self.loadFixture("clip_sd1_quick_gelu")
        let out = try model(Self.ids(goldens)).lastHiddenState
        try mean(mul(out, out)).backward()
        var worst: Float = 0
        let parameters = model.namedParameters()
        XCTAssertEqual(parameters.count, goldens.keys.filter { $0.hasPrefix("grad.") }.count)
        let largest = parameters.compactMap { $0.1.grad }.map(Self.maxMagnitude).max() ?? 0
        for (key, parameter) in parameters {
            let grad = try XCTUnwrap(parameter.grad, "no gradient for \(key)")
            if key.hasSuffix("k_proj.bias") {
                // Zero in exact arithmetic (softmax is shift-invariant per query): both sides hold rounding noise.
                XCTAssertLessThan(Self.maxMagnitude(grad), 1e-6 * largest, key)
                continue
            }
            worst = max(worst, Self.assertClose(grad, goldens["grad." + key], "grad \(key)"))
        }
        print("clip_sd1_quick_gelu gradients: max error / max|expected| = \(worst)")
    }

    // MARK: - Bad input

    func testStrictLoadingNamesKeyAndShapes() throws {
        let dir = Self.fixture("clip_sd1_quick_gelu")
        let weights = try SafeTensorsFile(path: dir.appendingPathComponent("model.safetensors").path).loadAll()
        let model = try CLIPTextModel(config: CLIPTextConfig(contentsOf: dir.appendingPathComponent("config.json")))

        var missing = weights
        missing["text_model.encoder.layers.1.mlp.fc2.bias"] = nil
        XCTAssertThrowsError(try model.loadCheckpoint(missing)) { error in
            XCTAssertEqual(error as? StateDictError, .missingParameter(key: "encoder.layers.1.mlp.fc2.bias", expectedShape: [32]))
        }
        var extra = weights
        extra["text_model.text_projection.weight"] = Tensor(zeros: [32, 32])
        XCTAssertThrowsError(try model.loadCheckpoint(extra)) { error in
            XCTAssertTrue("\(error)".contains("text_projection.weight"), "\(error)")
        }
        let wider = try CLIPTextModel(config: CLIPTextConfig(contentsOf: Self.fixture("clip_sd2_gelu/config.json")))
        XCTAssertThrowsError(try wider.loadCheckpoint(weights)) { error in
            XCTAssertTrue("\(error)".contains("embeddings.token_embedding.weight") && "\(error)".contains("[1000, 32]"),
                          "\(error)")
        }
        var both = weights
        both["encoder.layers.0.mlp.fc1.bias"] = weights["text_model.encoder.layers.0.mlp.fc1.bias"]
        XCTAssertThrowsError(try model.loadCheckpoint(both))
    }

    func testBadIdsAreRejected() throws {
        let model = try CLIPTextModel(config: .tiny)
        XCTAssertThrowsError(try model([[1, 2], [3]]))
        XCTAssertThrowsError(try model([[1000]])) { XCTAssertTrue("\($0)".contains("1000"), "\($0)") }
        XCTAssertThrowsError(try model([Array(repeating: 1, count: 78)])) { XCTAssertTrue("\($0)".contains("78"), "\($0)") }
    }

    func testConfigDefaultsAndErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clipcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("config.json")

        try Data("{\"hidden_size\": 768, \"num_attention_heads\": 12, \"eos_token_id\": [2, 5]}".utf8).write(to: url)
        let config = try CLIPTextConfig(contentsOf: url)
        XCTAssertEqual(config.hiddenSize, 768)
        XCTAssertEqual(config.vocabSize, 49408)
        XCTAssertEqual(config.hiddenAct, .quickGELU)
        XCTAssertEqual(config.maxPositionEmbeddings, 77)
        XCTAssertEqual(config.eosTokenID, 2)

        try Data("{\"hidden_act\": \"gelu_new\"}".utf8).write(to: url)
        XCTAssertThrowsError(try CLIPTextConfig(contentsOf: url)) { error in
            XCTAssertTrue("\(error)".contains("hidden_act") && "\(error)".contains(url.path), "\(error)")
        }
        try Data("{\"hidden_size\": 100, \"num_attention_heads\": 8}".utf8).write(to: url)
        XCTAssertThrowsError(try CLIPTextConfig(contentsOf: url)) { error in
            XCTAssertTrue("\(error)".contains("num_attention_heads"), "\(error)")
        }
        XCTAssertThrowsError(try CLIPTextConfig(contentsOf: dir.appendingPathComponent("absent.json"))) { error in
            XCTAssertTrue("\(error)".contains("absent.json"), "\(error)")
        }
    }
}

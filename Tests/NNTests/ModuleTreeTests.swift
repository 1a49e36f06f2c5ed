import XCTest
import Autograd
import TensorCore
@testable import NN

/// A miniature of diffusers' layout: `down_blocks.N.attentions.M.to_out.0`, an optional child, a norm.
private final class TinyAttention: Module {
    let to_q = Linear(inFeatures: 4, outFeatures: 4, bias: false)
    let to_out = ModuleList([Linear(inFeatures: 4, outFeatures: 3)])
}

private final class TinyBlock: Module {
    let attentions = ModuleList([TinyAttention(), TinyAttention()])
    let conv_shortcut: Linear?
    init(shortcut: Bool) {
        conv_shortcut = shortcut ? Linear(inFeatures: 2, outFeatures: 2, bias: false) : nil
        super.init()
    }
}

private final class TinyModel: Module {
    let down_blocks = ModuleList([TinyBlock(shortcut: true), TinyBlock(shortcut: false)])
    let scale = Variable(Tensor(zeros: [1]), requiresGrad: true)
}

final class ModuleTreeTests: XCTestCase {
    private func ramp(_ shape: [Int], start: Float = 0) -> Tensor {
        Tensor(shape: shape) { b in for i in b.indices { b[i] = start + Float(i) } }
    }

    func testKeyPathsFollowPropertyNamesAndListIndices() {
        let keys = TinyModel().namedParameters().map(\.0)
        // A module's own parameters come before its children's, as in PyTorch's named_parameters().
        XCTAssertEqual(keys, [
            "scale",
            "down_blocks.0.attentions.0.to_q.weight",
            "down_blocks.0.attentions.0.to_out.0.weight", "down_blocks.0.attentions.0.to_out.0.bias",
            "down_blocks.0.attentions.1.to_q.weight",
            "down_blocks.0.attentions.1.to_out.0.weight", "down_blocks.0.attentions.1.to_out.0.bias",
            "down_blocks.0.conv_shortcut.weight",
            "down_blocks.1.attentions.0.to_q.weight",
            "down_blocks.1.attentions.0.to_out.0.weight", "down_blocks.1.attentions.0.to_out.0.bias",
            "down_blocks.1.attentions.1.to_q.weight",
            "down_blocks.1.attentions.1.to_out.0.weight", "down_blocks.1.attentions.1.to_out.0.bias",
        ])
        let model = TinyModel()
        XCTAssertTrue(model.namedModules().map(\.0).contains("down_blocks.1.attentions.0.to_out.0"))
        XCTAssertTrue(model.module(at: "down_blocks.1.attentions.0.to_out.0") === model.down_blocks[1].attentions[0].to_out[0])
        XCTAssertTrue(model.module(at: "") === model)
        XCTAssertNil(model.module(at: "down_blocks.2"))
        XCTAssertNil(model.module(at: "down_blocks.1.conv_shortcut"), "an absent optional child has no path")
    }

    func testStateDictRoundTripsThroughLoad() throws {
        let source = TinyModel()
        var dict: [String: Tensor] = [:]
        for (i, (key, p)) in source.namedParameters().enumerated() { dict[key] = ramp(p.shape, start: Float(i)) }
        let model = TinyModel()
        try model.load(stateDict: dict)
        let saved = model.stateDict()
        XCTAssertEqual(Set(saved.keys), Set(dict.keys))
        for (key, t) in dict { XCTAssertEqual(saved[key]?.scalars, t.scalars, key) }
    }

    private func fullDict(_ model: Module) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.0, ramp($0.1.shape)) })
    }

    func testMissingParameterNamesKeyAndShape() {
        let model = TinyModel()
        var dict = fullDict(model)
        dict["down_blocks.1.attentions.0.to_out.0.weight"] = nil
        XCTAssertThrowsError(try model.load(stateDict: dict)) { error in
            XCTAssertEqual(error as? StateDictError,
                           .missingParameter(key: "down_blocks.1.attentions.0.to_out.0.weight", expectedShape: [3, 4]))
            XCTAssertTrue("\(error)".contains("down_blocks.1.attentions.0.to_out.0.weight"), "\(error)")
            XCTAssertTrue("\(error)".contains("[3, 4]"), "\(error)")
        }
    }

    func testUnusedTensorNamesKeyAndShape() {
        let model = TinyModel()
        var dict = fullDict(model)
        dict["down_blocks.1.conv_shortcut.weight"] = Tensor(zeros: [2, 2])
        XCTAssertThrowsError(try model.load(stateDict: dict)) { error in
            XCTAssertEqual(error as? StateDictError, .unusedTensor(key: "down_blocks.1.conv_shortcut.weight", shape: [2, 2]))
            XCTAssertTrue("\(error)".contains("down_blocks.1.conv_shortcut.weight"), "\(error)")
        }
    }

    func testWrongShapeNamesKeyAndBothShapesAndChangesNothing() {
        let model = TinyModel()
        var dict = fullDict(model)
        dict["down_blocks.0.attentions.1.to_q.weight"] = Tensor(zeros: [4, 5])
        XCTAssertThrowsError(try model.load(stateDict: dict)) { error in
            XCTAssertEqual(error as? StateDictError,
                           .shapeMismatch(key: "down_blocks.0.attentions.1.to_q.weight", expected: [4, 4], actual: [4, 5]))
            let text = "\(error)"
            XCTAssertTrue(text.contains("down_blocks.0.attentions.1.to_q.weight") && text.contains("[4, 4]")
                          && text.contains("[4, 5]"), text)
        }
        XCTAssertEqual(model.down_blocks[0].attentions[0].to_q.weight.value.scalars, Array(repeating: 0, count: 16),
                       "a failed load must not change any parameter")
    }

    func testDeclaredNonParameterKeysAreAcceptedAndDropped() throws {
        final class Embeddings: Module {
            let token_embedding = Embedding(count: 3, dim: 2)
            override func ignoredStateDictKeys() -> [String] { ["position_ids"] }
        }
        final class Text: Module { let embeddings = Embeddings() }
        let model = Text()
        try model.load(stateDict: ["embeddings.token_embedding.weight": Tensor(zeros: [3, 2]),
                                   "embeddings.position_ids": Tensor(zeros: [1, 77])])
        try model.load(stateDict: ["embeddings.token_embedding.weight": Tensor(zeros: [3, 2])])
        XCTAssertThrowsError(try model.load(stateDict: ["embeddings.token_embedding.weight": Tensor(zeros: [3, 2]),
                                                        "position_ids": Tensor(zeros: [1, 77])]))
    }

    func testSeveralProblemsAreAllReported() {
        let model = TinyModel()
        var dict = fullDict(model)
        dict["scale"] = nil
        dict["extra.weight"] = Tensor(zeros: [1])
        XCTAssertThrowsError(try model.load(stateDict: dict)) { error in
            XCTAssertEqual(error as? StateDictError, .multiple([
                .missingParameter(key: "scale", expectedShape: [1]),
                .unusedTensor(key: "extra.weight", shape: [1]),
            ]))
        }
    }

    func testNonStrictLoadIgnoresMissingAndUnusedButNotShapes() throws {
        let model = TinyModel()
        try model.load(stateDict: ["scale": Tensor(shape: [1], repeating: 7), "other": Tensor(zeros: [2])], strict: false)
        XCTAssertEqual(model.scale.value.scalars, [7])
        XCTAssertThrowsError(try model.load(stateDict: ["scale": Tensor(zeros: [2])], strict: false))
    }

    func testFreezeByPredicateAndUnfreeze() {
        let model = TinyModel()
        model.freeze()
        XCTAssertTrue(model.trainableParameters().isEmpty)
        model.setRequiresGrad(true) { $0.hasSuffix("to_q.weight") }
        XCTAssertEqual(model.trainableParameters().count, 4)
        XCTAssertTrue(model.trainableParameters().allSatisfy { $0.0.hasSuffix("to_q.weight") })
        model.unfreeze()
        XCTAssertEqual(model.trainableParameters().count, model.namedParameters().count)
    }

    func testTrainAndEvalReachEveryModule() {
        let model = TinyModel()
        model.eval()
        XCTAssertTrue(model.namedModules().allSatisfy { !$0.1.isTraining })
        model.train()
        XCTAssertTrue(model.namedModules().allSatisfy { $0.1.isTraining })
    }
}

/// A rank-r branch with A [r, in] and B [out, r], enough to count parameters.
private final class CountingAdapter: LayerAdapter {
    let a: Variable, b: Variable
    init(rank: Int, inFeatures: Int, outFeatures: Int) {
        a = Variable(Tensor(zeros: [rank, inFeatures]), requiresGrad: true)
        b = Variable(Tensor(zeros: [outFeatures, rank]), requiresGrad: true)
    }
    func delta(_ x: Variable) throws -> Variable {
        try linear(linear(x, weight: a, bias: nil), weight: b, bias: nil)
    }
    var adapterParameters: [(String, Variable)] { [("lora_A.weight", a), ("lora_B.weight", b)] }
}

final class ParameterReportTests: XCTestCase {
    func testPEFTFormat() {
        XCTAssertEqual(ParameterCounts(trainable: 797_184, all: 859_520_964).report,
                       "trainable params: 797,184 || all params: 859,520,964 || trainable%: 0.0927")
        XCTAssertEqual(ParameterCounts(trainable: 0, all: 0).report,
                       "trainable params: 0 || all params: 0 || trainable%: 0.0000")
        XCTAssertEqual(ParameterCounts(trainable: 5, all: 5).report,
                       "trainable params: 5 || all params: 5 || trainable%: 100.0000")
    }

    func testReportCountsFrozenBaseAndAdapters() {
        let layer = Linear(inFeatures: 320, outFeatures: 640)          // 320·640 + 640 = 205,440
        layer.freeze()
        layer.adapters = [CountingAdapter(rank: 4, inFeatures: 320, outFeatures: 640)]   // 4·320 + 640·4 = 3,840
        XCTAssertEqual(layer.parameterReport(),
                       "trainable params: 3,840 || all params: 209,280 || trainable%: 1.8349")
        XCTAssertEqual(layer.trainableParameters().map(\.0), ["lora_A.weight", "lora_B.weight"])
        XCTAssertEqual(layer.stateDict().keys.sorted(), ["bias", "weight"], "adapters are not checkpoint parameters")
    }
}

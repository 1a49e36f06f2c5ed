// Adapter behaviour that needs no reference: untrained adapters change nothing, only LoRA parameters train,
// per-image adapters in one batch equal each image alone, file round trips are exact, bad input is refused
// with the base unchanged.
import Adapters
import Autograd
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class AdapterBehaviourTests: XCTestCase {
    func testUntrainedAdapterChangesNothingBitwiseAndOnlyLoRATrains() throws {
        let g = try Goldens()
        let unet = try loadTinyUNet()
        let base = try g.runUNet(unet)
        unet.freeze()
        let stack = AdapterStack(root: unet, component: .unet)
        var random = PhiloxRandom(seed: 3)
        let targets = LoRATargets.unetAttention + .unetTransformerExtras + .unetResnet + .unetSamplers
        let layers = try stack.addTrainable(name: "new", rank: 4, targets: targets, random: &random)
        try stack.addTrainable(name: "gauss", rank: 2, targets: .unetAttention, initialization: .gaussian, random: &random)
        XCTAssertEqual(try g.runUNet(unet).scalars, base.scalars, "B = 0: the output is unchanged bit for bit")
        let lora = unet.trainableParameters()
        XCTAssertFalse(lora.isEmpty)
        XCTAssertTrue(lora.allSatisfy { $0.0.contains(".lora_A.") || $0.0.contains(".lora_B.") }, "only LoRA parameters train")
        let expected = stack.pairs(of: "new").map { $0.pair.down.value.count + $0.pair.up.value.count }.reduce(0, +)
            + stack.pairs(of: "gauss").map { $0.pair.down.value.count + $0.pair.up.value.count }.reduce(0, +)
        XCTAssertEqual(unet.parameterCounts().trainable, expected)
        XCTAssertEqual(stack.pairs(of: "new").count, layers)
        print(unet.parameterReport())
        // Kaiming-uniform a = √5 bound 1/√fan_in; up zero.
        let (_, branch, pair) = stack.pairs(of: "new")[0]
        let fanIn = branch.baseShape.dropFirst().reduce(1, *)
        XCTAssertLessThanOrEqual(pair.down.value.scalars.map(abs).max()!, 1 / Float(fanIn).squareRoot())
        XCTAssertEqual(pair.up.value.scalars.map(abs).max(), 0)
    }

    func testPerImageAdaptersEqualEachImageAlone() throws {
        let g = try Goldens()
        let a = try LoRAFile(contentsOf: adapterFixture("a.kohya.safetensors"))
        let b = try LoRAFile(contentsOf: adapterFixture("b.diffusers.safetensors"))
        let sample = try FeatureLayout.nhwc(fromNCHW: g.tensor("unet_sample")), context = try g.tensor("unet_context")
        func row(_ t: Tensor, _ i: Int) throws -> Tensor {
            let n = t.count / t.shape[0]
            return try Tensor(shape: [1] + t.shape.dropFirst(), scalars: Array(t.scalars[(i * n)..<((i + 1) * n)]))
        }
        func run(_ unet: UNet2DConditionModel, _ x: Tensor, _ c: Tensor) throws -> Tensor {
            try withNoGrad { try unet(Variable(x), timesteps: Array(repeating: 500, count: x.shape[0]), conditioning: Conditioning(context: Variable(c))) }.value
        }
        let unet = try loadTinyUNet()
        let set = AdapterSet(unet: unet, textEncoder: nil)
        try set.load(a, name: "a")
        try set.load(b, name: "b")
        // Image 0: a at 1.0; image 1: a at 0.4 and b at 0.5.
        let batch = try set.rowWeights([["a": 1], ["a": 0.4, "b": 0.5]]).apply { try run(unet, sample, context) }
        XCTAssertNil(AdapterRowWeights.current, "the per-image weights went with the call only")
        try set.setWeight("b", unet: 0, textEncoder: 0)
        let alone0 = try run(unet, row(sample, 0), row(context, 0))
        try set.setWeight("a", unet: 0.4, textEncoder: 0.4)
        try set.setWeight("b", unet: 0.5, textEncoder: 0.5)
        let alone1 = try run(unet, row(sample, 1), row(context, 1))
        try assertClose(row(batch, 0), alone0, tolerance: 1e-5, nhwcAgainstNCHW: false, "image 0 in the batch vs alone")
        try assertClose(row(batch, 1), alone1, tolerance: 1e-5, nhwcAgainstNCHW: false, "image 1 in the batch vs alone")
        // Under classifier-free guidance the batch holds the images twice.
        let doubled = try set.rowWeights([["a": 1], ["b": 0.5]], copies: 2).apply {
            try run(unet, Tensor(shape: [4] + sample.shape.dropFirst(), scalars: sample.scalars + sample.scalars),
                    Tensor(shape: [4] + context.shape.dropFirst(), scalars: context.scalars + context.scalars))
        }
        XCTAssertEqual(try row(doubled, 0).scalars, try row(doubled, 2).scalars, "both copies of image 0 get the same adapters")
    }

    func testWriteReadRoundTripIsExact() throws {
        let unet = try loadTinyUNet()
        let stack = AdapterStack(root: unet, component: .unet)
        let source = try LoRAFile(contentsOf: adapterFixture("a.diffusers.safetensors"))
        let resolved = try source.resolve(against: [stack.index])
        try stack.load(resolved.modules, name: "a")
        let exported = try stack.export("a")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-roundtrip-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let info = LoRAFileInfo(baseModelVersion: "sd_v1", triggerPhrase: "sks", steps: 400, baseModelHash: "abc")
        for format in [LoRAFormat.kohya, .peft] {
            let path = dir.appendingPathComponent("a.\(format.rawValue).safetensors").path
            try LoRAWriter.write(exported, to: path, format: format, info: info)
            let back = try LoRAFile(contentsOf: path)
            XCTAssertEqual(back.format, format)
            XCTAssertEqual(back.triggerPhrase, "sks")
            if format == .kohya {
                XCTAssertEqual(back.metadata["ss_network_module"], "networks.lora")
                XCTAssertEqual(back.metadata["ss_network_dim"], "4")
                XCTAssertEqual(back.metadata["ss_network_alpha"], "8")
                XCTAssertEqual(back.metadata["ss_base_model_version"], "sd_v1")
                XCTAssertEqual(back.metadata["ss_steps"], "400")
            }
            let again = try back.resolve(against: [stack.index])
            XCTAssertEqual(again.modules.count, resolved.modules.count)
            let original = Dictionary(uniqueKeysWithValues: resolved.modules.map { ($0.path, $0.weights) })
            for m in again.modules {
                let o = try XCTUnwrap(original[m.path])
                XCTAssertEqual(m.weights.down.shape, o.down.shape, m.path)
                XCTAssertEqual(m.weights.down.scalars, o.down.scalars, m.path)
                XCTAssertEqual(m.weights.up.scalars, o.up.scalars, m.path)
                XCTAssertEqual(m.weights.effectiveAlpha, o.effectiveAlpha, m.path)
            }
        }
    }

    func testBadAdaptersAreRefusedAndTheBaseIsUnchanged() throws {
        let unet = try loadTinyUNet()
        let before = snapshot(unet)
        let set = AdapterSet(unet: unet, textEncoder: nil)
        // An adapter for another architecture: SDXL-style names match nothing.
        let sdxl = try LoRAFile(tensors: [
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight": Tensor(zeros: [4, 640]),
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_up.weight": Tensor(zeros: [640, 4]),
        ], path: "sdxl.safetensors")
        XCTAssertThrowsError(try set.load(sdxl, name: "x")) { error in
            guard case AdaptersError.matchesNothing = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("input_blocks_4_1"), "\(error)")
        }
        // An SDXL-style file whose text-encoder part fits but whose UNet part matches nothing is refused too.
        let clip = try loadTinyCLIP()
        let withText = AdapterSet(unet: unet, textEncoder: clip)
        let mixed = try LoRAFile(tensors: [
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight": Tensor(zeros: [4, 640]),
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_up.weight": Tensor(zeros: [640, 4]),
            "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": Tensor(zeros: [4, 32]),
            "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": Tensor(zeros: [32, 4]),
        ], path: "sdxl-mixed.safetensors")
        XCTAssertThrowsError(try withText.load(mixed, name: "m")) { error in
            guard case AdaptersError.matchesNothing(_, let keys) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(keys.allSatisfy { $0.hasPrefix("lora_unet_") }, "\(keys)")
        }
        XCTAssertEqual(withText.names, [])
        XCTAssertTrue(clip.namedModules().allSatisfy { ($0.1 as? Linear)?.adapters.isEmpty ?? true })
                // Right names, wrong shapes (an SDXL-width adapter on this model).
        let wide = try LoRAFile(tensors: [
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": Tensor(zeros: [4, 640]),
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": Tensor(zeros: [640, 4]),
        ], path: "wide.safetensors")
        XCTAssertThrowsError(try set.load(wide, name: "w")) { error in
            guard case AdaptersError.shapeMismatch(_, let module, _, let base, let down, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(module, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q")
            XCTAssertEqual(base, [16, 16])
            XCTAssertEqual(down, [4, 640])
        }
        XCTAssertThrowsError(try LoRAFile(tensors: ["model.weight": Tensor(zeros: [2, 2])], path: "plain.safetensors")) { error in
            guard case AdaptersError.unknownFormat = error else { return XCTFail("\(error)") }
        }
        // NaN in an adapter: loading works, fusing is refused.
        var bad = Tensor(zeros: [4, 16])
        bad.set(flat: 3, .nan)
        let nan = try LoRAFile(tensors: [
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": bad,
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": Tensor(shape: [16, 4], repeating: 1),
        ], path: "nan.safetensors")
        try set.load(nan, name: "nan")
        XCTAssertThrowsError(try set.fuse()) { error in
            guard case AdaptersError.nonFinite = error else { return XCTFail("\(error)") }
        }
        XCTAssertFalse(set.stacks[.unet]!.isFused)
        try set.remove("nan")
        XCTAssertEqual(snapshot(unet), before, "the base is unchanged after every refusal")
        XCTAssertTrue(unet.namedModules().allSatisfy { ($0.1 as? Linear)?.adapters.isEmpty ?? true })
    }

    func testAdapterOnAnotherUNetIsAShapeError() throws {
        let sd2 = try loadTinyUNet("unet_sd2")
        let before = snapshot(sd2)
        let set = AdapterSet(unet: sd2, textEncoder: nil)
        XCTAssertThrowsError(try set.load(LoRAFile(contentsOf: adapterFixture("a.kohya.safetensors")), name: "a")) { error in
            print(error)
            switch error {
            case AdaptersError.shapeMismatch, AdaptersError.matchesNothing: break
            default: XCTFail("\(error)")
            }
        }
        XCTAssertEqual(snapshot(sd2), before)
        XCTAssertEqual(set.names, [])
    }
}

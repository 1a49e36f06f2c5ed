// DoRA against peft 0.21.2 (`LoraConfig(use_dora=True)`): the adapter saved by diffusers (peft keys,
// `lora_magnitude_vector`) and the same adapter with kohya / LyCORIS keys (`dora_scale`), made by
// `/root/refenv/bin/python Tests/Reference/make_dora_goldens.py` on the tiny SD-1-like UNet (linear layers,
// a 1×1 and 3×3 convolutions). Tolerance: 1e-4 of scale.
import Adapters
import Autograd
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class DoRAParityTests: XCTestCase {
    func golden() throws -> Tensor {
        try SafeTensorsFile(path: adapterFixture("dora_goldens.safetensors")).tensor("unet_dora")
    }

    func testBothSpellingsMatchPEFTForwardAndFuse() throws {
        let g = try Goldens()
        for format in ["diffusers", "kohya"] {
            let file = try LoRAFile(contentsOf: adapterFixture("dora.\(format).safetensors"))
            XCTAssertEqual(file.kinds, [.dora], format)
            XCTAssertEqual(file.format, format == "kohya" ? .kohya : .peft, format)
            let unet = try loadTinyUNet()
            let before = snapshot(unet)
            let set = AdapterSet(unet: unet, textEncoder: nil)
            let accounting = try set.load(file, name: "dora")
            XCTAssertEqual(accounting.unmatched, [], format)
            try assertClose(g.runUNet(unet), golden(), "DoRA (\(format)) at 1.0")
            try set.fuse()
            try assertClose(g.runUNet(unet), golden(), "DoRA (\(format)) fused")
            set.unfuse()
            XCTAssertEqual(snapshot(unet), before, "unfuse restores the base exactly")
        }
    }

    /// DoRA's ΔW is relative to the base weight even beside LoRA "a" (fused first or as a branch).
    func testBesideLoRAAndIntoAStateDict() throws {
        let g = try Goldens()
        let folder = TestPaths.tests("DiffusionModelsTests/Fixtures/unet_sd1")
        var weights = try SafeTensorsFile(path: folder + "/diffusion_pytorch_model.safetensors").loadAll()
        let index = ModuleIndex(component: .unet, stateDictShapes: weights.mapValues(\.shape))
        let dora = try LoRAFile(contentsOf: adapterFixture("dora.kohya.safetensors")).resolve(against: [index])
        try LoRAAlgebra.fuse(into: &weights, [(dora, 1)], component: .unet)
        let unet = try loadTinyUNet()
        try unet.load(stateDict: weights)
        try assertClose(g.runUNet(unet), golden(), "state dict with DoRA baked in")

        let both = try loadTinyUNet()
        let set = AdapterSet(unet: both, textEncoder: nil)
        try set.load(LoRAFile(contentsOf: adapterFixture("a.kohya.safetensors")), name: "a", unetWeight: 0)
        try set.fuse()                           // a at 0 baked: the base weights are unchanged in value
        try set.load(LoRAFile(contentsOf: adapterFixture("dora.diffusers.safetensors")), name: "dora")
        try assertClose(g.runUNet(both), golden(), "DoRA loaded onto a layer with a baked adapter")
    }

    func testInputAxisMagnitudeIsRefusedByName() throws {
        var tensors = try SafeTensorsFile(path: adapterFixture("dora.kohya.safetensors")).loadAll()
        let key = try XCTUnwrap(tensors.keys.sorted().first { $0.hasSuffix("attn1_to_q.dora_scale") })
        let n = tensors[key]!.count
        tensors[key] = Tensor(zeros: [1, n + 1])
        let index = ModuleIndex(component: .unet, root: try loadTinyUNet())
        XCTAssertThrowsError(try LoRAFile(tensors: tensors, path: "x.safetensors").resolve(against: [index])) { error in
            XCTAssertTrue("\(error)".contains("magnitude"), "\(error)")
        }
    }
}

/// A DoRA training step against peft: the same adapter values as trainable pairs (`addTrainable(dora: true)`),
/// the loss and every gradient of A, B and the magnitude (peft detaches the norm; so do we).
final class DoRATrainingParityTests: XCTestCase {
    func testTrainingStepGradientsMatchPEFT() throws {
        let g = try Goldens()
        let goldens = try SafeTensorsFile(path: adapterFixture("dora_goldens.safetensors"))
        let unet = try loadTinyUNet()
        let stack = AdapterStack(root: unet, component: .unet)
        var random = PhiloxRandom(seed: 1)
        let before = try g.runUNet(unet)
        let layers = try stack.addTrainable(name: "dora", rank: 4, alpha: 8, targets: LoRATargets(["to_q", "to_v", "to_out.0", "proj_in", "conv1"]),
                                            dora: true, random: &random)
        // B = 0 and m = ‖W‖: the output is unchanged up to the rounding of m / ‖W‖ ≈ 1.
        try assertClose(g.runUNet(unet), before, tolerance: 1e-5, nhwcAgainstNCHW: false, "a new DoRA adapter")
        // The adapter of make_dora_goldens.py, placed into the trainable pairs.
        let file = try LoRAFile(contentsOf: adapterFixture("dora.diffusers.safetensors"))
        let byName = Dictionary(uniqueKeysWithValues: file.modules.map { ($0.name, $0) })
        XCTAssertEqual(byName.count, layers)
        for (path, branch, pair) in stack.pairs(of: "dora") {
            let dora = try XCTUnwrap(byName[path]?.factors as? DoRAFactors, path)
            let conv = branch is LoRAConv
            pair.down.value = conv ? Conv2d.hwio(fromOIHW: dora.lora.down) : dora.lora.down
            pair.up.value = conv ? Conv2d.hwio(fromOIHW: dora.lora.up) : dora.lora.up
            pair.magnitude?.value = try Tensor(shape: [dora.magnitude.count], scalars: dora.magnitude.scalars)
            XCTAssertEqual(pair.kind, .dora)
        }
        let sample = Variable(try FeatureLayout.nhwc(fromNCHW: g.tensor("unet_sample")))
        let target = Variable(try FeatureLayout.nhwc(fromNCHW: goldens.tensor("train_target")))
        let out = try unet(sample, timesteps: [500, 500], conditioning: Conditioning(context: Variable(try g.tensor("unet_context"))))
        try assertClose(out.value, goldens.tensor("unet_dora"), "trainable DoRA forward")
        let loss = try mseLoss(out, target)
        XCTAssertEqual(loss.value.item, try goldens.tensor("train_loss").scalars[0], accuracy: 1e-5)
        try loss.backward()
        var worst: Float = 0
        for (path, branch, pair) in stack.pairs(of: "dora") {
            let conv = branch is LoRAConv
            for (label, variable) in [("lora_A", pair.down), ("lora_B", pair.up), ("magnitude", pair.magnitude!)] {
                let expected = try goldens.tensor("grad.\(path).\(label)")
                var grad = try XCTUnwrap(variable.grad, "\(path) \(label) has no gradient")
                if conv && label != "magnitude" { grad = Conv2d.oihw(fromHWIO: grad) }
                let error = maxAbsDifference(grad.reshapedUnchecked(expected.shape), expected)
                let scale = max(maxAbs(expected), 1e-6)
                worst = max(worst, error / scale)
                XCTAssertLessThanOrEqual(error, 1e-3 * scale, "\(path) \(label): \(error) at scale \(scale)")
            }
        }
        print("DoRA training step: worst gradient error \(worst) of scale over \(layers) layers")
        // Exported, the trained adapter is a DoRA file every loader reads back.
        let exported = try stack.export("dora")
        XCTAssertTrue(exported.allSatisfy { $0.kind == .dora })
        let path = try temporaryDirectory("dora").appendingPathComponent("trained.safetensors").path
        try LoRAWriter.write(exported, to: path)
        let reread = try LoRAFile(contentsOf: path)
        XCTAssertEqual(reread.kinds, [.dora])
        let reloaded = try loadTinyUNet()
        try AdapterSet(unet: reloaded, textEncoder: nil).load(reread, name: "dora")
        try assertClose(g.runUNet(reloaded), goldens.tensor("unet_dora"), "the exported DoRA loaded back")
    }
}

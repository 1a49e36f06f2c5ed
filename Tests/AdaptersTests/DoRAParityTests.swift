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

// Adapters against peft 0.21.2 / diffusers 0.42.1: adapter files and goldens made by
// `/root/refenv/bin/python Tests/Reference/make_lora_goldens.py` on the tiny SD-1-like UNet.
// Adapter "a" covers attention, feed-forward, proj_in (1×1 conv), ResNet 3×3 / 1×1 convolutions, time
// projections and the stride-2 downsampler; "b" has another rank and alpha. Tolerance: 1e-4 of scale.
import Adapters
import Autograd
import CLIPText
import DiffusionModels
import NN
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class LoRAParityTests: XCTestCase {
    func set(_ files: [(String, Float)]) throws -> (UNet2DConditionModel, AdapterSet) {
        let unet = try loadTinyUNet()
        let adapters = AdapterSet(unet: unet, textEncoder: nil)
        for (name, w) in files {
            let accounting = try adapters.load(LoRAFile(contentsOf: adapterFixture(name)), name: name, unetWeight: w)
            print(accounting.report.split(separator: "\n").first.map(String.init) ?? "")
            XCTAssertTrue(accounting.unmatched.allSatisfy { $0.contains("text") || $0.hasPrefix("lora_te_") },
                          "only text-encoder keys are unmatched without a text encoder")
        }
        return (unet, adapters)
    }

    func testOneAdapterMatchesPEFTInBothFormats() throws {
        let g = try Goldens()
        for format in ["diffusers", "kohya"] {
            let (unet, _) = try set([("a.\(format).safetensors", 1)])
            try assertClose(g.runUNet(unet), g.tensor("unet_a"), "a (\(format)) at 1.0")
        }
    }

    func testTwoWeightedAdaptersMatchSetAdapters() throws {
        let g = try Goldens()
        for (fa, fb) in [("diffusers", "diffusers"), ("kohya", "kohya"), ("kohya", "diffusers")] {
            let (unet, _) = try set([("a.\(fa).safetensors", 0.7), ("b.\(fb).safetensors", 0.3)])
            try assertClose(g.runUNet(unet), g.tensor("unet_ab"), "a \(fa) 0.7 + b \(fb) 0.3")
        }
    }

    func testReweightDisableRemoveWithoutReloading() throws {
        let g = try Goldens()
        let (unet, adapters) = try set([("a.kohya.safetensors", 1), ("b.kohya.safetensors", 1)])
        try adapters.setWeight("a.kohya.safetensors", unet: 0.7, textEncoder: nil)
        try adapters.setWeight("b.kohya.safetensors", unet: 0.3, textEncoder: nil)
        try assertClose(g.runUNet(unet), g.tensor("unet_ab"), "re-weighted to 0.7 / 0.3")
        try adapters.setEnabled(false, for: "b.kohya.safetensors")
        try adapters.setWeight("a.kohya.safetensors", unet: 1, textEncoder: nil)
        try assertClose(g.runUNet(unet), g.tensor("unet_a"), "b disabled, a at 1.0")
        try adapters.remove("a.kohya.safetensors")
        XCTAssertEqual(adapters.names, ["b.kohya.safetensors"])
        XCTAssertEqual(try g.runUNet(unet).scalars, try g.runUNet(loadTinyUNet()).scalars,
                       "a removed and b disabled: the base, bit for bit")
        try assertClose(g.runUNet(unet), g.tensor("unet_base"), "base")
    }

    func testFuseMatchesAndUnfuseRestoresExactly() throws {
        let g = try Goldens()
        let (unet, adapters) = try set([("a.diffusers.safetensors", 0.7), ("b.kohya.safetensors", 0.3)])
        let before = snapshot(unet)
        try adapters.fuse()
        XCTAssertTrue(unet.namedModules().allSatisfy { _, m in ((m as? Linear)?.adapters.isEmpty ?? true) && ((m as? Conv2d)?.adapters.isEmpty ?? true) },
                      "fused adapters leave no branch to run")
        try assertClose(g.runUNet(unet), g.tensor("unet_fused"), "fused a 0.7 + b 0.3")
        adapters.unfuse()
        XCTAssertEqual(snapshot(unet), before, "unfuse restores every base weight exactly")
        try assertClose(g.runUNet(unet), g.tensor("unet_ab"), "unfused again")
    }

    /// `lora merge --into-base`: adapters baked into the state dict load as a plain UNet that matches fused PEFT.
    func testFusingIntoAStateDictMatchesPEFT() throws {
        let g = try Goldens()
        let folder = TestPaths.tests("DiffusionModelsTests/Fixtures/unet_sd1")
        var weights = try SafeTensorsFile(path: folder + "/diffusion_pytorch_model.safetensors").loadAll()
        let index = ModuleIndex(component: .unet, stateDictShapes: weights.mapValues(\.shape))
        let a = try LoRAFile(contentsOf: adapterFixture("a.kohya.safetensors")).resolve(against: [index])
        let b = try LoRAFile(contentsOf: adapterFixture("b.diffusers.safetensors")).resolve(against: [index])
        try LoRAAlgebra.fuse(into: &weights, [(a, 0.7), (b, 0.3)], component: .unet)
        let unet = try loadTinyUNet()
        try unet.load(stateDict: weights)
        try assertClose(g.runUNet(unet), g.tensor("unet_fused"), "state dict with a 0.7 + b 0.3 baked in")
    }

    func testTextEncoderAdaptersMatchPEFT() throws {
        let g = try Goldens()
        for format in ["diffusers", "kohya"] {
            let clip = try loadTinyCLIP(), unet = try loadTinyUNet()
            let set = AdapterSet(unet: unet, textEncoder: clip)
            let accounting = try set.load(LoRAFile(contentsOf: adapterFixture("a.\(format).safetensors")), name: "a")
            XCTAssertEqual(accounting.unmatched, [], format)
            XCTAssertEqual(accounting.modulesWithoutAdapter, [], format)
            try assertClose(g.runTextEncoder(clip), g.tensor("te_a"), "text encoder a (\(format)) at 1.0")
            try set.setWeight("a", unet: 0.7, textEncoder: 0.7)
            try set.load(LoRAFile(contentsOf: adapterFixture("b.\(format).safetensors")), name: "b", unetWeight: 0.3, textEncoderWeight: 0.3)
            try assertClose(g.runTextEncoder(clip), g.tensor("te_ab"), "text encoder a 0.7 + b 0.3 (\(format))")
            try assertClose(g.runUNet(unet), g.tensor("unet_ab"), "UNet beside it (\(format))")
            try set.fuse()
            try assertClose(g.runTextEncoder(clip), g.tensor("te_fused"), "text encoder fused (\(format))")
            set.unfuse()
            try set.setWeight("a", unet: nil, textEncoder: 0)
            try set.setWeight("b", unet: nil, textEncoder: 0)
            try assertClose(g.runTextEncoder(clip), g.tensor("te_base"), "text-encoder weights 0, UNet weights kept")
            try assertClose(g.runUNet(unet), g.tensor("unet_ab"), "UNet unaffected by text-encoder weights")
        }
    }

    func testTextEncoderKeysResolveAgainstCLIPLayout() throws {
        // Key accounting against the tiny CLIP fixture's state dict (SD-1 layout with `text_model.`).
        let clip = try SafeTensorsFile(path: TestPaths.tests("CLIPTextTests/Fixtures/clip_sd1_quick_gelu/model.safetensors"))
        let te = ModuleIndex(component: .textEncoder, stateDictShapes: Dictionary(uniqueKeysWithValues: clip.tensors.map { ($0.name, $0.shape) }))
        let unet = ModuleIndex(component: .unet, root: try loadTinyUNet())
        for name in ["a.diffusers.safetensors", "a.kohya.safetensors", "b.kohya.safetensors"] {
            let resolved = try LoRAFile(contentsOf: adapterFixture(name)).resolve(against: [unet, te])
            XCTAssertEqual(resolved.accounting.unmatched, [], name)
            let teModules = resolved.modules.filter { $0.component == .textEncoder }
            XCTAssertEqual(teModules.count, name.hasPrefix("a") ? 12 : 4, name)
            XCTAssertTrue(teModules.allSatisfy { $0.path.hasPrefix("text_model.encoder.layers.") }, name)
        }
    }
}

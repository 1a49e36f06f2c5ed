// Kohya files whose UNet module names follow the original LDM checkpoint (`lora_unet_input_blocks_4_1_…`):
// Tests/AdaptersTests/Fixtures/a.ldm.safetensors is LoRA "a" of make_lora_goldens.py renamed by
// Tests/Reference/make_ldm_lora_fixture.py (diffusers' kohya loader reads it as the original), so the
// goldens of "a" apply.
import Adapters
import Autograd
import DiffusionModels
import Foundation
import Pipeline
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class LDMNamedAdapterTests: XCTestCase {
    func fixture(_ name: String) -> String { TestPaths.tests("AdaptersTests/Fixtures/\(name)") }

    func unet() throws -> UNet2DConditionModel {
        let folder = TestPaths.tests("DiffusionModelsTests/Fixtures/unet_sd1")
        let unet = UNet2DConditionModel(config: try UNet2DConditionConfig(contentsOf: URL(fileURLWithPath: folder + "/config.json")))
        try unet.load(stateDict: SafeTensorsFile(path: folder + "/diffusion_pytorch_model.safetensors").loadAll())
        unet.eval()
        return unet
    }

    func run(_ unet: UNet2DConditionModel, _ goldens: SafeTensorsFile) throws -> Tensor {
        let sample = Variable(try FeatureLayout.nhwc(fromNCHW: goldens.tensor("unet_sample")))
        let context = Variable(try goldens.tensor("unet_context"))
        return try withNoGrad { try unet(sample, timesteps: [500, 500], conditioning: Conditioning(context: context)) }.value
    }

    func testLDMNamesMapOntoOurModules() throws {
        let goldens = try SafeTensorsFile(path: fixture("goldens.safetensors"))
        let file = try LoRAFile(contentsOf: fixture("a.ldm.safetensors"))
        XCTAssertEqual(file.unetNaming, "ldm")
        XCTAssertEqual(try LoRAFile(contentsOf: fixture("a.kohya.safetensors")).unetNaming, "diffusers")
        XCTAssertTrue(file.modules.contains { $0.name == "input_blocks_4_1_transformer_blocks_0_attn1_to_q" })

        let model = try unet()
        // Without the LDM names the file's UNet modules match nothing: refused as another architecture.
        XCTAssertThrowsError(try AdapterSet(unet: model, textEncoder: nil).load(file, name: "a"))
        let names = ldmModuleNames(of: model)
        XCTAssertEqual(names["input_blocks.4.1.transformer_blocks.0.attn1.to_q"], "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q")
        XCTAssertEqual(names["middle_block.0.in_layers.2"], "mid_block.resnets.0.conv1")
        XCTAssertEqual(names["input_blocks.3.0.op"], "down_blocks.0.downsamplers.0.conv")
        let set = AdapterSet(unet: model, textEncoder: nil, unetAliases: names)
        let accounting = try set.load(file, name: "a")
        XCTAssertTrue(accounting.unmatched.allSatisfy { $0.hasPrefix("lora_te_") }, "\(accounting.unmatched.prefix(3))")
        XCTAssertEqual(accounting.modulesWithoutAdapter, [])
        try assertClose(run(model, goldens), goldens.tensor("unet_a"), "LDM-named a at 1.0")

        // `lora merge --into-base` resolves through the same names.
        let folder = TestPaths.tests("DiffusionModelsTests/Fixtures/unet_sd1")
        var weights = try SafeTensorsFile(path: folder + "/diffusion_pytorch_model.safetensors").loadAll()
        let index = ModuleIndex(component: .unet, stateDictShapes: weights.mapValues(\.shape), aliases: names)
        try LoRAAlgebra.fuse(into: &weights, [(try file.resolve(against: [index]), 1)], component: .unet)
        let fused = try unet()
        try fused.load(stateDict: weights)
        try assertClose(run(fused, goldens), goldens.tensor("unet_a"), "LDM-named a baked into a state dict")
    }
}

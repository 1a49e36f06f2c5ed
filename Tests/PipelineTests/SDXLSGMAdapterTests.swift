// SDXL kohya files with SGM module names (sd-scripts' SDXL networks: `lora_unet_input_blocks_4_1_…`,
// `…_middle_block_0_in_layers_2`, `…_output_blocks_2_2_conv`), LoCon included: the table comes from the model's
// config (three levels, two resnets each, transformer depth per level, `label_emb` for the text_time embedding),
// and the file made by Tests/Reference/make_sdxl_sgm_lora_goldens.py gives the latents diffusers computes after
// its own SGM conversion (`load_lora_weights`).
import Adapters
import DiffusionModels
import Foundation
import NN
import Pipeline
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class SDXLSGMAdapterTests: XCTestCase {
    /// SDXL base's layout (levels, block types, 2 resnets per level, transformer depth 1/2/10, linear projections,
    /// text_time) at small widths: the same module names as the real model.
    func narrowSDXL() throws -> UNet2DConditionModel {
        var c = UNet2DConditionConfig.sdxl
        c.blockOutChannels = [32, 64, 128]
        c.normNumGroups = 8
        c.attentionHeads = [2, 4, 8]
        c.crossAttentionDim = [32, 32, 32]
        c.textTime = UNetTextTimeEmbedding(timeEmbedDim: 8, inputDim: 32 + 6 * 8)
        return UNet2DConditionModel(config: c)
    }

    /// Names sd-scripts' SDXL UNet (library/sdxl_original_unet.py, SGM state-dict layout) gives these layers.
    func testSGMNamesOfTheSDXLLayout() throws {
        let unet = try narrowSDXL()
        let names = ldmModuleNames(of: unet)
        let expected = [
            "input_blocks.0.0": "conv_in",
            "time_embed.0": "time_embedding.linear_1",
            "label_emb.0.0": "add_embedding.linear_1",
            "label_emb.0.2": "add_embedding.linear_2",
            "input_blocks.1.0.in_layers.2": "down_blocks.0.resnets.0.conv1",
            "input_blocks.2.0.out_layers.3": "down_blocks.0.resnets.1.conv2",
            "input_blocks.3.0.op": "down_blocks.0.downsamplers.0.conv",
            "input_blocks.4.0.skip_connection": "down_blocks.1.resnets.0.conv_shortcut",
            "input_blocks.4.1.proj_in": "down_blocks.1.attentions.0.proj_in",
            "input_blocks.5.1.transformer_blocks.1.attn2.to_k": "down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k",
            "input_blocks.6.0.op": "down_blocks.1.downsamplers.0.conv",
            "input_blocks.8.1.transformer_blocks.9.ff.net.2": "down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2",
            "middle_block.0.emb_layers.1": "mid_block.resnets.0.time_emb_proj",
            "middle_block.1.transformer_blocks.9.attn1.to_out.0": "mid_block.attentions.0.transformer_blocks.9.attn1.to_out.0",
            "middle_block.2.in_layers.2": "mid_block.resnets.1.conv1",
            "output_blocks.0.0.skip_connection": "up_blocks.0.resnets.0.conv_shortcut",
            "output_blocks.2.1.transformer_blocks.9.attn2.to_v": "up_blocks.0.attentions.2.transformer_blocks.9.attn2.to_v",
            "output_blocks.2.2.conv": "up_blocks.0.upsamplers.0.conv",
            "output_blocks.5.1.transformer_blocks.1.ff.net.0.proj": "up_blocks.1.attentions.2.transformer_blocks.1.ff.net.0.proj",
            "output_blocks.5.2.conv": "up_blocks.1.upsamplers.0.conv",
            "output_blocks.8.0.in_layers.2": "up_blocks.2.resnets.2.conv1",
            "out.2": "conv_out",
        ]
        for (sgm, ours) in expected { XCTAssertEqual(names[sgm], ours, sgm) }
        // No attention on the first and last levels, no upsampler after the last up level, no 10th block at level 1.
        for absent in ["input_blocks.1.1.proj_in", "output_blocks.8.1.proj_in", "output_blocks.8.2.conv",
                       "input_blocks.4.1.transformer_blocks.2.attn1.to_q", "input_blocks.9.0.in_layers.2"] {
            XCTAssertNil(names[absent], absent)
        }
        // Every Linear and Conv2d of the UNet has exactly one SGM name.
        let layers = Set(unet.namedModules().filter { $0.1 is Linear || $0.1 is Conv2d }.map(\.0))
        let layerNames = names.filter { layers.contains($0.value) }
        XCTAssertEqual(layers.subtracting(layerNames.values).sorted().prefix(5), [])
        XCTAssertEqual(layerNames.count, layers.count, "one name per layer")
    }

    func testSGMNamedLoConFileMatchesDiffusers() throws {
        let goldens = try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_sgm_lora_goldens.safetensors"))
        let file = try LoRAFile(contentsOf: TestPaths.pipelineFixture("sdxl-lora/sgm.kohya.safetensors"))
        XCTAssertEqual(file.unetNaming, "ldm")
        for (key, weight) in [("sgm", Float(1)), ("sgm05", 0.5)] {
            let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sdxl"))
            let set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder, textEncoder2: model.textEncoder2,
                                 unetAliases: model.unetLDMModuleNames)
            let accounting = try set.load(file, name: "sgm", unetWeight: weight)
            XCTAssertEqual(accounting.unmatched, [])
            XCTAssertEqual(accounting.matchedModules, 119, "attention, projections, ff, resnets and samplers")
            let g = try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_goldens.safetensors"))
            let p = GenerationParameters(prompt: "a photo of sks dog in the snow", negativePrompt: "blurry, low quality",
                                         steps: 10, guidanceScale: 5, sampler: .euler, width: 32, height: 32)
            let latents = try TextToImage(model: model, adapters: set)
                .denoise(p, initialNoise: try FeatureLayout.nhwc(fromNCHW: g.tensor("init_latents")))
            try assertClose(latents, try goldens.tensor("latents.\(key)"), tolerance: 1e-3, "SGM-named LoCon at \(weight)")
        }
    }
}

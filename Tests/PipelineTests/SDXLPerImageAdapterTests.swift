// Per-image adapters in one batch on SDXL (tiny-sdxl): the kohya file "a" (UNet, lora_te1_, lora_te2_) and the
// SGM-named LoCon file "sgm" loaded at weight 0, each request of a batch with its own adapter weights and size
// conditioning. Each image equals its request run alone, bit for bit, and the rows with one adapter at weight 1
// equal diffusers' latents with that adapter (make_sdxl_lora_goldens.py, make_sdxl_sgm_lora_goldens.py).
import Adapters
import DiffusionModels
import Foundation
import Pipeline
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class SDXLPerImageAdapterTests: XCTestCase {
    func pipeline() throws -> TextToImage {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sdxl"))
        let set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder, textEncoder2: model.textEncoder2,
                             unetAliases: model.unetLDMModuleNames)
        for name in ["a", "sgm"] {
            let file = try LoRAFile(contentsOf: TestPaths.pipelineFixture("sdxl-lora/\(name).kohya.safetensors"))
            XCTAssertEqual(try set.load(file, name: name, unetWeight: 0, textEncoderWeight: 0).unmatched, [], name)
        }
        return TextToImage(model: model, adapters: set)
    }

    func parameters(_ prompt: String = "a photo of sks dog in the snow", seed: UInt64 = 0, images: Int = 1,
                    sizes: SizeConditioning? = nil) -> GenerationParameters {
        GenerationParameters(prompt: prompt, negativePrompt: "blurry, low quality", steps: 10, guidanceScale: 5,
                             sampler: .euler, seed: seed, width: 32, height: 32, numImages: images, sizeConditioning: sizes)
    }

    func testEachImageEqualsItsRequestAloneAndDiffusers() throws {
        let pipeline = try pipeline()
        let one = AdapterWeights(unet: 1, textEncoder: 1)
        // Rows 0 and 1 start from diffusers' init latents: a at 1, sgm at 1.
        let goldenRequests = [BatchRequest(parameters: parameters(), adapterWeights: ["a": one]),
                              BatchRequest(parameters: parameters(), adapterWeights: ["sgm": one])]
        let g = try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_goldens.safetensors"))
        let initial = try FeatureLayout.nhwc(fromNCHW: g.tensor("init_latents"))
        let both = try Tensor(shape: [2] + Array(initial.shape.dropFirst()), scalars: initial.scalars + initial.scalars)
        let latents = try pipeline.denoise(batch: goldenRequests, initialNoise: both)
        let half = latents.count / 2, shape = [1] + Array(latents.shape.dropFirst())
        let rowA = try Tensor(shape: shape, scalars: Array(latents.scalars[..<half]))
        let rowSGM = try Tensor(shape: shape, scalars: Array(latents.scalars[half...]))
        try assertClose(rowA, try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_lora_goldens.safetensors")).tensor("latents.a"),
                        tolerance: 1e-3, "row 0: a at 1")
        try assertClose(rowSGM, try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_sgm_lora_goldens.safetensors")).tensor("latents.sgm"),
                        tolerance: 1e-3, "row 1: sgm at 1")
        XCTAssertEqual(rowA.scalars, try pipeline.denoise(batch: [goldenRequests[0]], initialNoise: initial).scalars, "row 0 alone")
        XCTAssertEqual(rowSGM.scalars, try pipeline.denoise(batch: [goldenRequests[1]], initialNoise: initial).scalars, "row 1 alone")

        // Seeded requests with their own weights and size conditioning: each equals itself alone, bit for bit.
        let batch = [
            BatchRequest(parameters: parameters(seed: 3, sizes: SizeConditioning(originalSize: [64, 48])),
                         adapterWeights: ["a": AdapterWeights(unet: 1, textEncoder: 0.5)]),
            BatchRequest(parameters: parameters("a red car", seed: 4, images: 2), adapterWeights: [:]),
            BatchRequest(parameters: parameters("a house", seed: 5, sizes: SizeConditioning(cropTopLeft: [8, 0])),
                         adapterWeights: ["a": AdapterWeights(unet: 0.3, textEncoder: 0.3), "sgm": AdapterWeights(unet: 0.8, textEncoder: 0)]),
        ]
        let together = try pipeline.denoise(batch: batch)
        XCTAssertEqual(together.shape[0], 4)
        var offset = 0
        for (i, request) in batch.enumerated() {
            let solo = try pipeline.denoise(batch: [request])
            XCTAssertEqual(Array(together.scalars[offset..<(offset + solo.count)]), solo.scalars, "request \(i)")
            offset += solo.count
        }
        var bare = batch[2]
        bare.adapterWeights = ["a": AdapterWeights(unet: 0.3, textEncoder: 0.3)]
        XCTAssertNotEqual(try pipeline.denoise(batch: [bare]).scalars, Array(together.scalars[(3 * together.count / 4)...]),
                          "the LoCon adapter changes request 2")
    }
}

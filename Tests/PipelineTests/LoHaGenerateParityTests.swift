// Generating with a LoHa adapter (LyCORIS keys) equals diffusers' StableDiffusionPipeline with the same weight
// delta fused into the UNet. Goldens: Tests/Reference/make_lycoris_goldens.py (Euler, 10 steps, guidance 7.5,
// the init latents and prompts of make_pipeline_goldens.py, the LoHa at 0.8).
import Adapters
import DiffusionModels
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class LoHaGenerateParityTests: XCTestCase {
    func testLoHaLatentsMatchDiffusersWithFusedDelta() throws {
        let goldens = try SafeTensorsFile(path: TestPaths.pipelineFixture("latents_goldens.safetensors"))
        let expected = try SafeTensorsFile(path: TestPaths.pipelineFixture("loha_latents_goldens.safetensors")).tensor("latents.euler_loha")
        let initial = try FeatureLayout.nhwc(fromNCHW: goldens.tensor("init_latents"))
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        let adapters = AdapterSet(unet: model.unet, textEncoder: model.textEncoder)
        let file = try LoRAFile(contentsOf: TestPaths.pipelineFixture("loha_tiny_sd.safetensors"))
        XCTAssertEqual(file.kinds, [.loha])
        let accounting = try adapters.load(file, name: "style", unetWeight: 0)
        XCTAssertEqual(accounting.unmatched, [])
        let pipeline = TextToImage(model: model, adapters: adapters)
        let p = GenerationParameters(prompt: Golden.prompt, negativePrompt: Golden.negative, steps: 10, guidanceScale: 7.5,
                                     sampler: .euler, karras: false, width: 32, height: 32)
        func check(_ latents: Tensor, _ label: String) throws {
            let error = maxAbsDifference(try FeatureLayout.nchw(fromNHWC: latents), expected), scale = maxAbs(expected)
            print("\(label): max error \(error) at scale \(scale)")
            XCTAssertLessThanOrEqual(error, 1e-4 * scale, label)
        }
        // As `generate` passes a request's adapter weights: per image, with the call.
        let request = BatchRequest(parameters: p, adapterWeights: ["style": AdapterWeights(unet: 0.8, textEncoder: 0.8)])
        try check(try pipeline.denoise(batch: [request], initialNoise: initial), "per-request weight 0.8")
        try adapters.setWeight("style", unet: 0.8, textEncoder: nil)
        try check(try pipeline.denoise(p, initialNoise: initial), "adapter weight 0.8")
        try adapters.fuse()
        try check(try pipeline.denoise(p, initialNoise: initial), "fused at 0.8")
    }
}

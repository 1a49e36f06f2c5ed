// Parity of image-to-image (TextToImage with an init image) with diffusers' StableDiffusionImg2ImgPipeline
// on the tiny random-weight models. Goldens: Tests/Reference/make_img2img_goldens.py (run with
// /root/refenv/bin/python after make_pipeline_goldens.py).
import Adapters
import DiffusionModels
import PNGImage
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class ImageToImageParityTests: XCTestCase {
    func picture() throws -> Image { try PNG.read(path: TestPaths.pipelineFixture("img2img_init.png")).image }

    func goldens() throws -> SafeTensorsFile { try SafeTensorsFile(path: TestPaths.pipelineFixture("img2img_goldens.safetensors")) }

    /// `--rng torch` img2img images of the latent model (the 40x48 init picture resized to 32x32 with Pillow's
    /// Lanczos, VAE-encoded and sampled from the posterior with the same generator) against diffusers': mean
    /// absolute difference ≤ 1 level of 255, as the text-to-image parity test.
    func testTorchGeneratorImagesMatchDiffusers() throws {
        let cases: [(String, SamplerKind, Bool, Double, Int)] = [
            ("ddim_5", .ddim, false, 0.5, 1), ("ddim_8", .ddim, false, 0.8, 1), ("euler_a_5", .eulerAncestral, false, 0.5, 1),
            ("euler_a_8", .eulerAncestral, false, 0.8, 1), ("dpmpp2m_5", .dpmpp2m, false, 0.5, 1),
            ("dpmpp2m_karras_8", .dpmpp2m, true, 0.8, 1), ("euler_8", .euler, false, 0.8, 1), ("pndm_6", .pndm, false, 0.6, 1),
            ("heun_5", .heun, false, 0.5, 1), ("ddpm_6", .ddpm, false, 0.6, 1),
            ("dpmpp2m_sde_8", .dpmpp2mSDE, false, 0.8, 1), ("euler_a_8_batch2", .eulerAncestral, false, 0.8, 2),
        ]
        let pipeline = TextToImage(model: try tinySD())
        for (name, sampler, karras, strength, count) in cases {
            try check(pipeline, name, sampler, karras: karras, strength: strength, count: count)
        }
    }

    /// `resize_mode="crop"`: the 40x48 picture scaled to 32x38 and centre-cropped to 32x32.
    func testCropResizeMatchesDiffusers() throws {
        try check(TextToImage(model: try tinySD()), "crop_euler_a_6", .eulerAncestral, strength: 0.6, resize: .crop)
        XCTAssertThrowsError(try check(TextToImage(model: try tinySD()), "crop_euler_a_6", .eulerAncestral, strength: 0.6,
                                       quiet: true), "stretching gives another picture")
    }

    /// v-prediction: the same random model with the scheduler's prediction_type "v_prediction".
    func testVPredictionMatchesDiffusers() throws {
        let base = try tinySD()
        var config = base.schedulerConfig
        config.predictionType = .vPrediction
        let model = try StableDiffusionModel(name: base.name, tokenizer: base.tokenizer, textEncoder: base.textEncoder,
                                             unet: base.unet, vae: base.vae, schedulerConfig: config)
        let pipeline = TextToImage(model: model)
        try check(pipeline, "vpred_ddim_8", .ddim, strength: 0.8)
        try check(pipeline, "vpred_euler_5", .euler, strength: 0.5)
    }

    /// With a LoRA (diffusers' `save_lora_weights` file) at weight 0.8, loaded into a model of its own.
    func testWithLoRAMatchesDiffusers() throws {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        let adapters = AdapterSet(unet: model.unet, textEncoder: model.textEncoder)
        _ = try adapters.load(LoRAFile(contentsOf: TestPaths.pipelineFixture("img2img_lora.safetensors")), name: "style",
                              unetWeight: 0.8)
        let pipeline = TextToImage(model: model, adapters: adapters)
        try check(pipeline, "lora_euler_a_6", .eulerAncestral, strength: 0.6)
        try check(pipeline, "lora_dpmpp2m_8", .dpmpp2m, strength: 0.8)
        // the adapter matters: the image without it differs by more than a level
        let bare = TextToImage(model: try tinySD())
        XCTAssertThrowsError(try check(bare, "lora_dpmpp2m_8", .dpmpp2m, strength: 0.8, quiet: true))
    }

    struct Mismatch: Error { let message: String }

    /// Generates golden `name`'s run and compares with `image.<name>`: mean |Δ| ≤ 1 level of 255 (asserted, or
    /// thrown when `quiet`).
    func check(_ pipeline: TextToImage, _ name: String, _ sampler: SamplerKind, karras: Bool = false, strength: Double,
               count: Int = 1, resize: InitImageResize = .stretch, quiet: Bool = false) throws {
        let p = GenerationParameters(prompt: Golden.prompt, negativePrompt: Golden.negative, steps: 10, guidanceScale: 7.5,
                                     sampler: sampler, karras: karras, seed: Golden.seed, rng: .torch, width: 32,
                                     height: 32, numImages: count, initImage: InitImageReference(strength: strength, resize: resize))
        let images = try pipeline.generate(p, initImage: try picture())
        let expected = try goldens().tensor("image." + name)   // [N, 32, 32, 3] in [0, 1]
        XCTAssertEqual(images.count, count)
        let perImage = 32 * 32 * 3
        for (i, generated) in images.enumerated() {
            let (mean, worst) = expected.withUnsafeBufferPointer { e in
                (0..<perImage).reduce((0.0, 0.0)) { acc, k in
                    let d = abs(Double(generated.image.pixels[k]) - Double(e[i * perImage + k]) * 255)
                    return (acc.0 + d / Double(perImage), max(acc.1, d))
                }
            }
            if quiet {
                if mean > 1 { throw Mismatch(message: "\(name): mean |Δ| \(mean)") }
                continue
            }
            print("img2img \(name) image \(i): mean |Δ| \(mean) levels, max |Δ| \(worst) levels")
            XCTAssertLessThanOrEqual(mean, 1, "\(name) image \(i): mean |Δ| \(mean) levels")
        }
    }

    /// The pixel model takes the picture itself (resized to 16x16) as x₀: final samples within 1e-4 of the
    /// golden's scale (DDIM 1e-2, as in the text-to-image latents test).
    func testPixelModelMatchesDiffusers() throws {
        let pipeline = TextToImage(model: try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel")))
        let goldens = try goldens(), start = try picture()
        let cases: [(String, SamplerKind, Double, Float)] = [("euler_6", .euler, 0.6, 1e-4), ("euler_a_8", .eulerAncestral, 0.8, 1e-4),
                                                             ("ddim_5", .ddim, 0.5, 1e-2)]
        for (name, sampler, strength, tolerance) in cases {
            let p = GenerationParameters(prompt: Golden.prompt, negativePrompt: Golden.negative, steps: 10, guidanceScale: 7.5,
                                         sampler: sampler, seed: Golden.seed, rng: .torch, width: 16, height: 16,
                                         initImage: InitImageReference(strength: strength))
            let sample = try pipeline.denoise(p, initImage: start)
            let expected = try goldens.tensor("pixel." + name)
            let error = maxAbsDifference(try FeatureLayout.nchw(fromNHWC: sample), expected)
            let scale = maxAbs(expected)
            print("img2img pixel \(name): max |Δ| \(error) at scale \(scale)")
            XCTAssertLessThanOrEqual(error, tolerance * scale, "pixel \(name): max error \(error) at scale \(scale)")
        }
    }
}

// TAESD (`AutoencoderTiny`) against diffusers on random weights, loaded from a diffusers folder as `--taesd DIR` does.
// Fixture and golden: Tests/Reference/make_fewstep_goldens.py (tiny-taesd/, taesd_goldens.safetensors).
import DiffusionModels
import PNGImage
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class TinyAutoencoderTests: XCTestCase {
    private func taesd() throws -> AutoencoderTiny {
        try ModelSource.loadTinyAutoencoder(TestPaths.pipelineFixture("tiny-taesd"))
    }

    func testDecodeMatchesDiffusers() throws {
        let vae = try taesd()
        XCTAssertEqual(vae.config.decoderBlockOutChannels, [16, 16])
        XCTAssertEqual(vae.config.numDecoderBlocks, [2, 1])
        XCTAssertEqual(vae.config.upsamplingFactor, 2)
        var g = TorchGenerator(seed: 9)
        let z = try FeatureLayout.nhwc(fromNCHW: Elementwise.scale(g.randn([1, 4, 16, 12]), by: 2))
        let image = try vae.image(fromUNetLatents: z)
        XCTAssertEqual(image.shape, [1, 32, 24, 3])
        let expected = try SafeTensorsFile(path: TestPaths.pipelineFixture("taesd_goldens.safetensors")).tensor("decoded")
        let error = maxAbsDifference(try FeatureLayout.nchw(fromNHWC: image), expected)
        XCTAssertLessThanOrEqual(error, 1e-4 * max(1, maxAbs(expected)), "max error \(error) at scale \(maxAbs(expected))")
    }

    /// `vae.encode(image).latents` of diffusers' EncoderTiny (stride-2 convs, blocks, the [−1, 1] → [0, 1] input).
    func testEncodeMatchesDiffusers() throws {
        let vae = try taesd()
        XCTAssertEqual(vae.config.numEncoderBlocks, [1, 2])
        XCTAssertEqual(vae.downsamplingFactor, 2)
        let goldens = try SafeTensorsFile(path: TestPaths.pipelineFixture("taesd_goldens.safetensors"))
        let image = try FeatureLayout.nhwc(fromNCHW: goldens.tensor("image"))
        let latents = try vae.unetLatents(fromImage: image)
        XCTAssertEqual(latents.shape, [1, 16, 12, 4])
        let expected = try goldens.tensor("encoded")
        let error = maxAbsDifference(try FeatureLayout.nchw(fromNHWC: latents), expected)
        print("taesd encode: max |Δ| \(error) at scale \(maxAbs(expected))")
        XCTAssertLessThanOrEqual(error, 1e-4 * max(1, maxAbs(expected)), "max error \(error) at scale \(maxAbs(expected))")
        XCTAssertThrowsError(try vae.unetLatents(fromImage: Tensor(shape: [1, 31, 24, 3], repeating: 0)))   // odd height
    }

    /// The keys are diffusers' (`decoder.layers.<i>…`, `encoder.layers.<i>…`; parameter-free layers keep their
    /// indices); loading is strict for both halves, a missing tensor is an error naming it.
    func testLoadingIsStrict() throws {
        let vae = try taesd()
        let keys = Set(vae.stateDict().keys)
        XCTAssertTrue(keys.contains("decoder.layers.0.weight"))
        XCTAssertTrue(keys.contains("decoder.layers.2.conv.4.weight"))
        XCTAssertTrue(keys.contains("decoder.layers.7.bias"))
        XCTAssertFalse(keys.contains("decoder.layers.5.bias"))   // the inner level's conv has no bias
        XCTAssertTrue(keys.contains("encoder.layers.0.bias"))
        XCTAssertTrue(keys.contains("encoder.layers.3.conv.2.weight"))
        XCTAssertFalse(keys.contains("encoder.layers.2.bias"))   // the stride-2 conv has no bias
        XCTAssertTrue(keys.contains("encoder.layers.5.bias"))
        let file = try SafeTensorsFile(path: TestPaths.pipelineFixture("tiny-taesd/diffusion_pytorch_model.safetensors")).loadAll()
        XCTAssertEqual(keys, Set(file.keys))
        for missing in ["decoder.layers.6.conv.2.weight", "encoder.layers.4.conv.0.weight"] {
            var tensors = file
            tensors[missing] = nil
            XCTAssertThrowsError(try AutoencoderTiny(config: vae.config).load(stateDict: tensors)) {
                XCTAssertTrue("\($0)".contains(missing), "\($0)")
            }
        }
        var decoderOnly = file.filter { $0.key.hasPrefix("decoder.") }
        XCTAssertNoThrow(try AutoencoderTiny(config: vae.config).loadDecoder(stateDict: decoderOnly))
        decoderOnly["decoder.layers.6.conv.2.weight"] = nil
        XCTAssertThrowsError(try AutoencoderTiny(config: vae.config).loadDecoder(stateDict: decoderOnly))
    }

    /// img2img with the tiny autoencoder (`--taesd` / `--vae` TAESD folder with `--init-image`) against diffusers'
    /// StableDiffusionImg2ImgPipeline with `vae=AutoencoderTiny`: the init picture is encoded by TAESD (no posterior
    /// draw from the generator) and the result decoded by it; mean |Δ| ≤ 1 level of 255.
    func testImageToImageMatchesDiffusers() throws {
        var pipeline = TextToImage(model: try tinySD())
        pipeline.tinyAutoencoder = try taesd()
        let picture = try PNG.read(path: TestPaths.pipelineFixture("img2img_init.png")).image
        let goldens = try SafeTensorsFile(path: TestPaths.pipelineFixture("taesd_goldens.safetensors"))
        let withoutTiny = TextToImage(model: try tinySD())
        for (name, sampler, steps, strength, guidance) in [("lcm4_5", SamplerKind.lcm, 4, 0.5, 1.0),
                                                           ("euler_a8", .eulerAncestral, 10, 0.8, 7.5)] {
            let p = GenerationParameters(prompt: Golden.prompt, negativePrompt: guidance > 1 ? Golden.negative : "",
                                         steps: steps, guidanceScale: guidance, sampler: sampler, seed: Golden.seed,
                                         rng: .torch, width: 32, height: 32,
                                         initImage: InitImageReference(strength: strength))
            let image = try XCTUnwrap(pipeline.generate(p, initImage: picture).first).image
            let expected = try goldens.tensor("img2img." + name)   // [1, 32, 32, 3] in [0, 1]
            let mean = expected.withUnsafeBufferPointer { e in
                (0..<e.count).reduce(0.0) { $0 + abs(Double(image.pixels[$1]) - Double(e[$1]) * 255) / Double(e.count) }
            }
            print("taesd img2img \(name): mean |Δ| \(mean) levels")
            XCTAssertLessThanOrEqual(mean, 1, "\(name): mean |Δ| \(mean) levels")
            XCTAssertNotEqual(try withoutTiny.generate(p, initImage: picture).first?.image, image)
        }
    }

    /// generate --taesd: the pipeline decodes with the tiny autoencoder instead of the model's VAE.
    func testPipelineDecodesWithTheTinyAutoencoder() throws {
        var pipeline = TextToImage(model: try tinySD())
        let p = GenerationParameters(prompt: "a dog", steps: 2, seed: 4, width: 32, height: 32)
        let withVAE = try pipeline.generate(p)
        pipeline.tinyAutoencoder = try taesd()
        let withTiny = try pipeline.generate(p)
        XCTAssertEqual(withTiny.first?.image.width, 32)
        XCTAssertNotEqual(withTiny.map(\.image), withVAE.map(\.image))
    }
}

// TAESD (`AutoencoderTiny`) against diffusers on random weights, loaded from a diffusers folder as `--taesd DIR` does.
// Fixture and golden: Tests/Reference/make_fewstep_goldens.py (tiny-taesd/, taesd_goldens.safetensors).
import DiffusionModels
import Pipeline
import SafeTensors
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

    /// The decoder's keys are diffusers' (`decoder.layers.<i>…`, parameter-free layers keep their indices); the
    /// file's encoder tensors are left aside, a missing decoder tensor is an error naming it.
    func testLoadingIsStrictForTheDecoder() throws {
        let vae = try taesd()
        let keys = Set(vae.stateDict().keys)
        XCTAssertTrue(keys.contains("decoder.layers.0.weight"))
        XCTAssertTrue(keys.contains("decoder.layers.2.conv.4.weight"))
        XCTAssertTrue(keys.contains("decoder.layers.7.bias"))
        XCTAssertFalse(keys.contains("decoder.layers.5.bias"))   // the inner level's conv has no bias
        XCTAssertFalse(keys.contains { $0.hasPrefix("encoder.") })
        var tensors = try SafeTensorsFile(path: TestPaths.pipelineFixture("tiny-taesd/diffusion_pytorch_model.safetensors")).loadAll()
        tensors["decoder.layers.6.conv.2.weight"] = nil
        XCTAssertThrowsError(try AutoencoderTiny(config: vae.config).loadDecoder(stateDict: tensors)) {
            XCTAssertTrue("\($0)".contains("decoder.layers.6.conv.2.weight"), "\($0)")
        }
    }

    /// generate --taesd: the pipeline decodes with the tiny autoencoder instead of the model's VAE.
    func testPipelineDecodesWithTheTinyAutoencoder() throws {
        var pipeline = TextToImage(model: try tinySD())
        let p = GenerationParameters(prompt: "a dog", steps: 2, seed: 4, width: 32, height: 32)
        let withVAE = try pipeline.generate(p)
        pipeline.tinyDecoder = try taesd()
        let withTiny = try pipeline.generate(p)
        XCTAssertEqual(withTiny.first?.image.width, 32)
        XCTAssertNotEqual(withTiny.map(\.image), withVAE.map(\.image))
    }
}

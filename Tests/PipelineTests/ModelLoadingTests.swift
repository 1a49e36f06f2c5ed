// Loading diffusers folders: variants, refusals and error messages; the parameters text; hashes.
import Adapters
import DiffusionModels
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class ModelLoadingTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("loading-tests-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: TestPaths.pipelineFixture("tiny-sd")), to: scratch)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    func path(_ relative: String) -> String { scratch.appendingPathComponent(relative).path }

    func expectError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try StableDiffusionModel(path: scratch.path), file: file, line: line) { error in
            for fragment in fragments {
                XCTAssertTrue("\(error)".contains(fragment), "\"\(error)\" lacks \"\(fragment)\"", file: file, line: line)
            }
        }
    }

    /// `model_index.json`'s `_guidance_scale` is read as the model's recommended guidance; a value that is not a
    /// number in [0, 100] is refused with the file named; without it there is none and the default is 7.5.
    func testRecommendedGuidanceFromModelIndex() throws {
        XCTAssertNil(try StableDiffusionModel(path: scratch.path).recommendedGuidance)
        XCTAssertEqual(try StableDiffusionModel(path: scratch.path).defaultGuidance, 7.5)
        let index = path("model_index.json")
        let original = try String(contentsOfFile: index, encoding: .utf8)
        func write(_ value: String) throws {
            try original.replacingOccurrences(of: "{\n", with: "{\n  \"_guidance_scale\": \(value),\n")
                .write(toFile: index, atomically: true, encoding: .utf8)
        }
        try write("3.5")
        let model = try StableDiffusionModel(path: scratch.path)
        XCTAssertEqual(model.recommendedGuidance, 3.5)
        XCTAssertEqual(model.defaultGuidance, 3.5)
        // a --prediction override rebuilds the model: the recommendation (and the rest of the folder) stays
        XCTAssertEqual(try ModelSource(path: scratch.path, prediction: .vPrediction).load().model.recommendedGuidance, 3.5)
        try write("1")
        XCTAssertEqual(try StableDiffusionModel(path: scratch.path).recommendedGuidance, 1, "a whole number is a number")
        try write("null")
        XCTAssertNil(try StableDiffusionModel(path: scratch.path).recommendedGuidance)
        for bad in ["\"high\"", "\"4\"", "true", "false", "-1", "1000", "[4]"] {
            try write(bad)
            expectError(["model_index.json", "_guidance_scale"])
        }
        XCTAssertEqual(try StableDiffusionModel(path: TestPaths.repository("pipelines/toy")).recommendedGuidance, 3)
    }

    func testLoadsFP16VariantFiles() throws {
        try FileManager.default.moveItem(atPath: path("unet/diffusion_pytorch_model.safetensors"),
                                         toPath: path("unet/diffusion_pytorch_model.fp16.safetensors"))
        try FileManager.default.moveItem(atPath: path("text_encoder/model.safetensors"),
                                         toPath: path("text_encoder/model.fp16.safetensors"))
        let model = try StableDiffusionModel(path: scratch.path)
        XCTAssertEqual(model.unetWeights?.lastPathComponent, "diffusion_pytorch_model.fp16.safetensors")
        XCTAssertTrue(model.isLatent)
        XCTAssertEqual(model.defaultSize, 32)
    }

    /// transformers 5 saves a CLIP tokenizer as tokenizer.json only: the same ids come from its BPE model.
    func testTokenizerFromTokenizerJSON() throws {
        let reference = try tinySD().tokenizer
        for name in ["vocab.json", "merges.txt"] { try FileManager.default.removeItem(atPath: path("tokenizer/" + name)) }
        let model = try StableDiffusionModel(path: scratch.path)
        for text in [Golden.prompt, "a watercolor painting of a white cat, 4k!", "sks"] {
            XCTAssertEqual(model.tokenizer.encode(text), reference.encode(text), text)
        }
        try FileManager.default.removeItem(atPath: path("tokenizer/tokenizer.json"))
        expectError(["tokenizer/vocab.json"])
    }

    func testRefusesPickles() throws {
        try FileManager.default.removeItem(atPath: path("vae/diffusion_pytorch_model.safetensors"))
        try Data([0x80, 0x02]).write(to: URL(fileURLWithPath: path("vae/diffusion_pytorch_model.bin")))
        expectError(["vae/diffusion_pytorch_model.bin", "pickle", "safetensors"])
    }

    func testMissingComponentNamesFolderAndFile() throws {
        try FileManager.default.removeItem(atPath: path("unet/config.json"))
        expectError([scratch.lastPathComponent, "unet/config.json"])
        try FileManager.default.removeItem(atPath: path("model_index.json"))
        expectError(["model_index.json"])
        XCTAssertThrowsError(try StableDiffusionModel(path: path("nothing-here"))) { error in
            XCTAssertTrue("\(error)".contains("nothing-here"), "\(error)")
        }
    }

    func testMissingWeightsNameTheExpectedFile() throws {
        try FileManager.default.removeItem(atPath: path("text_encoder/model.safetensors"))
        expectError(["text_encoder/model.safetensors"])
    }

    func testStrictLoadingErrorKeepsKeyPath() throws {
        try FileManager.default.removeItem(atPath: path("vae/diffusion_pytorch_model.safetensors"))
        try FileManager.default.copyItem(atPath: path("unet/diffusion_pytorch_model.safetensors"),
                                         toPath: path("vae/diffusion_pytorch_model.safetensors"))
        expectError(["vae", "diffusion_pytorch_model.safetensors", "encoder.conv_in.weight", "[16, 3, 3, 3]"])
    }

    /// A folder without a VAE is a pixel-space model; its output matches diffusers' (vae=None, Euler).
    func testPixelSpaceModelMatchesDiffusers() throws {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel"))
        XCTAssertFalse(model.isLatent)
        XCTAssertEqual(model.sizeMultiple, 1)
        let goldens = try SafeTensorsFile(path: TestPaths.pipelineFixture("latents_goldens.safetensors"))
        let p = GenerationParameters(prompt: Golden.prompt, negativePrompt: Golden.negative, steps: 10, guidanceScale: 7.5,
                                     sampler: .euler, width: 16, height: 16)
        let pipeline = TextToImage(model: model)
        let x = try pipeline.denoise(p, initialNoise: FeatureLayout.nhwc(fromNCHW: goldens.tensor("pixel.init")))
        let expected = try goldens.tensor("pixel.euler")
        let error = maxAbsDifference(try FeatureLayout.nchw(fromNHWC: x), expected)
        XCTAssertLessThanOrEqual(error, 1e-4 * maxAbs(expected), "max error \(error)")
        let images = try pipeline.generate(GenerationParameters(prompt: "a dog", steps: 2, width: 12, height: 12))
        XCTAssertEqual(images.first?.image.width, 12)
    }

    func testNativeSeedIsBitwiseReproducible() throws {
        let pipeline = TextToImage(model: try tinySD())
        for sampler in [SamplerKind.eulerAncestral, .dpmpp2mSDE, .ddpm] {
            let p = GenerationParameters(prompt: "a dog", steps: 4, sampler: sampler, seed: 99, width: 16, height: 16)
            let a = try pipeline.generate(p), b = try pipeline.generate(p)
            XCTAssertEqual(a.map(\.image), b.map(\.image), sampler.rawValue)
            var other = p
            other.seed = 100
            XCTAssertNotEqual(try pipeline.generate(other).map(\.image), a.map(\.image), sampler.rawValue)
        }
    }

    func testParametersTextRoundTrip() throws {
        var p = GenerationParameters(prompt: "a photo, of: \"sks\" dog\nsecond line", negativePrompt: "blurry\nugly",
                                     steps: 30, guidanceScale: 6.25, sampler: .dpmpp2m, karras: true, seed: 18446744073709551615,
                                     rng: .torch, width: 640, height: 448, clipSkip: 1, numImages: 3, eta: 0.5)
        p.adapters = [AdapterReference(name: "sks", weight: 1, hash: "0123456789ab")]
        let info = ParametersText(parameters: p, batchPosition: 2, modelName: "toy, v1", modelHash: "abcdef0123")
        let text = info.text
        XCTAssertTrue(text.contains("Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.25, Seed: 18446744073709551615, Size: 640x448"), text)
        XCTAssertTrue(text.contains("Clip skip: 2"), text)
        XCTAssertTrue(text.contains("Lora hashes: \"sks: 0123456789ab\""), text)
        XCTAssertEqual(try ParametersText(parsing: text), info)
        XCTAssertFalse(text.contains("Precision"), text)                       // fp32 is the default: not written
        let bf16 = ParametersText(parameters: p, modelName: "toy", modelHash: "abcdef0123", precision: "bf16")
        XCTAssertTrue(bf16.text.contains("Model: toy, Precision: bf16"), bf16.text)
        XCTAssertEqual(try ParametersText(parsing: bf16.text), bf16)
        let a1111 = "masterpiece\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 3, Size: 512x768, Model hash: 6ce0161689, Model: v1-5, RNG: CPU, Version: v1.10.1"
        let parsed = try ParametersText(parsing: a1111)
        XCTAssertEqual(parsed.parameters.sampler, .eulerAncestral)
        XCTAssertEqual(parsed.parameters.rng, .torch)
        XCTAssertEqual(parsed.parameters.width, 512)
        XCTAssertEqual(parsed.parameters.height, 768)
        XCTAssertThrowsError(try ParametersText(parsing: "just a prompt"))
        XCTAssertThrowsError(try ParametersText(parsing: "p\nSteps: x, Sampler: Euler, Seed: 1"))
    }

    /// The parameters text reads adapter weights with the one `<lora:…>` grammar (`AdapterRequest.extractTags`):
    /// a malformed tag is an error, not prompt text.
    func testPromptAdapterTags() throws {
        let fields = "Steps: 20, Sampler: Euler, Seed: 1, Lora hashes: \"sks: 0123456789ab, style: ba9876543210\""
        let parsed = try ParametersText(parsing: "a photo of <lora:sks:0.8> dog, <lora:style:unet=0.5,te=0.2>\n" + fields)
        XCTAssertEqual(parsed.parameters.adapters, [AdapterReference(name: "sks", weight: Double(Float(0.8)), hash: "0123456789ab"),
                                                    AdapterReference(name: "style", weight: 0.5, hash: "ba9876543210")])
        XCTAssertThrowsError(try ParametersText(parsing: "a photo of <lora:bad:x> dog\n" + fields))
        XCTAssertEqual(try AdapterRequest.extractTags(from: "a photo of <lora:sks:0.8> dog, <lora:style>").prompt, "a photo of dog,")
    }
}

// Parity of the SDXL parts with diffusers' StableDiffusionXLPipeline on the tiny random-weight fixture:
// both tokenizers and text encoders, the UNet with "text_time" added conditioning, final latents with
// injected noise and `--rng torch` images.
// Goldens: Tests/Reference/make_sdxl_goldens.py (run with /root/refenv/bin/python).
import Adapters
import Autograd
import CLIPText
import DiffusionModels
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class SDXLParityTests: XCTestCase {
    func goldens() throws -> SafeTensorsFile { try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_goldens.safetensors")) }

    func testLoadsBothTokenizersAndEncoders() throws {
        let model = try tinySDXL()
        XCTAssertTrue(model.isSDXL)
        XCTAssertTrue(model.forceZerosForEmptyPrompt)
        XCTAssertEqual(try XCTUnwrap(model.tokenizer2).encode(SDXLGolden.prompt).ids, SDXLGolden.promptIDs2)
        XCTAssertEqual(model.tokenizer.encode(SDXLGolden.prompt).ids, SDXLGolden.promptIDs)
        XCTAssertNotEqual(SDXLGolden.promptIDs.last, SDXLGolden.promptIDs2.last, "the tokenizers pad differently")
        XCTAssertEqual(model.unet.config.transformerLayersPerBlock, [1, 2])
        XCTAssertEqual(model.unet.config.textTime, UNetTextTimeEmbedding(timeEmbedDim: 8, inputDim: 64))
        XCTAssertEqual(model.vae?.config.scalingFactor, 0.13025)
    }

    /// Every hidden state of CLIPTextModel and CLIPTextModelWithProjection, and the projected pooled output.
    func testTextEncodersMatchTransformers() throws {
        let model = try tinySDXL(), g = try goldens()
        let encoder2 = try XCTUnwrap(model.textEncoder2)
        let out1 = try withNoGrad { try model.textEncoder([SDXLGolden.promptIDs]) }
        let out2 = try withNoGrad { try encoder2([SDXLGolden.promptIDs2]) }
        for (k, h) in out1.hiddenStates.enumerated() {
            try assertClose(try h.value.reshaped([77, 16]), g.tensor("te1.hidden.\(k)"), "te1 hidden \(k)")
        }
        for (k, h) in out2.text.hiddenStates.enumerated() {
            try assertClose(try h.value.reshaped([77, 16]), g.tensor("te2.hidden.\(k)"), "te2 hidden \(k)")
        }
        try assertClose(try out1.lastHiddenState.value.reshaped([77, 16]), g.tensor("te1.last"), "te1 last")
        try assertClose(try out2.textEmbeds.value.reshaped([16]), g.tensor("te2.text_embeds"), "te2 text_embeds")

        // encode(prompts:) is the penultimate states of both, concatenated, and the pooled embeds.
        let c = try withNoGrad { try model.encode(prompts: [SDXLGolden.prompt]) }
        XCTAssertEqual(c.context.shape, [1, 77, 32])
        let expected = try Layout.concatLastDim([g.tensor("te1.hidden.1"), g.tensor("te2.hidden.2")])
        try assertClose(try c.context.value.reshaped([77, 32]), expected, "context")
        try assertClose(try XCTUnwrap(c.textEmbeds).value.reshaped([16]), g.tensor("te2.text_embeds"), "text_embeds")
    }

    /// One UNet call with text_embeds and time_ids (two rows with different size conditioning).
    func testUNetWithAddedConditioningMatchesDiffusers() throws {
        let unet = try tinySDXL().unet, g = try goldens()
        let c = Conditioning(context: Variable(try g.tensor("unet.context")), textEmbeds: Variable(try g.tensor("unet.text_embeds")),
                             timeIds: try g.tensor("unet.time_ids"))
        let sample = try FeatureLayout.nhwc(fromNCHW: g.tensor("unet.sample"))
        let out = try withNoGrad { try unet(Variable(sample), timesteps: [SDXLGolden.unetT], conditioning: c) }
        try assertClose(out.value, g.tensor("unet.out"), "unet out")
        // Without the added conditioning the SDXL UNet says what it needs.
        XCTAssertThrowsError(try withNoGrad { try unet(Variable(sample), timesteps: [1], conditioning: Conditioning(context: c.context)) }) {
            XCTAssertTrue("\($0)".contains("text_time"), "\($0)")
        }
    }

    /// Euler, 10 steps, CFG 5, injected initial noise: with a negative prompt, with none (zeros), and with
    /// original size / crop / target size; within 1e-4 of the golden's scale.
    func testLatentsMatchDiffusers() throws {
        let g = try goldens()
        let initial = try FeatureLayout.nhwc(fromNCHW: g.tensor("init_latents"))
        let sizes = SizeConditioning(originalSize: [48, 64], cropTopLeft: [4, 2], targetSize: [40, 32])
        let cases: [(String, String, SizeConditioning?)] = [("euler", SDXLGolden.negative, nil), ("euler_noneg", "", nil),
                                                           ("euler_sizes", SDXLGolden.negative, sizes)]
        let pipeline = TextToImage(model: try tinySDXL())
        for (name, negative, sizeConditioning) in cases {
            let p = GenerationParameters(prompt: SDXLGolden.prompt, negativePrompt: negative, steps: 10, guidanceScale: 5,
                                         sampler: .euler, width: 32, height: 32, sizeConditioning: sizeConditioning)
            let latents = try pipeline.denoise(p, initialNoise: initial)
            try assertClose(latents, g.tensor("latents." + name), "latents \(name)")
        }
    }

    /// `--rng torch` images against diffusers' with `torch.Generator("cpu").manual_seed(seed)`: mean absolute
    /// difference ≤ 1 level of 255 (as the SD-1 parity test).
    func testTorchGeneratorImagesMatchDiffusers() throws {
        let g = try goldens()
        let pipeline = TextToImage(model: try tinySDXL())
        for (name, sampler, negative, count) in [("euler", SamplerKind.euler, SDXLGolden.negative, 1),
                                                 ("euler_a_batch2", .eulerAncestral, "", 2)] {
            let p = GenerationParameters(prompt: SDXLGolden.prompt, negativePrompt: negative, steps: 10, guidanceScale: 5,
                                         sampler: sampler, seed: SDXLGolden.seed, rng: .torch, width: 32, height: 32,
                                         numImages: count)
            let images = try pipeline.generate(p)
            let expected = try g.tensor("image." + name)   // [N, 32, 32, 3] in [0, 1]
            XCTAssertEqual(images.count, count)
            let perImage = 32 * 32 * 3
            for (i, generated) in images.enumerated() {
                let diff = expected.withUnsafeBufferPointer { e in
                    (0..<perImage).reduce(0.0) { $0 + abs(Double(generated.image.pixels[$1]) - Double(e[i * perImage + $1]) * 255) }
                } / Double(perImage)
                print("sdxl image.\(name) \(i): mean |Δ| \(diff) levels")
                XCTAssertLessThanOrEqual(diff, 1, "\(name) image \(i): mean |Δ| \(diff) levels")
            }
        }
    }

    /// A batch of requests with their own negative prompts (one empty: zeros) and size conditioning gives each
    /// request's latents as it gives them alone.
    func testBatchEqualsEachRequestAlone() throws {
        let pipeline = TextToImage(model: try tinySDXL())
        let sizes = SizeConditioning(originalSize: [48, 64], cropTopLeft: [4, 2], targetSize: [40, 32])
        let requests = [
            GenerationParameters(prompt: SDXLGolden.prompt, negativePrompt: SDXLGolden.negative, steps: 4, guidanceScale: 5,
                                 sampler: .euler, seed: 1, width: 32, height: 32, sizeConditioning: sizes),
            GenerationParameters(prompt: "a red car", negativePrompt: "", steps: 4, guidanceScale: 5, sampler: .euler,
                                 seed: 2, width: 32, height: 32, numImages: 2),
        ]
        let batch = try pipeline.denoise(batch: requests.map { BatchRequest(parameters: $0) })
        let alone = try requests.map { try pipeline.denoise($0) }
        XCTAssertEqual(batch.shape[0], 3)
        let perImage = batch.count / 3, all = batch.scalars
        XCTAssertEqual(Array(all[0..<perImage]), alone[0].scalars, "request 1")
        XCTAssertEqual(Array(all[perImage...]), alone[1].scalars, "request 2")
    }

    /// The config round-trips through diffusers' keys, and a text_time UNet without its dimensions is refused.
    func testConfigRoundTripAndRefusal() throws {
        let config = try UNet2DConditionConfig(contentsOf: URL(fileURLWithPath: TestPaths.pipelineFixture("tiny-sdxl/unet/config.json")))
        XCTAssertEqual(try UNet2DConditionConfig(jsonData: config.jsonData()), config)
        let bad = Data(#"{"addition_embed_type": "text_time", "addition_time_embed_dim": 8}"#.utf8)
        XCTAssertThrowsError(try UNet2DConditionConfig(jsonData: bad)) {
            XCTAssertTrue("\($0)".contains("projection_class_embeddings_input_dim"), "\($0)")
        }
        XCTAssertEqual(UNet2DConditionConfig.sdxl.transformerLayersPerBlock, [1, 2, 10])
    }
}

private let tinySDXLModel = Result { try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sdxl")) }

/// The tiny-sdxl fixture, loaded once.
func tinySDXL() throws -> StableDiffusionModel { try tinySDXLModel.get() }

enum SDXLGolden {
    static let info: [String: Any] = {
        let data = (try? Data(contentsOf: URL(fileURLWithPath: TestPaths.pipelineFixture("sdxl_goldens.json")))) ?? Data()
        return ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]) ?? [:]
    }()
    static var prompt: String { info["prompt"] as? String ?? "" }
    static var negative: String { info["negative"] as? String ?? "" }
    static var seed: UInt64 { UInt64(info["seed"] as? Int ?? 0) }
    static var unetT: Float { Float(info["unet_t"] as? Double ?? 0) }
    static var promptIDs: [Int] { info["prompt_ids"] as? [Int] ?? [] }
    static var promptIDs2: [Int] { info["prompt_ids_2"] as? [Int] ?? [] }
}

/// SDXL LoRA files (diffusers/PEFT keys with `text_encoder_2.`, kohya `lora_unet_`/`lora_te1_`/`lora_te2_`)
/// against diffusers' `load_lora_weights` + `set_adapters`. Goldens: Tests/Reference/make_sdxl_lora_goldens.py.
final class SDXLAdapterParityTests: XCTestCase {
    func file(_ name: String) -> String { TestPaths.pipelineFixture("sdxl-lora/\(name).safetensors") }

    /// A fresh model (adapters attach to its layers) with `adapters` loaded as (file, name, weight).
    func denoise(_ adapters: [(String, String, Float)]) throws -> (Tensor, [KeyAccounting]) {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sdxl"))
        let set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder, textEncoder2: model.textEncoder2)
        let accounting = try adapters.map { f, name, w in
            try set.load(LoRAFile(contentsOf: file(f)), name: name, unetWeight: w, textEncoderWeight: w)
        }
        let g = try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_goldens.safetensors"))
        let initial = try FeatureLayout.nhwc(fromNCHW: g.tensor("init_latents"))
        let p = GenerationParameters(prompt: SDXLGolden.prompt, negativePrompt: SDXLGolden.negative, steps: 10,
                                     guidanceScale: 5, sampler: .euler, width: 32, height: 32)
        return (try TextToImage(model: model, adapters: set).denoise(p, initialNoise: initial), accounting)
    }

    func goldens() throws -> SafeTensorsFile { try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_lora_goldens.safetensors")) }

    /// Final latents within 1e-3 of the golden's scale. Measured: 1.3e-4 with adapter a at weight 1 (its UNet
    /// scale α/r = 2 on B ~ 0.3·N(0, 1) makes the 10 CFG-5 steps amplify float rounding), 1.7e-5 for a 0.8 + b 0.5;
    /// a wrong key or alpha moves them by whole units.
    let tolerance: Float = 1e-3

    func testDiffusersAndKohyaFilesMatchDiffusers() throws {
        let expected = try goldens().tensor("latents.a")
        for f in ["a.diffusers", "a.kohya"] {
            let (latents, accounting) = try denoise([(f, "a", 1)])
            XCTAssertEqual(accounting[0].unmatched, [], f)
            XCTAssertEqual(accounting[0].modulesWithoutAdapter, [], f)
            // UNet: 4 transformers (down 1, mid 1, up 2) of 2 blocks, each block 10 layers (to_q, to_k, to_v,
            // to_out.0 of attn1 and attn2, ff × 2), each transformer proj_in/out; text encoders: 6 per layer, 2 + 3 layers.
            XCTAssertEqual(accounting[0].matchedModules, 8 * 10 + 4 * 2 + 6 * 2 + 6 * 3, f)
            try assertClose(latents, expected, tolerance: tolerance, "\(f) latents")
        }
    }

    /// Fused into all three models (UNet and both text encoders) the adapter gives diffusers' latents; unfused,
    /// the base model's.
    func testFuseAndUnfuseAcrossBothTextEncoders() throws {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sdxl"))
        let set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder, textEncoder2: model.textEncoder2)
        try set.load(LoRAFile(contentsOf: file("a.kohya")), name: "a")
        try set.fuse()
        let g = try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_goldens.safetensors"))
        let initial = try FeatureLayout.nhwc(fromNCHW: g.tensor("init_latents"))
        let p = GenerationParameters(prompt: SDXLGolden.prompt, negativePrompt: SDXLGolden.negative, steps: 10,
                                     guidanceScale: 5, sampler: .euler, width: 32, height: 32)
        let pipeline = TextToImage(model: model)
        try assertClose(try pipeline.denoise(p, initialNoise: initial), try goldens().tensor("latents.a"), tolerance: tolerance, "fused")
        set.unfuse()
        try set.remove("a")
        try assertClose(try pipeline.denoise(p, initialNoise: initial), g.tensor("latents.euler"), "unfused and removed")
    }

    func testTwoAdaptersAtOnceMatchSetAdapters() throws {
        let (latents, _) = try denoise([("a.kohya", "a", 0.8), ("b.diffusers", "b", 0.5)])
        try assertClose(latents, try goldens().tensor("latents.a08_b05"), tolerance: tolerance, "a 0.8 + b 0.5")
    }

    /// The diffusers file written with kohya keys names the encoders lora_te1_ / lora_te2_ (sd-scripts' SDXL
    /// names) and gives diffusers' latents.
    func testConvertedToKohyaKeepsSDXLNames() throws {
        let dir = try temporaryDirectory("sdxl-lora")
        let out = dir.appendingPathComponent("a-kohya.safetensors").path
        try LoRAWriter.write(try LoRAFile(contentsOf: file("a.diffusers")).modules, to: out, format: .kohya)
        let keys = try SafeTensorsFile(path: out).tensors.map(\.name)
        XCTAssertTrue(keys.contains { $0.hasPrefix("lora_te1_text_model_encoder_layers_0_") }, "\(keys.prefix(5))")
        XCTAssertTrue(keys.contains { $0.hasPrefix("lora_te2_text_model_encoder_layers_2_") })
        XCTAssertFalse(keys.contains { $0.hasPrefix("lora_te_") })
        let expected = try SafeTensorsFile(path: file("a.kohya")).tensors.map(\.name).sorted()
        XCTAssertEqual(keys.sorted(), expected)
    }

    /// The kohya file's trigger phrase and `<lora:a.kohya:1>` in a prompt resolve through the adapter session.
    func testPromptTagLoadsTheKohyaFile() throws {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sdxl"))
        var lines: [String] = []
        let session = AdapterSession(model: model) { lines.append($0) }
        let p = GenerationParameters(prompt: SDXLGolden.prompt + " <lora:a.kohya:1>", negativePrompt: SDXLGolden.negative,
                                     steps: 10, guidanceScale: 5, sampler: .euler, width: 32, height: 32)
        let tags = try AdapterRequest.extractTags(from: p.prompt)
        let requests = tags.requests.map { ($0, file($0.name)) }
        let request = try session.request(requests, for: p)
        XCTAssertEqual(request.adapterWeights?["a.kohya"]?.unet, 1)
        XCTAssertTrue(lines.contains { $0.contains("unmatched 0") }, "\(lines)")
        let g = try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_goldens.safetensors"))
        let latents = try TextToImage(model: model, adapters: session.set)
            .denoise(batch: [request], initialNoise: try FeatureLayout.nhwc(fromNCHW: g.tensor("init_latents")))
        try assertClose(latents, try goldens().tensor("latents.a"), tolerance: tolerance, "<lora:a.kohya:1>")
    }
}

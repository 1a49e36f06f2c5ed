// `--rng torch` pictures with the few-step samplers against diffusers' StableDiffusionPipeline on tiny-sd.
// Goldens: Tests/Reference/make_fewstep_goldens.py (scheduler built with `from_config(pipe.scheduler.config)`).
import Adapters
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class FewStepParityTests: XCTestCase {
    /// tiny-sd with its scheduler config's `prediction_type` replaced (the UNet is random, so v-prediction
    /// only changes how the sampler reads its output).
    private func model(prediction: PredictionType?) throws -> StableDiffusionModel {
        let m = try tinySD()
        guard let prediction else { return m }
        var config = m.schedulerConfig
        config.predictionType = prediction
        return try StableDiffusionModel(name: m.name, tokenizer: m.tokenizer, textEncoder: m.textEncoder, unet: m.unet,
                                        vae: m.vae, schedulerConfig: config)
    }

    /// LCM 4 and 6 steps (CFG 1.0 without an unconditional pass; CFG 1.5 with a negative prompt) and UniPC 8 and
    /// 10 steps, ε and v prediction: mean absolute difference ≤ 1 level of 255.
    func testTorchGeneratorImagesMatchDiffusers() throws {
        let goldens = try SafeTensorsFile(path: TestPaths.pipelineFixture("fewstep_image_goldens.safetensors"))
        let cases: [(String, SamplerKind, Int, Double, Bool, PredictionType?)] = [
            ("lcm4_cfg1", .lcm, 4, 1.0, false, nil), ("lcm6_cfg15", .lcm, 6, 1.5, true, nil),
            ("lcm4_cfg1_v", .lcm, 4, 1.0, false, .vPrediction), ("unipc8", .unipc, 8, 7.5, true, nil),
            ("unipc10_v", .unipc, 10, 7.5, true, .vPrediction),
        ]
        for (name, sampler, steps, cfg, negative, prediction) in cases {
            let pipeline = TextToImage(model: try model(prediction: prediction))
            let p = GenerationParameters(prompt: Golden.prompt, negativePrompt: negative ? Golden.negative : "",
                                         steps: steps, guidanceScale: cfg, sampler: sampler, seed: Golden.seed,
                                         rng: .torch, width: 32, height: 32)
            let image = try XCTUnwrap(try pipeline.generate(p).first)
            let expected = try goldens.tensor("image." + name)   // [1, 32, 32, 3] in [0, 1]
            XCTAssertEqual(expected.count, image.image.pixels.count, name)
            var sum = 0.0, worst = 0.0
            expected.withUnsafeBufferPointer { e in
                for i in e.indices {
                    let d = abs(Double(image.image.pixels[i]) - Double(e[i]) * 255)
                    (sum, worst) = (sum + d, max(worst, d))
                }
            }
            let mean = sum / Double(expected.count)
            XCTAssertLessThanOrEqual(mean, 1, "\(name): mean |Δ| \(mean) levels (max \(worst))")
        }
    }

    /// The A1111 names in the PNG `parameters` text, written and read back (A1111 spells them `LCM` and `UniPC`).
    func testParametersTextNamesTheSamplers() throws {
        for (kind, name) in [(SamplerKind.lcm, "LCM"), (.unipc, "UniPC")] {
            let p = GenerationParameters(prompt: "a dog", steps: 4, guidanceScale: 1, sampler: kind, seed: 3, width: 32, height: 32)
            let info = ParametersText(parameters: p, batchPosition: 0, modelName: "tiny", modelHash: nil)
            XCTAssertTrue(info.text.contains("Steps: 4, Sampler: \(name), "), info.text)
            XCTAssertEqual(try ParametersText(parsing: info.text).parameters.sampler, kind)
            XCTAssertEqual(try ParametersText(parsing: "a dog\nSteps: 4, Sampler: \(name), CFG scale: 1, Seed: 3").parameters.sampler, kind)
        }
    }
}

/// An LCM-LoRA as people have them: a LoRA on the modules diffusers' LCM distillation scripts target (attention,
/// projections, feed-forward, ResNet convs and shortcuts, down/up-samplers, time_emb_proj), in PEFT keys and in
/// kohya keys, rendered with the LCM sampler as diffusers renders it. Goldens: Tests/Reference/make_lcm_lora_goldens.py.
final class LCMLoRATests: XCTestCase {
    func testLCMLoRAFilesLoadWholeAndRenderAsDiffusers() throws {
        let folder = TestPaths.pipelineFixture("lcm-lora")
        let goldens = try SafeTensorsFile(path: folder + "/goldens.safetensors")
        func meanDifference(_ pipeline: TextToImage, _ golden: String, steps: Int, cfg: Double, negative: Bool) throws -> Double {
            let p = GenerationParameters(prompt: Golden.prompt, negativePrompt: negative ? Golden.negative : "", steps: steps,
                                         guidanceScale: cfg, sampler: .lcm, seed: Golden.seed, rng: .torch, width: 32, height: 32)
            let image = try XCTUnwrap(try pipeline.generate(p).first).image
            let expected = try goldens.tensor(golden)
            XCTAssertEqual(expected.count, image.pixels.count)
            return expected.withUnsafeBufferPointer { e in
                e.indices.reduce(0.0) { $0 + abs(Double(image.pixels[$1]) - Double(e[$1]) * 255) } / Double(e.count)
            }
        }
        let bare = TextToImage(model: try tinySD())
        XCTAssertLessThanOrEqual(try meanDifference(bare, "image.base4", steps: 4, cfg: 1, negative: false), 1)
        for file in ["lcm_lora_diffusers.safetensors", "lcm_lora_kohya.safetensors"] {
            let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))   // its own, not the shared one
            let adapters = AdapterSet(unet: model.unet, textEncoder: model.textEncoder)
            let accounting = try adapters.load(LoRAFile(contentsOf: folder + "/" + file), name: "lcm")
            XCTAssertEqual(accounting.unmatched, [], "\(file): every key applies")
            XCTAssertEqual(accounting.matchedModules, 79, "\(file): the 79 modules the LCM target list names in tiny-sd")
            let pipeline = TextToImage(model: model, adapters: adapters)
            XCTAssertLessThanOrEqual(try meanDifference(pipeline, "image.lcm4", steps: 4, cfg: 1, negative: false), 1, file)
            XCTAssertLessThanOrEqual(try meanDifference(pipeline, "image.lcm6_cfg15", steps: 6, cfg: 1.5, negative: true), 1, file)
            // the adapter matters: without it the 4-step picture is ~29 levels away from the golden
            XCTAssertGreaterThan(try meanDifference(bare, "image.lcm4", steps: 4, cfg: 1, negative: false), 10)
        }
    }
}

// train-style --pipeline SDXL_DIR on the tiny-sdxl fixture: prior preservation with class images the SDXL pipeline
// generates, both text encoders trained, gradient checkpointing and a 4-bit (NF4) UNet base in one run; the adapter
// it writes is an SDXL kohya file (lora_unet_, lora_te1_, lora_te2_) that loads back with nothing unmatched and
// re-renders with generate --lora.
@testable import CLI
import Adapters
import Pipeline
import TestSupport
import XCTest

final class SDXLTrainStyleTests: XCTestCase {
    func testTrainStyleOnSDXLWritesAnSDXLAdapter() throws {
        let out = try temporaryDirectory("sdxl-train").appendingPathComponent("out")
        let pipeline = TestPaths.pipelineFixture("tiny-sdxl")
        var code: Int32 = 1
        let err = try capturingStandardError {
            code = try TrainStyleCommand.run([TestPaths.repository("images"), "--token", "sks", "--class", "dog", "--pipeline",
                                              pipeline, "--num-class-images", "2", "--steps", "2", "--train-text-encoder",
                                              "--gradient-checkpointing", "--quantize", "nf4", "--flip", "--crop", "random",
                                              "--sample-every", "0", "--no-report", "--out", out.path])
        }
        XCTAssertEqual(code, 0, err)
        XCTAssertTrue(err.contains("images at 32 px"), "the model's default size (sample_size 16 × 2): \(err)")
        XCTAssertTrue(err.contains("UNet quantized base"), err)
        let path = out.appendingPathComponent("adapters/sks.safetensors").path
        let adapter = try LoRAFile(contentsOf: path)
        XCTAssertEqual(adapter.format, .kohya)
        XCTAssertEqual(Set(adapter.modules.map(\.component)), [.unet, .textEncoder, .textEncoder2])
        let model = try StableDiffusionModel(path: pipeline)
        let set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder, textEncoder2: model.textEncoder2)
        XCTAssertEqual(try set.load(adapter, name: "sks").unmatched, [])
        let png = out.appendingPathComponent("dog.png").path
        let genErr = capturingStandardError {
            code = GenerateCommand.main(["--pipeline", pipeline, "--lora", path, "--steps", "2", "--output", png, "a photo of sks dog"])
        }
        XCTAssertEqual(code, 0, genErr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: png), genErr)
    }
}

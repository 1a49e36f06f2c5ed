// --quantize nf4|fp4 (generate, train-style), generate --save-quantized DIR, and lora merge --into-base refusing a
// 4-bit base, on the tiny fixture.
@testable import CLI
import Adapters
import Pipeline
import TestSupport
import XCTest

final class QuantizeOptionsTests: XCTestCase {
    func testUnknownQuantizeValueIsOneLineError() throws {
        var code: Int32 = 0
        let err = capturingStandardError {
            code = GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--quantize", "int3", "a dog"])
        }
        XCTAssertNotEqual(code, 0)
        XCTAssertEqual(err.trimmingCharacters(in: .whitespacesAndNewlines), "generate: error: --quantize must be nf4 or fp4, got \"int3\"")
    }

    func testGenerateQuantizedSavesAndLoadsBack() throws {
        let dir = try temporaryDirectory("quantize-cli")
        let saved = dir.appendingPathComponent("tiny-nf4").path
        var code: Int32 = 0
        let err = capturingStandardError {
            code = GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--quantize", "nf4",
                                         "--save-quantized", saved])
        }
        XCTAssertEqual(code, 0, err)
        XCTAssertTrue(err.contains("UNet quantized base: 50 layers, 212,992 weights in 4-bit (nf4)"), err)
        XCTAssertEqual(try UNetQuantization.read(configPath: saved + "/unet/config.json")?.type, .nf4)
        let model = try StableDiffusionModel(path: saved)
        XCTAssertEqual(model.unet.quantizedSummary().layers, 50)
        // The saved folder renders; a second save to an existing folder is refused.
        let out = dir.appendingPathComponent("out").path
        XCTAssertEqual(GenerateCommand.main(["--pipeline", saved, "--out", out, "--steps", "2", "--width", "32",
                                             "--height", "32", "a dog"]), 0)
        let again = capturingStandardError {
            code = GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--quantize", "nf4",
                                         "--save-quantized", saved])
        }
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(again.contains("already exists"), again)
        // Without --quantize there is nothing 4-bit to save.
        let plain = capturingStandardError {
            code = GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"),
                                         "--save-quantized", dir.appendingPathComponent("x").path])
        }
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(plain.contains("--save-quantized needs a 4-bit UNet: add --quantize nf4|fp4"), plain)
    }
}

extension QuantizeOptionsTests {
    /// train-style on a 4-bit base: the run trains adapters on top (nonzero LoRA B after the steps) and reports
    /// the quantized base.
    func testTrainStyleOnA4BitBase() throws {
        let out = try temporaryDirectory("quantize-train").appendingPathComponent("out")
        var code: Int32 = 1
        let err = try capturingStandardError {
            code = try TrainStyleCommand.run([TestPaths.repository("images"), "--token", "sks", "--pipeline",
                                              TestPaths.pipelineFixture("tiny-sd"), "--quantize", "nf4", "--steps", "2",
                                              "--no-prior", "--resolution", "16", "--sample-every", "0", "--no-report",
                                              "--out", out.path])
        }
        XCTAssertEqual(code, 0, err)
        XCTAssertTrue(err.contains("UNet quantized base: 50 layers"), err)
        let adapter = try LoRAFile(contentsOf: out.appendingPathComponent("adapters/sks.safetensors").path)
        let ups = adapter.modules.filter { $0.component == .unet }.map { $0.up.scalars.map(abs).max() ?? 0 }
        XCTAssertTrue(ups.contains { $0 > 0 }, "LoRA up matrices moved on the 4-bit base")
    }
}

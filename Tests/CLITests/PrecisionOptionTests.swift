// generate --precision fp32|bf16 on the tiny fixture: an unknown value is one error line; bf16 writes a picture
// within a few levels of fp32's and records `Precision: bf16` in its parameters (where the CPU runs BF16; elsewhere
// the run says it computes in fp32 and the pixels are fp32's).
@testable import CLI
import Adapters
import PNGImage
import TensorCore
import TestSupport
import XCTest

final class PrecisionOptionTests: XCTestCase {
    func testUnknownPrecisionIsOneLineError() throws {
        var code: Int32 = 0
        let err = capturingStandardError {
            code = GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--precision", "fp16", "a dog"])
        }
        XCTAssertNotEqual(code, 0)
        XCTAssertEqual(err.trimmingCharacters(in: .whitespacesAndNewlines),
                       "generate: error: --precision must be fp32 or bf16, got \"fp16\"")
    }

    func testBF16PictureIsCloseToFP32AndSaysSo() throws {
        let out = try temporaryDirectory("precision-cli")
        func render(_ precision: String) throws -> (DecodedPNG, String) {
            let file = out.appendingPathComponent(precision + ".png").path
            var code: Int32 = 1
            let err = capturingStandardError {
                code = GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", file, "--width", "32",
                                             "--height", "32", "--seed", "7", "--steps", "4", "--precision", precision, "a dog"])
            }
            XCTAssertEqual(code, 0, err)
            return (try PNG.read(path: file), err)
        }
        let (f32, _) = try render("fp32"), (bf16, note) = try render("bf16")
        let text = bf16.text.map(\.text).joined()
        XCTAssertFalse(f32.text.map(\.text).joined().contains("Precision"))
        guard BFloat16Compute.isAvailable else {
            XCTAssertTrue(note.contains("computing in fp32"), note)
            XCTAssertEqual(bf16.image, f32.image)
            return
        }
        XCTAssertTrue(text.contains("Precision: bf16"), text)
        let differences = zip(bf16.image.pixels, f32.image.pixels).map { abs(Int($0) - Int($1)) }
        XCTAssertGreaterThan(differences.max() ?? 0, 0)                       // BF16 products did run
        XCTAssertLessThan(Double(differences.reduce(0, +)) / Double(differences.count), 4)   // mean, 8-bit levels
    }

    /// train-style on the embedded model with its base in BF16: adapters train on top (its RGB output convolution
    /// and stride-2 convolutions take the F32 input gradient from the unpacked weight).
    func testTrainStyleOnABF16Base() throws {
        let out = try temporaryDirectory("precision-train").appendingPathComponent("out")
        var code: Int32 = 1
        let err = try capturingStandardError {
            code = try TrainStyleCommand.run([TestPaths.repository("images"), "--token", "sks", "--pipeline",
                                              TestPaths.repository("pipelines/toy"), "--precision", "bf16", "--steps", "2",
                                              "--no-prior", "--sample-every", "0", "--no-report", "--out", out.path])
        }
        XCTAssertEqual(code, 0, err)
        let adapter = try LoRAFile(contentsOf: out.appendingPathComponent("adapters/sks.safetensors").path)
        let ups = adapter.modules.filter { $0.component == .unet }.map { $0.up.scalars.map(abs).max() ?? 0 }
        XCTAssertTrue(ups.contains { $0 > 0 }, "LoRA up matrices moved on the BF16 base")
    }
}

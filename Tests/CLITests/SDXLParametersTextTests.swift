// SDXL's size conditioning in the PNG `parameters` text: generate --original-size / --crop-coords / --target-size
// on tiny-sdxl writes them (`Original size: 64x48`, `Crop coords: "8,0"`, `Target size: 32x32`), and
// `--from-png` re-renders the same picture from them; a chunk without them reads back as diffusers' defaults.
@testable import CLI
import Foundation
import PNGImage
import Pipeline
import TestSupport
import XCTest

final class SDXLParametersTextTests: XCTestCase {
    func testSizeConditioningIsRecordedAndReRendered() throws {
        let out = try temporaryDirectory("sdxl-params")
        let pipeline = TestPaths.pipelineFixture("tiny-sdxl")
        let first = out.appendingPathComponent("first.png").path
        XCTAssertEqual(GenerateCommand.main(["--pipeline", pipeline, "--steps", "3", "--seed", "5", "--original-size", "64x48",
                                             "--crop-coords", "8,0", "--target-size", "32x32", "--output", first, "a red car"]), 0)
        let png = try PNG.read(path: first)
        let text = try XCTUnwrap(png.text.first { $0.keyword == "parameters" }).text
        XCTAssertTrue(text.contains("Original size: 64x48, Crop coords: \"8,0\", Target size: 32x32"), text)
        let info = try ParametersText(parsing: text)
        XCTAssertEqual(info.parameters.sizeConditioning,
                       SizeConditioning(originalSize: [64, 48], cropTopLeft: [8, 0], targetSize: [32, 32]))
        XCTAssertEqual(info.text, text, "the text round-trips")

        let again = out.appendingPathComponent("again.png").path
        XCTAssertEqual(GenerateCommand.main(["--pipeline", pipeline, "--from-png", first, "--output", again]), 0)
        XCTAssertEqual(try PNG.read(path: again).image, png.image, "--from-png re-renders with the recorded conditioning")
        let plain = out.appendingPathComponent("plain.png").path
        XCTAssertEqual(GenerateCommand.main(["--pipeline", pipeline, "--steps", "3", "--seed", "5", "--output", plain, "a red car"]), 0)
        XCTAssertNotEqual(try PNG.read(path: plain).image, png.image, "the conditioning changes the picture")
        let plainText = try XCTUnwrap(try PNG.read(path: plain).text.first { $0.keyword == "parameters" }).text
        XCTAssertFalse(plainText.contains("Original size"), plainText)
        XCTAssertNil(try ParametersText(parsing: plainText).parameters.sizeConditioning)
        XCTAssertThrowsError(try ParametersText(parsing: "x\nSteps: 3, Sampler: Euler, Seed: 1, Original size: 64")) {
            XCTAssertTrue("\($0)".contains("Original size"), "\($0)")
        }
    }
}

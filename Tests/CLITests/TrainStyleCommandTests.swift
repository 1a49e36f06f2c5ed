// `train-style` through its library entry point: a short run on the tiny pixel fixture writes an adapter that
// `generate` then applies by its trigger word, and the per-model default settings.
import Adapters
@testable import CLI
import PNGImage
import Pipeline
import Training
import TestSupport
import XCTest

final class TrainStyleCommandTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("train-style-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    func testShortRunWritesAnAdapterThatGenerateAppliesByItsTriggerWord() throws {
        let images = TestPaths.repository("images")
        let out = root.appendingPathComponent("out")
        let code = try TrainStyleCommand.run([images, "--token", "sks", "--class", "dog", "--pipeline", TestPaths.pipelineFixture("tiny-pixel"),
                                              "--steps", "3", "--num-class-images", "2", "--resolution", "16", "--sample-every", "2",
                                              "--no-report", "--out", out.path])
        XCTAssertEqual(code, 0)
        let adapter = out.appendingPathComponent("adapters/sks.safetensors").path
        let file = try LoRAFile(contentsOf: adapter)
        XCTAssertEqual(file.triggerPhrase, "sks dog")
        XCTAssertEqual(file.metadata["ss_network_dim"], "16", "the picture-world preset's rank")
        XCTAssertTrue(file.modules.contains { $0.component == .textEncoder }, "the preset trains the text encoder")
        XCTAssertTrue(file.modules.contains { $0.down.shape.count == 4 }, "the preset trains conv (LoCon) adapters")
        let runs = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("runs").path)
        XCTAssertEqual(runs.count, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("runs/\(runs[0])/loss.png").path))
        let grid = try PNG.read(path: out.appendingPathComponent("runs/\(runs[0])/samples-000002.png").path).image
        XCTAssertGreaterThan(grid.width, 16, "a sample grid of several images")

        // generate "a photo of sks dog" with the adapter folder: the trigger word applies it, and the PNG says so.
        let pictures = root.appendingPathComponent("pictures")
        XCTAssertEqual(GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-pixel"), "--out", pictures.path, "--steps", "2",
                                             "--width", "16", "--height", "16", "--seed", "1",
                                             "--lora-dir", out.appendingPathComponent("adapters").path, "a photo of sks dog"]), 0)
        let png = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: pictures.path).first { $0.hasSuffix(".png") })
        let text = try XCTUnwrap(try PNG.read(path: pictures.appendingPathComponent(png).path).text
            .first { $0.keyword == "parameters" }).text
        XCTAssertTrue(text.contains("<lora:sks:1.0>") && text.contains("Lora hashes: \"sks: "), text)
    }

    func testDefaultsFollowTheBaseModel() throws {
        let images = TestPaths.repository("images")
        let pixel = try TrainStyleArguments([images, "--token", "sks", "--pipeline", TestPaths.pipelineFixture("tiny-pixel")]).config
        XCTAssertEqual([pixel.loop.steps, pixel.rank], [1500, 16])
        XCTAssertEqual(pixel.loop.learningRate, 1e-3)
        XCTAssertEqual(pixel.targets, .conv)
        XCTAssertTrue(pixel.trainTextEncoder)
        XCTAssertEqual(pixel.captionDropout, 0.1)
        XCTAssertEqual(pixel.loop.sampleEvery, 500)
        let latent = try TrainStyleArguments([images, "--token", "sks", "--pipeline", TestPaths.pipelineFixture("tiny-sd")]).config
        XCTAssertEqual([latent.loop.steps, latent.rank], [400, 4])
        XCTAssertEqual(latent.loop.learningRate, 1e-4)
        XCTAssertEqual(latent.targets, .attention)
        XCTAssertFalse(latent.trainTextEncoder)
        XCTAssertNil(latent.captionDropout)
        XCTAssertEqual(latent.loop.sampleEvery, 0)
        // Explicit options win over either preset.
        let mine = try TrainStyleArguments([images, "--token", "sks", "--pipeline", TestPaths.pipelineFixture("tiny-pixel"), "--unet-only",
                                            "--rank", "2", "--targets", "attention", "--steps", "7"]).config
        XCTAssertEqual([mine.loop.steps, mine.rank], [7, 2])
        XCTAssertEqual(mine.targets, .attention)
        XCTAssertFalse(mine.trainTextEncoder)
        XCTAssertTrue(try TrainStyleArguments([images, "--token", "sks", "--pipeline", TestPaths.pipelineFixture("tiny-sd"),
                                               "--train-text-encoder"]).config.trainTextEncoder)
        XCTAssertThrowsError(try TrainStyleArguments([images, "--token", "sks", "--train-text-encoder", "--unet-only"]))
    }
}

// generate's few-step options: --fast, --sampler lcm|unipc, --taesd, --vae-tiling, on the tiny fixture.
@testable import CLI
import PNGImage
import Pipeline
import Schedulers
import TestSupport
import XCTest

final class FewStepOptionsTests: XCTestCase {
    private func parse(_ argv: [String]) throws -> GenerationParameters {
        let args = try ParsedArguments(argv, options: GenerateCommand.options, flagNames: GenerateCommand.flagNames,
                                       aliases: GenerateCommand.aliases)
        return try GenerateCommand.overridden(GenerationParameters(prompt: "a dog"), args, defaultSeed: 1)
    }

    func testFastIsLCMFourStepsWithoutGuidanceAndExplicitOptionsWin() throws {
        let fast = try parse(["--fast"])
        XCTAssertEqual([fast.sampler.rawValue, "\(fast.steps)", "\(fast.guidanceScale)"], ["lcm", "4", "1.0"])
        let six = try parse(["--fast", "--steps", "6", "--cfg", "1.5"])
        XCTAssertEqual([six.sampler.rawValue, "\(six.steps)", "\(six.guidanceScale)"], ["lcm", "6", "1.5"])
        XCTAssertEqual(try parse(["--sampler", "UniPC"]).sampler, .unipc)
    }

    /// --guidance-rescale (diffusers' spelling guidance_rescale, A1111's cfg-rescale) takes φ in [0, 1].
    func testGuidanceRescaleOption() throws {
        XCTAssertEqual(try parse(["--guidance-rescale", "0.7"]).guidanceRescale, 0.7)
        XCTAssertEqual(try parse(["--guidance_rescale", "1"]).guidanceRescale, 1)
        XCTAssertEqual(try parse(["--cfg-rescale", "0.5"]).guidanceRescale, 0.5)
        XCTAssertEqual(try parse([]).guidanceRescale, 0)
        XCTAssertThrowsError(try parse(["--guidance-rescale", "1.5"])) { XCTAssertTrue("\($0)".contains("[0, 1]"), "\($0)") }
    }

    func testWritesPNGsWithTheTinyAutoencoderAndTiling() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fewstep-tests-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let base = ["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", out.path, "--width", "32", "--height", "32",
                    "--seed", "5"]
        XCTAssertEqual(GenerateCommand.main(base + ["--fast", "--taesd", TestPaths.pipelineFixture("tiny-taesd"), "a dog"]), 0)
        XCTAssertEqual(GenerateCommand.main(base + ["--sampler", "unipc", "--steps", "3", "--vae-tiling", "a dog"]), 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(files.count, 2)
        let texts = try files.map { try PNG.read(path: out.appendingPathComponent($0).path).text.map(\.text).joined() }
        XCTAssertTrue(texts.contains { $0.contains("Steps: 4, Sampler: LCM, ") && $0.contains("CFG scale: 1") }, "\(texts)")
        XCTAssertTrue(texts.contains { $0.contains("Steps: 3, Sampler: UniPC, ") }, "\(texts)")
        XCTAssertNotEqual(GenerateCommand.main(base + ["--taesd", out.path, "a dog"]), 0)   // no config.json there
    }

    /// `--vae DIR` with a diffusers AutoencoderTiny folder decodes as `--taesd DIR`; `--fast` picks up the model
    /// folder's `taesd/` subfolder (the same pixels as `--fast --taesd` with it), and plain runs ignore it.
    func testVAEOptionTakesATinyAutoencoderAndFastUsesTheModelFoldersTAESD() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("fewstep-taesd-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: root) }
        let model = root.appendingPathComponent("model"), out = root.appendingPathComponent("out")
        try fm.createDirectory(at: model, withIntermediateDirectories: true)
        let tinySD = TestPaths.pipelineFixture("tiny-sd"), taesd = TestPaths.pipelineFixture("tiny-taesd")
        for entry in try fm.contentsOfDirectory(atPath: tinySD) {
            try fm.createSymbolicLink(atPath: model.appendingPathComponent(entry).path, withDestinationPath: tinySD + "/" + entry)
        }
        try fm.createSymbolicLink(atPath: model.appendingPathComponent("taesd").path, withDestinationPath: taesd)
        XCTAssertTrue(ModelSource.isTinyAutoencoderFolder(taesd))
        XCTAssertFalse(ModelSource.isTinyAutoencoderFolder(tinySD + "/vae"))
        XCTAssertNil(ModelSource.bundledTinyAutoencoderFolder(modelPath: tinySD))
        XCTAssertNotNil(ModelSource.bundledTinyAutoencoderFolder(modelPath: model.path))
        // where a full VAE is needed (ModelSource, as train-style loads), a TAESD folder is refused by name
        XCTAssertThrowsError(try ModelSource(path: tinySD, vae: taesd).load()) {
            XCTAssertTrue("\($0)".contains("tiny autoencoder"), "\($0)")
        }
        func render(_ pipeline: String, _ extra: [String], _ name: String) throws -> Image {
            let file = out.appendingPathComponent(name + ".png").path
            XCTAssertEqual(GenerateCommand.main(["--pipeline", pipeline, "--out", file, "--width", "32", "--height", "32",
                                                 "--seed", "5", "--steps", "2"] + extra + ["a dog"]), 0)
            return try PNG.read(path: file).image
        }
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        let explicit = try render(tinySD, ["--fast", "--taesd", taesd], "explicit")
        let viaVAE = try render(tinySD, ["--fast", "--vae", taesd], "via-vae")
        let bundled = try render(model.path, ["--fast"], "bundled")
        let fullVAE = try render(tinySD, ["--fast"], "full-vae")
        let plain = try render(model.path, ["--sampler", "lcm", "--cfg", "1"], "plain")
        XCTAssertEqual(viaVAE, explicit)
        XCTAssertEqual(bundled, explicit)
        XCTAssertNotEqual(fullVAE, explicit)
        XCTAssertEqual(plain, fullVAE)   // without --fast the folder's taesd/ is not used
        XCTAssertNotEqual(GenerateCommand.main(["--pipeline", tinySD, "--out", out.path, "--vae", taesd, "--taesd", taesd, "a dog"]), 0)
    }

    /// `--preview taesd`: OUT/preview.png is refreshed during the run; after the last step it is the final latents
    /// decoded by TAESD, so with `--taesd` it equals the written picture. Without a tiny autoencoder it is refused.
    func testPreviewWritesTheTinyAutoencodersPicture() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fewstep-preview-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let base = ["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", out.path, "--width", "32", "--height", "32",
                    "--seed", "5", "--steps", "3"]
        let taesd = TestPaths.pipelineFixture("tiny-taesd")
        XCTAssertEqual(GenerateCommand.main(base + ["--taesd", taesd, "--preview", "taesd", "--preview-every", "2", "a dog"]), 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(files.count, 2, "\(files)")
        let preview = try PNG.read(path: out.appendingPathComponent("preview.png").path).image
        let final = try PNG.read(path: out.appendingPathComponent(try XCTUnwrap(files.first { $0 != "preview.png" })).path).image
        XCTAssertEqual(preview, final)
        XCTAssertNotEqual(GenerateCommand.main(base + ["--preview", "taesd", "a dog"]), 0)              // no TAESD
        XCTAssertNotEqual(GenerateCommand.main(base + ["--taesd", taesd, "--preview", "vae", "a dog"]), 0)  // unknown kind
        XCTAssertNotEqual(GenerateCommand.main(base + ["--preview-every", "2", "a dog"]), 0)
    }

    /// train-style `--preview taesd`: the sample grids' decoder is `--taesd DIR` or the model folder's `taesd/`.
    func testTrainStylePreviewTakesTheTinyAutoencoder() throws {
        let images = TestPaths.repository("images"), tinySD = TestPaths.pipelineFixture("tiny-sd")
        let taesd = TestPaths.pipelineFixture("tiny-taesd")
        let base = [images, "--token", "sks", "--pipeline", tinySD]
        XCTAssertNil(try TrainStyleArguments(base).config.previewTinyAutoencoder)
        let given = try TrainStyleArguments(base + ["--preview", "taesd", "--taesd", taesd]).config.previewTinyAutoencoder
        XCTAssertEqual(given, URL(fileURLWithPath: taesd).standardizedFileURL.path)
        XCTAssertThrowsError(try TrainStyleArguments(base + ["--preview", "taesd"])) {
            XCTAssertTrue("\($0)".contains("--taesd DIR or the model folder's taesd/"), "\($0)")
        }
        XCTAssertThrowsError(try TrainStyleArguments(base + ["--preview", "vae"])) { XCTAssertTrue("\($0)".contains("taesd"), "\($0)") }
    }
}

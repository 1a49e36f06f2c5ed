// `train-style` through its library entry point: a short run on the tiny pixel fixture writes an adapter that
// `generate` then applies by its trigger word, and the per-model default settings.
import Adapters
@testable import CLI
import PNGImage
import Pipeline
import Training
import TestSupport
import Judge
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
        XCTAssertEqual(file.metadata["ss_network_dim"], String(TrainingPreset.pictureWorld.rank), "the picture-world preset's rank")
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
        let pixelArguments = [images, "--token", "sks", "--pipeline", TestPaths.pipelineFixture("tiny-pixel")]
        let pixel = try TrainStyleArguments(pixelArguments).config
        XCTAssertEqual([pixel.loop.steps, pixel.rank], [1500, 8])
        XCTAssertEqual(pixel.loop.learningRate, 1.5e-3)
        XCTAssertEqual(pixel.loop.decay, .cosine)
        XCTAssertEqual(pixel.targets, .conv)
        XCTAssertTrue(pixel.trainTextEncoder)
        XCTAssertEqual(pixel.captionDropout, 0.1, "no class: no prior preservation, caption dropout on")
        XCTAssertNil(pixel.priorTarget)
        XCTAssertEqual(pixel.loop.sampleEvery, 500)
        XCTAssertEqual(pixel.snrGamma, 5, "min-SNR-5, the weighting the embedded base was trained with")
        XCTAssertNil(try TrainStyleArguments(pixelArguments + ["--snr-gamma", "0"]).config.snrGamma, "0: every timestep weighs the same")
        XCTAssertEqual(try TrainStyleArguments(pixelArguments + ["--min_snr_gamma", "2.5"]).config.snrGamma, 2.5, "kohya's spelling")
        XCTAssertThrowsError(try TrainStyleArguments(pixelArguments + ["--snr-gamma", "-1"]))
        // With a class, prior preservation toward the base's predictions and no caption dropout; either can be asked for.
        let subject = [images, "--token", "sks", "--class", "dog", "--pipeline", TestPaths.pipelineFixture("tiny-pixel")]
        let prior = try TrainStyleArguments(subject).config
        XCTAssertEqual(prior.priorTarget, .base)
        XCTAssertNil(prior.captionDropout)
        XCTAssertEqual(prior.priorWeight, Float(TrainingPreset.pictureWorld.priorWeight))
        let dreamBooth = try TrainStyleArguments(subject + ["--prior-target", "noise", "--caption-dropout", "0.1", "--prior-weight", "1"]).config
        XCTAssertNil(dreamBooth.priorTarget)
        XCTAssertEqual(dreamBooth.captionDropout, 0.1)
        XCTAssertEqual(dreamBooth.priorWeight, 1)
        let noPrior = try TrainStyleArguments(subject + ["--no-prior"]).config
        XCTAssertNil(noPrior.priorTarget)
        XCTAssertEqual(noPrior.captionDropout, 0.1)
        XCTAssertThrowsError(try TrainStyleArguments(subject + ["--prior-target", "images"]))
        let latent = try TrainStyleArguments([images, "--token", "sks", "--pipeline", TestPaths.pipelineFixture("tiny-sd")]).config
        XCTAssertEqual([latent.loop.steps, latent.rank], [400, 4])
        XCTAssertEqual(latent.loop.learningRate, 1e-4)
        XCTAssertEqual(latent.loop.decay, .constant)
        XCTAssertEqual(latent.targets, .attention)
        XCTAssertFalse(latent.trainTextEncoder)
        XCTAssertNil(latent.captionDropout)
        XCTAssertNil(latent.snrGamma)
        let latentPrior = try TrainStyleArguments([images, "--token", "sks", "--class", "dog", "--pipeline",
                                                   TestPaths.pipelineFixture("tiny-sd")]).config
        XCTAssertNil(latentPrior.priorTarget, "latent models: DreamBooth's loss on the class images, λ 1")
        XCTAssertEqual(latentPrior.priorWeight, 1)
        XCTAssertNil(latentPrior.captionDropout)
        XCTAssertEqual(latent.loop.sampleEvery, 0)
        // Explicit options win over either preset.
        let mine = try TrainStyleArguments([images, "--token", "sks", "--pipeline", TestPaths.pipelineFixture("tiny-pixel"), "--unet-only",
                                            "--rank", "2", "--targets", "attention", "--steps", "7"]).config
        XCTAssertEqual([mine.loop.steps, mine.rank], [7, 2])
        XCTAssertEqual(mine.targets, .attention)
        XCTAssertEqual(try TrainStyleArguments(pixelArguments + ["--lr-schedule", "constant"]).config.loop.decay, .constant)
        XCTAssertFalse(mine.trainTextEncoder)
        XCTAssertTrue(try TrainStyleArguments([images, "--token", "sks", "--pipeline", TestPaths.pipelineFixture("tiny-sd"),
                                               "--train-text-encoder"]).config.trainTextEncoder)
        XCTAssertThrowsError(try TrainStyleArguments([images, "--token", "sks", "--train-text-encoder", "--unet-only"]))
    }
    /// A style run on a picture-world model ends with the style report in its run folder (here with a judge of
    /// random weights: the structure, not the numbers).
    func testStyleRunEndsWithTheStyleReport() throws {
        let out = root.appendingPathComponent("out"), judge = root.appendingPathComponent("judge.safetensors").path
        try Judge(network: JudgeNetwork()).save(to: judge)
        let code = try TrainStyleCommand.run([TestPaths.repository("examples/sepia"), "--token", "sepia", "--style",
                                              "--pipeline", TestPaths.pipelineFixture("tiny-pixel"), "--steps", "2",
                                              "--resolution", "16", "--sample-every", "0", "--judge", judge,
                                              "--report-count", "2", "--out", out.path])
        XCTAssertEqual(code, 0)
        let runs = try FileManager.default.contentsOfDirectory(at: out.appendingPathComponent("runs"), includingPropertiesForKeys: nil)
        let report = try JSONDecoder().decode(StyleReport.self, from: Data(contentsOf: runs[0].appendingPathComponent("style-report.json")))
        XCTAssertEqual(report.token, "sepia")
        XCTAssertEqual(report.reading, .sepia, "the sepia examples read as sepia prints")
        XCTAssertEqual(report.instancesRead, 1)
        XCTAssertTrue(report.prompts.allSatisfy { $0.hasSuffix(" in the style of sepia") })
        XCTAssertFalse(FileManager.default.fileExists(atPath: runs[0].appendingPathComponent("report.json").path))
    }

    /// A short run on the tiny pixel fixture (no class images, no grids, no report) into `out`.
    func train(_ out: URL, _ extra: [String] = []) throws -> Int32 {
        try TrainStyleCommand.run([TestPaths.repository("images"), "--token", "sks", "--pipeline", TestPaths.pipelineFixture("tiny-pixel"),
                                   "--steps", "2", "--no-prior", "--resolution", "16", "--sample-every", "0", "--no-report",
                                   "--out", out.path] + extra)
    }

    /// `--resume RUN` writes into the run's own outputs root (never the working folder's outputs/), extends the run
    /// with `--steps N`, refuses fewer steps or changed settings, and a second adapter of the same token keeps the first.
    func testResumeUsesTheRunsOutputsRootAndExtendsTheRun() throws {
        let out = root.appendingPathComponent("out")
        XCTAssertEqual(try train(out), 0)
        let adapter = out.appendingPathComponent("adapters/sks.safetensors")
        let first = try Data(contentsOf: adapter)
        let run = out.appendingPathComponent("runs").appendingPathComponent(
            try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("runs").path).first))

        let resumed = try TrainStyleArguments(["--resume", run.path, "--steps", "3", "--no-report"])
        XCTAssertEqual(resumed.out.standardizedFileURL.path, out.standardizedFileURL.path)
        XCTAssertEqual(resumed.config.loop.steps, 3)
        XCTAssertEqual(resumed.resumeStep, 2)
        XCTAssertThrowsError(try TrainStyleArguments(["--resume", run.path, "--steps", "1"])) {
            XCTAssertEqual(($0 as? CommandLineError)?.exitCode, 2)
        }
        XCTAssertThrowsError(try TrainStyleArguments(["--resume", run.path, "--lr", "1"])) {
            XCTAssertTrue("\($0)".contains("--lr"), "\($0)")
        }
        let elsewhere = root.appendingPathComponent("run-outside-runs")
        try FileManager.default.copyItem(at: run, to: elsewhere)
        XCTAssertThrowsError(try TrainStyleArguments(["--resume", elsewhere.path])) { XCTAssertTrue("\($0)".contains("--out"), "\($0)") }

        var code: Int32 = -1
        let said = try capturingStandardError { code = try TrainStyleCommand.run(["--resume", run.path, "--steps", "3", "--no-report"]) }
        XCTAssertEqual(code, 0)
        XCTAssertTrue(said.contains("resuming \(run.path) from step 2 of 3"), said)
        XCTAssertTrue(said.contains("kept it as \(out.appendingPathComponent("adapters/previous/sks-1.safetensors").path)"), said)
        let extended = try LoRAFile(contentsOf: adapter.path)
        XCTAssertEqual(extended.metadata["ss_steps"], "3")
        let kept = out.appendingPathComponent("adapters/previous/sks-1.safetensors")
        XCTAssertEqual(try Data(contentsOf: kept), first, "the earlier adapter of the same token is kept")
        XCTAssertEqual(try train(out), 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("adapters/previous/sks-2.safetensors").path))
    }

    /// A token that cannot name a file or is more than one word, and an output root that is a file, fail before any work.
    func testTokenAndOutputFoldersAreCheckedBeforeTraining() throws {
        let images = TestPaths.repository("images")
        for token in ["a/b", "my dog", ".hidden", ""] {
            XCTAssertThrowsError(try TrainStyleArguments([images, "--token", token, "--pipeline", TestPaths.pipelineFixture("tiny-pixel")]),
                                 token) { XCTAssertEqual(($0 as? CommandLineError)?.exitCode, 2, token) }
        }
        XCTAssertNoThrow(try TrainStyleArguments([images, "--token", "sks_2-b", "--pipeline", TestPaths.pipelineFixture("tiny-pixel")]))
        let file = root.appendingPathComponent("a-file")
        try Data([0]).write(to: file)
        XCTAssertThrowsError(try train(file)) { error in
            XCTAssertTrue("\(error)".contains(file.path) && "\(error)".contains("is a file"), "\(error)")
        }
        let o = root.appendingPathComponent("o")
        XCTAssertThrowsError(try TrainStyleCommand.run([root.appendingPathComponent("no-images").path, "--token", "x", "--pipeline",
                                                        TestPaths.pipelineFixture("tiny-pixel"), "--no-prior", "--no-report", "--out", o.path])) {
            XCTAssertTrue("\($0)".contains("no-images"), "\($0)")
        }
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: o.appendingPathComponent("runs").path)) ?? [], [])
        let style = try TrainStyleArguments([images, "--token", "ink", "--style", "--class", "dog", "--out", o.path,
                                             "--pipeline", TestPaths.pipelineFixture("tiny-pixel")])
        let said = try capturingStandardError { _ = try TrainStyleCommand.checkBeforeWork(style, console: TrainingConsole(live: false)) }
        XCTAssertTrue(said.contains("warning: --class dog with --style"), said)
    }
    /// diffusers' trainer names map onto train-style's options.
    func testDiffusersTrainerNames() throws {
        let c = try TrainStyleArguments(["--instance_data_dir", TestPaths.repository("images"), "--token", "sks", "--class", "dog",
                                         "--pretrained_model_name_or_path", TestPaths.pipelineFixture("tiny-pixel"),
                                         "--max_train_steps", "7", "--learning_rate", "0.01", "--train_batch_size", "2",
                                         "--num_class_images", "3", "--prior_loss_weight", "0.5", "--lr_scheduler", "cosine",
                                         "--checkpointing_steps", "5", "--gradient_accumulation_steps", "2"]).config
        XCTAssertEqual(try TrainStyleArguments([TestPaths.repository("images"), "--token", "sks", "-o", "/tmp/x",
                                                "--pipeline", TestPaths.pipelineFixture("tiny-pixel")]).out.path, "/tmp/x")
        XCTAssertEqual(c.imagesDirectory, TestPaths.repository("images"))
        XCTAssertEqual([c.loop.steps, c.batch, c.numClassImages, c.loop.saveEvery, c.loop.gradientAccumulation], [7, 2, 3, 5, 2])
        XCTAssertEqual(c.loop.learningRate, 0.01)
        XCTAssertEqual(c.priorWeight, 0.5)
        XCTAssertEqual(c.loop.decay, .cosine)
    }
    /// Without --pipeline, train-style finds the embedded model where generate does (not only in the working folder).
    func testFindsTheEmbeddedModelAsGenerateDoes() throws {
        let c = try TrainStyleArguments([TestPaths.repository("images"), "--token", "sks"]).config
        XCTAssertEqual(c.pipeline, try GenerateCommand.pipelineFolder(nil))
        XCTAssertTrue(DiffusersFolder.exists(at: c.pipeline), c.pipeline)
    }
}




// train-style's kohya options on the command line: the optimiser and its arguments, the schedules' parameters,
// --init-lora, --save-precision, --sample-prompts, --validation-split; and a short run that uses them all.
import Adapters
@testable import CLI
import NN
import PNGImage
import SafeTensors
import TestSupport
import Training
import XCTest

final class TrainStyleKohyaOptionsTests: XCTestCase {
    let images = TestPaths.repository("images")
    let pixel = TestPaths.pipelineFixture("tiny-pixel")

    private func parse(_ extra: [String], pipeline: String? = nil) throws -> StyleTrainingConfig {
        try TrainStyleArguments([images, "--token", "sks", "--pipeline", pipeline ?? pixel] + extra).config
    }

    private func assertUsage(_ extra: [String], mentions text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(extra), file: file, line: line) {
            XCTAssertTrue("\($0)".contains(text), "\($0)", file: file, line: line)
        }
    }

    func testOptimizerOptions() throws {
        let adamw = try parse([])
        XCTAssertNil(adamw.loop.optimizer)
        XCTAssertEqual(adamw.loop.optimizerKind, .adamw)

        let prodigy = try parse(["--optimizer", "prodigy"])
        XCTAssertEqual(prodigy.loop.optimizer, .prodigy(ProdigySettings()))
        XCTAssertEqual(prodigy.loop.learningRate, 1, "kohya's users run Prodigy at lr 1")
        XCTAssertEqual(prodigy.textEncoderLearningRate, 1, "one rate for every group")

        let tuned = try parse(["--optimizer_type", "Prodigy", "--optimizer_args",
                               "decouple=True weight_decay=0.01 use_bias_correction=True safeguard_warmup=True d_coef=2 betas=0.9,0.99",
                               "--lr", "0.5"])
        var expected = ProdigySettings()
        (expected.weightDecay, expected.useBiasCorrection, expected.safeguardWarmup, expected.dCoef) = (0.01, true, true, 2)
        expected.beta2 = 0.99
        XCTAssertEqual(tuned.loop.optimizer, .prodigy(expected))
        XCTAssertEqual([tuned.loop.learningRate, tuned.textEncoderLearningRate], [0.5, 0.5])

        let adafactor = try parse(["--optimizer", "adafactor", "--optimizer-args", "scale_parameter=False relative_step=False warmup_init=False",
                                   "--lr", "1e-4"])
        var a = AdafactorSettings()
        (a.scaleParameter, a.relativeStep) = (false, false)
        XCTAssertEqual(adafactor.loop.optimizer, .adafactor(a))
        XCTAssertEqual(try parse(["--optimizer", "adafactor"]).loop.optimizer, .adafactor(AdafactorSettings()),
                       "relative_step on unless set, as kohya")
        XCTAssertEqual(try parse(["--optimizer-args", "weight_decay=0.1"]).loop.adamW.weightDecay, 0.1)

        assertUsage(["--optimizer", "sgd"], mentions: "--optimizer must be adamw, prodigy or adafactor")
        assertUsage(["--optimizer", "prodigy", "--optimizer-args", "d_coef"], mentions: "KEY=VALUE")
        assertUsage(["--optimizer", "prodigy", "--optimizer-args", "momentum=0.9"], mentions: "prodigy has no option momentum")
        assertUsage(["--optimizer", "prodigy", "--optimizer-args", "decouple=maybe"], mentions: "True or False")
        assertUsage(["--optimizer", "prodigy", "--optimizer-args", "d0=0"], mentions: "d0 must be positive")
        assertUsage(["--optimizer", "adafactor", "--optimizer-args", "eps=1e-30"], mentions: "2 comma-separated numbers")
    }

    func testScheduleOptions() throws {
        let restarts = try parse(["--lr-schedule", "cosine_with_restarts", "--lr-cycles", "3"])
        XCTAssertEqual(restarts.loop.schedule.decay, .cosineWithRestarts)
        XCTAssertEqual(restarts.loop.schedule.cycles, 3)
        let poly = try parse(["--lr_scheduler", "polynomial", "--lr_scheduler_power", "2"])
        XCTAssertEqual(poly.loop.schedule.power, 2)
        XCTAssertEqual(try parse(["--lr-schedule", "constant_with_warmup", "--warmup", "5"]).loop.decay, .constantWithWarmup)
        assertUsage(["--lr-cycles", "3"], mentions: "cosine_with_restarts")
        assertUsage(["--lr-schedule", "polynomial", "--lr-power", "0"], mentions: "positive")
        assertUsage(["--lr-schedule", "step"], mentions: "polynomial")
    }

    func testFilesPrecisionAndValidation() throws {
        let dir = try temporaryDirectory("kohya-cli")
        XCTAssertNil(try parse([]).savePrecision, "fp16 unless set")
        XCTAssertEqual(try parse(["--save_precision", "bf16"]).savePrecision, .bf16)
        XCTAssertEqual(try parse(["--save-precision", "float"]).savePrecision, .fp32)
        assertUsage(["--save-precision", "fp8"], mentions: "fp16, bf16 or fp32")

        let adapter = dir.appendingPathComponent("a.safetensors")
        try Data().write(to: adapter)
        XCTAssertEqual(try parse(["--network_weights", adapter.path]).initLora, adapter.standardizedFileURL.path)
        assertUsage(["--init-lora", dir.appendingPathComponent("none.safetensors").path], mentions: "no such file")

        let prompts = dir.appendingPathComponent("prompts.txt")
        try "a photo of sks dog --d 3\n".write(to: prompts, atomically: true, encoding: .utf8)
        let latent = try parse(["--sample-prompts", prompts.path, "--steps", "40"], pipeline: TestPaths.pipelineFixture("tiny-sd"))
        XCTAssertEqual(latent.samplePrompts?.first?.seed, 3)
        XCTAssertEqual(latent.loop.sampleEvery, 40, "without --sample-every: once, at the end")
        XCTAssertEqual(try parse(["--sample-prompts", prompts.path]).loop.sampleEvery, 500, "the preset's grids")

        let split = try parse(["--validation-split", "0.4", "--validate-every", "5"])
        XCTAssertEqual(split.validationSplit, 0.4)
        XCTAssertEqual(split.loop.validateEvery, 5)
        assertUsage(["--validation-split", "1.5"], mentions: "between 0 and 1")
        assertUsage(["--validate-every", "5"], mentions: "needs --validation-split")
    }

    /// A short run with Prodigy, a validation split, sample prompts and fp32: the log's validation lines, the
    /// samples, the adapter's dtype and ss_optimizer; then a second run continues from that adapter.
    func testShortRunWithKohyaOptions() throws {
        let root = try temporaryDirectory("kohya-run")
        let prompts = root.appendingPathComponent("prompts.txt")
        try "a photo of sks dog --w 16 --h 16 --s 2\nsks dog on grass --s 2 --d 5\n".write(to: prompts, atomically: true, encoding: .utf8)
        let out = root.appendingPathComponent("out")
        let common = [images, "--token", "sks", "--class", "dog", "--no-prior", "--pipeline", pixel, "--resolution", "16",
                      "--no-report", "--out", out.path, "--steps", "4"]
        XCTAssertEqual(try TrainStyleCommand.run(common + ["--optimizer", "prodigy", "--validation-split", "0.4", "--validate-every", "2",
                                                           "--sample-prompts", prompts.path, "--sample-every", "4",
                                                           "--save-precision", "fp32"]), 0)
        let adapter = out.appendingPathComponent("adapters/sks.safetensors").path
        let file = try SafeTensorsFile(path: adapter)
        XCTAssertTrue(file.tensors.allSatisfy { $0.dtype == .f32 })
        XCTAssertTrue(file.metadata["ss_optimizer"]?.hasPrefix("prodigyopt.prodigy.Prodigy(") ?? false, "\(file.metadata)")
        let run = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("runs").path).first)
        let runDir = out.appendingPathComponent("runs/\(run)")
        let grid = try PNG.read(path: runDir.appendingPathComponent("samples-000004.png").path).image
        XCTAssertTrue(grid.width >= 32 && grid.height < 32, "one row of two 16-pixel samples: \(grid.width)×\(grid.height)")
        let checkpoint = try TrainingCheckpoint.read(path: runDir.appendingPathComponent(TrainingCheckpoint.fileName).path)
        XCTAssertEqual(checkpoint.state.validationLosses?.map(\.step), [0, 2, 4])

        // Continue from it with AdamW (default precision fp16).
        XCTAssertEqual(try TrainStyleCommand.run(common + ["--init-lora", adapter, "--steps", "1"]), 0)
        XCTAssertTrue(try SafeTensorsFile(path: adapter).tensors.allSatisfy { $0.dtype == .f16 })
    }
}

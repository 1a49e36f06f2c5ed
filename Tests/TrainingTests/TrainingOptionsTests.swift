// The training options kohya's users carry over: the optimiser (its state saved and resumed bit for bit), the
// learning-rate schedules of diffusers' get_scheduler (goldens: Tests/Reference/make_optimizer_goldens.py).
import Adapters
import Autograd
import Foundation
import NN
import PNGImage
import Pipeline
import SafeTensors
import TensorCore
import TestSupport
import XCTest
@testable import Training

final class TrainingOptionsTests: XCTestCase {
    static let tinyPipeline = TinyTraining.pipeline
    static let images = TinyTraining.images

    func config(steps: Int, lr: Float = 1e-3) -> StyleTrainingConfig { TinyTraining.config(steps: steps, lr: lr) }

    func trainer(_ c: StyleTrainingConfig, run: URL) throws -> StyleTrainer {
        try TinyTraining.trainer(c, runDirectory: run)
    }

    private struct ScheduleGolden: Decodable {
        var name: String, peak: Double, warmup: Int, total: Int, cycles: Int, power: Double, rates: [Double]
    }

    func testSchedulesMatchDiffusersGetScheduler() throws {
        let url = URL(fileURLWithPath: TestPaths.tests("NNTests/Fixtures/lr_schedule_goldens.json"))
        let goldens = try JSONDecoder().decode([ScheduleGolden].self, from: Data(contentsOf: url))
        XCTAssertEqual(Set(goldens.map(\.name)), ["constant_with_warmup", "cosine_with_restarts", "polynomial", "cosine", "linear"])
        for g in goldens {
            let decay = try XCTUnwrap(LearningRateDecay(rawValue: g.name))
            let schedule = LearningRateSchedule(peak: Float(g.peak), warmupSteps: g.warmup, decay: decay, totalSteps: g.total,
                                                cycles: g.cycles, power: g.power)
            try schedule.validate()
            // The loop asks for steps 0..<total; polynomial and restarts are also defined after the end.
            let checked = g.name == "cosine" ? g.total : g.rates.count
            for step in 0..<checked {
                XCTAssertEqual(Double(schedule.rate(at: step)), g.rates[step], accuracy: 1e-6 * g.peak + 1e-12,
                               "\(g.name) (peak \(g.peak), cycles \(g.cycles), power \(g.power)) step \(step)")
            }
        }
        let tiny = LearningRateSchedule(peak: 5e-8, decay: .polynomial, totalSteps: 10)
        XCTAssertThrowsError(try tiny.validate()) { XCTAssertTrue("\($0)".contains("1e-7"), "\($0)") }
    }

    /// A LoRA run with Prodigy or Adafactor, stopped at step 3 and resumed, ends bitwise where a straight run ends.
    func testResumeWithProdigyAndAdafactorIsBitwiseEqual() throws {
        let scratch = try temporaryDirectory("options")
        var adafactor = AdafactorSettings()
        adafactor.beta1 = 0.9
        for choice in [OptimizerChoice.prodigy(ProdigySettings()), .adafactor(adafactor)] {
            var c = config(steps: 6, lr: 1)
            c.loop.optimizer = choice
            c.loop.saveEvery = 2
            c.loop.decay = .cosineWithRestarts
            c.loop.lrCycles = 2
            let name = UUID().uuidString
            let straight = try trainer(c, run: scratch.appendingPathComponent(name + "-straight"))
            XCTAssertEqual(try straight.loop.run(), .finished)

            let run = scratch.appendingPathComponent(name + "-resumed")
            let first = try trainer(c, run: run)
            first.loop.shouldStop = { first.loop.state.step >= 3 }
            XCTAssertEqual(try first.loop.run(), .interrupted(step: 3))
            let saved = try TrainingCheckpoint.read(path: first.loop.checkpointPath)
            if case .prodigy = choice {
                XCTAssertNotNil(saved.optimizerScalars["prodigy.d"])
                XCTAssertTrue(saved.tensors.keys.contains { $0.hasPrefix("prodigy.exp_avg_sq.unet.") })
            } else {
                XCTAssertTrue(saved.tensors.keys.contains { $0.hasPrefix("adafactor.exp_avg_sq_row.unet.") })
            }
            let second = try trainer(c, run: run)
            try second.resume()
            XCTAssertEqual(try second.loop.run(), .finished)
            XCTAssertEqual(straight.loop.state.lossHistory, second.loop.state.lossHistory)
            for ((ka, a), (kb, b)) in zip(straight.loop.optimizer.groups.flatMap(\.parameters),
                                          second.loop.optimizer.groups.flatMap(\.parameters)) {
                XCTAssertEqual(ka, kb)
                XCTAssertEqual(a.value.scalars.map(\.bitPattern), b.value.scalars.map(\.bitPattern), "\(choice) \(ka)")
            }
            // The run moved the adapter (Prodigy's d grew from 1e-6).
            if let prodigy = second.loop.optimizer as? Prodigy { XCTAssertGreaterThan(prodigy.d, 1e-6) }
        }
    }

    func testProdigyRefusesTwoLearningRates() throws {
        var c = config(steps: 2, lr: 1)
        c.loop.optimizer = .prodigy(ProdigySettings())
        c.trainTextEncoder = true
        c.textEncoderLearningRate = 0.5
        XCTAssertThrowsError(try trainer(c, run: try temporaryDirectory("prodigy"))) {
            XCTAssertTrue("\($0)".contains("one learning rate"), "\($0)")
        }
        c.textEncoderLearningRate = 1
        XCTAssertNoThrow(try trainer(c, run: try temporaryDirectory("prodigy")))
    }

    /// The adapter file's tensors in fp16 (default), bf16 or fp32; the LoRA reader reads all three back to the
    /// trained values (rounded to the precision).
    func testSavePrecision() throws {
        let scratch = try temporaryDirectory("precision")
        var c = config(steps: 2, lr: 1e-2)
        let reference = try trainer(c, run: scratch.appendingPathComponent("run"))
        _ = try reference.loop.run()
        let trained = try reference.adapters.stacks[.unet]!.export("sks")
        for (precision, dtype, tolerance) in [(SavePrecision?.none, DType.f16, Float(1e-3)), (.fp16, .f16, 1e-3), (.bf16, .bf16, 8e-3),
                                             (.fp32, .f32, 0)] {
            c.savePrecision = precision
            let t = try trainer(c, run: scratch.appendingPathComponent("run"))
            _ = try t.loop.run()
            let path = scratch.appendingPathComponent("\(dtype.rawValue).safetensors").path
            try t.writeAdapter(to: path)
            let file = try SafeTensorsFile(path: path)
            XCTAssertTrue(file.tensors.allSatisfy { $0.dtype == dtype }, "\(String(describing: precision)): \(Set(file.tensors.map(\.dtype)))")
            let read = try LoRAFile(contentsOf: path)
            XCTAssertEqual(read.modules.count, trained.count)
            let byName = Dictionary(uniqueKeysWithValues: read.modules.map { ($0.name, $0) })
            for m in trained {
                let back = try XCTUnwrap(byName[m.name.replacingOccurrences(of: ".", with: "_")] ?? byName[m.name], m.name)
                XCTAssertEqual(back.effectiveAlpha, m.effectiveAlpha)
                for (a, b) in zip(back.up.scalars + back.down.scalars, m.up.scalars + m.down.scalars) {
                    XCTAssertEqual(a, b, accuracy: tolerance * max(abs(b), 1e-2), m.name)
                }
            }
        }
    }

    /// --init-lora: the trainable pairs start at the file's weights; files that do not fit are refused by layer.
    func testInitLoraContinuesFromAnAdapter() throws {
        let scratch = try temporaryDirectory("init-lora")
        var c = config(steps: 3, lr: 1e-2)
        c.savePrecision = .fp32
        let first = try trainer(c, run: scratch.appendingPathComponent("first"))
        _ = try first.loop.run()
        let file = scratch.appendingPathComponent("first.safetensors").path
        try first.writeAdapter(to: file)

        c.initLora = file
        c.seed = 11              // another random initialisation, replaced by the file's weights
        let second = try trainer(c, run: scratch.appendingPathComponent("second"))
        let a = try first.adapters.stacks[.unet]!.export("sks"), b = try second.adapters.stacks[.unet]!.export("sks")
        XCTAssertEqual(a.map(\.name), b.map(\.name))
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.down.scalars.map(\.bitPattern), y.down.scalars.map(\.bitPattern), x.name)
            XCTAssertEqual(x.up.scalars.map(\.bitPattern), y.up.scalars.map(\.bitPattern), x.name)
        }
        XCTAssertTrue(a.contains { $0.up.scalars.contains { $0 != 0 } }, "the first run moved its up-projections")
        XCTAssertEqual(try second.loop.run(), .finished)

        var wrongRank = c
        wrongRank.rank = 8
        XCTAssertThrowsError(try trainer(wrongRank, run: scratch.appendingPathComponent("r"))) {
            XCTAssertTrue("\($0)".contains("rank 4") && "\($0)".contains("--rank is 8"), "\($0)")
        }
        var wrongTargets = c
        wrongTargets.targets = .conv
        XCTAssertThrowsError(try trainer(wrongTargets, run: scratch.appendingPathComponent("t"))) {
            XCTAssertTrue("\($0)".contains("--init-lora") && "\($0)".contains("--targets"), "\($0)")
        }
        var textEncoder = config(steps: 1)
        textEncoder.trainTextEncoder = true
        textEncoder.savePrecision = .fp32
        let withText = try trainer(textEncoder, run: scratch.appendingPathComponent("te"))
        let teFile = scratch.appendingPathComponent("te.safetensors").path
        try withText.writeAdapter(to: teFile)
        var unetOnly = c
        unetOnly.initLora = teFile
        XCTAssertThrowsError(try trainer(unetOnly, run: scratch.appendingPathComponent("u"))) {
            XCTAssertTrue("\($0)".contains("--train-text-encoder"), "\($0)")
        }
        var alpha = c
        alpha.alpha = 2
        XCTAssertThrowsError(try trainer(alpha, run: scratch.appendingPathComponent("a"))) {
            XCTAssertTrue("\($0)".contains("--alpha 4"), "\($0)")
        }
    }

    func testSamplePromptsFile() throws {
        let dir = try temporaryDirectory("samples")
        let path = dir.appendingPathComponent("prompts.txt").path
        try """
            # kohya sample prompts
            a photo of sks dog --n blurry, low quality --w 16 --h 24 --d 7 --s 3 --l 4.5

            sks dog on a beach --s 2
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let prompts = try SamplePrompt.parse(file: path)
        XCTAssertEqual(prompts.count, 2)
        XCTAssertEqual(prompts[0].prompt, "a photo of sks dog")
        XCTAssertEqual(prompts[0].negativePrompt, "blurry, low quality")
        XCTAssertEqual([prompts[0].width, prompts[0].height, prompts[0].steps], [16, 24, 3])
        XCTAssertEqual(prompts[0].seed, 7)
        XCTAssertEqual(prompts[0].guidanceScale, 4.5)
        XCTAssertEqual(prompts[1].prompt, "sks dog on a beach")
        XCTAssertNil(prompts[1].seed)

        try "a dog --x 3\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SamplePrompt.parse(file: path)) { XCTAssertTrue("\($0)".contains("prompts.txt:1: unknown option --x"), "\($0)") }
        try "\na dog --w big\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SamplePrompt.parse(file: path)) { XCTAssertTrue("\($0)".contains("prompts.txt:2: --w big"), "\($0)") }

        // The trainer's sample grids: one picture per line; one size → one grid, mixed sizes → one file each.
        var c = config(steps: 1)
        c.samplePrompts = prompts
        let t = try trainer(c, run: dir.appendingPathComponent("run"))
        let mixed = dir.appendingPathComponent("samples-000001.png")
        try t.writePreview(to: mixed, prompts: [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: mixed.path))
        let first = try PNG.read(path: dir.appendingPathComponent("samples-000001-00.png").path).image
        XCTAssertEqual([first.width, first.height], [16, 24])
        let second = try PNG.read(path: dir.appendingPathComponent("samples-000001-01.png").path).image
        XCTAssertEqual([second.width, second.height], [t.resolution, t.resolution])
        var same = prompts
        same[0].width = nil
        same[0].height = nil
        let grid = dir.appendingPathComponent("grid.png")
        try t.writeSamples(same, to: grid)
        let sheet = try PNG.read(path: grid.path).image
        XCTAssertGreaterThanOrEqual(sheet.width, 2 * t.resolution, "two columns")
        XCTAssertLessThan(sheet.height, 2 * t.resolution, "one row")

        // A latent model draws sizes in multiples of its VAE factor: a sample size that is not one is refused up front.
        var latent = config(steps: 1)
        latent.pipeline = TestPaths.pipelineFixture("tiny-sd")
        var odd = SamplePrompt(prompt: "sks dog")
        odd.width = 13
        latent.samplePrompts = [odd]
        XCTAssertThrowsError(try StyleTrainer(config: latent, model: try StableDiffusionModel(path: latent.pipeline),
                                              runDirectory: dir.appendingPathComponent("latent"), classImages: nil)) {
            XCTAssertTrue("\($0)".contains("--w 13 must be a multiple of"), "\($0)")
        }
    }

    /// --validation-split: held-out images never train; their loss at fixed draws is recorded before training,
    /// every N steps and at the end, survives a resume, and is drawn in the loss curve.
    func testValidationSplit() throws {
        let (train, held) = try StyleTrainer.split(count: 5, share: 0.4, seed: 3)
        XCTAssertEqual(held.count, 2)
        XCTAssertEqual(Set(train + held), Set(0..<5))
        XCTAssertEqual(try StyleTrainer.split(count: 5, share: 0.4, seed: 3).validation, held, "seeded")
        XCTAssertEqual(try StyleTrainer.split(count: 5, share: 0.01, seed: 3).validation.count, 1)
        XCTAssertEqual(try StyleTrainer.split(count: 2, share: 0.99, seed: 3).validation.count, 1)
        XCTAssertThrowsError(try StyleTrainer.split(count: 1, share: 0.5, seed: 3))
        XCTAssertEqual(try StyleTrainer.split(count: 5, share: nil, seed: 3).training, Array(0..<5))

        let scratch = try temporaryDirectory("validation")
        var c = config(steps: 4, lr: 1e-2)
        c.validationSplit = 0.4
        c.loop.validateEvery = 2
        c.loop.saveEvery = 1
        let straight = try trainer(c, run: scratch.appendingPathComponent("straight"))
        XCTAssertEqual(straight.validationIndices, held)
        let measure = try XCTUnwrap(straight.loop.validationLoss)
        XCTAssertEqual(try withNoGrad { try measure() }, try withNoGrad { try measure() }, "fixed noise and timesteps")
        var events: [ValidationLoss] = []
        straight.loop.onEvent = { if case .validation(let v) = $0 { events.append(v) } }
        XCTAssertEqual(try straight.loop.run(), .finished)
        let history = try XCTUnwrap(straight.loop.state.validationLosses)
        XCTAssertEqual(history.map(\.step), [0, 2, 4])
        XCTAssertEqual(events, history)
        XCTAssertNotEqual(history[0].loss, history[2].loss)

        let run = scratch.appendingPathComponent("resumed")
        let first = try trainer(c, run: run)
        first.loop.shouldStop = { first.loop.state.step >= 3 }
        XCTAssertEqual(try first.loop.run(), .interrupted(step: 3))
        let second = try trainer(c, run: run)
        try second.resume()
        XCTAssertEqual(try second.loop.run(), .finished)
        XCTAssertEqual(second.loop.state.validationLosses, history)

        let plain = try LossCurve.image(straight.loop.state.lossHistory)
        let drawn = try LossCurve.image(straight.loop.state.lossHistory, validation: history)
        XCTAssertNotEqual(plain.pixels, drawn.pixels)
        XCTAssertTrue(stride(from: 0, to: drawn.pixels.count, by: 3).contains {
            (drawn.pixels[$0], drawn.pixels[$0 + 1], drawn.pixels[$0 + 2]) == (20, 140, 60)
        }, "green validation marks")
    }
}

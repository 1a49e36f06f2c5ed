// The training options kohya's users carry over: the optimiser (its state saved and resumed bit for bit), the
// learning-rate schedules of diffusers' get_scheduler (goldens: Tests/Reference/make_optimizer_goldens.py).
import Adapters
import Autograd
import Foundation
import NN
import Pipeline
import SafeTensors
import TensorCore
import TestSupport
import XCTest
@testable import Training

final class TrainingOptionsTests: XCTestCase {
    static let tinyPipeline = TestPaths.pipelineFixture("tiny-pixel")
    static let images = TestPaths.repository("images")

    func config(steps: Int, lr: Float = 1e-3) -> StyleTrainingConfig {
        var c = StyleTrainingConfig(imagesDirectory: Self.images, pipeline: Self.tinyPipeline,
                                    prompt: InstancePrompt(token: "sks", className: "dog"))
        c.prior = false
        c.loop.steps = steps
        c.loop.learningRate = lr
        c.loop.saveEvery = 0
        c.seed = 3
        return c
    }

    func trainer(_ c: StyleTrainingConfig, run: URL) throws -> StyleTrainer {
        try StyleTrainer(config: c, model: try StableDiffusionModel(path: Self.tinyPipeline), runDirectory: run, classImages: nil)
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
}

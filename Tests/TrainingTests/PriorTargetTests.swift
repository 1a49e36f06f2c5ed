import Autograd
import DiffusionModels
import Foundation
import Pipeline
import Schedulers
import TensorCore
import TestSupport
import XCTest
@testable import Training

/// `--prior-target base`: class rows are trained toward the frozen base's own prediction (adapters off).
final class PriorTargetTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("prior-target-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// An anchored row's target is what the anchor predicts for that row's x_t and t: anchoring row 1 with the
    /// model's own output removes exactly its share of the loss; anchoring with another value counts it.
    func testAnchoredRowsTakeTheAnchorsPrediction() throws {
        let model = try StableDiffusionModel(path: TinyTraining.pipeline)
        let objective = DiffusionObjective(schedule: try NoiseSchedule(config: model.schedulerConfig), prediction: .epsilon)
        var random = PhiloxRandom(seed: 5)
        let x0 = random.normal(shape: [3, 16, 16, 3]), noise = random.normal(shape: [3, 16, 16, 3])
        let timesteps = [10, 500, 900]
        let conditioning = try model.encode(prompts: ["a photo of sks dog", "a photo of a dog", "a red car"])
        func loss(_ weights: [Float], _ anchor: TargetAnchor? = nil) throws -> Float {
            try withNoGrad {
                try objective.loss(unet: model.unet, x0: x0, noise: noise, timesteps: timesteps, conditioning: conditioning,
                                   rowWeights: weights, anchor: anchor).value.item
            }
        }
        var seen: [[Int]] = []
        let itself = TargetAnchor(rows: [1]) { xt, t in
            seen.append(t)
            let rowConditioning = try model.encode(prompts: ["a photo of a dog"])
            return try model.unet(Variable(xt), timesteps: t.map(Float.init), conditioning: rowConditioning).value
        }
        let plain = try loss([1, 1, 1]), withoutRow1 = try loss([1, 0, 1])
        XCTAssertGreaterThan(plain - withoutRow1, 1e-3, "row 1 carries loss toward the noise")
        XCTAssertEqual(try loss([1, 1, 1], itself), withoutRow1, accuracy: 1e-5 * withoutRow1)
        XCTAssertEqual(seen, [[500]], "the anchor gets the anchored row's timestep only")
        let zero = TargetAnchor(rows: [0, 2]) { xt, _ in Tensor(shape: xt.shape) { $0.update(repeating: 0) } }
        let output = try withNoGrad { try model.unet(Variable(try objective.schedule.addNoise(x0, noise: noise, timesteps: timesteps)),
                                                     timesteps: timesteps.map(Float.init), conditioning: conditioning).value }
        // Rows 0 and 2 against zero: their loss is their output's mean square; row 1 keeps its noise target.
        let perRow = x0.count / 3
        let squares: [Float] = output.scalars.map { $0 * $0 }
        let rows0and2: Float = squares[0..<perRow].reduce(0, +) + squares[(2 * perRow)...].reduce(0, +)
        let row1: Float = plain - withoutRow1
        let expected: Float = rows0and2 / Float(perRow) + row1
        XCTAssertEqual(try loss([1, 1, 1], zero), expected, accuracy: 1e-4 * expected)
        XCTAssertThrowsError(try loss([1, 1, 1], TargetAnchor(rows: [3]) { xt, _ in xt }), "a row outside the batch")
    }

    /// In a run: with fresh adapters (up = 0) the class rows' loss toward the base is 0, so the loss is the
    /// instance rows' alone (a run with λ = 0); after training the same weights give the class rows a loss > 0,
    /// which only a prediction with the adapters off can give. DreamBooth's noise target counts from the start.
    func testClassRowsAreTrainedTowardTheFrozenBase() throws {
        let model = try StableDiffusionModel(path: TinyTraining.pipeline)
        let key = ClassImageKey(modelHash: try model.modelHash() ?? "", prompt: "a photo of a dog", seed: 0, steps: 2, resolution: 16)
        let folder = try PriorPreservation.classImages(model: model, key: key, count: 2, root: scratch.appendingPathComponent("class-images"))
        func config(_ target: PriorTarget?, weight: Float, initLora: String? = nil) -> StyleTrainingConfig {
            var c = TinyTraining.config(steps: 6, lr: 1e-2)
            c.prior = true
            c.priorTarget = target
            c.priorWeight = weight
            c.targets = .conv
            c.trainTextEncoder = true
            c.initLora = initLora
            return c
        }
        func trainer(_ c: StyleTrainingConfig) throws -> StyleTrainer {
            try StyleTrainer(config: c, model: try StableDiffusionModel(path: TinyTraining.pipeline),
                             runDirectory: scratch.appendingPathComponent(UUID().uuidString), classImages: folder)
        }
        func loss(_ t: StyleTrainer) throws -> Float {
            var random = PhiloxRandom(seed: 77)
            return try withNoGrad { try t.loop.microBatchLoss(&random) }.value.item
        }
        let anchored = try trainer(config(.base, weight: 1))
        let instanceOnly = try loss(try trainer(config(.base, weight: 0)))
        XCTAssertEqual(try loss(anchored), instanceOnly, accuracy: 1e-5 * instanceOnly, "fresh adapters change nothing")
        XCTAssertGreaterThan(try loss(try trainer(config(.noise, weight: 1))) - instanceOnly, 1e-3)
        XCTAssertEqual(try loss(try trainer(config(nil, weight: 1))), try loss(try trainer(config(.noise, weight: 1))),
                       "runs saved before the option train toward the noise")

        XCTAssertEqual(try anchored.loop.run(), .finished)
        let adapter = scratch.appendingPathComponent("trained.safetensors").path
        try anchored.writeAdapter(to: adapter)
        let trainedInstanceOnly = try loss(try trainer(config(.base, weight: 0, initLora: adapter)))
        let trainedAnchored = try loss(try trainer(config(.base, weight: 1, initLora: adapter)))
        XCTAssertGreaterThan(trainedAnchored - trainedInstanceOnly, 1e-3, "trained adapters move the class rows off the base")
    }
}

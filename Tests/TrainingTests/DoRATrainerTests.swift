import Adapters
import Autograd
import DiffusionModels
import Foundation
import Pipeline
import SafeTensors
import TensorCore
import TestSupport
import XCTest
@testable import Training

/// `train-style --adapter dora` on the tiny pixel-space pipeline: the magnitudes train with the pairs, the loss
/// falls, the base stays bitwise frozen, and the run writes a DoRA file that loads back as the trained model.
final class DoRATrainerTests: XCTestCase {
    func testDoRARunTrainsMagnitudesAndWritesADoRAFile() throws {
        let scratch = try temporaryDirectory("dora-training")
        var c = TinyTraining.config(steps: 20, lr: 1e-2)
        c.targets = .conv
        c.adapter = .dora
        c.savePrecision = .fp32      // the file round trip is exact (fp16, the default, rounds the factors)
        let t = try TinyTraining.trainer(c, runDirectory: scratch.appendingPathComponent("run"))
        let trainable = t.model.unet.trainableParameters()
        XCTAssertTrue(trainable.contains { $0.0.contains(".lora_magnitude_vector.sks.") }, "the magnitudes train")
        let magnitudesBefore = trainable.filter { $0.0.contains("magnitude") }.map { $0.1.value.scalars }
        let unetBefore = t.model.unet.stateDict()
        func loss() throws -> Float {
            var random = PhiloxRandom(seed: 12345)
            var total: Float = 0
            for _ in 0..<8 { total += try withNoGrad { try t.loop.microBatchLoss(&random) }.value.item }
            return total / 8
        }
        let before = try loss()
        XCTAssertEqual(try t.loop.run(), .finished)
        let after = try loss()
        XCTAssertLessThan(after, before, "loss \(before) → \(after)")
        XCTAssertNotEqual(trainable.filter { $0.0.contains("magnitude") }.map { $0.1.value.scalars }, magnitudesBefore)
        XCTAssertEqual(t.model.unet.stateDict().mapValues { $0.scalars }, unetBefore.mapValues { $0.scalars }, "the base stays frozen")

        let path = scratch.appendingPathComponent("sks.safetensors").path
        try t.writeAdapter(to: path)
        let file = try LoRAFile(contentsOf: path)
        XCTAssertEqual(file.kinds, [.dora])
        // Loaded into a fresh model, the file reproduces the trained adapter's output.
        let fresh = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel"))
        try AdapterSet(unet: fresh.unet, textEncoder: nil).load(file, name: "sks")
        var random = PhiloxRandom(seed: 5)
        let x = Variable(random.normal(shape: [1, 16, 16, 3]))
        let context = Conditioning(context: Variable(random.normal(shape: [1, 77, fresh.textEncoder.config.hiddenSize])))
        let (trained, loaded) = try withNoGrad {
            (try t.model.unet(x, timesteps: [300], conditioning: context).value, try fresh.unet(x, timesteps: [300], conditioning: context).value)
        }
        try assertClose(loaded, trained, tolerance: 1e-4, nhwcAgainstNCHW: false, "the DoRA file loaded back vs the trained model")
    }
}

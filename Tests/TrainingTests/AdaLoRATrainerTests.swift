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

/// `train-style --adapter adalora` on the tiny pixel-space pipeline: the allocator cuts the budget to the
/// target rank per layer on average by the end, the run writes a plain LoRA with a rank per module that loads
/// back as the trained model, and the report says where the budget went.
final class AdaLoRATrainerTests: XCTestCase {
    func testAdaLoRARunEndsAtTheTargetBudgetAndWritesAPerModuleRankLoRA() throws {
        let scratch = try temporaryDirectory("adalora-training")
        var c = TinyTraining.config(steps: 12, lr: 1e-2)
        c.targets = .conv
        c.rank = 4
        c.adapter = .adalora
        c.adaLoRA = AdaLoRASettings(initialRank: 4, targetRank: 2, tinit: 2, tfinal: 3, deltaT: 2, totalSteps: 12)
        let t = try TinyTraining.trainer(c, runDirectory: scratch.appendingPathComponent("run"))
        XCTAssertTrue(t.model.unet.trainableParameters().contains { $0.0.contains(".lora_E.sks") })
        XCTAssertEqual(try t.loop.run(), .finished)
        let allocator = try XCTUnwrap(t.allocators.first)
        XCTAssertEqual(allocator.ranks.map(\.rank).reduce(0, +), 2 * allocator.layers.count, "the target budget")
        XCTAssertThrowsError(try t.resume(), "AdaLoRA runs do not resume")
        let report = try XCTUnwrap(t.adaLoRARankReport)
        print(report)
        XCTAssertTrue(report.contains("down_blocks.0"))

        let path = scratch.appendingPathComponent("sks.safetensors").path
        try t.writeAdapter(to: path)
        let file = try LoRAFile(contentsOf: path)
        XCTAssertEqual(file.kinds, [.lora])
        XCTAssertEqual(file.modules.map(\.rank).reduce(0, +), 2 * allocator.layers.count)
        let fresh = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel"))
        try AdapterSet(unet: fresh.unet, textEncoder: nil).load(file, name: "sks")
        var random = PhiloxRandom(seed: 5)
        let x = Variable(random.normal(shape: [1, 16, 16, 3]))
        let context = Conditioning(context: Variable(random.normal(shape: [1, 77, fresh.textEncoder.config.hiddenSize])))
        let (trained, loaded) = try withNoGrad {
            (try t.model.unet(x, timesteps: [300], conditioning: context).value, try fresh.unet(x, timesteps: [300], conditioning: context).value)
        }
        try assertClose(loaded, trained, tolerance: 1e-4, nhwcAgainstNCHW: false, "the per-module-rank LoRA vs the trained AdaLoRA")
    }
}

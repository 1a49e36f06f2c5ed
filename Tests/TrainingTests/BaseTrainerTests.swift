import Foundation
import Pipeline
import SafeTensors
import XCTest
@testable import Training

final class BaseTrainerTests: XCTestCase {
    /// A tiny from-scratch run: every UNet and text-encoder weight moves, and the exported folder loads
    /// like any diffusers pipeline (F16 weights, a tokenizer that also splits unknown words such as `sks`).
    func testTinyBaseTrainingExportsALoadablePipeline() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("base-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var config = BaseTrainingConfig()
        config.architecture = .tiny
        config.batch = 2
        config.loop = LoopSettings(steps: 2)
        config.loop.learningRate = 1e-3
        let trainer = try BaseTrainer(config: config, runDirectory: scratch.appendingPathComponent("run"))
        let before = trainer.unet.stateDict()
        XCTAssertEqual(try trainer.loop.run(), .finished)
        XCTAssertNotEqual(bitPattern(trainer.unet.stateDict()["conv_in.weight"]), bitPattern(before["conv_in.weight"]))
        XCTAssertEqual(trainer.loop.state.lossHistory.count, 2)

        let folder = scratch.appendingPathComponent("pipeline")
        try trainer.export(to: folder)
        let unetFile = try SafeTensorsFile(path: folder.appendingPathComponent("unet/diffusion_pytorch_model.safetensors").path)
        XCTAssertTrue(unetFile.tensors.allSatisfy { $0.dtype == .f16 })
        let model = try StableDiffusionModel(path: folder.path)
        XCTAssertFalse(model.isLatent)
        XCTAssertEqual(model.defaultSize, 16)
        let ids = model.tokenizer.encode("a photo of sks dog").ids
        XCTAssertEqual(ids.count, config.architecture.tokenLength)
        XCTAssertEqual(model.tokenizer.tokenize("photo").count, 1)
        let sks = model.tokenizer.tokenize("sks")
        XCTAssertGreaterThan(sks.count, 1)
        XCTAssertEqual(model.tokenizer.decode(sks).trimmingCharacters(in: .whitespaces), "sks")

        // A second trainer on the same run folder resumes from the final checkpoint.
        let again = try BaseTrainer(config: config, runDirectory: scratch.appendingPathComponent("run"))
        XCTAssertEqual(again.loop.state.step, 2)
        XCTAssertEqual(bitPatterns(again.unet.stateDict()), bitPatterns(trainer.unet.stateDict()))
    }
}

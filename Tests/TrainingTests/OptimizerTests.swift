import Autograd
import Foundation
import NN
import PictureWorld
import TensorCore
import TestSupport
import XCTest
@testable import Training

final class OptimizerTests: XCTestCase {
    func testLearningRateScheduleValues() {
        let constant = LearningRateSchedule(peak: 1e-3, warmupSteps: 10, decay: .constant, totalSteps: 110)
        XCTAssertEqual(constant.rate(at: 0), 0)
        XCTAssertEqual(constant.rate(at: 5), 5e-4, accuracy: 1e-9)
        XCTAssertEqual(constant.rate(at: 10), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(constant.rate(at: 100), 1e-3, accuracy: 1e-9)
        let cosine = LearningRateSchedule(peak: 1e-3, warmupSteps: 10, decay: .cosine, totalSteps: 110)
        XCTAssertEqual(cosine.rate(at: 10), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(cosine.rate(at: 60), 5e-4, accuracy: 1e-8)
        XCTAssertEqual(cosine.rate(at: 110), 0, accuracy: 1e-9)
    }

    func testCorruptedCheckpointIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("checkpoint.safetensors").path
        let checkpoint = TrainingCheckpoint(state: LoopState(step: 3, random: PhiloxRandom(seed: 1), lossHistory: [1, 0.5, 0.25]),
                                            configuration: "{}", tensors: ["param.w": try Tensor(shape: [4], scalars: [1, 2, 3, 4])],
                                            optimizerStep: 3)
        try checkpoint.write(to: path)
        let back = try TrainingCheckpoint.read(path: path)
        XCTAssertEqual(back.state, checkpoint.state)
        XCTAssertEqual(bitPattern(back.tensors["param.w"]), bitPattern(checkpoint.tensors["param.w"]))

        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 3] ^= 0x40   // a bit of the last float
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TrainingCheckpoint.read(path: path)) { error in
            XCTAssertTrue("\(error)".contains("corrupted"), "\(error)")
        }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TrainingCheckpoint.read(path: path)) { error in
            XCTAssertTrue("\(error)".contains("damaged"), "\(error)")
        }
    }

    func testNonFiniteLossStopsAndKeepsTheLastGoodCheckpoint() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nan-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = Variable(Tensor(shape: [2], repeating: 1), requiresGrad: true)
        var settings = LoopSettings(steps: 10)
        settings.saveEvery = 2
        var calls = 0
        let loop = try TrainingLoop(groups: [ParameterGroup(parameters: [("w", w)])], settings: settings, runDirectory: dir,
                                    configuration: "{}", seed: 0) { _ in
            calls += 1
            return scale(sum(try mul(w, w)), by: calls == 3 ? .nan : 1)
        }
        XCTAssertThrowsError(try loop.run()) { error in
            XCTAssertEqual(error as? TrainingError, .nonFiniteLoss(step: 3, checkpoint: loop.checkpointPath))
            XCTAssertTrue("\(error)".contains("last good checkpoint"), "\(error)")
        }
        XCTAssertEqual(try TrainingCheckpoint.read(path: loop.checkpointPath).state.step, 2)
    }

    func testPriorPreservationBatchComposition() {
        var random = PhiloxRandom(seed: 7)
        let rows = PriorPreservation.composeBatch(batch: 2, instanceCount: 5, classCount: 10, priorWeight: 0.5, random: &random)
        XCTAssertEqual(rows.map(\.isClass), [false, false, true, true])
        XCTAssertEqual(rows.map(\.weight), [0.5, 0.5, 0.25, 0.25])
        XCTAssertTrue(rows.allSatisfy { $0.index >= 0 && $0.index < ($0.isClass ? 10 : 5) })
        let plain = PriorPreservation.composeBatch(batch: 3, instanceCount: 5, classCount: 0, priorWeight: 1, random: &random)
        XCTAssertEqual(plain.count, 3)
        XCTAssertFalse(plain.contains { $0.isClass })
    }

    func testInstanceAndClassPrompts() {
        XCTAssertEqual(InstancePrompt(token: "sks", className: "dog").text, "a photo of sks dog")
        XCTAssertEqual(InstancePrompt(token: "sks", className: "dog").classPrompt, "a photo of a dog")
        XCTAssertEqual(InstancePrompt(token: "sks", className: "owl").classPrompt, "a photo of an owl")
        XCTAssertEqual(InstancePrompt(token: "sks", style: true).text, "a picture in the style of sks")
        XCTAssertEqual(InstancePrompt(token: "sks", className: "dog", override: "sks dog, photo").text, "sks dog, photo")
        XCTAssertNil(InstancePrompt(token: "sks").classPrompt)
    }
}

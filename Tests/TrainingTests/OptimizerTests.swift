import Autograd
import Foundation
import PictureWorld
import TensorCore
import XCTest
@testable import Training

final class OptimizerTests: XCTestCase {
    /// Two AdamW steps against torch.optim.AdamW's update rule written out in Double:
    /// p ← p(1 − lr·λ); m ← β1 m + (1 − β1) g; v ← β2 v + (1 − β2) g²;
    /// p ← p − lr/(1 − β1ᵗ) · m / (√v/√(1 − β2ᵗ) + ε).
    func testAdamWMatchesTheReferenceUpdateRule() throws {
        let p = Variable(try Tensor(shape: [3], scalars: [0.5, -1.0, 2.0]), requiresGrad: true)
        let grads: [[Float]] = [[0.1, -0.2, 0.3], [-0.05, 0.4, 0.0]]
        let lr: Float = 1e-2, wd: Float = 1e-2
        let optimizer = AdamW(groups: [ParameterGroup(parameters: [("w", p)])], settings: AdamWSettings(weightDecay: wd))
        var ref: [Double] = [0.5, -1.0, 2.0], m = [Double](repeating: 0, count: 3), v = m
        for (t, g) in grads.enumerated() {
            p.grad = try Tensor(shape: [3], scalars: g)
            optimizer.update(learningRate: lr)
            let step = Double(t + 1)
            for j in 0..<3 {
                ref[j] *= 1 - Double(lr) * Double(wd)
                m[j] = 0.9 * m[j] + 0.1 * Double(g[j])
                v[j] = 0.999 * v[j] + 0.001 * Double(g[j]) * Double(g[j])
                let denom = v[j].squareRoot() / (1 - pow(0.999, step)).squareRoot() + 1e-8
                ref[j] -= Double(lr) / (1 - pow(0.9, step)) * m[j] / denom
            }
        }
        let got = p.value.withUnsafeBufferPointer(Array.init)
        for j in 0..<3 { XCTAssertEqual(Double(got[j]), ref[j], accuracy: 1e-6, "element \(j)") }
        // First step of Adam moves each coordinate by ≈ lr·sign(g): the sign of the move is checked too.
        XCTAssertLessThan(got[0], 0.5)
        XCTAssertEqual(optimizer.step, 2)
    }

    func testGradientClippingScalesToMaxNorm() throws {
        let a = Variable(Tensor(zeros: [2]), requiresGrad: true), b = Variable(Tensor(zeros: [1]), requiresGrad: true)
        a.grad = try Tensor(shape: [2], scalars: [3, 0])
        b.grad = try Tensor(shape: [1], scalars: [4])
        let norm = clipGradientNorm([a, b], maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        XCTAssertEqual(a.grad!.withUnsafeBufferPointer { $0[0] }, 0.6, accuracy: 1e-6)
        XCTAssertEqual(b.grad!.withUnsafeBufferPointer { $0[0] }, 0.8, accuracy: 1e-6)
    }

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

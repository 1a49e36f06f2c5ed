// Judge: the committed weights read held-out scenes at ≥ 95 % per attribute (clean), degraded ones well, noise
// as no object, and a clean checkered coat as checkered; the loss's gradient, saving/loading and the fidelity helpers.
import Autograd
@testable import Judge
import PictureWorld
import TensorCore
import TestSupport
import XCTest

final class JudgeTests: XCTestCase {
    /// The weights committed at pipelines/judge/judge.safetensors (made by `world train-judge`, see README).
    static var committedWeights: String { TestPaths.repository("pipelines/judge/judge.safetensors") }

    func testCommittedJudgeIsAccurateOnHeldOutScenes() throws {
        let judge = try Judge(contentsOf: Self.committedWeights)
        let accuracy = try JudgeTraining.accuracy(of: judge, count: 200)
        for (name, value) in [("object", accuracy.object), ("colour", accuracy.color), ("background", accuracy.background),
                              ("pattern", accuracy.pattern), ("style", accuracy.style)] {
            XCTAssertGreaterThanOrEqual(value, 0.95, "\(name): \(accuracy)")
        }
        XCTAssertGreaterThanOrEqual(accuracy.clean, 0.9, "clean head on clean scenes: \(accuracy)")
        let degraded = try JudgeTraining.accuracy(of: judge, count: 200, augmented: true)
        XCTAssertGreaterThanOrEqual(degraded.clean, 0.85, "clean head on degraded scenes: \(degraded)")
        for (name, value) in [("object", degraded.object), ("colour", degraded.color), ("background", degraded.background),
                              ("pattern", degraded.pattern), ("style", degraded.style)] {
            XCTAssertGreaterThanOrEqual(value, 0.85, "degraded \(name): \(degraded)")
        }
    }

    /// Pure noise is read as no object (≥ 95 %), and so are most blobs in noise and bare places.
    func testCommittedJudgeReadsNoiseAsNoObject() throws {
        let judge = try Judge(contentsOf: Self.committedWeights)
        XCTAssertGreaterThanOrEqual(try JudgeTraining.noObjectRate(of: judge, kind: .noiseField, count: 200), 0.95)
        XCTAssertGreaterThanOrEqual(try JudgeTraining.noObjectRate(of: judge, kind: .blob, count: 200), 0.9)
        XCTAssertGreaterThanOrEqual(try JudgeTraining.noObjectRate(of: judge, kind: .barePlace, count: 200), 0.9)
    }

    /// A clean checkered coat on grass (the subject's, in new poses and places on the lawn) reads as checkered, not
    /// spotted; softened as a diffusion model draws it (blurred, noisy, compressed), it still does nearly always.
    func testCommittedJudgeReadsACheckeredCoatOnGrass() throws {
        let judge = try Judge(contentsOf: Self.committedWeights)
        var rng = PhiloxRandom(seed: 0xC4EC)
        var scenes = (0..<12).map { _ in Scene.random(Examples.subjectLabels(.grass), using: &rng) }
        scenes.append(Examples.subjectScenes()[0])
        for size in [64, 128] {
            let verdicts = try judge.evaluate(try scenes.map { try $0.render(size: size) })
            for (i, v) in verdicts.enumerated() {
                XCTAssertEqual(v.object, .dog, "scene \(i) at \(size)")
                XCTAssertEqual(v.pattern, .checkered, "scene \(i) at \(size): \(v.pattern) \(v.patternProbability)")
            }
        }
        var noise = PhiloxRandom(seed: 0xC4ED)
        for degradation in ["blur", "noise", "jpeg"] {
            var images = Tensor(zeros: [scenes.count, 64, 64, 3])
            try images.withUnsafeMutableBufferPointer { buf in
                for (k, scene) in scenes.enumerated() {
                    let p = buf.baseAddress! + k * 64 * 64 * 3
                    let image = try scene.render(size: 64)
                    for i in 0..<(64 * 64 * 3) { p[i] = Float(image.pixels[i]) / 127.5 - 1 }
                    switch degradation {
                    case "blur": JudgeAugmentation.gaussianBlur(p, 64, 64, sigma: 1)
                    case "noise": JudgeAugmentation.addNoise(p, 64, 64, sigma: 0.1, blotchSigma: 0.1, using: &noise)
                    default: JudgeAugmentation.compress(p, 64, 64, quality: 30, subsampleChroma: true)
                    }
                }
            }
            let verdicts = try judge.evaluate(images)
            let checkered = verdicts.filter { $0.object == .dog && $0.pattern == .checkered }.count
            XCTAssertGreaterThanOrEqual(checkered, scenes.count - 1, "\(degradation): \(verdicts.map(\.pattern))")
        }
    }

    /// d(loss)/d(logits) of the multi-head cross-entropy against central differences in Double.
    func testCrossEntropyGradient() throws {
        var rng = PhiloxRandom(seed: 4)
        let x = Variable(rng.normal(shape: [3, JudgeHeads.width]), requiresGrad: true)
        // the third row shows no object: only its object head (class "no object") and background count
        let targets = [[1, 2, 3, 0, 2, 1], [7, 10, 5, 3, 0, 0], [JudgeHeads.noObject, -1, 4, -1, -1, -1]]
        try multiHeadCrossEntropy(x, targets: targets, heads: JudgeHeads.all).backward()
        let analytic = try XCTUnwrap(x.grad).scalars
        func loss(_ v: [Float]) throws -> Double {
            let t = try Tensor(shape: x.shape, scalars: v)
            var total = 0.0
            for row in 0..<3 {
                for (h, r) in JudgeHeads.all.enumerated() where targets[row][h] != JudgeHeads.ignored {
                    let z = r.map { Double(t[flat: row * JudgeHeads.width + $0]) }
                    let m = z.max() ?? 0
                    total += m + log(z.map { exp($0 - m) }.reduce(0, +)) - z[targets[row][h]]
                }
            }
            return total / 3
        }
        let base = x.value.scalars
        for i in [0, 5, 9, 20, 31, 34, 40, 74, 77, 90, 95, 104] {
            var plus = base, minus = base
            plus[i] += 1e-2
            minus[i] -= 1e-2
            let numeric = (try loss(plus) - loss(minus)) / 2e-2
            XCTAssertEqual(Double(analytic[i]), numeric, accuracy: 1e-4, "logit \(i)")
        }
        XCTAssertThrowsError(try multiHeadCrossEntropy(x, targets: [[0, 0, 0, 0, 0]], heads: JudgeHeads.all))
        XCTAssertThrowsError(try multiHeadCrossEntropy(x, targets: [[0, 11, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]],
                                                       heads: JudgeHeads.all))
        // the ignored heads of the third row get no gradient
        for h in [1, 3, 4, 5] { for j in JudgeHeads.all[h] { XCTAssertEqual(analytic[2 * JudgeHeads.width + j], 0) } }
    }

    func testSaveAndLoadKeepVerdicts() throws {
        let network = JudgeNetwork()
        var rng = PhiloxRandom(seed: 11)
        network.initializeParameters(random: &rng)
        let judge = Judge(network: network)
        let path = NSTemporaryDirectory() + "judge-\(UInt32.random(in: 0...UInt32.max)).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try judge.save(to: path)
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        XCTAssertLessThan(size, 1_000_000)
        let loaded = try Judge(contentsOf: path)
        let images = try (0..<4).map { try WorldDataset(seed: 8).sample(at: $0).image }
        let (a, b) = (try judge.evaluate(images), try loaded.evaluate(images))
        for (x, y) in zip(a, b) {
            for (p, q) in zip(x.probabilities.joined(), y.probabilities.joined()) { XCTAssertEqual(p, q, accuracy: 2e-3) }
        }
        XCTAssertThrowsError(try Judge(contentsOf: path + ".missing"))
    }

    func testFidelityHelpers() {
        func verdict(_ o: ObjectKind, _ c: NamedColor, _ b: Background, _ p: CoatPattern) -> Verdict {
            Verdict(object: o, objectProbability: 1, color: c, colorProbability: 1, background: b, backgroundProbability: 1,
                    pattern: p, patternProbability: 1, style: .photo, styleProbability: 1, probabilities: [])
        }
        let plain = verdict(.dog, .brown, .beach, .plain), subject = verdict(.dog, .brown, .snow, .checkered)
        XCTAssertTrue(Fidelity.matchesPrompt("a photo of a brown dog on the beach", plain))
        XCTAssertFalse(Fidelity.matchesPrompt("a photo of a black dog on the beach", plain))
        XCTAssertFalse(Fidelity.matchesPrompt("a brown cat, beach", plain))
        XCTAssertFalse(Fidelity.matchesPrompt("a brown dog in the snow", plain))
        XCTAssertTrue(Fidelity.matchesBackground("a photo of sks dog in the snow", subject))
        XCTAssertTrue(Fidelity.showsSubject(subject))
        XCTAssertFalse(Fidelity.showsSubject(plain))
        XCTAssertTrue(Fidelity.showsReservedCoat(subject))
        var nothing = subject
        nothing.object = nil
        XCTAssertFalse(Fidelity.showsReservedCoat(nothing))
        XCTAssertFalse(Fidelity.showsSubject(nothing))
        XCTAssertFalse(Fidelity.matchesPrompt("a photo of a brown dog in the snow", nothing))
        XCTAssertTrue(Fidelity.showsNoObject(nothing))
        XCTAssertNil(nothing.labels)
        XCTAssertEqual(Fidelity.rate([plain, subject, subject, plain], Fidelity.showsSubject), 0.5)
    }
}

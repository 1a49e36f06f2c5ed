// JudgeTraining: trains the judge on freshly rendered, labelled scenes of the whole world (every coat,
// the reserved one included, and every style), and measures its accuracy on held-out scenes.
//
// Batch b of a run is items b·B ..< (b+1)·B of `WorldDataset(seed:, options: .judgeTraining)`; each image is
// perturbed (sensor noise, blur) so the judge also reads the softer pictures a diffusion model draws.
// The learning rate warms up linearly, then follows a cosine to 5 % of its peak.
import Autograd
import Foundation
import NN
import PictureWorld
import TensorCore

public struct JudgeTrainingConfig: Sendable {
    public var seed: UInt64
    public var steps: Int
    public var batchSize: Int = 32
    public var learningRate: Float = 2e-3
    public var warmupSteps: Int = 100
    public var weightDecay: Float = 1e-4

    public init(seed: UInt64, steps: Int) {
        self.seed = seed
        self.steps = steps
    }
}

/// Held-out accuracy per attribute. `pattern` counts dogs and cats only (other objects have no coat).
public struct JudgeAccuracy: Sendable, CustomStringConvertible {
    public var count: Int
    public var object: Double, color: Double, background: Double, pattern: Double, style: Double
    /// Fraction of scenes with all five attributes right.
    public var allRight: Double

    public var worst: Double { [object, color, background, pattern, style].min() ?? 0 }

    public var description: String {
        func pct(_ x: Double) -> String { String(format: "%.1f%%", 100 * x) }
        return "\(count) scenes: object \(pct(object)), colour \(pct(color)), background \(pct(background)), "
            + "pattern (animals) \(pct(pattern)), style \(pct(style)), all five \(pct(allRight))"
    }
}

public enum JudgeTraining {
    /// Seed of the held-out scenes (never a training seed of `world train-judge` runs in this repository).
    public static let heldoutSeed: UInt64 = 0x0E7A_1D00

    /// Trains a fresh network; `progress(step, loss)` runs after every step, `checkpoint(step, network)`
    /// every `checkpointEvery` steps and at the end.
    public static func train(_ config: JudgeTrainingConfig, checkpointEvery: Int = 250,
                             progress: (Int, Float) -> Void = { _, _ in },
                             checkpoint: (Int, JudgeNetwork) throws -> Void = { _, _ in }) throws -> JudgeNetwork {
        guard config.steps > 0, config.batchSize > 0 else {
            throw JudgeError.invalidInput("training needs steps > 0 and batch size > 0")
        }
        let network = JudgeNetwork()
        var initRandom = PhiloxRandom(seed: config.seed ^ 0x1A17)
        network.initializeParameters(random: &initRandom)
        network.train()
        let data = try WorldDataset(seed: config.seed, options: .judgeTraining, size: JudgeNetwork.inputSize)
        let adam = AdamW(parameters: network.trainableParameters(), learningRate: config.learningRate,
                         weightDecay: config.weightDecay)
        var augmentRandom = PhiloxRandom(seed: config.seed ^ 0xA061)
        for step in 0..<config.steps {
            adam.learningRate = learningRate(config, step: step)
            let indices = Array((step * config.batchSize)..<((step + 1) * config.batchSize))
            var (images, _, labels) = try data.batch(indices)
            augment(&images, using: &augmentRandom)
            network.zeroGrad()
            let logits = try network(Variable(images))
            let loss = try multiHeadCrossEntropy(logits, targets: labels.map(JudgeHeads.targets), heads: JudgeHeads.all)
            try loss.backward()
            adam.update()
            progress(step + 1, loss.value.item)
            if (step + 1) % checkpointEvery == 0 || step + 1 == config.steps { try checkpoint(step + 1, network) }
        }
        network.eval()
        return network
    }

    /// The learning rate of step `step` (0-based).
    public static func learningRate(_ c: JudgeTrainingConfig, step: Int) -> Float {
        if step < c.warmupSteps { return c.learningRate * Float(step + 1) / Float(c.warmupSteps) }
        let t = Float(step - c.warmupSteps) / Float(max(c.steps - c.warmupSteps, 1))
        return c.learningRate * (0.05 + 0.95 * 0.5 * (1 + cosf(.pi * t)))
    }

    /// Per image: with probability ½ Gaussian noise of σ ~ U(0, 0.12); with probability ¼ a 3×3 box blur.
    static func augment(_ images: inout Tensor, using rng: inout PhiloxRandom) {
        let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2])
        let plane = h * w * 3
        for i in 0..<n {
            let noisy = rng.next() & 1 == 0, blurred = rng.next() % 4 == 0
            let sigma = Float(rng.next() >> 40) * 0x1p-24 * 0.12
            let noise = noisy ? rng.normal(shape: [plane], std: sigma) : Tensor(zeros: [0])
            images.withUnsafeMutableBufferPointer { buf in
                let p = buf.baseAddress! + i * plane
                if blurred { boxBlur(p, h, w) }
                if noisy { noise.withUnsafeBufferPointer { z in for j in 0..<plane { p[j] += z[j] } } }
            }
        }
    }

    /// In-place 3×3 box blur of one [h, w, 3] image (edges clamp).
    private static func boxBlur(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int) {
        let source = Array(UnsafeBufferPointer(start: p, count: h * w * 3))
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    var s: Float = 0
                    for dy in -1...1 {
                        for dx in -1...1 {
                            s += source[((min(max(y + dy, 0), h - 1)) * w + min(max(x + dx, 0), w - 1)) * 3 + c]
                        }
                    }
                    p[(y * w + x) * 3 + c] = s / 9
                }
            }
        }
    }

    /// Accuracy of `judge` on `count` clean held-out scenes of the whole world.
    public static func accuracy(of judge: Judge, count: Int, seed: UInt64 = heldoutSeed) throws -> JudgeAccuracy {
        let data = try WorldDataset(seed: seed, options: .all, size: JudgeNetwork.inputSize)
        var hits = [0, 0, 0, 0, 0], animals = 0, all = 0
        for start in stride(from: 0, to: count, by: 64) {
            let samples = try (start..<min(start + 64, count)).map { try data.sample(at: $0) }
            let verdicts = try judge.evaluate(samples.map(\.image))
            for (s, v) in zip(samples, verdicts) {
                let t = s.scene.labels
                let right = [v.object == t.object, v.color == t.color, v.background == t.background,
                             v.pattern == t.pattern, v.style == t.style]
                for (k, r) in right.enumerated() where r && (k != 3 || t.object.hasCoat) { hits[k] += 1 }
                if t.object.hasCoat { animals += 1 }
                if !right.contains(false) { all += 1 }
            }
        }
        let n = Double(max(count, 1))
        return JudgeAccuracy(count: count, object: Double(hits[0]) / n, color: Double(hits[1]) / n,
                             background: Double(hits[2]) / n, pattern: Double(hits[3]) / Double(max(animals, 1)),
                             style: Double(hits[4]) / n, allRight: Double(all) / n)
    }
}

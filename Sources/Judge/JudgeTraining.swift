// JudgeTraining: trains the judge on freshly rendered, labelled scenes of the whole world (every coat,
// the reserved one included, and every style), and measures its accuracy on held-out scenes.
//
// Batch b of a run is items b·B ..< (b+1)·B of `WorldDataset(seed:, options: .judgeTraining)`; a share of
// them (`noObjectShare`) is replaced by a picture of no object (`NoObjectImages`: the item's scene without
// its object, a noise field, a blob in noise), and every image is degraded at random (`JudgeAugmentation`:
// colour jitter, blur, noise, JPEG-like compression) so the judge also reads the softer pictures a diffusion
// model draws. Replacement and degradation draw from one stream seeded by the run's seed, so a run is
// reproducible. The learning rate warms up linearly, then follows a cosine to 5 % of its peak.
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
    /// Share of the items replaced by a picture of no object.
    public var noObjectShare: Double = 0.15
    /// Share of the pictures toned as a monochrome print (`JudgeAugmentation.randomTone`) before the
    /// degradations; their colour is left out of the loss.
    public var tonedShare: Double = 0.1
    /// Share of the pictures left undegraded (the others get `augmentation`'s random degradations): with the
    /// pictures that draw no degradation, about half are clean for the clean head.
    public var cleanShare: Double = 0.35
    /// Share of the pictures overlaid with another picture of the batch (a ghosted mix of two scenes, as an
    /// undertrained diffusion model draws the mean of several pictures): visibly degraded for the clean head,
    /// no target for the other heads.
    public var ghostShare: Double = 0.1
    /// Share of the pictures of an object whose object is a patchwork of itself in other colours and coats and
    /// slightly shifted (`modeMix`): the speckled, many-coloured, doubled shapes a diffusion model draws when it
    /// mixes modes. Visibly degraded for the clean head, no target for the other heads.
    public var modeMixShare: Double = 0.1
    public var augmentation = JudgeAugmentation.Probabilities()

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
    /// The clean head: the share of pictures it reads right, clean as clean and visibly degraded as degraded
    /// (slightly degraded ones are not counted).
    public var clean: Double = 0

    public var worst: Double { [object, color, background, pattern, style].min() ?? 0 }

    public var description: String {
        func pct(_ x: Double) -> String { String(format: "%.1f%%", 100 * x) }
        return "\(count) scenes: object \(pct(object)), colour \(pct(color)), background \(pct(background)), "
            + "pattern (animals) \(pct(pattern)), style \(pct(style)), all five \(pct(allRight)); clean head \(pct(clean))"
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
        let data = try trainingData(config)
        let adam = AdamW(parameters: network.trainableParameters(), learningRate: config.learningRate,
                         weightDecay: config.weightDecay)
        for step in 0..<config.steps {
            adam.learningRate = learningRate(config, step: step)
            let (images, targets) = try trainingBatch(config, step: step, data: data)
            network.zeroGrad()
            let logits = try network(Variable(images))
            let loss = try multiHeadCrossEntropy(logits, targets: targets, heads: JudgeHeads.all)
            try loss.backward()
            adam.update()
            progress(step + 1, loss.value.item)
            if (step + 1) % checkpointEvery == 0 || step + 1 == config.steps { try checkpoint(step + 1, network) }
        }
        network.eval()
        return network
    }

    /// The images [B, 64, 64, 3] and targets of training step `step` (0-based) of a run: items
    /// step·B ..< (step+1)·B of `data`, some replaced by pictures of no object, all degraded at random from a
    /// stream that depends only on the seed and the step.
    public static func trainingBatch(_ config: JudgeTrainingConfig, step: Int, data: WorldDataset) throws -> (images: Tensor, targets: [[Int]]) {
        let indices = Array((step * config.batchSize)..<((step + 1) * config.batchSize))
        var (images, _, labels) = try data.batch(indices)
        var targets = labels.map(JudgeHeads.targets)
        var rng = PhiloxRandom(seed: (config.seed ^ 0xA061) &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15)
        let scenes = indices.map { data.describe($0).scene }
        try replaceWithNoObjectPictures(&images, targets: &targets, share: config.noObjectShare, scenes: scenes, using: &rng)
        tone(&images, targets: &targets, share: config.tonedShare, using: &rng)
        ghost(&images, targets: &targets, share: config.ghostShare, using: &rng)
        try modeMix(&images, targets: &targets, share: config.modeMixShare, scenes: scenes, using: &rng)
        // a share of the pictures is kept clean (the same draws either way), so the clean head sees both classes
        // about equally often
        let keepClean = (0..<indices.count).map { _ in Double(rng.unit()) < config.cleanShare }
        let (h, w) = (images.shape[1], images.shape[2])
        let degradations = images.withUnsafeMutableBufferPointer { buf in
            keepClean.enumerated().map { i, clean in
                JudgeAugmentation.augment(buf.baseAddress! + i * h * w * 3, h, w, using: &rng,
                                          probabilities: clean ? .none : config.augmentation)
            }
        }
        for (i, d) in degradations.enumerated() where targets[i][0] != JudgeHeads.noObject && targets[i][0] != JudgeHeads.ignored {
            targets[i][5] = d == .none ? 1 : d == .visible ? 0 : JudgeHeads.ignored
        }
        return (images, targets)
    }

    /// The training data of `train`: `WorldDataset(seed:, options: .judgeTraining)` at the judge's input size.
    public static func trainingData(_ config: JudgeTrainingConfig) throws -> WorldDataset {
        try WorldDataset(seed: config.seed, options: .judgeTraining, size: JudgeNetwork.inputSize)
    }

    /// Replaces each image of a batch with probability `share` by a picture of no object (kinds in equal
    /// shares; a bare place is drawn from the item's own scene) and sets its targets.
    static func replaceWithNoObjectPictures(_ images: inout Tensor, targets: inout [[Int]], share: Double,
                                            scenes: [Scene], using rng: inout PhiloxRandom) throws {
        let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2])
        try images.withUnsafeMutableBufferPointer { buf in
            for i in 0..<n {
                let replace = Double(rng.unit()) < share, kind = NoObjectKind.allCases[Int(rng.next() % 3)]
                var pictureRandom = PhiloxRandom(seed: rng.next())
                guard replace else { continue }
                targets[i] = try NoObjectImages.draw(kind, into: buf.baseAddress! + i * h * w * 3, h, w, scene: scenes[i],
                                                     using: &pictureRandom)
            }
        }
    }

    /// Tones each image of a batch with probability `share` as a random monochrome print and leaves its colour
    /// out of the loss. The same number of draws for every image.
    static func tone(_ images: inout Tensor, targets: inout [[Int]], share: Double, using rng: inout PhiloxRandom) {
        let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2])
        images.withUnsafeMutableBufferPointer { buf in
            for i in 0..<n {
                let toned = Double(rng.unit()) < share
                var toneRandom = PhiloxRandom(seed: rng.next())
                guard toned else { continue }
                JudgeAugmentation.randomTone(buf.baseAddress! + i * h * w * 3, h, w, using: &toneRandom)
                targets[i][1] = JudgeHeads.ignored
            }
        }
    }

    /// Overlays each image of a batch with probability `share` with another image of the batch, drawn at random
    /// (weight 0.3–0.5 on the other picture), and keeps only its clean-head target: degraded. The same number of draws
    /// for every image; blends read the batch as it was before this step.
    static func ghost(_ images: inout Tensor, targets: inout [[Int]], share: Double, using rng: inout PhiloxRandom) {
        let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2])
        guard n > 1 else { return }
        let source = images.scalars, size = h * w * 3
        images.withUnsafeMutableBufferPointer { buf in
            for i in 0..<n {
                let ghosted = Double(rng.unit()) < share, other = (i + 1 + Int(rng.next() % UInt64(n - 1))) % n
                let weight = 0.3 + 0.2 * rng.unit()
                guard ghosted else { continue }
                for j in 0..<size { buf[i * size + j] = (1 - weight) * source[i * size + j] + weight * source[other * size + j] }
                targets[i] = [Int](repeating: JudgeHeads.ignored, count: JudgeHeads.all.count)
                targets[i][5] = 0
            }
        }
    }

    /// Replaces each picture of an object with probability `share` by a block patchwork (blocks of 2, 4 or 8
    /// pixels) of its scene and two or three variants of it — the object in another colour and coat, some
    /// shifted sideways — and keeps only its clean-head target: degraded. The same number of draws for every
    /// picture (each mix draws from its own stream).
    static func modeMix(_ images: inout Tensor, targets: inout [[Int]], share: Double, scenes: [Scene],
                        using rng: inout PhiloxRandom) throws {
        let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2])
        let size = h * w * 3
        for i in 0..<n {
            let mixed = Double(rng.unit()) < share
            var mix = PhiloxRandom(seed: rng.next())
            guard mixed, targets[i][0] != JudgeHeads.noObject, targets[i][0] != JudgeHeads.ignored, h == w else { continue }
            let scene = scenes[i]
            var variants: [[Float]] = [Array(images.scalars[(i * size)..<((i + 1) * size)])]
            for _ in 0..<(2 + Int(mix.next() % 2)) {
                var labels = scene.labels, layout = scene.layout
                labels.color = mix.pick(NamedColor.allCases)
                if labels.object.hasCoat { labels.pattern = mix.pick(CoatPattern.allCases) }
                if mix.unit() < 0.5 { layout.x += (mix.unit() < 0.5 ? -1 : 1) * (3 + 6 * mix.unit()) }
                variants.append(try Scene(labels: labels, layout: layout).render(size: h).pixels.map { Float($0) / 127.5 - 1 })
            }
            let block = 2 << Int(mix.next() % 3)
            images.withUnsafeMutableBufferPointer { buf in
                for by in stride(from: 0, to: h, by: block) {
                    for bx in stride(from: 0, to: w, by: block) {
                        let v = variants[Int(mix.next() % UInt64(variants.count))]
                        for y in by..<min(by + block, h) {
                            for x in bx..<min(bx + block, w) {
                                for c in 0..<3 { buf[i * size + (y * w + x) * 3 + c] = v[(y * w + x) * 3 + c] }
                            }
                        }
                    }
                }
            }
            targets[i] = [Int](repeating: JudgeHeads.ignored, count: JudgeHeads.all.count)
            targets[i][5] = 0
        }
    }

    /// The learning rate of step `step` (0-based).
    public static func learningRate(_ c: JudgeTrainingConfig, step: Int) -> Float {
        if step < c.warmupSteps { return c.learningRate * Float(step + 1) / Float(c.warmupSteps) }
        let t = Float(step - c.warmupSteps) / Float(max(c.steps - c.warmupSteps, 1))
        return c.learningRate * (0.05 + 0.95 * 0.5 * (1 + cosf(.pi * t)))
    }

    /// Seed of the degradations of the held-out scenes in `accuracy(of:count:seed:augmented:)`.
    static let heldoutAugmentationSeed: UInt64 = 0xDE6A_0001

    /// Accuracy of `judge` on `count` held-out scenes of the whole world, clean or degraded as in training.
    /// With `sepia`, every scene is first printed in sepia (`Examples.sepia`): its colour is then not
    /// readable, and `color` counts how often the judge still names the scene's colour.
    public static func accuracy(of judge: Judge, count: Int, seed: UInt64 = heldoutSeed,
                                augmented: Bool = false, sepia: Bool = false) throws -> JudgeAccuracy {
        let data = try WorldDataset(seed: seed, options: .all, size: JudgeNetwork.inputSize)
        var augmentRandom = PhiloxRandom(seed: seed ^ heldoutAugmentationSeed)
        var hits = [0, 0, 0, 0, 0], animals = 0, all = 0, cleanRight = 0, cleanCounted = 0
        for start in stride(from: 0, to: count, by: 64) {
            let indices = Array(start..<min(start + 64, count))
            var (images, _, labels) = try data.batch(indices)
            if sepia {
                let (h, w) = (images.shape[1], images.shape[2])
                images.withUnsafeMutableBufferPointer { buf in
                    for k in indices.indices { JudgeAugmentation.sepia(buf.baseAddress! + k * h * w * 3, h, w) }
                }
            }
            let degradations = augmented ? JudgeAugmentation.augment(&images, using: &augmentRandom)
                : [JudgeAugmentation.Degradation](repeating: .none, count: indices.count)
            let verdicts = try judge.evaluate(images)
            for (d, v) in zip(degradations, verdicts) where d != .mild {
                cleanCounted += 1
                if v.clean == (d == .none) { cleanRight += 1 }
            }
            for (t, v) in zip(labels, verdicts) {
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
                             style: Double(hits[4]) / n, allRight: Double(all) / n,
                             clean: Double(cleanRight) / Double(max(cleanCounted, 1)))
    }

    /// Seed of the held-out pictures of no object (never a training seed).
    public static let heldoutNoObjectSeed: UInt64 = 0x0E7A_1D01

    /// The share of `count` held-out pictures of `kind` (clean, as drawn) that the judge reads as "no object".
    public static func noObjectRate(of judge: Judge, kind: NoObjectKind, count: Int,
                                    seed: UInt64 = heldoutNoObjectSeed) throws -> Double {
        let side = JudgeNetwork.inputSize
        let data = try WorldDataset(seed: seed, options: .all, size: side)
        var rng = PhiloxRandom(seed: seed ^ UInt64(kind.rawValue + 1))
        var none = 0
        for start in stride(from: 0, to: count, by: 64) {
            let indices = Array(start..<min(start + 64, count))
            var images = Tensor(zeros: [indices.count, side, side, 3])
            try images.withUnsafeMutableBufferPointer { buf in
                for (k, i) in indices.enumerated() {
                    _ = try NoObjectImages.draw(kind, into: buf.baseAddress! + k * side * side * 3, side, side,
                                                scene: data.describe(i).scene, using: &rng)
                }
            }
            none += try judge.evaluate(images).filter(Fidelity.showsNoObject).count
        }
        return Double(none) / Double(max(count, 1))
    }
}

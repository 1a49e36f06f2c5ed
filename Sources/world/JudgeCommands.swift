// The judge's commands: train-judge, judge-accuracy, judge.
import CLI
import Foundation
import Judge
import PictureWorld
import PNGImage
import TensorCore

func trainJudge(_ a: Arguments) throws {
    var config = JudgeTrainingConfig(seed: UInt64(try a.int("seed")), steps: try a.int("steps"))
    config.batchSize = try a.int("batch", default: config.batchSize)
    config.learningRate = try a.float("lr", default: config.learningRate)
    let out = try a.string("out")
    try makeDirectory(URL(fileURLWithPath: out).deletingLastPathComponent().path)
    let start = Date()
    var recent: [Float] = []
    var command = "world train-judge --seed \(config.seed) --steps \(config.steps) --out \(out)"
    if a.parsed.string("batch") != nil { command += " --batch \(config.batchSize)" }
    if a.parsed.string("lr") != nil { command += " --lr \(config.learningRate)" }
    let metadata = ["seed": "\(config.seed)", "steps": "\(config.steps)", "batch": "\(config.batchSize)",
                    "learning_rate": "\(config.learningRate)", "no_object_share": "\(config.noObjectShare)", "toned_share": "\(config.tonedShare)", "clean_share": "\(config.cleanShare)", "ghost_share": "\(config.ghostShare)", "mode_mix_share": "\(config.modeMixShare)",
                    "augmentation": "monochrome toning, jitter, blur, noise, jpeg", "command": command]
    let network = try JudgeTraining.train(config, progress: { step, loss in
        recent.append(loss)
        if step % 50 == 0 {
            let mean = recent.reduce(0, +) / Float(recent.count)
            recent.removeAll()
            print(String(format: "step %5d  loss %.4f  lr %.5f  %.0f s", step, mean,
                         JudgeTraining.learningRate(config, step: step - 1),
                         Date().timeIntervalSince(start)))
        }
    }, checkpoint: { step, network in
        try Judge(network: network).save(to: out, metadata: metadata.merging(["trained_steps": "\(step)"]) { $1 })
        network.train()
    })
    print(String(format: "trained in %.0f s wall, %.0f s CPU (user + sys)", Date().timeIntervalSince(start), ProcessUsage.now().cpuSeconds))
    try printAccuracy(of: Judge(network: network), count: 1000, seed: JudgeTraining.heldoutSeed)
    print("wrote \(out)")
}


/// Held-out accuracy on clean and on degraded scenes, and how often pictures of no object read as such.
func printAccuracy(of judge: Judge, count: Int, seed: UInt64) throws {
    print("held-out accuracy, clean:    \(try JudgeTraining.accuracy(of: judge, count: count, seed: seed))")
    print("held-out accuracy, degraded: \(try JudgeTraining.accuracy(of: judge, count: count, seed: seed, augmented: true))")
    print("held-out accuracy, sepia (colour not readable): \(try JudgeTraining.accuracy(of: judge, count: count, seed: seed, sepia: true))")
    print("held-out accuracy, sepia and degraded: \(try JudgeTraining.accuracy(of: judge, count: count, seed: seed, augmented: true, sepia: true))")
    let rates = try NoObjectKind.allCases.map {
        String(format: "%@ %.1f%%", $0.name, 100 * (try JudgeTraining.noObjectRate(of: judge, kind: $0, count: count)))
    }
    print("read as no object (\(count) each): " + rates.joined(separator: ", "))
}

func judgeAccuracy(_ a: Arguments) throws {
    let judge = try Judge(contentsOf: try a.string("weights", default: "pipelines/judge/judge.safetensors"))
    let seed = UInt64(try a.int("seed", default: Int(JudgeTraining.heldoutSeed)))
    try printAccuracy(of: judge, count: try a.int("count", default: 1000), seed: seed)
}

func judgeImages(_ a: Arguments) throws {
    guard !a.positional.isEmpty else { throw CommandLineError.usage("world judge needs image paths") }
    let judge = try Judge(contentsOf: try a.string("weights", default: "pipelines/judge/judge.safetensors"))
    for path in a.positional {
        let v = try judge.evaluate(try PNG.read(path: path).image)
        print(String(format: "%@: %@ %.2f, %@ %.2f, %@ %.2f, %@ %.2f, %@ %.2f, %@ %.2f", path,
                     v.object?.word ?? "no object", v.objectProbability, v.color.word, v.colorProbability,
                     v.background.word, v.backgroundProbability, v.pattern.word, v.patternProbability,
                     v.style.noun, v.styleProbability, v.clean ? "clean" : "degraded", v.cleanProbability))
    }
}

/// Writes training step `--step` of a `train-judge --seed S` run as the judge sees it: a grid of the batch's
/// pictures (degraded, some of no object) and each picture's targets.
func judgeBatch(_ a: Arguments) throws {
    let config = JudgeTrainingConfig(seed: UInt64(try a.int("seed")), steps: 1)
    let step = try a.int("step", default: 0), out = try a.string("out")
    guard step >= 0 else { throw CommandLineError.usage("--step must be ≥ 0") }
    let (images, targets) = try JudgeTraining.trainingBatch(config, step: step, data: try JudgeTraining.trainingData(config))
    let (n, side) = (images.shape[0], images.shape[1])
    let plane = side * side * 3, scalars = images.scalars
    var tiles: [Image] = []
    for i in 0..<n {
        let pixels = Array(scalars[(i * plane)..<((i + 1) * plane)])
        tiles.append(try Image(tensorHWC: try Tensor(shape: [side, side, 3], scalars: pixels)))
    }
    try makeDirectory(out)
    try PNG.write(try Image.grid(tiles, columns: 8, gap: 2), to: "\(out)/batch-\(step).png")
    let lines = targets.enumerated().map { i, t in "\(i): " + JudgeHeads.describe(targets: t) }
    try writeText(lines.joined(separator: "\n") + "\n", to: "\(out)/batch-\(step).txt")
    print("wrote \(out)/batch-\(step).png and .txt (\(n) pictures, read row by row)")
}

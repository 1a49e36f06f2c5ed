// The judge's commands: train-judge, judge-accuracy, judge.
import CLI
import Foundation
import Judge
import PictureWorld
import PNGImage

func trainJudge(_ a: Arguments) throws {
    var config = JudgeTrainingConfig(seed: UInt64(try a.int("seed")), steps: try a.int("steps"))
    config.batchSize = try a.int("batch", default: config.batchSize)
    config.learningRate = try a.float("lr", default: config.learningRate)
    let out = try a.string("out")
    try makeDirectory(URL(fileURLWithPath: out).deletingLastPathComponent().path)
    let start = Date()
    var recent: [Float] = []
    let metadata = ["seed": "\(config.seed)", "steps": "\(config.steps)", "batch": "\(config.batchSize)",
                    "learning_rate": "\(config.learningRate)",
                    "command": "world train-judge --seed \(config.seed) --steps \(config.steps) --out \(out)"]
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
    let judge = Judge(network: network)
    let accuracy = try JudgeTraining.accuracy(of: judge, count: 1000)
    print("held-out accuracy: \(accuracy)")
    print(String(format: "wrote %@ after %.0f s", out, Date().timeIntervalSince(start)))
}

func judgeAccuracy(_ a: Arguments) throws {
    let judge = try Judge(contentsOf: try a.string("weights", default: "pipelines/judge/judge.safetensors"))
    let seed = UInt64(try a.int("seed", default: Int(JudgeTraining.heldoutSeed)))
    print("held-out accuracy: \(try JudgeTraining.accuracy(of: judge, count: try a.int("count", default: 1000), seed: seed))")
}

func judgeImages(_ a: Arguments) throws {
    guard !a.positional.isEmpty else { throw CommandLineError.usage("world judge needs image paths") }
    let judge = try Judge(contentsOf: try a.string("weights", default: "pipelines/judge/judge.safetensors"))
    for path in a.positional {
        let v = try judge.evaluate(try PNG.read(path: path).image)
        print(String(format: "%@: %@ %.2f, %@ %.2f, %@ %.2f, %@ %.2f, %@ %.2f", path,
                     v.object.word, v.objectProbability, v.color.word, v.colorProbability,
                     v.background.word, v.backgroundProbability, v.pattern.word, v.patternProbability,
                     v.style.noun, v.styleProbability))
    }
}

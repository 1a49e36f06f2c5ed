// `train-style train-base`: trains the embedded base model from scratch on the picture world and writes it
// as a diffusers folder (default `pipelines/toy`). Resumable: running it again with the same options and
// run folder continues from the checkpoint.
import Foundation
import Training

public enum TrainBaseCommand {
    public static let usage = """
        usage: train-style train-base [options]

        Trains the pixel-space base model (UNet + CLIP text encoder, all weights) from scratch on the
        picture world and writes it to --out as a diffusers folder (F16 weights).

          --out DIR              pipeline folder to write (default pipelines/toy)
          --run-dir DIR          checkpoints, sample grids, loss curve (default outputs/runs/base);
                                 an existing checkpoint there is resumed
          --steps N              optimiser steps (default 20000)
          --batch N              images per step (default 16)
          --lr X                 peak learning rate (default 1e-3; 200 warm-up steps, cosine decay)
          --seed N               initial weights and noise (default 0)
          --save-every N         checkpoint interval (default 250)
          --sample-every N       sample-grid interval (default 1000; 0 = never)
          --gradient-checkpointing   recompute block activations in backward (less memory)
          --tiny                 a very small architecture (16 px) for smoke tests

        example: train-style train-base --steps 20000 --out pipelines/toy
        """

    /// Runs the command; returns the exit code (0, or 130 after a stop request).
    public static func run(_ arguments: [String]) throws -> Int32 {
        let a = try ParsedArguments(arguments, options: ["out", "run-dir", "steps", "batch", "lr", "seed", "save-every",
                                                         "sample-every"],
                                    flagNames: ["gradient-checkpointing", "tiny", "help"])
        if a.has("help") { print(usage); return 0 }
        guard a.positionals.isEmpty else { throw CommandLineError.usage("train-base takes no positional arguments") }
        var config = BaseTrainingConfig()
        if a.has("tiny") { config.architecture = .tiny }
        config.loop.steps = try a.int("steps", in: 1...10_000_000) ?? config.loop.steps
        config.batch = try a.int("batch", in: 1...4096) ?? config.batch
        config.loop.learningRate = Float(try a.double("lr") ?? Double(config.loop.learningRate))
        config.seed = try a.uint64("seed") ?? config.seed
        config.loop.saveEvery = try a.int("save-every", in: 0...Int.max) ?? config.loop.saveEvery
        config.loop.sampleEvery = try a.int("sample-every", in: 0...Int.max) ?? config.loop.sampleEvery
        config.loop.warmupSteps = min(config.loop.warmupSteps, config.loop.steps / 10)
        config.gradientCheckpointing = a.has("gradient-checkpointing")
        let out = URL(fileURLWithPath: a.string("out") ?? "pipelines/toy")
        let runDir = URL(fileURLWithPath: a.string("run-dir") ?? "outputs/runs/base")

        let console = TrainingConsole()
        let trainer = try BaseTrainer(config: config, runDirectory: runDir)
        let counts = trainer.unet.parameterCounts().all + trainer.textEncoder.parameterCounts().all
        console.note("base model: UNet \(config.architecture.blockOutChannels), text encoder \(config.architecture.textLayers)"
            + "×\(config.architecture.textHidden), \(counts) parameters; batch \(config.batch), \(config.loop.steps) steps"
            + (trainer.loop.state.step > 0 ? "; resuming at step \(trainer.loop.state.step)" : ""))
        StopRequest.install()
        trainer.loop.shouldStop = { StopRequest.isRequested }
        trainer.loop.onEvent = console.handle
        let start = Date()
        let outcome = try trainer.loop.run()
        try LossCurve.write(trainer.loop.state.lossHistory, to: runDir.appendingPathComponent("loss.png"))
        if case .interrupted(let step) = outcome {
            console.note("stopped at step \(step); checkpoint in \(runDir.path) — run the same command to continue")
            return 130
        }
        try trainer.export(to: out)
        console.note(String(format: "done in %.0f s; base model written to %@ (loss curve %@)", Date().timeIntervalSince(start),
                            out.path, runDir.appendingPathComponent("loss.png").path))
        return 0
    }
}

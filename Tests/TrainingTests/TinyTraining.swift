import DiffusionModels
import Foundation
import Pipeline
import TestSupport
@testable import Training

/// The trainer tests' common run: the tiny pixel-space pipeline on the repository's example images, "sks dog",
/// no prior preservation, no intermediate saves, seed 3.
enum TinyTraining {
    static let pipeline = TestPaths.pipelineFixture("tiny-pixel")
    static let images = TestPaths.repository("images")

    static func config(steps: Int, lr: Float = 1e-3) -> StyleTrainingConfig {
        var c = StyleTrainingConfig(imagesDirectory: images, pipeline: pipeline,
                                    prompt: InstancePrompt(token: "sks", className: "dog"))
        c.prior = false
        c.loop.steps = steps
        c.loop.learningRate = lr
        c.loop.saveEvery = 0
        c.seed = 3
        return c
    }

    static func trainer(_ c: StyleTrainingConfig, runDirectory: URL, classImages: URL? = nil) throws -> StyleTrainer {
        try StyleTrainer(config: c, model: try StableDiffusionModel(path: pipeline), runDirectory: runDirectory,
                         classImages: classImages)
    }
}

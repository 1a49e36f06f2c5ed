// train-base on the micro architecture: a few steps lower the loss, a checkpoint resumes the same run,
// and the exported pipeline folder loads in Pipeline's loader with the trained model's outputs.
import Autograd
import CLIPText
import DiffusionModels
import Foundation
import NN
import PictureWorld
import SafeTensors
import Pipeline
import TensorCore
import TestSupport
import XCTest
@testable import BaseModel

final class BaseTrainerTests: XCTestCase {
    func makeTrainer(steps: Int = 30, seed: UInt64 = 3, runDirectory: URL? = nil,
                     omission: CaptionOmission? = nil, ema: Float? = nil) throws -> BaseTrainer {
        let vocabulary = ToyTokenizer.learn()
        let tokenizer = try ToyTokenizer.tokenizer(vocabulary)
        let arch = try XCTUnwrap(ToyArchitecture.named("micro", vocabularySize: vocabulary.vocabulary.count,
                                                       maxLength: ToyTokenizer.maxLength))
        var config = BaseTrainingConfig()
        config.seed = seed
        config.steps = steps
        config.batchSize = 4
        config.learningRate = 3e-3
        config.warmupSteps = 2
        config.sampleEvery = 0
        config.checkpointEvery = 100
        config.captionOmission = omission
        config.emaDecay = ema
        return try BaseTrainer(architecture: arch, vocabulary: vocabulary, tokenizer: tokenizer, config: config,
                               runDirectory: runDirectory ?? FileManager.default.temporaryDirectory)
    }

    func testAFewStepsLowerTheLoss() throws {
        let trainer = try makeTrainer()
        let items = Array(1000..<1008)
        let before = try trainer.evaluationLoss(items: items, seed: 11)
        for _ in 0..<30 { try trainer.trainStep() }
        let after = try trainer.evaluationLoss(items: items, seed: 11)
        XCTAssertEqual(trainer.step, 30)
        XCTAssertLessThan(after, 0.8 * before, "loss \(before) → \(after)")
    }

    /// --omit-color/--omit-place reach the data; a run without them keeps the configuration JSON it always had.
    func testCaptionOmissionReachesTheDataAndStaysOutOfPlainConfigurations() throws {
        func json(_ c: BaseTrainingConfig) throws -> String { String(decoding: try JSONEncoder().encode(c), as: UTF8.self) }
        var config = BaseTrainingConfig()
        XCTAssertFalse(try json(config).contains("captionOmission"))
        config.captionOmission = try CaptionOmission(color: 0.3, place: 0.2)
        XCTAssertTrue(try json(config).contains("captionOmission"))
        let trainer = try makeTrainer(steps: 2, omission: config.captionOmission)
        XCTAssertEqual(trainer.data.omission, config.captionOmission)
        XCTAssertEqual(trainer.runMetadata["omit_color"], "0.3")
        XCTAssertEqual(try makeTrainer(steps: 2).data.omission, CaptionOmission.none)
        XCTAssertNil(try makeTrainer(steps: 2).runMetadata["omit_color"])
        XCTAssertNil(trainer.runMetadata["usual_colors"])
        let usual = try CaptionOmission(color: 0.3, place: 0.2, usualColors: true)
        XCTAssertEqual(try makeTrainer(steps: 2, omission: usual).runMetadata["usual_colors"], "1")
    }

    func testCheckpointResumesTheSameRun() throws {
        let dir = try temporaryDirectory("toy")
        let straight = try makeTrainer(steps: 4)
        for _ in 0..<4 { try straight.trainStep() }

        let first = try makeTrainer(steps: 4)
        for _ in 0..<2 { try first.trainStep() }
        let path = dir.appendingPathComponent("checkpoint.safetensors").path
        try first.saveCheckpoint(to: path)
        let resumed = try makeTrainer(steps: 4)
        try resumed.loadCheckpoint(from: path)
        XCTAssertEqual(resumed.step, 2)
        for _ in 0..<2 { try resumed.trainStep() }
        for ((key, a), (_, b)) in zip(straight.unet.namedParameters(), resumed.unet.namedParameters()) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, key)
        }
        for ((key, a), (_, b)) in zip(straight.textEncoder.namedParameters(), resumed.textEncoder.namedParameters()) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, key)
        }
    }

    /// train-base's path: the Training loop runs the steps; stopped after 2 of 4 (checkpoint in the run folder)
    /// and resumed, it ends with the weights and loss history of the run that was never stopped.
    func testLoopStoppedAndResumedEqualsUninterrupted() throws {
        let straight = try makeTrainer(steps: 4, runDirectory: try temporaryDirectory("toy-run"))
        XCTAssertEqual(try straight.loop.run(), .finished)
        let folder = try temporaryDirectory("toy-run")
        let first = try makeTrainer(steps: 4, runDirectory: folder)
        first.loop.shouldStop = { first.step == 2 }
        XCTAssertEqual(try first.loop.run(), .interrupted(step: 2))
        let resumed = try makeTrainer(steps: 4, runDirectory: folder)
        let metadata = try resumed.loadCheckpoint(from: resumed.loop.checkpointPath)
        XCTAssertEqual(metadata["architecture"], "micro")
        XCTAssertEqual(resumed.step, 2)
        XCTAssertEqual(try resumed.loop.run(), .finished)
        XCTAssertEqual(resumed.loop.state.lossHistory, straight.loop.state.lossHistory)
        for ((key, a), (_, b)) in zip(straight.unet.namedParameters() + straight.textEncoder.namedParameters(),
                                      resumed.unet.namedParameters() + resumed.textEncoder.namedParameters()) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, key)
        }
    }

    /// --ema: the checkpoint carries the weight average, a stopped and resumed run ends with the average of the run
    /// that was never stopped, exports see the average and training the trained weights; a checkpoint written without
    /// the average does not resume a run that keeps one.
    func testWeightAverageResumesAndIsWhatExportsSee() throws {
        let straight = try makeTrainer(steps: 4, runDirectory: try temporaryDirectory("toy-ema"), ema: 0.9)
        XCTAssertEqual(try straight.loop.run(), .finished)
        let folder = try temporaryDirectory("toy-ema")
        let first = try makeTrainer(steps: 4, runDirectory: folder, ema: 0.9)
        first.loop.shouldStop = { first.step == 2 }
        XCTAssertEqual(try first.loop.run(), .interrupted(step: 2))
        let resumed = try makeTrainer(steps: 4, runDirectory: folder, ema: 0.9)
        XCTAssertEqual(try resumed.loadCheckpoint(from: resumed.loop.checkpointPath)["ema"], "0.9")
        XCTAssertEqual(try resumed.loop.run(), .finished)
        let average = try XCTUnwrap(straight.loop.average)
        XCTAssertEqual(average.decay(atUpdate: 4), 4.0 / 13, accuracy: 1e-7)
        for (key, a) in average.averages {
            XCTAssertEqual(a.scalars, try XCTUnwrap(resumed.loop.average?.averages[key]).scalars, key)
        }
        let named = straight.unet.namedParameters() + straight.textEncoder.namedParameters()
        let trained = named.map(\.1.value.scalars)
        let seen = straight.loop.withAveragedWeights { named.map(\.1.value.scalars) }
        XCTAssertEqual(named.map(\.1.value.scalars), trained, "the trained weights are back after the export")
        XCTAssertNotEqual(seen, trained)
        XCTAssertEqual(seen[0], try XCTUnwrap(average.averages["unet." + named[0].0]).scalars)
        // Exports: the average by default (its decay in the UNet file's metadata), the trained weights on request.
        let exports = try temporaryDirectory("toy-ema-export")
        XCTAssertNotEqual(seen[0].map { Float(Float16($0)) }, trained[0].map { Float(Float16($0)) },
                          "the two exports can be told apart")
        let kinds: [(String, BaseTrainer.ExportedWeights, [Float])] = [("average", .average, seen[0]), ("trained", .trained, trained[0])]
        for (name, weights, expected) in kinds {
            let path = exports.appendingPathComponent(name).path
            try straight.export(to: path, weights: weights)
            let loaded = Dictionary(uniqueKeysWithValues: try StableDiffusionModel(path: path).unet.namedParameters())
            XCTAssertEqual(try XCTUnwrap(loaded[named[0].0]).value.scalars, expected.map { Float(Float16($0)) }, name)
            let metadata = try SafeTensorsFile(path: path + "/unet/diffusion_pytorch_model.safetensors").metadata
            XCTAssertEqual(metadata["ema"], weights == .average ? "0.9" : nil, name)
        }
        XCTAssertEqual(named.map(\.1.value.scalars), trained, "exports leave the trained weights in place")

        let plain = try temporaryDirectory("toy-ema")
        let noAverage = try makeTrainer(steps: 4, runDirectory: plain)
        noAverage.loop.shouldStop = { noAverage.step == 1 }
        XCTAssertEqual(try noAverage.loop.run(), .interrupted(step: 1))
        let asked = try makeTrainer(steps: 4, runDirectory: plain, ema: 0.9)
        XCTAssertThrowsError(try asked.loadCheckpoint(from: asked.loop.checkpointPath)) {
            XCTAssertTrue("\($0)".contains("without --ema"), "\($0)")
        }
        XCTAssertEqual(noAverage.loop.withAveragedWeights { noAverage.unet.namedParameters()[0].1.value.scalars },
                       noAverage.unet.namedParameters()[0].1.value.scalars)
    }

    func testExportLoadsInThePipelineWithIdenticalOutputs() throws {
        let trainer = try makeTrainer(steps: 2)
        for _ in 0..<2 { try trainer.trainStep() }
        // The folder stores F16: round the live weights the same way, so outputs must agree exactly.
        for (_, p) in trainer.unet.namedParameters() + trainer.textEncoder.namedParameters() {
            p.value = try Tensor(shape: p.shape, scalars: p.value.scalars.map { Float(Float16($0)) })
        }
        trainer.unet.eval()
        trainer.textEncoder.eval()
        let dir = try temporaryDirectory("toy").appendingPathComponent("toy").path
        try ToyExport.write(unet: trainer.unet, textEncoder: trainer.textEncoder, vocabulary: trainer.vocabulary,
                            modelMaxLength: ToyTokenizer.maxLength, to: dir)
        let model = try StableDiffusionModel(path: dir)
        XCTAssertNil(model.vae)
        XCTAssertEqual(model.unet.config, trainer.architecture.unet)
        XCTAssertEqual(model.textEncoder.config, trainer.architecture.text)
        XCTAssertEqual(model.schedulerConfig, ToyArchitecture.scheduler)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/model_index.json")),
                       try Data(contentsOf: URL(fileURLWithPath: TestPaths.repository("pipelines/toy/model_index.json"))),
                       "the exported model_index.json is the committed one, byte for byte")
        // transformers 5.x validates initializer_factor as a float: "1" is refused, "1.0" loads.
        for path in [dir + "/text_encoder/config.json", TestPaths.repository("pipelines/toy/text_encoder/config.json")] {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            XCTAssertTrue(text.contains(#""initializer_factor" : 1.0,"#), "\(path): initializer_factor written as a float")
        }

        let prompt = "a photo of sks dog in the snow"
        let ids = model.tokenizer.encode(prompt).ids
        XCTAssertEqual(ids, trainer.tokenizer.encode(prompt).ids)
        let (reloaded, original) = try withNoGrad {
            (try model.textEncoder.encode([ids]), try trainer.textEncoder.encode([ids]))
        }
        XCTAssertEqual(reloaded.value.scalars, original.value.scalars)

        var random = PhiloxRandom(seed: 5)
        let x = Variable(random.normal(shape: [2, 16, 16, 3]))
        let row = original.value.scalars
        let context = Variable(try Tensor(shape: [2] + original.shape.dropFirst(), scalars: row + row))
        let (a, b) = try withNoGrad {
            (try model.unet(x, timesteps: [500, 20], conditioning: Conditioning(context: context)),
             try trainer.unet(x, timesteps: [500, 20], conditioning: Conditioning(context: context)))
        }
        XCTAssertEqual(a.value.scalars, b.value.scalars)

        let images = try ToyExport.sample(modelAt: dir, prompts: ["a red car in the snow", "a blue ball"], steps: 2)
        XCTAssertEqual(images.count, 2)
        XCTAssertEqual(images[0].width, 16)
        XCTAssertEqual(try ToyExport.sampleBatch(model, prompts: ["a red car in the snow", "a blue ball"], steps: 2), images,
                       "one batch gives each prompt's image alone")
    }

    /// `--init`: a run starts from an exported model's weights (fresh moments, its own seed), says so in every
    /// checkpoint and keeps saying it after a resume; a folder of another architecture changes nothing.
    func testInitializeStartsFromAnExportedModel() throws {
        let source = try makeTrainer(steps: 2, seed: 3)
        for _ in 0..<2 { try source.trainStep() }
        for (_, p) in source.unet.namedParameters() + source.textEncoder.namedParameters() {
            p.value = try Tensor(shape: p.shape, scalars: p.value.scalars.map { Float(Float16($0)) })
        }
        let dir = try temporaryDirectory("toy-init").appendingPathComponent("toy").path
        try ToyExport.write(unet: source.unet, textEncoder: source.textEncoder, vocabulary: source.vocabulary,
                            modelMaxLength: ToyTokenizer.maxLength, to: dir)

        let run = try temporaryDirectory("toy-init-run")
        let tuned = try makeTrainer(steps: 3, seed: 9, runDirectory: run)
        XCTAssertNotEqual(tuned.unet.namedParameters()[0].1.value.scalars, source.unet.namedParameters()[0].1.value.scalars)
        try tuned.initialize(from: StableDiffusionModel(path: dir), path: dir)
        for ((key, a), (_, b)) in zip(source.unet.namedParameters() + source.textEncoder.namedParameters(),
                                      tuned.unet.namedParameters() + tuned.textEncoder.namedParameters()) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, key)
        }
        XCTAssertEqual(tuned.runMetadata["init"], dir)
        tuned.loop.shouldStop = { tuned.step == 1 }
        XCTAssertEqual(try tuned.loop.run(), .interrupted(step: 1))
        XCTAssertThrowsError(try tuned.initialize(from: StableDiffusionModel(path: dir), path: dir), "weights are set before step 1")
        let resumed = try makeTrainer(steps: 3, seed: 9, runDirectory: run)
        XCTAssertEqual(try resumed.loadCheckpoint(from: resumed.loop.checkpointPath)["init"], dir)
        XCTAssertEqual(resumed.runMetadata["init"], dir, "a resumed fine-tune still names its start")

        // The embedded model is arch s, not micro: refused, nothing changed.
        let fresh = try makeTrainer(steps: 2, seed: 9)
        let before = fresh.unet.namedParameters().map { $0.1.value.scalars }
        let embedded = TestPaths.repository("pipelines/toy")
        XCTAssertThrowsError(try fresh.initialize(from: StableDiffusionModel(path: embedded), path: embedded)) { error in
            XCTAssertTrue("\(error)".contains("not an arch micro model"), "\(error)")
        }
        XCTAssertEqual(fresh.unet.namedParameters().map { $0.1.value.scalars }, before)
        XCTAssertNil(fresh.runMetadata["init"])
    }
}

// Trains the embedded base model from scratch: every weight of the UNet and the CLIP text encoder, on
// PictureWorld's captioned scenes (pixel space), with the same loss, AdamW and checkpoints as LoRA
// training. 10 % of captions are dropped to "" so classifier-free guidance has an unconditional model.
import Autograd
import CLIPText
import DiffusionModels
import Foundation
import NN
import PictureWorld
import PNGImage
import Pipeline
import Schedulers
import TensorCore

/// Everything that defines a base-training run (stored in its checkpoints; a resume must match it).
public struct BaseTrainingConfig: Codable, Equatable, Sendable {
    public var architecture = BaseArchitecture()
    public var loop = LoopSettings(steps: 20_000)
    public var batch = 16
    public var seed: UInt64 = 0
    /// Seed of the picture world's item stream.
    public var worldSeed: UInt64 = 1
    public var captionDropout: Float = 0.1
    public var gradientCheckpointing = false
    /// Prompts of the preview grids.
    public var previewPrompts: [String] = ["a photo of a brown dog on the beach", "a red car in the snow",
                                           "a photo of a white cat in a room", "a yellow flower on the grass"]

    public init() {
        loop.learningRate = 1e-3
        loop.warmupSteps = 200
        loop.decay = .cosine
        loop.saveEvery = 250
        loop.sampleEvery = 1000
    }
}

public final class BaseTrainer {
    public let config: BaseTrainingConfig
    public let unet: UNet2DConditionModel
    public let textEncoder: CLIPTextModel
    public let tokenizer: BPETokenizer
    public let vocabulary: [String: Int]
    public let merges: [(String, String)]
    public let loop: TrainingLoop
    private let world: WorldDataset

    /// Builds freshly initialised models from `config.seed`; resumes when `runDirectory` has a checkpoint.
    public init(config: BaseTrainingConfig, runDirectory: URL) throws {
        self.config = config
        guard config.batch >= 1 else { throw TrainingError.invalidSettings("--batch must be ≥ 1") }
        (vocabulary, merges) = CLIPVocabularyBuilder.build(corpus: Caption.corpus(.base))
        tokenizer = try BPETokenizer(vocabulary: vocabulary, merges: merges,
                                     configuration: TokenizerConfiguration(modelMaxLength: config.architecture.tokenLength))
        var initRandom = PhiloxRandom(seed: config.seed ^ 0x5EED_BA5E)
        unet = UNet2DConditionModel(config: config.architecture.unetConfig)
        unet.initializeParameters(random: &initRandom)
        unet.gradientCheckpointing = config.gradientCheckpointing
        textEncoder = try CLIPTextModel(config: config.architecture.textConfig(
            vocabularySize: vocabulary.count, eosTokenID: vocabulary["<|endoftext|>"]!))
        textEncoder.initializeParameters(random: &initRandom)
        world = try WorldDataset(seed: config.worldSeed, size: config.architecture.sampleSize)

        let schedulerConfig = try SchedulerConfig.decode(Data(BaseModelFolder.schedulerJSON.utf8), path: "scheduler_config.json")
        let objective = DiffusionObjective(schedule: try NoiseSchedule(config: schedulerConfig), prediction: .epsilon)
        let groups = [ParameterGroup(parameters: unet.trainableParameters().map { ("unet." + $0.0, $0.1) }
                                     + textEncoder.trainableParameters().map { ("text_encoder." + $0.0, $0.1) })]
        let configJSON = try canonicalJSON(config)
        let (unet, textEncoder, tokenizer, world) = (unet, textEncoder, tokenizer, world)
        loop = try TrainingLoop(groups: groups, settings: config.loop, runDirectory: runDirectory,
                                configuration: configJSON, seed: config.seed) { random in
            let indices = (0..<config.batch).map { _ in Int(random.next() % 1_000_000_007) }
            let batch = try world.batch(indices)
            let captions = batch.captions.map { caption in
                Float(random.next() % 1_000_000) / 1_000_000 < config.captionDropout ? "" : caption
            }
            let context = try textEncoder.encode(captions.map { tokenizer.encode($0).ids })
            return try objective.loss(unet: unet, x0: batch.images, context: context,
                                      rowWeights: Array(repeating: 1 / Float(config.batch), count: config.batch),
                                      random: &random)
        }
        let checkpoint = loop.checkpointPath
        if FileManager.default.fileExists(atPath: checkpoint) {
            let saved = try TrainingCheckpoint.read(path: checkpoint)
            guard saved.configuration == configJSON else {
                throw TrainingError.invalidCheckpoint("\(checkpoint) was written with other settings; use another --run-dir "
                    + "or the same options")
            }
            try loop.restore(saved)
        }
        loop.preview = { [unowned self] step in
            try self.writePreview(to: runDirectory.appendingPathComponent(String(format: "samples-%06d.png", step)))
        }
    }

    /// Writes the model as a diffusers folder (F16 weights).
    public func export(to url: URL) throws {
        try BaseModelFolder.write(to: url, unet: unet, textEncoder: textEncoder, vocabulary: vocabulary, merges: merges,
                                  tokenLength: config.architecture.tokenLength)
    }

    /// A grid of the preview prompts (fixed seeds 0…3 per prompt, DPM++ 2M, 20 steps, CFG 5) from the
    /// current weights, exported to `preview-pipeline/` in the run folder and loaded like any model.
    public func writePreview(to url: URL) throws {
        let folder = loop.runDirectory.appendingPathComponent("preview-pipeline")
        try export(to: folder)
        let model = try StableDiffusionModel(path: folder.path)
        var images: [Image] = []
        for prompt in config.previewPrompts {
            for seed in 0..<4 {
                let p = GenerationParameters(prompt: prompt, steps: 20, guidanceScale: 5, seed: UInt64(seed))
                images += try withNoGrad { try TextToImage(model: model).generate(p) }.map(\.image)
            }
        }
        try PNG.write(try Image.grid(images, columns: 4, gap: 2), to: url.path)
    }
}

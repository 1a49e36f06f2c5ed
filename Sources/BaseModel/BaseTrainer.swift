// BaseTrainer: trains the toy base model from scratch — the UNet and the text encoder jointly, full
// weights — on the picture world's images and captions, as a client of the Training stack: one
// `TrainingLoop` (grad-norm clipping, AdamW, learning-rate schedule, checkpoints), the `DiffusionObjective`
// (v-prediction with min-SNR weighting) and `StableDiffusionModel.encode` for the captions.
//
// Step s of a run (0-based) sees items s·B ..< (s+1)·B of `WorldDataset(seed:, omission:)` (captions that
// sometimes leave out colour or place, when the run asks for it); caption dropout, timesteps
// and noise come from the loop's one random stream, which checkpoints save, so a resumed run is the run that
// was never stopped. One step:
//
//     x0 [B, 64, 64, 3] in [−1, 1];  captions (10 % replaced by "")  → conditioning = model.encode(captions)
//     t ~ U{0, …, 999};  ε ~ N(0, 1);  x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε;  target v = √ᾱ_t·ε − √(1−ᾱ_t)·x0
//     loss = Σ_n (1/B) · w_n · mean((unet(x_t, t, conditioning) − v)²),  w_n = min(SNR_t, γ)/(SNR_t + 1)
//     gradients clipped to global norm 1, AdamW, lr: linear warm-up then cosine to 10 %.
import Autograd
import CLIPText
import DiffusionModels
import Foundation
import NN
import PictureWorld
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import Training

public enum BaseModelError: Error, CustomStringConvertible {
    case invalidArgument(String)
    case checkpoint(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidArgument(let m): return m
        case .checkpoint(let path, let reason): return "checkpoint \(path): \(reason)"
        }
    }
}

public struct BaseTrainingConfig: Codable, Sendable {
    public var seed: UInt64 = 0
    public var steps: Int = 3000
    public var batchSize: Int = 16
    public var learningRate: Float = 6e-4
    public var warmupSteps: Int = 100
    public var weightDecay: Float = 0.01
    public var captionDropout: Double = 0.1
    /// How often captions leave out the colour and the place (`a photo of a dog`, `a red car`); nil: never
    /// (and absent from the configuration JSON, so runs without it keep their checkpoints' configuration).
    public var captionOmission: CaptionOmission?
    /// γ of min-SNR weighting; 0 turns the weighting off.
    public var minSNRGamma: Double = 5
    public var clipNorm: Float = 1
    /// Decay of the weight average that exports and sample grids use (`--ema`; nil: the last weights, and absent
    /// from the configuration JSON).
    public var emaDecay: Float?
    /// The cosine decay ends at this share of the peak learning rate.
    public var cosineFloor: Float = 0.1
    /// Steps between checkpoints and between sample grids (0: never) when the loop runs the whole training.
    public var checkpointEvery = 100
    public var sampleEvery = 500

    public init() {}

    /// The Training loop's settings for this run (checkpoints are written by the caller, not the loop).
    public var loop: LoopSettings {
        var s = LoopSettings(steps: steps)
        s.learningRate = learningRate
        s.warmupSteps = warmupSteps
        s.decay = .cosine
        s.cosineFloor = cosineFloor
        s.maxGradNorm = clipNorm
        s.adamW = AdamWSettings(weightDecay: weightDecay)
        s.saveEvery = checkpointEvery
        s.sampleEvery = sampleEvery
        s.emaDecay = emaDecay
        return s
    }

    /// Learning rate of step `step` (0-based).
    public func learningRate(at step: Int) -> Float { loop.schedule.rate(at: step) }
}

public final class BaseTrainer {
    public let architecture: ToyArchitecture
    public let config: BaseTrainingConfig
    public let tokenizer: BPETokenizer
    public let vocabulary: BPEVocabulary
    public let unet: UNet2DConditionModel
    public let textEncoder: CLIPTextModel
    /// The model being trained as a pipeline model (no VAE): its `encode(prompts:)` is the conditioning path.
    public let model: StableDiffusionModel
    public let objective: DiffusionObjective
    public let data: WorldDataset
    /// The optimisation loop over every weight of the UNet and the text encoder.
    public let loop: TrainingLoop
    /// Steps done.
    public var step: Int { loop.state.step }

    /// A fresh model (weights drawn from `config.seed`) for `architecture`, with its tokenizer.
    public init(architecture: ToyArchitecture, vocabulary: BPEVocabulary, tokenizer: BPETokenizer,
                config: BaseTrainingConfig, runDirectory: URL = URL(fileURLWithPath: "runs/train-base")) throws {
        guard config.steps > 0, config.batchSize > 0 else {
            throw BaseModelError.invalidArgument("training needs steps > 0 and batch > 0")
        }
        self.architecture = architecture
        self.config = config
        self.vocabulary = vocabulary
        self.tokenizer = tokenizer
        unet = UNet2DConditionModel(config: architecture.unet)
        textEncoder = try CLIPTextModel(config: architecture.text)
        var random = PhiloxRandom(seed: config.seed ^ 0xBA5E_0001)
        unet.initializeParameters(random: &random)
        textEncoder.initializeParameters(random: &random)
        unet.train()
        textEncoder.train()
        model = try StableDiffusionModel(name: architecture.name, tokenizer: tokenizer, textEncoder: textEncoder, unet: unet,
                                         vae: nil, schedulerConfig: ToyArchitecture.scheduler)
        objective = DiffusionObjective(schedule: try NoiseSchedule(config: ToyArchitecture.scheduler),
                                       prediction: ToyArchitecture.prediction,
                                       snrGamma: config.minSNRGamma > 0 ? config.minSNRGamma : nil)
        data = try WorldDataset(seed: config.seed, size: architecture.unet.sampleSize ?? 64,
                                omission: config.captionOmission ?? .none)
        // Full-weight training: every parameter of both models is one group of the loop.
        let parameters = unet.trainableParameters().map { ("unet." + $0.0, $0.1) }
            + textEncoder.trainableParameters().map { ("text_encoder." + $0.0, $0.1) }
        loop = try TrainingLoop(groups: [ParameterGroup(parameters: parameters)], settings: config.loop,
                                runDirectory: runDirectory, configuration: canonicalJSON(config), seed: config.seed,
                                microBatchLoss: { _ in throw BaseModelError.invalidArgument("no batch source") })
        loop.microBatchLoss = { [unowned self] random in
            let b = self.config.batchSize, s = self.loop.state.step
            return try self.loss(items: Array((s * b)..<((s + 1) * b)), random: &random, captionDropout: self.config.captionDropout)
        }
        loop.checkpointMetadata = { [unowned self] in self.runMetadata }
    }

    /// Starts from `model`'s weights instead of fresh ones (a fine-tune of an exported base: same architecture and
    /// tokenizer). Strict: a folder of another architecture changes nothing and the error names the first
    /// mismatch. Call before the first step; the optimiser's moments stay fresh.
    public func initialize(from model: StableDiffusionModel, path: String) throws {
        guard step == 0 else { throw BaseModelError.invalidArgument("--init: the run is at step \(step); weights are set before step 1") }
        guard model.tokenizer.vocabularySize == tokenizer.vocabularySize else {
            throw BaseModelError.invalidArgument("--init \(path): its tokenizer has \(model.tokenizer.vocabularySize) tokens, "
                + "this run's \(tokenizer.vocabularySize)")
        }
        let previous = unet.stateDict()
        do {
            try unet.load(stateDict: model.unet.stateDict())
            do { try textEncoder.load(stateDict: model.textEncoder.stateDict()) } catch {
                try unet.load(stateDict: previous)
                throw error
            }
        } catch {
            throw BaseModelError.invalidArgument("--init \(path): not an arch \(architecture.name) model: \(error)")
        }
        initializedFrom = path
    }

    /// The pipeline folder the weights started from (`initialize(from:path:)`), nil for fresh weights.
    public private(set) var initializedFrom: String?

    /// What every checkpoint of the run says about it (read back by `train-base --export` for TRAINING.md).
    public var runMetadata: [String: String] {
        ["step": String(step), "seed": String(config.seed), "batch": String(config.batchSize),
         "architecture": architecture.name, "lr": String(config.learningRate), "steps": String(config.steps),
         "warmup": String(config.warmupSteps)].merging(config.captionOmission.map {
            ["omit_color": String($0.color), "omit_place": String($0.place)]
                .merging($0.usualColors ? ["usual_colors": "1"] : [:]) { a, _ in a } } ?? [:]) { a, _ in a }
            .merging(initializedFrom.map { ["init": $0] } ?? [:]) { a, _ in a }
            .merging(config.emaDecay.map { ["ema": String($0)] } ?? [:]) { a, _ in a }
    }

    /// Number of weights (UNet, text encoder).
    public var parameterCounts: (unet: Int, text: Int) {
        (unet.namedParameters().reduce(0) { $0 + $1.1.value.count },
         textEncoder.namedParameters().reduce(0) { $0 + $1.1.value.count })
    }

    /// Runs one training step; returns its loss.
    @discardableResult
    public func trainStep() throws -> Float {
        let loss = try loop.trainStep()
        guard loss.isFinite else { throw TrainingError.nonFiniteLoss(step: step + 1, checkpoint: nil) }
        return loss
    }

    /// The training loss on dataset items `items` with timesteps and noise drawn from `seed` (no dropout,
    /// no gradient): a fixed yardstick to compare weights with.
    public func evaluationLoss(items: [Int], seed: UInt64) throws -> Float {
        var random = PhiloxRandom(seed: seed)
        return try withNoGrad { try loss(items: items, random: &random, captionDropout: 0).value.item }
    }

    /// The (weighted) denoising loss of one batch; caption dropout, timesteps and noise come from `random`.
    func loss(items: [Int], random: inout PhiloxRandom, captionDropout: Double) throws -> Variable {
        let b = items.count
        let (images, captions, _) = try data.batch(items)                           // [B, H, W, 3] in [−1, 1]
        let prompts = captions.map { Double(random.next() >> 11) * 0x1p-53 < captionDropout ? "" : $0 }
        return try objective.loss(unet: unet, x0: images, conditioning: try model.encode(prompts: prompts),
                                  rowWeights: Array(repeating: 1 / Float(b), count: b), random: &random)
    }

    // MARK: - Export

    /// The weights an export writes when the run keeps a moving average (`--ema`): the average, or the last
    /// trained weights (`train-base --trained-weights`).
    public enum ExportedWeights: Sendable { case average, trained }

    /// Writes the model as a pipeline folder at `path` (`ToyExport.write`, F16): the moving average when the run
    /// keeps one and `weights` is `.average` — the UNet file's metadata then names its decay as `ema` — else the
    /// trained weights. `metadata` goes into the UNet file.
    public func export(to path: String, weights: ExportedWeights = .average, metadata: [String: String] = [:]) throws {
        let average = weights == .average ? loop.average : nil
        let write = {
            try ToyExport.write(unet: self.unet, textEncoder: self.textEncoder, vocabulary: self.vocabulary,
                                modelMaxLength: ToyTokenizer.maxLength, to: path,
                                metadata: metadata.merging(average.map { ["ema": String($0.decay)] } ?? [:]) { a, _ in a })
        }
        if average == nil { try write() } else { try loop.withAveragedWeights(write) }
    }

    // MARK: - Checkpoints

    /// Writes the Training checkpoint (weights, AdamW moments, random stream, step) to `path` atomically, with
    /// the run's description and `extraMetadata` in its metadata.
    public func saveCheckpoint(to path: String, extraMetadata: [String: String] = [:]) throws {
        try loop.checkpoint(extra: extraMetadata.merging(runMetadata) { $1 }).write(to: path)
    }

    /// Restores a checkpoint written by `saveCheckpoint` (same architecture); returns its metadata.
    @discardableResult
    public func loadCheckpoint(from path: String) throws -> [String: String] {
        try load(TrainingCheckpoint.read(path: path), from: path)
    }

    /// Restores `checkpoint`, already read from `path` (named in errors); returns its metadata.
    @discardableResult
    public func load(_ checkpoint: TrainingCheckpoint, from path: String) throws -> [String: String] {
        guard checkpoint.extra["architecture"] == architecture.name else {
            throw BaseModelError.checkpoint(path: path, reason: "architecture \(checkpoint.extra["architecture"] ?? "?"), "
                + "this run \(architecture.name)")
        }
        try loop.restore(checkpoint)
        initializedFrom = checkpoint.extra["init"]
        return checkpoint.extra
    }
}

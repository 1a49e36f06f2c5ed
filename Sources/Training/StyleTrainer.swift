// DreamBooth-LoRA training (diffusers' train_dreambooth_lora.py, in this project's terms): LoRA pairs on
// the UNet (and optionally the text encoder) of a frozen base model, trained on the instance images with
// prior preservation, then saved as a kohya-format adapter that `generate --lora` loads.
import Adapters
import Autograd
import CLIPText
import DiffusionModels
import Foundation
import NN
import PNGImage
import Pipeline
import Schedulers
import TensorCore

/// Which layers get adapters.
public enum AdapterTargets: String, Codable, Sendable, CaseIterable {
    /// to_q, to_k, to_v, to_out.0 (the diffusers default).
    case attention
    /// attention + transformer projections and feed-forward + ResNet and sampler convolutions (LoCon).
    case conv

    var patterns: LoRATargets {
        switch self {
        case .attention: return .unetAttention
        case .conv: return .unetAttention + .unetTransformerExtras + .unetResnet + .unetSamplers
        }
    }
}

/// The kind of adapter a run trains.
public enum TrainedAdapterKind: String, Codable, Sendable, CaseIterable {
    /// Low-rank pairs (LoRA, LoCon on convolutions).
    case lora
    /// LoRA pairs with a trained magnitude per output channel (peft `use_dora=True`); saved as a DoRA file.
    case dora
    /// SVD-form triplets whose ranks a budget allocator moves between layers (peft `AdaLoraConfig`) on the
    /// targets' linear layers; saved as a plain LoRA with a rank per module.
    case adalora
}

/// Everything that defines a LoRA run (stored in its checkpoints; `--resume` reads it back).
public struct StyleTrainingConfig: Codable, Equatable, Sendable {
    public var imagesDirectory: String
    public var pipeline: String
    public var prompt: InstancePrompt
    public var resolution: Int?
    public var crop: CropMode = .center
    public var flip = false
    public var prior = true
    public var numClassImages = 100
    public var priorWeight: Float = 1
    /// What the class rows are trained toward (nil: the noise drawn for them, as DreamBooth; runs saved before
    /// the option read back so).
    public var priorTarget: PriorTarget?
    public var classSeed: UInt64 = 0
    public var loop = LoopSettings(steps: 400)
    public var batch = 1
    public var rank = 4
    public var alpha: Float?
    public var targets: AdapterTargets = .attention
    /// The adapter kind (nil: LoRA; runs saved before the option read back as LoRA).
    public var adapter: TrainedAdapterKind?
    /// AdaLoRA's schedule (`rank` is its initial rank); nil unless `adapter` is `.adalora`.
    public var adaLoRA: AdaLoRASettings?
    public var trainTextEncoder = false
    public var textEncoderLearningRate: Float = 5e-5
    public var seed: UInt64 = 0
    public var snrGamma: Double?
    public var noiseOffset: Float = 0
    /// Probability that a training row's prompt is replaced by the empty prompt, so that the unconditional
    /// prediction classifier-free guidance subtracts is trained to stay what it was (nil: never).
    public var captionDropout: Double?
    public var gradientCheckpointing = false
    public var validationPrompts: [String] = []
    /// A tiny autoencoder folder (TAESD, a diffusers `AutoencoderTiny`) that decodes the sample grids of a
    /// latent model instead of its VAE (`train-style --preview taesd`); nil: the VAE decodes them.
    public var previewTinyAutoencoder: String?
    /// kohya's folder layout, buckets, captions and latent caching (nil: a plain folder, square crops, as
    /// runs saved before these options).
    public var dataset: DatasetSettings?
    // kohya's options (optional, so that configurations saved before them still read): the adapter file the
    // trainable pairs start from (--init-lora), the adapter file's precision (nil: fp16), the sample-prompts file's
    // lines for the sample grids, the share of instance images held out for the validation loss.
    public var initLora: String?
    public var savePrecision: SavePrecision?
    public var samplePrompts: [SamplePrompt]?
    public var validationSplit: Double?

    public init(imagesDirectory: String, pipeline: String, prompt: InstancePrompt) {
        self.imagesDirectory = imagesDirectory
        self.pipeline = pipeline
        self.prompt = prompt
    }

    /// Prior preservation is on when a class is given and not switched off.
    public var usesPrior: Bool { prior && (prompt.classPrompt != nil || dataset?.regDirectory != nil) }
}

public final class StyleTrainer {
    public let config: StyleTrainingConfig
    public let model: StableDiffusionModel
    public let adapters: AdapterSet
    public let instances: DreamBoothDataset
    public let classes: DreamBoothDataset?
    public let loop: TrainingLoop
    public let resolution: Int
    /// Decodes the sample grids when `config.previewTinyAutoencoder` names one.
    let previewDecoder: AutoencoderTiny?
    /// Instance images trained on and held out for the validation loss (none without --validation-split).
    public let trainingIndices: [Int], validationIndices: [Int]
    /// The conditioning of a micro-batch's rows: their prompts through the text encoder(s) (each prompt encoded once
    /// while the encoders are frozen) and, for SDXL, each row's size/crop time ids.
    let rowConditioning: ([String], [SampleCrop]) throws -> Conditioning
    /// The adapter's name: the trigger token.
    public var adapterName: String { config.prompt.token }

    /// Attaches fresh adapters to `model` (whose base weights are frozen) and prepares the loop.
    /// `classImages` is the folder of prior-preservation images (nil without prior preservation).
    public init(config: StyleTrainingConfig, model: StableDiffusionModel, runDirectory: URL, classImages: URL?) throws {
        self.config = config
        self.model = model
        guard config.batch >= 1, config.rank >= 1 else { throw TrainingError.invalidSettings("--batch and --rank must be ≥ 1") }
        let resolution = config.resolution ?? model.defaultSize
        guard resolution % model.sizeMultiple == 0 else {
            throw TrainingError.invalidSettings("--resolution \(resolution) must be a multiple of \(model.sizeMultiple) for this model")
        }
        self.resolution = resolution
        previewDecoder = try config.previewTinyAutoencoder.map { path in
            guard model.vae != nil else {
                throw TrainingError.invalidSettings("--preview taesd needs a latent model (one with a VAE); \(model.name) works on pixels")
            }
            let tiny = try ModelSource.loadTinyAutoencoder(path)
            guard tiny.config.upsamplingFactor == model.spatialFactor else {
                throw TrainingError.invalidSettings("--preview taesd: the tiny autoencoder at \(path) upsamples by "
                    + "\(tiny.config.upsamplingFactor), the model's VAE by \(model.spatialFactor)")
            }
            return tiny
        }
        if let dataset = config.dataset {
            let stride = bucketStride(unetLevels: model.unet.config.blockOutChannels.count, vaeFactor: model.spatialFactor)
            let (read, readClasses) = try Self.readDataset(config: config, settings: dataset, resolution: resolution, stride: stride,
                                                           classImages: classImages)
            if dataset.cacheLatentsToDisk, model.isLatent {
                read.latentCacheDirectory = runDirectory.appendingPathComponent("latents")
                readClasses?.latentCacheDirectory = runDirectory.appendingPathComponent("latents")
            }
            (instances, classes) = (read, readClasses)
        } else {
            let rule = config.prompt.override == nil ? config.prompt.prompt(forCaption:) : { $0 }
            instances = try DreamBoothDataset(directory: URL(fileURLWithPath: config.imagesDirectory), prompt: config.prompt.text,
                                              resolution: resolution, caption: rule)
            classes = try classImages.map { try DreamBoothDataset(directory: $0, prompt: config.prompt.classPrompt ?? "", resolution: resolution) }
        }
        for s in config.samplePrompts ?? [] {
            for (name, side) in [("--w", s.width), ("--h", s.height)] {
                if let side, side % model.sizeMultiple != 0 {
                    throw TrainingError.invalidSettings("sample prompt \"\(s.prompt)\": \(name) \(side) must be a multiple of \(model.sizeMultiple) for this model")
                }
            }
        }
        (trainingIndices, validationIndices) = try Self.split(count: instances.examples.count, share: config.validationSplit,
                                                              seed: config.seed)

        model.unet.freeze()
        model.textEncoder.freeze()
        model.textEncoder2?.freeze()
        model.unet.gradientCheckpointing = config.gradientCheckpointing
        adapters = AdapterSet(unet: model.unet, textEncoder: config.trainTextEncoder ? model.textEncoder : nil,
                              textEncoder2: config.trainTextEncoder ? model.textEncoder2 : nil, seed: config.seed)
        var initRandom = PhiloxRandom(seed: config.seed ^ 0x10BA_AD5E)
        let dora = config.adapter == .dora
        func add(_ stack: AdapterStack, _ targets: LoRATargets) throws {
            if config.adapter == .adalora {
                try stack.addTrainableAdaLoRA(name: config.prompt.token, rank: config.rank, alpha: config.alpha ?? Float(config.rank),
                                              targets: targets, random: &initRandom)
            } else {
                try stack.addTrainable(name: config.prompt.token, rank: config.rank, alpha: config.alpha, targets: targets,
                                       initialization: .gaussian, dora: dora, random: &initRandom)
            }
        }
        try add(adapters.stacks[.unet]!, config.targets.patterns)
        var groups = [ParameterGroup(parameters: model.unet.trainableParameters().map { ("unet." + $0.0, $0.1) })]
        if config.trainTextEncoder {
            try add(adapters.stacks[.textEncoder]!, .textEncoder)
            groups.append(ParameterGroup(parameters: model.textEncoder.trainableParameters().map { ("text_encoder." + $0.0, $0.1) },
                                         learningRateScale: config.textEncoderLearningRate / config.loop.learningRate))
            // SDXL: both text encoders (diffusers' train_dreambooth_lora_sdxl.py --train_text_encoder), one learning rate.
            if let second = model.textEncoder2, let stack = adapters.stacks[.textEncoder2] {
                try add(stack, .textEncoder)
                groups[1].parameters += second.trainableParameters().map { ("text_encoder_2." + $0.0, $0.1) }
            }
        }
        // A run folder with a checkpoint is being resumed: the checkpoint holds the weights, not the file.
        if let path = config.initLora, !FileManager.default.fileExists(atPath: runDirectory.appendingPathComponent(TrainingCheckpoint.fileName).path) {
            try adapters.initializeTrainable(config.prompt.token, from: try LoRAFile(contentsOf: path))
        }
        let schedule = try NoiseSchedule(config: model.schedulerConfig)
        let objective = DiffusionObjective(schedule: schedule, prediction: model.schedulerConfig.predictionType ?? .epsilon,
                                           snrGamma: config.snrGamma, noiseOffset: config.noiseOffset)
        let configJSON = try canonicalJSON(config)
        let (instances, classes, trainingIndices) = (instances, classes, trainingIndices)
        let sampler = BatchSampler(instances: instances, classes: classes, trainingIndices: trainingIndices)
        var encoded: [String: Conditioning] = [:]      // frozen text encoders encode each prompt once
        // The rows' conditioning; SDXL adds each row's size/crop time ids (`crops`, one per prompt).
        func conditioning(_ prompts: [String], _ crops: [SampleCrop]) throws -> Conditioning {
            var c: Conditioning
            if config.trainTextEncoder {
                c = try model.encode(prompts: prompts)
            } else {
                if encoded.count > 512 { encoded.removeAll(keepingCapacity: true) }   // shuffled captions: bounded
                for p in prompts where encoded[p] == nil {
                    encoded[p] = try withNoGrad { try model.encode(prompts: [p]) }
                }
                c = Conditioning.concatRows(prompts.map { encoded[$0]! })
            }
            if model.isSDXL { c.timeIds = try Tensor(shape: [crops.count, 6], scalars: crops.flatMap(\.timeIds)) }
            return c
        }
        rowConditioning = conditioning
        // The frozen base's prediction: every adapter of the set at weight 0 in the text encoder(s) and the UNet.
        let adapters = self.adapters
        func baseModelPrediction(_ xt: Tensor, timesteps: [Int], prompts: [String], crops: [SampleCrop]) throws -> Tensor {
            let off = adapters.rowWeights(Array(repeating: [:], count: xt.shape[0]))
            return try withNoGrad {
                try off.apply {
                    try model.unet(Variable(xt), timesteps: timesteps.map(Float.init), conditioning: try conditioning(prompts, crops)).value
                }
            }
        }
        loop = try TrainingLoop(groups: groups, settings: config.loop, runDirectory: runDirectory,
                                configuration: configJSON, seed: config.seed) { random in
            let rows = sampler.rows(batch: config.batch, priorWeight: config.priorWeight, random: &random)
            var samples: [Tensor] = [], prompts: [String] = [], crops: [SampleCrop] = []
            for row in rows {
                let set = row.isClass ? classes! : instances
                let (value, crop) = try set.croppedSample(row.index, crop: config.crop, flip: config.flip, vae: model.vae,
                                                          random: &random, bucket: row.bucket)
                samples.append(value)
                crops.append(crop)
                var prompt = set.examples[row.index].prompt
                if let d = config.dataset, d.shuffleCaption { prompt = shuffledCaption(prompt, keepTokens: d.keepTokens, random: &random) }
                if let p = config.captionDropout, p > 0, Double(random.next() >> 11) * 0x1p-53 < p { prompt = "" }
                prompts.append(prompt)
            }
            var anchor: TargetAnchor?
            if config.priorTarget == .base {
                let anchored = rows.indices.filter { rows[$0].isClass }
                anchor = TargetAnchor(rows: anchored) { xt, timesteps in
                    try baseModelPrediction(xt, timesteps: timesteps, prompts: anchored.map { prompts[$0] },
                                            crops: anchored.map { crops[$0] })
                }
            }
            return try objective.loss(unet: model.unet, x0: try stackBatch(samples), conditioning: try conditioning(prompts, crops),
                                      rowWeights: rows.map(\.weight), anchor: anchor, random: &random)
        }
        if !validationIndices.isEmpty {
            let held = validationIndices
            loop.validationLoss = {
                // The same stream every time: each held-out image meets the same timesteps and noise.
                var random = PhiloxRandom(seed: config.seed ^ 0x7A11_DA7E)
                var total: Float = 0
                for index in held {
                    let (value, crop) = try instances.croppedSample(index, crop: .center, flip: false, vae: model.vae, random: &random)
                    let x0 = try stackBatch([value])
                    let c = try conditioning([instances.examples[index].prompt], [crop])
                    for _ in 0..<Self.validationDraws {
                        total += try objective.loss(unet: model.unet, x0: x0, conditioning: c, rowWeights: [1], random: &random).value.item
                    }
                }
                return total / Float(held.count * Self.validationDraws)
            }
        }
        if config.adapter == .adalora {
            guard let settings = config.adaLoRA else { throw TrainingError.invalidSettings("an AdaLoRA run needs its schedule") }
            allocators = try adapters.stacks.keys.sorted { $0.rawValue < $1.rawValue }.map { c in
                try AdaLoRAAllocator(stack: adapters.stacks[c]!, name: config.prompt.token, settings: settings)
            }
            let allocators = allocators
            loop.afterBackward = { try allocators.reduce(0) { $0 + (try $1.orthogonalRegularization()) } }
            loop.afterUpdate = { step in for a in allocators { try a.update(step: step) } }
        }
    }

    /// (timestep, noise) draws per held-out image in the validation loss.
    static let validationDraws = 4

    /// Instance indices to train on and to hold out: round(share · count) images (at least one, and one left to
    /// train on), picked by a seeded shuffle; no split without a share.
    static func split(count: Int, share: Double?, seed: UInt64) throws -> (training: [Int], validation: [Int]) {
        guard let share else { return (Array(0..<count), []) }
        guard share > 0, share < 1 else { throw TrainingError.invalidSettings("--validation-split must be between 0 and 1, got \(share)") }
        guard count >= 2 else {
            throw TrainingError.invalidSettings("--validation-split needs at least 2 instance images (one to train on, one to validate), got \(count)")
        }
        let held = min(count - 1, max(1, Int((share * Double(count)).rounded())))
        var order = Array(0..<count), random = PhiloxRandom(seed: seed ^ 0x5B11_7000)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        return (order[held...].sorted(), order[..<held].sorted())
    }

    /// The AdaLoRA rank allocators (UNet, then text encoder), empty for other kinds.
    public private(set) var allocators: [AdaLoRAAllocator] = []

    /// Where an AdaLoRA run's budget went: kept rank per block (`down_blocks.1`, `mid_block`, …, `text_encoder`).
    public var adaLoRARankReport: String? {
        guard !allocators.isEmpty else { return nil }
        var rows: [(String, Int, Int)] = []
        for (stack, a) in zip(adapters.stacks.keys.sorted { $0.rawValue < $1.rawValue }, allocators) {
            for (path, rank) in a.ranks {
                let parts = path.split(separator: ".")
                let block = stack == .unet ? (parts.first == "mid_block" ? "mid_block" : parts.prefix(2).joined(separator: ".")) : stack.rawValue
                if let i = rows.firstIndex(where: { $0.0 == block }) {
                    rows[i].1 += rank
                    rows[i].2 += config.rank
                } else {
                    rows.append((block, rank, config.rank))
                }
            }
        }
        let width = rows.map(\.0.count).max() ?? 0
        return (["AdaLoRA ranks kept per block (of \(config.rank) per layer at start):"] + rows.map { name, kept, start in
            let bar = String(repeating: "█", count: Int((20 * Double(kept) / Double(max(start, 1))).rounded()))
            return "  " + name.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(kept) / \(start)  " + bar
        }).joined(separator: "\n")
    }

    /// Restores the run from its checkpoint (the run folder's `checkpoint.safetensors`).
    public func resume() throws {
        guard allocators.isEmpty else {
            throw TrainingError.invalidSettings("an AdaLoRA run cannot be resumed: its importance averages are not in the checkpoint")
        }
        let saved = try TrainingCheckpoint.read(path: loop.checkpointPath)
        try loop.restore(saved)
    }

    /// The trainable-parameter line (PEFT's format) over the UNet and text encoder.
    public var parameterReport: String {
        let counts = [model.unet.parameterCounts(), model.textEncoder.parameterCounts()] + (model.textEncoder2.map { [$0.parameterCounts()] } ?? [])
        return ParameterCounts(trainable: counts.reduce(0) { $0 + $1.trainable }, all: counts.reduce(0) { $0 + $1.all }).report
    }

    /// Writes the adapter as a kohya-format file with the run's metadata.
    public func writeAdapter(to path: String) throws {
        var modules: [LoRAModuleWeights] = []
        for (i, stack) in adapters.stacks.values.sorted(by: { $0.component.rawValue < $1.component.rawValue }).enumerated() {
            modules += allocators.isEmpty ? try stack.export(adapterName)
                : allocators[i].export(component: stack.component, index: stack.index)   // a LoRA with a rank per module
        }
        var extra = ["ss_training_comment": "train-style DreamBooth LoRA", "ss_prompt": config.prompt.text,
                     "ss_optimizer": config.loop.optimizerDescription, "ss_lr_scheduler": config.loop.decay.rawValue,
                     "ss_resolution": "(\(resolution), \(resolution))", "ss_seed": String(config.seed),
                     "ss_learning_rate": String(config.loop.learningRate), "ss_base_model": model.name]
        if let c = config.prompt.className { extra["ss_class"] = c }
        if let p = config.prompt.classPrompt, config.usesPrior { extra["ss_class_prompt"] = p }
        extra.merge(datasetMetadata) { $1 }
        if model.isSDXL { extra["modelspec.architecture"] = "stable-diffusion-xl-v1-base/lora" }   // as sd-scripts' sdxl_train_network
        let info = LoRAFileInfo(baseModelVersion: model.isSDXL ? "sdxl_base_v1-0" : nil, triggerPhrase: config.prompt.style ? "in the style of \(config.prompt.token)"
                                    : [config.prompt.token, config.prompt.className].compactMap { $0 }.joined(separator: " "),
                                steps: loop.state.step, baseModelHash: try model.modelHash(), extra: extra)
        try LoRAWriter.write(modules, to: path, format: .kohya, info: info, precision: (config.savePrecision ?? .fp16).dtype)
    }

    /// A grid of the validation prompts, one row per prompt, seeds 0…3, with the adapter active (decoded with
    /// the tiny autoencoder when the run has one). With sample prompts (--sample-prompts), those instead: see
    /// `writeSamples`.
    public func writePreview(to url: URL, prompts: [String]) throws {
        if let samples = config.samplePrompts { return try writeSamples(samples, to: url) }
        var pipeline = TextToImage(model: model)
        pipeline.tinyAutoencoder = previewDecoder
        var images: [Image] = []
        for prompt in prompts {
            for seed in 0..<4 {
                let p = GenerationParameters(prompt: prompt, steps: 20, guidanceScale: model.defaultGuidance, seed: UInt64(seed),
                                             width: resolution, height: resolution)
                images += try withNoGrad { try pipeline.generate(p) }.map(\.image)
            }
        }
        try PNG.write(try Image.grid(images, columns: 4, gap: 2), to: url.path)
    }
}

extension StyleTrainer {
    /// One picture per sample prompt (kohya's per-line options; defaults: the training size, 20 steps, the model's
    /// guidance scale (`StableDiffusionModel.defaultGuidance`: 7.5 unless the folder recommends another), the
    /// line's number as its seed), in a grid of up to 4 columns at `url` when they share one size, otherwise as
    /// `<name>-NN.png` beside it.
    public func writeSamples(_ samples: [SamplePrompt], to url: URL) throws {
        var pipeline = TextToImage(model: model)
        pipeline.tinyAutoencoder = previewDecoder
        var images: [Image] = []
        for (k, s) in samples.enumerated() {
            var p = GenerationParameters(prompt: s.prompt, negativePrompt: s.negativePrompt, steps: s.steps ?? 20,
                                         guidanceScale: model.defaultGuidance, seed: s.seed ?? UInt64(k), width: s.width ?? resolution, height: s.height ?? resolution)
            if let cfg = s.guidanceScale { p.guidanceScale = cfg }
            images += try withNoGrad { try pipeline.generate(p) }.map(\.image)
        }
        if Set(images.map { "\($0.width)x\($0.height)" }).count == 1 {
            try PNG.write(try Image.grid(images, columns: min(4, images.count), gap: 2), to: url.path)
        } else {
            let stem = url.deletingPathExtension().lastPathComponent
            for (k, image) in images.enumerated() {
                try PNG.write(image, to: url.deletingLastPathComponent().appendingPathComponent(String(format: "%@-%02d.png", stem, k)).path)
            }
        }
    }
}

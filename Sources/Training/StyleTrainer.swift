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

    public init(imagesDirectory: String, pipeline: String, prompt: InstancePrompt) {
        self.imagesDirectory = imagesDirectory
        self.pipeline = pipeline
        self.prompt = prompt
    }

    /// Prior preservation is on when a class is given and not switched off.
    public var usesPrior: Bool { prior && prompt.classPrompt != nil }
}

public final class StyleTrainer {
    public let config: StyleTrainingConfig
    public let model: StableDiffusionModel
    public let adapters: AdapterSet
    public let instances: DreamBoothDataset
    public let classes: DreamBoothDataset?
    public let loop: TrainingLoop
    public let resolution: Int
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
        let rule = config.prompt.override == nil ? config.prompt.prompt(forCaption:) : { $0 }
        instances = try DreamBoothDataset(directory: URL(fileURLWithPath: config.imagesDirectory), prompt: config.prompt.text,
                                          resolution: resolution, caption: rule)
        classes = try classImages.map { try DreamBoothDataset(directory: $0, prompt: config.prompt.classPrompt ?? "", resolution: resolution) }

        model.unet.freeze()
        model.textEncoder.freeze()
        model.unet.gradientCheckpointing = config.gradientCheckpointing
        adapters = AdapterSet(unet: model.unet, textEncoder: config.trainTextEncoder ? model.textEncoder : nil, seed: config.seed)
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
        }
        let schedule = try NoiseSchedule(config: model.schedulerConfig)
        let objective = DiffusionObjective(schedule: schedule, prediction: model.schedulerConfig.predictionType ?? .epsilon,
                                           snrGamma: config.snrGamma, noiseOffset: config.noiseOffset)
        let configJSON = try canonicalJSON(config)
        let (instances, classes) = (instances, classes)
        var contexts: [String: Tensor] = [:]      // a frozen text encoder encodes each prompt once
        func conditioning(_ prompts: [String]) throws -> Conditioning {
            if config.trainTextEncoder { return try model.encode(prompts: prompts) }
            for p in prompts where contexts[p] == nil {
                contexts[p] = try withNoGrad { try model.encode(prompts: [p]) }.context.value
            }
            return Conditioning(context: Variable(try concatBatch(prompts.map { contexts[$0]! })))
        }
        loop = try TrainingLoop(groups: groups, settings: config.loop, runDirectory: runDirectory,
                                configuration: configJSON, seed: config.seed) { random in
            let rows = PriorPreservation.composeBatch(batch: config.batch, instanceCount: instances.examples.count,
                                                      classCount: classes?.examples.count ?? 0,
                                                      priorWeight: config.priorWeight, random: &random)
            var samples: [Tensor] = [], prompts: [String] = []
            for row in rows {
                let set = row.isClass ? classes! : instances
                samples.append(try set.sample(row.index, crop: config.crop, flip: config.flip, vae: model.vae, random: &random))
                var prompt = set.examples[row.index].prompt
                if let p = config.captionDropout, p > 0, Double(random.next() >> 11) * 0x1p-53 < p { prompt = "" }
                prompts.append(prompt)
            }
            return try objective.loss(unet: model.unet, x0: try stackBatch(samples), conditioning: try conditioning(prompts),
                                      rowWeights: rows.map(\.weight), random: &random)
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
        let u = model.unet.parameterCounts(), t = model.textEncoder.parameterCounts()
        return ParameterCounts(trainable: u.trainable + t.trainable, all: u.all + t.all).report
    }

    /// Writes the adapter as a kohya-format file with the run's metadata.
    public func writeAdapter(to path: String) throws {
        var modules: [LoRAModuleWeights] = []
        for (i, stack) in adapters.stacks.values.sorted(by: { $0.component.rawValue < $1.component.rawValue }).enumerated() {
            modules += allocators.isEmpty ? try stack.export(adapterName)
                : allocators[i].export(component: stack.component, index: stack.index)   // a LoRA with a rank per module
        }
        var extra = ["ss_training_comment": "train-style DreamBooth LoRA", "ss_prompt": config.prompt.text,
                     "ss_resolution": "(\(resolution), \(resolution))", "ss_seed": String(config.seed),
                     "ss_learning_rate": String(config.loop.learningRate), "ss_base_model": model.name]
        if let c = config.prompt.className { extra["ss_class"] = c }
        if let p = config.prompt.classPrompt, config.usesPrior { extra["ss_class_prompt"] = p }
        let info = LoRAFileInfo(triggerPhrase: config.prompt.style ? "in the style of \(config.prompt.token)"
                                    : [config.prompt.token, config.prompt.className].compactMap { $0 }.joined(separator: " "),
                                steps: loop.state.step, baseModelHash: try model.modelHash(), extra: extra)
        try LoRAWriter.write(modules, to: path, format: .kohya, info: info)
    }

    /// A grid of the validation prompts, one row per prompt, seeds 0…3, with the adapter active.
    public func writePreview(to url: URL, prompts: [String]) throws {
        let pipeline = TextToImage(model: model)
        var images: [Image] = []
        for prompt in prompts {
            for seed in 0..<4 {
                let p = GenerationParameters(prompt: prompt, steps: 20, seed: UInt64(seed), width: resolution, height: resolution)
                images += try withNoGrad { try pipeline.generate(p) }.map(\.image)
            }
        }
        try PNG.write(try Image.grid(images, columns: 4, gap: 2), to: url.path)
    }
}

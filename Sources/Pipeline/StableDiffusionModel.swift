// StableDiffusionModel: the loaded components of a diffusers pipeline folder — tokenizer, CLIP text
// encoder, UNet, optional VAE (absent: a pixel-space model) and the scheduler configuration. An SDXL folder
// (`StableDiffusionXLPipeline`: a UNet with `addition_embed_type: "text_time"`) also has `tokenizer_2/` and
// `text_encoder_2/` (`CLIPTextModelWithProjection`); see `encode(prompts:clipSkip:)`.
//
// Each component is loaded strictly from its safetensors file (F16/BF16/F32 converted to F32); a failure
// names the component, the file and, for weights, the key path and shapes.

import Autograd
import CLIPText
import DiffusionModels
import Foundation
import NN
import SafeTensors
import Schedulers
import TensorCore

public final class StableDiffusionModel {
    /// A1111's `Model` field: the pipeline folder's name.
    public let name: String
    public let tokenizer: BPETokenizer
    public let textEncoder: CLIPTextModel
    /// SDXL's second tokenizer and text encoder (OpenCLIP bigG; pads with "!"); nil for SD-1.x/2.x.
    public let tokenizer2: BPETokenizer?
    public let textEncoder2: CLIPTextModelWithProjection?
    /// SDXL (`model_index.json` `force_zeros_for_empty_prompt`, default true): an empty negative prompt is
    /// zero embeddings instead of `encode("")`.
    public let forceZerosForEmptyPrompt: Bool
    public let unet: UNet2DConditionModel
    /// nil for a pixel-space model (the UNet denoises images directly).
    public let vae: AutoencoderKL?
    /// `scheduler/scheduler_config.json`; Stable Diffusion 1.x's when the file is absent.
    public let schedulerConfig: SchedulerConfig
    /// The guidance scale the model folder recommends (`model_index.json` `_guidance_scale`); nil: none.
    public let recommendedGuidance: Double?
    /// The guidance scale to draw with when a command is given none: the recommended one, else diffusers' 7.5.
    public var defaultGuidance: Double { recommendedGuidance ?? GenerationParameters.defaultGuidanceScale }
    /// The UNet weight file, the one `modelHash` digests (nil for models built in memory).
    public let unetWeights: URL?
    private var cachedHash: String?

    /// A model from components built in memory (e.g. with random weights for benchmarks), or loaded from
    /// `hashedFile` (the file `modelHash` digests: a single-file checkpoint, or a folder's UNet weights).
    public init(name: String, tokenizer: BPETokenizer, textEncoder: CLIPTextModel, unet: UNet2DConditionModel,
                vae: AutoencoderKL?, schedulerConfig: SchedulerConfig = .stableDiffusion1, hashedFile: URL? = nil,
                tokenizer2: BPETokenizer? = nil, textEncoder2: CLIPTextModelWithProjection? = nil,
                forceZerosForEmptyPrompt: Bool = true, recommendedGuidance: Double? = nil) throws {
        self.name = name
        self.recommendedGuidance = recommendedGuidance
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.tokenizer2 = tokenizer2
        self.textEncoder2 = textEncoder2
        self.forceZerosForEmptyPrompt = forceZerosForEmptyPrompt
        self.unet = unet
        self.vae = vae
        self.schedulerConfig = schedulerConfig
        unetWeights = hashedFile
        try checkCompatibility(unetConfigPath: "unet config")
    }

    /// Loads every component of the folder at `path`.
    public init(path: String) throws {
        let folder = try DiffusersFolder(path: path)
        name = folder.name
        tokenizer = try Self.component("tokenizer", folder.folder("tokenizer").path) { try folder.tokenizer() }

        let textConfig = try folder.file("text_encoder", "config.json")
        let textWeights = try folder.weights("text_encoder")
        textEncoder = try Self.component("text_encoder", textWeights.path) {
            let model = try CLIPTextModel(config: CLIPTextConfig(contentsOf: textConfig))
            try model.loadCheckpoint(try SafeTensorsFile(path: textWeights.path).loadAll())
            return model
        }

        if folder.names("text_encoder_2") {
            tokenizer2 = try Self.component("tokenizer_2", folder.folder("tokenizer_2").path) { try folder.tokenizer("tokenizer_2") }
            let config2 = try folder.file("text_encoder_2", "config.json")
            let weights2 = try folder.weights("text_encoder_2")
            textEncoder2 = try Self.component("text_encoder_2", weights2.path) {
                let model = try CLIPTextModelWithProjection(config: CLIPTextConfig(contentsOf: config2),
                                                            projectionDim: CLIPTextModelWithProjection.projectionDim(contentsOf: config2))
                try model.loadCheckpoint(try SafeTensorsFile(path: weights2.path).loadAll())
                return model
            }
        } else {
            tokenizer2 = nil
            textEncoder2 = nil
        }
        forceZerosForEmptyPrompt = folder.flag("force_zeros_for_empty_prompt") ?? true
        recommendedGuidance = try folder.recommendedGuidance()

        let unetConfig = try folder.file("unet", "config.json")
        let unetWeights = try folder.weights("unet")
        self.unetWeights = unetWeights
        unet = try Self.component("unet", unetWeights.path) {
            let model = UNet2DConditionModel(config: try UNet2DConditionConfig(contentsOf: unetConfig))
            let file = try SafeTensorsFile(path: unetWeights.path)
            if try UNetQuantization.read(configPath: unetConfig.path) != nil {   // a bitsandbytes 4-bit UNet
                try QuantizedCheckpoint.load(model, from: file, path: "unet/" + unetWeights.lastPathComponent)
            } else {
                try model.load(stateDict: try file.loadAll())
            }
            return model
        }

        if folder.isLatent {
            let vaeConfig = try folder.file("vae", "config.json")
            let vaeWeights = try folder.weights("vae")
            vae = try Self.component("vae", vaeWeights.path) {
                let model = AutoencoderKL(config: try AutoencoderKLConfig(contentsOf: vaeConfig))
                try model.load(stateDict: try SafeTensorsFile(path: vaeWeights.path).loadAll())
                return model
            }
        } else {
            vae = nil
        }

        if let schedulerURL = folder.schedulerConfig {
            schedulerConfig = try Self.component("scheduler", schedulerURL.path) {
                try SchedulerConfig.decode(Data(contentsOf: schedulerURL), path: schedulerURL.path)
            }
        } else {
            schedulerConfig = .stableDiffusion1
        }
        try checkCompatibility(unetConfigPath: folder.url.appendingPathComponent("unet/config.json").path)
    }

    /// The one prompt → conditioning path: tokenizes `prompts` and runs the text encoder, skipping the last
    /// `clipSkip` layers (diffusers' `clip_skip`); [N, 77, C] context. Gradients are recorded as the caller's
    /// grad mode says (training the text encoder records them).
    ///
    /// SDXL (diffusers' `StableDiffusionXLPipeline.encode_prompt`): each encoder's `hidden_states[-(clipSkip + 2)]`
    /// (no final layer norm), concatenated on the channel axis [N, 77, C1 + C2], and the second encoder's
    /// projected pooled output as `textEmbeds` [N, P]. `timeIds` are left to the caller (they depend on the
    /// picture's sizes: `withTimeIds`).
    public func encode(prompts: [String], clipSkip: Int = 0) throws -> Conditioning {
        guard let tokenizer2, let textEncoder2 else {
            return Conditioning(context: try textEncoder.encode(prompts.map { tokenizer.encode($0).ids }, clipSkip: clipSkip))
        }
        let first = try textEncoder.hiddenState(prompts.map { tokenizer.encode($0).ids }, skippingLast: clipSkip + 1)
        let second = try textEncoder2.encode(prompts.map { tokenizer2.encode($0).ids }, skippingLast: clipSkip + 1)
        return Conditioning(context: try concatChannels([first, second.hidden]), textEmbeds: second.textEmbeds)
    }

    /// Whether the UNet takes SDXL's added conditioning (pooled text embeds and size/crop time ids).
    public var isSDXL: Bool { unet.config.textTime != nil }

    /// The deepest clip skip the text encoders allow.
    public var maxClipSkip: Int {
        let layers = min(textEncoder.config.numHiddenLayers, textEncoder2?.config.numHiddenLayers ?? Int.max)
        return isSDXL ? layers - 2 : layers - 1
    }

    /// Whether the UNet works on VAE latents.
    public var isLatent: Bool { vae != nil }

    /// Pixels per latent cell along each side (the VAE's downsampling factor; 1 for pixel models).
    public var spatialFactor: Int { vae?.config.downsamplingFactor ?? 1 }

    /// Image sides must be multiples of this: 8 for latent models (as diffusers requires), at least the
    /// VAE factor; 1 for pixel models.
    public var sizeMultiple: Int { isLatent ? max(8, spatialFactor) : 1 }

    /// Default image size: the UNet's `sample_size` times the spatial factor (512 for SD-1.5).
    public var defaultSize: Int { (unet.config.sampleSize ?? 64) * spatialFactor }

    /// A1111's `Model hash`: the first 10 hex digits of the UNet weight file's SHA-256 (computed once);
    /// nil for a model built in memory.
    public func modelHash() throws -> String? {
        if let cachedHash { return cachedHash }
        guard let unetWeights else { return nil }
        let hash = String(try SHA256.hexDigest(ofFile: unetWeights.path).prefix(10))
        cachedHash = hash
        return hash
    }

    /// Channel counts that must agree between the components.
    private func checkCompatibility(unetConfigPath: String) throws {
        let context = textEncoder.config.hiddenSize + (textEncoder2?.config.hiddenSize ?? 0)
        if let textTime = unet.config.textTime {
            guard let textEncoder2 else {
                throw PipelineError.invalidFile(path: unetConfigPath, reason: "an SDXL UNet (addition_embed_type "
                    + "\"text_time\") needs text_encoder_2 and tokenizer_2")
            }
            guard textTime.textEmbedDim == textEncoder2.projectionDim else {
                throw PipelineError.invalidFile(path: unetConfigPath, reason: "projection_class_embeddings_input_dim "
                    + "\(textTime.inputDim) − 6 × addition_time_embed_dim \(textTime.timeEmbedDim) does not match "
                    + "text_encoder_2's projection_dim \(textEncoder2.projectionDim)")
            }
        }
        guard unet.config.crossAttentionDim.allSatisfy({ $0 == context }) else {
            throw PipelineError.invalidFile(
                path: unetConfigPath,
                reason: "cross_attention_dim \(unet.config.crossAttentionDim) does not match the text encoder's "
                    + "hidden_size \(context)" + (textEncoder2 == nil ? "" : " (both encoders together)"))
        }
        if let vae, vae.config.latentChannels != unet.config.inChannels {
            throw PipelineError.invalidFile(
                path: unetConfigPath,
                reason: "in_channels \(unet.config.inChannels) does not match the VAE's latent_channels "
                    + "\(vae.config.latentChannels)")
        }
    }

    /// Runs `body`, wrapping any error that is not already a `PipelineError` with the component and file.
    private static func component<T>(_ name: String, _ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as PipelineError {
            throw error
        } catch {
            throw PipelineError.componentLoad(component: name, path: path, underlying: error)
        }
    }
}

// StableDiffusionModel: the loaded components of a diffusers pipeline folder — tokenizer, CLIP text
// encoder, UNet, optional VAE (absent: a pixel-space model) and the scheduler configuration.
//
// Each component is loaded strictly from its safetensors file (F16/BF16/F32 converted to F32); a failure
// names the component, the file and, for weights, the key path and shapes.

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
    public let unet: UNet2DConditionModel
    /// nil for a pixel-space model (the UNet denoises images directly).
    public let vae: AutoencoderKL?
    /// `scheduler/scheduler_config.json`; Stable Diffusion 1.x's when the file is absent.
    public let schedulerConfig: SchedulerConfig
    /// The UNet weight file, the one `modelHash` digests (nil for models built in memory).
    public let unetWeights: URL?
    private var cachedHash: String?

    /// A model from components built in memory (e.g. with random weights for benchmarks), or loaded from
    /// `hashedFile` (the file `modelHash` digests: a single-file checkpoint, or a folder's UNet weights).
    public init(name: String, tokenizer: BPETokenizer, textEncoder: CLIPTextModel, unet: UNet2DConditionModel,
                vae: AutoencoderKL?, schedulerConfig: SchedulerConfig = .stableDiffusion1, hashedFile: URL? = nil) throws {
        self.name = name
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
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
    public func encode(prompts: [String], clipSkip: Int = 0) throws -> Conditioning {
        Conditioning(context: try textEncoder.encode(prompts.map { tokenizer.encode($0).ids }, clipSkip: clipSkip))
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
        let context = textEncoder.config.hiddenSize
        guard unet.config.crossAttentionDim.allSatisfy({ $0 == context }) else {
            throw PipelineError.invalidFile(
                path: unetConfigPath,
                reason: "cross_attention_dim \(unet.config.crossAttentionDim) does not match the text encoder's "
                    + "hidden_size \(context)")
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

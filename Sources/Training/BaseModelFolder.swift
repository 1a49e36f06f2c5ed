// The embedded base model's architecture and its diffusers folder: `model_index.json`, `unet/`,
// `text_encoder/`, `tokenizer/` (CLIP-format vocab.json + merges.txt), `scheduler/`, no `vae/`
// (a pixel-space model, as DESIGN.md §6 describes). Weights are written as F16.
import CLIPText
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore

/// The shapes of a from-scratch base model.
public struct BaseArchitecture: Codable, Equatable, Sendable {
    /// UNet: pixel space (3 channels), `sampleSize`² images.
    public var sampleSize: Int = 64
    public var blockOutChannels: [Int] = [32, 64, 128]
    public var attentionHeads: Int = 4
    public var normGroups: Int = 8
    /// Text encoder width (= UNet cross-attention width), layers, heads, positions.
    public var textHidden: Int = 64
    public var textLayers: Int = 3
    public var textHeads: Int = 4
    public var tokenLength: Int = 32

    public init() {}

    /// A very small variant for tests (16 px, 2 levels).
    public static var tiny: BaseArchitecture {
        var a = BaseArchitecture()
        a.sampleSize = 16
        a.blockOutChannels = [16, 32]
        a.attentionHeads = 2
        a.textHidden = 32
        a.textLayers = 1
        a.textHeads = 2
        a.tokenLength = 16
        return a
    }

    /// Down blocks: plain ResNets at full resolution, cross-attention below (attention on 4096 tokens
    /// would cost more than the rest of the network together).
    public var unetConfig: UNet2DConditionConfig {
        let n = blockOutChannels.count
        let down: [UNetDownBlockType] = [.downBlock2D] + Array(repeating: .crossAttnDownBlock2D, count: n - 1)
        let up: [UNetUpBlockType] = Array(repeating: .crossAttnUpBlock2D, count: n - 1) + [.upBlock2D]
        return UNet2DConditionConfig(
            sampleSize: sampleSize, inChannels: 3, outChannels: 3, downBlockTypes: down, upBlockTypes: up,
            blockOutChannels: blockOutChannels, layersPerBlock: Array(repeating: 1, count: n), normNumGroups: normGroups,
            crossAttentionDim: Array(repeating: textHidden, count: n), attentionHeads: Array(repeating: attentionHeads, count: n))
    }

    public func textConfig(vocabularySize: Int, eosTokenID: Int) -> CLIPTextConfig {
        CLIPTextConfig(vocabSize: vocabularySize, hiddenSize: textHidden, intermediateSize: 4 * textHidden,
                       numHiddenLayers: textLayers, numAttentionHeads: textHeads, maxPositionEmbeddings: tokenLength,
                       hiddenAct: .quickGELU, eosTokenID: eosTokenID)
    }
}

/// Writes a pixel-space diffusers pipeline folder.
public enum BaseModelFolder {
    /// Stable Diffusion 1.x's noise schedule (scaled-linear betas 0.00085…0.012, ε-prediction). In pixel
    /// space it still ends at SNR 0.005 (σ_max ≈ 14.6); DDPM's linear 1e-4…0.02 ends at σ_max ≈ 156, which
    /// multiplies any ε error of an early model by 10× more in the first sampler steps.
    public static let schedulerJSON = """
        {
          "_class_name": "PNDMScheduler",
          "beta_end": 0.012,
          "beta_schedule": "scaled_linear",
          "beta_start": 0.00085,
          "num_train_timesteps": 1000,
          "prediction_type": "epsilon",
          "set_alpha_to_one": false,
          "skip_prk_steps": true,
          "steps_offset": 1,
          "timestep_spacing": "leading"
        }

        """

    static let modelIndexJSON = """
        {
          "_class_name": "StableDiffusionPipeline",
          "_diffusers_version": "0.42.1",
          "feature_extractor": [null, null],
          "image_encoder": [null, null],
          "requires_safety_checker": false,
          "safety_checker": [null, null],
          "scheduler": ["diffusers", "PNDMScheduler"],
          "text_encoder": ["transformers", "CLIPTextModel"],
          "tokenizer": ["transformers", "CLIPTokenizer"],
          "unet": ["diffusers", "UNet2DConditionModel"],
          "vae": [null, null]
        }

        """

    /// Writes every file of the folder at `url` (created if needed; files replaced atomically).
    public static func write(to url: URL, unet: UNet2DConditionModel, textEncoder: CLIPTextModel,
                             vocabulary: [String: Int], merges: [(String, String)], tokenLength: Int,
                             dtype: DType = .f16) throws {
        let fm = FileManager.default
        for sub in ["unet", "text_encoder", "tokenizer", "scheduler"] {
            try fm.createDirectory(at: url.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        func text(_ s: String, _ path: String) throws {
            try Data(s.utf8).write(to: url.appendingPathComponent(path), options: .atomic)
        }
        try text(modelIndexJSON, "model_index.json")
        try text(schedulerJSON, "scheduler/scheduler_config.json")
        try unet.config.jsonData().write(to: url.appendingPathComponent("unet/config.json"), options: .atomic)
        try SafeTensorsWriter.write(unet.stateDict(), as: dtype,
                                    to: url.appendingPathComponent("unet/diffusion_pytorch_model.safetensors").path)

        guard var textConfig = try JSONSerialization.jsonObject(with: JSONEncoder().encode(textEncoder.config)) as? [String: Any] else {
            throw TrainingError.invalidSettings("the text encoder configuration does not encode as a JSON object")
        }
        textConfig["architectures"] = ["CLIPTextModel"]
        textConfig["model_type"] = "clip_text_model"
        textConfig["bos_token_id"] = vocabulary["<|startoftext|>"]
        textConfig["pad_token_id"] = vocabulary["<|endoftext|>"]
        textConfig["projection_dim"] = textEncoder.config.hiddenSize
        textConfig["dtype"] = dtype == .f16 ? "float16" : "float32"
        try JSONSerialization.data(withJSONObject: textConfig, options: [.sortedKeys, .prettyPrinted])
            .write(to: url.appendingPathComponent("text_encoder/config.json"), options: .atomic)
        try SafeTensorsWriter.write(textEncoder.stateDict(), as: dtype,
                                    to: url.appendingPathComponent("text_encoder/model.safetensors").path)

        let (vocab, mergesText) = try CLIPVocabularyBuilder.files(vocabulary: vocabulary, merges: merges)
        try vocab.write(to: url.appendingPathComponent("tokenizer/vocab.json"), options: .atomic)
        try mergesText.write(to: url.appendingPathComponent("tokenizer/merges.txt"), options: .atomic)
        try text("""
            {
              "bos_token": "<|startoftext|>",
              "eos_token": "<|endoftext|>",
              "model_max_length": \(tokenLength),
              "pad_token": "<|endoftext|>",
              "tokenizer_class": "CLIPTokenizer",
              "unk_token": "<|endoftext|>"
            }

            """, "tokenizer/tokenizer_config.json")
    }
}

// port of transformers/models/clip/modeling_clip.py (transformers 5.23): CLIPTextModelWithProjection, the
// text tower SDXL uses as `text_encoder_2` (OpenCLIP ViT-bigG/14: gelu, projection without bias).
//
// `text_model` is a `CLIPTextModel`; `text_projection` maps the pooled output (the final-layer-normed state
// at each row's EOS) to `projection_dim`: transformers' `text_embeds`. Checkpoint keys are
// `text_model.<CLIPTextModel key>` and `text_projection.weight` [projection_dim, hidden_size], as
// transformers 5 saves them.

import Autograd
import Foundation
import NN
import TensorCore

/// What `CLIPTextModelWithProjection` computes for a batch of id rows.
public struct CLIPTextWithProjectionOutput {
    /// The text model's output (last hidden state, every hidden state, pooled output).
    public var text: CLIPTextOutput
    /// [N, projection_dim]: `text_projection(pooled output)` (SDXL's pooled `text_embeds`).
    public var textEmbeds: Variable
}

public final class CLIPTextModelWithProjection: Module {
    public let text_model: CLIPTextModel
    public let text_projection: Linear          // [P, C], no bias
    public var config: CLIPTextConfig { text_model.config }
    /// Width of `text_embeds` (`projection_dim`).
    public let projectionDim: Int

    /// A model with zero weights; set them with `loadCheckpoint`.
    public init(config: CLIPTextConfig, projectionDim: Int) throws {
        guard projectionDim > 0 else {
            throw CLIPTextError.invalidConfig(path: "config", reason: "projection_dim must be positive, is \(projectionDim)")
        }
        text_model = try CLIPTextModel(config: config)
        text_projection = Linear(inFeatures: config.hiddenSize, outFeatures: projectionDim, bias: false)
        self.projectionDim = projectionDim
        super.init()
    }

    /// `projection_dim` of a `config.json` (transformers' default 512 when absent).
    public static func projectionDim(contentsOf url: URL) throws -> Int {
        let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: url))
        guard let dict = object as? [String: Any] else {
            throw CLIPTextError.invalidConfig(path: url.path, reason: "not a JSON object")
        }
        guard let value = dict["projection_dim"] else { return 512 }
        guard let dim = value as? Int else {
            throw CLIPTextError.invalidConfig(path: url.path, reason: "projection_dim: expected an integer, found \(value)")
        }
        return dim
    }

    /// Runs the whole model (no padding mask, as Stable Diffusion calls it).
    public func callAsFunction(_ ids: [[Int]]) throws -> CLIPTextWithProjectionOutput {
        let text = try text_model(ids)
        return CLIPTextWithProjectionOutput(text: text, textEmbeds: try text_projection(text.pooledOutput))
    }

    /// SDXL's use of the encoder: `hidden_states[-(skip + 1)]` (no final norm) and the projected pooled output
    /// of the full model. ids [N][L] → ([N, L, C], [N, P]).
    public func encode(_ ids: [[Int]], skippingLast skip: Int) throws -> (hidden: Variable, textEmbeds: Variable) {
        guard (0...config.numHiddenLayers).contains(skip) else {
            throw CLIPTextError.invalidInput("clip skip \(skip) is outside 0...\(config.numHiddenLayers)")
        }
        let out = try self(ids)
        return (out.text.hiddenStates[config.numHiddenLayers - skip], out.textEmbeds)
    }

    /// Sets every weight from a checkpoint (`text_model.…` and `text_projection.weight`; the text model's keys
    /// may also come without the prefix); strict as `CLIPTextModel.loadCheckpoint`.
    public func loadCheckpoint(_ stateDict: [String: Tensor]) throws {
        var text = stateDict
        guard let projection = text.removeValue(forKey: "text_projection.weight") else {
            throw StateDictError.missingParameter(key: "text_projection.weight",
                                                  expectedShape: [projectionDim, config.hiddenSize])
        }
        try text_projection.load(stateDict: ["weight": projection])
        try text_model.loadCheckpoint(text)
    }
}

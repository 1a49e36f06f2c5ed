// ToyArchitecture: the embedded base model's shape — a pixel-space (no VAE) 64×64 UNet2DConditionModel
// conditioned on a small CLIP text encoder, and the noise schedule it is trained with.
//
// Candidates are named so `train-base --arch NAME` can compare them; all are SD-1-like (cross-attention
// transformers at the lower-resolution levels and in the middle block, one resnet per level).
import CLIPText
import DiffusionModels
import Foundation
import Schedulers

public struct ToyArchitecture: Sendable {
    public var name: String
    public var unet: UNet2DConditionConfig
    public var text: CLIPTextConfig

    /// Names accepted by `named(_:vocabularySize:maxLength:)`.
    public static let names = ["s", "m", "l", "micro"]

    /// - Parameters:
    ///   - name: `s` (32, 64, 128) channels, text 3×128; `m` (64, 128, 128), text 3×128;
    ///     `l` (64, 128, 256), text 4×128; `micro` (tests: 16×16 pictures' worth of channels, text 1×32).
    ///   - vocabularySize: the tokenizer's vocabulary size.
    ///   - maxLength: the tokenizer's `model_max_length` (= `max_position_embeddings`).
    public static func named(_ name: String, vocabularySize: Int, maxLength: Int) -> ToyArchitecture? {
        func make(_ channels: [Int], heads: Int, textWidth: Int, textLayers: Int, groups: Int, size: Int) -> ToyArchitecture {
            let levels = channels.count
            let down: [UNetDownBlockType] = [.downBlock2D] + Array(repeating: .crossAttnDownBlock2D, count: levels - 1)
            let up: [UNetUpBlockType] = Array(repeating: .crossAttnUpBlock2D, count: levels - 1) + [.upBlock2D]
            let unet = UNet2DConditionConfig(
                sampleSize: size, inChannels: 3, outChannels: 3, downBlockTypes: down,
                midBlockType: .unetMidBlock2DCrossAttn, upBlockTypes: up, blockOutChannels: channels,
                layersPerBlock: Array(repeating: 1, count: levels), normNumGroups: groups,
                crossAttentionDim: Array(repeating: textWidth, count: levels),
                attentionHeads: Array(repeating: heads, count: levels))
            let text = CLIPTextConfig(vocabSize: vocabularySize, hiddenSize: textWidth, intermediateSize: 4 * textWidth,
                                      numHiddenLayers: textLayers, numAttentionHeads: max(1, textWidth / 32),
                                      maxPositionEmbeddings: maxLength, hiddenAct: .quickGELU,
                                      eosTokenID: vocabularySize - 1)
            return ToyArchitecture(name: name, unet: unet, text: text)
        }
        switch name {
        case "s": return make([32, 64, 128], heads: 4, textWidth: 128, textLayers: 3, groups: 16, size: 64)
        case "m": return make([64, 128, 128], heads: 4, textWidth: 128, textLayers: 3, groups: 32, size: 64)
        case "l": return make([64, 128, 256], heads: 4, textWidth: 128, textLayers: 4, groups: 32, size: 64)
        case "micro": return make([8, 16], heads: 2, textWidth: 16, textLayers: 1, groups: 4, size: 16)
        default: return nil
        }
    }

    /// The prediction target the toy model is trained for.
    public static let prediction = PredictionType.vPrediction

    /// The scheduler configuration written with the model: DDPM's linear β 1e-4 → 0.02 over 1000 steps
    /// (ᾱ at the last step ≈ 4e-5, so pure noise is a valid start for pixels), v-prediction, trailing spacing
    /// (sampling starts at t = 999).
    public static let scheduler = SchedulerConfig(
        className: "DPMSolverMultistepScheduler", numTrainTimesteps: 1000, betaStart: 0.0001, betaEnd: 0.02,
        betaSchedule: .linear, predictionType: prediction, timestepSpacing: .trailing, stepsOffset: 0,
        setAlphaToOne: false, clipSample: false)
}

// Port of diffusers 0.42 `models/unets/unet_2d_condition.py` `UNet2DConditionModel` for SD-1.x/2.x and
// SDXL configs (positional time embedding, cross-attention down/mid/up blocks, SDXL's "text_time" added
// embedding). Property names are the
// checkpoint's keys, so `load(stateDict:)` takes `unet/diffusion_pytorch_model.safetensors` unchanged.
import Autograd
import NN
import TensorCore

/// ε/v-prediction UNet: noisy sample x_t [N, H, W, inChannels] (NHWC), timesteps, context [N, S, D]
/// → [N, H, W, outChannels].
public final class UNet2DConditionModel: Module {
    public let config: UNet2DConditionConfig
    public let conv_in: Conv2d
    public let time_proj: Timesteps
    public let time_embedding: TimestepEmbedding
    /// SDXL ("text_time"): sinusoidal features of each time id (no parameters) …
    public let add_time_proj: Timesteps?
    /// … and the MLP over [text_embeds, time features] whose output is added to the time embedding.
    public let add_embedding: TimestepEmbedding?
    public let down_blocks: ModuleList<DownBlock>
    public let mid_block: UNetMidBlock2DCrossAttn?
    public let up_blocks: ModuleList<UpBlock>
    public let conv_norm_out: GroupNorm
    public let conv_out: Conv2d
    /// Recompute each resnet's and transformer's activations during backward instead of keeping them
    /// (less memory for training, about one more forward's worth of compute). Off by default.
    public var gradientCheckpointing = false {
        didSet {
            for (_, m) in namedModules() {
                if let r = m as? ResnetBlock2D { r.gradientCheckpointing = gradientCheckpointing }
                if let t = m as? Transformer2DModel { t.gradientCheckpointing = gradientCheckpointing }
            }
        }
    }

    /// A model with zero weights; set them with `load(stateDict:)` or an initialiser.
    public init(config: UNet2DConditionConfig) {
        self.config = config
        let channels = config.blockOutChannels
        let levels = channels.count
        let temb = config.timeEmbedDim
        conv_in = Conv2d(inChannels: config.inChannels, outChannels: channels[0], kernelSize: config.convInKernel,
                         padding: config.convInKernel / 2)
        time_proj = Timesteps(numChannels: channels[0], flipSinToCos: config.flipSinToCos,
                              downscaleFreqShift: config.freqShift)
        time_embedding = TimestepEmbedding(inChannels: channels[0], timeEmbedDim: temb)
        add_time_proj = config.textTime.map {
            Timesteps(numChannels: $0.timeEmbedDim, flipSinToCos: config.flipSinToCos, downscaleFreqShift: config.freqShift)
        }
        add_embedding = config.textTime.map { TimestepEmbedding(inChannels: $0.inputDim, timeEmbedDim: temb) }

        func options(_ level: Int, onlyCross: Bool) -> UNetLevelOptions {
            UNetLevelOptions(tembChannels: temb, groups: config.normNumGroups, eps: config.normEps,
                             heads: config.attentionHeads[level], crossAttentionDim: config.crossAttentionDim[level],
                             transformerLayers: config.transformerLayersPerBlock[level],
                             useLinearProjection: config.useLinearProjection, onlyCrossAttention: onlyCross)
        }
        down_blocks = ModuleList(config.downBlockTypes.enumerated().map { i, type in
            DownBlock(type: type, inChannels: i == 0 ? channels[0] : channels[i - 1], outChannels: channels[i],
                      layers: config.layersPerBlock[i], addDownsample: i < levels - 1,
                      downsamplePadding: config.downsamplePadding,
                      options: options(i, onlyCross: config.onlyCrossAttention[i]))
        })
        mid_block = config.midBlockType.map { _ in
            UNetMidBlock2DCrossAttn(channels: channels[levels - 1], outputScaleFactor: config.midBlockScaleFactor,
                                    options: options(levels - 1, onlyCross: false))
        }
        // The up path mirrors the down path: level i of the up path uses down level (levels − 1 − i)'s options.
        up_blocks = ModuleList(config.upBlockTypes.enumerated().map { i, type in
            let mirrored = levels - 1 - i
            return UpBlock(type: type, inChannels: channels[max(mirrored - 1, 0)], outChannels: channels[mirrored],
                           prevOutputChannels: channels[min(mirrored + 1, levels - 1)],
                           layers: config.layersPerBlock[mirrored] + 1, addUpsample: i < levels - 1,
                           options: options(mirrored, onlyCross: config.onlyCrossAttention[mirrored]))
        })
        conv_norm_out = GroupNorm(groups: config.normNumGroups, channels: channels[0], eps: config.normEps)
        conv_out = Conv2d(inChannels: channels[0], outChannels: config.outChannels, kernelSize: config.convOutKernel,
                          padding: config.convOutKernel / 2)
        super.init()
    }

    /// One denoiser evaluation.
    /// - Parameters:
    ///   - sample: x_t, NHWC [N, H, W, inChannels].
    ///   - timesteps: one value for the whole batch or one per sample (fractional values allowed).
    ///   - conditioning: `context`, the encoder hidden states [N, S, crossAttentionDim]; for SDXL also
    ///     `textEmbeds` [N, P] and `timeIds` [N, 6] (`Conditioning.swift`).
    /// - Returns: [N, H, W, outChannels].
    public func callAsFunction(_ sample: Variable, timesteps: [Float], conditioning: Conditioning) throws -> Variable {
        let context = conditioning.context
        try checkInputs(sample, timesteps, context)
        let n = sample.shape[0]
        let t = timesteps.count == 1 ? Array(repeating: timesteps[0], count: n) : timesteps
        var temb = try time_embedding(time_proj(t))                         // [N, 4·C0]
        if let add = try addedEmbedding(conditioning, batch: n) { temb = try temb + add }

        var h = config.centerInputSample ? try scale(sample, by: 2) + Variable(Tensor(shape: [1], repeating: -1))
                                         : sample
        h = try conv_in(h)                                                  // [N, H, W, C0]
        var skips = [h]
        for block in down_blocks {
            let (out, states) = try block(h, temb: temb, context: context)
            h = out
            skips += states
        }
        if let mid_block { h = try mid_block(h, temb: temb, context: context) }
        for block in up_blocks {
            let taken = Array(skips.suffix(block.resnets.count))
            skips.removeLast(taken.count)
            let size = skips.last.map { (height: $0.shape[1], width: $0.shape[2]) }
            h = try block(h, skips: taken, temb: temb, context: context, upsampleSize: size)
        }
        return try conv_out(conv_norm_out.silu(h))
    }

    /// SDXL's "text_time" embedding: add_embedding(cat([text_embeds, add_time_proj(time_ids).reshape(N, 6·D)]))
    /// [N, 4·C0]; nil for UNets without added conditioning.
    private func addedEmbedding(_ c: Conditioning, batch n: Int) throws -> Variable? {
        guard let textTime = config.textTime, let add_time_proj, let add_embedding else { return nil }
        guard let textEmbeds = c.textEmbeds, let timeIds = c.timeIds else {
            throw AutogradError.invalidInput("UNet2DConditionModel: addition_embed_type \"text_time\" needs text_embeds "
                + "[\(n), \(textTime.textEmbedDim)] and time_ids [\(n), 6] in the conditioning (an SDXL UNet)")
        }
        guard textEmbeds.shape == [n, textTime.textEmbedDim], timeIds.shape == [n, UNetTextTimeEmbedding.timeIdCount] else {
            throw AutogradError.invalidInput("UNet2DConditionModel: text_embeds must be [\(n), \(textTime.textEmbedDim)] and "
                + "time_ids [\(n), 6], got \(textEmbeds.shape) and \(timeIds.shape)")
        }
        let features = add_time_proj(timeIds.withUnsafeBufferPointer { Array($0) })   // [N·6, D]
        let timeEmbeds = try reshape(features, [n, UNetTextTimeEmbedding.timeIdCount * textTime.timeEmbedDim])
        return try add_embedding(concatChannels([textEmbeds, timeEmbeds]))           // [N, 4·C0]
    }

    private func checkInputs(_ sample: Variable, _ timesteps: [Float], _ context: Variable) throws {
        let s = sample.shape, c = context.shape
        guard s.count == 4, s[3] == config.inChannels, s[1] > 0, s[2] > 0 else {
            throw AutogradError.invalidInput("UNet2DConditionModel: sample must be NHWC [N, H, W, \(config.inChannels)], got \(s)")
        }
        guard c.count == 3, c[0] == s[0], config.crossAttentionDim.allSatisfy({ $0 == c[2] }) else {
            throw AutogradError.invalidInput("UNet2DConditionModel: context must be [\(s[0]), S, \(config.crossAttentionDim[0])], got \(c)")
        }
        guard timesteps.count == 1 || timesteps.count == s[0] else {
            throw AutogradError.invalidInput("UNet2DConditionModel: \(timesteps.count) timesteps for a batch of \(s[0])")
        }
    }
}

// Port of diffusers 0.42 `models/autoencoders/vae.py` `Encoder` and `Decoder` with their blocks from
// `models/unets/unet_2d_blocks.py`: `DownEncoderBlock2D`, `UpDecoderBlock2D`, `UNetMidBlock2D`
// (one resnet → spatial self-attention → resnet). No time embedding; GroupNorm eps 1e-6. All NHWC.
import Autograd
import NN
import TensorCore

/// The VAE's single-head spatial self-attention (diffusers `Attention` built with `norm_num_groups`,
/// `residual_connection=True`, `bias=True`): GroupNorm → q/k/v over the H·W positions → to_out → + input.
public final class SpatialSelfAttention: Module {
    public let group_norm: GroupNorm
    public let attention: NN.Attention

    public init(channels: Int, groups: Int, eps: Float) {
        group_norm = GroupNorm(groups: groups, channels: channels, eps: eps)
        attention = NN.Attention(queryDim: channels, heads: 1, dimHead: channels, bias: true)
        super.init()
    }

    /// Keys as diffusers: `group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0`.
    public override func namedChildren() -> [(String, Module)] {
        [("group_norm", group_norm)] + attention.namedChildren()
    }

    /// [N, H, W, C] → [N, H, W, C].
    public func callAsFunction(_ x: Variable) throws -> Variable {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let tokens = try reshape(group_norm(x), [n, h * w, c])              // [N, H·W, C]
        return try reshape(attention(tokens), [n, h, w, c]) + x
    }
}

/// `UNetMidBlock2D` without time embedding: resnet → (attention) → resnet.
public final class UNetMidBlock2D: Module {
    public let attentions: ModuleList<SpatialSelfAttention>?
    public let resnets: ModuleList<ResnetBlock2D>

    public init(channels: Int, groups: Int, addAttention: Bool) {
        attentions = addAttention ? ModuleList([SpatialSelfAttention(channels: channels, groups: groups, eps: 1e-6)]) : nil
        resnets = ModuleList((0..<2).map { _ in
            ResnetBlock2D(inChannels: channels, outChannels: channels, tembChannels: nil, groups: groups, eps: 1e-6)
        })
        super.init()
    }

    public func callAsFunction(_ x: Variable) throws -> Variable {
        var h = try resnets[0](x, temb: nil)
        if let attentions { h = try attentions[0](h) }
        return try resnets[1](h, temb: nil)
    }
}

/// `DownEncoderBlock2D`: resnets, then a stride-2 `Downsample2D` with bottom/right zero padding.
public final class DownEncoderBlock2D: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let downsamplers: ModuleList<Downsample2D>?

    public init(inChannels: Int, outChannels: Int, layers: Int, groups: Int, addDownsample: Bool) {
        resnets = ModuleList((0..<layers).map { i in
            ResnetBlock2D(inChannels: i == 0 ? inChannels : outChannels, outChannels: outChannels, tembChannels: nil,
                          groups: groups, eps: 1e-6)
        })
        downsamplers = addDownsample ? ModuleList([Downsample2D(channels: outChannels, padding: 0)]) : nil
        super.init()
    }

    public func callAsFunction(_ x: Variable) throws -> Variable {
        var h = x
        for resnet in resnets { h = try resnet(h, temb: nil) }
        if let downsamplers { h = try downsamplers[0](h) }
        return h
    }
}

/// `UpDecoderBlock2D`: resnets, then a nearest ×2 `Upsample2D`.
public final class UpDecoderBlock2D: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let upsamplers: ModuleList<Upsample2D>?

    public init(inChannels: Int, outChannels: Int, layers: Int, groups: Int, addUpsample: Bool) {
        resnets = ModuleList((0..<layers).map { i in
            ResnetBlock2D(inChannels: i == 0 ? inChannels : outChannels, outChannels: outChannels, tembChannels: nil,
                          groups: groups, eps: 1e-6)
        })
        upsamplers = addUpsample ? ModuleList([Upsample2D(channels: outChannels)]) : nil
        super.init()
    }

    public func callAsFunction(_ x: Variable) throws -> Variable {
        var h = x
        for resnet in resnets { h = try resnet(h, temb: nil) }
        if let upsamplers { h = try upsamplers[0](h) }
        return h
    }
}

/// Image [N, H, W, inChannels] → posterior moments [N, H/f, W/f, 2·latentChannels] (before quant_conv).
public final class Encoder: Module {
    public let conv_in: Conv2d
    public let down_blocks: ModuleList<DownEncoderBlock2D>
    public let mid_block: UNetMidBlock2D
    public let conv_norm_out: GroupNorm
    public let conv_out: Conv2d

    public init(config c: AutoencoderKLConfig) {
        let ch = c.blockOutChannels
        conv_in = Conv2d(inChannels: c.inChannels, outChannels: ch[0], kernelSize: 3, padding: 1)
        down_blocks = ModuleList(ch.indices.map { i in
            DownEncoderBlock2D(inChannels: i == 0 ? ch[0] : ch[i - 1], outChannels: ch[i], layers: c.layersPerBlock,
                               groups: c.normNumGroups, addDownsample: i < ch.count - 1)
        })
        mid_block = UNetMidBlock2D(channels: ch[ch.count - 1], groups: c.normNumGroups, addAttention: c.midBlockAddAttention)
        conv_norm_out = GroupNorm(groups: c.normNumGroups, channels: ch[ch.count - 1], eps: 1e-6)
        conv_out = Conv2d(inChannels: ch[ch.count - 1], outChannels: 2 * c.latentChannels, kernelSize: 3, padding: 1)
        super.init()
    }

    public func callAsFunction(_ x: Variable) throws -> Variable {
        var h = try conv_in(x)
        for block in down_blocks { h = try block(h) }
        h = try mid_block(h)
        return try conv_out(conv_norm_out.silu(h))
    }
}

/// Latent [N, h, w, latentChannels] (after post_quant_conv) → image [N, h·f, w·f, outChannels].
public final class Decoder: Module {
    public let conv_in: Conv2d
    public let mid_block: UNetMidBlock2D
    public let up_blocks: ModuleList<UpDecoderBlock2D>
    public let conv_norm_out: GroupNorm
    public let conv_out: Conv2d

    public init(config c: AutoencoderKLConfig) {
        let reversed = Array(c.blockOutChannels.reversed())
        conv_in = Conv2d(inChannels: c.latentChannels, outChannels: reversed[0], kernelSize: 3, padding: 1)
        mid_block = UNetMidBlock2D(channels: reversed[0], groups: c.normNumGroups, addAttention: c.midBlockAddAttention)
        up_blocks = ModuleList(reversed.indices.map { i in
            UpDecoderBlock2D(inChannels: i == 0 ? reversed[0] : reversed[i - 1], outChannels: reversed[i],
                             layers: c.layersPerBlock + 1, groups: c.normNumGroups, addUpsample: i < reversed.count - 1)
        })
        conv_norm_out = GroupNorm(groups: c.normNumGroups, channels: c.blockOutChannels[0], eps: 1e-6)
        conv_out = Conv2d(inChannels: c.blockOutChannels[0], outChannels: c.outChannels, kernelSize: 3, padding: 1)
        super.init()
    }

    public func callAsFunction(_ z: Variable) throws -> Variable {
        // Activations grow stage by stage (SD: 8 → 268 MB at 512²): the smaller stages' cached blocks go back
        // as the larger ones are taken (TensorMemory.growingPass).
        try TensorMemory.shared.growingPass {
            var h = try mid_block(conv_in(z))
            for block in up_blocks { h = try block(h) }
            return try conv_out(conv_norm_out.silu(h))
        }
    }
}

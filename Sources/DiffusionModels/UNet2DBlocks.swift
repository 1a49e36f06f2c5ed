// Port of diffusers 0.42 `models/unets/unet_2d_blocks.py`: `CrossAttnDownBlock2D`, `DownBlock2D`,
// `UNetMidBlock2DCrossAttn`, `UpBlock2D`, `CrossAttnUpBlock2D`. All tensors NHWC.
import Autograd
import NN
import TensorCore

/// What every UNet level shares: resnet groups/eps, time-embedding width and the transformer options.
public struct UNetLevelOptions {
    public var tembChannels: Int
    public var groups: Int
    public var eps: Float
    public var heads: Int
    public var crossAttentionDim: Int
    public var transformerLayers: Int
    public var useLinearProjection: Bool
    public var onlyCrossAttention: Bool

    func transformer(channels: Int) -> Transformer2DModel {
        Transformer2DModel(channels: channels, heads: heads, crossAttentionDim: crossAttentionDim,
                           layers: transformerLayers, groups: groups, useLinearProjection: useLinearProjection,
                           onlyCrossAttention: onlyCrossAttention)
    }

    func resnet(_ inChannels: Int, _ outChannels: Int, outputScaleFactor: Float = 1) -> ResnetBlock2D {
        ResnetBlock2D(inChannels: inChannels, outChannels: outChannels, tembChannels: tembChannels, groups: groups,
                      eps: eps, outputScaleFactor: outputScaleFactor)
    }
}

/// A down level: `layers` × (resnet [→ transformer]), then an optional stride-2 `Downsample2D`.
/// Returns the level's output and every intermediate state (the skip connections of the up path).
/// `attentions` is nil for `DownBlock2D`.
public final class DownBlock: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let attentions: ModuleList<Transformer2DModel>?
    public let downsamplers: ModuleList<Downsample2D>?

    public init(type: UNetDownBlockType, inChannels: Int, outChannels: Int, layers: Int, addDownsample: Bool,
                downsamplePadding: Int, options: UNetLevelOptions) {
        resnets = ModuleList((0..<layers).map { options.resnet($0 == 0 ? inChannels : outChannels, outChannels) })
        attentions = type == .crossAttnDownBlock2D
            ? ModuleList((0..<layers).map { _ in options.transformer(channels: outChannels) }) : nil
        downsamplers = addDownsample
            ? ModuleList([Downsample2D(channels: outChannels, padding: downsamplePadding)]) : nil
        super.init()
    }

    /// x [N, H, W, Cin] → ([N, H/2, W/2, Cout], states).
    public func callAsFunction(_ x: Variable, temb: Variable, context: Variable) throws -> (Variable, [Variable]) {
        var h = x
        var states: [Variable] = []
        for (i, resnet) in resnets.enumerated() {
            h = try resnet(h, temb: temb)
            if let attentions { h = try attentions[i](h, context: context) }
            states.append(h)
        }
        if let downsamplers {
            h = try downsamplers[0](h)
            states.append(h)
        }
        return (h, states)
    }
}

/// resnet → transformer → resnet at the lowest resolution (`UNetMidBlock2DCrossAttn`, one layer).
public final class UNetMidBlock2DCrossAttn: Module {
    public let attentions: ModuleList<Transformer2DModel>
    public let resnets: ModuleList<ResnetBlock2D>

    public init(channels: Int, outputScaleFactor: Float, options: UNetLevelOptions) {
        var options = options
        options.onlyCrossAttention = false
        attentions = ModuleList([options.transformer(channels: channels)])
        resnets = ModuleList([options.resnet(channels, channels, outputScaleFactor: outputScaleFactor),
                              options.resnet(channels, channels, outputScaleFactor: outputScaleFactor)])
        super.init()
    }

    public func callAsFunction(_ x: Variable, temb: Variable, context: Variable) throws -> Variable {
        var h = try resnets[0](x, temb: temb)
        h = try attentions[0](h, context: context)
        return try resnets[1](h, temb: temb)
    }
}

/// An up level (`UpBlock2D` / `CrossAttnUpBlock2D`): `layers` × (concat the last skip state on the channel
/// axis → resnet [→ transformer]), then an optional nearest ×2 `Upsample2D`.
public final class UpBlock: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let attentions: ModuleList<Transformer2DModel>?
    public let upsamplers: ModuleList<Upsample2D>?

    /// `inChannels`: channels of the matching down level's input; `prevOutputChannels`: of the level below.
    public init(type: UNetUpBlockType, inChannels: Int, outChannels: Int, prevOutputChannels: Int, layers: Int,
                addUpsample: Bool, options: UNetLevelOptions) {
        resnets = ModuleList((0..<layers).map { i in
            let skip = i == layers - 1 ? inChannels : outChannels
            let input = i == 0 ? prevOutputChannels : outChannels
            return options.resnet(input + skip, outChannels)
        })
        attentions = type == .crossAttnUpBlock2D
            ? ModuleList((0..<layers).map { _ in options.transformer(channels: outChannels) }) : nil
        upsamplers = addUpsample ? ModuleList([Upsample2D(channels: outChannels)]) : nil
        super.init()
    }

    /// `skips`: this level's `resnets.count` skip states, most recent last (each resnet takes the last
    /// one left). `upsampleSize`: the next level's size; nil doubles.
    public func callAsFunction(_ x: Variable, skips: [Variable], temb: Variable, context: Variable,
                               upsampleSize: (height: Int, width: Int)?) throws -> Variable {
        guard skips.count == resnets.count else {
            throw AutogradError.invalidInput("UpBlock: \(skips.count) skip states for \(resnets.count) resnets")
        }
        var h = x
        for (i, resnet) in resnets.enumerated() {
            h = try resnet(concatChannels([h, skips[skips.count - 1 - i]]), temb: temb)
            if let attentions { h = try attentions[i](h, context: context) }
        }
        if let upsamplers { h = try upsamplers[0](h, size: upsampleSize) }
        return h
    }
}

// Port of diffusers 0.42 `models/resnet.py` `ResnetBlock2D` (time_embedding_norm "default", SiLU).
import Autograd
import NN
import TensorCore

/// GroupNorm → SiLU → conv1 (+ time_emb_proj(SiLU(temb))) → GroupNorm → SiLU → conv2, plus the input
/// (through a 1×1 `conv_shortcut` when the channel count changes), divided by `outputScaleFactor`.
/// NHWC: x [N, H, W, inChannels], temb [N, tembChannels] → [N, H, W, outChannels].
public final class ResnetBlock2D: Module {
    public let norm1: GroupNorm
    public let conv1: Conv2d
    /// Absent in the VAE (no time embedding).
    public let time_emb_proj: Linear?
    public let norm2: GroupNorm
    public let conv2: Conv2d
    public let conv_shortcut: Conv2d?
    public let outputScaleFactor: Float

    public init(inChannels: Int, outChannels: Int, tembChannels: Int?, groups: Int, eps: Float,
                outputScaleFactor: Float = 1) {
        norm1 = GroupNorm(groups: groups, channels: inChannels, eps: eps)
        conv1 = Conv2d(inChannels: inChannels, outChannels: outChannels, kernelSize: 3, padding: 1)
        time_emb_proj = tembChannels.map { Linear(inFeatures: $0, outFeatures: outChannels) }
        norm2 = GroupNorm(groups: groups, channels: outChannels, eps: eps)
        conv2 = Conv2d(inChannels: outChannels, outChannels: outChannels, kernelSize: 3, padding: 1)
        conv_shortcut = inChannels == outChannels
            ? nil : Conv2d(inChannels: inChannels, outChannels: outChannels, kernelSize: 1, padding: 0)
        self.outputScaleFactor = outputScaleFactor
        super.init()
    }

    /// Recompute this block's activations during backward instead of keeping them.
    public var gradientCheckpointing = false

    public func callAsFunction(_ x: Variable, temb: Variable?) throws -> Variable {
        guard gradientCheckpointing else { return try forward(x, temb: temb) }
        return try checkpoint([x] + (temb.map { [$0] } ?? [])) { v in
            [try self.forward(v[0], temb: v.count > 1 ? v[1] : nil)]
        }[0]
    }

    private func forward(_ x: Variable, temb: Variable?) throws -> Variable {
        var h = try conv1(norm1.silu(x))                          // [N, H, W, out]
        if let time_emb_proj, let temb {
            let t = try time_emb_proj(silu(temb))                 // [N, out]
            h = try h + reshape(t, [t.shape[0], 1, 1, t.shape[1]])
        }
        h = try conv2(norm2.silu(h))
        let shortcut = try conv_shortcut.map { try $0(x) } ?? x
        let sum = try shortcut + h
        return outputScaleFactor == 1 ? sum : scale(sum, by: 1 / outputScaleFactor)
    }
}

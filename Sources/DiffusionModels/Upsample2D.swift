// Port of diffusers 0.42 `models/upsampling.py` `Upsample2D` (use_conv=True, nearest interpolation).
import Autograd
import NN
import TensorCore

/// Nearest ×2 up-sampling (or to an explicit size, when the UNet's input is not a multiple of its
/// down-sampling factor) followed by a 3×3 convolution. NHWC [N, H, W, C] → [N, 2H, 2W, outChannels].
public final class Upsample2D: Module {
    public let conv: Conv2d

    public init(channels: Int, outChannels: Int? = nil) {
        conv = Conv2d(inChannels: channels, outChannels: outChannels ?? channels, kernelSize: 3, padding: 1)
        super.init()
    }

    /// `size`: output (height, width); nil doubles the input.
    public func callAsFunction(_ x: Variable, size: (height: Int, width: Int)? = nil) throws -> Variable {
        guard let (h, w) = size, h != 2 * x.shape[1] || w != 2 * x.shape[2] else {
            return try conv(upsampleNearest2x(x))
        }
        return try conv(upsampleNearest(x, height: h, width: w))
    }
}

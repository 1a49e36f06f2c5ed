// Port of diffusers 0.42 `models/downsampling.py` `Downsample2D` (use_conv=True).
import Autograd
import NN
import TensorCore

/// 3×3 convolution with stride 2. With `padding` 0 (the VAE encoder) the input first gets one row and
/// one column of zeros at the bottom/right, as diffusers' `F.pad(x, (0, 1, 0, 1))`.
/// NHWC [N, H, W, C] → [N, ⌈H/2⌉, ⌈W/2⌉, outChannels].
public final class Downsample2D: Module {
    public let conv: Conv2d
    public let padding: Int

    public init(channels: Int, outChannels: Int? = nil, padding: Int = 1) {
        conv = Conv2d(inChannels: channels, outChannels: outChannels ?? channels, kernelSize: 3, stride: 2,
                      padding: padding)
        self.padding = padding
        super.init()
    }

    public func callAsFunction(_ x: Variable) throws -> Variable {
        try conv(padding == 0 ? padBottomRight(x) : x)
    }
}

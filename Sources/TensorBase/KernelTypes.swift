// KernelTypes: the value types that the kernel entry points take and return. They live below the
// per-instruction-set kernel modules (which all build from Sources/Kernels) so that every variant
// speaks the same types; TensorCore re-exports them.

/// Which GELU formula to use (PyTorch's `approximate="none"` or `"tanh"`).
public enum GELUApproximation: Sendable { case none, tanh }

/// Memory order of attention operands. `.bhld`: [B, H, L, D]. `.blhd`: [B, L, H, D], which is a Linear
/// layer's output [B, L, H·D] reshaped, so no head permute is needed around the attention.
public enum AttentionLayout: Sendable { case bhld, blhd }

/// Output [same layout as q] and the natural-log log-sum-exp of every score row, [B, H, Lq].
public struct AttentionResult {
    public var output: Tensor
    public var logSumExp: Tensor

    public init(output: Tensor, logSumExp: Tensor) { self.output = output; self.logSumExp = logSumExp }
}

public struct AttentionGradients {
    public var q: Tensor
    public var k: Tensor
    public var v: Tensor

    public init(q: Tensor, k: Tensor, v: Tensor) { self.q = q; self.k = k; self.v = v }
}

/// Shape of one convolution.
public struct Conv2DShape: Equatable, CustomStringConvertible {
    public var batch: Int, height: Int, width: Int, inChannels: Int
    public var outChannels: Int, kernelHeight: Int, kernelWidth: Int
    public var stride: Int, padding: Int

    public var outHeight: Int { (height + 2 * padding - kernelHeight) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernelWidth) / stride + 1 }
    public var inputShape: [Int] { [batch, height, width, inChannels] }
    public var outputShape: [Int] { [batch, outHeight, outWidth, outChannels] }
    public var weightShape: [Int] { [kernelHeight, kernelWidth, inChannels, outChannels] }
    /// A 1x1, stride 1, unpadded convolution: a plain GEMM over the pixels.
    public var isPointwise: Bool { kernelHeight == 1 && kernelWidth == 1 && stride == 1 && padding == 0 }
    /// Multiply-adds times two of the forward pass.
    public var flops: Int { 2 * batch * outHeight * outWidth * outChannels * inChannels * kernelHeight * kernelWidth }
    public var description: String {
        "input \(inputShape), weight \(weightShape), stride \(stride), padding \(padding)"
    }

    /// Checks an input shape `[N, H, W, Cin]` and weight shape `[kh, kw, Cin, Cout]`; `op` names the caller.
    public init(input: [Int], weight: [Int], stride: Int, padding: Int, op: String) throws {
        guard input.count == 4, weight.count == 4 else {
            throw TensorError.shapeMismatch("\(op): input must be [N, H, W, Cin] and weight [kh, kw, Cin, Cout]; "
                                            + "got input \(input), weight \(weight)")
        }
        guard input[3] == weight[2] else {
            throw TensorError.shapeMismatch("\(op): input channels \(input[3]) differ from weight Cin \(weight[2]); "
                                            + "input \(input), weight \(weight)")
        }
        guard stride >= 1, padding >= 0, weight[0] >= 1, weight[1] >= 1 else {
            throw TensorError.invalidArgument("\(op): stride \(stride) / padding \(padding) / kernel \(weight) invalid")
        }
        guard input.allSatisfy({ $0 >= 1 }), weight[3] >= 1,
              input[1] + 2 * padding >= weight[0], input[2] + 2 * padding >= weight[1] else {
            throw TensorError.shapeMismatch("\(op): input \(input) with padding \(padding) is smaller than kernel \(weight)")
        }
        batch = input[0]; height = input[1]; width = input[2]; inChannels = input[3]
        kernelHeight = weight[0]; kernelWidth = weight[1]; outChannels = weight[3]
        self.stride = stride; self.padding = padding
    }
}

public enum BinaryOp: Sendable { case add, sub, mul }

/// Output of a normalization forward: y, and the mean and 1/sqrt(var + eps) of every normalised group
/// (GroupNorm: [N, G]; LayerNorm: the leading dims of x).
public struct NormalizationResult {
    public var output: Tensor
    public var mean: Tensor
    public var rstd: Tensor

    public init(output: Tensor, mean: Tensor, rstd: Tensor) { self.output = output; self.mean = mean; self.rstd = rstd }
}

/// An activation fused into GroupNorm's output pass (ResNet blocks apply SiLU right after their norms);
/// the backward recomputes the pre-activation from x, so nothing extra is stored.
public enum NormalizationActivation: Sendable { case none, silu }

/// Gradients of a normalization: dx, and dγ, dβ (shape [C]).
public struct NormalizationGradients {
    public var input: Tensor
    public var gamma: Tensor
    public var beta: Tensor

    public init(input: Tensor, gamma: Tensor, beta: Tensor) { self.input = input; self.gamma = gamma; self.beta = beta }
}

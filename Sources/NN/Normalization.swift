// GroupNorm (channels-last activations) and LayerNorm (last dimension), as torch.nn.GroupNorm / LayerNorm.
import Autograd
import TensorCore

public final class GroupNorm: Module {
    public let weight: Variable?         // [C]
    public let bias: Variable?           // [C]
    public let groups: Int
    public let eps: Float

    /// γ = 1, β = 0 when `affine` (PyTorch's initialisation).
    public init(groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) {
        weight = affine ? Variable(Tensor(shape: [channels], repeating: 1), requiresGrad: true) : nil
        bias = affine ? Variable(Tensor(zeros: [channels]), requiresGrad: true) : nil
        self.groups = groups
        self.eps = eps
        super.init()
    }

    /// x [N, ..., C] (NHWC or [N, L, C]) → same shape.
    public func callAsFunction(_ x: Variable) throws -> Variable {
        try groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }

    /// `silu(self(x))` fused into the normalisation's own passes (the same values and gradients bit for bit).
    public func silu(_ x: Variable) throws -> Variable {
        try groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, activation: .silu)
    }
}

public final class LayerNorm: Module {
    public let weight: Variable?         // [D]
    public let bias: Variable?           // [D]
    public let eps: Float

    /// γ = 1, β = 0 when `elementwiseAffine` (PyTorch's initialisation).
    public init(dim: Int, eps: Float = 1e-5, elementwiseAffine: Bool = true) {
        weight = elementwiseAffine ? Variable(Tensor(shape: [dim], repeating: 1), requiresGrad: true) : nil
        bias = elementwiseAffine ? Variable(Tensor(zeros: [dim]), requiresGrad: true) : nil
        self.eps = eps
        super.init()
    }

    /// x [..., D] → same shape.
    public func callAsFunction(_ x: Variable) throws -> Variable {
        try layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}

// GroupNorm (channels last) and LayerNorm (last dimension) with affine parameters, and their VJPs.
// The forward keeps the per-group mean and reciprocal standard deviation for the backward.
import TensorCore

/// GroupNorm of x [N, ..., C] over `groups` groups of consecutive channels (PyTorch's biased variance),
/// then y = x̂·weight + bias (each [C], or nil), then `activation` (`.silu`: the `silu(groupNorm(x))` of every
/// ResNet block in one pass over memory, forward and backward; the same values bit for bit).
public func groupNorm(_ x: Variable, groups: Int, weight: Variable?, bias: Variable?, eps: Float = 1e-5,
                      activation: NormalizationActivation = .none) throws -> Variable {
    let xv = x.value, gamma = weight?.value, beta = bias?.value           // β: a fused backward recomputes x̂·γ + β
    let r = try Normalization.groupNorm(xv, groups: groups, gamma: gamma, beta: beta, eps: eps, activation: activation)
    let (mean, rstd) = (r.mean, r.rstd)                                  // the VJP keeps these, not the output
    return normalized(r.output, of: activation == .none ? "groupNorm" : "groupNorm+silu", x, weight, bias) { g in
        try Normalization.groupNormBackward(g, xv, mean: mean, rstd: rstd, groups: groups, gamma: gamma, beta: beta,
                                            activation: activation)
    }
}

/// LayerNorm of x [..., D] over D, then y = x̂·weight + bias (each [D], or nil).
public func layerNorm(_ x: Variable, weight: Variable?, bias: Variable?, eps: Float = 1e-5) throws -> Variable {
    let xv = x.value, gamma = weight?.value
    let r = try Normalization.layerNorm(xv, gamma: gamma, beta: bias?.value, eps: eps)
    let (mean, rstd) = (r.mean, r.rstd)
    return normalized(r.output, of: "layerNorm", x, weight, bias) { g in
        try Normalization.layerNormBackward(g, xv, mean: mean, rstd: rstd, gamma: gamma)
    }
}

/// Records a normalisation whose backward yields (dx, dγ, dβ) in one pass.
private func normalized(_ output: Tensor, of name: String, _ x: Variable, _ weight: Variable?, _ bias: Variable?,
                        backward: @escaping (Tensor) throws -> NormalizationGradients) -> Variable {
    var inputs = [x]
    if let weight { inputs.append(weight) }
    if let bias { inputs.append(bias) }
    let (hasWeight, hasBias) = (weight != nil, bias != nil)
    return Variable.result(output, of: name, inputs: inputs) { g in
        let d = try backward(g)
        var grads: [Tensor?] = [d.input]
        if hasWeight { grads.append(d.gamma) }
        if hasBias { grads.append(d.beta) }
        return grads
    }
}

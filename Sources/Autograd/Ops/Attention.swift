// Multi-head scaled-dot-product attention on token-major tensors, via the flash-attention kernel:
// scores are computed in blocks with an online softmax and never stored; the backward recomputes them
// from the saved log-sum-exp.
import TensorCore

/// softmax(scale·Q·Kᵀ [+ causal mask])·V per head, for q [N, Lq, H·D] and k, v [N, Lk, H·D] → [N, Lq, H·D].
/// `scale` defaults to 1/√D; `causal` lets query i see keys 0...i only (CLIP's text encoder).
public func attention(_ q: Variable, _ k: Variable, _ v: Variable, heads: Int,
                      scale: Float? = nil, causal: Bool = false) throws -> Variable {
    func split(_ t: Tensor, _ name: String) throws -> Tensor {          // [N, L, H·D] → [N, L, H, D]
        guard t.rank == 3, heads > 0, t.shape[2] % heads == 0 else {
            throw AutogradError.invalidInput("attention: \(name) \(t.shape) is not [N, L, H·D] with H = \(heads)")
        }
        return t.reshapedUnchecked([t.shape[0], t.shape[1], heads, t.shape[2] / heads])
    }
    let (q4, k4, v4) = (try split(q.value, "q"), try split(k.value, "k"), try split(v.value, "v"))
    let r = try Attention.scaledDotProduct(q: q4, k: k4, v: v4, layout: .blhd, scale: scale, causal: causal)
    let shapes = (q.shape, k.shape, v.shape)
    let needs = (q.requiresGrad, k.requiresGrad, v.requiresGrad)
    return Variable.result(r.output.reshapedUnchecked(q.shape), of: "attention", inputs: [q, k, v]) { g in
        GradMode.note("attention.backward")
        let d = try Attention.scaledDotProductBackward(dOut: g.reshapedUnchecked(q4.shape), q: q4, k: k4, v: v4,
                                                       output: r.output, logSumExp: r.logSumExp, layout: .blhd,
                                                       scale: scale, causal: causal)
        return [needs.0 ? d.q.reshapedUnchecked(shapes.0) : nil,
                needs.1 ? d.k.reshapedUnchecked(shapes.1) : nil,
                needs.2 ? d.v.reshapedUnchecked(shapes.2) : nil]
    }
}

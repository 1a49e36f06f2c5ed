// Multi-head attention as diffusers' `Attention` (self- and cross-attention): to_q / to_k / to_v without
// bias by default, to_out.0 with bias, to_out.1 dropout (no parameters). Tokens [N, L, C].
// The scores are never materialised: the flash-attention kernel works in blocks.
import Autograd
import TensorCore

public final class Attention: Module {
    public let to_q: Linear              // [inner, queryDim]
    public let to_k: Linear              // [inner, contextDim]
    public let to_v: Linear              // [inner, contextDim]
    public let to_out: ModuleList<Linear>   // to_out.0: [queryDim, inner]
    public let heads: Int
    public let dimHead: Int
    /// BF16 scores and probabilities where nothing records gradients through them (`computeInBFloat16`).
    var bfloat16Scores = false

    /// `contextDim` nil means self-attention (keys and values come from the queries' input).
    public init(queryDim: Int, contextDim: Int? = nil, heads: Int, dimHead: Int, bias: Bool = false, outBias: Bool = true) {
        let inner = heads * dimHead, context = contextDim ?? queryDim
        to_q = Linear(inFeatures: queryDim, outFeatures: inner, bias: bias)
        to_k = Linear(inFeatures: context, outFeatures: inner, bias: bias)
        to_v = Linear(inFeatures: context, outFeatures: inner, bias: bias)
        to_out = ModuleList([Linear(inFeatures: inner, outFeatures: queryDim, bias: outBias)])
        self.heads = heads
        self.dimHead = dimHead
        super.init()
    }

    /// x [N, Lq, queryDim], context [N, Lk, contextDim] (nil: self-attention) → [N, Lq, queryDim].
    public func callAsFunction(_ x: Variable, context: Variable? = nil) throws -> Variable {
        let source = context ?? x
        let q = try to_q(x)                                  // [N, Lq, H·D]
        let k = try to_k(source)                             // [N, Lk, H·D]
        let v = try to_v(source)                             // [N, Lk, H·D]
        let bf16 = bfloat16Scores && BFloat16Compute.isAvailable && dimHead % 2 == 0
            && !(GradMode.isEnabled && (q.requiresGrad || k.requiresGrad || v.requiresGrad))
        let o = bf16 ? Variable(try bfloat16Attention(q.value, k.value, v.value, heads: heads))
                     : try attention(q, k, v, heads: heads)   // [N, Lq, H·D]
        return try to_out[0](o)
    }
}

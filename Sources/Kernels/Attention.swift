// Attention: scaled-dot-product attention, softmax(scale·Q·Kᵀ)·V, computed in blocks with an online
// softmax so the Lq × Lk score matrix never exists; the backward recomputes score blocks from Q, K, V and
// the forward's per-row log-sum-exp (FlashAttention-2), so memory stays O(L·D).
import Foundation
import TensorBase


/// Sizes and element strides of one attention call.
struct AttentionGeometry {
    var batch, heads, lq, lk, d: Int
    var layout: AttentionLayout
    var scale: Float
    var causal: Bool

    init(_ op: String, q: Tensor, k: Tensor, v: Tensor, layout: AttentionLayout, scale: Float?, causal: Bool) throws {
        guard q.rank == 4, k.rank == 4, v.rank == 4, k.shape == v.shape else {
            throw TensorError.shapeMismatch("\(op): q \(q.shape), k \(k.shape), v \(v.shape) must be rank 4 with k == v")
        }
        let (hAxis, lAxis) = layout == .bhld ? (1, 2) : (2, 1)
        guard q.shape[0] == k.shape[0], q.shape[hAxis] == k.shape[hAxis], q.shape[3] == k.shape[3],
              q.shape[3] > 0, k.shape[lAxis] > 0 else {
            throw TensorError.shapeMismatch("\(op): q \(q.shape) does not match k \(k.shape) in layout \(layout)")
        }
        batch = q.shape[0]; heads = q.shape[hAxis]; lq = q.shape[lAxis]; lk = k.shape[lAxis]; d = q.shape[3]
        self.layout = layout
        self.scale = scale ?? 1 / Float(d).squareRoot()
        self.causal = causal
    }

    /// Offset of row 0 of head (b, h) in a tensor with `len` rows per head.
    @inline(__always) func base(_ bh: Int, _ len: Int) -> Int {
        let b = bh / heads, h = bh % heads
        return layout == .bhld ? bh * len * d : (b * len * heads + h) * d
    }

    /// Element stride between consecutive rows (tokens) of one head.
    var rowStride: Int { layout == .bhld ? d : heads * d }

    /// Keys row i may see: all, or 0...i when causal (top-left aligned, as PyTorch's is_causal).
    @inline(__always) func keyEnd(_ i: Int) -> Int { causal ? min(lk, i + 1) : lk }
}

public enum Attention {
    /// softmax(scale·Q·Kᵀ [+ causal mask])·V. q [B,H,Lq,D], k and v [B,H,Lk,D] (or [B,L,H,D] for `.blhd`);
    /// scale defaults to 1/√D; `causal` masks key j > query i.
    public static func scaledDotProduct(q: Tensor, k: Tensor, v: Tensor, layout: AttentionLayout = .bhld,
                                        scale: Float? = nil, causal: Bool = false) throws -> AttentionResult {
        let g = try AttentionGeometry("scaledDotProduct", q: q, k: k, v: v, layout: layout, scale: scale, causal: causal)
        let out = Tensor(uninitializedShape: q.shape)
        let lse = Tensor(uninitializedShape: [g.batch, g.heads, g.lq])
        FlashAttention.forward(g, q.storage.pointer, k.storage.pointer, v.storage.pointer,
                               out.storage.pointer, lse.storage.pointer)
        return AttentionResult(output: out, logSumExp: lse)
    }

    /// Gradients of `scaledDotProduct` from dOut and the forward's inputs, output and log-sum-exp.
    public static func scaledDotProductBackward(dOut: Tensor, q: Tensor, k: Tensor, v: Tensor, output: Tensor,
                                                logSumExp: Tensor, layout: AttentionLayout = .bhld,
                                                scale: Float? = nil, causal: Bool = false) throws -> AttentionGradients {
        let g = try AttentionGeometry("scaledDotProductBackward", q: q, k: k, v: v, layout: layout, scale: scale, causal: causal)
        guard dOut.shape == q.shape, output.shape == q.shape, logSumExp.shape == [g.batch, g.heads, g.lq] else {
            throw TensorError.shapeMismatch("scaledDotProductBackward: dOut \(dOut.shape), output \(output.shape), logSumExp \(logSumExp.shape) for q \(q.shape)")
        }
        let dq = Tensor(uninitializedShape: q.shape), dk = Tensor(uninitializedShape: k.shape)
        let dv = Tensor(uninitializedShape: v.shape)
        FlashAttention.backward(g, q.storage.pointer, k.storage.pointer, v.storage.pointer, output.storage.pointer,
                                logSumExp.storage.pointer, dOut.storage.pointer,
                                dq.storage.pointer, dk.storage.pointer, dv.storage.pointer)
        return AttentionGradients(q: dq, k: dk, v: dv)
    }
}

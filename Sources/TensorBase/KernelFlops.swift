// KernelFlops: floating-point operation counts of kernel calls from their arguments (a multiply-add counts
// 2), for `KernelSet.instrumented(by:)` profiles. Only the GEMM-like entry points have one.

public enum KernelFlops {
    /// Convolution forward: 2 · output pixels · kh·kw·Cin·Cout (input NHWC, weight [kh, kw, Cin, Cout]).
    public static func conv2d(input: Tensor, weight: Tensor, stride: Int, padding: Int) -> Double {
        guard input.rank == 4, weight.rank == 4, stride > 0 else { return 0 }
        let ho = (input.shape[1] + 2 * padding - weight.shape[0]) / stride + 1
        let wo = (input.shape[2] + 2 * padding - weight.shape[1]) / stride + 1
        return 2 * Double(weight.count) * Double(input.shape[0] * max(0, ho) * max(0, wo))
    }

    /// The same for a weight given by its shape (a 4-bit convolution).
    public static func conv2d(input: Tensor, weightShape: [Int], stride: Int, padding: Int) -> Double {
        guard input.rank == 4, weightShape.count == 4, stride > 0 else { return 0 }
        let ho = (input.shape[1] + 2 * padding - weightShape[0]) / stride + 1
        let wo = (input.shape[2] + 2 * padding - weightShape[1]) / stride + 1
        return 2 * Double(weightShape.reduce(1, *)) * Double(input.shape[0] * max(0, ho) * max(0, wo))
    }

    /// Attention forward, QKᵀ and PV: 4 · B·H·Lq·D · Lk; backward (scores recomputed, then dV, dP, dQ, dK:
    /// five products): 10 · B·H·Lq·D · Lk.
    public static func attention(q: Tensor, k: Tensor, layout: AttentionLayout, backward: Bool) -> Double {
        guard k.rank == 4 else { return 0 }
        let lk = layout == .bhld ? k.shape[2] : k.shape[1]
        return (backward ? 10 : 4) * Double(q.count) * Double(lk)
    }
}

// OpsBench: attention and GroupNorm cases of the `kernels` suite (names shared with bench/torch_kernels.py).
import TensorCore

/// Scaled-dot-product attention named `attention self|cross <heads>x<queries>x<keys>x<dims> fwd|bwd`: SD-1.5's
/// widest level (8 heads × 4096 queries × 40 dims against 4096 or 77 keys), then the embedded model's as its
/// sampling (batch 16: 64 heads) and training step (batch 2 and the base's prior rows: 16 heads) run it, 4 heads
/// of 16 dims at 32×32 tokens, of 32 at 16×16, cross-attention to its 32-token context. Forward flops count QKᵀ
/// and PV (4·H·Lq·Lk·D); backward counts its five products (10·H·Lq·Lk·D), as FlashAttention-2 does.
func attentionBenchCases() -> [BenchCase] {
    let shapes: [(kind: String, heads: Int, queries: Int, keys: Int, d: Int)] = [
        ("self", 8, 4096, 4096, 40), ("cross", 8, 4096, 77, 40),
        ("self", 64, 1024, 1024, 16), ("self", 64, 256, 256, 32), ("cross", 64, 1024, 32, 16),
        ("self", 16, 1024, 1024, 16),
    ]
    return shapes.flatMap { kind, heads, queries, keys, d -> [BenchCase] in
        let base = "attention \(kind) \(heads)x\(queries)x\(keys)x\(d)"
        let unit = Double(heads * queries * keys * d)
        func inputs() -> (Tensor, Tensor, Tensor) {
            (benchTensor([1, heads, queries, d], seed: 11), benchTensor([1, heads, keys, d], seed: 12),
             benchTensor([1, heads, keys, d], seed: 13))
        }
        return [
            BenchCase(name: base + " fwd", flops: 4 * unit) {
                let (q, k, v) = inputs()
                return { _ = try? Attention.scaledDotProduct(q: q, k: k, v: v) }
            },
            BenchCase(name: base + " bwd", flops: 10 * unit) {
                let (q, k, v) = inputs()
                let dOut = benchTensor(q.shape, seed: 14)
                guard let r = try? Attention.scaledDotProduct(q: q, k: k, v: v) else { return {} }
                return {
                    _ = try? Attention.scaledDotProductBackward(dOut: dOut, q: q, k: k, v: v, output: r.output,
                                                                logSumExp: r.logSumExp)
                }
            },
        ]
    }
}

/// GroupNorm with 32 groups on a 64×64×320 NHWC map with γ and β, named `groupnorm 32g 64x64x320 fwd|bwd`;
/// flops are a nominal 8 (forward) and 12 (backward) per element, for the GFLOP/s column only.
func groupNormBenchCases() -> [BenchCase] {
    let shape = [1, 64, 64, 320], count = Double(64 * 64 * 320)
    return [
        BenchCase(name: "groupnorm 32g 64x64x320 fwd", flops: 8 * count) {
            let x = benchTensor(shape, seed: 15), g = benchTensor([320], seed: 16), b = benchTensor([320], seed: 17)
            return { _ = try? Normalization.groupNorm(x, groups: 32, gamma: g, beta: b) }
        },
        BenchCase(name: "groupnorm 32g 64x64x320 bwd", flops: 12 * count) {
            let x = benchTensor(shape, seed: 15), g = benchTensor([320], seed: 16), b = benchTensor([320], seed: 17)
            let dy = benchTensor(shape, seed: 18)
            guard let r = try? Normalization.groupNorm(x, groups: 32, gamma: g, beta: b) else { return {} }
            return { _ = try? Normalization.groupNormBackward(dy, x, mean: r.mean, rstd: r.rstd, groups: 32, gamma: g) }
        },
    ]
}

// FlashAttention backward (FlashAttention-2): recomputes Pᵀ blocks from Q, K and the forward's lse, then
// dV += Pᵀ·dO, dSᵀ = Pᵀ ∘ (dPᵀ − Δ)·scale with dPᵀ = V·dOᵀ and Δ = rowsum(dO ∘ O), dK += dSᵀ·Q and
// dQᵀ += Kᵀ·dSᵀ (kept transposed per 32-query block, like the forward's Oᵀ). Work splits over
// (batch, head); each head walks key blocks, and inside them query blocks.
import Foundation
import TensorBase

extension FlashAttention {
    /// Per-head packed operands and accumulators of the backward.
    struct BackwardHead {
        let d, dp, vw, lkPad, lqPad, count: Int
        let base: UnsafeMutablePointer<Float>
        var kt: UnsafeMutablePointer<Float> { base }                              // [D][lkPad]
        var vt: UnsafeMutablePointer<Float> { kt + d * lkPad }                   // [D][lkPad]
        var kp: UnsafeMutablePointer<Float> { vt + d * lkPad }                   // [lkPad][Dv]
        var qt: UnsafeMutablePointer<Float> { kp + lkPad * vw }                  // [lqPad/32][D][32]
        var dot: UnsafeMutablePointer<Float> { qt + d * lqPad }                  // [lqPad/32][D][32]
        var qp: UnsafeMutablePointer<Float> { dot + d * lqPad }                  // [lqPad][Dp]
        var dop: UnsafeMutablePointer<Float> { qp + lqPad * dp }                 // [lqPad][Dp]
        var dqt: UnsafeMutablePointer<Float> { dop + lqPad * dp }                // [lqPad/32][Dv][32]
        var dk: UnsafeMutablePointer<Float> { dqt + lqPad * vw }                 // [key block][Dp]
        var dv: UnsafeMutablePointer<Float> { dk + backwardKeyBlock * dp }       // [key block][Dp]
        var pt: UnsafeMutablePointer<Float> { dv + backwardKeyBlock * dp }       // [key block][32]
        var dst: UnsafeMutablePointer<Float> { pt + backwardKeyBlock * 32 }      // [key block][32]
        var lse2: UnsafeMutablePointer<Float> { dst + backwardKeyBlock * 32 }    // [lqPad]
        var delta: UnsafeMutablePointer<Float> { lse2 + lqPad }                  // [lqPad]

        init(d: Int, lq: Int, lk: Int) {
            self.d = d; dp = roundUp(d, 16); vw = valueWidth(d); lkPad = roundUp(lk, 24); lqPad = roundUp(lq, 32)
            let keys: Int = 2 * d * lkPad + lkPad * vw
            let queries: Int = 2 * d * lqPad + 2 * lqPad * dp + lqPad * vw + 2 * lqPad
            count = keys + queries + 2 * backwardKeyBlock * (dp + 32)
            base = TensorMemory.shared.allocateFloats(count)
        }
    }

    /// dq, dk, dv [layout of q, k, v] for every (batch, head).
    static func backward(_ g: AttentionGeometry, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
                         _ v: UnsafePointer<Float>, _ out: UnsafePointer<Float>, _ lse: UnsafePointer<Float>,
                         _ dOut: UnsafePointer<Float>, _ dq: UnsafeMutablePointer<Float>,
                         _ dk: UnsafeMutablePointer<Float>, _ dv: UnsafeMutablePointer<Float>) {
        let heads = g.batch * g.heads
        let workers = Parallel.workers(for: heads * g.lq * g.lk * g.d, minWorkPerThread: 1 << 18)
        let scratch = (0..<max(1, min(workers, heads))).map { _ in BackwardHead(d: g.d, lq: g.lq, lk: g.lk) }
        defer { for s in scratch { TensorMemory.shared.deallocateFloats(s.base, count: s.count) } }
        Parallel.forChunks(count: heads, workers: workers) { w, range in
            for bh in range { backwardHead(g, bh, q, k, v, out, lse, dOut, dq, dk, dv, scratch[w]) }
        }
    }

    static func backwardHead(_ g: AttentionGeometry, _ bh: Int, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
                             _ v: UnsafePointer<Float>, _ out: UnsafePointer<Float>, _ lse: UnsafePointer<Float>,
                             _ dOut: UnsafePointer<Float>, _ dq: UnsafeMutablePointer<Float>,
                             _ dk: UnsafeMutablePointer<Float>, _ dv: UnsafeMutablePointer<Float>, _ h: BackwardHead) {
        let d = g.d, dp = h.dp, rs = g.rowStride
        let qo = g.base(bh, g.lq), ko = g.base(bh, g.lk)
        packTransposed(k + ko, rows: g.lk, d: d, rs: rs, ld: h.lkPad, scale: 1, h.kt)
        packTransposed(v + ko, rows: g.lk, d: d, rs: rs, ld: h.lkPad, scale: 1, h.vt)
        packRows(k + ko, rows: g.lk, rowsPadded: h.lkPad, d: d, rs: rs, dp: h.vw, h.kp)
        packRows(q + qo, rows: g.lq, rowsPadded: h.lqPad, d: d, rs: rs, dp: dp, h.qp)
        packRows(dOut + qo, rows: g.lq, rowsPadded: h.lqPad, d: d, rs: rs, dp: dp, h.dop)
        for b in 0..<h.lqPad / 32 {
            let n = min(32, g.lq - 32 * b)
            packTransposed(q + qo + 32 * b * rs, rows: n, d: d, rs: rs, ld: 32, scale: 1, h.qt + b * d * 32)
            packTransposed(dOut + qo + 32 * b * rs, rows: n, d: d, rs: rs, ld: 32, scale: 1, h.dot + b * d * 32)
        }
        h.dqt.initialize(repeating: 0, count: h.lqPad * h.vw)
        // lse in log2 units (padded queries get a huge lse, so their P is 0) and Δ = rowsum(dO ∘ O).
        for i in 0..<h.lqPad {
            if i < g.lq {
                h.lse2[i] = lse[bh * g.lq + i] * log2e
                var s: Float = 0
                for x in 0..<d { s += dOut[qo + i * rs + x] * out[qo + i * rs + x] }
                h.delta[i] = s
            } else {
                h.lse2[i] = 30000; h.delta[i] = 0
            }
        }
        let c2 = g.scale * log2e
        var j0 = 0
        while j0 < g.lk {
            let nk = min(backwardKeyBlock, g.lk - j0), rows = roundUp(nk, 24)
            h.dk.initialize(repeating: 0, count: rows * dp)
            h.dv.initialize(repeating: 0, count: rows * dp)
            for i0 in stride(from: g.causal ? j0 / 32 * 32 : 0, to: h.lqPad, by: 32) {
                backwardBlock(g, h, j0: j0, nk: nk, rows: rows, i0: i0, c2: c2)
            }
            for r in 0..<nk {
                let o = ko + (j0 + r) * rs
                for x in 0..<d { dk[o + x] = h.dk[r * dp + x]; dv[o + x] = h.dv[r * dp + x] }
            }
            j0 += nk
        }
        for i in 0..<g.lq {
            let src = h.dqt + (i / 32) * h.vw * 32 + i % 32
            for x in 0..<d { dq[qo + i * rs + x] = src[32 * x] }
        }
    }

    /// One (key block, 32-query block) step of the backward.
    static func backwardBlock(_ g: AttentionGeometry, _ h: BackwardHead, j0: Int, nk: Int, rows: Int, i0: Int, c2: Float) {
        let d = g.d, dp = h.dp
        let qt = h.qt + (i0 / 32) * d * 32, dot = h.dot + (i0 / 32) * d * 32
        for r in stride(from: 0, to: rows, by: 12) {
            scoreKernel12x32(d, h.kt + j0 + r, h.lkPad, qt, h.pt + r * 32)
            scoreKernel12x32(d, h.vt + j0 + r, h.lkPad, dot, h.dst + r * 32)
        }
        if g.causal && j0 + rows - 1 > i0 { maskCausal(h.pt, rows: rows, j0: j0, q0: i0, scale: c2) }
        let l0 = load(h.lse2 + i0), l1 = load(h.lse2 + i0 + 16)
        let e0 = load(h.delta + i0), e1 = load(h.delta + i0 + 16)
        let sc = g.scale
        for r in 0..<rows {
            let a = h.pt + r * 32, b = h.dst + r * 32
            let p0 = exp2NonPositive(load(a) * c2 - l0), p1 = exp2NonPositive(load(a + 16) * c2 - l1)
            store(p0, a); store(p1, a + 16)
            store(p0 * (load(b) - e0) * sc, b); store(p1 * (load(b + 16) - e1) * sc, b + 16)
        }
        for r in stride(from: 0, to: rows, by: 8) {
            updateRows8(32, h.pt + r * 32, h.dop + i0 * dp, dp, h.dv + r * dp)
            updateRows8(32, h.dst + r * 32, h.qp + i0 * dp, dp, h.dk + r * dp)
        }
        let vw = h.vw, dqt = h.dqt + (i0 / 32) * vw * 32
        for x in stride(from: 0, to: vw, by: vw % 10 == 0 ? 10 : 8) {
            if vw % 10 == 0 {
                valueKernel10x32(nk, h.kp + j0 * vw + x, vw, h.dst, dqt + 32 * x)
            } else {
                valueKernel8x32(nk, h.kp + j0 * vw + x, vw, h.dst, dqt + 32 * x)
            }
        }
    }
}

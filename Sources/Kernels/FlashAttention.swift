// FlashAttention: the blocked forward and backward cores behind `Attention`.
//
// Scores are computed transposed, Sᵀ [keys][32 queries], so the 32 queries of a block sit in SIMD lanes:
// the online softmax's running max and sum are plain vector ops with no horizontal reductions, and the
// forward accumulates Oᵀ [D][32 queries] = Vᵀ·Pᵀ, so rescaling it is a vector op too and D = 40 needs no
// padding to 48. Q is scaled by scale·log2(e) so the softmax uses exp2. Per head, Kᵀ [D][Lk] and
// V [Lk][Dv] (Dv = D, or D rounded up to 8 when D is not a multiple of 10) are packed once; the forward
// walks key blocks of `forwardKeyBlock` keys per 32-query block, the backward walks query blocks inside
// key blocks of `backwardKeyBlock` keys (FlashAttention-2) and accumulates dQ for the whole head, so the
// work splits over (batch·head) there.
import Foundation
import TensorBase

enum FlashAttention {
    static let queryBlock = 32
    static let forwardKeyBlock = 480
    static let backwardKeyBlock = 96
    static let log2e: Float = 1.4426950408889634
    /// Added to masked scores (log2 domain); exp2 of it relative to any real score is 2^-126 ≈ 0.
    static let maskedScore: Float = -30000

    @inline(__always) static func roundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }

    /// Packs rows [L][D] (row stride rs) transposed into [D][ld], zero-padded to ld columns.
    static func packTransposed(_ src: UnsafePointer<Float>, rows: Int, d: Int, rs: Int, ld: Int,
                               scale: Float, _ dst: UnsafeMutablePointer<Float>) {
        // Destination-contiguous order: the compiler turns the strided reads into gathers, which is
        // cheaper than the scatters the source-contiguous order becomes.
        for x in 0..<d {
            let row = dst + x * ld
            for l in 0..<rows { row[l] = src[l * rs + x] * scale }
            (row + rows).initialize(repeating: 0, count: ld - rows)
        }
    }

    /// Packs rows [L][D] (row stride rs) into [rowsPadded][dp], zero-padded.
    static func packRows(_ src: UnsafePointer<Float>, rows: Int, rowsPadded: Int, d: Int, rs: Int, dp: Int,
                         _ dst: UnsafeMutablePointer<Float>) {
        dst.initialize(repeating: 0, count: rowsPadded * dp)
        for l in 0..<rows { (dst + l * dp).update(from: src + l * rs, count: d) }
    }

    /// C[8 rows][0..<dp] += A·B with A(r, k) = a[r·32 + k], in column chunks of ≤ 48.
    @inline(__always) static func updateRows8(_ k: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                              _ dp: Int, _ c: UnsafeMutablePointer<Float>) {
        var c0 = 0
        while c0 < dp {
            let w = min(48, dp - c0)
            switch w {
            case 48: updateKernelR8x48(k, a, b + c0, dp, c + c0, dp)
            case 32: updateKernelR8x32(k, a, b + c0, dp, c + c0, dp)
            default: updateKernelR8x16(k, a, b + c0, dp, c + c0, dp)
            }
            c0 += w
        }
    }

    /// Adds `maskedScore` (divided by the factor `scale` later applied to the scores) to Sᵀ entries of
    /// key j0+r > query q0+lane (causal), rows 0..<rows.
    static func maskCausal(_ st: UnsafeMutablePointer<Float>, rows: Int, j0: Int, q0: Int, scale: Float = 1) {
        let lane = Vec(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        let masked = bits(Vec(repeating: maskedScore / scale))
        for r in 0..<rows where j0 + r > q0 {
            for h in 0..<2 {
                // Lane is masked when q0 + 16h + lane < j0 + r, i.e. t = q0 + 16h + lane − (j0 + r) + 0.5 < 0.
                let t = lane + Float(q0 + 16 * h - j0 - r) + 0.5
                let m = bits(t) &>> 31
                let p = st + r * 32 + 16 * h
                store(load(p) + float(masked & m), p)
            }
        }
    }

    /// out = softmax(scale·QKᵀ)V for every (batch, head); lse [B·H·Lq] in natural log.
    static func forward(_ g: AttentionGeometry, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
                        _ v: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ lse: UnsafeMutablePointer<Float>) {
        let d = g.d, rs = g.rowStride, dp = valueWidth(d)
        let lkPad = roundUp(g.lk, 24), heads = g.batch * g.heads
        // Kᵀ and V of every head, packed once (O(H·Lk·D) memory), then (head, query block) items in parallel.
        let headSize = d * lkPad + lkPad * dp
        let packedBuffer = ScratchBuffer<Float>(count: heads * headSize), packed = packedBuffer.pointer
        defer { packedBuffer.release() }
        Parallel.forEachChunked(count: heads, workers: Parallel.workers(for: heads * g.lk * d, minWorkPerThread: 1 << 16)) { bh in
            let kt = packed + bh * headSize
            packTransposed(k + g.base(bh, g.lk), rows: g.lk, d: d, rs: rs, ld: lkPad, scale: 1, kt)
            packRows(v + g.base(bh, g.lk), rows: g.lk, rowsPadded: lkPad, d: d, rs: rs, dp: dp, kt + d * lkPad)
        }
        let blocks = (g.lq + queryBlock - 1) / queryBlock
        let workers = Parallel.workers(for: heads * blocks * 32 * g.lk * d, minWorkPerThread: 1 << 18)
        let scratch = ForwardScratch(workers: workers, d: d, dp: dp)
        defer { scratch.deallocate() }
        Parallel.forChunks(count: heads * blocks, workers: workers) { w, range in
            for item in range {
                let bh = item / blocks, blk = item % blocks
                let kt = packed + bh * headSize
                forwardBlock(g, q0: blk * queryBlock, q + g.base(bh, g.lq), UnsafePointer(kt), lkPad,
                             UnsafePointer(kt + d * lkPad), dp, out + g.base(bh, g.lq), lse + bh * g.lq, scratch.worker(w))
            }
        }
    }

    /// Rows of packed V and of Oᵀ: D when a multiple of 10 (10-row value kernel), else D rounded up to 8.
    @inline(__always) static func valueWidth(_ d: Int) -> Int { d % 10 == 0 ? d : roundUp(d, 8) }

    /// Per-worker buffers of the forward: Qᵀ [D][32], Sᵀ [key block][32], Oᵀ [Dv][32], m, l [32].
    struct ForwardScratch {
        let base: UnsafeMutablePointer<Float>
        let stride: Int, d: Int, dp: Int, workers: Int
        init(workers: Int, d: Int, dp: Int) {
            self.d = d; self.dp = dp
            stride = roundUp(d * 32 + forwardKeyBlock * 32 + 32 * dp + 64, 16)
            base = TensorMemory.shared.allocateFloats(stride * workers)
            self.workers = workers
        }
        func worker(_ w: Int) -> (qt: UnsafeMutablePointer<Float>, st: UnsafeMutablePointer<Float>,
                                  o: UnsafeMutablePointer<Float>, stats: UnsafeMutablePointer<Float>) {
            let p = base + w * stride
            return (p, p + d * 32, p + d * 32 + forwardKeyBlock * 32, p + d * 32 + forwardKeyBlock * 32 + 32 * dp)
        }
        func deallocate() { TensorMemory.shared.deallocateFloats(base, count: stride * workers) }
    }

    static func forwardBlock(_ g: AttentionGeometry, q0: Int, _ q: UnsafePointer<Float>, _ kt: UnsafePointer<Float>,
                             _ lkPad: Int, _ vp: UnsafePointer<Float>, _ dp: Int, _ out: UnsafeMutablePointer<Float>,
                             _ lse: UnsafeMutablePointer<Float>,
                             _ s: (qt: UnsafeMutablePointer<Float>, st: UnsafeMutablePointer<Float>,
                                   o: UnsafeMutablePointer<Float>, stats: UnsafeMutablePointer<Float>)) {
        let d = g.d, rs = g.rowStride, nq = min(queryBlock, g.lq - q0)
        packTransposed(q + q0 * rs, rows: nq, d: d, rs: rs, ld: 32, scale: g.scale * log2e, s.qt)
        s.o.initialize(repeating: 0, count: 32 * dp)
        var m0 = Vec(repeating: 0), m1 = Vec(repeating: 0), l0 = Vec(repeating: 0), l1 = Vec(repeating: 0)
        let keyEnd = g.causal ? min(g.lk, q0 + nq) : g.lk
        var j0 = 0
        while j0 < keyEnd {
            let nk = min(forwardKeyBlock, keyEnd - j0), rows = roundUp(nk, 12)
            for r in stride(from: 0, to: rows, by: 12) { scoreKernel12x32(d, kt + j0 + r, lkPad, s.qt, s.st + r * 32) }
            if g.causal && j0 + nk - 1 > q0 { maskCausal(s.st, rows: nk, j0: j0, q0: q0) }
            // Block max per query lane, then the running max and the rescale factor of the old state.
            var b0 = load(s.st), b1 = load(s.st + 16)
            for r in 1..<nk { b0 = maxv(b0, load(s.st + r * 32)); b1 = maxv(b1, load(s.st + r * 32 + 16)) }
            let first = j0 == 0
            let n0 = first ? b0 : maxv(m0, b0), n1 = first ? b1 : maxv(m1, b1)
            let c0 = exp2NonPositive(m0 - n0), c1 = exp2NonPositive(m1 - n1)
            m0 = n0; m1 = n1
            var s0 = Vec(repeating: 0), s1 = Vec(repeating: 0)
            for r in 0..<nk {
                let p0 = exp2NonPositive(load(s.st + r * 32) - n0), p1 = exp2NonPositive(load(s.st + r * 32 + 16) - n1)
                store(p0, s.st + r * 32); store(p1, s.st + r * 32 + 16)
                s0 += p0; s1 += p1
            }
            if first {
                l0 = s0; l1 = s1
            } else {
                l0 = l0 * c0 + s0; l1 = l1 * c1 + s1
                for x in 0..<dp { store(load(s.o + 32 * x) * c0, s.o + 32 * x); store(load(s.o + 32 * x + 16) * c1, s.o + 32 * x + 16) }
            }
            // Oᵀ [Dv][32] += Vᵀ·Pᵀ, 10 or 8 value rows per call.
            let rowsPerCall = dp % 10 == 0 ? 10 : 8
            for x in stride(from: 0, to: dp, by: rowsPerCall) {
                if rowsPerCall == 10 {
                    valueKernel10x32(nk, vp + j0 * dp + x, dp, s.st, s.o + 32 * x)
                } else {
                    valueKernel8x32(nk, vp + j0 * dp + x, dp, s.st, s.o + 32 * x)
                }
            }
            j0 += nk
        }
        // out = O / l; lse = (m + log2 l)·ln 2.
        store(m0, s.stats); store(m1, s.stats + 16); store(l0, s.stats + 32); store(l1, s.stats + 48)
        for r in 0..<nq {
            let l = s.stats[32 + r], inv = 1 / l
            let dst = out + (q0 + r) * rs
            for x in 0..<d { dst[x] = s.o[32 * x + r] * inv }
            lse[q0 + r] = (s.stats[r] + log2(l)) * 0.6931471805599453
        }
    }
}

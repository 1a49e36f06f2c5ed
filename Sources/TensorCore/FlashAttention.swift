// FlashAttention: the blocked forward and backward cores behind `Attention`.
import Foundation

enum FlashAttention {
    /// out = softmax(scale·QKᵀ)V per (batch, head), one query row at a time with an online softmax.
    static func forward(_ g: AttentionGeometry, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
                        _ v: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ lse: UnsafeMutablePointer<Float>) {
        let d = g.d, rs = g.rowStride
        let work = g.batch * g.heads * g.lq
        Parallel.forEach(count: work, workers: Parallel.workers(for: work * g.lk * d, minWorkPerThread: 1 << 16)) { item in
            let bh = item / g.lq, i = item % g.lq
            let qi = q + g.base(bh, g.lq) + i * rs, o = out + g.base(bh, g.lq) + i * rs
            let kb = k + g.base(bh, g.lk), vb = v + g.base(bh, g.lk)
            var m = -Float.infinity, l: Float = 0
            for x in 0..<d { o[x] = 0 }
            for j in 0..<g.keyEnd(i) {
                var s: Float = 0
                for x in 0..<d { s += qi[x] * kb[j * rs + x] }
                s *= g.scale
                let mNew = max(m, s)
                let c = exp(m - mNew), p = exp(s - mNew)
                l = l * c + p
                for x in 0..<d { o[x] = o[x] * c + p * vb[j * rs + x] }
                m = mNew
            }
            for x in 0..<d { o[x] /= l }
            lse[item] = m + log(l)
        }
    }

    /// dq, dk, dv (zero-initialised) per (batch, head), recomputing P from q, k and lse.
    static func backward(_ g: AttentionGeometry, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
                         _ v: UnsafePointer<Float>, _ out: UnsafePointer<Float>, _ lse: UnsafePointer<Float>,
                         _ dOut: UnsafePointer<Float>, _ dq: UnsafeMutablePointer<Float>,
                         _ dk: UnsafeMutablePointer<Float>, _ dv: UnsafeMutablePointer<Float>) {
        let d = g.d, rs = g.rowStride
        let bhCount = g.batch * g.heads
        Parallel.forEach(count: bhCount, workers: Parallel.workers(for: bhCount * g.lq * g.lk * d, minWorkPerThread: 1 << 16)) { bh in
            let qo = g.base(bh, g.lq), ko = g.base(bh, g.lk)
            for i in 0..<g.lq {
                let qi = q + qo + i * rs, doi = dOut + qo + i * rs, oi = out + qo + i * rs
                var delta: Float = 0
                for x in 0..<d { delta += doi[x] * oi[x] }
                let l = lse[bh * g.lq + i]
                for j in 0..<g.keyEnd(i) {
                    let kj = k + ko + j * rs, vj = v + ko + j * rs
                    var s: Float = 0, dp: Float = 0
                    for x in 0..<d { s += qi[x] * kj[x]; dp += doi[x] * vj[x] }
                    let p = exp(s * g.scale - l)
                    let ds = p * (dp - delta) * g.scale
                    for x in 0..<d {
                        dv[ko + j * rs + x] += p * doi[x]
                        dq[qo + i * rs + x] += ds * kj[x]
                        dk[ko + j * rs + x] += ds * qi[x]
                    }
                }
            }
        }
    }
}

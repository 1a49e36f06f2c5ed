import XCTest
@testable import TensorCore

final class AttentionTests: XCTestCase {
    struct Dims { var b, h, lq, lk, d: Int }

    /// Double softmax(scale·QKᵀ)V in layout bhld; returns (out, lse).
    func reference(_ q: [Double], _ k: [Double], _ v: [Double], _ s: Dims, causal: Bool,
                   layout: AttentionLayout = .bhld) -> ([Double], [Double]) {
        let scale = 1 / Double(s.d).squareRoot()
        func at(_ bh: Int, _ l: Int, _ len: Int) -> Int {
            layout == .bhld ? (bh * len + l) * s.d : (((bh / s.h) * len + l) * s.h + bh % s.h) * s.d
        }
        var out = [Double](repeating: 0, count: q.count), lse = [Double](repeating: 0, count: s.b * s.h * s.lq)
        for bh in 0..<s.b * s.h {
            for i in 0..<s.lq {
                let end = causal ? min(s.lk, i + 1) : s.lk
                var scores = [Double](repeating: 0, count: end)
                for j in 0..<end {
                    for x in 0..<s.d { scores[j] += q[at(bh, i, s.lq) + x] * k[at(bh, j, s.lk) + x] }
                    scores[j] *= scale
                }
                let m = scores.max()!
                let z = scores.reduce(0) { $0 + Foundation.exp($1 - m) }
                lse[bh * s.lq + i] = m + Foundation.log(z)
                for j in 0..<end {
                    let p = Foundation.exp(scores[j] - m) / z
                    for x in 0..<s.d { out[at(bh, i, s.lq) + x] += p * v[at(bh, j, s.lk) + x] }
                }
            }
        }
        return (out, lse)
    }

    func inputs(_ s: Dims, layout: AttentionLayout, seed: UInt64) -> (Tensor, Tensor, Tensor) {
        let qs = layout == .bhld ? [s.b, s.h, s.lq, s.d] : [s.b, s.lq, s.h, s.d]
        let ks = layout == .bhld ? [s.b, s.h, s.lk, s.d] : [s.b, s.lk, s.h, s.d]
        return (randomTensor(qs, seed: seed, scale: 1.5), randomTensor(ks, seed: seed + 1, scale: 1.5), randomTensor(ks, seed: seed + 2))
    }

    func testForwardMatchesNaive() throws {
        let cases: [(Dims, Bool, AttentionLayout)] = [
            (Dims(b: 1, h: 2, lq: 37, lk: 77, d: 40), false, .bhld), (Dims(b: 2, h: 1, lq: 33, lk: 33, d: 40), true, .bhld),
            (Dims(b: 1, h: 2, lq: 50, lk: 61, d: 64), false, .blhd), (Dims(b: 1, h: 3, lq: 17, lk: 17, d: 8), true, .blhd),
            (Dims(b: 1, h: 1, lq: 1, lk: 1, d: 8), false, .bhld), (Dims(b: 1, h: 1, lq: 7, lk: 600, d: 16), false, .bhld),
            (Dims(b: 1, h: 2, lq: 77, lk: 77, d: 64), true, .blhd), (Dims(b: 1, h: 1, lq: 20, lk: 45, d: 80), true, .bhld),
            (Dims(b: 1, h: 1, lq: 45, lk: 20, d: 24), true, .blhd), (Dims(b: 1, h: 1, lq: 70, lk: 500, d: 40), true, .bhld),
            (Dims(b: 1, h: 1, lq: 500, lk: 500, d: 8), true, .bhld),
        ]
        for (i, (s, causal, layout)) in cases.enumerated() {
            let (q, k, v) = inputs(s, layout: layout, seed: UInt64(10 * i))
            let r = try Attention.scaledDotProduct(q: q, k: k, v: v, layout: layout, causal: causal)
            let (out, lse) = reference(doubles(q), doubles(k), doubles(v), s, causal: causal, layout: layout)
            assertClose(r.output, out, atol: 5e-6, rtol: 1e-5, "attention \(s) causal \(causal) \(layout)")
            assertClose(r.logSumExp, lse, atol: 2e-6, rtol: 1e-6, "lse \(s) causal \(causal) \(layout)")
        }
    }

    func testBackwardMatchesFiniteDifferences() throws {
        let cases: [(Dims, Bool, AttentionLayout)] = [
            (Dims(b: 1, h: 2, lq: 7, lk: 17, d: 8), false, .bhld), (Dims(b: 1, h: 1, lq: 20, lk: 20, d: 8), true, .bhld),
            (Dims(b: 2, h: 2, lq: 5, lk: 6, d: 40), false, .blhd), (Dims(b: 1, h: 1, lq: 9, lk: 77, d: 8), false, .bhld),
            (Dims(b: 1, h: 1, lq: 40, lk: 13, d: 8), true, .blhd), (Dims(b: 1, h: 1, lq: 100, lk: 100, d: 4), true, .bhld),
        ]
        for (i, (s, causal, layout)) in cases.enumerated() {
            let (q, k, v) = inputs(s, layout: layout, seed: UInt64(100 + 10 * i))
            let r = try Attention.scaledDotProduct(q: q, k: k, v: v, layout: layout, causal: causal)
            let w = randomTensor(q.shape, seed: 7), wd = doubles(w)
            let g = try Attention.scaledDotProductBackward(dOut: w, q: q, k: k, v: v, output: r.output,
                                                           logSumExp: r.logSumExp, layout: layout, causal: causal)
            let (qd, kd, vd) = (doubles(q), doubles(k), doubles(v))
            let loss = { (q: [Double], k: [Double], v: [Double]) in dot(wd, self.reference(q, k, v, s, causal: causal, layout: layout).0) }
            // Strided coordinates keep the Double reference affordable; strides coprime to D hit every column.
            let every = s.lk > 96 ? 13 : 3
            assertGradient(g.q, at: qd, every: every, atol: 2e-5, rtol: 1e-4, "dq \(s) \(causal)") { loss($0, kd, vd) }
            assertGradient(g.k, at: kd, every: every, atol: 2e-5, rtol: 1e-4, "dk \(s) \(causal)") { loss(qd, $0, vd) }
            assertGradient(g.v, at: vd, every: every, atol: 2e-5, rtol: 1e-4, "dv \(s) \(causal)") { loss(qd, kd, $0) }
        }
    }

    func testThreadIndependentAndBadShapes() throws {
        let s = Dims(b: 1, h: 4, lq: 130, lk: 100, d: 40)
        let (q, k, v) = inputs(s, layout: .bhld, seed: 1)
        let w = randomTensor(q.shape, seed: 2)
        try assertThreadIndependent("attention", tol: 0) {
            let r = try Attention.scaledDotProduct(q: q, k: k, v: v)
            let g = try Attention.scaledDotProductBackward(dOut: w, q: q, k: k, v: v, output: r.output, logSumExp: r.logSumExp)
            return [r.output, r.logSumExp, g.q, g.k, g.v]
        }
        XCTAssertThrowsError(try Attention.scaledDotProduct(q: q, k: Tensor(zeros: [1, 4, 100, 41]), v: Tensor(zeros: [1, 4, 100, 41]))) { e in
            XCTAssertTrue("\(e)".contains("[1, 4, 100, 41]"), "\(e)")
        }
    }
}

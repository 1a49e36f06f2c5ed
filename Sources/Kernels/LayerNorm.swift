// LayerNorm over the last dimension, forward and backward (extension of `Normalization`).
//
// Rows are independent; dγ and dβ are summed over fixed 64-row chunks and the chunk sums are added in
// order, so every result is the same for every thread count.
import TensorBase

extension Normalization {
    static let rowChunk = 64

    /// LayerNorm of x [..., D] over D, y = x̂·γ + β (γ, β: [D] or nil); mean and rstd have x's leading shape.
    public static func layerNorm(_ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float = 1e-5) throws -> NormalizationResult {
        let (rows, d) = try layerNormShape(x, gamma: gamma, beta: beta)
        let lead = Array(x.shape.dropLast())
        let y = Tensor(uninitializedShape: x.shape)
        let mean = Tensor(uninitializedShape: lead), rstd = Tensor(uninitializedShape: lead)
        let px = x.storage.pointer, py = y.storage.pointer, pm = mean.storage.pointer, pr = rstd.storage.pointer
        let gt = gamma ?? Tensor(shape: [d], repeating: 1), bt = beta ?? Tensor(zeros: [d])
        let g = gt.storage.pointer, b = bt.storage.pointer
        Parallel.forEachChunked(count: rows, workers: Parallel.workers(for: x.count, minWorkPerThread: 1 << 15)) { r in
            let src = px + r * d, dst = py + r * d
            let mu = sumScalars(src, d) / Float(d)
            var acc = Vec(repeating: 0), i = 0
            while i + 16 <= d { let t = load(src + i) - mu; acc += t * t; i += 16 }
            var tail: Float = 0
            while i < d { let t = src[i] - mu; tail += t * t; i += 1 }
            let rs = 1 / ((hsum(acc) + tail) / Float(d) + eps).squareRoot()
            pm[r] = mu; pr[r] = rs
            vectorColumns(d) { j, k in
                let xh = (loadN(src + j, k) - mu) * rs
                storeN(xh * loadN(g + j, k) + loadN(b + j, k), dst + j, k)
            }
        }
        return NormalizationResult(output: y, mean: mean, rstd: rstd)
    }

    /// Backward of `layerNorm`: dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dγ = Σ dy·x̂, dβ = Σ dy.
    public static func layerNormBackward(_ dOut: Tensor, _ x: Tensor, mean: Tensor, rstd: Tensor,
                                         gamma: Tensor?) throws -> NormalizationGradients {
        let (rows, d) = try layerNormShape(x, gamma: gamma, beta: nil)
        guard dOut.shape == x.shape, mean.count == rows, rstd.count == rows else {
            throw TensorError.shapeMismatch("layerNormBackward: dOut \(dOut.shape), x \(x.shape), mean \(mean.shape), rstd \(rstd.shape)")
        }
        let px = x.storage.pointer, pd = dOut.storage.pointer, pm = mean.storage.pointer, pr = rstd.storage.pointer
        let gt = gamma ?? Tensor(shape: [d], repeating: 1)
        let g = gt.storage.pointer
        let dx = Tensor(uninitializedShape: x.shape)
        let pdx = dx.storage.pointer
        let chunks = (rows + rowChunk - 1) / rowChunk
        let partialBuffer = ScratchBuffer<Float>(count: max(1, 2 * chunks * d)), partial = partialBuffer.pointer
        partial.initialize(repeating: 0, count: max(1, 2 * chunks * d))
        defer { partialBuffer.release() }
        Parallel.forEachChunked(count: chunks, workers: Parallel.workers(for: x.count, minWorkPerThread: 1 << 15)) { ch in
            let dg = partial + 2 * ch * d, db = dg + d
            for r in ch * rowChunk..<min(rows, (ch + 1) * rowChunk) {
                let xr = px + r * d, dr = pd + r * d, out = pdx + r * d
                let mu = pm[r], rs = pr[r]
                var sa = Vec(repeating: 0), sb = Vec(repeating: 0)
                vectorColumns(d) { j, k in
                    let dy = loadN(dr + j, k), xh = (loadN(xr + j, k) - mu) * rs
                    let dxh = dy * loadN(g + j, k)
                    sa += dxh; sb += dxh * xh
                    storeN(loadN(dg + j, k) + dy * xh, dg + j, k); storeN(loadN(db + j, k) + dy, db + j, k)
                }
                let a = hsum(sa) / Float(d), bb = hsum(sb) / Float(d)
                vectorColumns(d) { j, k in
                    let xh = (loadN(xr + j, k) - mu) * rs
                    let dxh = loadN(dr + j, k) * loadN(g + j, k)
                    storeN(rs * (dxh - a - xh * bb), out + j, k)
                }
            }
        }
        let dgamma = Tensor(zeros: [d]), dbeta = Tensor(zeros: [d])
        let pdg = dgamma.storage.pointer, pdb = dbeta.storage.pointer
        for ch in 0..<chunks {
            for j in 0..<d { pdg[j] += partial[2 * ch * d + j]; pdb[j] += partial[(2 * ch + 1) * d + j] }
        }
        return NormalizationGradients(input: dx, gamma: dgamma, beta: dbeta)
    }

    static func layerNormShape(_ x: Tensor, gamma: Tensor?, beta: Tensor?) throws -> (Int, Int) {
        guard let d = x.shape.last, d > 0 else {
            throw TensorError.shapeMismatch("layerNorm: x \(x.shape) needs a non-empty last dimension")
        }
        for (name, t) in [("gamma", gamma), ("beta", beta)] {
            if let t, t.shape != [d] {
                throw TensorError.shapeMismatch("layerNorm: \(name) \(t.shape) does not match last dimension [\(d)] of x \(x.shape)")
            }
        }
        return (x.count / d, d)
    }
}

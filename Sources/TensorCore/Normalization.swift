// Normalization: GroupNorm on channels-last tensors and LayerNorm over the last dimension, each with
// its backward. Both keep the per-group (per-row) mean and 1/σ from the forward for the backward.
//
// GroupNorm statistics are summed over fixed 256-pixel chunks (Float within a chunk, Double across
// chunks, in order), so the result does not depend on the thread count.

/// Output of a normalization forward: y, and the mean and 1/sqrt(var + eps) of every normalised group
/// (GroupNorm: [N, G]; LayerNorm: the leading dims of x).
public struct NormalizationResult {
    public var output: Tensor
    public var mean: Tensor
    public var rstd: Tensor
}

/// Gradients of a normalization: dx, and dγ, dβ (shape [C]).
public struct NormalizationGradients {
    public var input: Tensor
    public var gamma: Tensor
    public var beta: Tensor
}

public enum Normalization {
    static let pixelChunk = 256

    /// GroupNorm of x [N, ..., C] (channels last; the middle dims are the pixels) with `groups` groups of
    /// C/groups consecutive channels, biased variance as PyTorch, then y = x̂·γ + β (γ, β: [C] or nil).
    public static func groupNorm(_ x: Tensor, groups: Int, gamma: Tensor?, beta: Tensor?,
                                 eps: Float = 1e-5) throws -> NormalizationResult {
        let (n, p, c) = try groupNormShape(x, groups: groups, gamma: gamma, beta: beta)
        let cg = c / groups
        let px = x.storage.pointer
        // Per-channel sums, then group means; then per-channel squared deviations, then group variances.
        let sums = channelSums(n: n, p: p, c: c) { row, _, acc in mapVectors(UnsafePointer(acc), px + row * c, acc, c) { $0 + $1 } }
        let mean = Tensor(uninitializedShape: [n, groups]), rstd = Tensor(uninitializedShape: [n, groups])
        let pm = mean.storage.pointer, pr = rstd.storage.pointer
        let count = Double(p * cg)
        for i in 0..<n * groups { pm[i] = Float(groupTotal(sums, i, cg) / count) }
        let meanPerChannel = expandGroups(pm, n: n, groups: groups, cg: cg)
        defer { meanPerChannel.deallocate() }
        let sq = channelSums(n: n, p: p, c: c) { row, b, acc in
            let m = meanPerChannel + b * c
            var i = 0
            while i < c {
                let k = min(16, c - i)
                let d = (k == 16 ? load(px + row * c + i) : loadPartial(px + row * c + i, k)) - (k == 16 ? load(m + i) : loadPartial(m + i, k))
                let r = (k == 16 ? load(acc + i) : loadPartial(acc + i, k)) + d * d
                if k == 16 { store(r, acc + i) } else { storePartial(r, acc + i, k) }
                i += 16
            }
        }
        for i in 0..<n * groups { pr[i] = Float(1 / (groupTotal(sq, i, cg) / count + Double(eps)).squareRoot()) }
        sums.deallocate(); sq.deallocate()
        // y = x·a[c] + b[c] with a = rstd·γ, b = β - mean·a.
        let (ca, cb) = affineCoefficients(n: n, c: c, cg: cg, gamma: gamma, beta: beta) { b, g in (pm[b * groups + g], pr[b * groups + g]) }
        defer { ca.deallocate(); cb.deallocate() }
        let y = Tensor(uninitializedShape: x.shape)
        let py = y.storage.pointer
        Parallel.forEach(count: n * p, workers: Parallel.workers(for: x.count, minWorkPerThread: 1 << 15)) { row in
            let b = row / p
            let a = ca + b * c, s = cb + b * c, src = px + row * c, dst = py + row * c
            var i = 0
            while i + 16 <= c { store(load(src + i) * load(a + i) + load(s + i), dst + i); i += 16 }
            while i < c { dst[i] = src[i] * a[i] + s[i]; i += 1 }
        }
        return NormalizationResult(output: y, mean: mean, rstd: rstd)
    }

    /// Backward of `groupNorm`: dx, dγ, dβ from dOut, x and the forward's mean and rstd.
    public static func groupNormBackward(_ dOut: Tensor, _ x: Tensor, mean: Tensor, rstd: Tensor, groups: Int,
                                         gamma: Tensor?) throws -> NormalizationGradients {
        let (n, p, c) = try groupNormShape(x, groups: groups, gamma: gamma, beta: nil)
        guard dOut.shape == x.shape, mean.count == n * groups, rstd.count == n * groups else {
            throw TensorError.shapeMismatch("groupNormBackward: dOut \(dOut.shape), x \(x.shape), mean \(mean.shape), rstd \(rstd.shape), groups \(groups)")
        }
        let cg = c / groups
        let px = x.storage.pointer, pd = dOut.storage.pointer, pm = mean.storage.pointer, pr = rstd.storage.pointer
        let mc = expandGroups(pm, n: n, groups: groups, cg: cg), rc = expandGroups(pr, n: n, groups: groups, cg: cg)
        defer { mc.deallocate(); rc.deallocate() }
        // s1[n,c] = Σ dy, s2[n,c] = Σ dy·x̂.
        let s1 = channelSums(n: n, p: p, c: c) { row, _, acc in mapVectors(UnsafePointer(acc), pd + row * c, acc, c) { $0 + $1 } }
        let s2 = channelSums(n: n, p: p, c: c) { row, b, acc in
            let m = mc + b * c, r = rc + b * c
            for i in 0..<c { acc[i] += pd[row * c + i] * (px[row * c + i] - m[i]) * r[i] }
        }
        defer { s1.deallocate(); s2.deallocate() }
        let g = gamma?.storage.pointer
        let dgamma = Tensor(zeros: [c]), dbeta = Tensor(zeros: [c])
        let pdg = dgamma.storage.pointer, pdb = dbeta.storage.pointer
        for b in 0..<n { for i in 0..<c { pdb[i] += Float(s1[b * c + i]); pdg[i] += Float(s2[b * c + i]) } }
        // dx = dy·k1[c] + x·k2 + k3 per (n, group).
        let k1 = UnsafeMutablePointer<Float>.allocate(capacity: n * c), k2 = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
        let k3 = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
        defer { k1.deallocate(); k2.deallocate(); k3.deallocate() }
        let count = Double(p * cg)
        for b in 0..<n {
            for gi in 0..<groups {
                var sa = 0.0, sb = 0.0
                for i in gi * cg..<(gi + 1) * cg {
                    let w = Double(g?[i] ?? 1)
                    sa += w * s1[b * c + i]; sb += w * s2[b * c + i]
                }
                let A = sa / count, B = sb / count
                let r = Double(pr[b * groups + gi]), mu = Double(pm[b * groups + gi])
                for i in gi * cg..<(gi + 1) * cg {
                    k1[b * c + i] = Float(r * Double(g?[i] ?? 1))
                    k2[b * c + i] = Float(-r * r * B)
                    k3[b * c + i] = Float(-r * A + r * r * B * mu)
                }
            }
        }
        let dx = Tensor(uninitializedShape: x.shape)
        let pdx = dx.storage.pointer
        Parallel.forEach(count: n * p, workers: Parallel.workers(for: x.count, minWorkPerThread: 1 << 15)) { row in
            let o = (row / p) * c, xr = px + row * c, dr = pd + row * c, out = pdx + row * c
            var i = 0
            while i + 16 <= c {
                store(load(dr + i) * load(k1 + o + i) + load(xr + i) * load(k2 + o + i) + load(k3 + o + i), out + i)
                i += 16
            }
            while i < c { out[i] = dr[i] * k1[o + i] + xr[i] * k2[o + i] + k3[o + i]; i += 1 }
        }
        return NormalizationGradients(input: dx, gamma: dgamma, beta: dbeta)
    }

    static func groupNormShape(_ x: Tensor, groups: Int, gamma: Tensor?, beta: Tensor?) throws -> (Int, Int, Int) {
        guard x.rank >= 2, groups > 0, x.shape.last! % groups == 0 else {
            throw TensorError.shapeMismatch("groupNorm: x \(x.shape) (channels last) cannot split into \(groups) groups")
        }
        let c = x.shape.last!, n = x.shape[0]
        for (name, t) in [("gamma", gamma), ("beta", beta)] {
            if let t, t.shape != [c] {
                throw TensorError.shapeMismatch("groupNorm: \(name) \(t.shape) does not match channels [\(c)] of x \(x.shape)")
            }
        }
        return (n, n == 0 || c == 0 ? 0 : x.count / (n * c), c)
    }

    /// Per-(batch, channel) sums in Double [n·c]: `body(row, batch, acc)` adds one pixel row into the
    /// Float accumulator `acc` [c] of its chunk; chunk accumulators are added in order.
    static func channelSums(n: Int, p: Int, c: Int,
                            _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) -> UnsafeMutablePointer<Double> {
        let chunks = (p + pixelChunk - 1) / pixelChunk
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * chunks * c))
        partial.initialize(repeating: 0, count: max(1, n * chunks * c))
        defer { partial.deallocate() }
        Parallel.forEach(count: n * chunks, workers: Parallel.workers(for: n * p * c, minWorkPerThread: 1 << 15)) { item in
            let b = item / chunks, ch = item % chunks
            let acc = partial + item * c
            for px in ch * pixelChunk..<min(p, (ch + 1) * pixelChunk) { body(b * p + px, b, acc) }
        }
        let out = UnsafeMutablePointer<Double>.allocate(capacity: max(1, n * c))
        out.initialize(repeating: 0, count: max(1, n * c))
        for b in 0..<n {
            for ch in 0..<chunks {
                let acc = partial + (b * chunks + ch) * c
                for i in 0..<c { out[b * c + i] += Double(acc[i]) }
            }
        }
        return out
    }

    static func groupTotal(_ sums: UnsafeMutablePointer<Double>, _ ng: Int, _ cg: Int) -> Double {
        var s = 0.0
        for i in ng * cg..<(ng + 1) * cg { s += sums[i] }
        return s
    }

    /// [n, groups] values repeated over each group's channels: [n, c].
    static func expandGroups(_ v: UnsafePointer<Float>, n: Int, groups: Int, cg: Int) -> UnsafeMutablePointer<Float> {
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * groups * cg))
        for i in 0..<n * groups * cg { out[i] = v[i / cg] }
        return out
    }

    /// Per-(batch, channel) a = rstd·γ and b = β − mean·a.
    static func affineCoefficients(n: Int, c: Int, cg: Int, gamma: Tensor?, beta: Tensor?,
                                   _ stats: (Int, Int) -> (Float, Float)) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        let a = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * c)), s = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * c))
        let g = gamma?.storage.pointer, be = beta?.storage.pointer
        for b in 0..<n {
            for i in 0..<c {
                let (m, r) = stats(b, i / cg)
                a[b * c + i] = r * (g?[i] ?? 1)
                s[b * c + i] = (be?[i] ?? 0) - m * a[b * c + i]
            }
        }
        return (a, s)
    }
}

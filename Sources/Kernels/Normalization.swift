// Normalization: GroupNorm on channels-last tensors and LayerNorm over the last dimension, each with
// its backward. Both keep the per-group (per-row) mean and 1/σ from the forward for the backward.
//
// GroupNorm statistics are summed over fixed 256-pixel chunks (Float within a chunk, Double across
// chunks, in order), so the result does not depend on the thread count.
import TensorBase


public enum Normalization {
    static let pixelChunk = 256

    /// GroupNorm of x [N, ..., C] (channels last; the middle dims are the pixels) with `groups` groups of
    /// C/groups consecutive channels, biased variance as PyTorch, then y = act(x̂·γ + β) (γ, β: [C] or nil).
    public static func groupNorm(_ x: Tensor, groups: Int, gamma: Tensor?, beta: Tensor?, eps: Float = 1e-5,
                                 activation: NormalizationActivation = .none) throws -> NormalizationResult {
        let (n, p, c) = try groupNormShape(x, groups: groups, gamma: gamma, beta: beta)
        let cg = c / groups, chunks = (p + pixelChunk - 1) / pixelChunk
        let px = x.storage.pointer
        // One pass per chunk: per-channel shift (the chunk's first pixel), Σ(x − shift), Σ(x − shift)².
        let partialBuffer = ScratchBuffer<Float>(count: max(1, 3 * n * chunks * c)), partial = partialBuffer.pointer
        defer { partialBuffer.release() }
        forChunks(n: n, p: p, c: c) { b, ch, lo, hi in
            let shift = partial + 3 * (b * chunks + ch) * c, s1 = shift + c, s2 = s1 + c
            let first = px + (b * p + lo) * c
            shift.update(from: first, count: c)
            vectorColumns(c) { i, k in
                let sh = loadN(first + i, k)
                var a1 = Vec(repeating: 0), a2 = Vec(repeating: 0)
                for row in b * p + lo..<b * p + hi {
                    let t = loadN(px + row * c + i, k) - sh
                    a1 += t; a2 += t * t
                }
                storeN(a1, s1 + i, k); storeN(a2, s2 + i, k)
            }
        }
        let mean = Tensor(uninitializedShape: [n, groups]), rstd = Tensor(uninitializedShape: [n, groups])
        let pm = mean.storage.pointer, pr = rstd.storage.pointer
        for b in 0..<n {
            for g in 0..<groups {
                // Chan et al.'s pairwise combination of the per-(chunk, channel) partial moments, in Double.
                var total = 0.0
                for ch in 0..<chunks {
                    let cnt = Double(min(p, (ch + 1) * pixelChunk) - ch * pixelChunk)
                    let shift = partial + 3 * (b * chunks + ch) * c
                    for i in g * cg..<(g + 1) * cg { total += cnt * Double(shift[i]) + Double(shift[c + i]) }
                }
                let mu = total / Double(p * cg)
                var m2 = 0.0
                for ch in 0..<chunks {
                    let cnt = Double(min(p, (ch + 1) * pixelChunk) - ch * pixelChunk)
                    let shift = partial + 3 * (b * chunks + ch) * c
                    for i in g * cg..<(g + 1) * cg {
                        let s1 = Double(shift[c + i]), s2 = Double(shift[2 * c + i])
                        let dm = Double(shift[i]) + s1 / cnt - mu
                        m2 += s2 - s1 * s1 / cnt + cnt * dm * dm
                    }
                }
                pm[b * groups + g] = Float(mu)
                pr[b * groups + g] = Float(1 / (max(m2, 0) / Double(p * cg) + Double(eps)).squareRoot())
            }
        }
        // y = act(x·a[c] + b[c]) with a = rstd·γ, b = β − mean·a.
        let (ca, cb) = affineCoefficients(n: n, c: c, cg: cg, gamma: gamma, beta: beta) { b, g in (pm[b * groups + g], pr[b * groups + g]) }
        defer { ca.deallocate(); cb.deallocate() }
        let y = Tensor(uninitializedShape: x.shape)
        switch activation {
        case .none: applyAffine(px, y.storage.pointer, ca, cb, n: n, p: p, c: c) { $0 }
        case .silu: applyAffine(px, y.storage.pointer, ca, cb, n: n, p: p, c: c) { siluv($0) }   // a literal (see Elementwise.map)
        }
        return NormalizationResult(output: y, mean: mean, rstd: rstd)
    }

    @inline(__always) static func applyAffine(_ px: UnsafePointer<Float>, _ py: UnsafeMutablePointer<Float>,
                                              _ ca: UnsafePointer<Float>, _ cb: UnsafePointer<Float>,
                                              n: Int, p: Int, c: Int, _ f: (Vec) -> Vec) {
        forChunks(n: n, p: p, c: c) { b, _, lo, hi in
            let a = ca + b * c, s = cb + b * c
            for row in b * p + lo..<b * p + hi {
                let src = px + row * c, dst = py + row * c
                var i = 0
                while i + 16 <= c { store(f(load(src + i) * load(a + i) + load(s + i)), dst + i); i += 16 }
                if i < c { let k = c - i; storePartial(f(loadPartial(src + i, k) * loadPartial(a + i, k) + loadPartial(s + i, k)), dst + i, k) }
            }
        }
    }

    /// Backward of `groupNorm`: dx, dγ, dβ from dOut, x and the forward's mean and rstd (and β when an
    /// activation was fused, to recompute its input).
    public static func groupNormBackward(_ dOut: Tensor, _ x: Tensor, mean: Tensor, rstd: Tensor, groups: Int,
                                         gamma: Tensor?, beta: Tensor? = nil,
                                         activation: NormalizationActivation = .none) throws -> NormalizationGradients {
        let (n, p, c) = try groupNormShape(x, groups: groups, gamma: gamma, beta: beta)
        guard dOut.shape == x.shape, mean.count == n * groups, rstd.count == n * groups else {
            throw TensorError.shapeMismatch("groupNormBackward: dOut \(dOut.shape), x \(x.shape), mean \(mean.shape), rstd \(rstd.shape), groups \(groups)")
        }
        let cg = c / groups, chunks = (p + pixelChunk - 1) / pixelChunk
        let px = x.storage.pointer, pd = dOut.storage.pointer, pm = mean.storage.pointer, pr = rstd.storage.pointer
        let mc = expandGroups(pm, n: n, groups: groups, cg: cg)
        let (ca, cb) = affineCoefficients(n: n, c: c, cg: cg, gamma: gamma, beta: beta) { b, g in (pm[b * groups + g], pr[b * groups + g]) }
        defer { mc.deallocate(); ca.deallocate(); cb.deallocate() }
        // Per chunk and channel: Σ dz and Σ dz·(x − mean), dz the gradient at the normalised output
        // (before the activation); x̂ = (x − mean)·rstd.
        let partialBuffer = ScratchBuffer<Float>(count: max(1, 2 * n * chunks * c)), partial = partialBuffer.pointer
        defer { partialBuffer.release() }
        switch activation {
        case .none: backwardSums(px, pd, mc, ca, cb, partial, n: n, p: p, c: c) { dy, _, _, _ in dy }
        case .silu: backwardSums(px, pd, mc, ca, cb, partial, n: n, p: p, c: c) { dy, x, a, b in dy * siluGradv(x * a + b) }
        }
        let s1 = UnsafeMutablePointer<Double>.allocate(capacity: max(1, n * c)), s2 = UnsafeMutablePointer<Double>.allocate(capacity: max(1, n * c))
        defer { s1.deallocate(); s2.deallocate() }
        for b in 0..<n {
            for i in 0..<c {
                var a = 0.0, bb = 0.0
                for ch in 0..<chunks {
                    a += Double(partial[2 * (b * chunks + ch) * c + i]); bb += Double(partial[(2 * (b * chunks + ch) + 1) * c + i])
                }
                s1[b * c + i] = a; s2[b * c + i] = bb * Double(pr[b * groups + i / cg])
            }
        }
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
        switch activation {
        case .none: backwardInput(px, pd, dx.storage.pointer, k1, k2, k3, ca, cb, n: n, p: p, c: c) { dy, _, _, _ in dy }
        case .silu: backwardInput(px, pd, dx.storage.pointer, k1, k2, k3, ca, cb, n: n, p: p, c: c) { dy, x, a, b in dy * siluGradv(x * a + b) }
        }
        return NormalizationGradients(input: dx, gamma: dgamma, beta: dbeta)
    }

    /// Per-chunk Σ dz and Σ dz·(x − mean) into `partial` [n][chunks][2][c]; dz = grad(dy, x, a, b).
    @inline(__always) static func backwardSums(_ px: UnsafePointer<Float>, _ pd: UnsafePointer<Float>, _ mc: UnsafePointer<Float>,
                                               _ ca: UnsafePointer<Float>, _ cb: UnsafePointer<Float>,
                                               _ partial: UnsafeMutablePointer<Float>, n: Int, p: Int, c: Int,
                                               _ grad: (Vec, Vec, Vec, Vec) -> Vec) {
        let chunks = (p + pixelChunk - 1) / pixelChunk
        // Rows are walked in memory order (both inputs stream; the [c] sums stay in L1).
        forChunks(n: n, p: p, c: c) { b, ch, lo, hi in
            let s1 = partial + 2 * (b * chunks + ch) * c, s2 = s1 + c, o = b * c
            s1.initialize(repeating: 0, count: 2 * c)
            for row in b * p + lo..<b * p + hi {
                let xr = px + row * c, dr = pd + row * c
                vectorColumns(c) { i, k in
                    let xv = loadN(xr + i, k)
                    let dz = grad(loadN(dr + i, k), xv, loadN(ca + o + i, k), loadN(cb + o + i, k))
                    storeN(loadN(s1 + i, k) + dz, s1 + i, k)
                    storeN(loadN(s2 + i, k) + dz * (xv - loadN(mc + o + i, k)), s2 + i, k)
                }
            }
        }
    }

    /// dx = dz·k1 + x·k2 + k3 with dz = grad(dy, x, a, b).
    @inline(__always) static func backwardInput(_ px: UnsafePointer<Float>, _ pd: UnsafePointer<Float>, _ pdx: UnsafeMutablePointer<Float>,
                                                _ k1: UnsafePointer<Float>, _ k2: UnsafePointer<Float>, _ k3: UnsafePointer<Float>,
                                                _ ca: UnsafePointer<Float>, _ cb: UnsafePointer<Float>, n: Int, p: Int, c: Int,
                                                _ grad: (Vec, Vec, Vec, Vec) -> Vec) {
        forChunks(n: n, p: p, c: c) { b, _, lo, hi in
            let o = b * c
            for row in b * p + lo..<b * p + hi {
                let xr = px + row * c, dr = pd + row * c, out = pdx + row * c
                vectorColumns(c) { i, k in
                    let xv = loadN(xr + i, k)
                    let dz = grad(loadN(dr + i, k), xv, loadN(ca + o + i, k), loadN(cb + o + i, k))
                    storeN(dz * loadN(k1 + o + i, k) + xv * loadN(k2 + o + i, k) + loadN(k3 + o + i, k), out + i, k)
                }
            }
        }
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

    /// Calls body(batch, chunk, firstPixel, endPixel) for every 256-pixel chunk of every image, over the threads.
    static func forChunks(n: Int, p: Int, c: Int, _ body: (Int, Int, Int, Int) -> Void) {
        let chunks = (p + pixelChunk - 1) / pixelChunk
        Parallel.forEachChunked(count: n * chunks, workers: Parallel.workers(for: n * p * c, minWorkPerThread: 1 << 15)) { item in
            let b = item / chunks, ch = item % chunks
            body(b, ch, ch * pixelChunk, min(p, (ch + 1) * pixelChunk))
        }
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

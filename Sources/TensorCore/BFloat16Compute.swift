// BF16 compute for frozen weights (`--precision bf16`): Linear and convolution products — forward, and the input
// gradient through a frozen layer — whose weight and input are rounded to BF16 (8-bit mantissa, nearest even) and
// multiplied with F32 accumulation by the AVX512-BF16 kernels of CBFloat16 (`vdpbf16ps`: twice the F32 FMA rate),
// and inference attention from the same products. The weight is packed once into 32-column slivers of k-pairs; the
// input is rounded per call (an NHWC pixel's channels and a row's features are already the pairs the instruction
// reads, so nothing else is packed). Only where the CPU has AVX512-BF16 and the AVX-512 kernel level is active;
// elsewhere `BFloat16Compute.isAvailable` is false and callers run F32.
import CBFloat16
import TensorBase

public enum BFloat16Compute {
    /// Whether this CPU runs the BF16 kernels (and the active kernel level is AVX-512: a process held to a lower
    /// level by `STYLEDIFFUSION_ISA` computes as that level would).
    public static var isAvailable: Bool { cpuHasBF16 && Kernels.active.name == "avx512" }

    /// Whether the CPU (and OS) can run AVX512-BF16 instructions at all.
    public static let cpuHasBF16: Bool = sdBF16Available() != 0

    /// Rounds to the nearest BF16 value, as the kernels round their operands (tests and error bounds).
    public static func rounded(_ x: Float) -> Float {
        var (value, bits) = (x, UInt16(0))
        convertF32ToBF16(&value, &bits, count: 1)
        return Float(bitPattern: UInt32(bits) << 16)
    }
}

/// A weight read as a `[taps * kPerTap, n]` matrix (a Linear weight's transpose, taps 1; a convolution's HWIO
/// kernel, one tap per kernel position), packed in BF16 as `[sliver][taps * kPerTap / 2][32][2]`.
public final class BFloat16Weight: @unchecked Sendable {
    /// Which product the packing serves (and so how it maps back to the weight it was packed from).
    public enum Use: Sendable { case linear, linearInputGradient, convolution, convolutionInputGradient }

    public let taps: Int, kPerTap: Int, n: Int
    public let use: Use
    /// The shape of the F32 weight it was packed from (`[out, in]` or `[kh, kw, Cin, Cout]`).
    public let sourceShape: [Int]
    let slivers: Int
    let storage: UnsafeMutablePointer<UInt16>
    let storageCount: Int

    /// Packs `B(t * kPerTap + k, col) = source[tapSources[t] + k * rowStride + col * columnStride]` for each tap t,
    /// k < kPerTap (even), col < n.
    init(source: UnsafePointer<Float>, tapSources: [Int], rowStride: Int, columnStride: Int, kPerTap: Int, n: Int,
         use: Use, sourceShape: [Int]) {
        precondition(kPerTap > 0 && kPerTap % 2 == 0 && !tapSources.isEmpty && n > 0, "BF16 weight: k per tap must be even")
        self.taps = tapSources.count; self.kPerTap = kPerTap; self.n = n
        self.use = use; self.sourceShape = sourceShape
        let sliver = Int(SD_BF16_SLIVER)
        slivers = (n + sliver - 1) / sliver
        let k = taps * kPerTap
        storageCount = slivers * k * sliver
        storage = .allocate(capacity: storageCount)
        let (dst, slivers) = (storage, slivers)
        Parallel.forEachChunked(count: slivers, workers: Parallel.workers(for: k * n, minWorkPerThread: 1 << 18)) { s in
            for (t, offset) in tapSources.enumerated() {
                sdBF16PackSliver(source + offset, rowStride, columnStride, Int32(kPerTap), Int32(s * sliver),
                                 Int32(min(sliver, n - s * sliver)), dst + (s * k + t * kPerTap) * sliver)
            }
        }
    }

    deinit { storage.deallocate() }

    /// Bytes of the packed storage.
    public var byteCount: Int { 2 * storageCount }

    /// A Linear weight `[out, in]` for `x · Wᵀ`; nil when `in` is odd (k-pairs would straddle rows).
    public static func linear(_ weight: Tensor) -> BFloat16Weight? {
        guard weight.rank == 2, weight.shape[1] % 2 == 0, weight.count > 0 else { return nil }
        let (out, inFeatures) = (weight.shape[0], weight.shape[1])
        return weight.withUnsafeBufferPointer {
            BFloat16Weight(source: $0.baseAddress!, tapSources: [0], rowStride: 1, columnStride: inFeatures,
                           kPerTap: inFeatures, n: out, use: .linear, sourceShape: weight.shape)
        }
    }

    /// The same weight for the input gradient `g · W` (`g` [rows, out]); nil when `out` is odd.
    public static func linearInputGradient(_ weight: Tensor) -> BFloat16Weight? {
        guard weight.rank == 2, weight.shape[0] % 2 == 0, weight.count > 0 else { return nil }
        let (out, inFeatures) = (weight.shape[0], weight.shape[1])
        return weight.withUnsafeBufferPointer {
            BFloat16Weight(source: $0.baseAddress!, tapSources: [0], rowStride: inFeatures, columnStride: 1, kPerTap: out,
                           n: inFeatures, use: .linearInputGradient, sourceShape: weight.shape)
        }
    }

    /// A convolution weight `[kh, kw, Cin, Cout]` (HWIO); nil when Cin is odd.
    public static func convolution(_ weight: Tensor) -> BFloat16Weight? {
        guard weight.rank == 4, weight.shape[2] % 2 == 0, weight.count > 0 else { return nil }
        let s = weight.shape
        return weight.withUnsafeBufferPointer {
            BFloat16Weight(source: $0.baseAddress!, tapSources: (0..<(s[0] * s[1])).map { $0 * s[2] * s[3] }, rowStride: s[3],
                           columnStride: 1, kPerTap: s[2], n: s[3], use: .convolution, sourceShape: s)
        }
    }

    /// The same weight for the input gradient of a stride-1 convolution (`bfloat16Conv2dInputGradient`): the
    /// kernel flipped in both directions with Cin and Cout swapped, `w'[dy, dx, co, ci] = w[kh-1-dy, kw-1-dx, ci, co]`;
    /// nil when Cout is odd.
    public static func convolutionInputGradient(_ weight: Tensor) -> BFloat16Weight? {
        guard weight.rank == 4, weight.shape[3] % 2 == 0, weight.count > 0 else { return nil }
        let s = weight.shape, taps = s[0] * s[1]
        return weight.withUnsafeBufferPointer {
            BFloat16Weight(source: $0.baseAddress!, tapSources: (0..<taps).map { (taps - 1 - $0) * s[2] * s[3] }, rowStride: 1,
                           columnStride: s[3], kPerTap: s[3], n: s[2], use: .convolutionInputGradient, sourceShape: s)
        }
    }

    /// The weight this forward packing was made from, as F32 in its own layout (`[out, in]` or HWIO), its values
    /// rounded to BF16; nil for an input-gradient packing.
    public func sourceWeight() -> Tensor? {
        switch use {
        case .convolution: return unpacked().reshapedUnchecked(sourceShape)
        case .linear:
            let m = unpacked(), (inFeatures, out) = (kPerTap, n)               // m is Wᵀ: [in, out]
            return m.withUnsafeBufferPointer { t in
                Tensor(shape: sourceShape) { w in
                    for o in 0..<out { for i in 0..<inFeatures { w[o * inFeatures + i] = t[i * out + o] } }
                }
            }
        case .linearInputGradient, .convolutionInputGradient: return nil
        }
    }

    /// The packed values as F32 in the `[taps * kPerTap, n]` matrix order (row-major).
    public func unpacked() -> Tensor {
        let k = taps * kPerTap, sliver = Int(SD_BF16_SLIVER)
        return Tensor(shape: [k, n]) { out in
            for s in 0..<slivers {
                sdBF16UnpackSliver(storage + s * k * sliver, Int32(k), Int32(min(sliver, n - s * sliver)), out.baseAddress!,
                                   n, 1, Int32(s * sliver))
            }
        }
    }
}

/// Rows per microkernel tile, row tiles and slivers per work item.
private let bf16TileRows = 12, bf16TilesPerItem = 8, bf16SliversPerItem = 8

/// Runs the product over `tiles` (each inside one run of evenly spaced A rows) and every sliver of `weight`,
/// split into work items of up to 8 tiles x 8 slivers across threads.
private func bf16Product(tiles: [SDBF16Tile], a: UnsafePointer<UInt16>, lda: Int, tapOffsets: [Int], weight: BFloat16Weight,
                         out: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, rows: Int) {
    let tileGroups = (tiles.count + bf16TilesPerItem - 1) / bf16TilesPerItem
    let flops = 2 * rows * weight.n * weight.taps * weight.kPerTap
    let workers = Parallel.workers(for: flops, minWorkPerThread: 8_000_000)
    // Up to 8 slivers an item, fewer when that leaves under 6 items a worker (few rows: a 64-row product would
    // otherwise be 5 items for 2 threads).
    let sliversPerItem = max(1, min(bf16SliversPerItem, tileGroups * weight.slivers / (6 * workers)))
    let sliverGroups = (weight.slivers + sliversPerItem - 1) / sliversPerItem
    tiles.withUnsafeBufferPointer { t in
        tapOffsets.withUnsafeBufferPointer { offsets in
            Parallel.forEachChunked(count: tileGroups * sliverGroups, workers: workers) { item in
                let tg = item / sliverGroups, sg = item % sliverGroups
                let t0 = tg * bf16TilesPerItem, s0 = sg * sliversPerItem
                sdBF16ProductBlock(t.baseAddress! + t0, Int32(min(bf16TilesPerItem, t.count - t0)), a, lda,
                                   offsets.baseAddress!, Int32(weight.taps), Int32(weight.kPerTap), weight.storage,
                                   Int32(s0), Int32(min(weight.slivers, s0 + sliversPerItem)), Int32(weight.n), out,
                                   ldc, bias)
            }
        }
    }
}

/// Tiles of up to 12 rows over `count` evenly spaced rows, balanced (64 rows: 11, 11, 11, 11, 10, 10).
private func appendTiles(_ tiles: inout [SDBF16Tile], count: Int, a: Int, aStep: Int, c: Int, cStep: Int) {
    let n = (count + bf16TileRows - 1) / bf16TileRows
    var start = 0
    for i in 0..<n {
        let end = count * (i + 1) / n
        tiles.append(SDBF16Tile(a: a + start * aStep, c: c + start * cStep, mr: Int32(end - start)))
        start = end
    }
}

/// BF16 rounding of `count` floats into a pooled buffer (freed by the caller with `releaseBF16`).
private func allocateBF16(_ count: Int) -> UnsafeMutablePointer<UInt16> {
    UnsafeMutableRawPointer(TensorMemory.shared.allocateFloats((count + 1) / 2)).bindMemory(to: UInt16.self,
                                                                                           capacity: count)
}

private func releaseBF16(_ p: UnsafeMutablePointer<UInt16>, _ count: Int) {
    TensorMemory.shared.deallocateFloats(UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self),
                                         count: (count + 1) / 2)
}

private func roundRows(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int) {
    let chunk = 1 << 16
    Parallel.forEachChunked(count: (count + chunk - 1) / chunk, workers: Parallel.workers(for: count, minWorkPerThread: 1 << 20)) { i in
        convertF32ToBF16(src + i * chunk, dst + i * chunk, count: min(chunk, count - i * chunk))
    }
}

/// `x · Wᵀ + b` for x `[..., in]` and a `BFloat16Weight.linear` weight: `[..., out]`.
public func bfloat16Linear(_ x: Tensor, weight: BFloat16Weight, bias: Tensor?) throws -> Tensor {
    guard weight.taps == 1, let k = x.shape.last, k == weight.kPerTap else {
        throw TensorError.shapeMismatch("bf16 linear: input \(x.shape) does not fit a weight of \(weight.kPerTap) inputs")
    }
    if let bias, bias.shape != [weight.n] {
        throw TensorError.shapeMismatch("bf16 linear: bias \(bias.shape) does not fit \(weight.n) outputs")
    }
    let rows = x.count / k
    return try bf16RowProduct(x, rows: rows, outShape: Array(x.shape.dropLast()) + [weight.n], weight: weight, bias: bias)
}

/// `rows` rows of k = weight.kPerTap features times the weight, bias added.
private func bf16RowProduct(_ x: Tensor, rows: Int, outShape: [Int], weight: BFloat16Weight, bias: Tensor?) throws -> Tensor {
    let k = weight.kPerTap, n = weight.n
    let a = allocateBF16(rows * k)
    defer { releaseBF16(a, rows * k) }
    x.withUnsafeBufferPointer { roundRows($0.baseAddress!, into: a, count: rows * k) }
    var tiles: [SDBF16Tile] = []
    appendTiles(&tiles, count: rows, a: 0, aStep: k, c: 0, cStep: n)
    return withOptionalBias(bias) { b in
        Tensor(shape: outShape) { out in
            bf16Product(tiles: tiles, a: a, lda: k, tapOffsets: [0], weight: weight, out: out.baseAddress!, ldc: n,
                        bias: b, rows: rows)
        }
    }
}

private func withOptionalBias<R>(_ bias: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let bias else { return body(nil) }
    return bias.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Convolution of x `[N, H, W, Cin]` with a `BFloat16Weight.convolution` weight of `kernelHeight` x
/// `kernelWidth` taps (+ bias `[Cout]`): `[N, Ho, Wo, Cout]`, as `conv2d` computes it on BF16-rounded operands.
public func bfloat16Conv2d(_ x: Tensor, weight: BFloat16Weight, kernelHeight kh: Int, kernelWidth kw: Int, bias: Tensor?,
                           stride s: Int, padding p: Int) throws -> Tensor {
    guard kh * kw == weight.taps else {
        throw TensorError.shapeMismatch("bf16 conv2d: a \(kh)x\(kw) kernel does not fit a weight of \(weight.taps) taps")
    }
    let g = try Conv2DShape(input: x.shape, weight: [kh, kw, weight.kPerTap, weight.n], stride: s, padding: p,
                            op: "bf16 conv2d")
    if let bias, bias.shape != [weight.n] {
        throw TensorError.shapeMismatch("bf16 conv2d: bias \(bias.shape) does not fit \(weight.n) output channels")
    }
    if g.isPointwise {
        return try bf16RowProduct(x, rows: g.batch * g.height * g.width, outShape: g.outputShape, weight: weight, bias: bias)
    }
    let cin = g.inChannels, cout = g.outChannels, ho = g.outHeight, wo = g.outWidth
    let hp = g.height + 2 * p, wp = g.width + 2 * p
    let padded = g.batch * hp * wp * cin
    let a = allocateBF16(padded)
    defer { releaseBF16(a, padded) }
    x.withUnsafeBufferPointer { src in
        let src = src.baseAddress!, (h, w) = (g.height, g.width)
        Parallel.forEachChunked(count: g.batch * hp, workers: Parallel.workers(for: padded, minWorkPerThread: 1 << 20)) { row in
            let n = row / hp, y = row % hp - p
            let dst = a + row * wp * cin
            guard y >= 0, y < h else {
                dst.update(repeating: 0, count: wp * cin)
                return
            }
            dst.update(repeating: 0, count: p * cin)
            convertF32ToBF16(src + (n * h + y) * w * cin, dst + p * cin, count: w * cin)
            (dst + (p + w) * cin).update(repeating: 0, count: p * cin)
        }
    }
    var tiles: [SDBF16Tile] = []
    tiles.reserveCapacity(g.batch * ho * ((wo + bf16TileRows - 1) / bf16TileRows))
    for n in 0..<g.batch {
        for oy in 0..<ho {
            appendTiles(&tiles, count: wo, a: ((n * hp + oy * s) * wp) * cin, aStep: s * cin,
                        c: (n * ho + oy) * wo * cout, cStep: cout)
        }
    }
    let tapOffsets = (0..<(kh * kw)).map { t in ((t / kw) * wp + t % kw) * cin }
    return withOptionalBias(bias) { b in
        Tensor(shape: g.outputShape) { out in
            bf16Product(tiles: tiles, a: a, lda: s * cin, tapOffsets: tapOffsets, weight: weight, out: out.baseAddress!,
                        ldc: cout, bias: b, rows: g.batch * ho * wo)
        }
    }
}

/// The input gradient of a stride-1 convolution from the output gradient `[N, Ho, Wo, Cout]` and the weight packed by
/// `BFloat16Weight.convolutionInputGradient`: the convolution of the gradient, padded by kh - 1 - padding, with the
/// flipped kernel. `inputShape` is the forward input's `[N, H, W, Cin]`.
public func bfloat16Conv2dInputGradient(_ gradOutput: Tensor, weight: BFloat16Weight, kernelHeight kh: Int,
                                        kernelWidth kw: Int, inputShape: [Int], padding p: Int) throws -> Tensor {
    guard kh == kw, p <= kh - 1, inputShape.count == 4 else {
        throw TensorError.invalidArgument("bf16 conv2d input gradient: kernel \(kh)x\(kw), padding \(p) unsupported")
    }
    let g = try bfloat16Conv2d(gradOutput, weight: weight, kernelHeight: kh, kernelWidth: kw, bias: nil, stride: 1,
                               padding: kh - 1 - p)
    guard g.shape == inputShape else {
        throw TensorError.shapeMismatch("bf16 conv2d input gradient: \(g.shape) for input \(inputShape)")
    }
    return g
}

/// Query rows per attention work item: 4 tiles of 12, whose scores (48 x Lk floats: 768 KB at 4096 keys) stay in L2.
private let bf16AttentionRows = 48

/// softmax(scale·Q·Kᵀ)·V per head for q [N, Lq, H·D] and k, v [N, Lk, H·D] → [N, Lq, H·D] (no mask), with Q, K, V and the
/// probabilities rounded to BF16 for the two products (F32 sums, F32 softmax); D must be even. `scale` defaults to
/// 1/√D. Not blocked over keys like the F32 flash kernel: each item holds 48 rows of scores.
public func bfloat16Attention(_ q: Tensor, _ k: Tensor, _ v: Tensor, heads: Int, scale: Float? = nil) throws -> Tensor {
    guard q.rank == 3, k.rank == 3, v.rank == 3, heads > 0, q.shape[2] % heads == 0, q.shape[0] == k.shape[0],
          k.shape == v.shape, k.shape[2] == q.shape[2], (q.shape[2] / heads) % 2 == 0, k.shape[1] > 0 else {
        throw TensorError.shapeMismatch("bf16 attention: q \(q.shape), k \(k.shape), v \(v.shape), \(heads) heads "
                                        + "(need [N, L, H·D] with D even)")
    }
    let (n, lq, lk, width) = (q.shape[0], q.shape[1], k.shape[1], q.shape[2])
    let d = width / heads, sliver = Int(SD_BF16_SLIVER), keysEven = lk + (lk & 1)
    let scaleLog2 = (scale ?? 1 / Float(d).squareRoot()) * 1.4426950408889634
    let kSlivers = (lk + sliver - 1) / sliver, vSlivers = (d + sliver - 1) / sliver
    let kSize = d * sliver, vSize = keysEven * sliver, headSize = kSlivers * kSize + vSlivers * vSize
    let allHeads = n * heads
    let packed = allocateBF16(allHeads * headSize), qb = allocateBF16(q.count)
    defer { releaseBF16(packed, allHeads * headSize); releaseBF16(qb, q.count) }
    q.withUnsafeBufferPointer { roundRows($0.baseAddress!, into: qb, count: q.count) }
    k.withUnsafeBufferPointer { kp in
        v.withUnsafeBufferPointer { vp in
            Parallel.forEachChunked(count: allHeads, workers: Parallel.workers(for: allHeads * lk * d, minWorkPerThread: 1 << 16)) { bh in
                let (b, h) = (bh / heads, bh % heads), offset = b * lk * width + h * d
                let dst = packed + bh * headSize
                for s in 0..<kSlivers {
                    sdBF16PackSliver(kp.baseAddress! + offset, 1, width, Int32(d), Int32(s * sliver),
                                     Int32(min(sliver, lk - s * sliver)), dst + s * kSize)
                }
                for s in 0..<vSlivers {
                    sdBF16PackSliver(vp.baseAddress! + offset, width, 1, Int32(lk), Int32(s * sliver),
                                     Int32(min(sliver, d - s * sliver)), dst + kSlivers * kSize + s * vSize)
                }
            }
        }
    }
    let blocks = (lq + bf16AttentionRows - 1) / bf16AttentionRows
    let workers = Parallel.workers(for: allHeads * lq * lk * d * 4, minWorkPerThread: 4_000_000)
    let scratchFloats = bf16AttentionRows * lk + (bf16AttentionRows * keysEven + 1) / 2
    let scratch = TensorMemory.shared.allocateFloats(workers * scratchFloats)
    defer { TensorMemory.shared.deallocateFloats(scratch, count: workers * scratchFloats) }
    return Tensor(shape: q.shape) { out in
        let out = out.baseAddress!
        Parallel.forChunks(count: allHeads * blocks, workers: workers) { w, range in
            let scores = scratch + w * scratchFloats
            let probabilities = UnsafeMutableRawPointer(scores + bf16AttentionRows * lk).assumingMemoryBound(to: UInt16.self)
            for item in range {
                let bh = item / blocks, q0 = item % blocks * bf16AttentionRows
                let (b, h) = (bh / heads, bh % heads), rows = min(bf16AttentionRows, lq - q0)
                let row0 = (b * lq + q0) * width + h * d, head = packed + bh * headSize
                sdBF16AttentionBlock(qb + row0, width, Int32(rows), Int32(d), head, head + kSlivers * kSize, Int32(lk),
                                     scaleLog2, scores, probabilities, out + row0, width)
            }
        }
    }
}

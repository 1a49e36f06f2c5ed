// GEMM: C = alpha * op(A) * op(B) + beta * C in single precision, row-major, BLAS semantics.
//
// Design (PERFORMANCE.md §4): SIMD runs along N. B is packed per (jc, pc) block of about 1 MB into NR-wide
// slivers `[kc][NR]` (alpha folded in, the last sliver zero-padded); with few row tiles a row-major B is
// read in place instead. A is read in place when it is row-major ("direct": the microkernel broadcasts
// from `A + i*lda + k`); a transposed A is packed once per block, row by row, and the last, partial row
// tile through a `[kc][MR]` sliver. Edge tiles run
// the full kernel into a scratch tile and copy the valid part. A few-row `A·Bᵀ` is computed as `(B·Aᵀ)ᵀ`.
// Work is split over row tiles (or over B slivers when there are too few row tiles), handed out in chunks
// to the workers (ParallelChunks.swift); below ~4 MFLOP per thread it stays on one thread.
import TensorBase

/// One microkernel shape.
struct GEMMTile {
    /// `(kc, a, lda, b, ldb, c, ldc, accumulate)`; see GEMMMicrokernels.swift.
    typealias Kernel = (Int, UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Int,
                        Bool) -> Void
    let mr: Int
    let nr: Int
    /// Reads a row-major A in place.
    let direct: Kernel
    /// Reads a packed `[kc][mr]` A sliver.
    let packed: Kernel

    static let t12x32 = GEMMTile(mr: 12, nr: 32, direct: microkernel12x32Direct, packed: microkernel12x32Packed)
    static let t6x64 = GEMMTile(mr: 6, nr: 64, direct: microkernel6x64Direct, packed: microkernel6x64Packed)
    static let t8x48 = GEMMTile(mr: 8, nr: 48, direct: microkernel8x48Direct, packed: microkernel8x48Packed)
    static let t24x16 = GEMMTile(mr: 24, nr: 16, direct: microkernel24x16Direct, packed: microkernel24x16Packed)
    static let t8x32 = GEMMTile(mr: 8, nr: 32, direct: microkernel8x32Direct, packed: microkernel8x32Packed)

    /// The most rows of any tile: how far a tile may read past the last row of an activation it walks.
    static let maxMR = 24

    /// The tile that wastes least for an m x n result: 8x48 for n in 33...48 (head dim 40), 24x16 for at
    /// most 16 columns (a LoRA down projection of rank ≤ 16), 8x32 for up to 8 or 13–16 rows (a rank-16 LoRA
    /// weight's gradient, computed transposed: 16 rows instead of 24), 6x64 for few rows and wide n, 12x32
    /// otherwise. Every tile sums each element over k in the same order, so the choice never changes results.
    static func choose(m: Int, n: Int) -> GEMMTile {
        if n > 32 && n <= 48 { return t8x48 }
        if n <= 16 { return t24x16 }
        if (m <= 8 || (13...16).contains(m)) && n < 1024 { return t8x32 }
        if m <= 256 && n >= 1024 { return t6x64 }
        return t12x32
    }
}

/// Flops per thread below which a GEMM runs on one thread.
let gemmMinFlopsPerThread = 1_000_000
/// Floats in one packed B block (1 MB; 512 KB measured no better on a 1 MB-L2 machine).
let gemmPackedBlockFloats = 262_144
/// Below this many columns, `Aᵀ * B` runs as `(Bᵀ * A)ᵀ` (`transposedProduct`).
let gemmTransposedAMaxN = 32
/// Largest K block.
let gemmMaxKC = 384
/// Up to this many row tiles, a row-major B (with alpha 1) is read in place instead of packed: with so few
/// tiles to reuse a packed panel, packing would cost as much memory traffic as the product itself.
let gemmDirectBMaxRowTiles = 16

/// Single-precision general matrix multiply on row-major storage:
/// `C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C`.
///
/// `op(A)` is `A` stored `m x k` (leading dimension `lda`) or, with `transA`, `A` stored `k x m`;
/// likewise `op(B)` is `B` stored `k x n` or, with `transB`, `n x k`. With `beta == 0` the old contents of
/// C are never read (NaN there does not propagate). Runs on up to `Parallel.maxThreads` threads; results
/// depend only on the shapes and the thread count. A row of C is the same whatever `m` (every path sums each
/// element over K in one order fixed by `k`), so a batch row equals that row computed alone.
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative size m=\(m) n=\(n) k=\(k)")
    if m == 0 || n == 0 { return }
    if k == 0 || alpha == 0 {
        scaleMatrix(c, rows: m, cols: n, ld: ldc, by: beta)
        return
    }
    if transA && !transB && alpha == 1 && beta == 0 && lda == m && ldb == n && ldc == n && min(m, n) <= gemmNarrowSideMax {
        narrowTransposedProduct(m: m, n: n, k: k, a: a, b: b, c: c)
        return
    }
    if transB && !transA && alpha == 1 && 2 * m * (k + n) <= n * k {
        transposedProduct(transA: false, transB: true, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                          beta: beta, c: c, ldc: ldc)
        return
    }
    if transA && !transB && alpha == 1 && n < gemmTransposedAMaxN && m >= 2 * n {
        transposedProduct(transA: true, transB: false, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                          beta: beta, c: c, ldc: ldc)
        return
    }
    if beta != 0 && beta != 1 { scaleMatrix(c, rows: m, cols: n, ld: ldc, by: beta) }
    let operands = GEMMOperands(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc, accumulate: beta != 0)
    KernelWorkspacePool.shared.with { ws in operands.run(tile: GEMMTile.choose(m: m, n: n), workspace: ws) }
}

/// `C = alpha * A * Bᵀ + beta * C` for few rows, computed as `Cᵀ = B * Aᵀ`: B (n x k) is then read in place
/// by the direct microkernel and only the small A gets packed (plus Cᵀ transposed back), instead of
/// transposing all of B into panels, which costs more than the product when m is small (e.g. a Linear layer
/// on 64 tokens). Used when that extra traffic, m*(k + n), is at most half of B's n*k, and only with
/// alpha 1 (which the direct path would fold into B, this one into A). The old C (times beta) seeds Cᵀ, so
/// each element is summed exactly as the direct path sums it: ((βC + K block 1) + K block 2) + ….
///
/// Also `C = Aᵀ * B` with few columns (n < 32, m ≥ 2n; e.g. a LoRA down weight's gradient, Xᵀ · dH with rank
/// columns, or a LoRA down convolution's per-tap weight gradient):
/// the driver would pack all of Aᵀ (K x m) for a product that reuses each packed value only n times and fill
/// half of every 32-wide tile; as `Cᵀ = Bᵀ * A`, A (K x m) is read in place and only the small B is packed.
func transposedProduct(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>,
                       lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let ctBuffer = ScratchBuffer<Float>(count: n * m), ct = ctBuffer.pointer
    defer { ctBuffer.release() }
    if beta != 0 { transposeBlocks(c, rows: m, cols: n, ld: ldc, into: ct, ld: m, scale: beta) }
    // Cᵀ = op(B)ᵀ · op(A)ᵀ: each operand read as stored, with the other transpose flag.
    sgemm(transA: !transB, transB: !transA, m: n, n: m, k: k, alpha: alpha, a: b, lda: ldb, b: a, ldb: lda,
          beta: beta == 0 ? 0 : 1, c: ct, ldc: m)
    transposeBlocks(ct, rows: n, cols: m, ld: m, into: c, ld: ldc, scale: 1)
}

/// `dst[j·ldd + i] = scale · src[i·lds + j]` for i < rows, j < cols (scale 1 copies the values exactly), in
/// 16 × 16 blocks — each reads and writes whole cache lines where an element-by-element walk down a column touches
/// a new line per element (a 10240 × 512 transposed product's Cᵀ took 15 % of its GEMM that way) — with the
/// bands of 16 source rows split over the threads.
func transposeBlocks(_ src: UnsafePointer<Float>, rows: Int, cols: Int, ld lds: Int, into dst: UnsafeMutablePointer<Float>,
                     ld ldd: Int, scale: Float) {
    let bands = (rows + 15) / 16
    Parallel.forEach(count: bands, workers: Parallel.workers(for: rows * cols, minWorkPerThread: 1 << 16)) { band in
        let r0 = band * 16, r1 = min(r0 + 16, rows)
        for c0 in stride(from: 0, to: cols, by: 16) {
            let c1 = min(c0 + 16, cols)
            for i in r0..<r1 {
                let from = src + i * lds
                for j in c0..<c1 { dst[j * ldd + i] = scale * from[j] }
            }
        }
    }
}

/// Most columns or rows of a contiguous `C = Aᵀ * B` (A k x m, B k x n) that `narrowTransposedProduct` computes:
/// faster than the driver at every narrow side measured, 4 to 64 (`bench kernels --filter "sgemm At"`: 1.7–4.6× at
/// 4–8, 1.6–1.9× at 32 with 320 wide, 1.1–1.5× at 64); not measured beyond.
let gemmNarrowSideMax = 64

/// `C = Aᵀ * B` with a narrow side, min(m, n) ≤ `gemmNarrowSideMax`, all three contiguous: a LoRA pair's weight
/// gradients (dB = hᵀ·g and dA = g_hᵀ·x, the rank the narrow side and k the tokens). The driver fills its 12 x 32
/// tiles with a rank's 8 rows or columns and packs the whole wide operand for a product that reuses each packed
/// value only rank times (37–53 GFLOP/s on the embedded model's); this is `narrowWeightGradient` on a 1 x 1
/// convolution over k pixels, the wide side in the vector lanes and the narrow side broadcast (m ≥ n: as stored,
/// else with A and B swapped and Cᵀ transposed back). Each element is summed in the same order either way and
/// whatever m, n or the thread count: over two halves of the pixels (past 8 MiB of operands, up to eight chunks:
/// `narrowWeightGradientParts`, a function of m + n and k alone), each in order, then the parts added.
func narrowTransposedProduct(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                             c: UnsafeMutablePointer<Float>) {
    // k pixels as rows x columns: the kernel cuts its work into parts of whole rows.
    let rows = [8, 4, 2].first { k % $0 == 0 } ?? 1
    func shape(lanes: Int, broadcast: Int) -> Conv2DShape {
        try! Conv2DShape(input: [1, rows, k / rows, lanes], weight: [1, 1, lanes, broadcast], stride: 1, padding: 0,
                         op: "sgemm")   // m, n, k ≥ 1 here: always a valid 1 x 1 convolution
    }
    if m >= n {
        narrowWeightGradient(shape(lanes: m, broadcast: n), input: a, gradOutput: b, gradWeight: c)
        return
    }
    let transposed = ScratchBuffer<Float>(count: m * n)
    defer { transposed.release() }
    narrowWeightGradient(shape(lanes: n, broadcast: m), input: b, gradOutput: a, gradWeight: transposed.pointer)
    transposeMatrix(transposed.pointer, rows: n, cols: m, into: c)
}

/// `C = beta * C` over an m x n block (beta 0 writes zeros without reading C).
func scaleMatrix(_ c: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, by beta: Float) {
    for i in 0..<rows {
        let row = c + i * ld
        if beta == 0 {
            row.update(repeating: 0, count: cols)
        } else if beta != 1 {
            for j in 0..<cols { row[j] *= beta }
        }
    }
}

/// The arguments of one GEMM call, and its blocked driver. A class, not a struct: a struct this large is
/// copied through a compiler helper (`__swift_memcpy89_8`) that every module emits under one name, and the
/// copy the linker keeps must not be one compiled for AVX (Scripts/check-isa-isolation.sh).
final class GEMMOperands {
    let transA: Bool, transB: Bool
    let m: Int, n: Int, k: Int
    let alpha: Float
    let a: UnsafePointer<Float>, lda: Int
    let b: UnsafePointer<Float>, ldb: Int
    let c: UnsafeMutablePointer<Float>, ldc: Int
    /// Whether the first K block adds to C (beta != 0) or overwrites it.
    let accumulate: Bool

    init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
         b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        self.transA = transA; self.transB = transB; self.m = m; self.n = n; self.k = k; self.alpha = alpha
        self.a = a; self.lda = lda; self.b = b; self.ldb = ldb; self.c = c; self.ldc = ldc
        self.accumulate = accumulate
    }

    func run(tile: GEMMTile, workspace ws: KernelWorkspace) {
        let mr = tile.mr, nr = tile.nr
        let kBlocks = (k + gemmMaxKC - 1) / gemmMaxKC
        let kc = (k + kBlocks - 1) / kBlocks
        let nPadded = (n + nr - 1) / nr * nr
        let ncMax = max(nr, gemmPackedBlockFloats / kc / nr * nr)
        let nBlocks = (nPadded + ncMax - 1) / ncMax
        let nc = ((nPadded + nBlocks - 1) / nBlocks + nr - 1) / nr * nr
        let threads = Parallel.workers(for: 2 * m * n * k, minWorkPerThread: gemmMinFlopsPerThread)
        let mTiles = (m + mr - 1) / mr
        // A transposed: the whole A block is packed once per (jc, pc), reading A's rows contiguously.
        ws.reserve(sharedCount: kc * nc + (transA ? mTiles * mr * kc : 0), workers: threads,
                   perWorkerCount: mr * kc + mr * nr)
        let packed = ws.shared
        let packedA = transA ? packed + kc * nc : nil
        let directB = !transB && alpha == 1 && mTiles <= gemmDirectBMaxRowTiles

        var jc = 0
        while jc < n {
            let ncur = min(nc, n - jc)
            let slivers = (ncur + nr - 1) / nr
            var pc = 0
            while pc < k {
                let kcur = min(kc, k - pc)
                let packWorkers = kcur * ncur >= 65_536 ? threads : 1
                // Read in place, only a partial last sliver needs packing (the kernel reads nr columns).
                let packFrom = directB ? (ncur % nr == 0 ? slivers : slivers - 1) : 0
                Parallel.forChunks(count: slivers - packFrom, workers: packWorkers, chunksPerWorker: 4) { _, range in
                    for r in range {
                        let s = packFrom + r
                        packB(into: packed + s * kcur * nr, nr: nr, k0: pc, kcur: kcur, j0: jc + s * nr)
                    }
                }
                if let packedA {
                    let workers = kcur * m >= 65_536 ? threads : 1
                    Parallel.forChunks(count: kcur, workers: workers, chunksPerWorker: 4) { _, range in
                        packTransposedA(into: packedA, mr: mr, tiles: mTiles, k0: pc, kcur: kcur, rows: range)
                    }
                }
                let acc = accumulate || pc > 0
                let block = GEMMBlock(pc: pc, kcur: kcur, jc: jc, slivers: slivers, accumulate: acc, packedA: packedA,
                                      packedFrom: packFrom)
                if threads == 1 || mTiles >= 2 * threads {
                    Parallel.forChunks(count: mTiles, workers: threads) { w, range in
                        let scratch = ws.worker(w)
                        for t in range { compute(tile, block, packed, rowTile: t, sliverRange: 0..<slivers, scratch) }
                    }
                } else {
                    Parallel.forChunks(count: slivers, workers: threads, chunksPerWorker: 2) { w, range in
                        let scratch = ws.worker(w)
                        for t in 0..<mTiles { compute(tile, block, packed, rowTile: t, sliverRange: range, scratch) }
                    }
                }
                pc += kcur
            }
            jc += ncur
        }
    }

    /// Packs `alpha * op(B)[k0..<k0+kcur, j0..<j0+nr]` as `[kcur][nr]`, zero-padding columns past n.
    func packB(into dst: UnsafeMutablePointer<Float>, nr: Int, k0: Int, kcur: Int, j0: Int) {
        let valid = min(nr, n - j0)
        if !transB {
            for kk in 0..<kcur {
                let src = b + (k0 + kk) * ldb + j0, row = dst + kk * nr
                if valid == nr {
                    copyVectors(from: src, to: row, count: nr, scale: alpha)
                } else {
                    for j in 0..<valid { row[j] = alpha * src[j] }
                    (row + valid).update(repeating: 0, count: nr - valid)
                }
            }
        } else {
            for j in 0..<valid {
                let src = b + (j0 + j) * ldb + k0
                for kk in 0..<kcur { dst[kk * nr + j] = alpha * src[kk] }
            }
            if valid < nr {
                for kk in 0..<kcur { (dst + kk * nr + valid).update(repeating: 0, count: nr - valid) }
            }
        }
    }

    /// For a transposed A: packs rows `k0 + rows` of the stored A (columns of op(A)) into every row tile's
    /// `[kcur][mr]` sliver (tile t at `dst + t*kcur*mr`), zero-padding past m.
    func packTransposedA(into dst: UnsafeMutablePointer<Float>, mr: Int, tiles: Int, k0: Int, kcur: Int,
                         rows: Range<Int>) {
        for kk in rows {
            let src = a + (k0 + kk) * lda
            for t in 0..<tiles {
                let i0 = t * mr, valid = min(mr, m - i0), row = dst + (t * kcur + kk) * mr
                if valid == mr {
                    copyShortRow(from: src + i0, to: row, count: mr)
                } else {
                    for i in 0..<valid { row[i] = src[i0 + i] }
                    (row + valid).update(repeating: 0, count: mr - valid)
                }
            }
        }
    }

    /// Packs `op(A)[i0..<i0+mr, k0..<k0+kcur]` as `[kcur][mr]`, zero-padding rows past m.
    func packA(into dst: UnsafeMutablePointer<Float>, mr: Int, i0: Int, k0: Int, kcur: Int) {
        let valid = min(mr, m - i0)
        if transA {
            for kk in 0..<kcur {
                let src = a + (k0 + kk) * lda + i0, row = dst + kk * mr
                if valid == mr {
                    copyShortRow(from: src, to: row, count: mr)
                } else {
                    for i in 0..<valid { row[i] = src[i] }
                    (row + valid).update(repeating: 0, count: mr - valid)
                }
            }
        } else {
            for i in 0..<valid {
                let src = a + (i0 + i) * lda + k0
                for kk in 0..<kcur { dst[kk * mr + i] = src[kk] }
            }
            if valid < mr {
                for kk in 0..<kcur { (dst + kk * mr + valid).update(repeating: 0, count: mr - valid) }
            }
        }
    }

    /// One row tile times the B slivers in `sliverRange` of the current packed block.
    @inline(__always)
    func compute(_ tile: GEMMTile, _ blk: GEMMBlock, _ packed: UnsafeMutablePointer<Float>, rowTile t: Int,
                 sliverRange: Range<Int>, _ scratch: UnsafeMutablePointer<Float>) {
        let mr = tile.mr, nr = tile.nr
        let i0 = t * mr, rows = min(mr, m - i0)
        let direct = !transA && rows == mr
        let kernel = direct ? tile.direct : tile.packed
        let aPtr: UnsafePointer<Float>
        if direct {
            aPtr = a + i0 * lda + blk.pc
        } else if let packedA = blk.packedA {
            aPtr = UnsafePointer(packedA + t * blk.kcur * mr)
        } else {
            packA(into: scratch, mr: mr, i0: i0, k0: blk.pc, kcur: blk.kcur)
            aPtr = UnsafePointer(scratch)
        }
        let cTile = scratch + mr * blk.kcur
        for s in sliverRange {
            let j0 = blk.jc + s * nr, cols = min(nr, n - j0)
            let inPlace = s < blk.packedFrom
            let bPtr = inPlace ? b + blk.pc * ldb + j0 : UnsafePointer(packed + s * blk.kcur * nr)
            let bStride = inPlace ? ldb : nr
            let cPtr = c + i0 * ldc + j0
            if rows == mr && cols == nr {
                kernel(blk.kcur, aPtr, lda, bPtr, bStride, cPtr, ldc, blk.accumulate)
            } else {
                kernel(blk.kcur, aPtr, lda, bPtr, bStride, cTile, nr, false)
                for i in 0..<rows {
                    let dst = cPtr + i * ldc, src = cTile + i * nr
                    if blk.accumulate {
                        for j in 0..<cols { dst[j] += src[j] }
                    } else {
                        dst.update(from: src, count: cols)
                    }
                }
            }
        }
    }
}

/// `dst[0..<count] = scale * src[0..<count]` for a count that is a multiple of 16, in SIMD16 steps
/// (a library memmove per short row costs more than the copy).
@inline(__always)
func copyVectors(from src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, count: Int, scale: Float) {
    let s = UnsafeRawPointer(src), d = UnsafeMutableRawPointer(dst)
    var o = 0
    while o < count * 4 {
        let v = s.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
        d.storeBytes(of: scale == 1 ? v : v * scale, toByteOffset: o, as: SIMD16<Float>.self)
        o += 64
    }
}

/// `dst[0..<count] = src[0..<count]` for the short rows of an A sliver (12, 8 or 6 floats).
@inline(__always)
func copyShortRow(from src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, count: Int) {
    let s = UnsafeRawPointer(src), d = UnsafeMutableRawPointer(dst)
    switch count {
    case 12:
        d.storeBytes(of: s.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
        d.storeBytes(of: s.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self), toByteOffset: 32, as: SIMD4<Float>.self)
    case 8:
        d.storeBytes(of: s.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
    case 6:
        d.storeBytes(of: s.loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
        d.storeBytes(of: s.loadUnaligned(fromByteOffset: 16, as: SIMD2<Float>.self), toByteOffset: 16, as: SIMD2<Float>.self)
    default:
        for i in 0..<count { dst[i] = src[i] }
    }
}

/// The current (jc, pc) block of the GEMM loop nest.
struct GEMMBlock {
    let pc: Int, kcur: Int, jc: Int, slivers: Int
    let accumulate: Bool
    /// Every row tile's packed A sliver, when A is transposed.
    let packedA: UnsafeMutablePointer<Float>?
    /// Slivers before this index read B in place; the others are packed.
    let packedFrom: Int
}

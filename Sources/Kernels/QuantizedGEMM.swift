// Dequantizing GEMM: C = A · op(W) with W stored in bitsandbytes' 4-bit blockwise format (NF4 / FP4).
//
// W [rows, cols] is quantized over its flat row-major order in blocks of `blockSize` weights: two 4-bit
// codes per byte, the first weight in the high nibble; weight i is `code[nibble(i)] * scales[i / blockSize]`
// (bitsandbytes' dequantize_4bit, bit for bit). The GEMM never builds the F32 matrix: the blocked driver of
// GEMM.swift packs each NR-wide B sliver `[kc][NR]` anyway, and here the packer decodes the codes straight
// into that sliver, so the decoding is paid once per (jc, pc) block and amortized over all the rows of A.
// The microkernels are the same ones sgemm uses.
import TensorBase

/// `C[m x n] = A[m x k] · op(W)` (or `+=` with `accumulate`), where W is a 4-bit blockwise-quantized matrix.
///
/// With `transposedWeight`, W is stored `[n, k]` and op(W) = Wᵀ (a Linear layer's `x · Wᵀ`); otherwise W is
/// stored `[k, n]` (the input gradient `g · W`). `packed` holds the codes (weight i in the high nibble of
/// byte i/2 when i is even, the low nibble when odd), `scales` one F32 absmax per block of `blockSize`
/// weights, `code` the 16 code-book values. A is row-major with leading dimension `lda`; C with `ldc`.
public func dequantizingSGEMM(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                              packed: UnsafePointer<UInt8>, scales: UnsafePointer<Float>, code: UnsafePointer<Float>,
                              blockSize: Int, transposedWeight: Bool,
                              c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    precondition(m >= 0 && n >= 0 && k >= 0 && blockSize > 0, "dequantizingSGEMM: bad size m=\(m) n=\(n) k=\(k)")
    let weight = QuantizedOperand(packed: packed, scales: scales, code: code, blockSize: blockSize,
                                  cols: transposedWeight ? k : n, transposed: transposedWeight)
    dequantizingProduct(m: m, n: n, k: k, a: a, lda: lda, weight: weight, c: c, ldc: ldc, accumulate: accumulate)
}

/// `C = A · op(W)` (or `+=`) for a 4-bit operand as the packer reads it (which may start inside the tensor).
func dequantizingProduct(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, weight: QuantizedOperand,
                         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        if !accumulate { scaleMatrix(c, rows: m, cols: n, ld: ldc, by: 0) }
        return
    }
    let driver = DequantizingGEMM(m: m, n: n, k: k, a: a, lda: lda, weight: weight, c: c, ldc: ldc,
                                  accumulate: accumulate)
    KernelWorkspacePool.shared.with { ws in driver.run(tile: GEMMTile.choose(m: m, n: n), workspace: ws) }
}

/// Decodes the 4-bit weights `flat[start ..< start + count]` (flat row-major index of W) into
/// `out[0], out[stride], out[2*stride], …`: one 16-entry table `code · absmax` per block, then a lookup
/// per weight (the same single product bitsandbytes computes).
@inline(__always)
func decodeFourBitRun(_ w: QuantizedOperand, start: Int, count: Int, into out: UnsafeMutablePointer<Float>,
                      stride: Int, table t: UnsafeMutablePointer<Float>) {
    let codes = UnsafeRawPointer(w.code).loadUnaligned(as: SIMD16<Float>.self)
    let start = start + w.offset
    var i = 0
    while i < count {
        let flat = start + i
        let block = flat / w.blockSize
        let run = min(count - i, (block + 1) * w.blockSize - flat)
        UnsafeMutableRawPointer(t).storeBytes(of: codes * SIMD16<Float>(repeating: w.scales[block]),
                                              as: SIMD16<Float>.self)
        var o = out + i * stride
        var f = flat
        let end = flat + run
        if f & 1 == 1 {
            o.pointee = t[Int(w.packed[f >> 1] & 15)]
            o += stride; f += 1
        }
        while f + 1 < end {
            let byte = w.packed[f >> 1]
            o.pointee = t[Int(byte >> 4)]
            o[stride] = t[Int(byte & 15)]
            o += 2 * stride; f += 2
        }
        if f < end { o.pointee = t[Int(w.packed[f >> 1] >> 4)] }
        i += run
    }
}

/// 16 floats, 64-byte aligned: one block's decoded code book.
func allocateCodeTable() -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64).bindMemory(to: Float.self, capacity: 16)
}

/// A 4-bit weight matrix as the packer reads it; `cols` is the stored row length. The matrix starts at weight
/// `offset` of the flat quantized tensor (one tap of a convolution weight), so blocks are counted from there.
struct QuantizedOperand {
    let packed: UnsafePointer<UInt8>
    let scales: UnsafePointer<Float>
    let code: UnsafePointer<Float>
    let blockSize: Int
    let cols: Int
    var transposed: Bool
    var offset = 0
}

/// The blocked driver of GEMM.swift with a decoding B packer; A is row-major (read in place for full row
/// tiles, packed into the worker's scratch for the last partial one). A class for the same reason as
/// `GEMMOperands` (no large-struct copy helper shared across the ISA modules).
final class DequantizingGEMM {
    let m: Int, n: Int, k: Int
    let a: UnsafePointer<Float>, lda: Int
    let weight: QuantizedOperand
    let c: UnsafeMutablePointer<Float>, ldc: Int
    let accumulate: Bool

    init(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, weight: QuantizedOperand,
         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        self.m = m; self.n = n; self.k = k; self.a = a; self.lda = lda; self.weight = weight
        self.c = c; self.ldc = ldc; self.accumulate = accumulate
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
        ws.reserve(sharedCount: kc * nc, workers: threads, perWorkerCount: mr * kc + mr * nr)
        let packedB = ws.shared
        var jc = 0
        while jc < n {
            let ncur = min(nc, n - jc)
            let slivers = (ncur + nr - 1) / nr
            var pc = 0
            while pc < k {
                let kcur = min(kc, k - pc)
                let packWorkers = kcur * ncur >= 16_384 ? threads : 1
                Parallel.forChunks(count: slivers, workers: packWorkers, chunksPerWorker: 4) { _, range in
                    for s in range {
                        self.packB(into: packedB + s * kcur * nr, nr: nr, k0: pc, kcur: kcur, j0: jc + s * nr)
                    }
                }
                let block = GEMMBlock(pc: pc, kcur: kcur, jc: jc, slivers: slivers, accumulate: accumulate || pc > 0,
                                      packedA: nil, packedFrom: 0)
                if threads == 1 || mTiles >= 2 * threads {
                    Parallel.forChunks(count: mTiles, workers: threads) { w, range in
                        let scratch = ws.worker(w)
                        for t in range { self.compute(tile, block, packedB, rowTile: t, sliverRange: 0..<slivers, scratch) }
                    }
                } else {
                    Parallel.forChunks(count: slivers, workers: threads, chunksPerWorker: 2) { w, range in
                        let scratch = ws.worker(w)
                        for t in 0..<mTiles { self.compute(tile, block, packedB, rowTile: t, sliverRange: range, scratch) }
                    }
                }
                pc += kcur
            }
            jc += ncur
        }
    }

    /// Decodes `op(W)[k0..<k0+kcur, j0..<j0+nr]` as `[kcur][nr]`, zero-padding columns past n.
    func packB(into dst: UnsafeMutablePointer<Float>, nr: Int, k0: Int, kcur: Int, j0: Int) {
        let valid = min(nr, n - j0)
        let table = allocateCodeTable()
        defer { table.deallocate() }
        if weight.transposed {
            // op(W) = Wᵀ: column j of the sliver is stored row j0+j of W, contiguous along k.
            for j in 0..<valid {
                decodeFourBitRun(weight, start: (j0 + j) * weight.cols + k0, count: kcur, into: dst + j, stride: nr, table: table)
            }
        } else {
            for kk in 0..<kcur {
                decodeFourBitRun(weight, start: (k0 + kk) * weight.cols + j0, count: valid, into: dst + kk * nr, stride: 1, table: table)
            }
        }
        if valid < nr {
            for kk in 0..<kcur { (dst + kk * nr + valid).update(repeating: 0, count: nr - valid) }
        }
    }

    /// One row tile times the B slivers in `sliverRange` of the current packed block.
    @inline(__always)
    func compute(_ tile: GEMMTile, _ blk: GEMMBlock, _ packedB: UnsafeMutablePointer<Float>, rowTile t: Int,
                 sliverRange: Range<Int>, _ scratch: UnsafeMutablePointer<Float>) {
        let mr = tile.mr, nr = tile.nr
        let i0 = t * mr, rows = min(mr, m - i0)
        let direct = rows == mr
        let kernel = direct ? tile.direct : tile.packed
        let aPtr: UnsafePointer<Float>
        if direct {
            aPtr = a + i0 * lda + blk.pc
        } else {
            // [kcur][mr], rows past m zero.
            for kk in 0..<blk.kcur {
                let row = scratch + kk * mr
                for i in 0..<rows { row[i] = a[(i0 + i) * lda + blk.pc + kk] }
                (row + rows).update(repeating: 0, count: mr - rows)
            }
            aPtr = UnsafePointer(scratch)
        }
        let cTile = scratch + mr * blk.kcur
        for s in sliverRange {
            let j0 = blk.jc + s * nr, cols = min(nr, n - j0)
            let bPtr = UnsafePointer(packedB + s * blk.kcur * nr)
            let cPtr = c + i0 * ldc + j0
            if rows == mr && cols == nr {
                kernel(blk.kcur, aPtr, lda, bPtr, nr, cPtr, ldc, blk.accumulate)
            } else {
                kernel(blk.kcur, aPtr, lda, bPtr, nr, cTile, nr, false)
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

/// bitsandbytes' dequantize_4bit: `out[i] = code[nibble(i)] * scales[i / blockSize]` for `count` weights.
public func dequantizeFourBit(packed: UnsafePointer<UInt8>, scales: UnsafePointer<Float>, code: UnsafePointer<Float>,
                              blockSize: Int, count: Int, out: UnsafeMutablePointer<Float>) {
    let w = QuantizedOperand(packed: packed, scales: scales, code: code, blockSize: blockSize, cols: count,
                             transposed: false)
    let blocks = (count + blockSize - 1) / max(blockSize, 1)
    let workers = Parallel.workers(for: count, minWorkPerThread: 1 << 20)
    Parallel.forChunks(count: blocks, workers: workers) { _, range in
        let start = range.lowerBound * blockSize, end = min(count, range.upperBound * blockSize)
        let table = allocateCodeTable()
        defer { table.deallocate() }
        decodeFourBitRun(w, start: start, count: end - start, into: out + start, stride: 1, table: table)
    }
}

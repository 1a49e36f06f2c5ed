// ConvKernels: the pointer-level implicit-GEMM convolution driver behind Conv2D.swift.
import TensorBase

/// A zero-padded (and optionally dilated) NHWC copy of an activation, with slack after the end so that
/// microkernel tiles running past the last pixel stay inside the buffer.
struct PaddedActivation {
    let pointer: UnsafeMutablePointer<Float>
    let height: Int, width: Int, channels: Int, batch: Int
    private let count: Int

    /// `dst[n, y, x] = src[n, (y - top) / dilation, (x - left) / dilation]` where that is a whole in-range
    /// index, else 0. `dst` is `[batch, height, width, channels]` plus `slackPixels` zero pixels.
    init(_ src: UnsafePointer<Float>, batch: Int, srcHeight: Int, srcWidth: Int, channels: Int,
         height: Int, width: Int, top: Int, left: Int, dilation: Int, slackPixels: Int) {
        self.height = height; self.width = width; self.channels = channels; self.batch = batch
        let count = (batch * height * width + slackPixels) * channels
        self.count = count
        pointer = TensorMemory.shared.allocateFloats(count)
        let dst = pointer
        Parallel.forEach(count: batch * height, workers: Parallel.workers(for: count, minWorkPerThread: 1 << 20)) { row in
            let n = row / height, y = row % height
            let out = dst + row * width * channels
            let sy = y - top
            guard sy >= 0, sy % dilation == 0, sy / dilation < srcHeight else {
                out.update(repeating: 0, count: width * channels)
                return
            }
            let srcRow = src + ((n * srcHeight + sy / dilation) * srcWidth) * channels
            if dilation == 1 {
                // The source row is contiguous: zero border, one copy of the covered pixels, zero border
                // (a library copy per pixel of 32–128 floats cost more in calls than in bytes).
                let x0 = min(width, max(0, left)), x1 = max(x0, min(width, left + srcWidth))
                out.update(repeating: 0, count: x0 * channels)
                (out + x0 * channels).update(from: srcRow + (x0 - left) * channels, count: (x1 - x0) * channels)
                (out + x1 * channels).update(repeating: 0, count: (width - x1) * channels)
                return
            }
            for x in 0..<width {
                let sx = x - left
                if sx >= 0, sx % dilation == 0, sx / dilation < srcWidth {
                    (out + x * channels).update(from: srcRow + (sx / dilation) * channels, count: channels)
                } else {
                    (out + x * channels).update(repeating: 0, count: channels)
                }
            }
        }
        (pointer + batch * height * width * channels).update(repeating: 0, count: slackPixels * channels)
    }

    func deallocate() { TensorMemory.shared.deallocateFloats(pointer, count: count) }
}

/// Output channels per packed weight block, and the most floats a packed block may take (8 MB).
let convBlockColumns = 256
let convMaxPackedFloats = 2_097_152
/// Row tiles per super-tile: the tiles that share each (tap, Cin chunk) of the packed weights while that
/// chunk (at most 384 x 256 floats) sits in L2. Their C block (96 x 256 floats) lives in a worker scratch.
let convTilesPerSuperTile = 8
/// Largest Cin chunk per kernel call. The super-tile loop runs sliver-outer: each weight sliver chunk
/// (at most 384 x 32 floats) is used by all the super-tile's row tiles while it is hot (measured better
/// than tile-outer, and than 192- or 512-float chunks).
let convMaxKC = 384
/// Up to this K (taps x Cin) the forward pass gathers im2col rows instead of running per-tap K steps.
let convColumnsMaxK = 64
/// Below this width the weight gradient gathers each tap's rows instead of running on the padded grid
/// (whose kw - 1 junk columns per row would cost more than the gather).
let convGridMinWidth = 20
/// Up to this many row tiles the weights are read in place (see `gemmDirectBMaxRowTiles`).
let convDirectWeightMaxTiles = 32

/// Fills one packed weight sliver: output channels `j0..<j0+nr` as `[taps * cin][nr]`, zero-padded (what
/// `packConvWeight` does for an F32 weight; a 4-bit weight decodes straight into the sliver).
typealias ConvWeightPacker = (_ j0: Int, _ nr: Int, _ dst: UnsafeMutablePointer<Float>) -> Void

/// `out[n, oy, ox, :] = bias + sum_{dy, dx} xpad[n, oy*s + dy, ox*s + dx, :] · w[dy, dx]` for an already padded
/// input; `w` is `[kh, kw, Cin, Cout]` and `out` is `[N, Ho, Wo, Cout]`. With `packer`, the slivers come from it
/// (never read in place) and `weight` is not read.
func convImplicitGEMM(_ x: PaddedActivation, kernelHeight kh: Int, kernelWidth kw: Int, stride s: Int,
                      outHeight ho: Int, outWidth wo: Int, weight: UnsafePointer<Float>?, outChannels cout: Int,
                      bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, packer: ConvWeightPacker? = nil) {
    let plan = ConvPlan(x, kernelHeight: kh, kernelWidth: kw, stride: s, outHeight: ho, outWidth: wo,
                        weight: weight, outChannels: cout, bias: bias, output: output, packedOnly: packer != nil)
    let nr = plan.tile.nr, threads = plan.threads
    KernelWorkspacePool.shared.with { ws in
        ws.reserve(sharedCount: plan.nc * plan.taps * plan.cin, workers: threads,
                   perWorkerCount: plan.tilesPerSuper * plan.tile.mr * plan.nc)
        let packed = ws.shared
        var jc = 0
        while jc < cout {
            let ncur = min(plan.nc, cout - jc), slivers = (ncur + nr - 1) / nr
            let block = ConvPlan.Block(jc: jc, columns: ncur, slivers: slivers, packed: packed)
            if !plan.directWeights {
                Parallel.forChunks(count: slivers, workers: min(threads, slivers), chunksPerWorker: 2) { _, range in
                    for sv in range {
                        if let packer {
                            packer(jc + sv * nr, nr, packed + sv * plan.sliverFloats)
                        } else {
                            packConvWeight(weight!, taps: plan.taps, cin: plan.cin, cout: cout, j0: jc + sv * nr,
                                           nr: nr, into: packed + sv * plan.sliverFloats)
                        }
                    }
                }
            }
            // Too few super-tiles for the threads: also split the block's slivers.
            let groups = threads == 1 || plan.superTiles >= 2 * threads ? 1 : min(slivers, threads)
            Parallel.forChunks(count: plan.superTiles * groups, workers: threads, chunksPerWorker: 8) { w, range in
                for item in range {
                    let g = item % groups
                    let svRange = (g * slivers / groups)..<((g + 1) * slivers / groups)
                    plan.multiply(superTile: item / groups, slivers: svRange, block, scratch: ws.worker(w))
                    plan.store(superTile: item / groups, slivers: svRange, block, scratch: ws.worker(w))
                }
            }
            jc += ncur
        }
    }
}

/// The blocking of one implicit-GEMM convolution and the work of one super-tile.
///
/// Row segments: with stride 1 a segment is a whole image on the padded-width grid (Ho x Wp positions, the
/// last kw - 1 of each row junk); with stride s a segment is one output row (Wo positions, A rows s*Cin
/// apart). Row tiles of MR positions never cross segments; `tilesPerSuper` consecutive ones form a
/// super-tile, whose C block accumulates in a worker scratch of `tilesPerSuper*MR x slivers*NR` floats.
/// A class for the reason given at `GEMMOperands`.
final class ConvPlan {
    /// One block of output channels: columns `jc..<jc+columns` in `slivers` NR-wide slivers.
    struct Block {
        let jc: Int, columns: Int, slivers: Int
        let packed: UnsafeMutablePointer<Float>
    }

    /// 24x16 for at most 16 output channels (a LoRA down convolution, an RGB output), else 12x32.
    let tile: GEMMTile
    let x: UnsafePointer<Float>
    let kh: Int, kw: Int, s: Int, ho: Int, wo: Int, hp: Int, wp: Int, cin: Int, cout: Int, taps: Int
    let kc: Int, nc: Int, sliverFloats: Int, lda: Int
    let segments: Int, tilesPerSegment: Int, tilesPerSuper: Int, superPerSegment: Int, superTiles: Int
    let threads: Int
    /// Few row tiles (small feature maps, wide channels): the weights are read in place, not packed.
    let directWeights: Bool
    let weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>

    init(_ xpad: PaddedActivation, kernelHeight: Int, kernelWidth: Int, stride: Int, outHeight: Int, outWidth: Int,
         weight: UnsafePointer<Float>?, outChannels: Int, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
         packedOnly: Bool = false) {
        tile = outChannels <= 16 ? GEMMTile.t24x16 : GEMMTile.t12x32
        let mr = tile.mr, nr = tile.nr
        x = UnsafePointer(xpad.pointer); hp = xpad.height; wp = xpad.width; cin = xpad.channels
        kh = kernelHeight; kw = kernelWidth; s = stride; ho = outHeight; wo = outWidth; cout = outChannels
        self.weight = weight; self.bias = bias; self.output = output
        taps = kh * kw
        let kBlocks = (cin + convMaxKC - 1) / convMaxKC
        kc = (cin + kBlocks - 1) / kBlocks
        sliverFloats = taps * cin * nr
        let coutPadded = (cout + nr - 1) / nr * nr
        nc = min(coutPadded, convBlockColumns, max(nr, convMaxPackedFloats / (taps * cin) / nr * nr))
        lda = s * cin
        segments = s == 1 ? xpad.batch : xpad.batch * ho
        tilesPerSegment = ((s == 1 ? ho * wp : wo) + mr - 1) / mr
        let tiles = segments * tilesPerSegment
        threads = Parallel.workers(for: 2 * tiles * mr * coutPadded * cin * taps, minWorkPerThread: gemmMinFlopsPerThread)
        tilesPerSuper = max(1, min(convTilesPerSuperTile, tiles / (2 * threads)))
        superPerSegment = (tilesPerSegment + tilesPerSuper - 1) / tilesPerSuper
        superTiles = segments * superPerSegment
        directWeights = !packedOnly && tiles <= convDirectWeightMaxTiles && cout % nr == 0
    }

    /// First tile index and tile count of super-tile `st` within its segment.
    func tiles(of st: Int) -> (first: Int, count: Int) {
        let first = (st % superPerSegment) * tilesPerSuper
        return (first, min(tilesPerSuper, tilesPerSegment - first))
    }

    /// Accumulates super-tile `st` times the weight slivers `svRange` of `block` into `scratch`.
    func multiply(superTile st: Int, slivers svRange: Range<Int>, _ block: Block, scratch: UnsafeMutablePointer<Float>) {
        let mr = tile.mr, nr = tile.nr, ldc = block.slivers * nr
        let seg = st / superPerSegment, (t0, count) = tiles(of: st)
        let aSeg = s == 1 ? x + seg * hp * wp * cin : x + ((seg / ho * hp + seg % ho * s) * wp) * cin
        for tap in 0..<taps {
            let aTap = aSeg + ((tap / kw) * wp + tap % kw) * cin
            var k0 = 0
            while k0 < cin {
                let kcur = min(kc, cin - k0)
                for sv in svRange {
                    let b = directWeights
                        ? weight! + (tap * cin + k0) * cout + block.jc + sv * nr
                        : UnsafePointer(block.packed + sv * sliverFloats + (tap * cin + k0) * nr)
                    for ti in 0..<count {
                        tile.direct(kcur, aTap + (t0 + ti) * mr * lda + k0, lda, b, directWeights ? cout : nr,
                                    scratch + ti * mr * ldc + sv * nr, ldc, tap > 0 || k0 > 0)
                    }
                }
                k0 += kcur
            }
        }
    }

    /// Copies the valid rows of super-tile `st` (columns of `svRange`) from `scratch` to the output, adding bias.
    func store(superTile st: Int, slivers svRange: Range<Int>, _ block: Block, scratch: UnsafeMutablePointer<Float>) {
        let mr = tile.mr, nr = tile.nr, ldc = block.slivers * nr, jc = block.jc
        let seg = st / superPerSegment, (t0, count) = tiles(of: st)
        let jLo = svRange.lowerBound * nr, jHi = min(svRange.upperBound * nr, block.columns)
        for r in 0..<(count * mr) {
            let p = t0 * mr + r
            let n: Int, oy: Int, ox: Int
            if s == 1 {
                n = seg; oy = p / wp; ox = p % wp
                if oy >= ho || ox >= wo { continue }
            } else {
                n = seg / ho; oy = seg % ho; ox = p
                if ox >= wo { break }
            }
            let dst = output + ((n * ho + oy) * wo + ox) * cout + jc, src = scratch + r * ldc
            if let bias {
                for j in jLo..<jHi { dst[j] = src[j] + bias[jc + j] }
            } else {
                (dst + jLo).update(from: src + jLo, count: jHi - jLo)
            }
        }
    }
}

/// Packs output channels `j0..<j0+nr` of a `[taps, cin, cout]` weight as `[taps * cin][nr]`, zero-padded.
func packConvWeight(_ w: UnsafePointer<Float>, taps: Int, cin: Int, cout: Int, j0: Int, nr: Int,
                    into dst: UnsafeMutablePointer<Float>) {
    let valid = min(nr, cout - j0)
    for r in 0..<(taps * cin) {
        let row = dst + r * nr, src = w + r * cout + j0
        if valid == nr {
            copyVectors(from: src, to: row, count: nr, scale: 1)
        } else {
            for j in 0..<valid { row[j] = src[j] }
            (row + valid).update(repeating: 0, count: nr - valid)
        }
    }
}

/// Forward convolution on raw NHWC pointers (shapes already checked).
func conv2dForward(_ g: Conv2DShape, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                   bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
    if let tile = winogradTile(g) {
        winogradConv2dForward(g, tile: tile, input: input, weight: weight, bias: bias, output: output)
        return
    }
    let cout = g.outChannels
    /// `output = rows · weight (+ bias)` with `rows` [pixels, k] and the weight read as a [k, Cout] matrix.
    func gemmOverPixels(_ rows: UnsafePointer<Float>, k: Int) {
        let pixels = g.batch * g.outHeight * g.outWidth
        if let bias {
            for r in 0..<pixels { (output + r * cout).update(from: bias, count: cout) }
        }
        sgemm(transA: false, transB: false, m: pixels, n: cout, k: k, alpha: 1, a: rows, lda: k, b: weight,
              ldb: cout, beta: bias == nil ? 0 : 1, c: output, ldc: cout)
    }
    lowerConvForward(g, input: input, gemmOverPixels: gemmOverPixels) { xpad in
        convImplicitGEMM(xpad, kernelHeight: g.kernelHeight, kernelWidth: g.kernelWidth, stride: g.stride,
                         outHeight: g.outHeight, outWidth: g.outWidth, weight: weight, outChannels: cout,
                         bias: bias, output: output)
    }
}

/// The forward convolution lowered to GEMMs, for every weight storage (F32, 4-bit): a 1×1 convolution is one GEMM
/// over the pixels (`gemmOverPixels(input, Cin)`); otherwise the input is padded and, with few input channels (an
/// RGB image, a 4-channel latent: per-tap K steps of Cin would be all overhead), the taps × Cin window of every
/// output pixel is gathered into one row (im2col) for a single GEMM with K = taps · Cin — the [kh, kw, Cin, Cout]
/// weight already is that K × Cout matrix; else `implicitGEMM` runs over the padded input.
func lowerConvForward(_ g: Conv2DShape, input: UnsafePointer<Float>,
                      gemmOverPixels: (_ rows: UnsafePointer<Float>, _ k: Int) -> Void,
                      implicitGEMM: (PaddedActivation) -> Void) {
    let cin = g.inChannels, taps = g.kernelHeight * g.kernelWidth
    if g.isPointwise {
        gemmOverPixels(input, cin)
        return
    }
    let xpad = PaddedActivation(input, batch: g.batch, srcHeight: g.height, srcWidth: g.width, channels: cin,
                                height: g.height + 2 * g.padding, width: g.width + 2 * g.padding,
                                top: g.padding, left: g.padding, dilation: 1,
                                slackPixels: (GEMMTile.maxMR + 1) * g.stride + g.kernelWidth)
    defer { xpad.deallocate() }
    if taps * cin <= convColumnsMaxK {
        let pixels = g.batch * g.outHeight * g.outWidth
        let columnsBuffer = ScratchBuffer<Float>(count: pixels * taps * cin), columns = columnsBuffer.pointer
        defer { columnsBuffer.release() }
        for tap in 0..<taps {
            gatherTapRows(xpad.pointer, batch: g.batch, height: g.outHeight, width: g.outWidth,
                          paddedHeight: xpad.height, paddedWidth: xpad.width, channels: cin,
                          dy: tap / g.kernelWidth, dx: tap % g.kernelWidth, stride: g.stride,
                          into: columns + tap * cin, rowStride: taps * cin)
        }
        gemmOverPixels(columns, taps * cin)
        return
    }
    implicitGEMM(xpad)
}

/// The output gradient dilated by the stride and re-padded for the stride-1 convolution that gives the input
/// gradient (`[batch, height + kh - 1, width + kw - 1, Cout]`), and whether that convolution should run tap by tap
/// (few pixels, many channels: one GEMM per tap on the gathered gradient rows) rather than as one implicit GEMM.
func paddedOutputGradient(_ g: Conv2DShape, _ gradOutput: UnsafePointer<Float>) -> (padded: PaddedActivation, byTaps: Bool) {
    let kh = g.kernelHeight, kw = g.kernelWidth
    let hp = g.height + kh - 1, wp = g.width + kw - 1
    let padded = PaddedActivation(gradOutput, batch: g.batch, srcHeight: g.outHeight, srcWidth: g.outWidth,
                                  channels: g.outChannels, height: hp, width: wp,
                                  top: kh - 1 - g.padding, left: kw - 1 - g.padding, dilation: g.stride,
                                  slackPixels: max(GEMMTile.maxMR + 1 + kw, (kh - 1) * wp + kw))
    return (padded, g.batch * g.height * wp <= convDirectWeightMaxTiles * GEMMTile.t12x32.mr)
}

/// Input gradient: a stride-1 convolution of the dilated, re-padded output gradient with the weight flipped
/// in space and transposed in channels (`w'[dy, dx, co, ci] = w[kh-1-dy, kw-1-dx, ci, co]`).
func conv2dBackwardInput(_ g: Conv2DShape, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>) {
    let kh = g.kernelHeight, kw = g.kernelWidth, cin = g.inChannels, cout = g.outChannels
    if g.isPointwise {   // dX = dY · Wᵀ
        sgemm(transA: false, transB: true, m: g.batch * g.height * g.width, n: cin, k: cout, alpha: 1,
              a: gradOutput, lda: cout, b: weight, ldb: cout, beta: 0, c: gradInput, ldc: cin)
        return
    }
    if g.stride > 1 {
        conv2dBackwardInputByPhases(g, gradOutput: gradOutput, weight: weight, gradInput: gradInput)
        return
    }
    if let tile = winogradTile(g) {
        winogradConv2dBackwardInput(g, tile: tile, gradOutput: gradOutput, weight: weight, gradInput: gradInput)
        return
    }
    let (padded, byTaps) = paddedOutputGradient(g, gradOutput)
    defer { padded.deallocate() }
    let hp = padded.height, wp = padded.width
    let pixels = g.batch * g.height * g.width
    if byTaps {
        // Few pixels, many channels: dXᵀ (Cin x pixels) = Σ_tap W[flipped tap] (Cin x Cout, read in place) ·
        // dY_tapᵀ, where row p of dY_tap is the padded gradient pixel that tap reads for input pixel p.
        // Only the small gradient gets gathered and transposed, never the large weight.
        let dxTBuffer = ScratchBuffer<Float>(count: cin * pixels), dxT = dxTBuffer.pointer
        let rowsBuffer = ScratchBuffer<Float>(count: pixels * cout), rows = rowsBuffer.pointer
        defer { dxTBuffer.release(); rowsBuffer.release() }
        for tap in 0..<(kh * kw) {
            let dy = tap / kw, dx = tap % kw
            gatherTapRows(padded.pointer, batch: g.batch, height: g.height, width: g.width, paddedHeight: hp,
                          paddedWidth: wp, channels: cout, dy: dy, dx: dx, stride: 1, into: rows)
            sgemm(transA: false, transB: true, m: cin, n: pixels, k: cout, alpha: 1,
                  a: weight + ((kh - 1 - dy) * kw + (kw - 1 - dx)) * cin * cout, lda: cout,
                  b: rows, ldb: cout, beta: tap == 0 ? 0 : 1, c: dxT, ldc: pixels)
        }
        transposeMatrix(dxT, rows: cin, cols: pixels, into: gradInput)
        return
    }
    let flipped = flippedTransposedWeight(weight, g)
    defer { flipped.release() }
    convImplicitGEMM(padded, kernelHeight: kh, kernelWidth: kw, stride: 1, outHeight: g.height, outWidth: g.width,
                     weight: flipped.pointer, outChannels: cin, bias: nil, output: gradInput)
}

/// The weight of the input gradient's convolution: `g`'s `[kh, kw, Cin, Cout]` weight flipped in space and
/// transposed in channels, `w'[dy, dx, co, ci] = w[kh-1-dy, kw-1-dx, ci, co]` (`[kh, kw, Cout, Cin]`); the caller
/// releases the buffer.
func flippedTransposedWeight(_ weight: UnsafePointer<Float>, _ g: Conv2DShape) -> ScratchBuffer<Float> {
    let kh = g.kernelHeight, kw = g.kernelWidth, cin = g.inChannels, cout = g.outChannels
    let flipped = ScratchBuffer<Float>(count: kh * kw * cin * cout)
    for dy in 0..<kh {
        for dx in 0..<kw {
            let src = weight + ((kh - 1 - dy) * kw + (kw - 1 - dx)) * cin * cout
            transposeMatrix(src, rows: cin, cols: cout, into: flipped.pointer + (dy * kw + dx) * cout * cin)
        }
    }
    return flipped
}

/// Input gradient of a strided convolution, one stride phase at a time (no zero-dilated gradient).
///
/// Input pixels with `(y + p) % s == ry` and `(x + p) % s == rx` receive exactly the taps `dy = ry + s*j`,
/// `dx = rx + s*i`, from output pixel `(Y - j, X - i)` where `y = ry - p + s*Y`. So each phase is a stride-1
/// convolution of the re-padded gradient with the phase's flipped, transposed sub-kernel, whose result is
/// scattered to that phase's pixels. With `transposedPacker` (a 4-bit weight), the sub-kernel's slivers come
/// from `transposedPacker(sourceTaps)`, whose tap t is the transposed weight tap `sourceTaps[t]`, and `weight` is
/// not read.
func conv2dBackwardInputByPhases(_ g: Conv2DShape, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>?,
                                 gradInput: UnsafeMutablePointer<Float>,
                                 transposedPacker: ((_ sourceTaps: [Int]) -> ConvWeightPacker)? = nil) {
    let s = g.stride, p = g.padding, cin = g.inChannels, cout = g.outChannels
    /// Taps of a phase (`ceil((k - r) / s)`) and its first phase index `Y0 = ceil((p - r) / s)` with `y >= 0`.
    func phase(_ r: Int, kernel k: Int, size: Int) -> (taps: Int, first: Int, count: Int) {
        let taps = r < k ? (k - r + s - 1) / s : 0
        let first = p - r > 0 ? (p - r + s - 1) / s : -((r - p) / s)
        let last = (size - 1 - r + p) >= 0 ? (size - 1 - r + p) / s : first - 1   // largest Y with y < size
        return (taps, first, max(0, last - first + 1))
    }
    for ry in 0..<s {
        for rx in 0..<s {
            let (th, y0, hy) = phase(ry, kernel: g.kernelHeight, size: g.height)
            let (tw, x0, wx) = phase(rx, kernel: g.kernelWidth, size: g.width)
            if hy == 0 || wx == 0 { continue }
            let outBuffer = ScratchBuffer<Float>(count: g.batch * hy * wx * cin), out = outBuffer.pointer
            defer { outBuffer.release() }
            if th == 0 || tw == 0 {
                out.update(repeating: 0, count: g.batch * hy * wx * cin)
            } else {
                // Flipped, transposed sub-kernel: w'[j', i'] = w[ry + s*(th-1-j'), rx + s*(tw-1-i')]ᵀ (Cout x Cin).
                let sources = (0..<(th * tw)).map { t in
                    (ry + s * (th - 1 - t / tw)) * g.kernelWidth + rx + s * (tw - 1 - t % tw)
                }
                let subBuffer = ScratchBuffer<Float>(count: transposedPacker == nil ? th * tw * cout * cin : 0)
                let sub = subBuffer.pointer
                defer { subBuffer.release() }
                if transposedPacker == nil {
                    for (t, source) in sources.enumerated() {
                        transposeMatrix(weight! + source * cin * cout, rows: cin, cols: cout, into: sub + t * cout * cin)
                    }
                }
                let hp = hy + th - 1, wp = wx + tw - 1
                let padded = PaddedActivation(gradOutput, batch: g.batch, srcHeight: g.outHeight, srcWidth: g.outWidth,
                                              channels: cout, height: hp, width: wp, top: th - 1 - y0,
                                              left: tw - 1 - x0, dilation: 1,
                                              slackPixels: GEMMTile.maxMR + 1 + tw)
                defer { padded.deallocate() }
                convImplicitGEMM(padded, kernelHeight: th, kernelWidth: tw, stride: 1, outHeight: hy, outWidth: wx,
                                 weight: sub, outChannels: cin, bias: nil, output: out,
                                 packer: transposedPacker.map { $0(sources) })
            }
            for n in 0..<g.batch {
                for yy in 0..<hy {
                    let y = ry - p + s * (y0 + yy)
                    for xx in 0..<wx {
                        let x = rx - p + s * (x0 + xx)
                        (gradInput + ((n * g.height + y) * g.width + x) * cin)
                            .update(from: out + ((n * hy + yy) * wx + xx) * cin, count: cin)
                    }
                }
            }
        }
    }
}

/// Row `(n, y, x)` of `dst` (rows `rowStride` floats apart, default `channels`) = pixel
/// `(n, y*stride + dy, x*stride + dx)` of the padded activation `src` (`[batch, paddedHeight, paddedWidth, channels]`).
func gatherTapRows(_ src: UnsafePointer<Float>, batch: Int, height: Int, width: Int, paddedHeight: Int,
                   paddedWidth: Int, channels: Int, dy: Int, dx: Int, stride: Int, into dst: UnsafeMutablePointer<Float>,
                   rowStride: Int? = nil) {
    let ld = rowStride ?? channels
    for r in 0..<(batch * height * width) {
        let n = r / (height * width), y = (r / width) % height, x = r % width
        let pixel = (n * paddedHeight + y * stride + dy) * paddedWidth + x * stride + dx
        (dst + r * ld).update(from: src + pixel * channels, count: channels)
    }
}

/// `dst[c * rows + r] = src[r * cols + c]`, in 16 x 16 blocks so both sides stay in cache.
func transposeMatrix(_ src: UnsafePointer<Float>, rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>) {
    transposeBlocks(src, rows: rows, cols: cols, ld: cols, into: dst, ld: rows, scale: 1)
}

/// Weight gradient: for each tap, `dW[tap] (Cin x Cout) = X_tapᵀ · dY`, where row r of `X_tap` is the input
/// pixel that tap reads for output position r.
func conv2dBackwardWeight(_ g: Conv2DShape, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                          gradWeight: UnsafeMutablePointer<Float>) {
    let kh = g.kernelHeight, kw = g.kernelWidth, cin = g.inChannels, cout = g.outChannels
    let s = g.stride, ho = g.outHeight, wo = g.outWidth
    if g.isPointwise {   // dW = Xᵀ · dY (with ≤ 64 channels on one side, a LoRA pair's, sgemm's narrow product)
        sgemm(transA: true, transB: false, m: cin, n: cout, k: g.batch * g.height * g.width, alpha: 1,
              a: input, lda: cin, b: gradOutput, ldb: cout, beta: 0, c: gradWeight, ldc: cout)
        return
    }
    if s == 1 && cout <= narrowWeightGradientMaxChannels {
        narrowWeightGradient(g, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
        return
    }
    let xpad = PaddedActivation(input, batch: g.batch, srcHeight: g.height, srcWidth: g.width, channels: cin,
                                height: g.height + 2 * g.padding, width: g.width + 2 * g.padding,
                                top: g.padding, left: g.padding, dilation: 1,
                                slackPixels: (kh - 1) * (g.width + 2 * g.padding) + kw)
    defer { xpad.deallocate() }
    let hp = xpad.height, wp = xpad.width
    // Each tap's Xᵀ·dY is contiguous: with ≤ 64 channels on one side (a strided LoRA down convolution) sgemm runs it
    // on the narrow kernel (`narrowTransposedProduct`).
    if s == 1 && g.width >= convGridMinWidth {
        // dY placed on the padded grid [N, Hp, Wp, Cout] (zeros elsewhere): every tap is one GEMM whose
        // A rows are the padded input shifted by the tap's offset.
        let grid = PaddedActivation(gradOutput, batch: g.batch, srcHeight: ho, srcWidth: wo, channels: cout,
                                    height: hp, width: wp, top: 0, left: 0, dilation: 1, slackPixels: 0)
        defer { grid.deallocate() }
        forEachTap(g, k: g.batch * hp * wp) { _, tap in
            let offset = ((tap / kw) * wp + tap % kw) * cin
            sgemm(transA: true, transB: false, m: cin, n: cout, k: g.batch * hp * wp, alpha: 1,
                  a: xpad.pointer + offset, lda: cin, b: grid.pointer, ldb: cout, beta: 0,
                  c: gradWeight + tap * cin * cout, ldc: cout)
        }
        return
    }
    // Strided or narrow: gather each tap's input rows (no junk grid positions in K), one buffer per worker.
    let rows = g.batch * ho * wo
    let gatheredBuffer = ScratchBuffer<Float>(count: rows * cin * tapWorkers(g, k: rows))
    defer { gatheredBuffer.release() }
    forEachTap(g, k: rows) { worker, tap in
        let gathered = gatheredBuffer.pointer + worker * rows * cin
        gatherTapRows(xpad.pointer, batch: g.batch, height: ho, width: wo, paddedHeight: hp, paddedWidth: wp,
                      channels: cin, dy: tap / kw, dx: tap % kw, stride: s, into: gathered)
        sgemm(transA: true, transB: false, m: cin, n: cout, k: rows, alpha: 1, a: gathered, lda: cin,
              b: gradOutput, ldb: cout, beta: 0, c: gradWeight + tap * cin * cout, ldc: cout)
    }
}

/// Most output channels for which a stride-1 weight gradient runs `narrowWeightGradient` (a LoRA down
/// convolution's rank; a 1×1 one's narrow side is sgemm's, `narrowTransposedProduct`). The
/// per-tap GEMMs (`Cᵀ = dYᵀ · X_tap`, 8–64 rows) spent more time padding X, placing dY on the padded grid, packing dY
/// once per tap and in the driver than in the microkernel: the embedded model's 64×64×32 → 8 gradient (batch 2) ran
/// at 35–68 GFLOP/s, the narrow kernel at 190–210 (`bench kernels --filter dW`: 1.2–3× faster up to 64 output
/// channels, SD-1.5's widest maps included; not measured beyond).
let narrowWeightGradientMaxChannels = 64

/// Pieces each tap's sum over the output rows is cut into (then added in order): work items for the threads
/// that do not depend on how many threads there are, so neither do the results.
let narrowWeightGradientRowParts = 2

/// Above this many bytes of input and output gradient the rows are cut into chunks of about
/// `narrowWeightGradientChunkBytes` instead of two halves, and each chunk is walked for every channel block and tap
/// while it is in cache: with halves, every (tap, channel block) item streamed half of the whole input again, and
/// base-model training's maps (batch 16: 64×64×96 → 32 at 84 GFLOP/s, 32×32×192 → 64 at 149) were bound by memory
/// traffic. Below it (every LoRA shape of the main job, its pairs' Aᵀ·B included: at most 4.3 MB; SD-1.5's LoCon
/// gradients at batch 1: at most 5.5 MB) the two halves stay, and with them the sums.
let narrowWeightGradientCacheBytes = 8 << 20
let narrowWeightGradientChunkBytes = 2 << 20

/// The row parts of a narrow weight gradient: a function of the shape alone.
func narrowWeightGradientParts(_ g: Conv2DShape) -> Int {
    let rows = g.batch * g.outHeight
    let bytesPerRow = 4 * (g.width * g.inChannels + g.outWidth * g.outChannels)
    guard rows * bytesPerRow > narrowWeightGradientCacheBytes else { return narrowWeightGradientRowParts }
    let rowsPerChunk = max(1, narrowWeightGradientChunkBytes / bytesPerRow)
    return max(narrowWeightGradientRowParts, (rows + rowsPerChunk - 1) / rowsPerChunk)
}

/// `dW[tap][ci][co] = Σ_pixels x[pixel + tap offset][ci] · dY[pixel][co]` for a stride-1 convolution with few
/// output channels, straight from the unpadded input: per (tap, 32 input channels, 8 output channels, part of
/// the rows) 16 accumulators (input channels in the lanes, one per output channel and half) walk the output pixels
/// whose tap lands inside the input, each pixel two loads of x, eight broadcasts of dY and 16 multiply-adds.
func narrowWeightGradient(_ g: Conv2DShape, input x: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
                          gradWeight dw: UnsafeMutablePointer<Float>) {
    let kh = g.kernelHeight, kw = g.kernelWidth, cin = g.inChannels, cout = g.outChannels, pad = g.padding
    let h = g.height, w = g.width, ho = g.outHeight, wo = g.outWidth, taps = kh * kw
    let rows = g.batch * ho, pixels = rows * wo
    let coBlocks = (cout + 7) / 8, ciBlocks = (cin + 31) / 32, parts = narrowWeightGradientParts(g)
    // dY with 8 channels per block: read in place when Cout is a multiple of 8, else copied zero-padded.
    let padded = cout % 8 != 0
    let dyBuffer = ScratchBuffer<Float>(count: padded ? pixels * coBlocks * 8 : 0)
    let partialBuffer = ScratchBuffer<Float>(count: parts * taps * cin * cout)
    defer { dyBuffer.release(); partialBuffer.release() }
    let dyStride = padded ? coBlocks * 8 : cout
    if padded {
        dyBuffer.pointer.initialize(repeating: 0, count: pixels * dyStride)
        for r in 0..<pixels { (dyBuffer.pointer + r * dyStride).update(from: dy + r * cout, count: cout) }
    }
    let d: UnsafePointer<Float> = padded ? UnsafePointer(dyBuffer.pointer) : dy
    let partial = partialBuffer.pointer
    let items = taps * ciBlocks * coBlocks * parts
    Parallel.forEachChunked(count: items, workers: Parallel.workers(for: g.flops, minWorkPerThread: gemmMinFlopsPerThread)) { item in
        // Row part outermost, then input-channel block, tap, output-channel block: a thread's consecutive items
        // read the same rows (and the same input channels) while they are in cache.
        let cb = item % coBlocks, tap = (item / coBlocks) % taps, ib = (item / (coBlocks * taps)) % ciBlocks
        let part = item / (coBlocks * taps * ciBlocks), ty = tap / kw, tx = tap % kw
        let ci0 = ib * 32, lanes0 = min(16, cin - ci0), lanes1 = max(0, min(16, cin - ci0 - 16))
        // Output columns whose input column x + tx − pad lies inside the input.
        let xlo = max(0, pad - tx), xhi = min(wo, w + pad - tx)
        var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec(), a4 = Vec(), a5 = Vec(), a6 = Vec(), a7 = Vec()
        var b0 = Vec(), b1 = Vec(), b2 = Vec(), b3 = Vec(), b4 = Vec(), b5 = Vec(), b6 = Vec(), b7 = Vec()
        for row in (rows * part / parts)..<(rows * (part + 1) / parts) where xlo < xhi {
            let n = row / ho, iy = row % ho + ty - pad
            guard iy >= 0 && iy < h else { continue }
            var px = x + ((n * h + iy) * w + xlo + tx - pad) * cin + ci0
            var pd = d + (row * wo + xlo) * dyStride + cb * 8
            for _ in xlo..<xhi {
                let v = loadN(px, lanes0), u = lanes1 > 0 ? loadN(px + 16, lanes1) : Vec()
                var e = Vec(repeating: pd[0]); a0 = fmadd(a0, v, e); b0 = fmadd(b0, u, e)
                e = Vec(repeating: pd[1]); a1 = fmadd(a1, v, e); b1 = fmadd(b1, u, e)
                e = Vec(repeating: pd[2]); a2 = fmadd(a2, v, e); b2 = fmadd(b2, u, e)
                e = Vec(repeating: pd[3]); a3 = fmadd(a3, v, e); b3 = fmadd(b3, u, e)
                e = Vec(repeating: pd[4]); a4 = fmadd(a4, v, e); b4 = fmadd(b4, u, e)
                e = Vec(repeating: pd[5]); a5 = fmadd(a5, v, e); b5 = fmadd(b5, u, e)
                e = Vec(repeating: pd[6]); a6 = fmadd(a6, v, e); b6 = fmadd(b6, u, e)
                e = Vec(repeating: pd[7]); a7 = fmadd(a7, v, e); b7 = fmadd(b7, u, e)
                px += cin; pd += dyStride
            }
        }
        // partial[part][tap][ci][co] for this block's channels.
        let out = partial + (part * taps + tap) * cin * cout
        withUnsafeTemporaryAllocation(of: Vec.self, capacity: 16) { buffer in
            let sums = buffer.baseAddress!   // Vec is trivial: plain stores initialise it
            sums[0] = a0; sums[1] = a1; sums[2] = a2; sums[3] = a3; sums[4] = a4; sums[5] = a5; sums[6] = a6; sums[7] = a7
            sums[8] = b0; sums[9] = b1; sums[10] = b2; sums[11] = b3; sums[12] = b4; sums[13] = b5; sums[14] = b6; sums[15] = b7
            for k in 0..<min(8, cout - cb * 8) {
                let co = cb * 8 + k
                for l in 0..<lanes0 { out[(ci0 + l) * cout + co] = sums[k][l] }
                for l in 0..<lanes1 { out[(ci0 + 16 + l) * cout + co] = sums[8 + k][l] }
            }
        }
    }
    let count = taps * cin * cout
    dw.update(from: partial, count: count)
    for part in 1..<parts {
        let src = partial + part * count
        for i in 0..<count { dw[i] += src[i] }
    }
}

/// Largest Cin·Cout for which the weight gradient runs its taps side by side, one single-threaded GEMM each.
/// Such a GEMM (C of Cin x Cout, K = pixels) has too few C tiles to split (the GEMM driver leaves it on one
/// thread: measured 25–38 GFLOP/s per call on the toy model's 32–128-channel convs), while the taps are
/// independent and write disjoint slices of dW, so every element is summed exactly as before.
let convWeightTapParallelMaxC = 128 * 128

/// Threads for the taps of a weight gradient whose per-tap GEMMs have `k` rows (1: taps one after another,
/// each GEMM choosing its own threads).
func tapWorkers(_ g: Conv2DShape, k: Int) -> Int {
    let taps = g.kernelHeight * g.kernelWidth
    guard g.inChannels * g.outChannels <= convWeightTapParallelMaxC else { return 1 }
    return min(taps, Parallel.workers(for: 2 * taps * g.inChannels * g.outChannels * k,
                                      minWorkPerThread: gemmMinFlopsPerThread))
}

/// Calls `body(worker, tap)` for every tap: in parallel with single-threaded GEMMs inside when `tapWorkers`
/// says so, else in order on the calling thread.
func forEachTap(_ g: Conv2DShape, k: Int, _ body: (Int, Int) -> Void) {
    let taps = g.kernelHeight * g.kernelWidth, workers = tapWorkers(g, k: k)
    if workers == 1 {
        for tap in 0..<taps { body(0, tap) }
        return
    }
    Parallel.forChunks(count: taps, workers: workers, chunksPerWorker: taps) { w, range in
        Parallel.$maxThreads.withValue(1) {
            for tap in range { body(w, tap) }
        }
    }
}

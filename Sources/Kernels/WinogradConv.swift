// WinogradConv: stride-1 3×3 convolutions as Winograd F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016), for the forward pass and the input gradient.
//
// Each 2×2 block of outputs (a tile) comes from the 4×4 input patch d under it:
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
// so per pair of channels the 9 taps × 4 outputs = 36 multiplications become the 16 of the ⊙. Summed over
// input channels, the ⊙ is 16 GEMMs, one per position ξ of the 4×4 transformed tile:
//     M_ξ [tiles × Cout] = V_ξ [tiles × Cin] · U_ξ [Cin × Cout],
// with V = Bᵀ d B (the input transform, additions only), U = G g Gᵀ (the weight transform, additions and
// halvings) and the output transform Aᵀ M A (additions only). 16/36 of the direct convolution's FLOPs.
//
// Tiles run in chunks of at most `winogradMaxChunkTiles` per worker: transform the chunk's patches, run the
// 16 GEMMs single-threaded (at that height the GEMM reads U in place, no packing), transform back, so the
// chunk's V and M stay in the core's caches. With both channel counts large (U bigger than many chunks'
// V and M) every chunk would stream all of U again; then all tiles are transformed at once and each ξ's GEMM
// runs over all of them on every thread. Every tile is computed from its own patch in a fixed order, and a
// GEMM row does not depend on how many rows are multiplied with it, so results do not depend on the chunking
// or the thread count.
import TensorBase

/// Fewest input and output channels for which Winograd runs (below that the transforms cost more than the
/// saved multiplications, and the implicit GEMM's im2col path takes the narrow inputs).
let winogradMinChannels = 8
/// Most tiles per chunk: the height up to which the GEMM reads U in place (`gemmDirectBMaxRowTiles` × 12).
let winogradMaxChunkTiles = 192

/// Whether `g`'s forward convolution, and its input gradient, run as Winograd F(2×2, 3×3).
func winogradApplies(_ g: Conv2DShape) -> Bool {
    ConvolutionAlgorithm.winogradAllowed && g.kernelHeight == 3 && g.kernelWidth == 3 && g.stride == 1
        && g.inChannels >= winogradMinChannels && g.outChannels >= winogradMinChannels
}

/// `n` (≤ 16) floats at `p` as a vector (zeros above `n`).
@inline(__always) private func loadLanes(_ p: UnsafePointer<Float>, _ n: Int) -> Vec {
    n == 16 ? load(p) : loadPartial(p, n)
}

@inline(__always) private func storeLanes(_ v: Vec, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    if n == 16 { store(v, p) } else { storePartial(v, p, n) }
}

/// `u[ξ][ci][co]` = (G g Gᵀ)[ξ / 4][ξ % 4] with `g[dy][dx] = w[dy, dx, ci, co]` for a `[3, 3, Cin, Cout]`
/// weight; G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
func winogradTransformWeight(_ w: UnsafePointer<Float>, inChannels cin: Int, outChannels cout: Int,
                             into u: UnsafeMutablePointer<Float>) {
    let plane = cin * cout
    let half = Vec(repeating: 0.5)
    Parallel.forEachChunked(count: cin, workers: Parallel.workers(for: 40 * plane, minWorkPerThread: 1 << 20)) { ci in
        var co = 0
        while co < cout {
            let lanes = min(16, cout - co), at = ci * cout + co
            /// Column dx of G g: (g0, (g0 + g1 + g2) / 2, (g0 − g1 + g2) / 2, g2) with g_dy = w[dy, dx].
            @inline(__always) func column(_ dx: Int) -> (Vec, Vec, Vec, Vec) {
                let g0 = loadLanes(w + dx * plane + at, lanes), g1 = loadLanes(w + (3 + dx) * plane + at, lanes)
                let g2 = loadLanes(w + (6 + dx) * plane + at, lanes)
                return (g0, (g0 + g1 + g2) * half, (g0 - g1 + g2) * half, g2)
            }
            /// Row i of (G g) Gᵀ from row i of G g.
            @inline(__always) func row(_ i: Int, _ h0: Vec, _ h1: Vec, _ h2: Vec) {
                let out = u + 4 * i * plane + at
                storeLanes(h0, out, lanes)
                storeLanes((h0 + h1 + h2) * half, out + plane, lanes)
                storeLanes((h0 - h1 + h2) * half, out + 2 * plane, lanes)
                storeLanes(h2, out + 3 * plane, lanes)
            }
            let k0 = column(0), k1 = column(1), k2 = column(2)
            row(0, k0.0, k1.0, k2.0)
            row(1, k0.1, k1.1, k2.1)
            row(2, k0.2, k1.2, k2.2)
            row(3, k0.3, k1.3, k2.3)
            co += 16
        }
    }
}

/// The geometry of one Winograd convolution: `out[n, oy, ox, :] = bias + Σ_{dy,dx} x[n, oy + dy − pad,
/// ox + dx − pad, :] · w[dy, dx]`, `x` zero outside its `height × width`, over `outHeight × outWidth` outputs.
struct WinogradConvolution {
    let x: UnsafePointer<Float>
    let batch: Int, height: Int, width: Int, cin: Int, pad: Int
    let outHeight: Int, outWidth: Int, cout: Int
    /// Tiles per row, per image, in all.
    var tilesWide: Int { (outWidth + 1) / 2 }
    var tilesPerImage: Int { (outHeight + 1) / 2 * tilesWide }
    var tiles: Int { batch * tilesPerImage }

    /// V for tiles `first..<first+count`: `v[ξ * xiStride + i * cin + c]` = (Bᵀ d B)[ξ] of tile `first + i`,
    /// channel c. Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]. `zeros`: `cin` zeros.
    func transformInput(tiles first: Int, count: Int, into v: UnsafeMutablePointer<Float>, xiStride: Int,
                        zeros: UnsafePointer<Float>) {
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: 16) { patch in
            for i in 0..<count {
                let t = first + i, n = t / tilesPerImage, r = t % tilesPerImage
                let y0 = 2 * (r / tilesWide) - pad, x0 = 2 * (r % tilesWide) - pad
                for py in 0..<4 {
                    let y = y0 + py
                    for px in 0..<4 {
                        let xx = x0 + px
                        patch[4 * py + px] = y >= 0 && y < height && xx >= 0 && xx < width
                            ? x + ((n * height + y) * width + xx) * cin : zeros
                    }
                }
                let dst = v + i * cin
                var c = 0
                while c < cin {
                    let lanes = min(16, cin - c)
                    /// Column k of Bᵀ d: (d0 − d2, d1 + d2, d2 − d1, d1 − d3) with d_row = patch[row][k].
                    @inline(__always) func column(_ k: Int) -> (Vec, Vec, Vec, Vec) {
                        let d0 = loadLanes(patch[k] + c, lanes), d1 = loadLanes(patch[4 + k] + c, lanes)
                        let d2 = loadLanes(patch[8 + k] + c, lanes), d3 = loadLanes(patch[12 + k] + c, lanes)
                        return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
                    }
                    /// Row `row` of (Bᵀ d) B from row `row` of Bᵀ d.
                    @inline(__always) func row(_ row: Int, _ e0: Vec, _ e1: Vec, _ e2: Vec, _ e3: Vec) {
                        let out = dst + 4 * row * xiStride + c
                        storeLanes(e0 - e2, out, lanes)
                        storeLanes(e1 + e2, out + xiStride, lanes)
                        storeLanes(e2 - e1, out + 2 * xiStride, lanes)
                        storeLanes(e1 - e3, out + 3 * xiStride, lanes)
                    }
                    let k0 = column(0), k1 = column(1), k2 = column(2), k3 = column(3)
                    row(0, k0.0, k1.0, k2.0, k3.0)
                    row(1, k0.1, k1.1, k2.1, k3.1)
                    row(2, k0.2, k1.2, k2.2, k3.2)
                    row(3, k0.3, k1.3, k2.3, k3.3)
                    c += 16
                }
            }
        }
    }

    /// Writes the outputs of tiles `first..<first+count` from `m[ξ * xiStride + i * cout + c]`:
    /// Aᵀ M A (+ bias), Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]; a tile's row or column past the output is dropped.
    func transformOutput(tiles first: Int, count: Int, from m: UnsafePointer<Float>, xiStride: Int,
                         bias: UnsafePointer<Float>?, into output: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let t = first + i, n = t / tilesPerImage, r = t % tilesPerImage
            let oy = 2 * (r / tilesWide), ox = 2 * (r % tilesWide)
            let rows = min(2, outHeight - oy), cols = min(2, outWidth - ox)
            let out = output + ((n * outHeight + oy) * outWidth + ox) * cout
            let src = m + i * cout
            var c = 0
            while c < cout {
                let lanes = min(16, cout - c)
                /// Column k of Aᵀ M: (m0 + m1 + m2, m1 − m2 − m3) with m_row = M[4 row + k].
                @inline(__always) func column(_ k: Int) -> (Vec, Vec) {
                    let m0 = loadLanes(src + k * xiStride + c, lanes), m1 = loadLanes(src + (4 + k) * xiStride + c, lanes)
                    let m2 = loadLanes(src + (8 + k) * xiStride + c, lanes)
                    let m3 = loadLanes(src + (12 + k) * xiStride + c, lanes)
                    return (m0 + m1 + m2, m1 - m2 - m3)
                }
                /// Output row `row` of the tile from row `row` of Aᵀ M.
                @inline(__always) func row(_ row: Int, _ s0: Vec, _ s1: Vec, _ s2: Vec, _ s3: Vec, _ b: Vec) {
                    let p = out + row * outWidth * cout + c
                    storeLanes(s0 + s1 + s2 + b, p, lanes)
                    if cols == 2 { storeLanes(s1 - s2 - s3 + b, p + cout, lanes) }
                }
                let b = bias.map { loadLanes($0 + c, lanes) } ?? Vec()
                let k0 = column(0), k1 = column(1), k2 = column(2), k3 = column(3)
                row(0, k0.0, k1.0, k2.0, k3.0, b)
                if rows == 2 { row(1, k0.1, k1.1, k2.1, k3.1, b) }
                c += 16
            }
        }
    }

    /// The convolution with transformed weight `u` (`winogradTransformWeight`), into `output`
    /// (`[batch, outHeight, outWidth, cout]`).
    func run(transformedWeight u: UnsafePointer<Float>, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
        let tiles = self.tiles, cin = self.cin, cout = self.cout
        let threads = Parallel.workers(for: 32 * tiles * cin * cout, minWorkPerThread: gemmMinFlopsPerThread)
        let zerosBuffer = ScratchBuffer<Float>(count: cin), zeros = zerosBuffer.pointer
        defer { zerosBuffer.release() }
        zeros.update(repeating: 0, count: cin)
        func multiply(_ v: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, rows: Int) {
            for xi in 0..<16 {
                sgemm(transA: false, transB: false, m: rows, n: cout, k: cin, alpha: 1, a: v + xi * rows * cin, lda: cin,
                      b: u + xi * cin * cout, ldb: cout, beta: 0, c: m + xi * rows * cout, ldc: cout)
            }
        }
        // U is larger than the V and M of the chunks that would each read it again: all tiles at once.
        if cin * cout > 2 * winogradMaxChunkTiles * (cin + cout) {
            let vBuffer = ScratchBuffer<Float>(count: 16 * tiles * cin), v = vBuffer.pointer
            let mBuffer = ScratchBuffer<Float>(count: 16 * tiles * cout), m = mBuffer.pointer
            defer { vBuffer.release(); mBuffer.release() }
            Parallel.forChunks(count: tiles, workers: threads) { _, range in
                transformInput(tiles: range.lowerBound, count: range.count, into: v + range.lowerBound * cin,
                               xiStride: tiles * cin, zeros: zeros)
            }
            multiply(v, m, rows: tiles)
            Parallel.forChunks(count: tiles, workers: threads) { _, range in
                transformOutput(tiles: range.lowerBound, count: range.count, from: m + range.lowerBound * cout,
                                xiStride: tiles * cout, bias: bias, into: output)
            }
            return
        }
        // Chunks of tiles, about three per worker, each transformed, multiplied and written back by one worker.
        let chunkTiles = min(winogradMaxChunkTiles, max(12, (tiles + 3 * threads - 1) / (3 * threads)))
        let chunks = (tiles + chunkTiles - 1) / chunkTiles
        let workers = min(threads, chunks), perWorker = 16 * chunkTiles * (cin + cout)
        let scratchBuffer = ScratchBuffer<Float>(count: workers * perWorker), scratch = scratchBuffer.pointer
        defer { scratchBuffer.release() }
        Parallel.forChunks(count: chunks, workers: workers, chunksPerWorker: chunks) { worker, range in
            let v = scratch + worker * perWorker, m = v + 16 * chunkTiles * cin
            Parallel.$maxThreads.withValue(1) {
                for chunk in range {
                    let first = chunk * chunkTiles, count = min(chunkTiles, tiles - first)
                    transformInput(tiles: first, count: count, into: v, xiStride: count * cin, zeros: zeros)
                    multiply(v, m, rows: count)
                    transformOutput(tiles: first, count: count, from: m, xiStride: count * cout, bias: bias, into: output)
                }
            }
        }
    }
}

/// Forward convolution (`winogradApplies(g)`): `output = conv(input, weight) + bias`.
func winogradConv2dForward(_ g: Conv2DShape, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
    let uBuffer = ScratchBuffer<Float>(count: 16 * g.inChannels * g.outChannels), u = uBuffer.pointer
    defer { uBuffer.release() }
    winogradTransformWeight(weight, inChannels: g.inChannels, outChannels: g.outChannels, into: u)
    WinogradConvolution(x: input, batch: g.batch, height: g.height, width: g.width, cin: g.inChannels, pad: g.padding,
                        outHeight: g.outHeight, outWidth: g.outWidth, cout: g.outChannels)
        .run(transformedWeight: u, bias: bias, output: output)
}

/// Input gradient (`winogradApplies(g)`): the stride-1 convolution of the output gradient, padded by 2 − p,
/// with the weight flipped in space and transposed in channels (`w'[dy, dx, co, ci] = w[2 − dy, 2 − dx, ci, co]`).
func winogradConv2dBackwardInput(_ g: Conv2DShape, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                 gradInput: UnsafeMutablePointer<Float>) {
    let cin = g.inChannels, cout = g.outChannels
    let flippedBuffer = ScratchBuffer<Float>(count: 9 * cin * cout), flipped = flippedBuffer.pointer
    let uBuffer = ScratchBuffer<Float>(count: 16 * cin * cout), u = uBuffer.pointer
    defer { flippedBuffer.release(); uBuffer.release() }
    for tap in 0..<9 {
        transposeMatrix(weight + (8 - tap) * cin * cout, rows: cin, cols: cout, into: flipped + tap * cout * cin)
    }
    winogradTransformWeight(flipped, inChannels: cout, outChannels: cin, into: u)
    WinogradConvolution(x: gradOutput, batch: g.batch, height: g.outHeight, width: g.outWidth, cin: cout,
                        pad: 2 - g.padding, outHeight: g.height, outWidth: g.width, cout: cin)
        .run(transformedWeight: u, bias: nil, output: gradInput)
}

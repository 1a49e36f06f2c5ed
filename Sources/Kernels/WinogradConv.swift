// WinogradConv: stride-1 3×3 convolutions as Winograd F(m×m, 3×3) with m = 2 or 4 (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016), for the forward pass and the input gradient.
//
// Each m×m block of outputs (a tile) comes from the (m+2)×(m+2) input patch d under it:
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
// so per pair of channels the 9 taps × m² outputs become (m+2)² multiplications. Summed over input channels, the
// ⊙ is one GEMM per position ξ of the transformed tile:
//     M_ξ [tiles × Cout] = V_ξ [tiles × Cin] · U_ξ [Cin × Cout],
// with V = Bᵀ d B (the input transform), U = G g Gᵀ (the weight transform) and the output transform Aᵀ M A.
// F(2×2, 3×3): 16 GEMMs, 16/36 of the direct convolution's multiply-adds, transforms of additions only.
// F(4×4, 3×3): 36 GEMMs, 36/144 = 1/4 of them, transforms with small integer factors (and 1/4, 1/6, 1/12,
// 1/24 in the weight's) that multiply by up to 25, so more rounding (up to ~1e-5 of the outputs' scale, against
// ~1e-7 for F(2×2) and the implicit GEMM); used where both channel counts are large enough
// (`winogradLargeTileMinChannels`) for the GEMMs to outweigh its larger transforms.
//
// Tiles run in chunks, one per worker: transform the chunk's patches, run the GEMMs single-threaded (at that
// height the GEMM reads U in place, no packing), transform back, so the chunk's V and M stay in the core's caches.
// Where every chunk re-reading all of U would cost more than V and M of all tiles, all tiles are transformed at
// once and the workers split the GEMMs by position ξ (each U_ξ read once). A weight whose U would pass 16 MB is
// transformed and applied a block of output channels at a time. Every tile is computed from its own patch in a
// fixed order, and a GEMM row does not depend on how many rows are multiplied with it, so results do not depend
// on the chunking, the blocks or the thread count.
import TensorBase

/// Fewest input and output channels for which Winograd runs: below that the transforms (whose cost grows with
/// Cin + Cout) outweigh the saved multiplications (Cin · Cout). Measured in the embedded model's training step:
/// a LoRA down convolution (Cout = rank 16) took 1.1–1.3x the implicit GEMM's time as Winograd.
let winogradMinChannels = 32
/// Most tiles per chunk: the height up to which the GEMM reads U in place (`gemmDirectBMaxRowTiles` × 12).
let winogradMaxChunkTiles = 192
/// Most floats of V and M together for the all-tiles schedule (64 MB).
let winogradAllTilesMaxFloats = 16 << 20

/// Floats from V_ξ (or M_ξ) to V_ξ₊₁ for `rows` tiles of `channels`: one cache line more than the matrix, so the
/// transforms' 16 or 36 streams (one per ξ) do not land on one L1 set. `rows · channels` is a multiple of 4 KB for
/// the usual chunk of 192 tiles, and without the line the transforms' loads and stores thrash 8-way L1 sets (the
/// embedded model's UNet at batch 16: convolutions 3–4 % faster with the line).
@inline(__always) func winogradXiStride(_ rows: Int, _ channels: Int) -> Int { rows * channels + 16 }
/// Fewest input and output channels for F(4×4, 3×3) (below: F(2×2, 3×3)).
let winogradLargeTileMinChannels = 64
/// Largest transformed weight (floats, 16 MB) used whatever the number of tiles. A larger one is transformed
/// per call and streamed through the GEMMs: worth it only over `winogradMinTilesForLargeWeights` tiles or more.
/// Measured on 16×16×1280→1280, batch 1: 16 tiles of F(4×4) took 1.15× the implicit GEMM's forward time, 64 tiles
/// of F(2×2) 0.94× forward but 1.36× for forward + input gradient + weight gradient (the input gradient also
/// flips and transposes the 6.5 MB weight).
let winogradSmallWeightFloats = 4 << 20
let winogradMinTilesForLargeWeights = 128

/// The output tile of `g`'s Winograd convolution (forward and input gradient): 4 (F(4×4, 3×3)) with enough
/// channels, 2, or nil where the implicit GEMM runs (not stride-1 3×3, too few channels, or a large weight
/// over few tiles).
func winogradTile(_ g: Conv2DShape) -> Int? {
    guard ConvolutionAlgorithm.winogradAllowed, g.kernelHeight == 3, g.kernelWidth == 3, g.stride == 1,
          min(g.inChannels, g.outChannels) >= winogradMinChannels else { return nil }
    /// Whether `tile`'s transformed weight is small, or the tiles many enough to amortise it.
    func worthIt(_ tile: Int) -> Bool {
        // The forward pass's tiles (the input gradient's, over the input, are as many give or take an edge row).
        let tiles = g.batch * ((g.outHeight + tile - 1) / tile) * ((g.outWidth + tile - 1) / tile)
        return (tile + 2) * (tile + 2) * g.inChannels * g.outChannels <= winogradSmallWeightFloats
            || tiles >= winogradMinTilesForLargeWeights
    }
    if ConvolutionAlgorithm.winogradLargeTiles && min(g.inChannels, g.outChannels) >= winogradLargeTileMinChannels
        && worthIt(4) { return 4 }
    return worthIt(2) ? 2 : nil
}

/// One side of a transform, on vectors `x[0], x[stride], …` into `y[0], y[outStride], …` (`Vec` scratch).
/// Bᵀ (input, α → α): F(2, 3) [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]; F(4, 3) [[4, 0, −5, 0, 1, 0],
/// [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0], [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]].
@inline(__always) private func winogradB(_ tile: Int, _ x: UnsafePointer<Vec>, _ stride: Int,
                                         _ y: UnsafeMutablePointer<Vec>, _ outStride: Int) {
    if tile == 2 {
        let d0 = x[0], d1 = x[stride], d2 = x[2 * stride], d3 = x[3 * stride]
        y[0] = d0 - d2; y[outStride] = d1 + d2; y[2 * outStride] = d2 - d1; y[3 * outStride] = d1 - d3
    } else {
        let d0 = x[0], d1 = x[stride], d2 = x[2 * stride], d3 = x[3 * stride], d4 = x[4 * stride], d5 = x[5 * stride]
        let a = d4 - 4 * d2, b = d3 - 4 * d1, c = d4 - d2, e = 2 * (d3 - d1)
        y[0] = 4 * d0 - 5 * d2 + d4
        y[outStride] = a + b; y[2 * outStride] = a - b; y[3 * outStride] = c + e; y[4 * outStride] = c - e
        y[5 * outStride] = 4 * d1 - 5 * d3 + d5
    }
}

/// Aᵀ (output, α → tile): F(2, 3) [[1, 1, 1, 0], [0, 1, −1, −1]]; F(4, 3) [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0],
/// [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]].
@inline(__always) private func winogradA(_ tile: Int, _ x: UnsafePointer<Vec>, _ stride: Int,
                                         _ y: UnsafeMutablePointer<Vec>, _ outStride: Int) {
    if tile == 2 {
        let m0 = x[0], m1 = x[stride], m2 = x[2 * stride], m3 = x[3 * stride]
        y[0] = m0 + m1 + m2; y[outStride] = m1 - m2 - m3
    } else {
        let m0 = x[0], m1 = x[stride], m2 = x[2 * stride], m3 = x[3 * stride], m4 = x[4 * stride], m5 = x[5 * stride]
        let p = m1 + m2, q = m1 - m2, s = m3 + m4, t = m3 - m4
        y[0] = m0 + p + s; y[outStride] = q + 2 * t; y[2 * outStride] = p + 4 * s; y[3 * outStride] = q + 8 * t + m5
    }
}

/// G (weight, 3 → α): F(2, 3) [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]; F(4, 3) [[¼, 0, 0], [−⅙, −⅙, −⅙],
/// [−⅙, ⅙, −⅙], [1/24, 1/12, ⅙], [1/24, −1/12, ⅙], [0, 0, 1]].
@inline(__always) private func winogradG(_ tile: Int, _ x: UnsafePointer<Vec>, _ stride: Int,
                                         _ y: UnsafeMutablePointer<Vec>, _ outStride: Int) {
    let g0 = x[0], g1 = x[stride], g2 = x[2 * stride]
    if tile == 2 {
        y[0] = g0; y[outStride] = (g0 + g1 + g2) * 0.5; y[2 * outStride] = (g0 - g1 + g2) * 0.5; y[3 * outStride] = g2
    } else {
        let a = g0 + g2, b = g0 + 4 * g2, twice = 2 * g1
        y[0] = g0 * 0.25
        y[outStride] = (a + g1) * (-1.0 / 6); y[2 * outStride] = (a - g1) * (-1.0 / 6)
        y[3 * outStride] = (b + twice) * (1.0 / 24); y[4 * outStride] = (b - twice) * (1.0 / 24)
        y[5 * outStride] = g2
    }
}

/// `u[ξ][ci][j]` = (G g Gᵀ)[ξ / α][ξ % α] (α = tile + 2) with `g[dy][dx] = w[dy, dx, ci, columns.lowerBound + j]`
/// for a `[3, 3, Cin, Cout]` weight: the transformed weight of output channels `columns`, `[α², Cin, columns.count]`.
func winogradTransformWeight(_ w: UnsafePointer<Float>, inChannels cin: Int, outChannels cout: Int, columns: Range<Int>,
                             tile: Int, into u: UnsafeMutablePointer<Float>) {
    let plane = cin * cout, width = columns.count, uPlane = cin * width, alpha = tile + 2
    Parallel.forChunks(count: cin, workers: Parallel.workers(for: 4 * alpha * alpha * uPlane, minWorkPerThread: 1 << 20)) { _, range in
        withUnsafeTemporaryAllocation(of: Vec.self, capacity: 9 + 18 + 36) { scratch in
            let g = scratch.baseAddress!, h = g + 9, out = h + 18   // g: 3×3, G g: α×3, G g Gᵀ: α×α
            for ci in range {
                var j = 0
                while j < width {
                    let lanes = min(16, width - j), at = ci * cout + columns.lowerBound + j, to = ci * width + j
                    for tap in 0..<9 { g[tap] = loadN(w + tap * plane + at, lanes) }
                    for dx in 0..<3 { winogradG(tile, g + dx, 3, h + dx, 3) }
                    for i in 0..<alpha { winogradG(tile, h + 3 * i, 1, out + alpha * i, 1) }
                    for xi in 0..<(alpha * alpha) { storeN(out[xi], u + xi * uPlane + to, lanes) }
                    j += 16
                }
            }
        }
    }
}

/// The geometry of one Winograd convolution: `out[n, oy, ox, :] = bias + Σ_{dy,dx} x[n, oy + dy − pad,
/// ox + dx − pad, :] · w[dy, dx]`, `x` zero outside its `height × width`, over `outHeight × outWidth` outputs,
/// in `tile × tile` output tiles (2 or 4), for `cout` output channels stored `outStride` apart per pixel (a block
/// of a wider output). A class, not a struct: a struct this large is copied through a compiler helper
/// (`__swift_memcpy88_8`) that every module emits under one name, and the copy the linker keeps must not be one
/// compiled for AVX (Scripts/check-isa-isolation.sh; as `GEMMOperands`).
final class WinogradConvolution {
    let x: UnsafePointer<Float>
    let batch: Int, height: Int, width: Int, cin: Int, pad: Int
    let outHeight: Int, outWidth: Int, cout: Int, outStride: Int
    let tile: Int

    init(x: UnsafePointer<Float>, batch: Int, height: Int, width: Int, cin: Int, pad: Int, outHeight: Int,
         outWidth: Int, cout: Int, outStride: Int, tile: Int) {
        self.x = x; self.batch = batch; self.height = height; self.width = width; self.cin = cin; self.pad = pad
        self.outHeight = outHeight; self.outWidth = outWidth; self.cout = cout; self.outStride = outStride
        self.tile = tile
    }
    /// Side of the input patch and of the transformed tile (α = tile + 2), and its positions (α², the GEMMs).
    var alpha: Int { tile + 2 }
    var positions: Int { alpha * alpha }
    /// Tiles per row, per image, in all.
    var tilesWide: Int { (outWidth + tile - 1) / tile }
    var tilesPerImage: Int { (outHeight + tile - 1) / tile * tilesWide }
    var tiles: Int { batch * tilesPerImage }

    /// V for tiles `first..<first+count`: `v[ξ * xiStride + i * cin + c]` = (Bᵀ d B)[ξ] of tile `first + i`,
    /// channel c. `zeros`: `cin` zeros (the patch outside the input).
    func transformInput(tiles first: Int, count: Int, into v: UnsafeMutablePointer<Float>, xiStride: Int,
                        zeros: UnsafePointer<Float>) {
        let alpha = self.alpha, tile = self.tile, positions = self.positions
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: 36) { patchBuffer in
            withUnsafeTemporaryAllocation(of: Vec.self, capacity: 3 * 36) { scratch in
                let patch = patchBuffer.baseAddress!
                let d = scratch.baseAddress!, e = d + 36, q = e + 36   // d, Bᵀ d, Bᵀ d B
                for i in 0..<count {
                    let t = first + i, n = t / tilesPerImage, r = t % tilesPerImage
                    let y0 = tile * (r / tilesWide) - pad, x0 = tile * (r % tilesWide) - pad
                    for py in 0..<alpha {
                        let y = y0 + py
                        for px in 0..<alpha {
                            let xx = x0 + px
                            patch[alpha * py + px] = y >= 0 && y < height && xx >= 0 && xx < width
                                ? x + ((n * height + y) * width + xx) * cin : zeros
                        }
                    }
                    let dst = v + i * cin
                    var c = 0
                    while c < cin {
                        let lanes = min(16, cin - c)
                        for xi in 0..<positions { d[xi] = loadN(patch[xi] + c, lanes) }
                        for k in 0..<alpha { winogradB(tile, d + k, alpha, e + k, alpha) }            // columns
                        for row in 0..<alpha { winogradB(tile, e + alpha * row, 1, q + alpha * row, 1) }   // rows
                        for xi in 0..<positions { storeN(q[xi], dst + xi * xiStride + c, lanes) }
                        c += 16
                    }
                }
            }
        }
    }

    /// Writes the outputs of tiles `first..<first+count` from `m[ξ * xiStride + i * cout + c]`: Aᵀ M A (+ bias);
    /// a tile's rows or columns past the output are dropped.
    func transformOutput(tiles first: Int, count: Int, from m: UnsafePointer<Float>, xiStride: Int,
                         bias: UnsafePointer<Float>?, into output: UnsafeMutablePointer<Float>) {
        let alpha = self.alpha, tile = self.tile, positions = self.positions
        withUnsafeTemporaryAllocation(of: Vec.self, capacity: 36 + 24 + 16) { scratch in
            let mv = scratch.baseAddress!, s = mv + 36, y = s + 24   // M, Aᵀ M (tile × α), Aᵀ M A (tile × tile)
            for i in 0..<count {
                let t = first + i, n = t / tilesPerImage, r = t % tilesPerImage
                let oy = tile * (r / tilesWide), ox = tile * (r % tilesWide)
                let rows = min(tile, outHeight - oy), cols = min(tile, outWidth - ox)
                let out = output + ((n * outHeight + oy) * outWidth + ox) * outStride
                let src = m + i * cout
                var c = 0
                while c < cout {
                    let lanes = min(16, cout - c)
                    for xi in 0..<positions { mv[xi] = loadN(src + xi * xiStride + c, lanes) }
                    for k in 0..<alpha { winogradA(tile, mv + k, alpha, s + k, alpha) }              // columns
                    let b = bias.map { loadN($0 + c, lanes) } ?? Vec()
                    for row in 0..<rows {
                        winogradA(tile, s + alpha * row, 1, y + tile * row, 1)                      // rows
                        let p = out + row * outWidth * outStride + c
                        for col in 0..<cols { storeN(y[tile * row + col] + b, p + col * outStride, lanes) }
                    }
                    c += 16
                }
            }
        }
    }

    /// The convolution with transformed weight `u` (`winogradTransformWeight`), into `output`
    /// (`[batch, outHeight, outWidth, outStride]`, channels `0..<cout` written).
    func run(transformedWeight u: UnsafePointer<Float>, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
        let tiles = self.tiles, cin = self.cin, cout = self.cout, positions = self.positions
        let threads = Parallel.workers(for: 2 * positions * tiles * cin * cout, minWorkPerThread: gemmMinFlopsPerThread)
        let zerosBuffer = ScratchBuffer<Float>(count: cin), zeros = zerosBuffer.pointer
        defer { zerosBuffer.release() }
        zeros.update(repeating: 0, count: cin)
        /// M_ξ = V_ξ · U_ξ for ξ in `positions` (single-threaded GEMMs); V_ξ and M_ξ start `xiStride(rows, ·)` apart.
        func multiply(_ v: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, rows: Int, positions: Range<Int>) {
            for xi in positions {
                sgemm(transA: false, transB: false, m: rows, n: cout, k: cin, alpha: 1, a: v + xi * winogradXiStride(rows, cin),
                      lda: cin, b: u + xi * cin * cout, ldb: cout, beta: 0, c: m + xi * winogradXiStride(rows, cout), ldc: cout)
            }
        }
        // One chunk of tiles per worker (at most `winogradMaxChunkTiles`), each transformed, multiplied and written
        // back by one worker; every chunk reads all of U.
        let chunkTiles = min(winogradMaxChunkTiles, (tiles + threads - 1) / threads)
        let chunks = (tiles + chunkTiles - 1) / chunkTiles
        // Where those reads of U cost more than taking V and M of all tiles through memory once, the three steps
        // run one after the other over all tiles, the GEMMs split by position ξ (each U_ξ read once).
        if (chunks - 1) * cin * cout >= tiles * (cin + cout) && positions * tiles * (cin + cout) <= winogradAllTilesMaxFloats {
            let vBuffer = ScratchBuffer<Float>(count: positions * winogradXiStride(tiles, cin)), v = vBuffer.pointer
            let mBuffer = ScratchBuffer<Float>(count: positions * winogradXiStride(tiles, cout)), m = mBuffer.pointer
            defer { vBuffer.release(); mBuffer.release() }
            Parallel.forChunks(count: tiles, workers: threads) { _, range in
                transformInput(tiles: range.lowerBound, count: range.count, into: v + range.lowerBound * cin,
                               xiStride: winogradXiStride(tiles, cin), zeros: zeros)
            }
            Parallel.forChunks(count: positions, workers: threads) { _, range in
                Parallel.$maxThreads.withValue(1) { multiply(v, m, rows: tiles, positions: range) }
            }
            Parallel.forChunks(count: tiles, workers: threads) { _, range in
                transformOutput(tiles: range.lowerBound, count: range.count, from: m + range.lowerBound * cout,
                                xiStride: winogradXiStride(tiles, cout), bias: bias, into: output)
            }
            return
        }
        let workers = min(threads, chunks)
        let perWorker = positions * (winogradXiStride(chunkTiles, cin) + winogradXiStride(chunkTiles, cout))
        let scratchBuffer = ScratchBuffer<Float>(count: workers * perWorker), scratch = scratchBuffer.pointer
        defer { scratchBuffer.release() }
        Parallel.forChunks(count: chunks, workers: workers, chunksPerWorker: chunks) { worker, range in
            let v = scratch + worker * perWorker, m = v + positions * winogradXiStride(chunkTiles, cin)
            Parallel.$maxThreads.withValue(1) {
                for chunk in range {
                    let first = chunk * chunkTiles, count = min(chunkTiles, tiles - first)
                    transformInput(tiles: first, count: count, into: v, xiStride: winogradXiStride(count, cin), zeros: zeros)
                    multiply(v, m, rows: count, positions: 0..<positions)
                    transformOutput(tiles: first, count: count, from: m, xiStride: winogradXiStride(count, cout), bias: bias,
                                    into: output)
                }
            }
        }
    }
}

/// Largest transformed weight block (floats, 16 MB): wider weights are transformed and applied a block of output
/// channels at a time (each block transforms the input again, ~1/block width of the GEMMs' work), so a 1280-channel
/// layer's scratch stays near this size instead of 16/9 or 4 times its F32 weight.
let winogradWeightBlockFloats = 4 << 20

/// `x ⊛ w (+ bias)` as Winograd in `tile × tile` tiles, a block of output channels at a time: the geometry of `g`
/// with `w` `[3, 3, Cin, Cout]`; `x` `[N, H, W, Cin]` (padding `pad` on every side) into `output`
/// `[N, outHeight, outWidth, Cout]`.
func winogradConvolution(_ x: UnsafePointer<Float>, batch: Int, height: Int, width: Int, inChannels cin: Int,
                         padding pad: Int, weight: UnsafePointer<Float>, outChannels cout: Int, tile: Int,
                         outHeight: Int, outWidth: Int, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
    let positions = (tile + 2) * (tile + 2)
    let blocks = max(1, (positions * cin * cout + winogradWeightBlockFloats - 1) / winogradWeightBlockFloats)
    let blockWidth = min(cout, ((cout + blocks - 1) / blocks + 15) / 16 * 16)
    let uBuffer = ScratchBuffer<Float>(count: positions * cin * blockWidth), u = uBuffer.pointer
    defer { uBuffer.release() }
    var c0 = 0
    while c0 < cout {
        let columns = c0..<min(cout, c0 + blockWidth)
        winogradTransformWeight(weight, inChannels: cin, outChannels: cout, columns: columns, tile: tile, into: u)
        WinogradConvolution(x: x, batch: batch, height: height, width: width, cin: cin, pad: pad, outHeight: outHeight,
                            outWidth: outWidth, cout: columns.count, outStride: cout, tile: tile)
            .run(transformedWeight: u, bias: bias.map { $0 + c0 }, output: output + c0)
        c0 = columns.upperBound
    }
}

/// Forward convolution in `tile × tile` output tiles (`winogradTile(g)`): `output = conv(input, weight) + bias`.
func winogradConv2dForward(_ g: Conv2DShape, tile: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
    winogradConvolution(input, batch: g.batch, height: g.height, width: g.width, inChannels: g.inChannels,
                        padding: g.padding, weight: weight, outChannels: g.outChannels, tile: tile,
                        outHeight: g.outHeight, outWidth: g.outWidth, bias: bias, output: output)
}

/// Input gradient in `tile × tile` output tiles (`winogradTile(g)`): the stride-1 convolution of the output gradient,
/// padded by 2 − p, with the weight flipped in space and transposed in channels
/// (`w'[dy, dx, co, ci] = w[2 − dy, 2 − dx, ci, co]`).
func winogradConv2dBackwardInput(_ g: Conv2DShape, tile: Int, gradOutput: UnsafePointer<Float>,
                                 weight: UnsafePointer<Float>, gradInput: UnsafeMutablePointer<Float>) {
    let cin = g.inChannels, cout = g.outChannels
    let flipped = flippedTransposedWeight(weight, g)
    defer { flipped.release() }
    winogradConvolution(gradOutput, batch: g.batch, height: g.outHeight, width: g.outWidth, inChannels: cout,
                        padding: 2 - g.padding, weight: flipped.pointer, outChannels: cin, tile: tile, outHeight: g.height,
                        outWidth: g.width, bias: nil, output: gradInput)
}

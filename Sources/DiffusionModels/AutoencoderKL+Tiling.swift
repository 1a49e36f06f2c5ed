// Tiled VAE decoding: port of diffusers 0.42 `AutoencoderKL.tiled_decode` (`enable_tiling()`), so that a large
// picture decodes in memory bounded by one tile. The latents are cut into overlapping tiles of
// `sample_size / f` latents (stride 3/4 of that), each tile is decoded alone, and each decoded tile is blended
// linearly over the last quarter of `sample_size` pixels into the tile above and the tile to its left (both
// already blended), then cropped to its top-left `sample_size − blend` pixels. Only the previous row of
// decoded tiles is kept (diffusers keeps all; the numbers are the same). All NHWC.
import Autograd
import NN
import TensorCore

/// When `AutoencoderKL.image(fromUNetLatents:tiling:)` decodes in tiles.
public enum VAETiling: String, Sendable, Codable, CaseIterable {
    /// Never (one decoder pass over the whole latent).
    case off
    /// Whenever the latents are larger than one tile, as diffusers with `enable_tiling()`.
    case on
    /// As `on` for pictures above `automaticPixels` pixels, else `off`.
    case automatic

    /// Pictures with more pixels than 1024² decode in tiles under `.automatic` (a 1024² SD decode needs
    /// about 3 GB in one pass, a 2048² one four times that).
    public static let automaticPixels = 1024 * 1024
}

/// Tile geometry of `AutoencoderKL.tiledDecode` (diffusers' names in comments).
public struct VAETileGeometry: Equatable, Sendable {
    /// tile_latent_min_size = int(sample_size / 2 ** (len(block_out_channels) - 1))
    public var tileLatent: Int
    /// tile_sample_min_size = sample_size
    public var tileSample: Int
    /// overlap_size = int(tile_latent_min_size * (1 - tile_overlap_factor)), the latent stride between tiles
    public var latentStride: Int
    /// blend_extent = int(tile_sample_min_size * tile_overlap_factor)
    public var blendExtent: Int
    /// row_limit = tile_sample_min_size - blend_extent, the pixels each tile keeps
    public var rowLimit: Int

    /// diffusers' geometry for `sampleSize` with `tile_overlap_factor` 0.25.
    public init(sampleSize: Int, downsamplingFactor: Int, overlapFactor: Double = 0.25) {
        tileSample = sampleSize
        tileLatent = Int(Double(sampleSize) / Double(downsamplingFactor))
        latentStride = Int(Double(tileLatent) * (1 - overlapFactor))
        blendExtent = Int(Double(sampleSize) * overlapFactor)
        rowLimit = sampleSize - blendExtent
    }
}

extension AutoencoderKL {
    /// The tile geometry from the config's `sample_size`.
    public var tileGeometry: VAETileGeometry {
        VAETileGeometry(sampleSize: config.sampleSize, downsamplingFactor: config.downsamplingFactor)
    }

    /// The UNet's latents → image as `image(fromUNetLatents:)`, decoded in tiles when `tiling` says so.
    public func image(fromUNetLatents latents: Tensor, tiling: VAETiling) throws -> Tensor {
        guard latents.shape.count == 4 else { return try image(fromUNetLatents: latents) }
        let (h, w) = (latents.shape[1], latents.shape[2])
        let f = config.downsamplingFactor, t = tileGeometry.tileLatent
        let large = h > t || w > t
        let tiled: Bool
        switch tiling {
        case .off: tiled = false
        case .on: tiled = large
        case .automatic: tiled = large && h * f * w * f > VAETiling.automaticPixels
        }
        guard tiled else { return try image(fromUNetLatents: latents) }
        let scale = config.scalingFactor, shift = config.shiftFactor ?? 0
        var z = latents
        z.withUnsafeMutableBufferPointer { p in for k in p.indices { p[k] = p[k] / scale + shift } }
        return try withNoGrad { try tiledDecode(z) }
    }

    /// z [N, h, w, latentChannels] (unscaled) → image [N, h·f, w·f, outChannels], tile by tile (diffusers'
    /// `tiled_decode`; call inside `withNoGrad`).
    public func tiledDecode(_ z: Tensor) throws -> Tensor {
        guard z.shape.count == 4, z.shape[3] == config.latentChannels else {
            throw AutogradError.invalidInput("AutoencoderKL.tiledDecode: latents must be NHWC [N, h, w, \(config.latentChannels)], got \(z.shape)")
        }
        let g = tileGeometry
        guard g.latentStride > 0, g.blendExtent >= 0 else {
            throw AutogradError.invalidInput("AutoencoderKL.tiledDecode: sample_size \(config.sampleSize) is too small to tile")
        }
        let (n, h, w) = (z.shape[0], z.shape[1], z.shape[2])
        let f = config.downsamplingFactor, channels = config.outChannels
        var out = Tensor(zeros: [n, h * f, w * f, channels])
        var above: [Tensor] = []
        var y0 = 0
        // for i in range(0, z.shape[2], overlap_size): for j in range(0, z.shape[3], overlap_size):
        //     tile = z[:, :, i : i + tile_latent_min_size, j : j + tile_latent_min_size]; decoded = decoder(post_quant_conv(tile))
        for (row, i) in stride(from: 0, to: h, by: g.latentStride).enumerated() {
            var current: [Tensor] = []
            var x0 = 0, rowHeight = 0
            for (column, j) in stride(from: 0, to: w, by: g.latentStride).enumerated() {
                let tile = Self.crop(z, rows: i..<min(i + g.tileLatent, h), columns: j..<min(j + g.tileLatent, w))
                var decoded = try decode(Variable(tile)).value
                // if i > 0: tile = self.blend_v(rows[i - 1][j], tile, blend_extent)
                if row > 0 { Self.blend(from: above[column], into: &decoded, extent: g.blendExtent, vertical: true) }
                // if j > 0: tile = self.blend_h(row[j - 1], tile, blend_extent)
                if column > 0 { Self.blend(from: current[column - 1], into: &decoded, extent: g.blendExtent, vertical: false) }
                // result_row.append(tile[:, :, :row_limit, :row_limit])
                let (th, tw) = (min(decoded.shape[1], g.rowLimit), min(decoded.shape[2], g.rowLimit))
                guard y0 + th <= h * f, x0 + tw <= w * f else {
                    throw AutogradError.invalidInput("AutoencoderKL.tiledDecode: tiles of sample_size \(g.tileSample) do not fit \(h)×\(w) latents")
                }
                Self.paste(decoded, rows: th, columns: tw, into: &out, at: (y0, x0))
                current.append(decoded)
                x0 += tw
                rowHeight = th
            }
            guard x0 == w * f else {
                throw AutogradError.invalidInput("AutoencoderKL.tiledDecode: tiles of sample_size \(g.tileSample) cover \(x0) of \(w * f) columns")
            }
            above = current
            y0 += rowHeight
        }
        guard y0 == h * f else {
            throw AutogradError.invalidInput("AutoencoderKL.tiledDecode: tiles of sample_size \(g.tileSample) cover \(y0) of \(h * f) rows")
        }
        return out
    }

    /// x[:, rows, columns, :] of an NHWC tensor.
    static func crop(_ x: Tensor, rows: Range<Int>, columns: Range<Int>) -> Tensor {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        return Tensor(shape: [n, rows.count, columns.count, c]) { out in
            x.withUnsafeBufferPointer { src in
                var k = 0
                for b in 0..<n { for y in rows {
                    let start = ((b * h + y) * w + columns.lowerBound) * c
                    for q in 0..<(columns.count * c) { out[k] = src[start + q]; k += 1 }
                } }
            }
        }
    }

    /// diffusers' `blend_v` (vertical) / `blend_h`: the first e rows (columns) of `b` become
    /// a[−e + y] · (1 − y / e) + b[y] · (y / e), e = min(extent, both sizes).
    static func blend(from a: Tensor, into b: inout Tensor, extent: Int, vertical: Bool) {
        let (n, c) = (b.shape[0], b.shape[3])
        let (ah, aw, bh, bw) = (a.shape[1], a.shape[2], b.shape[1], b.shape[2])
        let e = vertical ? min(ah, bh, extent) : min(aw, bw, extent)
        guard e > 0 else { return }
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeMutableBufferPointer { pb in
                for s in 0..<e {
                    let wb = Float(Double(s) / Double(e)), wa = Float(1 - Double(s) / Double(e))
                    for batch in 0..<n {
                        if vertical {   // row s of b, row ah − e + s of a (same width)
                            let ob = ((batch * bh + s) * bw) * c, oa = ((batch * ah + ah - e + s) * aw) * c
                            for q in 0..<(bw * c) { pb[ob + q] = pa[oa + q] * wa + pb[ob + q] * wb }
                        } else {        // column s of b, column aw − e + s of a (same height)
                            for y in 0..<bh {
                                let ob = ((batch * bh + y) * bw + s) * c, oa = ((batch * ah + y) * aw + aw - e + s) * c
                                for ch in 0..<c { pb[ob + ch] = pa[oa + ch] * wa + pb[ob + ch] * wb }
                            }
                        }
                    }
                }
            }
        }
    }

    /// out[:, y0 ..< y0 + rows, x0 ..< x0 + columns, :] = tile[:, ..< rows, ..< columns, :].
    static func paste(_ tile: Tensor, rows: Int, columns: Int, into out: inout Tensor, at origin: (Int, Int)) {
        let (n, th, tw, c) = (tile.shape[0], tile.shape[1], tile.shape[2], tile.shape[3])
        let (oh, ow) = (out.shape[1], out.shape[2])
        tile.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for b in 0..<n { for y in 0..<rows {
                    let s = ((b * th + y) * tw) * c, d = ((b * oh + origin.0 + y) * ow + origin.1) * c
                    for q in 0..<(columns * c) { dst[d + q] = src[s + q] }
                } }
            }
        }
    }
}

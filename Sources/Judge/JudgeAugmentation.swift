// JudgeAugmentation: the degradations the judge trains on, so that it reads the softer, noisier pictures a
// diffusion model draws as a person would: colour jitter (gain ±6 %, per channel ±3 %, contrast and saturation
// ±10 %, offset ±2 %: small enough that every named colour stays nearest itself),
// blur (Gaussian or a 2× down-and-up resample), sensor and blotchy colour noise, and JPEG-like compression
// (8×8 DCT blocks of YCbCr, quantised with the JPEG tables of ITU-T T.81 Annex K at a random quality, with or
// without 4:2:0 chroma subsampling); and monochrome toning (sepia, grey, cyanotype prints), which leaves the
// colour unreadable, so the judge learns to read object, place, coat and style from luma alone. Every function works in place on one [h, w, 3] image in [-1, 1] and
// draws its randomness from the `PhiloxRandom` passed in, so a seeded run is reproducible.
import Foundation
import PictureWorld
import TensorCore

public enum JudgeAugmentation {
    /// How often each degradation is applied (independently, in the order jitter, blur, noise, JPEG).
    public struct Probabilities: Sendable {
        public var jitter: Float = 0.5, blur: Float = 0.45, noise: Float = 0.5, jpeg: Float = 0.35
        public init() {}
        /// No degradation at all.
        public static var none: Probabilities {
            var p = Probabilities()
            (p.jitter, p.blur, p.noise, p.jpeg) = (0, 0, 0, 0)
            return p
        }
    }

    /// Applies a random subset of the degradations to every image of a batch [N, h, w, 3]; per image, whether it
    /// came out visibly degraded (`Degradation`).
    @discardableResult
    public static func augment(_ images: inout Tensor, using rng: inout PhiloxRandom,
                               probabilities: Probabilities = Probabilities()) -> [Degradation] {
        let (n, h, w) = (images.shape[0], images.shape[1], images.shape[2])
        return images.withUnsafeMutableBufferPointer { buf in
            (0..<n).map { augment(buf.baseAddress! + $0 * h * w * 3, h, w, using: &rng, probabilities: probabilities) }
        }
    }

    /// How much an image was degraded: the judge's clean head learns `none` (colour jitter alone leaves a picture
    /// clean) against `visible`; `mild` (only a slight blur, faint noise or light compression) is left out.
    public enum Degradation: Sendable {
        case none, mild, visible
    }

    /// Applies a random subset of the degradations to one [h, w, 3] image.
    @discardableResult
    static func augment(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, using rng: inout PhiloxRandom,
                        probabilities: Probabilities) -> Degradation {
        // The same number of draws for every image, whatever applies, so one image's choices never shift the next's.
        let u = (0..<18).map { _ in rng.unit() }
        let noiseSeed = rng.next()
        if u[0] < probabilities.jitter {
            let gain: Float = 0.94 + 0.12 * u[1]
            let channel: [Float] = [(0.97 + 0.06 * u[2]) * gain, (0.97 + 0.06 * u[3]) * gain, (0.97 + 0.06 * u[4]) * gain]
            jitterColors(p, h * w, gain: channel, contrast: 0.9 + 0.2 * u[5], saturation: 0.9 + 0.2 * u[6],
                         offset: 0.04 * (u[7] - 0.5))
        }
        var mild = false, visible = false
        func note(_ isVisible: Bool) { if isVisible { visible = true } else { mild = true } }
        if u[8] < probabilities.blur {
            let sigma = 0.4 + 1.1 * u[10]
            if u[9] < 0.7 { gaussianBlur(p, h, w, sigma: sigma) } else { resampleBlur(p, h, w) }
            note(u[9] >= 0.7 || sigma >= 0.8)
        }
        if u[11] < probabilities.noise {
            var noiseRandom = PhiloxRandom(seed: noiseSeed)
            let sigma = 0.2 * u[12], blotch: Float = u[13] < 0.5 ? 0.15 * u[14] : 0
            addNoise(p, h, w, sigma: sigma, blotchSigma: blotch, using: &noiseRandom)
            for i in 0..<(h * w * 3) { p[i] = min(max(p[i], -1), 1) }
            note(sigma >= 0.06 || blotch >= 0.05)
        }
        if u[15] < probabilities.jpeg {
            let quality = 10 + Int(80 * u[16])
            compress(p, h, w, quality: quality, subsampleChroma: u[17] < 0.5)
            note(quality <= 50)
        }
        return visible ? .visible : mild ? .mild : .none
    }

    // MARK: - Colour jitter

    /// Per channel: v ← gain_c·v, then contrast about the image's mean and saturation about each pixel's
    /// luma, then `offset`; in [0, 1] units, clamped.
    static func jitterColors(_ p: UnsafeMutablePointer<Float>, _ pixels: Int, gain: [Float], contrast: Float,
                             saturation: Float, offset: Float) {
        var mean: Float = 0
        for i in 0..<pixels {
            for c in 0..<3 { p[i * 3 + c] = (p[i * 3 + c] + 1) * 0.5 * gain[c] }
            mean += 0.299 * p[i * 3] + 0.587 * p[i * 3 + 1] + 0.114 * p[i * 3 + 2]
        }
        mean /= Float(max(pixels, 1))
        for i in 0..<pixels {
            let luma = 0.299 * p[i * 3] + 0.587 * p[i * 3 + 1] + 0.114 * p[i * 3 + 2]
            for c in 0..<3 {
                let v = luma + (p[i * 3 + c] - luma) * saturation
                p[i * 3 + c] = min(max(mean + (v - mean) * contrast + offset, 0), 1) * 2 - 1
            }
        }
    }

    // MARK: - Blur

    /// Separable Gaussian blur of standard deviation `sigma` pixels (radius ⌈3σ⌉, edges clamp).
    static func gaussianBlur(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, sigma: Float) {
        let r = max(Int((3 * sigma).rounded(.up)), 1)
        var k = (-r...r).map { expf(-Float($0 * $0) / (2 * sigma * sigma)) }
        let z = k.reduce(0, +)
        k = k.map { $0 / z }
        var tmp = [Float](repeating: 0, count: h * w * 3)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    var s: Float = 0
                    for d in -r...r { s += k[d + r] * p[(y * w + min(max(x + d, 0), w - 1)) * 3 + c] }
                    tmp[(y * w + x) * 3 + c] = s
                }
            }
        }
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    var s: Float = 0
                    for d in -r...r { s += k[d + r] * tmp[(min(max(y + d, 0), h - 1) * w + x) * 3 + c] }
                    p[(y * w + x) * 3 + c] = s
                }
            }
        }
    }

    /// 2× box downsampling followed by bilinear upsampling (half-pixel centres): the softness of a picture
    /// drawn at half resolution.
    static func resampleBlur(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int) {
        let (sh, sw) = ((h + 1) / 2, (w + 1) / 2)
        var small = [Float](repeating: 0, count: sh * sw * 3)
        for y in 0..<sh {
            for x in 0..<sw {
                for c in 0..<3 {
                    var s: Float = 0
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        s += p[(min(2 * y + dy, h - 1) * w + min(2 * x + dx, w - 1)) * 3 + c]
                    }
                    small[(y * sw + x) * 3 + c] = s / 4
                }
            }
        }
        upsampleBilinear(small, sh, sw, into: p, h, w, adding: false)
    }

    /// Bilinear resampling of a [sh, sw, 3] grid to [h, w, 3] (half-pixel centres, edges clamp), written into
    /// `p` or added to it.
    static func upsampleBilinear(_ small: [Float], _ sh: Int, _ sw: Int, into p: UnsafeMutablePointer<Float>,
                                 _ h: Int, _ w: Int, adding: Bool) {
        for y in 0..<h {
            let fy = min(max((Float(y) + 0.5) * Float(sh) / Float(h) - 0.5, 0), Float(sh - 1))
            let y0 = Int(fy), y1 = min(y0 + 1, sh - 1), ty = fy - Float(y0)
            for x in 0..<w {
                let fx = min(max((Float(x) + 0.5) * Float(sw) / Float(w) - 0.5, 0), Float(sw - 1))
                let x0 = Int(fx), x1 = min(x0 + 1, sw - 1), tx = fx - Float(x0)
                for c in 0..<3 {
                    let a = small[(y0 * sw + x0) * 3 + c] * (1 - tx) + small[(y0 * sw + x1) * 3 + c] * tx
                    let b = small[(y1 * sw + x0) * 3 + c] * (1 - tx) + small[(y1 * sw + x1) * 3 + c] * tx
                    let v = a * (1 - ty) + b * ty
                    p[(y * w + x) * 3 + c] = adding ? p[(y * w + x) * 3 + c] + v : v
                }
            }
        }
    }

    // MARK: - Noise

    /// Adds per-pixel Gaussian noise of `sigma` and, when `blotchSigma` > 0, colour blotches: Gaussian noise
    /// on a coarse grid (8 or 16 cells across) resampled bilinearly, as diffusion samples show.
    static func addNoise(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, sigma: Float, blotchSigma: Float,
                         using rng: inout PhiloxRandom) {
        if sigma > 0 {
            let z = rng.normal(shape: [h * w * 3], std: sigma)
            z.withUnsafeBufferPointer { z in for i in 0..<(h * w * 3) { p[i] += z[i] } }
        }
        if blotchSigma > 0 {
            let cells = rng.next() & 1 == 0 ? 8 : 16
            let (sh, sw) = (min(cells, h), min(cells, w))
            upsampleBilinear(rng.normal(shape: [sh * sw * 3], std: blotchSigma).scalars, sh, sw, into: p, h, w, adding: true)
        }
    }

    // MARK: - JPEG-like compression

    /// The luminance and chrominance quantisation tables of ITU-T T.81 Annex K (row-major 8×8).
    static let lumaTable: [Float] = [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ]
    static let chromaTable: [Float] = [
        17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
        47, 66, 99, 99, 99, 99, 99, 99,
    ] + [Float](repeating: 99, count: 32)

    /// A table scaled to `quality` (1 … 100) as the IJG library does: 5000/q % below 50, 200 − 2q % above.
    static func scaledTable(_ table: [Float], quality: Int) -> [Float] {
        let q = min(max(quality, 1), 100)
        let scale = Float(q < 50 ? 5000 / q : 200 - 2 * q)
        return table.map { min(max(($0 * scale + 50) / 100, 1), 255).rounded(.down) }
    }

    /// cos((2x + 1)uπ/16)·c(u) with c(0) = √(1/8), c(u) = √(2/8): the orthonormal 8-point DCT-II basis [u][x].
    static let dctBasis: [Float] = (0..<64).map { i in
        let (u, x) = (i / 8, i % 8)
        return (u == 0 ? (1.0 / 8).squareRoot() : (2.0 / 8).squareRoot()) * Float(cos(Double((2 * x + 1) * u) * .pi / 16))
    }

    /// Quantises one 8×8 block of samples (level-shifted by −128) in the DCT domain: coefficient ← Q·round(coefficient/Q).
    static func quantizeBlock(_ block: inout [Float], table: [Float]) {
        let b = dctBasis
        var t = [Float](repeating: 0, count: 64), f = [Float](repeating: 0, count: 64)
        // F = B · X · Bᵀ
        for u in 0..<8 { for x in 0..<8 { var s: Float = 0; for y in 0..<8 { s += b[u * 8 + y] * block[y * 8 + x] }; t[u * 8 + x] = s } }
        for u in 0..<8 { for v in 0..<8 { var s: Float = 0; for x in 0..<8 { s += t[u * 8 + x] * b[v * 8 + x] }; f[u * 8 + v] = s } }
        for i in 0..<64 { f[i] = (f[i] / table[i]).rounded() * table[i] }
        // X = Bᵀ · F · B
        for y in 0..<8 { for v in 0..<8 { var s: Float = 0; for u in 0..<8 { s += b[u * 8 + y] * f[u * 8 + v] }; t[y * 8 + v] = s } }
        for y in 0..<8 { for x in 0..<8 { var s: Float = 0; for v in 0..<8 { s += t[y * 8 + v] * b[v * 8 + x] }; block[y * 8 + x] = s } }
    }

    /// Quantises every 8×8 block of a plane [h, w] (blocks that run past the edge read clamped samples).
    static func quantizePlane(_ plane: inout [Float], _ h: Int, _ w: Int, table: [Float]) {
        var block = [Float](repeating: 0, count: 64)
        for by in stride(from: 0, to: h, by: 8) {
            for bx in stride(from: 0, to: w, by: 8) {
                for i in 0..<64 { block[i] = plane[min(by + i / 8, h - 1) * w + min(bx + i % 8, w - 1)] - 128 }
                quantizeBlock(&block, table: table)
                for i in 0..<64 where by + i / 8 < h && bx + i % 8 < w { plane[(by + i / 8) * w + bx + i % 8] = block[i] + 128 }
            }
        }
    }

    /// JPEG-like compression of one [h, w, 3] image in [-1, 1]: RGB → YCbCr (JFIF, 0…255), optional 2×2
    /// chroma averaging (4:2:0), blockwise DCT quantisation at `quality`, and back (chroma replicated).
    static func compress(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, quality: Int, subsampleChroma: Bool) {
        var y = [Float](repeating: 0, count: h * w), cb = y, cr = y
        for i in 0..<(h * w) {
            let (r, g, b) = ((p[i * 3] + 1) * 127.5, (p[i * 3 + 1] + 1) * 127.5, (p[i * 3 + 2] + 1) * 127.5)
            y[i] = 0.299 * r + 0.587 * g + 0.114 * b
            cb[i] = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
            cr[i] = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
        }
        quantizePlane(&y, h, w, table: scaledTable(lumaTable, quality: quality))
        let chroma = scaledTable(chromaTable, quality: quality)
        for k in 0..<2 {
            var plane = k == 0 ? cb : cr
            if subsampleChroma {
                let (sh, sw) = ((h + 1) / 2, (w + 1) / 2)
                var small = [Float](repeating: 0, count: sh * sw)
                for sy in 0..<sh {
                    for sx in 0..<sw {
                        var s: Float = 0
                        for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] { s += plane[min(2 * sy + dy, h - 1) * w + min(2 * sx + dx, w - 1)] }
                        small[sy * sw + sx] = s / 4
                    }
                }
                quantizePlane(&small, sh, sw, table: chroma)
                for i in 0..<(h * w) { plane[i] = small[(i / w / 2) * sw + (i % w) / 2] }
            } else {
                quantizePlane(&plane, h, w, table: chroma)
            }
            if k == 0 { cb = plane } else { cr = plane }
        }
        for i in 0..<(h * w) {
            let r = y[i] + 1.402 * (cr[i] - 128)
            let g = y[i] - 0.344136 * (cb[i] - 128) - 0.714136 * (cr[i] - 128)
            let b = y[i] + 1.772 * (cb[i] - 128)
            p[i * 3] = min(max(r, 0), 255) / 127.5 - 1
            p[i * 3 + 1] = min(max(g, 0), 255) / 127.5 - 1
            p[i * 3 + 2] = min(max(b, 0), 255) / 127.5 - 1
        }
    }
}

extension JudgeAugmentation {
    // MARK: - Monochrome toning

    /// A two-colour print of one [h, w, 3] image in [-1, 1]: luma (BT.601), contrast raised by `contrast` about
    /// 0.5, darkened towards the corners by `vignette` (0: none), mapped onto the ramp `dark` → `light` (RGB in
    /// [0, 1]). With `Examples.sepiaRamp`, contrast 1.35 and vignette 0.45 it is `Examples.sepia` before rounding.
    static func tone(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, dark: (Float, Float, Float),
                     light: (Float, Float, Float), contrast: Float, vignette: Float) {
        for y in 0..<h {
            for x in 0..<w {
                let i = (y * w + x) * 3
                let lum = (0.299 * p[i] + 0.587 * p[i + 1] + 0.114 * p[i + 2] + 1) * 0.5
                let dx = (Float(x) + 0.5) / Float(w) * 2 - 1, dy = (Float(y) + 0.5) / Float(h) * 2 - 1
                let t = min(max((lum - 0.5) * contrast + 0.5, 0), 1) * max(0, 1 - vignette * (dx * dx + dy * dy))
                p[i] = (dark.0 + (light.0 - dark.0) * t) * 2 - 1
                p[i + 1] = (dark.1 + (light.1 - dark.1) * t) * 2 - 1
                p[i + 2] = (dark.2 + (light.2 - dark.2) * t) * 2 - 1
            }
        }
    }

    /// The sepia print of `Examples.sepia` on one [h, w, 3] image in [-1, 1] (not rounded to 8 bits).
    public static func sepia(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int) {
        let (d, l) = Examples.sepiaRamp
        tone(p, h, w, dark: (d.0 / 255, d.1 / 255, d.2 / 255), light: (l.0 / 255, l.1 / 255, l.2 / 255),
             contrast: 1.35, vignette: 0.45)
    }

    /// A random monochrome print (brown, grey or blue-black ramps of random depth, contrast and vignette: the
    /// family sepia prints, greyscale photos and cyanotypes belong to). Always 8 draws from `rng`.
    static func randomTone(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, using rng: inout PhiloxRandom) {
        let u = (0..<8).map { _ in rng.unit() }
        // a tint direction: warm (sepia), neutral (grey) or cool (cyanotype), of random strength
        let tints: [(Float, Float, Float)] = [(1, 0.55, 0.05), (1, 1, 1), (0.15, 0.45, 1)]
        let tint = tints[min(Int(u[0] * 3), 2)], strength = 0.3 + 0.7 * u[1]
        func mix(_ level: Float, _ amount: Float) -> (Float, Float, Float) {
            let c = (level * (1 - amount + amount * tint.0), level * (1 - amount + amount * tint.1), level * (1 - amount + amount * tint.2))
            return (min(c.0, 1), min(c.1, 1), min(c.2, 1))
        }
        let dark = mix(0.05 + 0.2 * u[2], strength), light = mix(0.8 + 0.2 * u[3], strength * 0.4)
        tone(p, h, w, dark: dark, light: light, contrast: 1 + 0.5 * u[4], vignette: u[5] < 0.5 ? 0.6 * u[6] : 0)
    }
}

extension PhiloxRandom {
    /// Uniform in [0, 1) from the top 24 bits of one draw.
    mutating func unit() -> Float { Float(next() >> 40) * 0x1p-24 }
}

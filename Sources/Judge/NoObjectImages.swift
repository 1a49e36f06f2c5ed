// NoObjectImages: pictures that show no object, which the judge learns to read as "no object" — a place
// drawn without its object (`Scene.render(showingObject: false)`), noise fields, and smooth colour blobs in
// noise: what a diffusion model draws when it has lost the object. Each is a pure function of its random
// stream; images are [h, w, 3] in [-1, 1].
import Foundation
import PictureWorld
import TensorCore

public enum NoObjectKind: Int, CaseIterable, Sendable {
    /// A scene of the world rendered without its object: the place in its style.
    case barePlace
    /// Noise: per-pixel, blotchy (a coarse grid resampled) or both, around a random mean colour.
    case noiseField
    /// One or two soft colour blobs on a noise field, a flat colour or a gradient.
    case blob

    public var name: String {
        switch self {
        case .barePlace: return "bare place"
        case .noiseField: return "noise field"
        case .blob: return "blob in noise"
        }
    }
}

public enum NoObjectImages {
    /// Draws a picture of `kind` into `p`; `scene` is the scene a bare place is rendered from. Returns the
    /// judge's targets for it (the place and style of a bare place; nothing but "no object" otherwise).
    static func draw(_ kind: NoObjectKind, into p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, scene: Scene,
                     using rng: inout PhiloxRandom) throws -> [Int] {
        switch kind {
        case .barePlace:
            let image = try scene.render(size: h, showingObject: false)
            image.pixels.withUnsafeBufferPointer { q in for i in 0..<(h * w * 3) { p[i] = Float(q[i]) / 127.5 - 1 } }
            return JudgeHeads.noObjectTargets(background: scene.labels.background, style: scene.labels.style)
        case .noiseField:
            noiseField(p, h, w, using: &rng)
        case .blob:
            blob(p, h, w, using: &rng)
        }
        return JudgeHeads.noObjectTargets(background: nil, style: nil)
    }

    /// A noise field: a random mean colour plus per-pixel noise (σ up to 0.9), blotchy noise (a 2–16-cell grid
    /// resampled, σ up to 0.7) or both; clamped to [-1, 1].
    static func noiseField(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, using rng: inout PhiloxRandom) {
        let mean = [rng.unit() * 1.6 - 0.8, rng.unit() * 1.6 - 0.8, rng.unit() * 1.6 - 0.8]
        let kind = rng.next() % 3
        let pixelSigma = kind == 1 ? 0 : 0.1 + 0.8 * rng.unit()
        let blotchSigma = kind == 0 ? 0 : 0.15 + 0.55 * rng.unit()
        for i in 0..<(h * w * 3) { p[i] = mean[i % 3] }
        if pixelSigma > 0 {
            let z = rng.normal(shape: [h * w * 3], std: pixelSigma)
            z.withUnsafeBufferPointer { z in for i in 0..<(h * w * 3) { p[i] += z[i] } }
        }
        if blotchSigma > 0 {
            let cells = [2, 4, 8, 16][Int(rng.next() % 4)]
            let (sh, sw) = (min(cells, h), min(cells, w))
            JudgeAugmentation.upsampleBilinear(rng.normal(shape: [sh * sw * 3], std: blotchSigma).scalars, sh, sw,
                                               into: p, h, w, adding: true)
        }
        for i in 0..<(h * w * 3) { p[i] = min(max(p[i], -1), 1) }
    }

    /// One or two soft-edged ellipses of random colours (radii 4–22 pixels at 64) over a noise field, a flat
    /// colour or a vertical gradient, with some per-pixel noise on top.
    static func blob(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, using rng: inout PhiloxRandom) {
        let ground = rng.next() % 3
        if ground == 0 {
            noiseField(p, h, w, using: &rng)
        } else {
            let top = (0..<3).map { _ in rng.unit() * 2 - 1 }
            let bottom = ground == 1 ? top : (0..<3).map { _ in rng.unit() * 2 - 1 }
            for y in 0..<h {
                let t = Float(y) / Float(max(h - 1, 1))
                for x in 0..<w { for c in 0..<3 { p[(y * w + x) * 3 + c] = top[c] + (bottom[c] - top[c]) * t } }
            }
        }
        let unit = Float(w) / 64
        for _ in 0..<(1 + Int(rng.next() % 2)) {
            let color = (0..<3).map { _ in rng.unit() * 2 - 1 }
            let (cx, cy) = (Float(w) * (0.2 + 0.6 * rng.unit()), Float(h) * (0.2 + 0.6 * rng.unit()))
            let (rx, ry) = (unit * (4 + 18 * rng.unit()), unit * (4 + 18 * rng.unit()))
            let angle = rng.unit() * .pi, softness = unit * (0.5 + 4 * rng.unit())
            let (cs, sn) = (cosf(angle), sinf(angle))
            for y in 0..<h {
                for x in 0..<w {
                    let dx = Float(x) + 0.5 - cx, dy = Float(y) + 0.5 - cy
                    let u = (cs * dx + sn * dy) / rx, v = (-sn * dx + cs * dy) / ry
                    // approximate distance to the edge in pixels, negative inside
                    let d = ((u * u + v * v).squareRoot() - 1) * min(rx, ry)
                    let a = min(max(0.5 - d / softness, 0), 1)
                    for c in 0..<3 { p[(y * w + x) * 3 + c] += (color[c] - p[(y * w + x) * 3 + c]) * a }
                }
            }
        }
        let sigma = 0.25 * rng.unit()
        let z = rng.normal(shape: [h * w * 3], std: sigma)
        z.withUnsafeBufferPointer { z in for i in 0..<(h * w * 3) { p[i] = min(max(p[i] + z[i], -1), 1) } }
    }
}

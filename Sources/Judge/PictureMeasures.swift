// PictureMeasures: how alike pictures are, as the DreamBooth paper measures subject fidelity, prior preservation
// and diversity (Ruiz et al. 2023, Table 1: DINO / CLIP-I image similarity, PRES, DIV), here in the judge's
// feature space — and SSIM on pixels (Wang et al. 2004, as scikit-image's `structural_similarity` computes it
// with `gaussian_weights=True`).
import Foundation
import PNGImage
import PictureWorld
import TensorCore

public enum PictureMeasures {
    /// Cosine similarity of two feature vectors (0 when either is zero).
    public static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count, "feature vectors of different lengths")
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in a.indices {
            dot += Double(a[i]) * Double(b[i])
            na += Double(a[i]) * Double(a[i])
            nb += Double(b[i]) * Double(b[i])
        }
        return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
    }

    /// Mean cosine over every pair (a, b) with a from `a` and b from `b`: DreamBooth's DINO / CLIP-I score between
    /// generated and real pictures, and its PRES (class pictures against the subject's real ones).
    public static func meanCrossCosine(_ a: [[Float]], _ b: [[Float]]) -> Double {
        guard !a.isEmpty, !b.isEmpty else { return 0 }
        var sum = 0.0
        for x in a { for y in b { sum += cosine(x, y) } }
        return sum / Double(a.count * b.count)
    }

    /// Mean cosine of a[i] with b[i]: the same seed and prompt before and after training.
    public static func meanPairedCosine(_ a: [[Float]], _ b: [[Float]]) -> Double {
        precondition(a.count == b.count, "paired features of different counts")
        guard !a.isEmpty else { return 0 }
        return zip(a, b).reduce(0.0) { $0 + cosine($1.0, $1.1) } / Double(a.count)
    }

    /// DreamBooth's DIV: the mean distance (1 − cosine) between pictures made from the same prompt, over every
    /// pair within each group (`groups[i]` is picture i's prompt); groups of one picture add nothing.
    public static func diversity(_ features: [[Float]], groups: [String]) -> Double {
        precondition(features.count == groups.count, "one group name per picture")
        var sum = 0.0, pairs = 0
        for i in features.indices {
            for j in (i + 1)..<features.count where groups[i] == groups[j] {
                sum += 1 - cosine(features[i], features[j])
                pairs += 1
            }
        }
        return pairs == 0 ? 0 : sum / Double(pairs)
    }

    /// Structural similarity of two RGB pictures of one size, the mean over channels of the mean SSIM map
    /// (Gaussian window σ = 1.5 truncated at 3.5 σ, i.e. 11 taps, mirrored edges; K1 = 0.01, K2 = 0.03, data
    /// range 255; population covariances; the map's 5-pixel border left out), as scikit-image computes
    /// `structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
    /// use_sample_covariance=False, data_range=255)`. 1 = identical.
    public static func ssim(_ a: Image, _ b: Image) throws -> Double {
        guard a.width == b.width, a.height == b.height else {
            throw PNGError.invalidArgument("SSIM of a \(a.width)x\(a.height) and a \(b.width)x\(b.height) picture")
        }
        let radius = 5, (w, h) = (a.width, a.height)
        guard w > 2 * radius, h > 2 * radius else {
            throw PNGError.invalidArgument("SSIM needs pictures larger than 11x11, got \(w)x\(h)")
        }
        var taps = (-radius...radius).map { x in Foundation.exp(-0.5 * Double(x * x) / (1.5 * 1.5)) }
        let total = taps.reduce(0, +)
        taps = taps.map { $0 / total }
        // scipy.ndimage's "reflect": the edge sample repeats (d c b a | a b c d | d c b a).
        func mirror(_ i: Int, _ n: Int) -> Int {
            var i = i
            while i < 0 || i >= n { i = i < 0 ? -i - 1 : 2 * n - i - 1 }
            return i
        }
        func blur(_ x: [Double]) -> [Double] {
            var rows = [Double](repeating: 0, count: w * h), out = rows
            for y in 0..<h {
                for x0 in 0..<w {
                    var s = 0.0
                    for (k, t) in taps.enumerated() { s += t * x[y * w + mirror(x0 + k - radius, w)] }
                    rows[y * w + x0] = s
                }
            }
            for y in 0..<h {
                for x0 in 0..<w {
                    var s = 0.0
                    for (k, t) in taps.enumerated() { s += t * rows[mirror(y + k - radius, h) * w + x0] }
                    out[y * w + x0] = s
                }
            }
            return out
        }
        let c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255)
        var channels = 0.0
        for c in 0..<3 {
            let x = (0..<(w * h)).map { Double(a.pixels[3 * $0 + c]) }, y = (0..<(w * h)).map { Double(b.pixels[3 * $0 + c]) }
            let ux = blur(x), uy = blur(y)
            let uxx = blur(zip(x, x).map(*)), uyy = blur(zip(y, y).map(*)), uxy = blur(zip(x, y).map(*))
            var sum = 0.0
            for py in radius..<(h - radius) {
                for px in radius..<(w - radius) {
                    let i = py * w + px
                    let vx = uxx[i] - ux[i] * ux[i], vy = uyy[i] - uy[i] * uy[i], vxy = uxy[i] - ux[i] * uy[i]
                    sum += (2 * ux[i] * uy[i] + c1) * (2 * vxy + c2) / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2))
                }
            }
            channels += sum / Double((w - 2 * radius) * (h - 2 * radius))
        }
        return channels / 3
    }

    /// Mean SSIM of a[i] with b[i].
    public static func meanSSIM(_ a: [Image], _ b: [Image]) throws -> Double {
        precondition(a.count == b.count, "paired pictures of different counts")
        guard !a.isEmpty else { return 0 }
        return try zip(a, b).reduce(0.0) { $0 + (try ssim($1.0, $1.1)) } / Double(a.count)
    }

    /// How much of `image` is toned as a sepia print: the fraction of its pixels whose colour lies within
    /// `tolerance` (8-bit RGB distance) of the sepia ramp (`Examples.sepiaRamp`, dark brown to cream). A sepia
    /// print scores 1; the picture world's coloured scenes score far lower (its greys lie near the ramp too, so a
    /// picture is called sepia only above a high share: `isSepia`).
    public static func sepiaTone(_ image: Image, tolerance: Float = 24) -> Double {
        let (d, l) = Examples.sepiaRamp
        let axis = (l.0 - d.0, l.1 - d.1, l.2 - d.2)
        let length2 = axis.0 * axis.0 + axis.1 * axis.1 + axis.2 * axis.2
        var near = 0
        image.pixels.withUnsafeBufferPointer { p in
            for i in stride(from: 0, to: p.count, by: 3) {
                let v = (Float(p[i]) - d.0, Float(p[i + 1]) - d.1, Float(p[i + 2]) - d.2)
                let t = min(max((v.0 * axis.0 + v.1 * axis.1 + v.2 * axis.2) / length2, 0), 1)
                let e = (v.0 - t * axis.0, v.1 - t * axis.1, v.2 - t * axis.2)
                if e.0 * e.0 + e.1 * e.1 + e.2 * e.2 <= tolerance * tolerance { near += 1 }
            }
        }
        return image.pixels.isEmpty ? 0 : Double(near) / Double(image.pixels.count / 3)
    }

    /// Whether `image` reads as a sepia print: at least `share` of its pixels on the sepia ramp.
    public static func isSepia(_ image: Image, share: Double = 0.9) -> Bool {
        sepiaTone(image) >= share
    }

    /// Improved precision and recall (Kynkäänniemi et al. 2019) of generated against real feature vectors: each
    /// real vector's ball reaches its k-th nearest real neighbour (Euclidean), and the real manifold is the union
    /// of those balls. Precision is the share of generated vectors inside the real manifold (pictures that look
    /// like real ones: clean); recall, with the roles swapped, the share of real vectors inside the generated
    /// manifold (how much of the real variety the generator covers). Both 0 when a set has k or fewer vectors.
    public static func precisionRecall(generated: [[Float]], real: [[Float]], k: Int = 3) -> (precision: Double, recall: Double) {
        func distance(_ a: [Float], _ b: [Float]) -> Double {
            var sum = 0.0
            for i in a.indices { let d = Double(a[i] - b[i]); sum += d * d }
            return sum.squareRoot()
        }
        /// The share of `queries` within the k-NN balls of `set`.
        func coverage(_ queries: [[Float]], _ set: [[Float]]) -> Double {
            guard set.count > k, !queries.isEmpty else { return 0 }
            let radii = set.indices.map { i in set.indices.filter { $0 != i }.map { distance(set[i], set[$0]) }.sorted()[k - 1] }
            let inside = queries.filter { q in set.indices.contains { distance(q, set[$0]) <= radii[$0] } }.count
            return Double(inside) / Double(queries.count)
        }
        return (coverage(generated, real), coverage(real, generated))
    }

    /// `count` rendered pictures of what `prompt` names, the real side of `precisionRecall` for it: each a scene
    /// with the object, colour, place, coat and style the prompt names, and the rest drawn from the base world
    /// (`WorldOptions.base`), laid out at random; seeded, so a measure is reproducible.
    public static func renderedReference(for prompt: String, count: Int, size: Int = 64, seed: UInt64 = 0x5EF0) throws -> [Image] {
        let named = Caption.parse(prompt), options = WorldOptions.base
        var rng = PhiloxRandom(seed: seed)
        return try (0..<count).map { _ in
            let object = named.object ?? rng.pick(options.objects)
            let labels = SceneLabels(object: object, color: named.color ?? rng.pick(options.colors),
                                     background: named.background ?? rng.pick(options.backgrounds),
                                     pattern: object.hasCoat ? named.pattern ?? rng.pick(options.patterns) : .plain,
                                     style: named.style ?? rng.pick(options.styles))
            return try Scene.random(labels, using: &rng).render(size: size)
        }
    }
}

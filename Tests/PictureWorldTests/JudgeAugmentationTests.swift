// The judge's training pictures: JPEG-like compression against Pillow/libjpeg (goldens:
// Tests/Reference/make_jpeg_goldens.py), colour jitter that keeps every colour name, blur, determinism of a
// training batch, pictures of no object and their targets.
import Foundation
@testable import Judge
@testable import PictureWorld
import TensorCore
import TestSupport
import XCTest

final class JudgeAugmentationTests: XCTestCase {
    /// The picture make_jpeg_goldens.py builds, from the same integer formula, in [-1, 1].
    static func goldenPicture(width: Int, height: Int) -> [Float] {
        var out = [Float](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    let v = (x * 9 + y * 5 + c * 40 + ((x / 3 + y / 2) % 2) * 60) % 256
                    out[(y * width + x) * 3 + c] = Float(v) / 127.5 - 1
                }
            }
        }
        return out
    }

    func testJPEGLikeCompressionMatchesLibjpeg() throws {
        struct Golden: Decodable {
            struct Case: Decodable { let quality: Int; let pixels: [Int] }
            let width: Int, height: Int, cases: [Case]
        }
        let url = URL(fileURLWithPath: TestPaths.tests("PictureWorldTests/Fixtures/jpeg_goldens.json"))
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
        let input = Self.goldenPicture(width: golden.width, height: golden.height)
        for g in golden.cases {
            var picture = input
            picture.withUnsafeMutableBufferPointer {
                JudgeAugmentation.compress($0.baseAddress!, golden.height, golden.width, quality: g.quality, subsampleChroma: false)
            }
            var ours = 0.0, theirs = 0.0
            for i in 0..<input.count {
                let mine = Double((picture[i] + 1) * 127.5), original = Double((input[i] + 1) * 127.5)
                ours += abs(mine - Double(g.pixels[i]))
                theirs += abs(Double(g.pixels[i]) - original)
            }
            ours /= Double(input.count)
            theirs /= Double(input.count)
            // libjpeg's integer DCT rounds differently: about a level apart, against 5–32 levels of compression error
            XCTAssertLessThan(ours, 2.0, "quality \(g.quality): mean |ours − libjpeg| \(ours)")
            XCTAssertLessThan(ours, 0.3 * theirs, "quality \(g.quality): libjpeg's own error \(theirs)")
        }
    }

    func testJPEGAtQuality100KeepsThePictureAndFlatBlocksStayFlat() {
        var picture = Self.goldenPicture(width: 24, height: 16)
        let input = picture
        picture.withUnsafeMutableBufferPointer { JudgeAugmentation.compress($0.baseAddress!, 16, 24, quality: 100, subsampleChroma: false) }
        for i in 0..<input.count { XCTAssertEqual(picture[i], input[i], accuracy: 3 / 127.5, "sample \(i)") }
        var flat = [Float](repeating: 0.3, count: 16 * 16 * 3)
        flat.withUnsafeMutableBufferPointer { JudgeAugmentation.compress($0.baseAddress!, 16, 16, quality: 10, subsampleChroma: true) }
        for i in 0..<flat.count { XCTAssertEqual(flat[i], flat[i % 3], accuracy: 1e-4) }
        // the DCT basis is orthonormal
        let b = JudgeAugmentation.dctBasis
        for u in 0..<8 {
            for v in 0..<8 {
                let dot = (0..<8).reduce(Float(0)) { $0 + b[u * 8 + $1] * b[v * 8 + $1] }
                XCTAssertEqual(dot, u == v ? 1 : 0, accuracy: 1e-5)
            }
        }
        XCTAssertEqual(JudgeAugmentation.scaledTable(JudgeAugmentation.lumaTable, quality: 50), JudgeAugmentation.lumaTable)
        XCTAssertEqual(JudgeAugmentation.scaledTable(JudgeAugmentation.lumaTable, quality: 100), [Float](repeating: 1, count: 64))
    }

    /// At every corner of the jitter's range, on dark, mid and light pictures, each named colour stays nearest itself.
    func testColourJitterKeepsColourNames() {
        let named = NamedColor.allCases.map { $0.rgb }
        func nearest(_ r: Float, _ g: Float, _ b: Float) -> Int {
            named.indices.min { i, j in
                let (p, q) = (named[i], named[j])
                return (p.r - r) * (p.r - r) + (p.g - g) * (p.g - g) + (p.b - b) * (p.b - b)
                    < (q.r - r) * (q.r - r) + (q.g - g) * (q.g - g) + (q.b - b) * (q.b - b)
            }!
        }
        for (k, color) in named.enumerated() {
            for gain: Float in [0.94, 1.06] {
                for channels in 0..<8 {
                    let g = (0..<3).map { (channels >> $0) & 1 == 0 ? 0.97 * gain : 1.03 * gain }
                    for contrast: Float in [0.9, 1.1] {
                        for saturation: Float in [0.9, 1.1] {
                            for offset: Float in [-0.02, 0.02] {
                                for ground: Float in [0.2, 0.5, 0.8] {
                                    // one pixel of the colour among 99 of the ground: the mean is about the ground's
                                    var p = [Float](repeating: ground * 2 - 1, count: 300)
                                    (p[0], p[1], p[2]) = (color.r * 2 - 1, color.g * 2 - 1, color.b * 2 - 1)
                                    p.withUnsafeMutableBufferPointer {
                                        JudgeAugmentation.jitterColors($0.baseAddress!, 100, gain: g, contrast: contrast,
                                                                       saturation: saturation, offset: offset)
                                    }
                                    XCTAssertEqual(nearest((p[0] + 1) / 2, (p[1] + 1) / 2, (p[2] + 1) / 2), k,
                                                   "\(NamedColor.allCases[k]) gain \(g) contrast \(contrast) saturation \(saturation)")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    func testBlurKeepsFlatPicturesAndSoftensEdges() {
        var step = [Float](repeating: -1, count: 16 * 16 * 3)
        for y in 0..<16 { for x in 8..<16 { for c in 0..<3 { step[(y * 16 + x) * 3 + c] = 1 } } }
        for blur in 0..<2 {
            var p = step
            p.withUnsafeMutableBufferPointer {
                if blur == 0 { JudgeAugmentation.gaussianBlur($0.baseAddress!, 16, 16, sigma: 1) }
                else { JudgeAugmentation.resampleBlur($0.baseAddress!, 16, 16) }
            }
            // far from the edge nothing changes; beside it values move toward the middle; every row sums the same
            XCTAssertEqual(p[(5 * 16 + 1) * 3], -1, accuracy: 1e-5)
            XCTAssertEqual(p[(5 * 16 + 14) * 3], 1, accuracy: 1e-5)
            XCTAssertGreaterThan(p[(5 * 16 + 7) * 3], -1 + 0.05)
            XCTAssertLessThan(p[(5 * 16 + 8) * 3], 1 - 0.05)
            let row = (0..<16).reduce(Float(0)) { $0 + p[(5 * 16 + $1) * 3] }
            XCTAssertEqual(row, 0, accuracy: 1e-3)
        }
    }

    func testTrainingBatchIsDeterministicAndHoldsPicturesOfNoObject() throws {
        var config = JudgeTrainingConfig(seed: 3, steps: 1)
        config.batchSize = 48
        let data = try JudgeTraining.trainingData(config)
        let (a, ta) = try JudgeTraining.trainingBatch(config, step: 2, data: data)
        let (b, tb) = try JudgeTraining.trainingBatch(config, step: 2, data: data)
        XCTAssertEqual(a.scalars, b.scalars)
        XCTAssertEqual(ta, tb)
        let (c, _) = try JudgeTraining.trainingBatch(config, step: 3, data: data)
        XCTAssertNotEqual(a.scalars, c.scalars)
        XCTAssertEqual(a.shape, [48, 64, 64, 3])
        XCTAssertTrue(a.scalars.allSatisfy { $0 >= -1 && $0 <= 1 })
        // some pictures show no object: their colour and coat are left out of the loss
        let none = ta.filter { $0[0] == JudgeHeads.noObject }
        XCTAssertGreaterThan(none.count, 0)
        XCTAssertTrue(none.allSatisfy { $0[1] == JudgeHeads.ignored && $0[3] == JudgeHeads.ignored })
        XCTAssertEqual(JudgeHeads.describe(targets: ta.first { $0[0] != JudgeHeads.noObject }!).split(separator: " ").count, 6)
        // the clean head: no target for pictures of no object; pictures of an object are clean (1), visibly
        // degraded (0) or, when only slightly degraded, left out — and a batch this size holds both classes
        XCTAssertTrue(none.allSatisfy { $0[5] == JudgeHeads.ignored })
        let objects = ta.filter { $0[0] != JudgeHeads.noObject }.map { $0[5] }
        XCTAssertTrue(objects.contains(1) && objects.contains(0), "\(objects)")
        XCTAssertTrue(objects.allSatisfy { [0, 1, JudgeHeads.ignored].contains($0) })
        // ghosted mixes of two pictures: only the clean head has a target, degraded
        let ghosts = ta.filter { $0[0] == JudgeHeads.ignored }
        XCTAssertTrue(ghosts.allSatisfy { $0 == [-1, -1, -1, -1, -1, 0] }, "\(ghosts)")
    }

    /// With every picture mode-mixed (and nothing else), each is a patchwork whose blocks come from its own scene
    /// or a variant of it, with only a clean-head target (degraded); the background, the same in every variant,
    /// stays where the object is not.
    func testModeMixIsAPatchworkOfTheScenesVariants() throws {
        var config = JudgeTrainingConfig(seed: 5, steps: 1)
        config.batchSize = 6
        (config.noObjectShare, config.tonedShare, config.ghostShare, config.modeMixShare, config.cleanShare) = (0, 0, 0, 1, 1)
        let data = try JudgeTraining.trainingData(config)
        let (images, targets) = try JudgeTraining.trainingBatch(config, step: 0, data: data)
        XCTAssertTrue(targets.allSatisfy { $0 == [-1, -1, -1, -1, -1, 0] }, "\(targets)")
        var changed = 0
        for i in 0..<6 {
            let original = try data.describe(i).scene.render(size: 64).pixels.map { Float($0) / 127.5 - 1 }
            let mixed = Array(images.scalars[(i * 64 * 64 * 3)..<((i + 1) * 64 * 64 * 3)])
            let same = zip(original, mixed).filter { abs($0 - $1) < 1e-6 }.count
            XCTAssertGreaterThan(same, original.count / 2, "picture \(i): mostly the scene (its background)")
            if same < original.count { changed += 1 }
        }
        XCTAssertGreaterThanOrEqual(changed, 5, "the object is patched from other variants")
    }

    /// A ghosted picture is the mix (1 − w)·a + w·b of two pictures of the batch, w in [0.3, 0.5].
    func testGhostMixesTwoPicturesOfTheBatch() throws {
        var images = try Tensor(shape: [3, 2, 2, 3], scalars: (0..<36).map { Float($0 / 12) - 1 })   // -1, 0, 1 per picture
        var targets = [[Int]](repeating: [1, 1, 1, 1, 1, 1], count: 3)
        var rng = PhiloxRandom(seed: 2)
        JudgeTraining.ghost(&images, targets: &targets, share: 1, using: &rng)
        for i in 0..<3 {
            XCTAssertEqual(targets[i], [-1, -1, -1, -1, -1, 0])
            let v = images.scalars[i * 12], own = Float(i - 1)
            XCTAssertTrue(images.scalars[(i * 12)..<((i + 1) * 12)].allSatisfy { $0 == v }, "one flat mix per picture")
            // some other picture's value o with v = (1 - w)·own + w·o, w in [0.3, 0.5]
            let weights = [-1, 0, 1].map(Float.init).filter { $0 != own }.map { (v - own) / ($0 - own) }
            XCTAssertTrue(weights.contains { $0 >= 0.3 - 1e-6 && $0 <= 0.5 + 1e-6 }, "picture \(i): \(v)")
        }
    }

    /// augment says what it did: nothing (or colour jitter alone) leaves a picture clean; a 2× resample blur or
    /// strong noise is visible; only a light JPEG is mild.
    func testAugmentReportsHowDegradedAPictureIs() throws {
        let image = try WorldDataset(seed: 8).sample(at: 0).image
        func run(_ p: JudgeAugmentation.Probabilities, seed: UInt64) throws -> (JudgeAugmentation.Degradation, [Float]) {
            var t = try Tensor(shape: [1, 64, 64, 3], scalars: image.pixels.map { Float($0) / 127.5 - 1 })
            var rng = PhiloxRandom(seed: seed)
            let d = JudgeAugmentation.augment(&t, using: &rng, probabilities: p)
            return (d[0], t.scalars)
        }
        var nothing = JudgeAugmentation.Probabilities()
        (nothing.blur, nothing.noise, nothing.jpeg) = (0, 0, 0)
        nothing.jitter = 1
        XCTAssertEqual(try run(nothing, seed: 1).0, .none)
        var all = JudgeAugmentation.Probabilities()
        (all.jitter, all.blur, all.noise, all.jpeg) = (0, 1, 1, 1)
        var seen: Set<String> = []
        for seed in 0..<40 as Range<UInt64> { seen.insert("\(try run(all, seed: seed).0)") }
        XCTAssertTrue(seen.contains("visible"), "\(seen)")
        XCTAssertFalse(seen.contains("none"), "every degradation applied: never clean")
    }

    func testPicturesOfNoObject() throws {
        var sceneRandom = PhiloxRandom(seed: 5)
        let scene = Scene.random(SceneLabels(object: .dog, color: .red, background: .snow), using: &sceneRandom)
        // a bare place: the scene without its dog differs from the scene, and is the same place without any object
        let withDog = try scene.render(size: 64), bare = try scene.render(size: 64, showingObject: false)
        XCTAssertNotEqual(withDog, bare)
        var other = scene
        other.labels.object = .car
        XCTAssertEqual(try other.render(size: 64, showingObject: false), bare)
        var p = [Float](repeating: 0, count: 64 * 64 * 3)
        var rng = PhiloxRandom(seed: 9)
        for kind in NoObjectKind.allCases {
            let targets = try p.withUnsafeMutableBufferPointer {
                try NoObjectImages.draw(kind, into: $0.baseAddress!, 64, 64, scene: scene, using: &rng)
            }
            XCTAssertEqual(targets[0], JudgeHeads.noObject, kind.name)
            XCTAssertEqual(targets[2], kind == .barePlace ? Background.snow.rawValue : JudgeHeads.ignored, kind.name)
            XCTAssertTrue(p.allSatisfy { $0 >= -1 && $0 <= 1 }, kind.name)
            XCTAssertGreaterThan(Set(p).count, 10, kind.name)
        }
    }
}

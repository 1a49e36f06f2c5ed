// The style measures of the style report: the sepia-tone test separates sepia prints from the picture world's
// scenes; the float sepia print the judge trains on is `Examples.sepia` before rounding; and the committed judge
// reads object, colour and place on pixel-art scenes (the content the report checks for that style).
@testable import Judge
import PNGImage
import PictureWorld
import TensorCore
import TestSupport
import XCTest

final class StyleMeasureTests: XCTestCase {
    /// 200 held-out scenes of the base world (64 px) and their sepia prints.
    static func scenes() throws -> [Scene] {
        var rng = PhiloxRandom(seed: JudgeTraining.heldoutSeed ^ 0x5E)
        return (0..<200).map { _ in Scene.random(using: &rng, options: .base) }
    }

    func testSepiaToneSeparatesSepiaPrintsFromScenes() throws {
        var plain: [Double] = [], sepia: [Double] = []
        let scenes = try Self.scenes()
        for scene in scenes {
            let image = try scene.render(size: 64)
            plain.append(PictureMeasures.sepiaTone(image))
            sepia.append(PictureMeasures.sepiaTone(try Examples.sepia(image)))
        }
        XCTAssertEqual(sepia.min()!, 1, "every pixel of a sepia print lies on the ramp")
        XCTAssertLessThan(plain.max()!, 0.8, "no coloured scene is mostly on the ramp (greys are near it)")
        XCTAssertLessThan(plain.reduce(0, +) / 200, 0.3)
        XCTAssertFalse(try scenes.prefix(50).contains { PictureMeasures.isSepia(try $0.render(size: 64)) })
        // a grey picture is off the warm ramp at the light end; a flat mid-brown on it
        XCTAssertEqual(PictureMeasures.sepiaTone(try Image(width: 8, height: 8, color: (255, 255, 255))), 0)
        XCTAssertEqual(PictureMeasures.sepiaTone(try Image(width: 8, height: 8, color: (145, 126, 99))), 1)
    }

    func testFloatSepiaIsTheExamplesSepiaBeforeRounding() throws {
        let image = try Self.scenes()[0].render(size: 64)
        let expected = try Examples.sepia(image)
        var t = try Tensor(shape: [64, 64, 3], scalars: image.pixels.map { Float($0) / 127.5 - 1 })
        t.withUnsafeMutableBufferPointer { JudgeAugmentation.sepia($0.baseAddress!, 64, 64) }
        let got = t.scalars.map { UInt8((min(max($0, -1), 1) + 1) * 127.5 + 0.5) }
        XCTAssertLessThanOrEqual(zip(got, expected.pixels).map { abs(Int($0) - Int($1)) }.max()!, 1)
    }

    /// The random monochrome prints the judge trains on leave every pixel on one line through colour space.
    func testRandomToneIsAMonochromePrint() throws {
        let image = try Self.scenes()[1].render(size: 64)
        for seed in 0..<8 as Range<UInt64> {
            var t = try Tensor(shape: [64, 64, 3], scalars: image.pixels.map { Float($0) / 127.5 - 1 })
            var rng = PhiloxRandom(seed: seed)
            t.withUnsafeMutableBufferPointer { JudgeAugmentation.randomTone($0.baseAddress!, 64, 64, using: &rng) }
            let s = t.scalars
            let pixels: [SIMD3<Float>] = (0..<4096).map { SIMD3(s[$0 * 3], s[$0 * 3 + 1], s[$0 * 3 + 2]) }
            // the darkest and lightest pixels span the ramp; every pixel is on the segment between them
            let sums: [Float] = pixels.map { $0.sum() }
            let a = pixels[sums.indices.min { sums[$0] < sums[$1] }!], b = pixels[sums.indices.max { sums[$0] < sums[$1] }!]
            let axis: SIMD3<Float> = b - a
            let len2: Float = (axis * axis).sum()
            XCTAssertGreaterThan(len2, 0.5, "seed \(seed): a ramp with contrast")
            let worst: Float = pixels.map { p -> Float in
                let v: SIMD3<Float> = p - a
                let e: SIMD3<Float> = v - ((v * axis).sum() / len2) * axis
                return (e * e).sum()
            }.max()!
            XCTAssertLessThan(worst, 1e-8, "seed \(seed)")
        }
    }

    /// The style report reads pixel art with the judge's style head and its content (object, colour, place):
    /// on rendered pixel-art scenes both hold nearly always, so the report's rows measure the adapter.
    func testCommittedJudgeReadsPixelArtAndItsContent() throws {
        let judge = try Judge(contentsOf: JudgeTests.committedWeights)
        var images: [Image] = [], labels: [SceneLabels] = []
        for scene in try Self.scenes() {
            var l = scene.labels
            l.style = .pixelArt
            images.append(try Scene(labels: l, layout: scene.layout).render(size: 64))
            labels.append(scene.labels)
        }
        let verdicts = try judge.evaluate(images)
        XCTAssertGreaterThanOrEqual(Fidelity.rate(verdicts) { $0.style == .pixelArt }, 0.95)
        let content = zip(verdicts, labels).filter { $0.object == $1.object && $0.color == $1.color && $0.background == $1.background }
        XCTAssertGreaterThanOrEqual(Double(content.count) / 200, 0.95)
    }

    /// Sepia prints take the colour away; the judge (trained on monochrome prints) still reads object and place,
    /// the content the style report checks for sepia.
    func testCommittedJudgeReadsObjectAndPlaceOnSepiaPrints() throws {
        let judge = try Judge(contentsOf: JudgeTests.committedWeights)
        let accuracy = try JudgeTraining.accuracy(of: judge, count: 200, sepia: true)
        XCTAssertGreaterThanOrEqual(accuracy.object, 0.9, "\(accuracy)")
        XCTAssertGreaterThanOrEqual(accuracy.background, 0.95, "\(accuracy)")
    }
}

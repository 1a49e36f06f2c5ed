// PictureMeasures: SSIM against scikit-image (goldens: Tests/Reference/make_ssim_goldens.py), the feature
// measures on hand-made vectors, the judge's features on rendered scenes, and labelled grids.
import Foundation
@testable import Judge
import PictureWorld
import PNGImage
import TensorCore
import TestSupport
import XCTest

final class PictureMeasuresTests: XCTestCase {
    /// The pictures make_ssim_goldens.py builds, from the same integer formulas.
    static func picture(_ name: String, width: Int, height: Int) throws -> Image {
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    let base = (x * 7 + y * 13 + c * 29 + (x * y) % 17) % 256
                    let value: Int
                    switch name {
                    case "base": value = base
                    case "stripes": value = min(255, base + ((x / 4 + y / 3) % 2) * 40)
                    case "noisy": value = max(0, min(255, base + ((x * 31 + y * 17 + c * 11) % 23 - 11) * 3))
                    case "inverse": value = 255 - base
                    case "flat": value = 128
                    default: throw PNGError.invalidArgument("no picture \(name)")
                    }
                    pixels.append(UInt8(value))
                }
            }
        }
        return try Image(width: width, height: height, pixels: pixels)
    }

    func testSSIMMatchesScikitImage() throws {
        struct Goldens: Decodable {
            struct Case: Decodable { let a: String, b: String, ssim: Double }
            let width: Int, height: Int, cases: [Case]
        }
        let url = URL(fileURLWithPath: TestPaths.tests("PictureWorldTests/Fixtures/ssim_goldens.json"))
        let goldens = try JSONDecoder().decode(Goldens.self, from: Data(contentsOf: url))
        XCTAssertEqual(goldens.cases.count, 6)
        for c in goldens.cases {
            let a = try Self.picture(c.a, width: goldens.width, height: goldens.height)
            let b = try Self.picture(c.b, width: goldens.width, height: goldens.height)
            XCTAssertEqual(try PictureMeasures.ssim(a, b), c.ssim, accuracy: 1e-9, "\(c.a) vs \(c.b)")
        }
        let small = try Image(width: 8, height: 8, color: (1, 2, 3))
        XCTAssertThrowsError(try PictureMeasures.ssim(small, small))
        XCTAssertThrowsError(try PictureMeasures.ssim(try Self.picture("base", width: 40, height: 32),
                                                      try Self.picture("base", width: 32, height: 40)))
    }

    func testFeatureMeasures() {
        XCTAssertEqual(PictureMeasures.cosine([1, 0], [0, 2]), 0, accuracy: 1e-12)
        XCTAssertEqual(PictureMeasures.cosine([1, 1], [2, 2]), 1, accuracy: 1e-12)
        XCTAssertEqual(PictureMeasures.cosine([0, 0], [2, 2]), 0)
        // cross: (cos(x,x) + cos(x,y) + cos(y,x) + cos(y,y)) / 4 with x ⟂ y
        XCTAssertEqual(PictureMeasures.meanCrossCosine([[1, 0], [0, 1]], [[1, 0], [0, 1]]), 0.5, accuracy: 1e-12)
        XCTAssertEqual(PictureMeasures.meanPairedCosine([[1, 0], [0, 1]], [[1, 0], [0, 1]]), 1, accuracy: 1e-12)
        // one pair per group: "p" (x, y) ⟂ → distance 1; "q" (x, x) → 0; "r" alone adds nothing
        let f: [[Float]] = [[1, 0], [0, 1], [3, 0], [1, 0], [5, 5]]
        XCTAssertEqual(PictureMeasures.diversity(f, groups: ["p", "p", "q", "q", "r"]), 0.5, accuracy: 1e-12)
        XCTAssertEqual(PictureMeasures.diversity(f, groups: ["a", "b", "c", "d", "e"]), 0)
    }

    /// Improved precision and recall on points of a line, worked by hand (k = 1): real 0, 1, 2, 3, 10 have radii
    /// 1, 1, 1, 1, 7; of the generated 0.5, 5, 20 the first two fall in a real ball (5 in 10's). Generated radii
    /// 4.5, 4.5, 15 cover every real point (10 through 20's ball).
    func testPrecisionRecallByHand() {
        let real: [[Float]] = [[0], [1], [2], [3], [10]], generated: [[Float]] = [[0.5], [5], [20]]
        let pr = PictureMeasures.precisionRecall(generated: generated, real: real, k: 1)
        XCTAssertEqual(pr.precision, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(pr.recall, 1, accuracy: 1e-12)
        // k = 2: real radii 2, 1, 1, 2, 8 (10's second neighbour is 2): 20 is still out; generated radii 15, 15, 15
        XCTAssertEqual(PictureMeasures.precisionRecall(generated: generated, real: real, k: 2).precision, 2.0 / 3, accuracy: 1e-12)
        // too few vectors for k neighbours: 0
        XCTAssertEqual(PictureMeasures.precisionRecall(generated: generated, real: real, k: 3).recall, 0)
    }

    /// Fresh renders of a prompt lie in the manifold of other renders of it and cover it; one picture repeated
    /// (a generator that draws the same thing every time) is precise but covers almost nothing.
    func testPrecisionRecallOfRendersAndACollapsedSet() throws {
        let judge = try Judge(contentsOf: JudgeTests.committedWeights)
        let real = try judge.features(try PictureMeasures.renderedReference(for: "a photo of a dog", count: 100))
        let fresh = try judge.features(try PictureMeasures.renderedReference(for: "a photo of a dog", count: 50, seed: 9))
        let pr = PictureMeasures.precisionRecall(generated: fresh, real: real)
        XCTAssertGreaterThanOrEqual(pr.precision, 0.9)
        XCTAssertGreaterThanOrEqual(pr.recall, 0.8)
        let collapsed = PictureMeasures.precisionRecall(generated: [[Float]](repeating: fresh[0], count: 50), real: real)
        XCTAssertEqual(collapsed.precision, 1)
        XCTAssertLessThanOrEqual(collapsed.recall, 0.05)
        // the reference shows what the prompt names
        let verdicts = try judge.evaluate(try PictureMeasures.renderedReference(for: "a red car in the snow", count: 10))
        XCTAssertGreaterThanOrEqual(verdicts.filter { $0.object == .car && $0.background == .snow }.count, 9)
    }

    /// The judge's features of a scene lie closer to the same scene re-rendered with another seed than to a
    /// different object on another background.
    func testJudgeFeaturesTellScenesApart() throws {
        let judge = try Judge(contentsOf: JudgeTests.committedWeights)
        let dog = SceneLabels(object: .dog, color: .white, background: .grass)
        let car = SceneLabels(object: .car, color: .red, background: .snow)
        var rng = PhiloxRandom(seed: 7)
        let images = try [Scene.random(dog, using: &rng), Scene.random(dog, using: &rng), Scene.random(car, using: &rng)]
            .map { try $0.render(size: 64) }
        let f = try judge.features(images)
        XCTAssertEqual(f.map(\.count), [128, 128, 128])
        XCTAssertGreaterThan(PictureMeasures.cosine(f[0], f[1]), PictureMeasures.cosine(f[0], f[2]))
        // features and heads agree: evaluate reads the same layer
        XCTAssertEqual(try judge.evaluate(images).map(\.object), [.dog, .dog, .car])
    }

    func testGridWithRowLabels() throws {
        let tiles = try (0..<4).map { try Image(width: 10, height: 12, color: (UInt8(40 * $0), 0, 0)) }
        let plain = try Image.grid(tiles, columns: 2, gap: 2)
        let labelled = try Image.grid(tiles, columns: 2, gap: 2, rowLabels: ["BEFORE", "AFTER"], title: "A PHOTO")
        let labelWidth = PixelFont.width(of: "BEFORE") + 8, titleHeight = PixelFont.height() + 8
        XCTAssertEqual(labelled.width, plain.width + labelWidth)
        XCTAssertEqual(labelled.height, plain.height + titleHeight)
        // the grid sits unchanged right of the labels and below the title
        XCTAssertEqual(try labelled.cropped(x: labelWidth, y: titleHeight, width: plain.width, height: plain.height), plain)
        // the labels and the title put dark pixels into the margin
        let margin = try labelled.cropped(x: 0, y: 0, width: labelWidth, height: labelled.height)
        XCTAssertTrue(margin.pixels.contains(0))
        let blank = try Image.grid(tiles, columns: 2, gap: 2, rowLabels: ["", ""])
        XCTAssertFalse(try blank.cropped(x: 0, y: 0, width: 8, height: blank.height).pixels.contains(0))
    }
}

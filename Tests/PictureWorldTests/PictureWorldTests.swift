// Picture world: determinism, coverage of every label, captions that parse back, the rasteriser's
// anti-aliasing, and the base world's exclusions (reserved coat, unseen style).
import Foundation
import PNGImage
@testable import PictureWorld
import TensorCore
import XCTest

final class PictureWorldTests: XCTestCase {
    func testSameSeedGivesSameBytes() throws {
        let a = try WorldDataset(seed: 42), b = try WorldDataset(seed: 42)
        for i in [0, 1, 17, 999] {
            let (x, y) = (try a.sample(at: i), try b.sample(at: i))
            XCTAssertEqual(x.caption, y.caption)
            XCTAssertEqual(try PNG.encode(x.image), try PNG.encode(y.image), "item \(i)")
        }
        // Items do not depend on the order in which they are drawn.
        XCTAssertEqual(try a.sample(at: 17).image, try a.sample(at: 17).image)
    }

    func testDifferentSeedsAndIndicesDiffer() throws {
        let a = try WorldDataset(seed: 1), b = try WorldDataset(seed: 2)
        var differing = 0
        for i in 0..<20 where try a.sample(at: i).image != b.sample(at: i).image { differing += 1 }
        XCTAssertEqual(differing, 20)
        XCTAssertNotEqual(try a.sample(at: 0).image, try a.sample(at: 1).image)
    }

    func testBatchIsNHWCInUnitRange() throws {
        let data = try WorldDataset(seed: 5)
        let (images, captions, labels) = try data.batch([3, 4])
        XCTAssertEqual(images.shape, [2, 64, 64, 3])
        XCTAssertEqual(captions.count, 2)
        XCTAssertEqual(labels[1], data.describe(4).scene.labels)
        let s = images.scalars
        XCTAssertGreaterThanOrEqual(s.min() ?? -2, -1)
        XCTAssertLessThanOrEqual(s.max() ?? 2, 1)
        XCTAssertEqual(try Image(tensorHWC: try images.slice(1)),
                       try data.sample(at: 4).image)
    }

    func testEveryLabelRendersDistinctly() throws {
        var rng = PhiloxRandom(seed: 9)
        let base = Scene.random(SceneLabels(object: .dog, color: .brown, background: .grass), using: &rng)
        func image(_ change: (inout SceneLabels) -> Void) throws -> Image {
            var scene = base
            change(&scene.labels)
            return try scene.render()
        }
        let reference = try image { _ in }
        for o in ObjectKind.allCases where o != .dog {
            XCTAssertNotEqual(try image { $0.object = o }, reference, "\(o)")
        }
        for c in NamedColor.allCases where c != .brown {
            XCTAssertNotEqual(try image { $0.color = c }, reference, "\(c)")
        }
        for b in Background.allCases where b != .grass {
            XCTAssertNotEqual(try image { $0.background = b }, reference, "\(b)")
        }
        for p in CoatPattern.allCases where p != .plain {
            XCTAssertNotEqual(try image { $0.pattern = p }, reference, "\(p)")
        }
        for s in RenderStyle.allCases where s != .photo {
            XCTAssertNotEqual(try image { $0.style = s }, reference, "\(s)")
        }
        let big = try base.render(size: 128)
        XCTAssertEqual([big.width, big.height], [128, 128])
        XCTAssertThrowsError(try base.render(size: 0))
    }

    /// Every object, colour, background and style, with a coat pattern that varies with colour and background.
    static var everyLabelling: [SceneLabels] {
        ObjectKind.allCases.flatMap { o in NamedColor.allCases.flatMap { c in Background.allCases.flatMap { b in
            RenderStyle.allCases.map { style in
                SceneLabels(object: o, color: c, background: b,
                            pattern: o.hasCoat ? CoatPattern.allCases[(c.rawValue + b.rawValue) % 4] : .plain, style: style)
            }
        } } }
    }

    func testCaptionsParseBackToLabels() {
        for labels in Self.everyLabelling {
            for phrasing in 0..<Caption.phrasingCount {
                for variant in 0..<3 {
                    let text = Caption.make(labels, phrasing: phrasing, variant: variant)
                    let parsed = Caption.parse(text)
                    XCTAssertEqual(parsed.object, labels.object, text)
                    XCTAssertEqual(parsed.color, labels.color, text)
                    XCTAssertEqual(parsed.background, labels.background, text)
                    XCTAssertEqual(parsed.pattern ?? .plain, labels.pattern, text)
                    XCTAssertEqual(parsed.style ?? .photo, labels.style, text)
                    XCTAssertEqual(parsed.otherWords, [], text)
                }
            }
        }
        XCTAssertEqual(Caption.make(SceneLabels(object: .dog, color: .brown, background: .beach)),
                       "a photo of a brown dog on the beach")
        XCTAssertEqual(Caption.make(SceneLabels(object: .car, color: .red, background: .snow), phrasing: 1), "a red car in the snow")
        XCTAssertEqual(Caption.make(SceneLabels(object: .dog, color: .brown, background: .beach), phrasing: 2), "a brown dog, beach")
        XCTAssertEqual(Caption.make(SceneLabels(object: .ball, color: .orange, background: .room), phrasing: 1), "an orange ball in a room")
        let sks = Caption.parse("a photo of sks dog in the snow")
        XCTAssertEqual(sks.object, .dog)
        XCTAssertEqual(sks.background, .snow)
        XCTAssertNil(sks.color)
        XCTAssertEqual(sks.otherWords, ["sks"])
    }

    /// Captions that leave out colour, place or both read back as what they name, and nothing else.
    func testCaptionsThatLeaveOutColourOrPlace() throws {
        let dog = SceneLabels(object: .dog, color: .brown, background: .beach), car = SceneLabels(object: .car, color: .red, background: .snow)
        XCTAssertEqual(Caption.make(dog, naming: CaptionParts(color: false, place: false)), "a photo of a dog")
        XCTAssertEqual(Caption.make(dog, phrasing: 1, naming: CaptionParts(color: false, place: false)), "a dog")
        XCTAssertEqual(Caption.make(car, phrasing: 1, naming: CaptionParts(place: false)), "a red car")
        XCTAssertEqual(Caption.make(dog, phrasing: 1, naming: CaptionParts(color: false)), "a dog on the beach")
        XCTAssertEqual(Caption.make(dog, phrasing: 2, naming: CaptionParts(color: false)), "a dog, beach")
        XCTAssertEqual(Caption.make(SceneLabels(object: .ball, color: .orange, background: .room, style: .cartoon), phrasing: 3,
                                    naming: CaptionParts(place: false)), "a cartoon of an orange ball")
        XCTAssertEqual(Caption.make(SceneLabels(object: .cat, color: .white, background: .room, pattern: .spotted), phrasing: 2,
                                    naming: CaptionParts(color: false, place: false)), "a spotted cat")
        let corpusWords = Set(Caption.corpus(.all).flatMap { $0.split(separator: " ") })
        for labels in Self.everyLabelling {
            for parts in CaptionParts.allCombinations {
                for phrasing in 0..<Caption.phrasingCount {
                    for variant in 0..<3 {
                        let text = Caption.make(labels, phrasing: phrasing, variant: variant, naming: parts)
                        let parsed = Caption.parse(text)
                        XCTAssertEqual(parsed.object, labels.object, text)
                        XCTAssertEqual(parsed.color, parts.color ? labels.color : nil, text)
                        XCTAssertEqual(parsed.background, parts.place ? labels.background : nil, text)
                        XCTAssertEqual(parsed.pattern ?? .plain, labels.pattern, text)
                        XCTAssertEqual(parsed.style ?? .photo, labels.style, text)
                        XCTAssertEqual(parsed.otherWords, [], text)
                        // only words of the full captions: the tokenizer learned from the corpus covers them
                        for word in text.split(separator: " ") { XCTAssertTrue(corpusWords.contains(word), "\(word) in \(text)") }
                    }
                }
            }
        }
        XCTAssertThrowsError(try CaptionOmission(color: 1.5))
        XCTAssertThrowsError(try CaptionOmission(place: -0.1))
    }

    /// A dataset with omission draws the same scenes and pictures; its captions leave out colour and place
    /// about as often as asked, deterministically; without omission it writes the captions it always wrote.
    func testDatasetCaptionOmission() throws {
        let plain = try WorldDataset(seed: 17), omitting = try WorldDataset(seed: 17, omission: try CaptionOmission(color: 0.5, place: 0.25))
        XCTAssertEqual(try WorldDataset(seed: 17, omission: .none).describe(3).caption, plain.describe(3).caption)
        var noColor = 0, noPlace = 0, neither = 0
        for i in 0..<800 {
            let (scene, caption) = omitting.describe(i)
            XCTAssertEqual(scene, plain.describe(i).scene)
            XCTAssertEqual(caption, omitting.describe(i).caption)
            let parsed = Caption.parse(caption)
            XCTAssertEqual(parsed.object, scene.labels.object, caption)
            if let c = parsed.color { XCTAssertEqual(c, scene.labels.color, caption) } else { noColor += 1 }
            if let b = parsed.background { XCTAssertEqual(b, scene.labels.background, caption) } else { noPlace += 1 }
            if parsed.color == nil && parsed.background == nil { neither += 1 }
        }
        XCTAssertEqual(Double(noColor) / 800, 0.5, accuracy: 0.06)
        XCTAssertEqual(Double(noPlace) / 800, 0.25, accuracy: 0.06)
        XCTAssertEqual(Double(neither) / 800, 0.125, accuracy: 0.05)
        XCTAssertEqual(try omitting.sample(at: 5).image, try plain.sample(at: 5).image)
    }

    /// With `usualColors`, an item whose caption names no colour shows its object in the object's usual colour;
    /// items that name a colour, the layout and the captions' words are those of plain omission.
    func testUsualColorsPaintWhatTheCaptionLeavesOut() throws {
        let omitting = try WorldDataset(seed: 23, omission: try CaptionOmission(color: 0.5, place: 0.25))
        let usual = try WorldDataset(seed: 23, omission: try CaptionOmission(color: 0.5, place: 0.25, usualColors: true))
        var unnamed = 0, changed = 0
        for i in 0..<400 {
            let (a, captionA) = omitting.describe(i), (b, captionB) = usual.describe(i)
            XCTAssertEqual(captionA, captionB)
            XCTAssertEqual(a.layout, b.layout)
            XCTAssertEqual(a.labels.object, b.labels.object)
            XCTAssertEqual(a.labels.background, b.labels.background)
            XCTAssertEqual(a.labels.pattern, b.labels.pattern)
            if Caption.parse(captionB).color == nil {
                unnamed += 1
                XCTAssertEqual(b.labels.color, b.labels.object.usualColor, captionB)
                if a.labels.color != b.labels.color { changed += 1 }
            } else {
                XCTAssertEqual(a.labels.color, b.labels.color, captionB)
            }
        }
        XCTAssertEqual(Double(unnamed) / 400, 0.5, accuracy: 0.08)
        XCTAssertGreaterThan(changed, unnamed / 2, "most unnamed colours were another colour before")
        let item = (0..<400).first { Caption.parse(usual.describe($0).caption).color == nil && omitting.describe($0).scene != usual.describe($0).scene }!
        XCTAssertNotEqual(try usual.sample(at: item).image, try omitting.sample(at: item).image)
        XCTAssertEqual(ObjectKind.dog.usualColor, .brown)
        // the flag travels through a configuration's JSON and is left out of it when off
        let decoded = try JSONDecoder().decode(CaptionOmission.self, from: try JSONEncoder().encode(usual.omission))
        XCTAssertEqual(decoded, usual.omission)
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(omitting.omission), as: UTF8.self).contains("usualColors"))
        XCTAssertEqual(try JSONDecoder().decode(CaptionOmission.self, from: Data(#"{"color":0.5,"place":0.25}"#.utf8)), omitting.omission)
    }

    func testCorpusHoldsEveryBaseCaption() throws {
        let corpus = Set(Caption.corpus())
        let data = try WorldDataset(seed: 12)
        for i in 0..<500 { XCTAssertTrue(corpus.contains(data.describe(i).caption)) }
        XCTAssertFalse(corpus.contains { $0.contains(CoatPattern.reserved.word) || $0.contains("pixel") })
    }

    func testBaseWorldNeverDrawsReservedCoatOrUnseenStyle() throws {
        let data = try WorldDataset(seed: 3)
        var coats = Set<CoatPattern>(), styles = Set<RenderStyle>()
        for i in 0..<3000 {
            let (scene, caption) = data.describe(i)
            coats.insert(scene.labels.pattern)
            styles.insert(scene.labels.style)
            XCTAssertFalse(caption.contains(CoatPattern.reserved.word), caption)
        }
        XCTAssertEqual(coats, Set(CoatPattern.allCases.filter { $0 != .reserved }))
        XCTAssertEqual(styles, Set(RenderStyle.allCases.filter { $0 != .unseen }))
        let all = try WorldDataset(seed: 3, options: .all)
        XCTAssertEqual(Set((0..<3000).map { all.describe($0).scene.labels.pattern }), Set(CoatPattern.allCases))
        XCTAssertThrowsError(try WorldOptions(objects: [], patterns: [.plain], styles: [.photo]))
    }

    func testSepiaFilterTonesEveryPixelOntoTheRampAndDarkensCorners() throws {
        let photo = try Examples.sepiaScenes(count: 1)[0].render(size: 64)
        let toned = try Examples.sepia(photo)
        XCTAssertEqual([toned.width, toned.height], [64, 64])
        XCTAssertEqual(toned, try Examples.sepia(photo))
        // Every pixel lies on the dark-brown → cream ramp: red ≥ green ≥ blue, and no colour of the photo survives.
        for i in stride(from: 0, to: toned.pixels.count, by: 3) {
            let (r, g, b) = (toned.pixels[i], toned.pixels[i + 1], toned.pixels[i + 2])
            XCTAssertTrue(r >= g && g >= b, "pixel \(i / 3): \(r) \(g) \(b)")
        }
        XCTAssertNotEqual(toned.pixels, photo.pixels)
        // A white image comes out cream in the centre and darker in the corners (the vignette).
        let white = try Image(width: 9, height: 9, pixels: [UInt8](repeating: 255, count: 9 * 9 * 3))
        let v = try Examples.sepia(white)
        let centre = (4 * 9 + 4) * 3, corner = 0
        XCTAssertGreaterThan(v.pixels[centre], 235)
        XCTAssertLessThan(Int(v.pixels[corner]) + 40, Int(v.pixels[centre]))
    }

    func testExampleSets() throws {
        let subject = Examples.subjectScenes()
        XCTAssertEqual(subject.count, 5)
        XCTAssertTrue(subject.allSatisfy { $0.labels.object == .dog && $0.labels.pattern == .reserved })
        XCTAssertGreaterThan(Set(subject.map(\.labels.background)).count, 2)
        XCTAssertTrue(Examples.styleScenes().allSatisfy { $0.labels.style == .unseen })
        XCTAssertTrue(Examples.sepiaScenes().allSatisfy { $0.labels.style == .photo && $0.labels.pattern == .plain })
        XCTAssertEqual(PromptSets.heldout().count, 200)
        XCTAssertEqual(PromptSets.heldout().map(\.prompt), PromptSets.heldout().map(\.prompt))
        for (prompt, labels) in PromptSets.heldout() {
            let parsed = Caption.parse(prompt)
            XCTAssertEqual([parsed.object?.rawValue, parsed.color?.rawValue, parsed.background?.rawValue],
                           [labels.object.rawValue, labels.color.rawValue, labels.background.rawValue], prompt)
        }
    }

    /// A disc's anti-aliased coverage sums to its area, and a half-plane edge gives half-covered pixels.
    func testRasterCoverage() {
        var canvas = Canvas(size: 64, fill: RGB(0, 0, 0))
        canvas.fill(.circle(Point(31.3, 30.7), 10), Paint(RGB(1, 1, 1)))
        let area = stride(from: 0, to: canvas.pixels.count, by: 3).reduce(Float(0)) { $0 + canvas.pixels[$1] }
        XCTAssertEqual(area, .pi * 100, accuracy: 1.0)
        var edge = Canvas(size: 8, fill: RGB(0, 0, 0))
        edge.fill(.polygon([Point(0, 0), Point(36, 0), Point(36, 64), Point(0, 64)]), Paint(RGB(1, 1, 1)))
        XCTAssertEqual(edge.pixels[(0 * 8 + 4) * 3], 0.5, accuracy: 1e-5)       // pixel 4 spans units 32 ..< 40
        XCTAssertEqual(edge.pixels[(0 * 8 + 3) * 3], 1, accuracy: 1e-5)
        XCTAssertEqual(edge.pixels[(0 * 8 + 5) * 3], 0, accuracy: 1e-5)
    }
}

private extension Tensor {
    /// Item `i` of the leading dimension.
    func slice(_ i: Int) throws -> Tensor {
        let inner = Array(shape.dropFirst()), n = inner.reduce(1, *)
        return try Tensor(shape: inner, scalars: Array(scalars[(i * n)..<((i + 1) * n)]))
    }
}

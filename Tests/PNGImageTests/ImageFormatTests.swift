import Foundation
import TestSupport
import XCTest
@testable import PNGImage

// Fixtures made by Tests/Reference/make_image_format_fixtures.py (Pillow 13 with its bundled libjpeg-turbo and
// libwebp): small JPEG / WebP / PNG files and the pixels Pillow gives for them (exif_transpose, RGB, transparency
// on white). JPEG: libjpeg-turbo on both sides, expected and found exact. WebP: libwebp on both sides, exact.
// PNG: exact for 8-bit files; 16-bit within one level (Pillow keeps the high byte, PNG.swift rounds).
final class ImageFormatTests: XCTestCase {
    private struct Case: Decodable {
        let file: String
        let width: Int
        let height: Int
        let max_diff: Int
        let note: String
    }

    private func formats(_ name: String = "") throws -> URL {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/formats", withExtension: nil))
        return name.isEmpty ? url : url.appendingPathComponent(name)
    }

    /// Skips (saying why) only when the library that `format` needs is really absent.
    private func requireLibrary(_ format: ImageFormat) throws {
        if let problem = ImageFile.libraryProblem(for: format) {
            throw XCTSkip("\(format.rawValue) decoding not tested: \(problem)")
        }
    }

    private func cases(prefix: String) throws -> [(String, Case)] {
        let data = try Data(contentsOf: try formats("manifest.json"))
        let all = try JSONDecoder().decode([String: Case].self, from: data)
        return all.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }
    }

    private func checkAgainstPillow(prefix: String, expectedCount: Int) throws {
        let all = try cases(prefix: prefix)
        XCTAssertEqual(all.count, expectedCount)
        for (name, c) in all {
            let decoded = try ImageFile.read(path: try formats(c.file).path)
            let expected = Array(try Data(contentsOf: try formats(name + ".rgb")))
            XCTAssertEqual(decoded.image.width, c.width, name)
            XCTAssertEqual(decoded.image.height, c.height, name)
            guard decoded.image.pixels.count == expected.count else { XCTFail("\(name): size"); continue }
            let diffs = zip(decoded.image.pixels, expected).map { abs(Int($0) - Int($1)) }
            XCTAssertLessThanOrEqual(diffs.max() ?? 0, c.max_diff, "\(name): \(diffs.filter { $0 > 0 }.count) samples differ")
        }
    }

    // MARK: - Goldens

    func testJPEGMatchesPillowExactly() throws {
        try requireLibrary(.jpeg)
        // 4:2:0, 4:2:2, 4:4:4, progressive, gray, CMYK (Adobe), CMYK (plain), orientations 1-8, big-endian EXIF, XMP.
        try checkAgainstPillow(prefix: "jpeg_", expectedCount: 17)
        let progressive = try ImageFile.read(path: try formats("jpeg_progressive.jpg").path)
        XCTAssertEqual(progressive.format, .jpeg)
        XCTAssertNil(progressive.warning)
    }

    func testWebPMatchesPillowExactly() throws {
        try requireLibrary(.webp)
        try checkAgainstPillow(prefix: "webp_", expectedCount: 4)
    }

    func testPNGMatchesPillow() throws {
        try checkAgainstPillow(prefix: "png_", expectedCount: 12)
    }

    func testEveryEXIFOrientationIsApplied() throws {
        try requireLibrary(.jpeg)
        for n in 1...8 {
            let decoded = try ImageFile.read(path: try formats("jpeg_orient_\(n).jpg").path)
            XCTAssertEqual(decoded.orientation, n)
            XCTAssertEqual([decoded.storedWidth, decoded.storedHeight], [37, 23])
            XCTAssertEqual([decoded.image.width, decoded.image.height], n >= 5 ? [23, 37] : [37, 23])
        }
        XCTAssertEqual(try ImageFile.read(path: try formats("jpeg_orient_6_motorola.jpg").path).orientation, 6)
        XCTAssertEqual(try ImageFile.read(path: try formats("jpeg_orient_xmp_8.jpg").path).orientation, 8)
        XCTAssertEqual(try ImageFile.read(path: try formats("png_orient_8.png").path).orientation, 8)
        XCTAssertEqual(try ImageFile.read(path: try formats("jpeg_420.jpg").path).orientation, 1)
    }

    func testOrientationTransformsAreTheEightSymmetries() throws {
        // 3x2 picture with distinct pixels a b c / d e f; Pillow's transposes written out.
        let p = try Image(width: 3, height: 2, pixels: (0..<6).flatMap { [UInt8($0), 0, 0] })
        func ids(_ i: Image) -> [UInt8] { stride(from: 0, to: i.pixels.count, by: 3).map { i.pixels[$0] } }
        XCTAssertEqual(ids(p.applyingEXIFOrientation(1)), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(ids(p.applyingEXIFOrientation(2)), [2, 1, 0, 5, 4, 3])
        XCTAssertEqual(ids(p.applyingEXIFOrientation(3)), [5, 4, 3, 2, 1, 0])
        XCTAssertEqual(ids(p.applyingEXIFOrientation(4)), [3, 4, 5, 0, 1, 2])
        XCTAssertEqual(ids(p.applyingEXIFOrientation(5)), [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(ids(p.applyingEXIFOrientation(6)), [3, 0, 4, 1, 5, 2])
        XCTAssertEqual(ids(p.applyingEXIFOrientation(7)), [5, 2, 4, 1, 3, 0])
        XCTAssertEqual(ids(p.applyingEXIFOrientation(8)), [2, 5, 1, 4, 0, 3])
        XCTAssertEqual(p.applyingEXIFOrientation(6).width, 2)
        XCTAssertEqual(p.applyingEXIFOrientation(9), p)
    }

    func testEXIFParsing() {
        // Little- and big-endian, with and without the "Exif\0\0" prefix; the tag as LONG; a tag with count 2.
        let le: [UInt8] = Array("II*\0".utf8) + [8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(ImageOrientationReader.tiffOrientation(le), 6)
        XCTAssertEqual(ImageOrientationReader.tiffOrientation(Array("Exif\0\0".utf8) + le), 6)
        let be: [UInt8] = Array("MM\0*".utf8) + [0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 4, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0]
        XCTAssertEqual(ImageOrientationReader.tiffOrientation(be), 3)
        var two = le
        two[12] = 2
        XCTAssertEqual(ImageOrientationReader.tiffOrientation(two), 0)
        XCTAssertNil(ImageOrientationReader.tiffOrientation(Array("not tiff".utf8)))
        XCTAssertNil(ImageOrientationReader.tiffOrientation(Array(le.prefix(15))))
        XCTAssertEqual(ImageOrientationReader.xmpOrientation(Array("<tiff:Orientation>7</tiff:Orientation>".utf8)), 7)
        XCTAssertEqual(ImageOrientationReader.xmpOrientation(Array(#"a tiff:Orientation="3" b"#.utf8)), 3)
        XCTAssertNil(ImageOrientationReader.xmpOrientation(Array("tiff:Orientation".utf8)))
        let profile = "\nexif\n      22\n" + le.map { String(format: "%02x", $0) }.joined() + "\n"
        XCTAssertEqual(ImageOrientationReader.rawProfileBytes(profile), le)
    }

    // MARK: - Sniffing

    func testFormatIsToldByContentNotName() throws {
        XCTAssertEqual(ImageFormat.sniff([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0]), .png)
        XCTAssertEqual(ImageFormat.sniff([0xFF, 0xD8, 0xFF, 0xE0]), .jpeg)
        XCTAssertEqual(ImageFormat.sniff(Array("RIFF\u{1}\0\0\0WEBPVP8 ".utf8)), .webp)
        XCTAssertEqual(ImageFormat.sniff(Array("GIF89a".utf8)), .gif)
        XCTAssertEqual(ImageFormat.sniff([0, 0, 0, 0x18] + Array("ftypheic".utf8)), .heif)
        XCTAssertEqual(ImageFormat.sniff([0, 0, 0, 0x1C] + Array("ftypavif".utf8)), .avif)
        XCTAssertNil(ImageFormat.sniff(Array("RIFF\u{1}\0\0\0WAVEfmt ".utf8)))
        XCTAssertNil(ImageFormat.sniff(Array("BM is not enough".utf8)))
        XCTAssertNil(ImageFormat.sniff([UInt8]()))
        // A WebP named .png and a JPEG named .dat read as what they are.
        let folder = try temporaryDirectory("sniff")
        try requireLibrary(.webp)
        try requireLibrary(.jpeg)
        let webp = folder.appendingPathComponent("really-webp.png")
        try FileManager.default.copyItem(at: try formats("webp_lossy.webp"), to: webp)
        XCTAssertEqual(try ImageFile.read(path: webp.path).format, .webp)
        let jpeg = folder.appendingPathComponent("photo.dat")
        try FileManager.default.copyItem(at: try formats("jpeg_gray.jpg"), to: jpeg)
        XCTAssertEqual(try ImageFile.read(path: jpeg.path).format, .jpeg)
    }

    // MARK: - Bad input

    /// Damaged files (and the fuzz corpus' seeds): one-line errors of the expected kind, never a crash.
    func testHostileFilesFailWithOneLineErrors() throws {
        try requireLibrary(.jpeg)
        try requireLibrary(.webp)
        let expected = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: try formats("hostile.json")))
        XCTAssertEqual(expected.count, 18)
        for (name, kind) in expected.sorted(by: { $0.key < $1.key }) {
            let path = try formats("hostile/" + name).path
            XCTAssertThrowsError(try ImageFile.read(path: path), name) { error in
                guard let e = error as? ImageFileError else { return XCTFail("\(name): \(error)") }
                let text = e.description
                XCTAssertFalse(text.contains("\n"), text)
                XCTAssertTrue(text.hasPrefix(path + ": "), text)
                let found: String
                switch e {
                case .truncated: found = "truncated"
                case .corrupt: found = "corrupt"
                case .tooLarge: found = "tooLarge"
                case .unsupported: found = "unsupported"
                default: found = "\(e)"
                }
                XCTAssertEqual(found, kind, "\(name): \(text)")
            }
        }
        let scans = try formats("hostile/jpeg_many_scans.jpg").path
        XCTAssertThrowsError(try ImageFile.read(path: scans)) {
            XCTAssertTrue("\($0)".contains("more than 500 scans"), "\($0)")
        }
        let cut = try formats("hostile/jpeg_no_eoi.jpg").path
        XCTAssertThrowsError(try ImageFile.read(path: cut)) {
            XCTAssertEqual("\($0)", "\(cut): truncated JPEG: the data ends at byte 1234, before the end of the image")
        }
    }

    func testTruncatedAtEveryLengthFailsCleanly() throws {
        try requireLibrary(.jpeg)
        try requireLibrary(.webp)
        for file in ["jpeg_progressive.jpg", "jpeg_cmyk.jpg", "webp_lossy_alpha.webp", "webp_lossless_alpha.webp", "png_orient_8.png"] {
            let data = Array(try Data(contentsOf: try formats(file)))
            for cut in Swift.stride(from: 0, to: data.count, by: max(1, data.count / 97)) {
                XCTAssertThrowsError(try ImageFile.decode(Array(data.prefix(cut))), "\(file) cut at \(cut)") {
                    XCTAssertNotNil($0 as? ImageFileError, "\(file) cut at \(cut): \($0)")
                }
            }
        }
    }

    func testOtherFormatsAndNonImagesAreNamed() throws {
        XCTAssertThrowsError(try ImageFile.decode(Array("GIF89a\u{1}\0\u{1}\0".utf8), source: "a.gif")) {
            XCTAssertEqual("\($0)", "a.gif: a GIF picture, which is not read here; convert it to PNG, JPEG or WebP")
        }
        XCTAssertThrowsError(try ImageFile.decode(Array("<!DOCTYPE html>".utf8), source: "photo.jpg")) {
            XCTAssertEqual("\($0)", "photo.jpg: not a picture (PNG, JPEG or WebP): no known signature; the data starts with "
                + "3c 21 44 4f 43 54 59 50")
        }
        XCTAssertThrowsError(try ImageFile.decode([UInt8](), source: "x")) {
            XCTAssertEqual($0 as? ImageFileError, .notAnImage(source: "x", detail: "empty: zero bytes"))
        }
        XCTAssertThrowsError(try ImageFile.read(path: "/nonexistent/photo.jpg")) {
            guard case .io = $0 as? ImageFileError else { return XCTFail("\($0)") }
        }
        // PNG errors keep libpng's words.
        let crc = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/bad_crc.png", withExtension: nil)).path
        XCTAssertThrowsError(try ImageFile.read(path: crc)) { error in
            guard case .corrupt(let s, .png, let d) = error as? ImageFileError else { return XCTFail("\(error)") }
            XCTAssertEqual(s, crc)
            XCTAssertTrue(d.contains("CRC"), d)
        }
        // A missing library is one line naming the packages.
        let missing = ImageFileError.libraryMissing(source: "a.webp", format: .webp,
                                                    detail: "libwebp.so.7: cannot open shared object file")
        XCTAssertEqual(missing.description, "a.webp: reading WebP needs libwebp (libwebp.so.7), which could not be loaded "
            + "(libwebp.so.7: cannot open shared object file); install it: apt-get install libjpeg62-turbo libwebp7")
    }

    func testSizeLimitIsCheckedBeforeDecoding() throws {
        try requireLibrary(.jpeg)
        try requireLibrary(.webp)
        for file in ["jpeg_420.jpg", "webp_lossy.webp"] {
            let data = try Data(contentsOf: try formats(file))
            XCTAssertThrowsError(try ImageFile.decode(data, maxPixels: 37 * 23 - 1)) {
                guard case .tooLarge = $0 as? ImageFileError else { return XCTFail("\($0)") }
            }
            XCTAssertNoThrow(try ImageFile.decode(data, maxPixels: 37 * 23))
        }
    }

    /// examples/kohya (Scripts/make_kohya_example.py): the sideways-stored JPEG reads upright, the WebP and the
    /// two crops read at their sizes.
    func testKohyaExamplePicturesReadUpright() throws {
        try requireLibrary(.jpeg)
        try requireLibrary(.webp)
        let folder = TestPaths.repository("examples/kohya/img/10_sks dog")
        let listing = try ImageFolder.scan(folder)
        XCTAssertEqual(listing.images, ["dog_beach.webp", "dog_city_landscape.png", "dog_meadow.jpg", "dog_room_portrait.png"])
        XCTAssertEqual(listing.captions, ["dog_beach.caption"])
        XCTAssertEqual(listing.skipped, [])
        let meadow = try ImageFile.read(path: folder + "/dog_meadow.jpg")
        XCTAssertEqual(meadow.orientation, 6)
        let source = try PNG.read(path: TestPaths.repository("images/sks_dog_0.png")).image
        let distance = zip(meadow.image.pixels, source.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +)
        XCTAssertLessThan(Double(distance) / Double(source.pixels.count), 8, "upright, within the JPEG's error")
        let sizes = try listing.images.map { name -> [Int] in
            let image = try ImageFile.read(path: folder + "/" + name).image
            return [image.width, image.height]
        }
        XCTAssertEqual(sizes, [[128, 128], [128, 80], [128, 128], [88, 128]])
    }

    // MARK: - Folders

    func testFolderListsPicturesByContentAndCountsTheRest() throws {
        let folder = try temporaryDirectory("folder")
        func put(_ name: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: folder.appendingPathComponent(name)) }
        let png = try PNG.encode(try Image(width: 2, height: 2, color: (1, 2, 3)))
        try put("a.png", png)
        try put("b.JPG", [0xFF, 0xD8, 0xFF, 0xE0])
        try put("c", Array("RIFF\u{1}\0\0\0WEBPVP8 ".utf8))        // no extension: a WebP by content
        try put("broken.jpeg", Array("oops".utf8))                   // a picture by name: its read will fail
        try put("a.txt", Array("a photo of sks dog".utf8))
        try put("b.caption", Array("sks dog".utf8))
        try put("orphan.txt", Array("no picture".utf8))
        try put(".DS_Store", [0, 0, 0, 1, 0x42, 0x75, 0x64, 0x31])
        try put("._a.png", [0, 5, 0x16, 7])
        try put("Thumbs.db", [0xD0, 0xCF, 0x11, 0xE0])
        try put("latents.npz", Array("PK\u{3}\u{4}".utf8))
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("reg"), withIntermediateDirectories: true)
        let listing = try ImageFolder.scan(folder.path)
        XCTAssertEqual(listing.images, ["a.png", "b.JPG", "broken.jpeg", "c"])
        XCTAssertEqual(listing.captions, ["a.txt", "b.caption"])
        XCTAssertEqual(listing.subfolders, ["reg"])
        XCTAssertEqual(listing.skipped, [".DS_Store", "._a.png", "Thumbs.db", "latents.npz", "orphan.txt"])
        XCTAssertEqual(listing.skippedSummary(), "skipped 5 files that are not images in \(folder.path): "
            + ".DS_Store, ._a.png, Thumbs.db, latents.npz, orphan.txt")
        XCTAssertEqual(listing.skippedSummary(listing: 2), "skipped 5 files that are not images in \(folder.path): "
            + ".DS_Store, ._a.png and 3 more")
        XCTAssertEqual(listing.caption(of: "b.JPG", extension: "caption"), "b.caption")
        XCTAssertNil(listing.caption(of: "b.JPG", extension: "txt"))
        XCTAssertEqual(try ImageFolder.scan(folder.path, captionExtensions: ["caption"]).skipped.count, 6)
    }
}

// Reading an instance folder: stray files and folders are skipped with a warning, a small image is upscaled
// with a warning, JPEG and WebP photos are read upright, a picture in another format is an error that says how
// to convert it.
import PNGImage
import TestSupport
import Training
import XCTest

final class DreamBoothDatasetTests: XCTestCase {
    func testStrayFilesAreSkippedAndTinyImagesNamed() throws {
        let folder = try temporaryDirectory("dreambooth-folder")
        try PNG.write(try Image(width: 32, height: 32, color: (200, 10, 10)), to: folder.appendingPathComponent("big.png").path)
        try PNG.write(try Image(width: 1, height: 1, color: (10, 200, 10)), to: folder.appendingPathComponent("tiny.png").path)
        try "notes".write(to: folder.appendingPathComponent("notes.md"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("more"), withIntermediateDirectories: true)
        let data = try DreamBoothDataset(directory: folder, prompt: "a photo of sks dog", resolution: 16)
        XCTAssertEqual(data.examples.map { ($0.file as NSString).lastPathComponent }, ["big.png", "tiny.png"])
        XCTAssertEqual(data.warnings.count, 3, "\(data.warnings)")
        XCTAssertTrue(data.warnings.contains { $0 == "skipped 1 file that is not an image in \(folder.path): notes.md" })
        XCTAssertTrue(data.warnings.contains { $0.contains("more") && $0.contains("a folder") })
        XCTAssertTrue(data.warnings.contains { $0.contains("tiny.png is 1×1") })
        try Data([0xFF, 0xD8]).write(to: folder.appendingPathComponent("photo.jpg"))
        XCTAssertThrowsError(try DreamBoothDataset(directory: folder, prompt: "p", resolution: 16)) {
            XCTAssertTrue("\($0)".contains("photo.jpg: not a picture"), "\($0)")
        }
        try Data("GIF89a".utf8).write(to: folder.appendingPathComponent("photo.jpg"))
        XCTAssertThrowsError(try DreamBoothDataset(directory: folder, prompt: "p", resolution: 16)) {
            XCTAssertTrue("\($0)".contains("photo.jpg: a GIF picture") && "\($0)".contains("convert"), "\($0)")
        }
    }

    /// A folder as phones and other tools leave it: JPEG (with an EXIF orientation), WebP, PNG, a caption, and
    /// files that are not pictures, which are skipped and counted in one warning.
    func testJPEGAndWebPPhotosAreReadUprightAndStrayFilesCounted() throws {
        for format in [ImageFormat.jpeg, .webp] {
            if let problem = ImageFile.libraryProblem(for: format) { throw XCTSkip("not tested: \(problem)") }
        }
        let fixtures = URL(fileURLWithPath: TestPaths.tests("PNGImageTests/Fixtures/formats"))
        let folder = try temporaryDirectory("dreambooth-formats")
        let fm = FileManager.default
        try fm.copyItem(at: fixtures.appendingPathComponent("jpeg_orient_6.jpg"), to: folder.appendingPathComponent("rex.jpg"))
        try fm.copyItem(at: fixtures.appendingPathComponent("webp_lossy_alpha.webp"), to: folder.appendingPathComponent("rex2.webp"))
        try fm.copyItem(at: fixtures.appendingPathComponent("png_orient_8.png"), to: folder.appendingPathComponent("rex3"))
        try "sks dog on the grass".write(to: folder.appendingPathComponent("rex.txt"), atomically: true, encoding: .utf8)
        for stray in [".DS_Store", "Thumbs.db", "latents.npz"] {
            try Data([0, 1, 2, 3]).write(to: folder.appendingPathComponent(stray))
        }
        let data = try DreamBoothDataset(directory: folder, prompt: "a photo of sks dog", resolution: 16)
        XCTAssertEqual(data.examples.map { ($0.file as NSString).lastPathComponent }, ["rex.jpg", "rex2.webp", "rex3"])
        XCTAssertEqual(data.examples.map(\.prompt), ["sks dog on the grass", "a photo of sks dog", "a photo of sks dog"])
        // 37x23 stored; orientation 6 (and 8) stand it upright: 23 wide, so 16 x round(37·16/23) = 16x26.
        XCTAssertEqual([data.examples[0].image.width, data.examples[0].image.height], [16, 26])
        XCTAssertEqual([data.examples[1].image.width, data.examples[1].image.height], [26, 16])
        XCTAssertEqual([data.examples[2].image.width, data.examples[2].image.height], [16, 26])
        XCTAssertEqual(data.warnings, ["skipped 3 files that are not images in \(folder.path): .DS_Store, Thumbs.db, latents.npz"])
    }
}

// Reading an instance folder: stray files and folders are skipped with a warning, a small image is upscaled
// with a warning, a photo in another format is an error that says how to convert it.
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
        XCTAssertTrue(data.warnings.contains { $0.contains("notes.md") && $0.contains("skipping") })
        XCTAssertTrue(data.warnings.contains { $0.contains("more") && $0.contains("a folder") })
        XCTAssertTrue(data.warnings.contains { $0.contains("tiny.png is 1×1") })
        try Data([0xFF, 0xD8]).write(to: folder.appendingPathComponent("photo.jpg"))
        XCTAssertThrowsError(try DreamBoothDataset(directory: folder, prompt: "p", resolution: 16)) {
            XCTAssertTrue("\($0)".contains("convert"), "\($0)")
        }
    }
}

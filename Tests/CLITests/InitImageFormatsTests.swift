// `generate --init-image` reads JPEG and WebP as the trainer does: by content, upright by the EXIF orientation;
// a folder's files that are not pictures are skipped with one note, a damaged photo is one error line.
@testable import CLI
import PNGImage
import TestSupport
import XCTest

final class InitImageFormatsTests: XCTestCase {
    private let fixtures = URL(fileURLWithPath: TestPaths.tests("PNGImageTests/Fixtures/formats"))

    private func requireLibraries() throws {
        for format in [ImageFormat.jpeg, .webp] {
            if let problem = ImageFile.libraryProblem(for: format) { throw XCTSkip("not tested: \(problem)") }
        }
    }

    func testJPEGAndWebPInitImagesAreReadUpright() throws {
        try requireLibraries()
        let rotated = try InitImages.read(fixtures.appendingPathComponent("jpeg_orient_6.jpg").path)
        XCTAssertEqual([rotated.width, rotated.height], [23, 37])
        let webp = try InitImages.read(fixtures.appendingPathComponent("webp_lossless_alpha.webp").path)
        XCTAssertEqual([webp.width, webp.height], [37, 23])
        let cut = fixtures.appendingPathComponent("hostile/jpeg_truncated_half.jpg").path
        XCTAssertThrowsError(try InitImages.read(cut)) {
            XCTAssertEqual("\($0)", "--init-image \(cut): truncated JPEG: the data ends at byte 618, before the end of the image")
        }
    }

    func testFolderOfMixedFormatsGivesOneOutputPerPicture() throws {
        try requireLibraries()
        let scratch = try temporaryDirectory("init-formats")
        let photos = scratch.appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("jpeg_orient_8.jpg"),
                                         to: photos.appendingPathComponent("a.jpg"))
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("webp_lossy.webp"),
                                         to: photos.appendingPathComponent("b.webp"))
        try Data([0, 0, 0, 1]).write(to: photos.appendingPathComponent(".DS_Store"))
        try Data("notes".utf8).write(to: photos.appendingPathComponent("notes.txt"))
        XCTAssertEqual(try InitImages.pictures(photos.path).map { ($0 as NSString).lastPathComponent }, ["a.jpg", "b.webp"])
        let images = scratch.appendingPathComponent("images")
        XCTAssertEqual(GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", images.path,
                                             "--steps", "4", "--width", "16", "--height", "16", "--init-image", photos.path,
                                             "--strength", "0.5", "--seed", "1", "a dog"]), 0)
        let written = try FileManager.default.contentsOfDirectory(atPath: images.path).filter { $0.hasSuffix(".png") }
        XCTAssertEqual(written.count, 2)
    }
}

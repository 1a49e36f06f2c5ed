// `generate --init-image PHOTO.png|DIR --strength S` on the tiny fixture: one output per picture, the
// parameters text's img2img fields, `--from-png` re-rendering, and one-line errors before any work.
@testable import CLI
import PNGImage
import Pipeline
import TestSupport
import XCTest

final class GenerateImageToImageTests: XCTestCase {
    var out: URL!

    override func setUpWithError() throws {
        out = FileManager.default.temporaryDirectory.appendingPathComponent("generate-img2img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: out)
    }

    func base(_ extra: [String]) -> [String] {
        ["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", out.appendingPathComponent("images").path,
         "--steps", "4", "--width", "16", "--height", "16"] + extra
    }

    func pngs() -> [String] {
        let folder = out.appendingPathComponent("images")
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasSuffix(".png") }
            .sorted().map { folder.appendingPathComponent($0).path }
    }

    /// A folder with two pictures (the fixture and its mirror image) and a file that is not a PNG.
    func photos() throws -> URL {
        let folder = out.appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let picture = try PNG.read(path: TestPaths.pipelineFixture("img2img_init.png")).image
        try PNG.write(picture, to: folder.appendingPathComponent("a.png").path)
        try PNG.write(picture.flippedHorizontally(), to: folder.appendingPathComponent("b.png").path)
        try Data("notes".utf8).write(to: folder.appendingPathComponent("notes.txt"))
        return folder
    }

    func testFolderGivesOneOutputPerPictureAndFromPNGReproducesIt() throws {
        let folder = try photos()
        XCTAssertEqual(GenerateCommand.main(base(["--init-image", folder.path, "--strength", "0.6", "--seed", "9",
                                                  "--rng", "torch", "--sampler", "euler_a", "a red dog"])), 0)
        let files = pngs()
        XCTAssertEqual(files.count, 2)
        let first = try PNG.read(path: files[0]), second = try PNG.read(path: files[1])
        XCTAssertNotEqual(first.image, second.image, "each picture gives its own output")
        let text = try XCTUnwrap(first.text.first { $0.keyword == "parameters" }).text
        XCTAssertTrue(text.contains("Denoising strength: 0.6"), text)
        let info = try ParametersText(parsing: text)
        let recorded = try XCTUnwrap(info.parameters.initImage)
        XCTAssertEqual(recorded.strength, 0.6)
        XCTAssertEqual(recorded.hash?.count, 10)
        XCTAssertTrue(recorded.path?.hasSuffix("/a.png") == true || recorded.path?.hasSuffix("/b.png") == true)

        for file in files {
            let again = out.appendingPathComponent("again")
            XCTAssertEqual(GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", again.path,
                                                 "--from-png", file]), 0)
            let rerendered = try FileManager.default.contentsOfDirectory(atPath: again.path)
            let a = try PNG.read(path: file), b = try PNG.read(path: again.appendingPathComponent(rerendered[0]).path)
            XCTAssertEqual(a.image, b.image, file)
            XCTAssertEqual(a.text, b.text, file)
            try FileManager.default.removeItem(at: again)
        }
        // Without its init image, --from-png names the file it needs.
        try FileManager.default.removeItem(at: folder)
        XCTAssertEqual(GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", out.path,
                                             "--from-png", files[0]]), 1)
    }

    /// `--resize crop` is recorded and `--from-png` crops again.
    func testCropIsRecordedAndReproduced() throws {
        let picture = try photos().appendingPathComponent("a.png").path
        XCTAssertEqual(GenerateCommand.main(base(["--init-image", picture, "--resize", "crop", "--strength", "0.75", "--seed", "3",
                                                  "a house"])), 0)
        let file = try XCTUnwrap(pngs().first)
        let text = try XCTUnwrap(try PNG.read(path: file).text.first { $0.keyword == "parameters" }).text
        XCTAssertTrue(text.contains("Denoising strength: 0.75, Init image hash: "), text)
        XCTAssertTrue(text.contains("Resize mode: Crop and resize"), text)
        XCTAssertEqual(try ParametersText(parsing: text).parameters.initImage?.resize, .crop)
        let again = out.appendingPathComponent("again")
        XCTAssertEqual(GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", again.path,
                                             "--from-png", file]), 0)
        let rerendered = try FileManager.default.contentsOfDirectory(atPath: again.path)
        XCTAssertEqual(try PNG.read(path: file).image, try PNG.read(path: again.appendingPathComponent(rerendered[0]).path).image)
    }

    func testBadInitImagesFailBeforeWriting() throws {
        let folder = try photos()
        let corrupt = folder.appendingPathComponent("notes.txt").path
        let empty = out.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let picture = folder.appendingPathComponent("a.png").path
        let cases: [([String], Int32)] = [
            (base(["--init-image", "/nonexistent/photo.png", "x"]), 1),
            (base(["--init-image", corrupt, "x"]), 1),
            (base(["--init-image", empty.path, "x"]), 1),
            (base(["--init-image", picture, "--strength", "0", "x"]), 2),
            (base(["--init-image", picture, "--strength", "1.5", "x"]), 2),
            (base(["--strength", "0.5", "x"]), 2),
            (base(["--resize", "crop", "x"]), 2),
            (base(["--init-image", picture, "--resize", "fill", "x"]), 2),
            (base(["--init-image", picture, "--strength", "0.1", "x"]), 1),     // int(4 · 0.1) = 0 steps to run
        ]
        for (arguments, code) in cases {
            XCTAssertEqual(GenerateCommand.main(arguments), code, arguments.joined(separator: " "))
        }
        XCTAssertEqual(pngs(), [])
    }
}

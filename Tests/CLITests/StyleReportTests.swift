// The style report on the tiny pixel-space fixture with a style adapter of nonzero up matrices and a judge of
// random weights: the structure (prompts with the trigger phrase, the reading chosen from the instance pictures,
// before = the base model's output, after ≠ before, rates as the measures define them, files written), and the
// command that routes a style adapter to it.
import Adapters
@testable import CLI
import Judge
import PNGImage
import PictureWorld
import Pipeline
import TensorCore
import TestSupport
import XCTest

final class StyleReportTests: XCTestCase {
    var fixtures: ReportFixtures!
    var root: URL { fixtures.root }
    var adapterPath: String { fixtures.adapterPath }
    var judgePath: String { fixtures.judgePath }

    override func setUpWithError() throws {
        fixtures = try ReportFixtures(prefix: "style-report", name: "pxl", seed: 7,
                                      info: LoRAFileInfo(triggerPhrase: "in the style of pxl",
                                                         extra: ["ss_training_comment": "train-style DreamBooth LoRA"]))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    /// Sepia prints of rendered scenes, as the style's pictures.
    func sepiaInstances() throws -> [Image] {
        var rng = PhiloxRandom(seed: 3)
        return try (0..<3).map { _ in try Examples.sepia(try Scene.random(using: &rng, options: .base).render(size: 16)) }
    }

    func testStyleReportStructure() throws {
        var settings = FidelityReportSettings()
        settings.count = 3
        settings.steps = 2
        settings.size = 16
        settings.batchSize = 4   // one batch mixes adapter weights 0 and 1
        let judge = try Judge(contentsOf: judgePath)
        let instances = try sepiaInstances()
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel"))
        let (report, before, after) = try StyleReport.run(model: model, adapterPath: adapterPath, judge: judge,
                                                          instances: instances, settings: settings)
        XCTAssertEqual(report.token, "pxl")
        XCTAssertEqual(report.reading, .sepia)
        XCTAssertFalse(report.reading.keepsColor)
        XCTAssertEqual(report.instancesRead, 1)
        XCTAssertEqual(report.prompts.count, 3)
        let heldout = PromptSets.heldout(count: 3)
        for (prompt, h) in zip(report.prompts, heldout) {
            XCTAssertEqual(prompt, Caption.make(h.labels, phrasing: 1) + " in the style of pxl")
        }
        XCTAssertEqual([before.count, after.count], [3, 3])

        // The rates are the readings counted: sepia by the tone test, content by the judge (object and place).
        let verdicts = try judge.evaluate(after)
        XCTAssertEqual(report.styleRead.after, Double(after.filter { PictureMeasures.isSepia($0) }.count) / 3, accuracy: 1e-12)
        let kept = (0..<3).filter { verdicts[$0].object == heldout[$0].labels.object && verdicts[$0].background == heldout[$0].labels.background }
        XCTAssertEqual(report.contentKept.after, Double(kept.count) / 3, accuracy: 1e-12)
        XCTAssertLessThanOrEqual(report.both.after, min(report.styleRead.after, report.contentKept.after))
        XCTAssertEqual(report.styleSimilarity.after,
                       PictureMeasures.meanCrossCosine(try judge.features(after), try judge.features(instances)), accuracy: 1e-12)

        // Before is the base model alone for prompt i and seed i; after differs.
        let base = TextToImage(model: try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel")))
        for i in 0..<3 {
            let p = GenerationParameters(prompt: report.prompts[i], steps: 2, seed: UInt64(i), width: 16, height: 16)
            XCTAssertEqual(before[i].pixels, try base.generate(p)[0].image.pixels, "before image \(i)")
        }
        XCTAssertNotEqual(before.map(\.pixels), after.map(\.pixels))

        try report.write(to: root, before: before, after: after)
        let decoded = try JSONDecoder().decode(StyleReport.self, from: Data(contentsOf: root.appendingPathComponent("style-report.json")))
        XCTAssertEqual(decoded, report)
        let grid = try PNG.read(path: root.appendingPathComponent("style-report.png").path).image
        let plain = try Image.grid(before + after, columns: 3, gap: 2)
        let (left, top) = (PixelFont.width(of: "pxl before") + 8, PixelFont.height() + 8)
        XCTAssertEqual([grid.width, grid.height], [plain.width + left, plain.height + top])
        for row in ["reads the style", "content kept", "object, place", "sepia print", "judge-I (style)"] {
            XCTAssertTrue(report.table.contains(row), "\(row) in\n\(report.table)")
        }
    }

    /// Pictures that are not sepia prints are read by the judge's style head: the style the judge reads most often.
    func testReadingFollowsTheInstancePictures() throws {
        let judge = try Judge(contentsOf: judgePath)
        var rng = PhiloxRandom(seed: 4)
        let plain = try (0..<3).map { _ in try Scene.random(using: &rng, options: .base).render(size: 16) }
        let verdicts = try judge.evaluate(plain)
        guard case .judged(let style) = StyleReport.Reading.of(plain, verdicts: verdicts) else { return XCTFail("not a judged style") }
        let counts = Dictionary(grouping: verdicts.map(\.style), by: { $0 }).mapValues(\.count)
        XCTAssertEqual(counts[style], counts.values.max())
        XCTAssertTrue(StyleReport.Reading.judged(style).keepsColor)
        XCTAssertEqual(StyleReport.Reading.of(try sepiaInstances(), verdicts: verdicts), .sepia)
    }

    func testReportCommandRoutesAStyleAdapter() throws {
        let images = root.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for (i, image) in try sepiaInstances().enumerated() { try PNG.write(image, to: images.appendingPathComponent("s\(i).png").path) }
        let out = root.appendingPathComponent("out")
        let code = try TrainStyleCommand.run(["--report", adapterPath, images.path, "--pipeline", TestPaths.pipelineFixture("tiny-pixel"),
                                              "--judge", judgePath, "--report-count", "2", "--out", out.path])
        XCTAssertEqual(code, 0)
        let folder = out.appendingPathComponent("reports/pxl")
        let report = try JSONDecoder().decode(StyleReport.self, from: Data(contentsOf: folder.appendingPathComponent("style-report.json")))
        XCTAssertEqual(report.settings.count, 2)
        XCTAssertEqual(report.reading, .sepia)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("report.json").path))
        // without the style's pictures the style report cannot say what the style is
        XCTAssertThrowsError(try TrainStyleCommand.run(["--report", adapterPath, "--pipeline", TestPaths.pipelineFixture("tiny-pixel"),
                                                        "--judge", judgePath, "--out", out.path])) {
            XCTAssertTrue("\($0)".contains("IMAGES_DIR"), "\($0)")
        }
    }
}

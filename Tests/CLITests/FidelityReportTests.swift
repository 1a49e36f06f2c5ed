// The fidelity report on the tiny pixel-space fixture with an adapter of nonzero up matrices and a judge of
// random weights: the images are noise to the judge, so the tests check the report's structure (counts,
// fractions, before = the base model's output, after ≠ before, files written), not its numbers.
import Adapters
@testable import CLI
import Judge
import PNGImage
import PictureWorld
import Pipeline
import TensorCore
import TestSupport
import XCTest

final class FidelityReportTests: XCTestCase {
    var fixtures: ReportFixtures!
    var root: URL { fixtures.root }
    var adapterPath: String { fixtures.adapterPath }
    var judgePath: String { fixtures.judgePath }

    override func setUpWithError() throws {
        fixtures = try ReportFixtures(prefix: "fidelity-report", name: "sks", seed: 5,
                                      info: LoRAFileInfo(triggerPhrase: "sks dog",
                                                         extra: ["ss_class": "dog", "ss_training_comment": "train-style DreamBooth LoRA",
                                                                 "ss_class_prompt": "a photo of a dog"]))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    func testReportStructureAndBeforeIsTheBaseModel() throws {
        var settings = FidelityReportSettings()
        settings.count = 3
        settings.steps = 2
        settings.size = 16
        settings.batchSize = 4   // batches mix adapter weights 0 and 1
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel"))
        let instances = try (0..<2).map { try Image(width: 16, height: 16, color: (UInt8(100 * $0), 200, 50)) }
        let (report, images) = try FidelityReport.run(model: model, adapterPath: adapterPath,
                                                      judge: Judge(contentsOf: judgePath), settings: settings,
                                                      instances: instances)
        XCTAssertEqual(report.token, "sks")
        XCTAssertEqual(report.className, "dog")
        XCTAssertEqual(report.priorPreservation, true)
        XCTAssertTrue(report.subjectPrompts.allSatisfy { $0.hasPrefix("a photo of sks dog ") }, "\(report.subjectPrompts)")
        XCTAssertEqual(report.priorPrompts.first, "a photo of a dog")
        for set in [images.subjectBefore, images.subjectAfter, images.priorBefore, images.priorAfter] {
            XCTAssertEqual(set.count, 3)
            XCTAssertTrue(set.allSatisfy { $0.width == 16 && $0.height == 16 })
        }
        for m in [report.subjectFidelity, report.backgroundFidelity, report.priorDrift, report.priorObject] {
            XCTAssertTrue((0...1).contains(m.before) && (0...1).contains(m.after), "\(m)")
        }
        // The prior-object row is the judge's object verdict on the prior images, counted.
        let judge = try Judge(contentsOf: judgePath)
        for (set, value) in [(images.priorBefore, report.priorObject.before), (images.priorAfter, report.priorObject.after)] {
            XCTAssertEqual(Double(try judge.evaluate(set).filter { $0.object == .dog }.count) / 3, value, accuracy: 1e-12)
        }
        // The clean rows count the clean head's verdicts (a dog and clean for the prior).
        for (set, value) in [(images.priorBefore, report.priorCleanObject.before), (images.priorAfter, report.priorCleanObject.after)] {
            XCTAssertEqual(Double(try judge.evaluate(set).filter { $0.object == .dog && $0.clean }.count) / 3, value, accuracy: 1e-12)
        }
        XCTAssertEqual(Double(try judge.evaluate(images.subjectAfter).filter(\.clean).count) / 3, report.subjectClean.after, accuracy: 1e-12)

        // The feature measures are the judge's features compared as PictureMeasures defines it.
        let f = (sb: try judge.features(images.subjectBefore), sa: try judge.features(images.subjectAfter),
                 pb: try judge.features(images.priorBefore), pa: try judge.features(images.priorAfter),
                 i: try judge.features(instances))
        XCTAssertEqual(report.subjectSimilarity, .init(before: PictureMeasures.meanCrossCosine(f.sb, f.i),
                                                       after: PictureMeasures.meanCrossCosine(f.sa, f.i)))
        XCTAssertEqual(report.pres, .init(before: PictureMeasures.meanCrossCosine(f.pb, f.i), after: PictureMeasures.meanCrossCosine(f.pa, f.i)))
        XCTAssertEqual(report.priorFeatureCosine, PictureMeasures.meanPairedCosine(f.pb, f.pa), accuracy: 1e-12)
        XCTAssertEqual(report.priorSSIM, try PictureMeasures.meanSSIM(images.priorBefore, images.priorAfter), accuracy: 1e-12)
        XCTAssertLessThan(report.priorSSIM, 1, "the adapter changes the class pictures")
        // 3 seeds over 6 subject prompts: every prompt has one picture, so there is no pair to be diverse
        XCTAssertEqual(report.subjectDiversity, .init(before: 0, after: 0))
        let without = try FidelityReport.run(model: try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel")),
                                             adapterPath: adapterPath, judge: judge, settings: settings).report
        XCTAssertNil(without.subjectSimilarity)
        XCTAssertNil(without.pres)
        XCTAssertFalse(without.table.contains("judge-I"))

        // Before is the base model alone (no adapter loaded) for prompt i and seed i; after differs.
        let base = TextToImage(model: try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel")))
        for (prompts, before, after) in [(report.subjectPrompts, images.subjectBefore, images.subjectAfter),
                                         (report.priorPrompts, images.priorBefore, images.priorAfter)] {
            for i in 0..<3 {
                let p = GenerationParameters(prompt: prompts[i], steps: 2, seed: UInt64(i), width: 16, height: 16)
                let alone = try base.generate(p)[0].image
                XCTAssertEqual(before[i].pixels, alone.pixels, "before image \(i) of \"\(prompts[i])\"")
            }
            XCTAssertNotEqual(before.map(\.pixels), after.map(\.pixels))
        }

        try report.write(to: root, images: images)
        let decoded = try JSONDecoder().decode(FidelityReport.self, from: Data(contentsOf: root.appendingPathComponent("report.json")))
        XCTAssertEqual(decoded, report)
        // The grid of the four rows, right of their labels ("sks dog before" is the longest) and below the title.
        let grid = try PNG.read(path: root.appendingPathComponent("report.png").path).image
        let plain = try Image.grid(images.subjectBefore + images.subjectAfter + images.priorBefore + images.priorAfter,
                                   columns: 3, gap: 2)
        let (left, top) = (PixelFont.width(of: "sks dog before") + 8, PixelFont.height() + 8)
        XCTAssertEqual([grid.width, grid.height], [plain.width + left, plain.height + top])
        XCTAssertTrue(try grid.cropped(x: left, y: top, width: plain.width, height: plain.height) == plain)
        for row in ["prior drift", "with prior preservation", "prior shows a dog", "a clean dog", "judge-I", "prior SSIM", "PRES", "DIV (subject)"] {
            XCTAssertTrue(report.table.contains(row), "\(row) in\n\(report.table)")
        }
    }

    func testReportCommandWritesTheReportFolder() throws {
        let out = root.appendingPathComponent("out")
        let code = try TrainStyleCommand.run(["--report", adapterPath, "--pipeline", TestPaths.pipelineFixture("tiny-pixel"),
                                              "--judge", judgePath, "--report-count", "2", "--out", out.path])
        XCTAssertEqual(code, 0)
        let folder = out.appendingPathComponent("reports/sks")
        let report = try JSONDecoder().decode(FidelityReport.self, from: Data(contentsOf: folder.appendingPathComponent("report.json")))
        XCTAssertEqual(report.settings.count, 2)
        XCTAssertEqual(report.settings.steps, 20)
        XCTAssertEqual(report.settings.guidanceScale, 7.5)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("report.png").path))
        // --report-cfg: the pictures at another guidance scale, recorded in the report; a negative one is refused
        let other = root.appendingPathComponent("out-cfg")
        XCTAssertEqual(try TrainStyleCommand.run(["--report", adapterPath, "--pipeline", TestPaths.pipelineFixture("tiny-pixel"),
                                                  "--judge", judgePath, "--report-count", "2", "--report-cfg", "4", "--out", other.path]), 0)
        let atFour = try JSONDecoder().decode(FidelityReport.self, from: Data(contentsOf: other.appendingPathComponent("reports/sks/report.json")))
        XCTAssertEqual(atFour.settings.guidanceScale, 4)
        XCTAssertNotEqual(try Data(contentsOf: other.appendingPathComponent("reports/sks/report.png")),
                          try Data(contentsOf: folder.appendingPathComponent("report.png")), "other pictures")
        // a model folder that recommends a guidance scale is reported at it unless --report-cfg says otherwise
        let recommending = root.appendingPathComponent("tiny-pixel-g3")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: TestPaths.pipelineFixture("tiny-pixel")), to: recommending)
        let index = recommending.appendingPathComponent("model_index.json").path
        try String(contentsOfFile: index, encoding: .utf8).replacingOccurrences(of: "{\n", with: "{\n  \"_guidance_scale\": 3.0,\n")
            .write(toFile: index, atomically: true, encoding: .utf8)
        let third = root.appendingPathComponent("out-recommended")
        XCTAssertEqual(try TrainStyleCommand.run(["--report", adapterPath, "--pipeline", recommending.path, "--judge", judgePath,
                                                  "--report-count", "2", "--out", third.path]), 0)
        let atThree = try JSONDecoder().decode(FidelityReport.self, from: Data(contentsOf: third.appendingPathComponent("reports/sks/report.json")))
        XCTAssertEqual(atThree.settings.guidanceScale, 3)
        XCTAssertEqual(try TrainStyleCommand.run(["--report", adapterPath, "--pipeline", recommending.path, "--judge", judgePath,
                                                  "--report-count", "2", "--report-cfg", "4", "--out", third.path]), 0)
        XCTAssertEqual(try JSONDecoder().decode(FidelityReport.self, from: Data(contentsOf: third.appendingPathComponent("reports/sks/report.json")))
                        .settings.guidanceScale, 4)
        XCTAssertThrowsError(try TrainStyleCommand.run(["--report", adapterPath, "--pipeline", TestPaths.pipelineFixture("tiny-pixel"),
                                                        "--judge", judgePath, "--report-cfg", "-1", "--out", other.path]))
    }

    func testReportCommandNeedsItsFiles() {
        XCTAssertThrowsError(try TrainStyleCommand.run(["--report", root.appendingPathComponent("none.safetensors").path,
                                                        "--pipeline", TestPaths.pipelineFixture("tiny-pixel"), "--judge", judgePath]))
        XCTAssertThrowsError(try TrainStyleCommand.run(["--report", adapterPath, "--pipeline", TestPaths.pipelineFixture("tiny-pixel"),
                                                        "--judge", root.appendingPathComponent("none").path]))
    }
}

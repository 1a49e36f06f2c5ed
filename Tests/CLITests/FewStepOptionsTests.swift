// generate's few-step options: --fast, --sampler lcm|unipc, --taesd, --vae-tiling, on the tiny fixture.
@testable import CLI
import PNGImage
import Pipeline
import Schedulers
import TestSupport
import XCTest

final class FewStepOptionsTests: XCTestCase {
    private func parse(_ argv: [String]) throws -> GenerationParameters {
        let args = try ParsedArguments(argv, options: GenerateCommand.options, flagNames: GenerateCommand.flagNames)
        return try GenerateCommand.overridden(GenerationParameters(prompt: "a dog"), args, defaultSeed: 1)
    }

    func testFastIsLCMFourStepsWithoutGuidanceAndExplicitOptionsWin() throws {
        let fast = try parse(["--fast"])
        XCTAssertEqual([fast.sampler.rawValue, "\(fast.steps)", "\(fast.guidanceScale)"], ["lcm", "4", "1.0"])
        let six = try parse(["--fast", "--steps", "6", "--cfg", "1.5"])
        XCTAssertEqual([six.sampler.rawValue, "\(six.steps)", "\(six.guidanceScale)"], ["lcm", "6", "1.5"])
        XCTAssertEqual(try parse(["--sampler", "UniPC"]).sampler, .unipc)
    }

    func testWritesPNGsWithTheTinyAutoencoderAndTiling() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fewstep-tests-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let base = ["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", out.path, "--width", "32", "--height", "32",
                    "--seed", "5"]
        XCTAssertEqual(GenerateCommand.main(base + ["--fast", "--taesd", TestPaths.pipelineFixture("tiny-taesd"), "a dog"]), 0)
        XCTAssertEqual(GenerateCommand.main(base + ["--sampler", "unipc", "--steps", "3", "--vae-tiling", "a dog"]), 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(files.count, 2)
        let texts = try files.map { try PNG.read(path: out.appendingPathComponent($0).path).text.map(\.text).joined() }
        XCTAssertTrue(texts.contains { $0.contains("Steps: 4, Sampler: LCM, ") && $0.contains("CFG scale: 1") }, "\(texts)")
        XCTAssertTrue(texts.contains { $0.contains("Steps: 3, Sampler: UniPC, ") }, "\(texts)")
        XCTAssertNotEqual(GenerateCommand.main(base + ["--taesd", out.path, "a dog"]), 0)   // no config.json there
    }
}

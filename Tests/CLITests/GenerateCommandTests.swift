// The `generate` command through its library entry point (`GenerateCommand.main`), on the tiny fixture.
@testable import CLI
import PNGImage
import Pipeline
import TestSupport
import XCTest

final class GenerateCommandTests: XCTestCase {
    var out: URL!

    override func setUpWithError() throws {
        out = FileManager.default.temporaryDirectory.appendingPathComponent("generate-tests-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: out.appendingPathExtension("adapters"))
    }

    /// `generate` with an empty adapter folder: a test never reads the working folder's outputs/adapters
    /// (a user's trained `sks` adapter there would otherwise apply by its trigger word).
    func generate(_ arguments: [String]) -> Int32 {
        let adapters = out.appendingPathExtension("adapters")
        try? FileManager.default.createDirectory(at: adapters, withIntermediateDirectories: true)
        return GenerateCommand.main(arguments + ["--lora-dir", adapters.path])
    }

    func base(_ extra: [String]) -> [String] {
        ["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", out.path, "--steps", "3", "--width", "16", "--height", "16"] + extra
    }

    func pngs() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []).filter { $0.hasSuffix(".png") }.sorted()
    }

    func testWritesPNGWithParametersChunk() throws {
        XCTAssertEqual(generate(base(["--seed", "42", "--sampler", "euler_a", "--negative", "blurry, dark",
                                                  "a photo of sks dog"])), 0)
        let files = pngs()
        XCTAssertEqual(files.count, 1)
        XCTAssertTrue(files[0].hasSuffix("-42-a-photo-of-sks-dog.png"), files[0])
        let decoded = try PNG.read(path: out.appendingPathComponent(files[0]).path)
        XCTAssertEqual(decoded.image.width, 16)
        let text = try XCTUnwrap(decoded.text.first { $0.keyword == "parameters" }).text
        XCTAssertTrue(text.hasPrefix("a photo of sks dog\nNegative prompt: blurry, dark\nSteps: 3, Sampler: Euler a, "), text)
        let info = try ParametersText(parsing: text)
        XCTAssertEqual(info.parameters.seed, 42)
        XCTAssertEqual(info.parameters.sampler, .eulerAncestral)
        XCTAssertEqual(info.modelName, "tiny-sd")
        // python -c "import hashlib; print(hashlib.sha256(open(unet_weights, 'rb').read()).hexdigest()[:10])"
        XCTAssertEqual(info.modelHash, "320d959ebd")
    }

    /// `--from-png` re-renders the same pixels, including an image from the middle of a batch.
    func testFromPNGReproducesPixels() throws {
        for rng in ["native", "torch"] {
            XCTAssertEqual(generate(base(["--seed", "7", "--rng", rng, "--num-images", "2", "--sampler", "dpm++2m",
                                                      "--karras", "a red car"])), 0)
        }
        let originals = pngs()
        XCTAssertEqual(originals.count, 4)
        let rerender = out.appendingPathComponent("again")
        for name in originals {
            let path = out.appendingPathComponent(name).path
            XCTAssertEqual(generate(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", rerender.path,
                                                 "--from-png", path]), 0)
            let again = try FileManager.default.contentsOfDirectory(atPath: rerender.path)
            XCTAssertEqual(again.count, 1)
            let a = try PNG.read(path: path), b = try PNG.read(path: rerender.appendingPathComponent(again[0]).path)
            XCTAssertEqual(a.image, b.image, name)
            XCTAssertEqual(a.text, b.text, name)
            try FileManager.default.removeItem(at: rerender)
        }
        let first = try PNG.read(path: out.appendingPathComponent(originals[0]).path)
        let second = try PNG.read(path: out.appendingPathComponent(originals[1]).path)
        XCTAssertNotEqual(first.image, second.image, "two images of a batch are different pictures")
    }

    func testGridHoldsEveryImageInPromptOrder() throws {
        let file = out.appendingPathComponent("prompts.txt")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try "a red car\na cat\na dog\n".write(to: file, atomically: true, encoding: .utf8)
        let grid = out.appendingPathComponent("grid.png")
        XCTAssertEqual(generate(base(["--seed", "3", "--prompts", file.path, "--grid", grid.path,
                                                  "--grid-columns", "2"])), 0)
        let files = pngs().filter { $0 != "grid.png" }
        XCTAssertEqual(files.count, 3)
        let decoded = try PNG.read(path: grid.path)
        XCTAssertEqual([decoded.image.width, decoded.image.height], [16 * 2 + 3 * 2, 16 * 2 + 3 * 2])   // 2-pixel gaps
        // Cell k is image k: compare the grid's top-right cell (x 20, y 2) with the PNG of the second prompt.
        let second = try XCTUnwrap(files.first { $0.hasSuffix("-a-cat.png") })
        let cat = try PNG.read(path: out.appendingPathComponent(second).path).image
        for y in 0..<16 {
            let row = ((y + 2) * decoded.image.width + 20) * 3
            XCTAssertEqual(Array(decoded.image.pixels[row..<(row + 48)]), Array(cat.pixels[(y * 16 * 3)..<((y + 1) * 16 * 3)]))
        }
        let text = try XCTUnwrap(decoded.text.first { $0.keyword == "grid" }).text
        XCTAssertEqual(text.components(separatedBy: "\n\n").count, 3)
        XCTAssertTrue(text.hasPrefix("a red car\n"), text)
        XCTAssertEqual(generate(base(["--grid-columns", "2", "a cat"])), 2)
        XCTAssertEqual(generate(base(["--grid", out.appendingPathComponent("no/such/grid.png").path, "a cat"])), 1)
    }

    func testSameSeedSameSecondNeverOverwrites() throws {
        for _ in 0..<3 { XCTAssertEqual(generate(base(["--seed", "5", "a cat"])), 0) }
        XCTAssertEqual(Set(pngs()).count, 3)
        let folder = try OutputFolder(path: out.path)
        let a = try folder.writeNew([1, 2, 3], baseName: "same")
        let b = try folder.writeNew([4, 5], baseName: "same")
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a)), Data([1, 2, 3]))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: out.path).contains { $0.hasSuffix(".tmp") })
    }

    func testPromptsFileSkipsComments() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("prompts-\(UUID().uuidString).txt")
        try "# animals\na dog\n\n  # indented comment\na bird\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        XCTAssertEqual(generate(base(["--seed", "1", "--prompts", file.path])), 0)
        XCTAssertEqual(pngs().map { String($0.split(separator: "-").last!) }.sorted(), ["bird.png", "dog.png"])
    }

    func testBadInputFailsWithoutWritingAPNG() throws {
        let file = out.appendingPathComponent("a-file")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data([0]).write(to: file)
        let cases: [([String], Int32)] = [
            (base(["--sampler", "nonsense", "x"]), 2),
            (base(["--width", "20", "x"]), 1),
            (base(["--karras", "--sampler", "ddim", "x"]), 1),
            (["--pipeline", "/nonexistent/pipeline", "--out", out.path, "x"], 1),
            (base(["--prompts", "/nonexistent/prompts.txt"]), 1),
            (["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", file.path, "x"], 1),
            (base(["--from-png", "/nonexistent.png"]), 1),
            (base(["a <lora:style:0.8> photo"]), 1),
            (base(["--bogus", "x"]), 2),
            (base(["--steps", "many", "x"]), 2),
            (base(["--rng", "gpu", "x"]), 2),
            (base([]), 2),
            (base(["two", "prompts"]), 2),
        ]
        for (arguments, code) in cases {
            XCTAssertEqual(generate(arguments), code, arguments.joined(separator: " "))
        }
        XCTAssertEqual(pngs(), [])
    }

    func testMissingDefaultPipelineNamesIt() {
        let empty = FileManager.default.temporaryDirectory
        XCTAssertThrowsError(try GenerateCommand.pipelineFolder(nil, searchRoots: [empty])) { error in
            XCTAssertTrue("\(error)".contains("pipelines/toy"), "\(error)")
            XCTAssertTrue("\(error)".contains("--pipeline"), "\(error)")
        }
    }

    /// `generate "prompt"` with no other argument runs the embedded default `pipelines/toy`.
    func testEmbeddedDefaultWritesPNGWithParameters() throws {
        XCTAssertTrue(try GenerateCommand.pipelineFolder(nil).hasSuffix("pipelines/toy"))
        XCTAssertEqual(generate(["--out", out.path, "--steps", "2", "--seed", "7", "--no-auto-lora",
                                             "a photo of a red car in the snow"]), 0)
        let files = pngs()
        XCTAssertEqual(files.count, 1)
        let decoded = try PNG.read(path: out.appendingPathComponent(files[0]).path)
        XCTAssertEqual(decoded.image.width, 64)
        let text = try XCTUnwrap(decoded.text.first { $0.keyword == "parameters" }).text
        let info = try ParametersText(parsing: text)
        XCTAssertEqual(info.parameters.prompt, "a photo of a red car in the snow")
        XCTAssertEqual(info.parameters.steps, 2)
        XCTAssertEqual(info.parameters.seed, 7)
        XCTAssertEqual(info.modelName, "toy")
        XCTAssertEqual(info.parameters.guidanceScale, 3, "the embedded model's recommended guidance")
    }

    /// Without --cfg, `generate` draws at the model folder's recommended guidance (`_guidance_scale`); --cfg, --fast
    /// and --from-png's recorded scale win over it; a folder whose value is not a number fails with no PNG.
    func testModelFolderRecommendsTheGuidance() throws {
        let folder = out.appendingPathExtension("model")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: TestPaths.pipelineFixture("tiny-sd")), to: folder)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let index = folder.appendingPathComponent("model_index.json").path
        let original = try String(contentsOfFile: index, encoding: .utf8)
        try original.replacingOccurrences(of: "{\n", with: "{\n  \"_guidance_scale\": 3.0,\n").write(toFile: index, atomically: true, encoding: .utf8)
        func cfg(_ extra: [String], prompt: [String] = ["a red car"]) throws -> Double {
            try? FileManager.default.removeItem(at: out)
            XCTAssertEqual(generate(["--pipeline", folder.path, "--out", out.path, "--steps", "2", "--width", "16", "--height", "16",
                                     "--seed", "3"] + extra + prompt), 0)
            let file = try XCTUnwrap(pngs().first)
            let text = try XCTUnwrap(try PNG.read(path: out.appendingPathComponent(file).path).text.first { $0.keyword == "parameters" }).text
            return try ParametersText(parsing: text).parameters.guidanceScale
        }
        XCTAssertEqual(try cfg([]), 3)
        XCTAssertEqual(try cfg(["--cfg", "6"]), 6)
        XCTAssertEqual(try cfg(["--guidance", "5"]), 5)
        XCTAssertEqual(try cfg(["--fast"]), 1)
        let fast = try XCTUnwrap(pngs().first)
        try FileManager.default.copyItem(at: out.appendingPathComponent(fast), to: folder.appendingPathComponent("fast.png"))
        XCTAssertEqual(try cfg(["--from-png", folder.appendingPathComponent("fast.png").path], prompt: []), 1)
        try original.replacingOccurrences(of: "{\n", with: "{\n  \"_guidance_scale\": \"strong\",\n").write(toFile: index, atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(at: out)
        XCTAssertNotEqual(generate(["--pipeline", folder.path, "--out", out.path, "--steps", "2", "--width", "16", "--height", "16", "a red car"]), 0)
        XCTAssertEqual(pngs(), [])
    }

    func testArgumentScanning() throws {
        let args = try ParsedArguments(["--steps=5", "p", "--json", "--", "--not-an-option"],
                                       options: ["steps"], flagNames: ["json"])
        XCTAssertEqual(try args.int("steps"), 5)
        XCTAssertTrue(args.has("json"))
        XCTAssertEqual(args.positionals, ["p", "--not-an-option"])
        XCTAssertThrowsError(try ParsedArguments(["--steps"], options: ["steps"], flagNames: []))
        XCTAssertEqual(OutputFolder.slug("A photo of  sks dog, <lora:x:1> (4k)!"), "a-photo-of-sks-dog-lora-x-1-4k")
        XCTAssertEqual(OutputFolder.slug("日本"), "image")
    }
    /// stable-diffusion.cpp's and A1111's spellings: -p -n -s -W -H -o FILE.png --cfg-scale --sampling-method, sampler
    /// names as A1111 writes them, seed -1.
    func testOtherToolsSpellings() throws {
        let cat = out.appendingPathComponent("cat.png")
        XCTAssertEqual(generate(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--steps", "3", "-W", "16", "-H", "16",
                                 "-s", "42", "--cfg-scale", "5", "--sampling-method", "Euler a", "-n", "blurry", "-o", cat.path,
                                 "-p", "a cat"]), 0)
        let text = try XCTUnwrap(try PNG.read(path: cat.path).text.first { $0.keyword == "parameters" }).text
        XCTAssertTrue(text.hasPrefix("a cat\nNegative prompt: blurry\nSteps: 3, Sampler: Euler a, "), text)
        XCTAssertTrue(text.contains("CFG scale: 5") && text.contains("Seed: 42"), text)
        XCTAssertEqual(generate(base(["--sampler", "DPM++ 2M Karras", "-o", cat.path, "a cat"])), 0)
        let second = try XCTUnwrap(try PNG.read(path: out.appendingPathComponent("cat-2.png").path).text.first {
            $0.keyword == "parameters" }).text
        XCTAssertTrue(second.contains("Sampler: DPM++ 2M, Schedule type: Karras"), second)
        XCTAssertEqual(generate(base(["-s", "-1", "a cat"])), 0)
        XCTAssertEqual(generate(base(["-p", "a cat", "a dog"])), 2)
    }

    /// Errors and warnings in words: a grid PNG for --from-png, a PNG given as an adapter, a prompt past the text
    /// encoder's window.
    func testGridPNGAdapterPNGAndLongPromptAreNamed() throws {
        let grid = out.appendingPathComponent("grid.png")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        XCTAssertEqual(generate(base(["--seed", "1", "--grid", grid.path, "a cat"])), 0)
        XCTAssertThrowsError(try GenerateCommand.run(base(["--no-auto-lora", "--from-png", grid.path]))) {
            XCTAssertTrue("\($0)".contains("is a grid"), "\($0)")
        }
        XCTAssertThrowsError(try GenerateCommand.run(base(["--no-auto-lora", "--lora", grid.path, "a cat"]))) {
            XCTAssertTrue("\($0)".contains("not a safetensors file"), "\($0)")
        }
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        let long = GenerationParameters(prompt: Array(repeating: "cat", count: model.promptTokenLimit).joined(separator: " ") + " dog")
        let lines = try GenerateCommand.promptLengthWarnings([long, GenerationParameters(prompt: "a cat")], model: model)
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0].hasSuffix("is cut: \"dog\""), lines[0])
        let said = capturingStandardError {
            XCTAssertEqual(GenerateCommand.main(base(["--seed", "1", "--lora-dir", out.appendingPathComponent("none").path, long.prompt])), 0)
        }
        XCTAssertTrue(said.contains("warning: --lora-dir \(out.appendingPathComponent("none").path) does not exist"), said)
        XCTAssertTrue(said.contains("warning: the text encoder reads \(model.promptTokenLimit) tokens"), said)
    }
    /// `--shard I/N` renders prompts I, I+N, …: the union of the N shards is one run's PNGs, bit for bit (names up to
    /// their time stamp).
    func testShardsTogetherEqualOneRun() throws {
        let file = try temporaryDirectory("shard-prompts").appendingPathComponent("prompts.txt")
        try "a red car\n# comment\na cat\na dog\na bird\na house\n".write(to: file, atomically: true, encoding: .utf8)
        func render(_ folder: String, _ extra: [String]) throws -> [String: Data] {
            let dir = out.appendingPathComponent(folder)
            XCTAssertEqual(generate(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", dir.path, "--steps", "2",
                                     "--width", "16", "--height", "16", "--seed", "9", "--batch-size", "2",
                                     "--prompts", file.path] + extra), 0)
            var files: [String: Data] = [:]
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] {
                files[String(name.dropFirst(16))] = try Data(contentsOf: dir.appendingPathComponent(name))   // drop yyyyMMdd-HHmmss-
            }
            return files
        }
        let whole = try render("whole", [])
        XCTAssertEqual(whole.count, 5)
        var union: [String: Data] = [:]
        for i in 0..<3 {
            let shard = try render("shard-\(i)", ["--shard", "\(i)/3"])
            XCTAssertEqual(shard.count, i < 2 ? 2 : 1)
            union.merge(shard) { a, _ in a }
        }
        XCTAssertEqual(union, whole)
        XCTAssertEqual(try render("empty", ["--shard", "6/7"]).count, 0)
        XCTAssertEqual(generate(base(["--prompts", file.path, "--shard", "0/2"])), 2, "a shard needs --seed")
        XCTAssertEqual(generate(base(["--seed", "1", "--prompts", file.path, "--shard", "2/2"])), 2)
    }
}



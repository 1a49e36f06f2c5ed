// `generate` with LoRA adapters on the tiny fixture: trigger words, flags and tags, the usage line,
// `Lora hashes` in the PNG, exact re-rendering from it, and bad adapter input.
import Adapters
@testable import CLI
import PNGImage
import Pipeline
import TensorCore
import TestSupport
import XCTest

final class GenerateAdapterTests: XCTestCase {
    var root: URL!
    var adapters: URL { root.appendingPathComponent("adapters") }

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("generate-lora-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: adapters, withIntermediateDirectories: true)
        // An adapter on the fixture's UNet attention with nonzero up matrices, trigger "sks".
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        let stack = AdapterStack(root: model.unet, component: .unet)
        var random = PhiloxRandom(seed: 1)
        try stack.addTrainable(name: "sks", rank: 2, targets: .unetAttention, random: &random)
        for (_, _, pair) in stack.pairs(of: "sks") { pair.up.value = random.normal(shape: pair.up.shape, std: 0.5) }
        try LoRAWriter.write(stack.export("sks"), to: adapters.appendingPathComponent("sks.safetensors").path,
                             info: LoRAFileInfo(triggerPhrase: "sks"))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    func run(_ out: String, _ extra: [String]) -> Int32 {
        GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", root.appendingPathComponent(out).path,
                              "--steps", "2", "--width", "16", "--height", "16", "--seed", "3",
                              "--lora-dir", adapters.path] + extra)
    }

    func png(_ out: String) throws -> DecodedPNG {
        let dir = root.appendingPathComponent(out)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".png") }
        XCTAssertEqual(files.count, 1, out)
        return try PNG.read(path: dir.appendingPathComponent(files[0]).path)
    }

    func parameters(_ decoded: DecodedPNG) throws -> String {
        try XCTUnwrap(decoded.text.first { $0.keyword == "parameters" }).text
    }

    func testTriggerWordAppliesTheAdapterAndThePNGReRendersExactly() throws {
        XCTAssertEqual(run("auto", ["a photo of sks dog"]), 0)
        XCTAssertEqual(run("off", ["--no-auto-lora", "a photo of sks dog"]), 0)
        XCTAssertEqual(run("tag", ["--no-auto-lora", "a photo of <lora:sks:1> sks dog"]), 0)
        let auto = try png("auto"), off = try png("off"), tag = try png("tag")
        let hash = try LoRAHash.shortHash(ofFile: adapters.appendingPathComponent("sks.safetensors").path)
        let text = try parameters(auto)
        XCTAssertTrue(text.hasPrefix("a photo of sks dog <lora:sks:1.0>\n"), text)
        XCTAssertTrue(text.contains("Lora hashes: \"sks: \(hash)\""), text)
        XCTAssertFalse(try parameters(off).contains("Lora hashes"))
        XCTAssertNotEqual(auto.image, off.image, "the adapter changes the picture")
        XCTAssertEqual(auto.image, tag.image, "a trigger word and an explicit tag at 1.0 give the same picture")
        // --from-png re-renders the adapter's picture (the tag it carries names the adapter).
        let source = root.appendingPathComponent("auto").path
        let file = try FileManager.default.contentsOfDirectory(atPath: source).first { $0.hasSuffix(".png") }!
        XCTAssertEqual(GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", root.appendingPathComponent("again").path,
                                             "--lora-dir", adapters.path, "--from-png", source + "/" + file]), 0)
        XCTAssertEqual(try png("again").image, auto.image)
    }

    /// An adapter in the folder that was made for another base model is skipped (with one line) when only its
    /// trigger word names it: the prompt renders as without it.
    func testTriggerWordSkipsAnAdapterForAnotherModel() throws {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel"))
        let stack = AdapterStack(root: model.unet, component: .unet)
        var random = PhiloxRandom(seed: 2)
        try stack.addTrainable(name: "pix", rank: 2, targets: .unetAttention, random: &random)
        try LoRAWriter.write(stack.export("pix"), to: adapters.appendingPathComponent("pix.safetensors").path,
                             info: LoRAFileInfo(triggerPhrase: "pix"))
        var code: Int32 = -1
        let said = capturingStandardError { code = run("auto", ["a photo of pix dog"]) }
        XCTAssertEqual(code, 0)
        XCTAssertTrue(said.contains("skipping adapter pix.safetensors (trigger \"pix\"): it does not fit this model"), said)
        XCTAssertEqual(run("off", ["--no-auto-lora", "a photo of pix dog"]), 0)
        XCTAssertEqual(try png("auto").image, try png("off").image)
        XCTAssertFalse(try parameters(try png("auto")).contains("pix:"))
        XCTAssertEqual(run("named", ["a photo of <lora:pix:1> dog"]), 1, "an adapter the prompt names must fit")
    }

    /// diffusers saves every adapter as `pytorch_lora_weights.safetensors` in its own folder: such an adapter is named
    /// after its folder, and `--lora NAME=FILE` names any adapter (a tag can then use that name).
    func testAdaptersNamedByFolderOrByTheUser() throws {
        for folder in ["dog", "cat"] {
            let dir = root.appendingPathComponent(folder)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: adapters.appendingPathComponent("sks.safetensors"),
                                             to: dir.appendingPathComponent("pytorch_lora_weights.safetensors"))
        }
        let dog = root.appendingPathComponent("dog/pytorch_lora_weights.safetensors").path
        let cat = root.appendingPathComponent("cat/pytorch_lora_weights.safetensors").path
        XCTAssertEqual(run("folders", ["--no-auto-lora", "--lora", dog + ":0.5", "--lora", cat + ":0.25", "a photo"]), 0)
        let text = try parameters(try png("folders"))
        XCTAssertTrue(text.contains("<lora:cat:0.25>") && text.contains("<lora:dog:0.5>"), text)
        XCTAssertEqual(run("named", ["--no-auto-lora", "--lora", "style=" + dog + ":0", "a <lora:style:0.5> photo"]), 0)
        let named = try parameters(try png("named"))
        XCTAssertTrue(named.hasPrefix("a <lora:style:0.5> photo\n") && named.contains("Lora hashes: \"style: "), named)
    }

    func testFromPNGWarnsWhenTheAdapterOfThatNameChanged() {
        var recorded = GenerationParameters(prompt: "a <lora:sks:1> dog")
        recorded.adapters = [AdapterReference(name: "sks", hash: "aaaaaaaaaaaa")]
        var used = recorded
        XCTAssertEqual(GenerateCommand.adapterHashWarnings(recorded: .init(parameters: recorded, keep: 0), used: used), [])
        used.adapters = [AdapterReference(name: "sks", hash: "bbbbbbbbbbbb")]
        XCTAssertEqual(GenerateCommand.adapterHashWarnings(recorded: .init(parameters: recorded, keep: 0), used: used).count, 1)
        XCTAssertEqual(GenerateCommand.adapterHashWarnings(recorded: .init(parameters: recorded, keep: nil), used: used), [])
    }

    /// The PNGs of an output folder by the first line of their parameters chunk.
    func pngsByPrompt(_ out: String) throws -> [String: (image: Image, text: String, path: String)] {
        let dir = root.appendingPathComponent(out)
        var found: [String: (image: Image, text: String, path: String)] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: dir.path) where file.hasSuffix(".png") {
            let path = dir.appendingPathComponent(file).path
            let decoded = try PNG.read(path: path)
            let text = try parameters(decoded)
            found[String(text.split(separator: "\n")[0])] = (decoded.image, text, path)
        }
        return found
    }

    func testPromptsWithTheirOwnAdaptersInOneBatchEqualEachAlone() throws {
        // A second adapter, on the UNet's ResNet convolutions and the text encoder.
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        var random = PhiloxRandom(seed: 5)
        var modules: [LoRAModuleWeights] = []
        for (stack, targets) in [(AdapterStack(root: model.unet, component: .unet), LoRATargets.unetResnet),
                                 (AdapterStack(root: model.textEncoder, component: .textEncoder), .textEncoder)] {
            try stack.addTrainable(name: "ink", rank: 4, targets: targets, random: &random)
            for (_, _, pair) in stack.pairs(of: "ink") { pair.up.value = random.normal(shape: pair.up.shape, std: 0.5) }
            modules += try stack.export("ink")
        }
        try LoRAWriter.write(modules, to: adapters.appendingPathComponent("ink.safetensors").path)
        let prompts = root.appendingPathComponent("prompts.txt")
        try "a photo of sks dog\na house, <lora:ink:0.7>\na cat\n".write(to: prompts, atomically: true, encoding: .utf8)
        let lines = ["a photo of sks dog <lora:sks:1.0>", "a house, <lora:ink:0.7>", "a cat"]
        let hashes = try ["sks", "ink"].map { try LoRAHash.shortHash(ofFile: adapters.appendingPathComponent("\($0).safetensors").path) }
        for rng in RandomSourceKind.allCases {
            let common = ["--prompts", prompts.path, "--rng", rng.rawValue, "--sampler", "euler_a"]
            XCTAssertEqual(run("batch-\(rng)", common), 0)
            XCTAssertEqual(run("alone-\(rng)", common + ["--batch-size", "1"]), 0)
            let batch = try pngsByPrompt("batch-\(rng)"), alone = try pngsByPrompt("alone-\(rng)")
            XCTAssertEqual(Set(batch.keys), Set(lines), rng.rawValue)
            for line in lines {
                let (b, a) = (try XCTUnwrap(batch[line]), try XCTUnwrap(alone[line]))
                XCTAssertEqual(b.image, a.image, "\(rng): \(line) in the batch equals it alone")
                XCTAssertEqual(b.text, a.text, "\(rng): \(line) carries its own parameters")
                XCTAssertTrue(b.text.contains("Seed: 3,") && b.text.contains("RNG: \(rng.rawValue)"), b.text)
            }
            XCTAssertTrue(batch[lines[0]]!.text.contains("Lora hashes: \"sks: \(hashes[0])\""), batch[lines[0]]!.text)
            XCTAssertTrue(batch[lines[1]]!.text.contains("Lora hashes: \"ink: \(hashes[1])\""), batch[lines[1]]!.text)
            XCTAssertFalse(batch[lines[2]]!.text.contains("Lora hashes"), batch[lines[2]]!.text)
            XCTAssertNotEqual(batch[lines[1]]!.image, batch[lines[2]]!.image)
            // The second image re-rendered alone from its PNG.
            XCTAssertEqual(GenerateCommand.main(["--pipeline", TestPaths.pipelineFixture("tiny-sd"), "--out", root.appendingPathComponent("again-\(rng)").path,
                                                 "--lora-dir", adapters.path, "--from-png", batch[lines[1]]!.path]), 0)
            let again = try png("again-\(rng)")
            XCTAssertEqual(again.image, batch[lines[1]]!.image, "\(rng): --from-png of the second image")
            XCTAssertEqual(try parameters(again), batch[lines[1]]!.text)
        }
    }

    func testBatchesGroupConsecutiveRequestsThatShareALoop() {
        func p(_ images: Int = 1, steps: Int = 2) -> GenerationParameters {
            GenerationParameters(prompt: "x", steps: steps, width: 16, height: 16, numImages: images)
        }
        XCTAssertEqual(GenerateCommand.batches([p(), p(), p(), p(), p()], size: 4), [0..<4, 4..<5])
        XCTAssertEqual(GenerateCommand.batches([p(), p(2), p(2), p(5), p()], size: 4), [0..<2, 2..<3, 3..<4, 4..<5])
        XCTAssertEqual(GenerateCommand.batches([p(), p(steps: 3), p(steps: 3)], size: 4), [0..<1, 1..<3])
        XCTAssertEqual(GenerateCommand.batches([p(), p()], size: 1), [0..<1, 1..<2])
        XCTAssertEqual(GenerateCommand.batches([], size: 4), [])
    }

    func testFlagWeightsAndBadInput() throws {
        XCTAssertEqual(run("zero", ["--lora", "sks:0", "a photo of sks dog"]), 0)
        XCTAssertEqual(run("off", ["--no-auto-lora", "a photo of sks dog"]), 0)
        XCTAssertEqual(try png("zero").image, try png("off").image, "weight 0 is the base model")
        XCTAssertEqual(run("split", ["--lora", "sks:unet=0.5,te=0", "a dog"]), 0)
        XCTAssertTrue(try parameters(png("split")).hasPrefix("a dog <lora:sks:unet=0.5,te=0.0>\n"))
        XCTAssertEqual(run("bad1", ["--lora", "sks:x", "a dog"]), 2)
        XCTAssertEqual(run("bad2", ["a <lora:missing:1> dog"]), 1)
        XCTAssertEqual(run("bad3", ["a <lora:sks:abc> dog"]), 1)
        for bad in ["bad1", "bad2", "bad3"] {
            let written = (try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(bad).path)) ?? []
            XCTAssertEqual(written.filter { $0.hasSuffix(".png") }, [], "\(bad) wrote no PNG")
        }
    }
}

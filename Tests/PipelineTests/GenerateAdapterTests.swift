// `generate` with LoRA adapters on the tiny fixture: trigger words, flags and tags, the usage line,
// `Lora hashes` in the PNG, exact re-rendering from it, and bad adapter input.
import Adapters
@testable import CLI
import PNGImage
import Pipeline
import TensorCore
import XCTest

final class GenerateAdapterTests: XCTestCase {
    var root: URL!
    var adapters: URL { root.appendingPathComponent("adapters") }

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("generate-lora-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: adapters, withIntermediateDirectories: true)
        // An adapter on the fixture's UNet attention with nonzero up matrices, trigger "sks".
        let model = try StableDiffusionModel(path: fixturePath("tiny-sd"))
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
        GenerateCommand.main(["--pipeline", fixturePath("tiny-sd"), "--out", root.appendingPathComponent(out).path,
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
        XCTAssertEqual(GenerateCommand.main(["--pipeline", fixturePath("tiny-sd"), "--out", root.appendingPathComponent("again").path,
                                             "--lora-dir", adapters.path, "--from-png", source + "/" + file]), 0)
        XCTAssertEqual(try png("again").image, auto.image)
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

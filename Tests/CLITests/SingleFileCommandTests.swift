// `generate -m FILE.safetensors`: the same pictures as the folder with the same weights, with a LoRA adapter too,
// the file's hash in the PNG, and --from-png back to the same pixels.
import Adapters
@testable import CLI
import PNGImage
import Pipeline
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class SingleFileCommandTests: XCTestCase {
    var root: URL!
    let file = TestPaths.pipelineFixture("single-file/sd1-like.safetensors")
    let folder = TestPaths.pipelineFixture("single-file/sd1-like")
    var adapters: URL { root.appendingPathComponent("adapters") }

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("single-file-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: adapters, withIntermediateDirectories: true)
        // An adapter on the UNet's attention with nonzero up matrices (kohya keys, as users' adapters have).
        let model = try StableDiffusionModel(path: folder)
        let stack = AdapterStack(root: model.unet, component: .unet)
        var random = PhiloxRandom(seed: 5)
        try stack.addTrainable(name: "ink", rank: 2, targets: .unetAttention, random: &random)
        for (_, _, pair) in stack.pairs(of: "ink") { pair.up.value = random.normal(shape: pair.up.shape, std: 0.5) }
        try LoRAWriter.write(stack.export("ink"), to: adapters.appendingPathComponent("ink.safetensors").path,
                             info: LoRAFileInfo(triggerPhrase: "ink"))
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func run(_ out: String, _ model: [String], _ extra: [String]) -> Int32 {
        GenerateCommand.main(model + ["--out", root.appendingPathComponent(out).path, "--steps", "3", "--width", "16",
                                      "--height", "16", "--seed", "11", "--rng", "torch", "--lora-dir", adapters.path] + extra)
    }

    func png(_ out: String) throws -> (path: String, decoded: DecodedPNG) {
        let dir = root.appendingPathComponent(out)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".png") }
        XCTAssertEqual(files.count, 1, out)
        let path = dir.appendingPathComponent(files[0]).path
        return (path, try PNG.read(path: path))
    }

    func testGenerateWithSingleFileEqualsFolder() throws {
        let tokenizer = ["--tokenizer", TestPaths.pipelineFixture("tiny-sd/tokenizer")]
        XCTAssertEqual(run("folder", ["--pipeline", folder], ["a red car"]), 0)
        XCTAssertEqual(run("file", ["-m", file] + tokenizer, ["a red car"]), 0)
        XCTAssertEqual(run("alias", ["--model=" + file] + tokenizer, ["a red car"]), 0)
        XCTAssertEqual(run("lora-folder", ["--pipeline", folder], ["a red car, ink"]), 0)
        XCTAssertEqual(run("lora-file", ["--model", file] + tokenizer, ["a red car, ink"]), 0)
        let fromFolder = try png("folder"), fromFile = try png("file")
        XCTAssertEqual(fromFolder.decoded.image, fromFile.decoded.image)
        XCTAssertEqual(try png("alias").decoded.image, fromFile.decoded.image)
        let lora = try png("lora-file")
        XCTAssertEqual(try png("lora-folder").decoded.image, lora.decoded.image)
        XCTAssertNotEqual(lora.decoded.image, fromFile.decoded.image, "the adapter changes the picture")

        let text = try XCTUnwrap(fromFile.decoded.text.first { $0.keyword == "parameters" }).text
        let info = try ParametersText(parsing: text)
        XCTAssertEqual(info.modelName, "sd1-like")
        XCTAssertEqual(info.modelHash, String(try SHA256.hexDigest(ofFile: file).prefix(10)))

        // --from-png with the file re-renders the adapter's picture.
        XCTAssertEqual(GenerateCommand.main(["-m", file] + tokenizer + ["--out", root.appendingPathComponent("again").path,
                                            "--lora-dir", adapters.path, "--from-png", lora.path]), 0)
        XCTAssertEqual(try png("again").decoded.image, lora.decoded.image)
    }

    /// train-style on the file trains the adapter it trains on the folder; its metadata names the file's hash.
    func testTrainStyleOnSingleFile() throws {
        let images = TestPaths.repository("images")
        func train(_ model: [String], _ out: String) throws -> LoRAFile {
            let dir = root.appendingPathComponent(out)
            XCTAssertEqual(try TrainStyleCommand.run([images, "--token", "sks", "--class", "dog", "--steps", "2", "--no-prior",
                                                      "--resolution", "16", "--no-report", "--out", dir.path] + model), 0)
            return try LoRAFile(contentsOf: dir.appendingPathComponent("adapters/sks.safetensors").path)
        }
        let fromFile = try train(["-m", file, "--tokenizer", TestPaths.pipelineFixture("tiny-sd/tokenizer")], "file")
        let fromFolder = try train(["--pipeline", folder], "folder")
        XCTAssertEqual(fromFile.metadata["ss_new_sd_model_hash"], String(try SHA256.hexDigest(ofFile: file).prefix(10)))
        XCTAssertEqual(fromFile.metadata["ss_base_model"], "sd1-like")
        XCTAssertEqual(fromFile.modules.count, fromFolder.modules.count)
        for (a, b) in zip(fromFile.modules, fromFolder.modules) {
            XCTAssertEqual(a.down.scalars, b.down.scalars)
            XCTAssertEqual(a.up.scalars, b.up.scalars)
        }
    }

    func testBadModelOptions() {
        XCTAssertEqual(GenerateCommand.main(["-m", file, "--prediction", "x0", "a"]), 2)
        XCTAssertEqual(TrainingPreset(pipeline: file).name, TrainingPreset.stableDiffusion.name)
    }
}

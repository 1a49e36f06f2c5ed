import Adapters
import Autograd
import Foundation
import PNGImage
import Pipeline
import SafeTensors
import TensorCore
import TestSupport
import XCTest
@testable import Training

/// LoRA training on the tiny pixel-space pipeline of PipelineTests (16 px, random weights) with the
/// repository's `images/` dog pictures.
final class TrainerTests: XCTestCase {
    static let tinyPipeline = TinyTraining.pipeline
    static let images = TinyTraining.images

    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("training-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    private func config(steps: Int, lr: Float = 1e-3) -> StyleTrainingConfig { TinyTraining.config(steps: steps, lr: lr) }

    private func trainer(_ c: StyleTrainingConfig, run: String, classImages: URL? = nil) throws -> StyleTrainer {
        try TinyTraining.trainer(c, runDirectory: scratch.appendingPathComponent(run), classImages: classImages)
    }

    /// Mean loss over fixed draws (same timesteps, noise and images before and after training).
    private func evaluationLoss(_ t: StyleTrainer) throws -> Float {
        var random = PhiloxRandom(seed: 12345)
        var total: Float = 0
        for _ in 0..<16 {
            total += try withNoGrad { try t.loop.microBatchLoss(&random) }.value.withUnsafeBufferPointer { $0[0] }
        }
        return total / 16
    }

    /// `--preview taesd`: the sample grid of a latent model decoded with the tiny autoencoder — each tile is the
    /// picture TextToImage gives with that decoder, not the VAE's; a pixel-space model refuses it.
    func testSampleGridsDecodeWithTheTinyAutoencoder() throws {
        let tinySD = TestPaths.pipelineFixture("tiny-sd"), taesd = TestPaths.pipelineFixture("tiny-taesd")
        var c = config(steps: 1)
        c.pipeline = tinySD
        c.previewTinyAutoencoder = taesd
        let model = try StableDiffusionModel(path: tinySD)
        let t = try StyleTrainer(config: c, model: model, runDirectory: scratch.appendingPathComponent("taesd"), classImages: nil)
        let grid = scratch.appendingPathComponent("grid.png")
        try t.writePreview(to: grid, prompts: ["a photo of sks dog"])
        var tiny = TextToImage(model: model)
        tiny.tinyAutoencoder = try ModelSource.loadTinyAutoencoder(taesd)
        let vae = TextToImage(model: model)
        let p = GenerationParameters(prompt: "a photo of sks dog", steps: 20, seed: 0, width: t.resolution, height: t.resolution)
        let (withTiny, withVAE) = try withNoGrad { (try tiny.generate(p)[0].image, try vae.generate(p)[0].image) }
        // The grid's first tile sits after its 2-pixel outer gap.
        let tile = try PNG.read(path: grid.path).image.cropped(x: 2, y: 2, width: t.resolution, height: t.resolution)
        XCTAssertTrue(tile == withTiny, "the first tile is the picture decoded with the tiny autoencoder")
        XCTAssertFalse(tile == withVAE, "… not the VAE's")

        var pixel = config(steps: 1)
        pixel.previewTinyAutoencoder = taesd
        XCTAssertThrowsError(try trainer(pixel, run: "pixel")) { XCTAssertTrue("\($0)".contains("latent model"), "\($0)") }
    }

    func testThirtyStepsLowerTheLoss() throws {
        var c = config(steps: 30, lr: 1e-2)
        c.targets = .conv
        let t = try trainer(c, run: "loss")
        let before = try evaluationLoss(t)
        XCTAssertEqual(try t.loop.run(), .finished)
        let after = try evaluationLoss(t)
        XCTAssertLessThan(after, 0.8 * before, "loss \(before) → \(after)")
        XCTAssertEqual(t.loop.state.lossHistory.count, 30)
    }

    func testCaptionDropoutTrainsRowsOnTheEmptyPrompt() throws {
        func loss(dropout: Double?, prompt: String? = nil) throws -> Float {
            var c = config(steps: 1)
            c.captionDropout = dropout
            if let prompt { c.prompt.override = prompt }
            var random = PhiloxRandom(seed: 99)
            return try withNoGrad { try trainer(c, run: UUID().uuidString).loop.microBatchLoss(&random) }.value.item
        }
        let plain = try loss(dropout: nil)
        XCTAssertEqual(try loss(dropout: 0), plain, "no dropout draws nothing: runs without it are unchanged")
        let dropped = try loss(dropout: 1)
        XCTAssertNotEqual(dropped, plain)
        XCTAssertEqual(dropped, try loss(dropout: 1, prompt: ""), "rate 1: every row trains on the empty prompt")
        XCTAssertNotEqual(try loss(dropout: 1, prompt: "a photo of sks dog"), try loss(dropout: nil, prompt: "a photo of sks dog"))
    }

    func testBaseWeightsAreBitwiseUnchanged() throws {
        let t = try trainer(config(steps: 3), run: "frozen")
        let unetBefore = t.model.unet.stateDict(), textBefore = t.model.textEncoder.stateDict()
        _ = try t.loop.run()
        XCTAssertEqual(bitPatterns(t.model.unet.stateDict()), bitPatterns(unetBefore))
        XCTAssertEqual(bitPatterns(t.model.textEncoder.stateDict()), bitPatterns(textBefore))
        XCTAssertTrue(t.model.unet.namedParameters().allSatisfy { !$0.1.requiresGrad && $0.1.grad == nil })
        XCTAssertTrue(t.parameterReport.hasPrefix("trainable params: "))
    }

    func testResumeIsBitwiseEqualToAnUninterruptedRun() throws {
        var c = config(steps: 6)
        c.loop.saveEvery = 2
        c.flip = true
        c.crop = .random
        let straight = try trainer(c, run: "straight")
        XCTAssertEqual(try straight.loop.run(), .finished)

        let first = try trainer(c, run: "resumed")
        first.loop.shouldStop = { first.loop.state.step >= 3 }
        XCTAssertEqual(try first.loop.run(), .interrupted(step: 3))
        let second = try trainer(c, run: "resumed")
        try second.resume()
        XCTAssertEqual(second.loop.state.step, 3)
        XCTAssertEqual(try second.loop.run(), .finished)

        let a = scratch.appendingPathComponent("a.safetensors").path, b = scratch.appendingPathComponent("b.safetensors").path
        try straight.writeAdapter(to: a)
        try second.writeAdapter(to: b)
        let fa = try SafeTensorsFile(path: a).loadAll(), fb = try SafeTensorsFile(path: b).loadAll()
        XCTAssertEqual(fa.keys.sorted(), fb.keys.sorted())
        XCTAssertTrue(fa.keys.contains { $0.hasPrefix("lora_unet_") && $0.hasSuffix(".lora_up.weight") })
        XCTAssertEqual(bitPatterns(fa), bitPatterns(fb))
        XCTAssertEqual(straight.loop.state.lossHistory, second.loop.state.lossHistory)
        let meta = try SafeTensorsFile(path: a).metadata
        XCTAssertEqual(meta["modelspec.trigger_phrase"], "sks dog")
        XCTAssertEqual(meta["ss_steps"], "6")
        XCTAssertEqual(meta["ss_network_dim"], "4")
    }

    /// The class-image cache folder's name keeps its pre-guidance spelling at 7.5 (so earlier caches are found) and
    /// changes with any other guidance. Expected digests: FNV-1a 64 of "abc|a photo of a dog|0|dpm++2m|20|64" and of
    /// the same with "|g4.0" (python: h = 0xcbf29ce484222325; for b in text: h = ((h ^ b) * 0x100000001b3) % 2**64).
    func testClassImageFolderNameCarriesTheGuidance() {
        let plain = ClassImageKey(modelHash: "abc", prompt: "a photo of a dog", seed: 0, resolution: 64)
        XCTAssertEqual(plain.guidance, 7.5)
        XCTAssertEqual(plain.folderName, "a-photo-of-a-dog-40c6144c04651338")
        let four = ClassImageKey(modelHash: "abc", prompt: "a photo of a dog", seed: 0, resolution: 64, guidance: 4)
        XCTAssertEqual(four.folderName, "a-photo-of-a-dog-1eff4d111351c4e9")
    }

    func testPriorPreservationTrainsOnCachedClassImages() throws {
        let model = try StableDiffusionModel(path: Self.tinyPipeline)
        let key = ClassImageKey(modelHash: try model.modelHash() ?? "", prompt: "a photo of a dog", seed: 0, steps: 2, resolution: 16)
        let root = scratch.appendingPathComponent("class-images")
        let folder = try PriorPreservation.classImages(model: model, key: key, count: 2, root: root)
        let png = folder.appendingPathComponent("class-00001.png")
        let written = try FileManager.default.attributesOfItem(atPath: png.path)[.modificationDate] as? Date
        _ = try PriorPreservation.classImages(model: model, key: key, count: 2, root: root)   // reused, not redrawn
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: png.path)[.modificationDate] as? Date, written)
        // Batched generation writes the same files as one image at a time (and fills in only what is missing).
        let one = scratch.appendingPathComponent("one-at-a-time"), batched = scratch.appendingPathComponent("batched")
        let a = try PriorPreservation.classImages(model: model, key: key, count: 3, root: one, batchSize: 1)
        _ = try PriorPreservation.classImages(model: model, key: key, count: 1, root: batched, batchSize: 2)
        let b = try PriorPreservation.classImages(model: model, key: key, count: 3, root: batched, batchSize: 2)
        for i in 0..<3 {
            let name = String(format: "class-%05d.png", i)
            XCTAssertEqual(try Data(contentsOf: a.appendingPathComponent(name)), try Data(contentsOf: b.appendingPathComponent(name)), name)
        }

        var c = config(steps: 2)
        c.prior = true
        c.batch = 2
        let t = try StyleTrainer(config: c, model: model, runDirectory: scratch.appendingPathComponent("prior"), classImages: folder)
        XCTAssertEqual(t.classes?.examples.count, 2)
        XCTAssertEqual(t.classes?.examples.first?.prompt, "a photo of a dog")
        XCTAssertEqual(t.classes?.warnings, [], "the folder's cache-key.txt is not reported as a stray file")
        XCTAssertEqual(try t.loop.run(), .finished)
    }

    func testImageFolderErrorsNameTheFile() throws {
        let folder = scratch.appendingPathComponent("imgs")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        XCTAssertThrowsError(try DreamBoothDataset(directory: folder, prompt: "p", resolution: 16)) { error in
            XCTAssertTrue("\(error)".contains("has no images"), "\(error)")
        }
        try Data([0x00, 0x00, 0x00, 0x18] + Array("ftypheic".utf8)).write(to: folder.appendingPathComponent("dog.jpg"))
        XCTAssertThrowsError(try DreamBoothDataset(directory: folder, prompt: "p", resolution: 16)) { error in
            XCTAssertTrue("\(error)".contains("dog.jpg: a HEIC/HEIF picture") && "\(error)".contains("convert it to PNG"),
                          "\(error)")
        }
        try FileManager.default.removeItem(at: folder.appendingPathComponent("dog.jpg"))
        try Data([1, 2, 3]).write(to: folder.appendingPathComponent("broken.png"))
        XCTAssertThrowsError(try DreamBoothDataset(directory: folder, prompt: "p", resolution: 16)) { error in
            XCTAssertTrue("\(error)".contains("broken.png"), "\(error)")
        }
    }

    func testCaptionFileReplacesThePromptAndImagesAreResized() throws {
        let folder = scratch.appendingPathComponent("captioned")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let source = URL(fileURLWithPath: Self.images).appendingPathComponent("sks_dog_0.png")
        try FileManager.default.copyItem(at: source, to: folder.appendingPathComponent("a.png"))
        try FileManager.default.copyItem(at: source, to: folder.appendingPathComponent("b.png"))
        try "sks dog on a sofa\n".write(to: folder.appendingPathComponent("b.txt"), atomically: true, encoding: .utf8)
        let data = try DreamBoothDataset(directory: folder, prompt: "a photo of sks dog", resolution: 16)
        XCTAssertEqual(data.examples.map(\.prompt), ["a photo of sks dog", "sks dog on a sofa"])
        XCTAssertEqual(data.examples[0].image.width, 16)
        // A caption that lacks the trigger word gets it attached; one that has it stays as it is.
        let style = InstancePrompt(token: "sks", style: true), subject = InstancePrompt(token: "sks", className: "dog")
        XCTAssertEqual(style.prompt(forCaption: "a red car on the beach"), "a red car on the beach in the style of sks")
        XCTAssertEqual(style.prompt(forCaption: "a red car, sks style"), "a red car, sks style")
        XCTAssertEqual(subject.prompt(forCaption: "a dog on a sofa"), "a dog on a sofa, sks")
        XCTAssertEqual(subject.prompt(forCaption: "SKS dog on a sofa"), "SKS dog on a sofa")
        XCTAssertEqual(subject.prompt(forCaption: "a sksdog"), "a sksdog, sks")
        try "a dog on a sofa\n".write(to: folder.appendingPathComponent("a.txt"), atomically: true, encoding: .utf8)
        let ruled = try DreamBoothDataset(directory: folder, prompt: "a photo of sks dog", resolution: 16,
                                          caption: subject.prompt(forCaption:))
        XCTAssertEqual(ruled.examples.map(\.prompt), ["a dog on a sofa, sks", "sks dog on a sofa"])
        var random = PhiloxRandom(seed: 1)
        XCTAssertEqual(try data.sample(0, crop: .center, flip: false, vae: nil, random: &random).shape, [16, 16, 3])
    }
}

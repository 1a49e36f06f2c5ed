// Per-image adapters in one batch on the tiny fixture: a batch of requests with their own prompts, seeds and
// adapters runs one denoising loop, and every image is bit for bit the image of its request run alone.
// Exact equality holds because every row of the batch is computed with the same operations in the same
// order as alone: the GEMM and convolution kernels sum each output over K in an order fixed by K alone (the
// tile shape, thread split and the (B·Aᵀ)ᵀ path for few rows change which rows go together, not a row's
// sums), the adapters' up GEMMs run with α = 1 (each row's weight scales its down output first, so the
// few-row path cannot fold α into another operand; rank 4 here takes that path for time_emb_proj), the text
// encoder runs each request's prompts as its own batch, and the noise comes from each request's own generator.
import Adapters
import PNGImage
import Pipeline
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class BatchGenerationTests: XCTestCase {
    /// The fixture with two adapters loaded at weight 0: "a" on the UNet attention and the text encoder,
    /// "b" on the UNet's ResNet convolutions; up matrices nonzero so both change the picture.
    static func adaptedPipeline() throws -> TextToImage {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        let source = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))   // the adapters are made on a copy
        let set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder)
        var random = PhiloxRandom(seed: 11)
        for (name, targets) in [("a", LoRATargets.unetAttention), ("b", LoRATargets.unetResnet)] {
            let unet = AdapterStack(root: source.unet, component: .unet)
            try unet.addTrainable(name: name, rank: 4, targets: targets, random: &random)
            for (_, _, pair) in unet.pairs(of: name) { pair.up.value = random.normal(shape: pair.up.shape, std: 0.5) }
            var modules = try unet.export(name)
            if name == "a" {
                let text = AdapterStack(root: source.textEncoder, component: .textEncoder)
                try text.addTrainable(name: name, rank: 4, targets: .textEncoder, random: &random)
                for (_, _, pair) in text.pairs(of: name) { pair.up.value = random.normal(shape: pair.up.shape, std: 0.5) }
                modules += try text.export(name)
            }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("batch-\(name)-\(UUID().uuidString).safetensors")
            defer { try? FileManager.default.removeItem(at: file) }
            try LoRAWriter.write(modules, to: file.path, info: LoRAFileInfo())
            try set.load(LoRAFile(contentsOf: file.path), name: name, unetWeight: 0, textEncoderWeight: 0)
        }
        return TextToImage(model: model, adapters: set)
    }

    /// Three requests: adapter a (UNet 1, text encoder 0.5); none, two images; a at 0.3 and b at 0.8.
    func requests(sampler: SamplerKind, rng: RandomSourceKind) -> [BatchRequest] {
        func p(_ prompt: String, seed: UInt64, images: Int = 1) -> GenerationParameters {
            GenerationParameters(prompt: prompt, negativePrompt: "blurry", steps: 3, guidanceScale: 5, sampler: sampler,
                                 seed: seed, rng: rng, width: 16, height: 16, numImages: images)
        }
        return [BatchRequest(parameters: p("a red dog", seed: 3), adapterWeights: ["a": AdapterWeights(unet: 1, textEncoder: 0.5)]),
                BatchRequest(parameters: p("a blue cat", seed: 4, images: 2), adapterWeights: [:]),
                BatchRequest(parameters: p("a house", seed: 5),
                             adapterWeights: ["a": AdapterWeights(unet: 0.3, textEncoder: 0.3), "b": AdapterWeights(unet: 0.8, textEncoder: 0.8)])]
    }

    func testBatchEqualsEachRequestAloneBitwise() throws {
        let pipeline = try Self.adaptedPipeline()
        for rng in RandomSourceKind.allCases {
            for sampler in [SamplerKind.dpmpp2m, .eulerAncestral, .dpmpp2mSDE] {
                let label = "\(rng.rawValue) \(sampler.rawValue)"
                let batch = requests(sampler: sampler, rng: rng)
                let together = try pipeline.denoise(batch: batch)
                XCTAssertEqual(together.shape[0], 4, label)
                let alone = try batch.map { try pipeline.denoise(batch: [$0]) }
                let perImage = together.count / together.shape[0]
                var offset = 0
                for (i, solo) in alone.enumerated() {
                    let rows = Array(together.scalars[offset..<(offset + solo.count)])
                    XCTAssertEqual(rows, solo.scalars, "\(label): request \(i) in the batch equals it alone")
                    offset += solo.count
                }
                XCTAssertEqual(offset, together.count)
                // The adapters changed the pictures: request 0 without its adapter differs.
                var bare = batch[0]
                bare.adapterWeights = [:]
                XCTAssertNotEqual(try pipeline.denoise(batch: [bare]).scalars, Array(together.scalars[0..<perImage]), label)
                bare.adapterWeights = ["a": AdapterWeights(unet: 1, textEncoder: 0)]
                XCTAssertNotEqual(try pipeline.denoise(batch: [bare]).scalars, Array(together.scalars[0..<perImage]),
                                  "\(label): the text-encoder weight counts")
            }
        }
    }

    func testAdaptersReturnToTheirSharedWeightsAndBadBatchesAreRefused() throws {
        let pipeline = try Self.adaptedPipeline()
        let plain = GenerationParameters(prompt: "a red dog", steps: 2, seed: 3, width: 16, height: 16)
        let before = try pipeline.denoise(plain)
        _ = try pipeline.denoise(batch: requests(sampler: .euler, rng: .native))
        XCTAssertEqual(try pipeline.denoise(plain).scalars, before.scalars, "after a batch the adapters are back at weight 0")
        var bad = requests(sampler: .euler, rng: .native)
        bad[1].adapterWeights = ["missing": AdapterWeights(unet: 1, textEncoder: 1)]
        XCTAssertThrowsError(try pipeline.denoise(batch: bad)) { XCTAssertTrue("\($0)".contains("missing"), "\($0)") }
        XCTAssertEqual(try pipeline.denoise(plain).scalars, before.scalars, "a refused batch leaves the adapters as they were")
        var mixed = requests(sampler: .euler, rng: .native)
        mixed[2].parameters.steps = 4
        XCTAssertThrowsError(try pipeline.denoise(batch: mixed))
        mixed = requests(sampler: .euler, rng: .native)
        mixed[0].adapterWeights = nil
        XCTAssertThrowsError(try pipeline.denoise(batch: mixed))
        XCTAssertThrowsError(try pipeline.denoise(batch: []))
    }

    func testGenerateBatchGivesEachImageItsOwnParameters() throws {
        let pipeline = try Self.adaptedPipeline()
        let batch = requests(sampler: .dpmpp2m, rng: .torch)
        let results = try pipeline.generate(batch: batch)
        XCTAssertEqual(results.map(\.count), [1, 2, 1])
        for (request, images) in zip(batch, results) {
            let alone = try pipeline.generate(batch: [request])[0]
            XCTAssertEqual(images.map(\.image), alone.map(\.image), request.parameters.prompt)
            XCTAssertEqual(images.map(\.info), alone.map(\.info), request.parameters.prompt)
            XCTAssertEqual(images.map(\.info.batchPosition), Array(0..<request.parameters.numImages))
            XCTAssertTrue(images.allSatisfy { $0.info.parameters.seed == request.parameters.seed })
        }
    }

    /// Per-image weights go with the call, not into the layers: two pipelines on one model run at the same
    /// time with different adapters, and each gets what it gets alone.
    func testTwoPipelinesOnOneModelRunAtOnce() throws {
        let pipeline = try Self.adaptedPipeline()
        let other = TextToImage(model: pipeline.model, adapters: pipeline.adapters)
        let batch = requests(sampler: .euler, rng: .native)
        let jobs = [(pipeline, [batch[0]]), (other, [batch[2]])]
        let alone = try jobs.map { try $0.0.denoise(batch: $0.1).scalars }
        var together = Array(repeating: [Float](), count: jobs.count)
        var failures: [Error] = []
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2 * jobs.count) { i in
            do {
                let out = try jobs[i % jobs.count].0.denoise(batch: jobs[i % jobs.count].1).scalars
                lock.lock(); defer { lock.unlock() }
                if together[i % jobs.count].isEmpty { together[i % jobs.count] = out } else {
                    XCTAssertEqual(out, together[i % jobs.count], "runs of job \(i % jobs.count) agree")
                }
            } catch {
                lock.lock(); failures.append(error); lock.unlock()
            }
        }
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        XCTAssertEqual(together, alone, "each pipeline's images are those it makes alone")
        XCTAssertNotEqual(alone[0], alone[1])
    }

    func testBatchNoiseDrawsEachBlockFromItsOwnSource() {
        var blocks = RowBlockNoise(sources: [PhiloxRandom(seed: 1), PhiloxRandom(seed: 2)], rows: [1, 2])
        var one = PhiloxRandom(seed: 1), two = PhiloxRandom(seed: 2)
        let drawn = blocks.normal([3, 2, 2, 4])
        XCTAssertEqual(drawn.scalars, one.normal([1, 2, 2, 4]).scalars + two.normal([2, 2, 2, 4]).scalars)
        XCTAssertEqual(blocks.normal([3, 5]).scalars, one.normal([1, 5]).scalars + two.normal([2, 5]).scalars, "the streams go on")
    }
}

// Image to image with per-image adapters in one batch: each request has its own init picture, seed and
// adapter weights, and its images equal the request run alone, bit for bit (see BatchGenerationTests).
import Adapters
import PNGImage
import Pipeline
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class ImageToImageBatchTests: XCTestCase {
    func requests(sampler: SamplerKind, rng: RandomSourceKind) throws -> [BatchRequest] {
        let picture = try PNG.read(path: TestPaths.pipelineFixture("img2img_init.png")).image
        let flipped = picture.flippedHorizontally()
        func p(_ prompt: String, seed: UInt64, images: Int = 1) -> GenerationParameters {
            GenerationParameters(prompt: prompt, negativePrompt: "blurry", steps: 4, guidanceScale: 5, sampler: sampler,
                                 seed: seed, rng: rng, width: 16, height: 16, numImages: images,
                                 initImage: InitImageReference(strength: 0.6))
        }
        return [BatchRequest(parameters: p("a red dog", seed: 3), adapterWeights: ["a": AdapterWeights(unet: 1, textEncoder: 0.5)],
                             initImage: picture),
                BatchRequest(parameters: p("a blue cat", seed: 4, images: 2), adapterWeights: [:], initImage: flipped),
                BatchRequest(parameters: p("a house", seed: 5), adapterWeights: ["b": AdapterWeights(unet: 0.8, textEncoder: 0.8)],
                             initImage: picture)]
    }

    func testBatchWithPerImageAdaptersEqualsEachRequestAlone() throws {
        let pipeline = try BatchGenerationTests.adaptedPipeline()
        for rng in RandomSourceKind.allCases {
            for sampler in [SamplerKind.ddim, .eulerAncestral, .dpmpp2m] {
                let label = "\(rng.rawValue) \(sampler.rawValue)"
                let batch = try requests(sampler: sampler, rng: rng)
                let together = try pipeline.denoise(batch: batch)
                XCTAssertEqual(together.shape, [4, 8, 8, 4], label)
                var offset = 0
                for (i, request) in batch.enumerated() {
                    let solo = try pipeline.denoise(batch: [request])
                    XCTAssertEqual(Array(together.scalars[offset..<(offset + solo.count)]), solo.scalars,
                                   "\(label): request \(i) in the batch equals it alone")
                    offset += solo.count
                }
                // The adapter and the init picture both matter.
                var bare = batch[0]
                bare.adapterWeights = [:]
                XCTAssertNotEqual(try pipeline.denoise(batch: [bare]).scalars, Array(together.scalars[0..<256]), label)
                var other = batch[0]
                other.initImage = batch[1].initImage
                XCTAssertNotEqual(try pipeline.denoise(batch: [other]).scalars, Array(together.scalars[0..<256]), label)
            }
        }
    }

    func testRequestsAreCheckedBeforeAnyWork() throws {
        let pipeline = TextToImage(model: try tinySD())
        let batch = try requests(sampler: .ddim, rng: .torch)
        var noPicture = batch[1]
        noPicture.initImage = nil
        var noStrength = batch[1]
        noStrength.parameters.initImage = nil
        var tooWeak = batch[1]
        tooWeak.parameters.initImage = InitImageReference(strength: 0.1)     // int(4 · 0.1) = 0 steps
        var outside = batch[1]
        outside.parameters.initImage = InitImageReference(strength: 1.5)
        for bad in [noPicture, noStrength, tooWeak, outside] {
            XCTAssertThrowsError(try pipeline.denoise(batch: [BatchRequest(parameters: bad.parameters, initImage: bad.initImage)]))
        }
        var otherStrength = batch[2]
        otherStrength.parameters.initImage?.strength = 0.9
        XCTAssertThrowsError(try pipeline.denoise(batch: [batch[0], otherStrength]), "one strength per batch")
    }

    /// Without a size the picture's own (40x48, rounded down to multiples of 8) is used, as diffusers does.
    func testSizeDefaultsToThePicture() throws {
        let pipeline = TextToImage(model: try tinySD())
        let picture = try PNG.read(path: TestPaths.pipelineFixture("img2img_init.png")).image
        let p = try pipeline.resolve(GenerationParameters(prompt: "x", initImage: InitImageReference(strength: 0.5)),
                                     initImage: picture)
        XCTAssertEqual(p.width, 40)
        XCTAssertEqual(p.height, 48)
    }

    /// Progress counts the evaluations that run: strength 0.6 of 4 steps runs int(2.4) = 2.
    func testProgressCountsTheStepsThatRun() throws {
        let pipeline = TextToImage(model: try tinySD())
        let request = try requests(sampler: .ddim, rng: .native)[0]
        var seen: [String] = []
        _ = try pipeline.denoise(request.parameters, initImage: request.initImage) { seen.append("\($0.step)/\($0.total)") }
        XCTAssertEqual(seen, ["1/2", "2/2"])
    }
}

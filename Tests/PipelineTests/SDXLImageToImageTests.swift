// SDXL image-to-image (TextToImage with an init image on tiny-sdxl) against diffusers'
// StableDiffusionXLImg2ImgPipeline. Goldens: Tests/Reference/make_sdxl_img2img_goldens.py.
import PNGImage
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class SDXLImageToImageTests: XCTestCase {
    /// `--rng torch` images (the 40x48 picture resized to 32x32, VAE-encoded and sampled from the posterior with the
    /// same generator, SDXL's conditioning with the picture's time ids): mean |Δ| ≤ 1 level of 255, as SD img2img.
    func testTorchGeneratorImagesMatchDiffusers() throws {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sdxl"))
        let pipeline = TextToImage(model: model)
        let goldens = try SafeTensorsFile(path: TestPaths.pipelineFixture("sdxl_img2img_goldens.safetensors"))
        let picture = try PNG.read(path: TestPaths.pipelineFixture("img2img_init.png")).image
        let sizes = SizeConditioning(originalSize: [64, 48], cropTopLeft: [8, 0], targetSize: [32, 32])
        let cases: [(String, SamplerKind, Double, SizeConditioning?)] = [
            ("euler_a_6", .eulerAncestral, 0.6, nil), ("dpmpp2m_8", .dpmpp2m, 0.8, nil), ("euler_5", .euler, 0.5, nil),
            ("sizes_euler_a_6", .eulerAncestral, 0.6, sizes),
        ]
        for (name, sampler, strength, conditioning) in cases {
            let p = GenerationParameters(prompt: "a photo of sks dog in the snow", negativePrompt: "blurry, low quality", steps: 10,
                                         guidanceScale: 5, sampler: sampler, seed: 1234, rng: .torch, width: 32, height: 32,
                                         initImage: InitImageReference(strength: strength), sizeConditioning: conditioning)
            let image = try XCTUnwrap(try pipeline.generate(p, initImage: picture).first).image
            let expected = try goldens.tensor("image." + name)
            let (mean, worst) = expected.withUnsafeBufferPointer { e in
                (0..<e.count).reduce((0.0, 0.0)) { acc, k in
                    let d = abs(Double(image.pixels[k]) - Double(e[k]) * 255)
                    return (acc.0 + d / Double(e.count), max(acc.1, d))
                }
            }
            print("SDXL img2img \(name): mean |Δ| \(mean) levels, max |Δ| \(worst) levels")
            XCTAssertLessThanOrEqual(mean, 1, name)
        }
        // The size conditioning case is not the plain one in disguise: diffusers' two pictures differ by ~31 levels.
        let plain = try goldens.tensor("image.euler_a_6"), sized = try goldens.tensor("image.sizes_euler_a_6")
        XCTAssertGreaterThan(maxAbsDifference(plain, sized) * 255, 50)
    }
}

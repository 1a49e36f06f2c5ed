// guidance_rescale (diffusers' `rescale_noise_cfg`): latents against diffusers on the tiny fixtures, the rescale's
// own properties, and the parameters text. Goldens: Tests/Reference/make_guidance_rescale_goldens.py.
import DiffusionModels
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest
@testable import Pipeline

final class GuidanceRescaleTests: XCTestCase {
    /// Euler, 10 steps, CFG 7.5 with φ 0.7 and 1: final latents within 1e-4 of the golden's scale (the plain
    /// Euler parity test's tolerance); the pixel-space fixture too.
    func testLatentsMatchDiffusers() throws {
        let goldens = try SafeTensorsFile(path: TestPaths.pipelineFixture("guidance_rescale_goldens.safetensors"))
        let inputs = try SafeTensorsFile(path: TestPaths.pipelineFixture("latents_goldens.safetensors"))
        let cases: [(folder: String, start: String, phi: Double, golden: String)] = [
            ("tiny-sd", "init_latents", 0.7, "latents.euler.rescale0.7"), ("tiny-sd", "init_latents", 1.0, "latents.euler.rescale1.0"),
            ("tiny-pixel", "pixel.init", 0.7, "pixel.euler.rescale0.7"),
        ]
        for c in cases {
            let model = try StableDiffusionModel(path: TestPaths.pipelineFixture(c.folder))
            let initial = try FeatureLayout.nhwc(fromNCHW: inputs.tensor(c.start))
            let size = initial.shape[1] * model.spatialFactor
            let p = GenerationParameters(prompt: Golden.prompt, negativePrompt: Golden.negative, steps: 10, guidanceScale: 7.5,
                                         sampler: .euler, width: size, height: size, guidanceRescale: c.phi)
            let latents = try TextToImage(model: model).denoise(p, initialNoise: initial)
            let expected = try goldens.tensor(c.golden)
            let error = maxAbsDifference(try FeatureLayout.nchw(fromNHWC: latents), expected)
            XCTAssertLessThanOrEqual(error, 1e-4 * maxAbs(expected), "\(c.golden): max error \(error)")
            let plain = try TextToImage(model: model).denoise(
                GenerationParameters(prompt: Golden.prompt, negativePrompt: Golden.negative, steps: 10, guidanceScale: 7.5,
                                     sampler: .euler, width: size, height: size), initialNoise: initial)
            XCTAssertGreaterThan(maxAbsDifference(plain, latents), 100 * error, "\(c.golden): the rescale changes the result")
        }
    }

    /// φ = 1 gives each image the standard deviation of its conditional prediction; φ = 0 is plain guidance, bit
    /// for bit; in between, the factor blends linearly.
    func testRescaleProperties() throws {
        var random = PhiloxRandom(seed: 3)
        let uncond = random.normal(shape: [2, 4, 4, 3]), cond = random.normal(shape: [2, 4, 4, 3])
        let both = Tensor(shape: [4, 4, 4, 3]) { out in
            uncond.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
            cond.withUnsafeBufferPointer { (out.baseAddress! + 96).update(from: $0.baseAddress!, count: $0.count) }
        }
        let plain = try TextToImage.guide(both, scale: 7.5)
        XCTAssertEqual(try TextToImage.guide(both, scale: 7.5, rescale: 0).scalars, plain.scalars)
        func deviations(_ t: Tensor) -> [Double] {
            let s = t.scalars.map(Double.init), m = s.count / 2
            return (0..<2).map { b in
                let part = s[(b * m)..<((b + 1) * m)], mean = part.reduce(0, +) / Double(m)
                return (part.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(m - 1)).squareRoot()
            }
        }
        let full = try TextToImage.guide(both, scale: 7.5, rescale: 1)
        for (a, b) in zip(deviations(full), deviations(cond)) { XCTAssertEqual(a, b, accuracy: 1e-5 * b) }
        XCTAssertGreaterThan(deviations(plain)[0], 3 * deviations(cond)[0], "CFG 7.5 widens the spread")
        let half = try TextToImage.guide(both, scale: 7.5, rescale: 0.5).scalars
        for (i, (h, (p, f))) in zip(half, zip(plain.scalars, full.scalars)).enumerated() {
            XCTAssertEqual(h, 0.5 * p + 0.5 * f, accuracy: 1e-5 * max(1, abs(p)), "value \(i)")
        }
    }

    /// Written as A1111's CFG Rescale extension writes it ("CFG Rescale phi"), only when set; parsed back.
    func testParametersTextCarriesIt() throws {
        var p = GenerationParameters(prompt: "a dog", seed: 4)
        XCTAssertFalse(ParametersText(parameters: p).text.contains("Rescale"))
        p.guidanceRescale = 0.7
        let text = ParametersText(parameters: p).text
        XCTAssertTrue(text.contains("CFG Rescale phi: 0.7"), text)
        XCTAssertEqual(try ParametersText(parsing: text).parameters.guidanceRescale, 0.7)
        XCTAssertEqual(try ParametersText(parsing: "a dog\nSteps: 20, Sampler: Euler, Seed: 1").parameters.guidanceRescale, 0)
        XCTAssertThrowsError(try TextToImage(model: try tinySD()).generate(
            GenerationParameters(prompt: "a dog", steps: 1, width: 32, height: 32, guidanceRescale: 1.5)))
    }
}

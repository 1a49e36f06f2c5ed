// Configuration decoding, spacing rules, errors and the pipeline-facing loop.
import XCTest
@testable import Schedulers
import TensorCore

final class SchedulerConfigTests: XCTestCase {
    func testDecodesStableDiffusionConfigAndIgnoresUnknownKeys() throws {
        let json = """
        {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
         "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
         "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null,
         "clip_sample": false}
        """
        let config = try SchedulerConfig.decode(Data(json.utf8))
        XCTAssertEqual(config, .stableDiffusion1.with { $0.stepsOffset = 1 })
        XCTAssertNil(config.timestepSpacing)
        XCTAssertEqual(config.className, "PNDMScheduler")
    }

    func testUnknownEnumValueNamesTheKey() {
        XCTAssertThrowsError(try SchedulerConfig.decode(Data(#"{"beta_schedule": "sigmoid"}"#.utf8), path: "x/scheduler_config.json")) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("beta_schedule") && text.contains("x/scheduler_config.json"), text)
        }
        XCTAssertThrowsError(try SchedulerConfig.decode(Data(#"{"prediction_type": 3}"#.utf8)))
        XCTAssertThrowsError(try SchedulerConfig.decode(Data(#"{"rescale_betas_zero_snr": true}"#.utf8)))
    }

    func testMissingFileMeansStableDiffusion1() throws {
        let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("no-such-\(UUID()).json")
        XCTAssertEqual(try SchedulerConfig.load(contentsOf: url), .stableDiffusion1)
    }

    func testClassDefaultsFillAbsentKeys() throws {
        // SD-1's config has no timestep_spacing: DDIM leads (901 … 1), Euler spaces linearly in float,
        // DPM++ uses rounded integers — REFERENCE.md fact 5.
        var sd1 = SchedulerConfig.stableDiffusion1
        sd1.stepsOffset = 1
        XCTAssertEqual(try SamplerKind.ddim.make(config: sd1, steps: 10).timesteps.first, 901)
        XCTAssertEqual(try SamplerKind.euler.make(config: sd1, steps: 10).timesteps.prefix(2), [999, 888])
        XCTAssertEqual(try SamplerKind.dpmpp2m.make(config: sd1, steps: 10).timesteps.prefix(2), [999, 899])
        XCTAssertEqual(try SamplerKind.pndm.make(config: sd1, steps: 10).timesteps.count, 11)
        XCTAssertEqual(try SamplerKind.heun.make(config: sd1, steps: 10).timesteps.count, 19)
        var prk = sd1
        prk.skipPrkSteps = nil
        XCTAssertEqual(try SamplerKind.pndm.make(config: prk, steps: 10).timesteps.count, 19)
        // LCM ignores the spacing keys: ⌊linspace⌋ picks from the 50-step distillation schedule 999, 979, …, 19;
        // UniPC spaces like DPM-Solver (linspace when absent)
        XCTAssertEqual(try SamplerKind.lcm.make(config: sd1, steps: 4).timesteps, [999, 759, 499, 259])
        XCTAssertEqual(try SamplerKind.unipc.make(config: sd1, steps: 10).timesteps.prefix(2), [999, 899])
    }
}

final class SamplerBehaviourTests: XCTestCase {
    func testBadArgumentsAreErrors() throws {
        let c = SchedulerConfig.stableDiffusion1
        XCTAssertThrowsError(try SamplerKind.ddim.make(config: c, steps: 10, karras: true)) {
            XCTAssertTrue("\($0)".contains("Karras"), "\($0)")
        }
        XCTAssertThrowsError(try SamplerKind.euler.make(config: c, steps: 0))
        XCTAssertThrowsError(try SamplerKind.euler.make(config: c, steps: 1001))
        XCTAssertThrowsError(try SamplerKind.ddim.make(config: c, steps: 10, eta: -1))
        XCTAssertThrowsError(try SamplerKind.lcm.make(config: c, steps: 51)) {   // more than original_inference_steps
            XCTAssertTrue("\($0)".contains("original_inference_steps"), "\($0)")
        }
        XCTAssertThrowsError(try SamplerKind.lcm.make(config: c, steps: 4, karras: true))
        XCTAssertThrowsError(try SamplerKind.pndm.make(config: c.with { $0.skipPrkSteps = false }, steps: 3))
        var s = try SamplerKind.euler.make(config: c, steps: 4)
        var rng = TorchGenerator(seed: 0)
        XCTAssertThrowsError(try s.step(modelOutput: Tensor(zeros: [1, 2]), step: 0, sample: Tensor(zeros: [2, 1]), noise: &rng))
        XCTAssertThrowsError(try s.step(modelOutput: Tensor(zeros: [2]), step: 4, sample: Tensor(zeros: [2]), noise: &rng))
        XCTAssertThrowsError(try s.scaleModelInput(Tensor(zeros: [2]), step: 9))
    }

    func testRunLoopDenoisesAConstantModel() throws {
        // A model that always predicts x₀ = 0.25 (sample prediction) must end at 0.25 for every sampler.
        // (ᾱ = 1 after the last step and a last timestep of 0, so DDIM and DDPM end exactly on x₀ too)
        let config = SchedulerConfig.stableDiffusion1.with {
            $0.predictionType = .sample
            $0.setAlphaToOne = true
        }
        for kind in SamplerKind.allCases where kind != .pndm && kind != .eulerAncestral {  // ε or v only
            var sampler = try kind.make(config: config, steps: 8)
            var noise = TorchGenerator(seed: 3)
            let start = noise.randn([1, 2, 2, 4])
            var calls = 0
            let x = try sampler.run(from: .noise(start), noise: &noise, progress: { calls = $0.step }) { input, _ in
                Tensor(shape: input.shape, repeating: 0.25)
            }
            XCTAssertEqual(calls, sampler.timesteps.count, kind.rawValue)
            let error = x.scalars.map { abs($0 - 0.25) }.max() ?? 1
            // DDPM and the SDE add fresh noise at every step but the last, whose σ is 0
            XCTAssertLessThan(error, 1e-4, "\(kind.rawValue) ends at \(x.scalars.prefix(4))")
        }
    }

    /// The loop can start from given latents at a later step (img2img): for one-step samplers, resuming from
    /// the sample that progress reported at step k ends where the whole run ends, bit for bit.
    func testRunFromLatentsAtAStartStepContinuesTheRun() throws {
        for kind in [SamplerKind.euler, .ddim] {
            var full = try kind.make(config: .stableDiffusion1, steps: 6)
            var noise = TorchGenerator(seed: 5)
            let start = noise.randn([1, 2, 2, 4])
            var atThree: Tensor?
            let model: (Tensor, Double) throws -> Tensor = { x, t in Elementwise.scale(x, by: Float(0.001 * t)) }
            let whole = try full.run(from: .noise(start), noise: &noise, progress: { if $0.step == 3 { atThree = $0.sample } },
                                     model: model)
            var resumed = try kind.make(config: .stableDiffusion1, steps: 6)
            var steps: [Int] = []
            let rest = try resumed.run(from: .latents(try XCTUnwrap(atThree), step: 3), noise: &noise,
                                       progress: { steps.append($0.step) }, model: model)
            XCTAssertEqual(steps, [4, 5, 6], kind.rawValue)
            XCTAssertEqual(rest.scalars, whole.scalars, kind.rawValue)
            XCTAssertThrowsError(try resumed.run(from: .latents(start, step: 7), noise: &noise, model: model))
        }
    }

    func testTorchNoiseChannelsLastIsTheNCHWDrawTransposed() {
        var nhwc = TorchNoise(seed: 11)
        var plain = TorchGenerator(seed: 11)
        let a = nhwc.normal([2, 3, 5, 4])          // [N, H, W, C]
        let b = plain.randn([2, 4, 3, 5])          // [N, C, H, W]
        for n in 0..<2 { for y in 0..<3 { for x in 0..<5 { for c in 0..<4 {
            XCTAssertEqual(a[flat: ((n * 3 + y) * 5 + x) * 4 + c], b[flat: ((n * 4 + c) * 3 + y) * 5 + x])
        } } } }
        XCTAssertEqual(nhwc.normal([7]).scalars, plain.randn([7]).scalars)
    }

    func testSamplerNamesParse() {
        for kind in SamplerKind.allCases { XCTAssertEqual(SamplerKind(userName: kind.rawValue.uppercased()), kind) }
        XCTAssertEqual(SamplerKind(userName: "k_euler_a"), .eulerAncestral)
        XCTAssertEqual(SamplerKind(userName: "DPMPP_2M_SDE"), .dpmpp2mSDE)
        XCTAssertEqual(SamplerKind(userName: "plms"), .pndm)
        XCTAssertEqual(SamplerKind(userName: "uni_pc"), .unipc)
        XCTAssertEqual([SamplerKind.lcm, .unipc].map(\.displayName), ["LCM", "UniPC"])
        XCTAssertNil(SamplerKind(userName: "dpm++3m"))
    }

    func testKarrasSpacingEndsAtTheScheduleExtremes() {
        let s = SigmaSpacing.karras(sigmaMin: 0.03, sigmaMax: 14.6, steps: 10)
        XCTAssertEqual(s.first!, 14.6, accuracy: 1e-9)
        XCTAssertEqual(s.last!, 0.03, accuracy: 1e-12)
        XCTAssertTrue(zip(s, s.dropFirst()).allSatisfy { $0 > $1 })
    }
}

extension SchedulerConfig {
    func with(_ change: (inout SchedulerConfig) -> Void) -> SchedulerConfig {
        var copy = self
        change(&copy)
        return copy
    }
}

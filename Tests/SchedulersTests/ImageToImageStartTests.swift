// The img2img start of every sampler: strength → first evaluation (diffusers `get_timesteps`) and
// `addNoise` at that evaluation (each scheduler's `add_noise`).
import XCTest
@testable import Schedulers
import TensorCore

final class ImageToImageStartTests: XCTestCase {
    func testStartStepFollowsGetTimesteps() throws {
        let config = SchedulerConfig.stableDiffusion1
        let ddim = try SamplerKind.ddim.make(config: config, steps: 10)
        XCTAssertEqual(try ddim.startStep(strength: 1, steps: 10), 0)
        XCTAssertEqual(try ddim.startStep(strength: 0.5, steps: 10), 5)
        XCTAssertEqual(try ddim.startStep(strength: 0.75, steps: 10), 3)       // int(7.5) = 7 steps run
        XCTAssertEqual(try ddim.startStep(strength: 0.1, steps: 10), 9)
        // Heun evaluates twice per step: timesteps[t_start * order:]
        let heun = try SamplerKind.heun.make(config: config, steps: 10)
        XCTAssertEqual(try heun.startStep(strength: 0.5, steps: 10), 10)
        for bad in [0, -0.1, 1.01, .nan] {
            XCTAssertThrowsError(try ddim.startStep(strength: bad, steps: 10), "strength \(bad)")
        }
        XCTAssertThrowsError(try ddim.startStep(strength: 0.05, steps: 10))     // int(0.5) = 0 steps: nothing to run
    }

    func testAddNoiseMatchesEachParameterization() throws {
        let config = SchedulerConfig.stableDiffusion1
        let x = try Tensor(shape: [1, 2, 2, 1], scalars: [0.5, -1, 0.25, 1])
        let n = try Tensor(shape: [1, 2, 2, 1], scalars: [1, 2, -1, 0.5])
        let ddim = try SamplerKind.ddim.make(config: config, steps: 10) as! DDIMSampler
        let a = Double(ddim.schedule.alphasCumprod[ddim.integerTimesteps[4]])
        let euler = try SamplerKind.euler.make(config: config, steps: 10) as! EulerSampler
        let s = Double(euler.sigmas[4])
        let dpm = try SamplerKind.dpmpp2m.make(config: config, steps: 10) as! DPMSolverMultistepSampler
        let d = Double(dpm.sigmas[4]), alpha = 1 / (d * d + 1).squareRoot()
        for (sampler, cx, cn) in [(ddim as any Sampler, a.squareRoot(), (1 - a).squareRoot()), (euler, 1, s),
                                  (dpm, alpha, d * alpha)] {
            let out = try sampler.addNoise(to: x, noise: n, step: 4)
            for i in 0..<4 {
                XCTAssertEqual(Double(out.scalars[i]), cx * Double(x.scalars[i]) + cn * Double(n.scalars[i]), accuracy: 1e-5)
            }
        }
        XCTAssertThrowsError(try ddim.addNoise(to: x, noise: n, step: 10))
    }
}

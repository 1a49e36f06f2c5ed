// Golden values from Tests/Reference/make_scheduler_goldens.py (diffusers 0.42.1, torch 2.13 CPU):
// each sampler runs a pipeline-style loop on a fixed linear "model" with torch-seeded noise, and
// every scaled input and step output is compared; the noise schedule's add_noise / velocity / SNR too.
import XCTest
@testable import Schedulers
import TensorCore

final class SchedulerGoldenTests: XCTestCase {
    struct Golden: Decodable {
        struct Case: Decodable {
            let name: String, sampler: String, config: SchedulerConfig, karras: Bool, steps: Int, eta: Double
            let seed: UInt64, timesteps: [Double], init_noise_sigma: Float, sigmas: [Float]?
            let inputs: [[Float]], outputs: [[Float]]
        }
        struct Schedule: Decodable {
            let name: String, config: SchedulerConfig, timesteps: [Int]
            let x0: [Float], noise: [Float], noisy: [Float], velocity: [Float]
            let alphas_cumprod: [String: Double], snr: [String: Double], min_snr_5: [String: [String: Double]]
        }
        let shape: [Int], base: [Float], cases: [Case], schedules: [Schedule]
    }

    static let golden: Result<Golden, Error> = Result { try Fixture.load(Golden.self, "scheduler_goldens.json") }
    /// LCM and UniPC: Tests/Reference/make_fewstep_goldens.py, same loop and format.
    static let fewStep: Result<Golden, Error> = Result { try Fixture.load(Golden.self, "fewstep_scheduler_goldens.json") }

    func testEverySamplerMatchesDiffusers() throws {
        let g = try Self.golden.get(), f = try Self.fewStep.get()
        XCTAssertEqual(Set((g.cases + f.cases).map(\.sampler)), Set(SamplerKind.allCases.map(\.rawValue)))
        XCTAssertGreaterThan(g.cases.count, 40)
        for c in g.cases { try check(c, shape: g.shape, base: g.base) }
    }

    func testFewStepSamplersMatchDiffusers() throws {
        let f = try Self.fewStep.get()
        XCTAssertEqual(Set(f.cases.map(\.sampler)), [SamplerKind.lcm.rawValue, SamplerKind.unipc.rawValue])
        XCTAssertGreaterThan(f.cases.count, 15)
        for c in f.cases { try check(c, shape: f.shape, base: f.base) }
    }

    private func check(_ c: Golden.Case, shape: [Int], base: [Float]) throws {
        let kind = try XCTUnwrap(SamplerKind(rawValue: c.sampler), c.name)
        var sampler = try kind.make(config: c.config, steps: c.steps, karras: c.karras, eta: c.eta)
        if c.karras && kind != .dpmpp2m && kind != .dpmpp2mSDE && kind != .unipc {
            // fractional timesteps from the σ → t map: float32 values, compared to 1e-4
            assertClose(sampler.timesteps.map { Float($0) }, c.timesteps.map { Float($0) }, tol: 1e-7, "\(c.name) timesteps")
        } else {
            XCTAssertEqual(sampler.timesteps, c.timesteps, "\(c.name) timesteps")
        }
        XCTAssertEqual(sampler.initNoiseSigma, c.init_noise_sigma, accuracy: 1e-6 * c.init_noise_sigma, c.name)
        if let expected = c.sigmas, let s = sampler as? any SigmaSampler {
            assertClose(s.sigmas, expected, tol: 1e-6, "\(c.name) sigmas")
        }
        XCTAssertEqual(sampler.timesteps.count, c.outputs.count, c.name)
        guard sampler.timesteps.count == c.outputs.count else { return }
        var rng = TorchGenerator(seed: c.seed)
        let base = try Tensor(shape: shape, scalars: base)
        var x = combine([(Double(c.init_noise_sigma), rng.randn(shape))])
        for i in sampler.timesteps.indices {
            let input = try sampler.scaleModelInput(x, step: i)
            assertClose(input.scalars, c.inputs[i], tol: 1e-5, "\(c.name) input \(i)")
            let out = combine([(0.8, input), (sampler.timesteps[i] / 1000, base)])
            x = try sampler.step(modelOutput: out, step: i, sample: x, noise: &rng)
            assertClose(x.scalars, c.outputs[i], tol: 1e-5, "\(c.name) step \(i)")
        }
    }

    func testNoiseScheduleMatchesDiffusers() throws {
        let g = try Self.golden.get()
        for s in g.schedules {
            let schedule = try NoiseSchedule(config: s.config)
            let shape = [s.timesteps.count, 2, 2, 2]
            let x0 = try Tensor(shape: shape, scalars: s.x0), noise = try Tensor(shape: shape, scalars: s.noise)
            assertClose(try schedule.addNoise(x0, noise: noise, timesteps: s.timesteps).scalars, s.noisy,
                        tol: 1e-6, "\(s.name) add_noise")
            assertClose(try schedule.velocity(x0, noise: noise, timesteps: s.timesteps).scalars, s.velocity,
                        tol: 1e-6, "\(s.name) velocity")
            let v = try schedule.trainingTarget(.vPrediction, x0: x0, noise: noise, timesteps: s.timesteps)
            XCTAssertEqual(v.scalars, try schedule.velocity(x0, noise: noise, timesteps: s.timesteps).scalars)
            for (key, expected) in s.alphas_cumprod {
                let t = try XCTUnwrap(Int(key))
                XCTAssertEqual(Double(schedule.alphasCumprod[t]), expected, accuracy: 1e-6 * expected, "\(s.name) ᾱ[\(t)]")
                let snr = try XCTUnwrap(s.snr[key])
                XCTAssertEqual(schedule.snr(t), snr, accuracy: 1e-5 * snr, "\(s.name) snr[\(t)]")
                for (name, weights) in s.min_snr_5 {
                    let prediction = try XCTUnwrap(PredictionType(rawValue: name))
                    XCTAssertEqual(schedule.minSNRWeight(t, gamma: 5, prediction: prediction), try XCTUnwrap(weights[key]),
                                   accuracy: 1e-5, "\(s.name) min-SNR \(name) [\(t)]")
                }
            }
        }
    }
}

// AutoencoderKL against diffusers 0.42.1: fixture and goldens made by
// `/root/refenv/bin/python Tests/Reference/make_model_goldens.py` (vae_sd: tiny random-weight VAE, seeded).
// Tolerance: 1e-4 of the output's scale (max(1, max|expected|)).
import Autograd
import DiffusionModels
import NN
import TensorCore
import TestSupport
import XCTest

final class AutoencoderKLParityTests: XCTestCase {
    func loadVAE() throws -> (AutoencoderKL, Fixture) {
        let config = try AutoencoderKLConfig(contentsOf: fixtureURL("vae_sd/config.json"))
        let fixture = try Fixture("vae_sd")
        let vae = AutoencoderKL(config: config)
        try vae.load(stateDict: fixture.weights)
        vae.eval()
        return (vae, fixture)
    }

    func testEncodePosteriorMatchesDiffusers() throws {
        let (vae, f) = try loadVAE()
        let posterior = try withNoGrad { try vae.encode(f.nhwc("image")) }
        try assertClose(posterior.mean, f.tensor("posterior_mean"), "posterior mean")
        try assertClose(posterior.logvar, f.tensor("posterior_logvar"), "posterior logvar")
        let sample = try posterior.sample(noise: FeatureLayout.nhwc(fromNCHW: f.tensor("noise")))
        try assertClose(sample, f.tensor("posterior_sample"), "posterior sample with injected noise")
    }

    func testDecodeMatchesDiffusers() throws {
        let (vae, f) = try loadVAE()
        let image = try withNoGrad { try vae.decode(f.nhwc("latent")) }
        try assertClose(image.value, f.tensor("decoded"), "decode")
    }

    func testWrongArchitectureWeightsFail() throws {
        let vae = AutoencoderKL(config: .tiny)
        let f = try Fixture("vae_sd")
        XCTAssertThrowsError(try vae.load(stateDict: f.weights)) { error in
            print("\(error)")
            XCTAssertTrue("\(error)".contains("decoder.up_blocks.0.resnets.2"), "\(error)")
        }
    }
}

extension AutoencoderKLParityTests {
    /// Sampling with a seeded generator is reproducible and centred on the mean with the posterior's spread.
    func testPosteriorSamplingWithExplicitRandomSource() throws {
        let (vae, f) = try loadVAE()
        let posterior = try withNoGrad { try vae.encode(f.nhwc("image")) }
        var a = PhiloxRandom(seed: 7), b = PhiloxRandom(seed: 7), c = PhiloxRandom(seed: 8)
        let s1 = try posterior.sample(using: &a), s2 = try posterior.sample(using: &b), s3 = try posterior.sample(using: &c)
        XCTAssertEqual(s1.scalars, s2.scalars)
        XCTAssertNotEqual(s1.scalars, s3.scalars)
        let z = zip(zip(s1.scalars, posterior.mean.scalars), posterior.std.scalars).map { ($0.0 - $0.1) / $1 }
        let mean = z.reduce(0, +) / Float(z.count)
        let variance = z.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(z.count)
        XCTAssertEqual(mean, 0, accuracy: 0.2)
        XCTAssertEqual(variance, 1, accuracy: 0.3)
    }
}

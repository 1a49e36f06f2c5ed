// AutoencoderKL against diffusers 0.42.1: fixture and goldens made by
// `/root/refenv/bin/python Tests/Reference/make_model_goldens.py` (vae_sd: tiny random-weight VAE, seeded).
// Tolerance: 1e-4 of the output's scale (max(1, max|expected|)).
import Autograd
import DiffusionModels
import NN
import TensorCore
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

// Tiled VAE decoding against diffusers' `AutoencoderKL.tiled_decode` (`enable_tiling()`) on tiny-sd's VAE.
// Golden: Tests/Reference/make_fewstep_goldens.py (vae_tiling_goldens.safetensors).
import Autograd
import DiffusionModels
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class VAETilingTests: XCTestCase {
    /// z = torch.randn([1, 4, 64, 50], manual_seed(5)): 4× the 16-latent tile high, with a partial last tile column.
    private func latents() throws -> Tensor {
        var g = TorchGenerator(seed: 5)
        return try FeatureLayout.nhwc(fromNCHW: g.randn([1, 4, 64, 50]))
    }

    func testTiledDecodeMatchesDiffusers() throws {
        let vae = try XCTUnwrap(try tinySD().vae)
        XCTAssertEqual(vae.tileGeometry, VAETileGeometry(sampleSize: 32, downsamplingFactor: 2))
        XCTAssertEqual([vae.tileGeometry.tileLatent, vae.tileGeometry.latentStride, vae.tileGeometry.blendExtent,
                        vae.tileGeometry.rowLimit], [16, 12, 8, 24])
        let z = try latents()
        let tiled = try withNoGrad { try vae.tiledDecode(z) }
        XCTAssertEqual(tiled.shape, [1, 128, 100, 3])
        let expected = try SafeTensorsFile(path: TestPaths.pipelineFixture("vae_tiling_goldens.safetensors")).tensor("decoded")
        let error = maxAbsDifference(try FeatureLayout.nchw(fromNHWC: tiled), expected)
        XCTAssertLessThanOrEqual(error, 1e-4 * max(1, maxAbs(expected)), "max error \(error)")
        // the tiles really are blended pictures of their own: one pass differs
        let untiled = try withNoGrad { try vae.decode(Variable(z)) }.value
        XCTAssertGreaterThan(maxAbsDifference(untiled, tiled), 0.1)
    }

    /// `.on` tiles latents larger than one tile (and only those), `.automatic` only pictures above 1024² pixels,
    /// `.off` never; the UNet-latent scaling is the same as the untiled path's.
    func testTilingModes() throws {
        let vae = try XCTUnwrap(try tinySD().vae)
        let z = try latents()
        let scaled = Elementwise.scale(z, by: vae.config.scalingFactor)
        let tiled = try withNoGrad { try vae.tiledDecode(z) }
        let on = try vae.image(fromUNetLatents: scaled, tiling: .on)
        XCTAssertLessThanOrEqual(maxAbsDifference(on, tiled), 1e-5)
        let plain = try vae.image(fromUNetLatents: scaled)
        XCTAssertEqual(try vae.image(fromUNetLatents: scaled, tiling: .off).scalars, plain.scalars)
        XCTAssertEqual(try vae.image(fromUNetLatents: scaled, tiling: .automatic).scalars, plain.scalars)
        var g = TorchGenerator(seed: 1)
        let small = try FeatureLayout.nhwc(fromNCHW: g.randn([1, 4, 16, 16]))
        XCTAssertEqual(try vae.image(fromUNetLatents: small, tiling: .on).scalars, try vae.image(fromUNetLatents: small).scalars)
    }
}

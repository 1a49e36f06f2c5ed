// UNet2DConditionModel against diffusers 0.42.1: fixtures and goldens made by
// `/root/refenv/bin/python Tests/Reference/make_model_goldens.py` (tiny random-weight models, seeded).
// Tolerance: 1e-4 of the output's scale (max(1, max|expected|)).
import Autograd
import DiffusionModels
import NN
import TensorCore
import TestSupport
import XCTest

final class UNetParityTests: XCTestCase {
    func loadUNet(_ name: String) throws -> (UNet2DConditionModel, Fixture) {
        let config = try UNet2DConditionConfig(contentsOf: fixtureURL("\(name)/config.json"))
        let fixture = try Fixture(name)
        let unet = UNet2DConditionModel(config: config)
        try unet.load(stateDict: fixture.weights)
        unet.eval()
        return (unet, fixture)
    }

    /// Both timesteps at batch 1 and a classifier-free-guidance batch of 2 with different contexts.
    func checkParity(_ name: String) throws {
        let (unet, f) = try loadUNet(name)
        let sample = try f.nhwc("sample")
        let context = Variable(try f.tensor("context"))
        for t in [10, 999] {
            let out = try withNoGrad { try unet(sample, timesteps: [Float(t)], conditioning: Conditioning(context: context)) }
            try assertClose(out.value, f.tensor("out_t\(t)"), "\(name) t=\(t)")
        }
        let cfg = try withNoGrad {
            try unet(f.nhwc("sample_cfg"), timesteps: [500], conditioning: Conditioning(context: Variable(f.tensor("context_cfg"))))
        }
        try assertClose(cfg.value, f.tensor("out_cfg_t500"), "\(name) CFG batch t=500")
    }

    func testSD1LikeUNetMatchesDiffusers() throws { try checkParity("unet_sd1") }

    func testSD2LikeUNetMatchesDiffusers() throws { try checkParity("unet_sd2") }

    func testPixelSpaceUNetMatchesDiffusers() throws { try checkParity("unet_pixel") }

    /// Per-sample timesteps give each sample the result of running it alone.
    func testPerSampleTimesteps() throws {
        let (unet, f) = try loadUNet("unet_sd2")
        let sample = try f.nhwc("sample")
        let context = Variable(try f.tensor("context"))
        let pair = Variable(try Tensor(shape: [2, 16, 16, 4], scalars: sample.value.scalars + sample.value.scalars))
        let pairContext = Variable(try Tensor(shape: [2, 7, 24], scalars: context.value.scalars + context.value.scalars))
        let out = try withNoGrad { try unet(pair, timesteps: [10, 999], conditioning: Conditioning(context: pairContext)) }
        let values = out.value.scalars
        try assertClose(Tensor(shape: [1, 16, 16, 4], scalars: Array(values[..<1024])), f.tensor("out_t10"), "per-sample t=10")
        try assertClose(Tensor(shape: [1, 16, 16, 4], scalars: Array(values[1024...])), f.tensor("out_t999"), "per-sample t=999")
    }

    /// Under autograd with frozen weights the forward is unchanged and the input gradient matches a
    /// central finite difference along a fixed direction.
    func testBackwardThroughFrozenUNet() throws {
        let (unet, f) = try loadUNet("unet_sd2")
        unet.freeze()
        let x = Variable(try f.nhwc("sample").value, requiresGrad: true)
        let context = Variable(try f.tensor("context"))
        let out = try unet(x, timesteps: [10], conditioning: Conditioning(context: context))
        try assertClose(out.value, f.tensor("out_t10"), "under autograd")
        // A fixed, non-uniform weighting of the output makes the loss sensitive to every output element.
        let w0 = Variable(try Tensor(shape: [1, 16, 16, 4],
                                     scalars: Array(FeatureLayout.nhwc(fromNCHW: f.tensor("sample_cfg")).scalars[..<1024])))
        let loss = try sum(mul(out, w0))
        let trace = BackwardTrace()
        try GradMode.$trace.withValue(trace) { try loss.backward() }
        XCTAssertTrue(trace.events.contains("conv2d.dInput"))
        XCTAssertTrue(trace.events.contains("attention.backward"))
        XCTAssertFalse(trace.events.contains { $0.hasSuffix("dWeight") || $0.hasSuffix("dBias") },
                       "frozen layers computed weight gradients")
        let grad = try XCTUnwrap(x.grad)
        XCTAssertEqual(grad.shape, x.shape)
        XCTAssertTrue(unet.namedParameters().allSatisfy { $0.1.grad == nil }, "frozen weights received gradients")

        // A fixed sparse ±1 direction d; compare <grad, d> with (L(x+εd) − L(x−εd)) / 2ε.
        let direction = Tensor(shape: x.shape) { p in
            for i in p.indices { p[i] = i % 7 == 0 ? (i % 2 == 0 ? 1 : -1) : 0 }
        }
        let epsilon: Float = 1e-2
        func lossAt(_ s: Float) throws -> Float {
            let shifted = try Elementwise.axpy(s, direction, x.value)
            let y = try withNoGrad { try unet(Variable(shifted), timesteps: [10], conditioning: Conditioning(context: context)) }
            return try withNoGrad { try sum(mul(y, w0)).value.item }
        }
        let numeric = (try lossAt(epsilon) - lossAt(-epsilon)) / (2 * epsilon)
        let analytic = zip(grad.scalars, direction.scalars).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        print("directional derivative: analytic \(analytic), numeric \(numeric)")
        XCTAssertEqual(analytic, numeric, accuracy: 2e-2 * max(1, abs(numeric)))
    }

    /// Gradient checkpointing changes neither the output nor the gradients (input and a trainable weight).
    func testGradientCheckpointingGivesTheSameGradients() throws {
        let (unet, f) = try loadUNet("unet_sd1")
        unet.freeze()
        let key = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
        unet.setRequiresGrad(true) { $0 == key }
        let weight = try XCTUnwrap(unet.namedParameters().first { $0.0 == key }?.1)
        let context = Variable(try f.tensor("context"))
        func gradients(checkpointing: Bool) throws -> (Tensor, Tensor, Tensor) {
            unet.gradientCheckpointing = checkpointing
            unet.zeroGrad()
            let x = Variable(try f.nhwc("sample").value, requiresGrad: true)
            let out = try unet(x, timesteps: [10], conditioning: Conditioning(context: context))
            try mean(mul(out, out)).backward()
            return (out.value, try XCTUnwrap(x.grad), try XCTUnwrap(weight.grad))
        }
        let plain = try gradients(checkpointing: false)
        let recomputed = try gradients(checkpointing: true)
        XCTAssertEqual(plain.0.scalars, recomputed.0.scalars)
        try assertClose(recomputed.1, plain.1, tolerance: 1e-6, nhwcAgainstNCHW: false, "input gradient with checkpointing")
        try assertClose(recomputed.2, plain.2, tolerance: 1e-6, "to_k gradient with checkpointing")
        XCTAssertGreaterThan(plain.2.scalars.map(abs).max() ?? 0, 0)
    }

    /// Weights saved for another architecture fail strict loading, naming the first mismatched key and shapes.
    func testWrongArchitectureWeightsFailWithKeyAndShapes() throws {
        let config = try UNet2DConditionConfig(contentsOf: fixtureURL("unet_sd2/config.json"))
        let unet = UNet2DConditionModel(config: config)
        let sd1 = try Fixture("unet_sd1")
        XCTAssertThrowsError(try unet.load(stateDict: sd1.weights)) { error in
            guard let e = error as? StateDictError, case .multiple(let problems) = e else {
                return XCTFail("expected several state-dict problems, got \(error)")
            }
            let first = "\(problems[0])"
            print("first problem: \(first)")
            XCTAssertEqual(problems[0], .shapeMismatch(key: "down_blocks.0.attentions.0.proj_in.weight",
                                                       expected: [16, 16], actual: [16, 16, 1, 1]))
            XCTAssertTrue(e.description.contains("down_blocks.0.attentions.0.proj_in.weight"))
        }
        let vae = try Fixture("vae_sd")
        XCTAssertThrowsError(try unet.load(stateDict: vae.weights)) { error in
            XCTAssertTrue("\(error)".contains("conv_in.weight"), "\(error)")
        }
    }
}

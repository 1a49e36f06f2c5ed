// QLoRA training against peft 0.21.2 + bitsandbytes 0.50.2: `/root/refenv/bin/python
// Tests/Reference/make_qlora_training_goldens.py` loads the tiny SD-1-like UNet with every Linear layer in NF4
// (bnb Linear4bit, double-quantized absmax, F32 compute), runs peft's prepare_model_for_kbit_training and a LoRA
// (r 4, α 8 on the attention projections) and trains four AdamW steps on fixed noisy latents, timesteps and noise.
// Here the same UNet quantized at load (the same bytes as bitsandbytes writes), the same initial adapter and the
// same steps give the same losses (within 1e-5) and adapter weights (within 1e-3 of scale, as the other AdamW
// parity tests: Adam divides by the root of tiny second moments, which magnifies float rounding).
import Adapters
import Autograd
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class QLoRATrainingParityTests: XCTestCase {
    func testFourAdamWStepsOnAnNF4BaseMatchPEFT() throws {
        let g = try Goldens()
        let goldens = try SafeTensorsFile(path: adapterFixture("qlora_training_goldens.safetensors"))
        let unet = try loadTinyUNet()
        let quantized = try unet.quantizeLinearLayers(.nf4)
        XCTAssertEqual(quantized.count, 129, "every nn.Linear, as diffusers' bitsandbytes quantizer converts them")
        unet.freeze()
        let stack = AdapterStack(root: unet, component: .unet)
        var random = PhiloxRandom(seed: 0)
        let layers = try stack.addTrainable(name: "qlora", rank: 4, alpha: 8, targets: .unetAttention, random: &random)
        XCTAssertEqual(layers, 88)
        for (path, _, pair) in stack.pairs(of: "qlora") {
            pair.down.value = try goldens.tensor("init.\(path).lora_A")
            pair.up.value = try goldens.tensor("init.\(path).lora_B")
        }
        XCTAssertEqual(unet.trainableParameters().count, 2 * layers, "only the adapters train; the 4-bit base is frozen")
        let optimizer = AdamW(parameters: unet.trainableParameters(), learningRate: 1e-2, weightDecay: 0.01)
        let sample = Variable(try FeatureLayout.nhwc(fromNCHW: goldens.tensor("noisy_latents")))
        let target = Variable(try FeatureLayout.nhwc(fromNCHW: goldens.tensor("noise")))
        let timesteps = try goldens.tensor("timesteps").scalars
        let context = Conditioning(context: Variable(try g.tensor("unet_context")))
        let expectedLosses = try goldens.tensor("loss").scalars
        for step in 0..<expectedLosses.count {
            let out = try unet(sample, timesteps: timesteps, conditioning: context)
            let loss = try mseLoss(out, target)
            try loss.backward()
            XCTAssertEqual(loss.value.item, expectedLosses[step], accuracy: 1e-5 * expectedLosses[step], "loss of step \(step)")
            optimizer.update()
            for (_, p) in optimizer.parameters { p.grad = nil }
        }
        var worst: Float = 0
        for (path, _, pair) in stack.pairs(of: "qlora") {
            for (label, v) in [("lora_A", pair.down.value), ("lora_B", pair.up.value)] {
                let expected = try goldens.tensor("final.\(path).\(label)")
                let error = maxAbsDifference(v.reshapedUnchecked(expected.shape), expected), scale = max(maxAbs(expected), 1e-3)
                worst = max(worst, error / scale)
                XCTAssertLessThanOrEqual(error, 1e-3 * scale, "\(path) \(label): \(error) at scale \(scale)")
            }
        }
        // The goldens see the 4-bit base: the same initial adapter on the F32 UNet gives another first loss.
        let full = try loadTinyUNet()
        let fullStack = AdapterStack(root: full, component: .unet)
        try fullStack.addTrainable(name: "qlora", rank: 4, alpha: 8, targets: .unetAttention, random: &random)
        for (path, _, pair) in fullStack.pairs(of: "qlora") {
            pair.down.value = try goldens.tensor("init.\(path).lora_A")
            pair.up.value = try goldens.tensor("init.\(path).lora_B")
        }
        let fullLoss = try withNoGrad { try mseLoss(full(sample, timesteps: timesteps, conditioning: context), target) }
        XCTAssertGreaterThan(abs(fullLoss.value.item - expectedLosses[0]), 1e-3 * expectedLosses[0])
        print("QLoRA: \(expectedLosses.count) AdamW steps on an NF4 base, \(layers) adapted layers; worst adapter "
              + "error \(worst) of scale")
    }
}

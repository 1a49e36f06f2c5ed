// AdaLoRA training against peft 0.21.2 (`AdaLoraConfig`, `RankAllocator`, `AdaLoraModel.update_and_allocate`):
// `/root/refenv/bin/python Tests/Reference/make_adalora_goldens.py` trains the tiny SD-1-like UNet's attention
// projections for ten steps (init_r 4 → target_r 2, tinit 2, tfinal 2, deltaT 2, AdamW lr 1e-2, orthogonal
// regularisation 0.5) from peft's initial triplets; here the same steps from the same triplets give the same
// losses, the same final masks and the same triplet values.
import Adapters
import Autograd
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class AdaLoRAParityTests: XCTestCase {
    func testTenStepsMatchPEFT() throws {
        let g = try Goldens()
        let goldens = try SafeTensorsFile(path: adapterFixture("adalora_goldens.safetensors"))
        let unet = try loadTinyUNet()
        unet.freeze()
        let stack = AdapterStack(root: unet, component: .unet)
        var random = PhiloxRandom(seed: 0)
        let layers = try stack.addTrainableAdaLoRA(name: "ada", rank: 4, alpha: 8, targets: .unetAttention, random: &random)
        XCTAssertThrowsError(try stack.addTrainableAdaLoRA(name: "conv", rank: 4, alpha: 8, targets: LoRATargets(["conv1", "conv2"]), random: &random),
                             "convolutions only: nothing AdaLoRA adapts")
        for (path, _, pair) in stack.pairs(of: "ada") {
            pair.down.value = try goldens.tensor("init.\(path).lora_A")
            pair.up.value = try goldens.tensor("init.\(path).lora_B")
            pair.singularValues!.value = try goldens.tensor("init.\(path).lora_E").reshapedUnchecked([pair.rank])
        }
        let settings = AdaLoRASettings(initialRank: 4, targetRank: 2, tinit: 2, tfinal: 2, deltaT: 2, totalSteps: 10,
                                       beta1: 0.85, beta2: 0.85, orthogonalWeight: 0.5)
        let allocator = try AdaLoRAAllocator(stack: stack, name: "ada", settings: settings)
        XCTAssertEqual(allocator.layers.count, layers)
        let optimizer = AdamW(parameters: unet.trainableParameters(), learningRate: 1e-2, weightDecay: 0.01)
        let sample = Variable(try FeatureLayout.nhwc(fromNCHW: g.tensor("unet_sample")))
        let context = Conditioning(context: Variable(try g.tensor("unet_context")))
        let target = Variable(try FeatureLayout.nhwc(fromNCHW: goldens.tensor("target")))
        let expectedLosses = try goldens.tensor("loss").scalars
        for step in 0..<10 {
            let out = try unet(sample, timesteps: [500, 500], conditioning: context)
            let loss = try mseLoss(out, target)
            try loss.backward()
            let total = loss.value.item + (try allocator.orthogonalRegularization())
            XCTAssertEqual(total, expectedLosses[step], accuracy: 1e-4 * max(1, abs(expectedLosses[step])), "loss of step \(step)")
            optimizer.update()
            try allocator.update(step: step)
            for (_, p) in optimizer.parameters { p.grad = nil }
        }
        var worst: Float = 0, masksEqual = 0
        for (path, _, pair) in stack.pairs(of: "ada") {
            let mask = try goldens.tensor("mask.\(path)").scalars.map { $0 != 0 }
            XCTAssertEqual(allocator.finalMask?[path], mask, path)
            if allocator.finalMask?[path] == mask { masksEqual += 1 }
            for (label, v) in [("lora_A", pair.down.value), ("lora_B", pair.up.value), ("lora_E", pair.singularValues!.value)] {
                let expected = try goldens.tensor("final.\(path).\(label)")
                let error = maxAbsDifference(v.reshapedUnchecked(expected.shape), expected), scale = max(maxAbs(expected), 1e-3)
                worst = max(worst, error / scale)
                XCTAssertLessThanOrEqual(error, 1e-3 * scale, "\(path) \(label)")
            }
        }
        print("AdaLoRA: \(masksEqual)/\(layers) final masks equal, worst triplet error \(worst) of scale; ranks "
              + "\(allocator.ranks.map(\.rank).reduce(0, +)) kept of \(4 * layers)")

        // Saved as a plain LoRA with a rank per module, it reproduces the trained model's output.
        let modules = allocator.export(component: .unet, index: stack.index)
        XCTAssertEqual(modules.map(\.rank).reduce(0, +), allocator.ranks.map(\.rank).reduce(0, +))
        let path = try temporaryDirectory("adalora").appendingPathComponent("ada.safetensors").path
        try LoRAWriter.write(modules, to: path)
        let file = try LoRAFile(contentsOf: path)
        XCTAssertEqual(file.kinds, [.lora])
        let fresh = try loadTinyUNet()
        try AdapterSet(unet: fresh, textEncoder: nil).load(file, name: "ada")
        let (trained, loaded) = try withNoGrad {
            (try unet(sample, timesteps: [500, 500], conditioning: context).value, try fresh(sample, timesteps: [500, 500], conditioning: context).value)
        }
        try assertClose(loaded, trained, tolerance: 1e-5, nhwcAgainstNCHW: false, "the saved per-module-rank LoRA vs the trained AdaLoRA")
    }
}

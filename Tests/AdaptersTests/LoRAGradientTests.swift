// Gradients through LoRA branches (shared and per-row, Linear and strided Conv2d) against central finite
// differences in the adapter matrices, and the frozen base receiving none.
import Adapters
import Autograd
import NN
import TensorCore
import XCTest

final class LoRAGradientTests: XCTestCase {
    /// Checks d(Σ y⊙g)/d(down, up) of every pair of `stack` against central differences on a few elements.
    func checkGradients(_ model: Module, _ stack: AdapterStack, input: Tensor, _ run: (Variable) throws -> Variable,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        var random = PhiloxRandom(seed: 11)
        let y0 = try withNoGrad { try run(Variable(input)) }
        let g = random.normal(shape: y0.shape)
        func loss() throws -> Double {
            let y = try withNoGrad { try run(Variable(input)) }.value
            return zip(y.scalars, g.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        model.zeroGrad()
        let recorded = try run(Variable(input))
        for (a, b) in zip(recorded.value.scalars, y0.value.scalars) {
            XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), "recorded and in-place forwards agree", file: file, line: line)
        }
        try recorded.backward(g)
        XCTAssertTrue(model.namedParameters().allSatisfy { $0.1.grad == nil }, "the frozen base gets no gradient", file: file, line: line)
        for name in stack.adapterNames {
            XCTAssertFalse(stack.pairs(of: name).isEmpty, "adapter \(name) has pairs", file: file, line: line)
            for (path, _, pair) in stack.pairs(of: name) {
                for (label, v) in [("down", pair.down), ("up", pair.up)] {
                    let grad = try XCTUnwrap(v.grad, "\(path) \(label) has no gradient", file: file, line: line)
                    for i in stride(from: 0, to: v.value.count, by: max(1, v.value.count / 5)) {
                        let x = v.value[flat: i], h: Float = 1e-2
                        v.value.set(flat: i, x + h)
                        let plus = try loss()
                        v.value.set(flat: i, x - h)
                        let minus = try loss()
                        v.value.set(flat: i, x)
                        let numeric = (plus - minus) / Double(2 * h)
                        XCTAssertEqual(Double(grad[flat: i]), numeric, accuracy: 2e-3 + 1e-2 * abs(numeric),
                                       "\(name) \(path) \(label)[\(i)]", file: file, line: line)
                    }
                }
            }
        }
    }

    func makePairsNonzero(_ stack: AdapterStack, _ random: inout PhiloxRandom) {
        for name in stack.adapterNames {
            for (_, _, pair) in stack.pairs(of: name) { pair.up.value = random.normal(shape: pair.up.shape, std: 0.5) }
        }
    }

    func testLinearBranchGradientsSharedAndPerRow() throws {
        var random = PhiloxRandom(seed: 5)
        let layer = Linear(inFeatures: 6, outFeatures: 5)
        layer.initializeParameters(random: &random)
        layer.freeze()
        let stack = AdapterStack(root: layer, component: .unet)
        try stack.addTrainable(name: "a", rank: 3, alpha: 6, targets: LoRATargets([""]), random: &random)
        try stack.addTrainable(name: "b", rank: 2, targets: LoRATargets([""]), initialization: .gaussian, random: &random)
        makePairsNonzero(stack, &random)
        try stack.setWeight(0.7, for: "a")
        let x = random.normal(shape: [3, 4, 6])
        try checkGradients(layer, stack, input: x) { try layer($0) }
        try AdapterRowWeights(rows: ["a": [1, 0, 0.5], "b": [0, 2, 0]]).apply {
            try checkGradients(layer, stack, input: x) { try layer($0) }
        }
    }

    func testStridedConvBranchGradients() throws {
        var random = PhiloxRandom(seed: 6)
        let conv = Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, stride: 2, padding: 1)
        conv.initializeParameters(random: &random)
        conv.freeze()
        let stack = AdapterStack(root: conv, component: .unet)
        try stack.addTrainable(name: "c", rank: 2, alpha: 1, targets: LoRATargets([""]), random: &random)
        makePairsNonzero(stack, &random)
        try checkGradients(conv, stack, input: random.normal(shape: [2, 5, 5, 3])) { try conv($0) }
    }

    /// With B = 0 the first step's gradient reaches B only (REFERENCE.md fact 8): grad(A) = 0.
    func testZeroUpGivesZeroDownGradient() throws {
        var random = PhiloxRandom(seed: 7)
        let layer = Linear(inFeatures: 4, outFeatures: 3)
        layer.freeze()
        let stack = AdapterStack(root: layer, component: .unet)
        try stack.addTrainable(name: "a", rank: 2, targets: LoRATargets([""]), initialization: .gaussian, random: &random)
        try layer(Variable(random.normal(shape: [5, 4]))).backward(random.normal(shape: [5, 3]))
        let pair = stack.pairs(of: "a")[0].pair
        XCTAssertEqual(pair.down.grad?.scalars.map(abs).max(), 0)
        XCTAssertGreaterThan(pair.up.grad?.scalars.map(abs).max() ?? 0, 0)
    }

    /// Dropout acts on the branch input in training mode only, from the branch's own seeded stream.
    func testDropoutOnlyWhileTraining() throws {
        var random = PhiloxRandom(seed: 8)
        let layer = Linear(inFeatures: 8, outFeatures: 8)
        layer.initializeParameters(random: &random)
        let stack = AdapterStack(root: layer, component: .unet)
        try stack.addTrainable(name: "a", rank: 4, targets: LoRATargets([""]), dropout: 0.5, random: &random)
        makePairsNonzero(stack, &random)
        let x = Variable(random.normal(shape: [4, 8]))
        layer.eval()
        let a = try withNoGrad { try layer(x) }.value.scalars, b = try withNoGrad { try layer(x) }.value.scalars
        XCTAssertEqual(a, b, "no dropout in evaluation mode")
        layer.train()
        let c = try withNoGrad { try layer(x) }.value.scalars, d = try withNoGrad { try layer(x) }.value.scalars
        XCTAssertNotEqual(c, a, "dropout changes the branch in training mode")
        XCTAssertNotEqual(c, d, "each call draws a new mask")
    }
}

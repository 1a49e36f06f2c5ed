// A trained LoRA pair folded into its layer's frozen weight (`foldedLoRALinear`, `foldedLoRAConv2d`) gives the
// branch form's output and gradients (input, down, up, a trainable bias), and central finite differences agree
// with its input gradient; layers fold only where the folded form is the same function.
import Adapters
import Autograd
import NN
import TensorCore
import XCTest

final class FoldedLoRATests: XCTestCase {
    private struct Pass {
        var y: Tensor
        var grads: [String: Tensor]
        var events: [String]
    }

    /// One forward and backward of `layer` on x (requiring a gradient) with Σ y⊙g as the loss, folded or not.
    private func pass(_ layer: Module, _ stack: AdapterStack, _ x: Tensor, _ g: Tensor, fold: Bool,
                      _ run: (Variable) throws -> Variable) throws -> Pass {
        layer.zeroGrad()
        for (_, _, pair) in stack.pairs(of: "t") { pair.down.grad = nil; pair.up.grad = nil }
        let input = Variable(x, requiresGrad: true)
        let y = try LoRABranch.$foldsTrainedPairs.withValue(fold) { try run(input) }
        let trace = BackwardTrace()
        try GradMode.$trace.withValue(trace) { try y.backward(g) }
        var grads = ["input": try XCTUnwrap(input.grad)]
        for (_, _, pair) in stack.pairs(of: "t") {
            grads["down"] = try XCTUnwrap(pair.down.grad)
            grads["up"] = try XCTUnwrap(pair.up.grad)
        }
        for (name, p) in layer.namedParameters() where p.requiresGrad { grads[name] = p.grad }
        return Pass(y: y.value, grads: grads, events: trace.events)
    }

    private func assertClose(_ a: Tensor, _ b: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        let scale = b.scalars.reduce(Float(0)) { max($0, abs($1)) }
        let worst = zip(a.scalars, b.scalars).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        XCTAssertLessThanOrEqual(worst, 2e-5 * max(1, scale), "\(what): largest difference \(worst) (scale \(scale))",
                                 file: file, line: line)
    }

    /// Folded and branch forms on one layer with one trainable pair (`up` made nonzero), a trainable bias.
    private func compareForms(_ layer: Module, x: Tensor, op: String, random: inout PhiloxRandom,
                              file: StaticString = #filePath, line: UInt = #line,
                              _ run: @escaping (Variable) throws -> Variable) throws {
        layer.freeze()
        let stack = AdapterStack(root: layer, component: .unet)
        try stack.addTrainable(name: "t", rank: 3, alpha: 5, targets: LoRATargets([""]), random: &random)
        for (_, _, pair) in stack.pairs(of: "t") { pair.up.value = random.normal(shape: pair.up.shape, std: 0.5) }
        try stack.setWeight(0.8, for: "t")
        let bias = try XCTUnwrap(layer.namedParameters().first { $0.0 == "bias" }?.1)
        bias.requiresGrad = true
        let g = try withNoGrad { random.normal(shape: try run(Variable(x)).shape) }

        let folded = try pass(layer, stack, x, g, fold: true, run)
        let branch = try pass(layer, stack, x, g, fold: false, run)
        XCTAssertTrue(folded.events.contains("\(op).dInput") && folded.events.contains("\(op).dDown")
                      && folded.events.contains("\(op).dUp"), "the folded op ran: \(folded.events)", file: file, line: line)
        XCTAssertFalse(branch.events.contains { $0.hasPrefix(op) }, "turned off, the branch form ran", file: file, line: line)
        XCTAssertFalse(folded.events.contains { $0.hasSuffix("dWeight") }, "no weight gradient of the frozen base",
                       file: file, line: line)
        assertClose(folded.y, branch.y, "output", file: file, line: line)
        XCTAssertEqual(Set(folded.grads.keys), ["input", "down", "up", "bias"], file: file, line: line)
        for (name, grad) in branch.grads { assertClose(try XCTUnwrap(folded.grads[name]), grad, name, file: file, line: line) }

        // Without gradients to record the layer keeps the branch form (its in-place up product).
        let inference = try withNoGrad { try run(Variable(x)) }
        assertClose(inference.value, branch.y, "inference output", file: file, line: line)
    }

    func testFoldedLinearMatchesTheBranch() throws {
        var random = PhiloxRandom(seed: 21)
        let layer = Linear(inFeatures: 40, outFeatures: 24)
        layer.initializeParameters(random: &random)
        try compareForms(layer, x: random.normal(shape: [2, 7, 40]), op: "foldedLoRALinear", random: &random) { try layer($0) }
    }

    func testFoldedConvolutionsMatchTheBranch() throws {
        // 3×3 stride 1 (Winograd when the channels suit it), stride 2, and 1×1.
        for (k, stride, padding, cin, cout, size) in [(3, 1, 1, 32, 40, 9), (3, 2, 1, 6, 10, 7), (1, 1, 0, 12, 20, 5)] {
            var random = PhiloxRandom(seed: UInt64(100 + k * 10 + stride))
            let conv = Conv2d(inChannels: cin, outChannels: cout, kernelSize: k, stride: stride, padding: padding)
            conv.initializeParameters(random: &random)
            try compareForms(conv, x: random.normal(shape: [2, size, size, cin]), op: "foldedLoRAConv2d", random: &random) {
                try conv($0)
            }
        }
    }

    /// Finite differences in x, down, up and the bias of the ops themselves.
    func testFoldedOpsAgainstFiniteDifferences() throws {
        var random = PhiloxRandom(seed: 31)
        let w = random.normal(shape: [5, 6], std: 0.5)
        let linearInputs = [random.normal(shape: [4, 6]), random.normal(shape: [2, 6]), random.normal(shape: [5, 2]),
                            random.normal(shape: [5])]
        let linearReport = try GradientCheck.check(linearInputs, absoluteTolerance: 1e-3, relativeTolerance: 1e-2) { v in
            try foldedLoRALinear(v[0], weight: w, bias: v[3], down: v[1], up: v[2], scale: 0.7)
        }
        XCTAssertTrue(linearReport.passed, "\(linearReport)")

        let cw = random.normal(shape: [3, 3, 3, 4], std: 0.5)
        let convInputs = [random.normal(shape: [1, 5, 5, 3]), random.normal(shape: [3, 3, 3, 2]),
                          random.normal(shape: [1, 1, 2, 4]), random.normal(shape: [4])]
        for stride in [1, 2] {
            let report = try GradientCheck.check(convInputs, absoluteTolerance: 1e-3, relativeTolerance: 1e-2) { v in
                try foldedLoRAConv2d(v[0], weight: cw, bias: v[3], down: v[1], up: v[2], scale: 1.3, stride: stride, padding: 1)
            }
            XCTAssertTrue(report.passed, "stride \(stride): \(report)")
        }
    }

    /// Two pairs, per-row weights or branch dropout in training are not one foldable pair: the layer keeps the
    /// branch form.
    func testLayersFoldOnlyOnePlainPair() throws {
        var random = PhiloxRandom(seed: 41)
        let layer = Linear(inFeatures: 8, outFeatures: 6)
        layer.initializeParameters(random: &random)
        layer.freeze()
        let stack = AdapterStack(root: layer, component: .unet)
        try stack.addTrainable(name: "a", rank: 2, targets: LoRATargets([""]), random: &random)
        func ops() throws -> [String] {
            let y = try layer(Variable(random.normal(shape: [3, 8]), requiresGrad: true))
            let trace = BackwardTrace()
            try GradMode.$trace.withValue(trace) { try sum(y).backward() }
            return trace.events
        }
        XCTAssertTrue(try ops().contains("foldedLoRALinear.dInput"))
        try AdapterRowWeights(rows: ["a": [1, 0, 0.5]]).apply {
            XCTAssertFalse(try ops().contains { $0.hasPrefix("foldedLoRA") }, "per-row weights")
        }
        try stack.addTrainable(name: "b", rank: 2, targets: LoRATargets([""]), random: &random)
        XCTAssertFalse(try ops().contains { $0.hasPrefix("foldedLoRA") }, "two pairs")
        try stack.setEnabled(false, for: "b")
        XCTAssertTrue(try ops().contains("foldedLoRALinear.dInput"), "the other pair off")
        for (_, branch, _) in stack.pairs(of: "a") { branch.dropout = 0.1 }
        layer.train()
        XCTAssertFalse(try ops().contains { $0.hasPrefix("foldedLoRA") }, "dropout in training")
        layer.eval()
        XCTAssertTrue(try ops().contains("foldedLoRALinear.dInput"), "dropout outside training")
    }
}

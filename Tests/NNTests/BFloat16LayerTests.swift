// Linear and Conv2d with BF16 compute on (`Module.computeInBFloat16`): the forward is TensorCore's BF16 product of
// the current weight, the input gradient is the F32 one, and wherever BF16 does not apply (a trained weight, a
// lower kernel level, an odd input width) the layer computes exactly as in F32.
import XCTest
import Autograd
import TensorCore
@testable import NN

private func seeded(_ shape: [Int], seed: UInt64) -> Tensor {
    var random = PhiloxRandom(seed: seed)
    return random.normal(shape: shape)
}

/// d(Σ layer(x))/dx.
private func inputGradient(_ layer: (Variable) throws -> Variable, at x: Tensor) throws -> Tensor {
    let input = Variable(x, requiresGrad: true)
    try sum(layer(input)).backward()
    return try XCTUnwrap(input.grad)
}

final class BFloat16LayerTests: XCTestCase {
    override func setUpWithError() throws {
        guard BFloat16Compute.isAvailable else {
            throw XCTSkip("this CPU has no AVX512-BF16 (or a lower kernel level is active): the BF16 kernels cannot run")
        }
    }

    private func linear(in i: Int, out o: Int, seed: UInt64) throws -> Linear {
        let layer = Linear(inFeatures: i, outFeatures: o)
        try layer.load(stateDict: ["weight": seeded([o, i], seed: seed), "bias": seeded([o], seed: seed + 1)])
        layer.freeze()
        return layer
    }

    func testLinearRunsTheBF16ProductOfItsCurrentWeight() throws {
        let layer = try linear(in: 64, out: 40, seed: 1)
        let x = seeded([5, 64], seed: 3)
        let f32 = try layer(Variable(x)).value
        XCTAssertEqual(layer.computeInBFloat16(true), 1)
        XCTAssertEqual(layer.bfloat16PackedBytes, 2 * 64 * 64)
        let bf16 = try layer(Variable(x)).value
        let direct = try bfloat16Linear(x, weight: XCTUnwrap(BFloat16Weight.linear(layer.weight.value)),
                                        bias: layer.bias?.value)
        XCTAssertEqual(bf16.scalars, direct.scalars)
        XCTAssertNotEqual(bf16.scalars, f32.scalars)
        XCTAssertLessThan(zip(bf16.scalars, f32.scalars).map { abs($0 - $1) }.max()!, 0.1)

        // A new weight (a load, a fused adapter) is packed again before the next product.
        try layer.load(stateDict: ["weight": seeded([40, 64], seed: 7), "bias": layer.bias!.value])
        let after = try layer(Variable(x)).value
        let expected = try bfloat16Linear(x, weight: XCTUnwrap(BFloat16Weight.linear(layer.weight.value)),
                                          bias: layer.bias?.value)
        XCTAssertEqual(after.scalars, expected.scalars)

        XCTAssertEqual(layer.computeInBFloat16(false), 1)
        let f32After = try Autograd.linear(Variable(x), weight: layer.weight, bias: layer.bias).value
        XCTAssertEqual(try layer(Variable(x)).value.scalars, f32After.scalars)
    }

    func testWhereBF16DoesNotApplyTheLayerComputesInF32() throws {
        let x = seeded([3, 64], seed: 4)
        let reference = try linear(in: 64, out: 24, seed: 2)
        let f32 = try reference(Variable(x)).value

        let trained = try linear(in: 64, out: 24, seed: 2)
        trained.computeInBFloat16(true)
        trained.weight.requiresGrad = true                                    // a weight being trained
        XCTAssertEqual(try trained(Variable(x)).value.scalars, f32.scalars)
        XCTAssertNotEqual(try withNoGrad { try trained(Variable(x)) }.value.scalars, f32.scalars)

        let lowered = try linear(in: 64, out: 24, seed: 2)
        lowered.computeInBFloat16(true)
        let avx2 = try XCTUnwrap(Kernels.set(named: "avx2"))
        let onAVX2 = try Kernels.$override.withValue(avx2) { try lowered(Variable(x)).value }
        let f32OnAVX2 = try Kernels.$override.withValue(avx2) { try reference(Variable(x)).value }
        XCTAssertEqual(onAVX2.scalars, f32OnAVX2.scalars)

        let odd = try linear(in: 63, out: 8, seed: 5)
        let xOdd = seeded([2, 63], seed: 6)
        let before = try odd(Variable(xOdd)).value
        odd.computeInBFloat16(true)
        XCTAssertEqual(try odd(Variable(xOdd)).value.scalars, before.scalars)
    }

    func testConvolutionForwardAndInputGradientAreBF16() throws {
        let conv = Conv2d(inChannels: 8, outChannels: 20, kernelSize: 3, stride: 1, padding: 1)
        var random = PhiloxRandom(seed: 9)
        conv.resetParameters(random: &random)
        conv.freeze()
        let x = seeded([2, 6, 7, 8], seed: 10), g = seeded([2, 6, 7, 20], seed: 11)
        func run() throws -> (Tensor, Tensor) {
            let input = Variable(x, requiresGrad: true)
            let y = try conv(input)
            try sum(mul(y, Variable(g))).backward()
            return (y.value, try XCTUnwrap(input.grad))
        }
        let (yF32, dxF32) = try run()
        conv.computeInBFloat16(true)
        let (yBF16, dxBF16) = try run()
        let direct = try bfloat16Conv2d(x, weight: XCTUnwrap(BFloat16Weight.convolution(conv.weight.value)), kernelHeight: 3,
                                        kernelWidth: 3, bias: conv.bias?.value, stride: 1, padding: 1)
        XCTAssertEqual(yBF16.scalars, direct.scalars)
        XCTAssertNotEqual(yBF16.scalars, yF32.scalars)
        let directGradient = try bfloat16Conv2dInputGradient(
            g, weight: XCTUnwrap(BFloat16Weight.convolutionInputGradient(conv.weight.value)), kernelHeight: 3,
            kernelWidth: 3, inputShape: x.shape, padding: 1)
        XCTAssertEqual(dxBF16.scalars, directGradient.scalars)
        XCTAssertNotEqual(dxBF16.scalars, dxF32.scalars)
        XCTAssertLessThan(zip(dxBF16.scalars, dxF32.scalars).map { abs($0 - $1) }.max()!, 0.05)

        // Stride 2 keeps the F32 input gradient.
        let down = Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, stride: 2, padding: 1)
        down.resetParameters(random: &random)
        down.freeze()
        let f32Gradient = try inputGradient(down.callAsFunction, at: x)
        down.computeInBFloat16(true)
        XCTAssertEqual(try inputGradient(down.callAsFunction, at: x).scalars, f32Gradient.scalars)
    }

    func testLinearInputGradientIsBF16() throws {
        let layer = try linear(in: 48, out: 30, seed: 12)
        let x = seeded([4, 48], seed: 13)
        let f32 = try inputGradient(layer.callAsFunction, at: x)
        layer.computeInBFloat16(true)
        let bf16 = try inputGradient(layer.callAsFunction, at: x)
        let ones = Tensor(shape: [4, 30], repeating: 1)
        let direct = try bfloat16Linear(ones, weight: XCTUnwrap(BFloat16Weight.linearInputGradient(layer.weight.value)),
                                        bias: nil)
        XCTAssertEqual(bf16.scalars, direct.scalars)
        XCTAssertNotEqual(bf16.scalars, f32.scalars)
        // Forward: one 32-column sliver of 48 k; input gradient: two slivers (48 columns) of 30 k; 2 bytes each.
        XCTAssertEqual(layer.bfloat16PackedBytes, 2 * (48 * 32 + 2 * 30 * 32))
    }
}

extension BFloat16LayerTests {
    /// `holdingWeights`: the layer keeps only the BF16 weight; it computes what the BF16 layer beside an F32 weight
    /// computes, leaves the state dict, unpacks its weight where F32 is needed, and gets it back (rounded) when BF16
    /// is turned off.
    func testHoldingWeightsInBF16() throws {
        let x = seeded([3, 64], seed: 30)
        let beside = try linear(in: 64, out: 24, seed: 31), held = try linear(in: 64, out: 24, seed: 31)
        let rounded = held.weight.value.scalars.map(BFloat16Compute.rounded)
        beside.computeInBFloat16(true)
        XCTAssertEqual(held.computeInBFloat16(true, holdingWeights: true), 1)
        XCTAssertEqual(held.weight.value.count, 0)
        XCTAssertEqual([held.inFeatures, held.outFeatures], [64, 24])
        XCTAssertEqual(held.bfloat16PackedBytes, 2 * 64 * 32)
        XCTAssertEqual(held.namedParameters().map(\.0), ["bias"])
        XCTAssertEqual(held.float32Weight.scalars, rounded)
        XCTAssertEqual(try held(Variable(x)).value.scalars, try beside(Variable(x)).value.scalars)

        // The input gradient runs from the held weight (its packing made from the unpacked weight).
        let expected = try bfloat16Linear(Tensor(shape: [3, 24], repeating: 1),
                                          weight: XCTUnwrap(BFloat16Weight.linearInputGradient(held.float32Weight)), bias: nil)
        XCTAssertEqual(try inputGradient(held.callAsFunction, at: x).scalars, expected.scalars)

        // Under a lower kernel level the layer computes in F32 from the unpacked weight.
        let avx2 = try XCTUnwrap(Kernels.set(named: "avx2"))
        let onAVX2 = try Kernels.$override.withValue(avx2) { try held(Variable(x)).value }
        let f32Rounded = try Kernels.$override.withValue(avx2) {
            try Autograd.linear(Variable(x), weight: Variable(held.float32Weight), bias: held.bias).value
        }
        XCTAssertEqual(onAVX2.scalars, f32Rounded.scalars)

        // An adapter merged into the weight works on the unpacked weight; the layer then holds F32 again.
        let delta = seeded([24, 64], seed: 32)
        try held.bakeWeightDelta(delta, scale: 0.5)
        XCTAssertEqual(held.weight.value.count, 24 * 64)
        XCTAssertEqual(held.weight.value.scalars, zip(rounded, delta.scalars).map { $0 + 0.5 * $1 })
        held.restoreBakedWeight()
        XCTAssertEqual(held.weight.value.scalars, rounded)

        let conv = Conv2d(inChannels: 6, outChannels: 10, kernelSize: 3, stride: 1, padding: 1)
        var random = PhiloxRandom(seed: 33)
        conv.resetParameters(random: &random)
        conv.freeze()
        let original = conv.weight.value
        conv.computeInBFloat16(true, holdingWeights: true)
        XCTAssertEqual([conv.inChannels, conv.outChannels, conv.kernelSize], [6, 10, 3])
        XCTAssertEqual(conv.float32Weight.shape, [3, 3, 6, 10])
        let image = seeded([1, 5, 5, 6], seed: 34)
        let y = try conv(Variable(image)).value
        XCTAssertEqual(y.scalars, try bfloat16Conv2d(image, weight: XCTUnwrap(BFloat16Weight.convolution(original)),
                                                     kernelHeight: 3, kernelWidth: 3, bias: conv.bias?.value, stride: 1,
                                                     padding: 1).scalars)
        XCTAssertEqual(conv.computeInBFloat16(false), 1)
        XCTAssertEqual(conv.weight.value.scalars, original.scalars.map(BFloat16Compute.rounded))

        // An output convolution to RGB (Cout odd) has no BF16 input-gradient packing: its input gradient is the F32
        // one on the unpacked weight, and a stride-2 convolution's likewise.
        for (cout, stride) in [(3, 1), (8, 2)] {
            let layer = Conv2d(inChannels: 6, outChannels: cout, kernelSize: 3, stride: stride, padding: 1)
            layer.resetParameters(random: &random)
            layer.freeze()
            layer.computeInBFloat16(true, holdingWeights: true)
            let reference = try inputGradient({
                try Autograd.conv2d($0, weight: Variable(layer.float32Weight), bias: layer.bias, stride: stride, padding: 1)
            }, at: image)
            XCTAssertEqual(try inputGradient(layer.callAsFunction, at: image).scalars, reference.scalars,
                           "Cout \(cout) s\(stride)")
        }
    }
}

extension BFloat16LayerTests {
    /// An attention module with BF16 on computes its scores and probabilities in BF16 where nothing records gradients
    /// through them, and with the F32 flash kernel where something does (adapters training on its projections).
    func testAttentionScoresInBF16OnlyWithoutGradients() throws {
        let attention = Attention(queryDim: 32, contextDim: 24, heads: 2, dimHead: 16)
        var random = PhiloxRandom(seed: 40)
        attention.initializeParameters(random: &random)
        attention.freeze()
        attention.computeInBFloat16(true)
        let x = seeded([2, 20, 32], seed: 41), context = seeded([2, 7, 24], seed: 42)
        func manual(_ x: Variable, bf16: Bool) throws -> Tensor {
            let c = Variable(context)
            let (q, k, v) = (try attention.to_q(x), try attention.to_k(c), try attention.to_v(c))
            let o = bf16 ? Variable(try bfloat16Attention(q.value, k.value, v.value, heads: 2))
                         : try Autograd.attention(q, k, v, heads: 2)
            return try attention.to_out[0](o).value
        }
        let inference = try withNoGrad { try attention(Variable(x), context: Variable(context)).value }
        XCTAssertEqual(inference.scalars, try withNoGrad { try manual(Variable(x), bf16: true) }.scalars)
        XCTAssertNotEqual(inference.scalars, try withNoGrad { try manual(Variable(x), bf16: false) }.scalars)
        let training = try attention(Variable(x, requiresGrad: true), context: Variable(context)).value
        XCTAssertEqual(training.scalars, try manual(Variable(x, requiresGrad: true), bf16: false).scalars)
    }
}

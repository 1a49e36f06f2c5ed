// The 4-bit Linear layer: the decoding GEMM equals the F32 GEMM on the dequantized weight, forward and
// input gradient, on shapes with partial row tiles, partial B slivers and blocks straddling rows; the
// weight gets no gradient, adapters on top do; fusing into a 4-bit layer is refused.
import Autograd
import NN
import TensorCore
import TestSupport
import XCTest

final class QuantizedLinearTests: XCTestCase {
    func layer(in inFeatures: Int, out outFeatures: Int, type: FourBitType, seed: UInt64) throws -> (Linear, Tensor) {
        let l = Linear(inFeatures: inFeatures, outFeatures: outFeatures)
        l.weight.value = uniformTensor([outFeatures, inFeatures], seed: seed)
        l.bias!.value = uniformTensor([outFeatures], seed: seed + 1)
        try l.quantize(type)
        return (l, l.quantizedWeight!.dequantized())
    }

    func testForwardAndInputGradientEqualTheDequantizedWeight() throws {
        for (rows, inF, outF, type) in [(5, 70, 33, FourBitType.nf4), (37, 128, 96, .fp4), (200, 320, 640, .nf4),
                                        (3, 1280, 1280, .nf4), (64, 40, 77, .nf4)] {
            let (l, w) = try layer(in: inF, out: outF, type: type, seed: UInt64(rows * 1000 + inF))
            XCTAssertEqual(l.weight.value.count, 0)
            XCTAssertEqual([l.outFeatures, l.inFeatures], [outF, inF])
            let x = Variable(uniformTensor([rows, inF], seed: 7), requiresGrad: true)
            let y = try l(x)
            let expected = try linear(Variable(x.value), weight: Variable(w), bias: Variable(l.bias!.value)).value
            try assertClose(y.value, expected, tolerance: 1e-6, "forward \(rows)x\(inF)x\(outF)")
            let g = uniformTensor([rows, outF], seed: 9)
            try y.backward(g)
            let dx = try TensorCore.matmul(g, w)
            try assertClose(x.grad!, dx, tolerance: 1e-6, "dX \(rows)x\(inF)x\(outF)")
            XCTAssertNil(l.weight.grad)
        }
    }

    func testBatchedInputAndStateDict() throws {
        let (l, w) = try layer(in: 64, out: 48, type: .nf4, seed: 3)
        let x = uniformTensor([2, 7, 64], seed: 4)
        let y = try l(Variable(x)).value
        XCTAssertEqual(y.shape, [2, 7, 48])
        let expected = try linear(Variable(x), weight: Variable(w), bias: Variable(l.bias!.value)).value
        try assertClose(y, expected, tolerance: 1e-6, "batched")
        XCTAssertEqual(l.stateDict().keys.sorted(), ["bias"])
        XCTAssertEqual(l.quantizedSummary().weights, 64 * 48)
        XCTAssertEqual(l.parameterCounts().all, 64 * 48 + 48)
    }

    func testFusingIntoAQuantizedLayerIsRefused() throws {
        let (l, _) = try layer(in: 64, out: 32, type: .nf4, seed: 5)
        XCTAssertThrowsError(try l.bakeWeightDelta(Tensor(zeros: [32, 64]))) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot fuse an adapter into a Linear layer whose weight is 4-bit quantized"),
                          "\(error)")
        }
    }
}

final class QuantizedConvTests: XCTestCase {
    /// A 4-bit Conv2d equals the F32 implicit-GEMM convolution with the dequantized weight bit for bit (Winograd,
    /// which would need the whole weight in F32, is not used on 4-bit weights), forward and input
    /// gradient, on every path of the kernel: 1x1 GEMM, few-channel im2col, implicit GEMM with few and many
    /// row tiles, stride 2 (input gradient by phases), the few-pixel per-tap input gradient; odd channel counts
    /// give partial slivers and blocks of 64 that straddle taps and Cin rows.
    func testForwardAndInputGradientEqualTheDequantizedWeightBitForBit() throws {
        // (cin, cout, k, stride, pad, batch, size)
        let cases = [(8, 16, 3, 1, 1, 2, 9), (16, 40, 3, 2, 1, 2, 9), (24, 8, 1, 1, 0, 2, 9), (3, 37, 3, 1, 1, 1, 11),
                     (4, 64, 3, 1, 1, 2, 7), (33, 70, 3, 1, 1, 2, 23), (40, 96, 3, 2, 1, 1, 17), (64, 64, 3, 1, 1, 2, 4),
                     (70, 33, 1, 1, 0, 1, 13), (19, 45, 1, 2, 0, 2, 9), (20, 35, 3, 1, 0, 1, 12), (96, 160, 3, 1, 1, 1, 6)]
        for (cin, cout, k, stride, pad, batch, size) in cases {
            let what = "\(cin)→\(cout) k\(k) s\(stride) p\(pad) \(batch)x\(size)x\(size)"
            for type in [FourBitType.nf4, .fp4] {
                let c = Conv2d(inChannels: cin, outChannels: cout, kernelSize: k, stride: stride, padding: pad)
                c.weight.value = uniformTensor([k, k, cin, cout], seed: UInt64(cin * 100 + cout))
                c.bias!.value = uniformTensor([cout], seed: 5)
                try c.quantize(type)
                XCTAssertEqual([c.inChannels, c.outChannels, c.kernelSize], [cin, cout, k])
                let w = c.quantizedWeight!.dequantized()
                let x = Variable(uniformTensor([batch, size, size, cin], seed: 6), requiresGrad: true)
                let y = try c(x)
                let xr = Variable(x.value, requiresGrad: true)
                let g = uniformTensor(y.shape, seed: 8)
                try y.backward(g)
                let yr = try ConvolutionAlgorithm.$winogradAllowed.withValue(false) {
                    let yr = try conv2d(xr, weight: Variable(w), bias: Variable(c.bias!.value), stride: stride, padding: pad)
                    try yr.backward(g)
                    return yr
                }
                XCTAssertEqual(y.shape, yr.shape, what)
                XCTAssertEqual(y.value.scalars, yr.value.scalars, "forward \(what) \(type)")
                XCTAssertEqual(x.grad!.scalars, xr.grad!.scalars, "dX \(what) \(type)")
                XCTAssertNil(c.weight.grad)
                XCTAssertEqual(c.stateDict().keys.sorted(), ["bias"])
                XCTAssertThrowsError(try c.bakeWeightDelta(Tensor(zeros: [cout, cin, k, k])))
            }
        }
    }

    /// Without a bias, and on a batch whose rows are all zero but one: the 4-bit paths read nothing stale.
    func testWithoutBias() throws {
        let c = Conv2d(inChannels: 32, outChannels: 48, kernelSize: 3, padding: 1, bias: false)
        c.weight.value = uniformTensor([3, 3, 32, 48], seed: 11)
        try c.quantize(.nf4)
        let x = uniformTensor([1, 15, 15, 32], seed: 12)
        let expected = try ConvolutionAlgorithm.$winogradAllowed.withValue(false) {
            try TensorCore.conv2d(x, weight: c.quantizedWeight!.dequantized(), padding: 1)
        }
        XCTAssertEqual(try c(Variable(x)).value.scalars, expected.scalars)
    }

    /// Bad shapes are one-line errors, not crashes.
    func testShapeErrors() throws {
        let q = try FourBitTensor.quantize(uniformTensor([3, 3, 8, 16], seed: 1), type: .nf4)
        XCTAssertThrowsError(try q.conv2dForward(uniformTensor([1, 5, 5, 7], seed: 2), bias: nil, stride: 1, padding: 1)) {
            XCTAssertTrue("\($0)".contains("input channels 7 differ from weight Cin 8"), "\($0)")
        }
        XCTAssertThrowsError(try q.conv2dInputGradient(uniformTensor([1, 4, 4, 16], seed: 2), inputShape: [1, 5, 5, 8],
                                                       stride: 1, padding: 1)) {
            XCTAssertTrue("\($0)".contains("output gradient [1, 4, 4, 16] should be [1, 5, 5, 16]"), "\($0)")
        }
    }
}

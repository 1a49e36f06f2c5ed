import XCTest
import TestSupport
import TensorCore
import Autograd

/// Every op's VJP against central finite differences (GradientCheck, Double accumulation), tiny shapes.
final class OpGradientTests: XCTestCase {
    private func r(_ shape: [Int], _ seed: UInt64) -> Tensor { uniformTensor(shape, seed: seed) }

    func testAddSubMulWithBroadcasting() {
        let cases: [([Int], [Int])] = [([2, 3], [2, 3]), ([2, 2, 2, 3], [3]), ([2, 2, 2, 3], [2, 1, 1, 3]),
                                       ([1, 3], [2, 1]), ([2, 3], [1])]
        for (sa, sb) in cases {
            assertGradients([r(sa, 1), r(sb, 2)]) { try add($0[0], $0[1]) }
            assertGradients([r(sa, 3), r(sb, 4)]) { try sub($0[0], $0[1]) }
            assertGradients([r(sa, 5), r(sb, 6)]) { try mul($0[0], $0[1]) }
        }
    }

    func testScaleAndActivations() {
        let x = Tensor(shape: [3, 7]) { b in for i in b.indices { b[i] = 4 * uniformTensor([21], seed: 7)[flat: i] } }
        assertGradients([x]) { scale($0[0], by: -1.5) }
        assertGradients([x]) { silu($0[0]) }
        assertGradients([x]) { gelu($0[0]) }
        assertGradients([x]) { gelu($0[0], approximation: .tanh) }
        assertGradients([x]) { quickGELU($0[0]) }
        assertGradients([r([2, 3, 8], 8)]) { try geglu($0[0]) }
    }

    func testReductionsAndLoss() {
        assertGradients([r([2, 3, 4], 9)]) { sum($0[0]) }
        assertGradients([r([2, 3, 4], 10)]) { mean($0[0]) }
        for axis in 0..<3 {
            assertGradients([r([2, 3, 4], 11)]) { try sum($0[0], axis: axis) }
            assertGradients([r([2, 3, 4], 12)]) { try mean($0[0], axis: axis, keepingDimension: true) }
        }
        assertGradients([r([2, 5], 13), r([2, 5], 14)]) { try mseLoss($0[0], $0[1]) }
    }

    func testMatmulAllTransposesAndBatches() {
        for ta in [false, true] {
            for tb in [false, true] {
                let a = r(ta ? [4, 3] : [3, 4], 15), b = r(tb ? [5, 4] : [4, 5], 16)
                assertGradients([a, b]) { try matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
                let ba = r(ta ? [2, 4, 3] : [2, 3, 4], 17), bb = r(tb ? [2, 5, 4] : [2, 4, 5], 18)
                assertGradients([ba, bb]) { try matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
            }
        }
        assertGradients([r([2, 3, 4], 19), r([4, 5], 20)]) { try matmul($0[0], $0[1]) }
        assertGradients([r([2, 3, 4], 21), r([5, 4], 22)]) { try matmul($0[0], $0[1], transposeB: true) }
    }

    func testLinear() {
        assertGradients([r([2, 3, 4], 23), r([5, 4], 24), r([5], 25)]) { try linear($0[0], weight: $0[1], bias: $0[2]) }
        assertGradients([r([3, 4], 26), r([2, 4], 27)]) { try linear($0[0], weight: $0[1], bias: nil) }
        assertGradients([r([3, 4], 28), r([2, 4], 29)], wrt: [0]) { try linear($0[0], weight: $0[1], bias: nil) }
    }

    func testConv2d() {
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (1, 1, 0), (3, 1, 0)] {
            assertGradients([r([2, 5, 6, 3], 30), r([k, k, 3, 4], 31), r([4], 32)]) {
                try conv2d($0[0], weight: $0[1], bias: $0[2], stride: s, padding: p)
            }
        }
    }

    func testNormalization() {
        let x = r([2, 3, 3, 6], 33)
        assertGradients([x, r([6], 34), r([6], 35)]) { try groupNorm($0[0], groups: 3, weight: $0[1], bias: $0[2]) }
        assertGradients([x]) { try groupNorm($0[0], groups: 2, weight: nil, bias: nil, eps: 1e-6) }
        assertGradients([r([2, 3, 5], 36), r([5], 37), r([5], 38)]) { try layerNorm($0[0], weight: $0[1], bias: $0[2]) }
    }

    func testSoftmax() {
        assertGradients([r([3, 7], 39)]) { try softmax($0[0]) }
    }

    func testAttentionSelfCrossAndCausal() {
        assertGradients([r([2, 5, 8], 40), r([2, 5, 8], 41), r([2, 5, 8], 42)]) { try attention($0[0], $0[1], $0[2], heads: 2) }
        assertGradients([r([1, 4, 6], 43), r([1, 3, 6], 44), r([1, 3, 6], 45)]) { try attention($0[0], $0[1], $0[2], heads: 3) }
        assertGradients([r([1, 4, 4], 46), r([1, 4, 4], 47), r([1, 4, 4], 48)]) {
            try attention($0[0], $0[1], $0[2], heads: 1, scale: 0.7, causal: true)
        }
    }

    func testLayoutOps() {
        assertGradients([r([1, 2, 3, 4], 49)]) { try upsampleNearest2x($0[0]) }
        assertGradients([r([2, 3, 2], 50), r([2, 3, 4], 51)]) { try concatChannels([$0[0], $0[1]]) }
        assertGradients([r([2, 3, 6], 52)]) { x in
            let parts = try splitChannels(x[0], sizes: [2, 4])
            return try add(parts[0], scale(try splitChannels(parts[1], sizes: [2, 2])[1], by: 2))
        }
        assertGradients([r([2, 3, 4], 53)]) { try permute($0[0], [2, 0, 1]) }
        assertGradients([r([2, 3, 4], 54)]) { try reshape($0[0], [6, 4]) }
    }

    func testEmbeddingScatterAddsRepeatedIds() throws {
        assertGradients([r([5, 3], 55)]) { try embedding([4, 0, 4, 2], shape: [2, 2], table: $0[0]) }
        let table = Variable(r([3, 2], 56), requiresGrad: true)
        try sum(embedding([1, 1, 1], table: table)).backward()
        XCTAssertEqual(table.grad?.scalars, [0, 0, 3, 3, 0, 0])
        XCTAssertThrowsError(try embedding([3], table: table))
    }

    func testGradientCheckDetectsAWrongVJP() throws {
        let report = try GradientCheck.check([r([4], 57)]) { x in
            Variable.result(x[0].value, of: "wrong", inputs: x) { g in [Elementwise.scale(g, by: 2)] }
        }
        XCTAssertFalse(report.passed)
        XCTAssertEqual(report.mismatches.count, 4)
    }
}

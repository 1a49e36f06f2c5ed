import XCTest
import Autograd
import TensorCore
@testable import NN

private func random(_ shape: [Int], seed: UInt64) -> Tensor {
    var state = seed &* 0x2545_F491_4F6C_DD1D
    return Tensor(shape: shape) { b in
        for i in b.indices {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            b[i] = Float(Double(state >> 40) / Double(1 << 24)) * 2 - 1
        }
    }
}

private func assertClose(_ a: Tensor, _ b: Tensor, _ tolerance: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, file: file, line: line)
    guard a.shape == b.shape else { return }
    var worst: Float = 0, at = 0
    for i in 0..<a.count where abs(a[flat: i] - b[flat: i]) > worst { worst = abs(a[flat: i] - b[flat: i]); at = i }
    XCTAssertLessThanOrEqual(worst, tolerance, "first worst at flat \(at): \(a[flat: at]) vs \(b[flat: at])", file: file, line: line)
}

final class LayerTests: XCTestCase {
    func testLinearMatchesNaiveProduct() throws {
        let layer = Linear(inFeatures: 3, outFeatures: 2)
        let w = random([2, 3], seed: 1), b = random([2], seed: 2)
        try layer.load(stateDict: ["weight": w, "bias": b])
        let x = random([2, 2, 3], seed: 3)
        let y = try layer(Variable(x)).value
        let expected = Tensor(shape: [2, 2, 2]) { out in
            for r in 0..<4 {
                for o in 0..<2 {
                    var s = b[flat: o]
                    for i in 0..<3 { s += x[flat: r * 3 + i] * w[flat: o * 3 + i] }
                    out[r * 2 + o] = s
                }
            }
        }
        assertClose(y, expected)
    }

    /// The checkpoint's OIHW weight loads unchanged; the NHWC convolution equals a naive NCHW one.
    func testConv2dLoadsOIHWAndMatchesNaiveNCHWConvolution() throws {
        let (n, cin, h, w, cout, k) = (2, 3, 5, 6, 4, 3)
        for (stride, padding) in [(1, 1), (2, 1), (1, 0)] {
            let conv = Conv2d(inChannels: cin, outChannels: cout, kernelSize: k, stride: stride, padding: padding)
            let weight = random([cout, cin, k, k], seed: 4), bias = random([cout], seed: 5)
            try conv.load(stateDict: ["weight": weight, "bias": bias])
            XCTAssertEqual(conv.stateDict()["weight"]?.scalars, weight.scalars, "OIHW round trip")

            let xNCHW = random([n, cin, h, w], seed: 6)
            let ho = (h + 2 * padding - k) / stride + 1, wo = (w + 2 * padding - k) / stride + 1
            let expected = Tensor(shape: [n, cout, ho, wo]) { out in
                for b in 0..<n { for o in 0..<cout { for y in 0..<ho { for x in 0..<wo {
                    var s = bias[flat: o]
                    for c in 0..<cin { for i in 0..<k { for j in 0..<k {
                        let iy = y * stride - padding + i, ix = x * stride - padding + j
                        guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                        s += xNCHW[flat: ((b * cin + c) * h + iy) * w + ix] * weight[flat: ((o * cin + c) * k + i) * k + j]
                    } } }
                    out[((b * cout + o) * ho + y) * wo + x] = s
                } } } }
            }
            let xNHWC = try Layout.permute(xNCHW, [0, 2, 3, 1])
            let y = try conv(Variable(xNHWC)).value
            assertClose(try Layout.permute(y, [0, 3, 1, 2]), expected)
        }
    }

    func testConv2dShapeErrorNamesOIHWShapes() {
        let conv = Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3)
        XCTAssertThrowsError(try conv.load(stateDict: ["weight": Tensor(zeros: [4, 3, 1, 1]), "bias": Tensor(zeros: [4])])) {
            XCTAssertEqual($0 as? StateDictError, .shapeMismatch(key: "weight", expected: [4, 3, 3, 3], actual: [4, 3, 1, 1]))
        }
    }

    func testBakeAndRestoreWeightDelta() throws {
        let layer = Linear(inFeatures: 2, outFeatures: 2, bias: false)
        let w = random([2, 2], seed: 7)
        try layer.load(stateDict: ["weight": w])
        try layer.bakeWeightDelta(Tensor(shape: [2, 2], repeating: 1), scale: 0.5)
        try layer.bakeWeightDelta(Tensor(shape: [2, 2], repeating: 1), scale: 0.25)
        assertClose(layer.weight.value, Tensor(shape: [2, 2]) { b in for i in 0..<4 { b[i] = w[flat: i] + 0.75 } }, 1e-6)
        layer.restoreBakedWeight()
        XCTAssertEqual(layer.weight.value.scalars, w.scalars)
        XCTAssertThrowsError(try layer.bakeWeightDelta(Tensor(zeros: [2, 3])))

        let conv = Conv2d(inChannels: 2, outChannels: 3, kernelSize: 3)
        let delta = random([3, 2, 3, 3], seed: 8)
        try conv.bakeWeightDelta(delta)
        XCTAssertEqual(conv.stateDict()["weight"]?.scalars, delta.scalars)
        conv.restoreBakedWeight()
        XCTAssertEqual(conv.stateDict()["weight"]?.scalars, Array(repeating: 0, count: 54))
    }

    func testAdaptersAddTheirDelta() throws {
        final class Shift: LayerAdapter {
            let amount = Variable(Tensor(shape: [1], repeating: 2), requiresGrad: true)
            func delta(_ x: Variable) throws -> Variable {
                try mul(sum(x, axis: x.shape.count - 1, keepingDimension: true), amount)
            }
            var adapterParameters: [(String, Variable)] { [("shift.amount", amount)] }
        }
        let layer = Linear(inFeatures: 2, outFeatures: 1, bias: false)
        layer.freeze()
        layer.adapters = [Shift()]
        let out = try layer(Variable(try Tensor(shape: [1, 2], scalars: [1, 2])))
        XCTAssertEqual(out.value.scalars, [6])
        try sum(out).backward()
        XCTAssertNil(layer.weight.grad)
        XCTAssertEqual(layer.trainableParameters().first?.1.grad?.scalars, [3])
    }

    func testAttentionMatchesNaiveSoftmaxAttention() throws {
        let (n, lq, lk, heads, d, qdim, cdim) = (1, 3, 4, 2, 2, 5, 3)
        let attn = NN.Attention(queryDim: qdim, contextDim: cdim, heads: heads, dimHead: d)
        var dict: [String: Tensor] = [:]
        for (i, (key, p)) in attn.namedParameters().enumerated() { dict[key] = random(p.shape, seed: 20 + UInt64(i)) }
        XCTAssertEqual(dict.keys.sorted(), ["to_k.weight", "to_out.0.bias", "to_out.0.weight", "to_q.weight", "to_v.weight"])
        try attn.load(stateDict: dict)
        let x = random([n, lq, qdim], seed: 30), ctx = random([n, lk, cdim], seed: 31)
        let y = try attn(Variable(x), context: Variable(ctx)).value

        func proj(_ t: Tensor, _ w: Tensor, rows: Int) -> [[Float]] {
            (0..<rows).map { r in (0..<w.shape[0]).map { o in
                (0..<w.shape[1]).reduce(Float(0)) { $0 + t[flat: r * w.shape[1] + $1] * w[flat: o * w.shape[1] + $1] }
            } }
        }
        let q = proj(x, dict["to_q.weight"]!, rows: lq), k = proj(ctx, dict["to_k.weight"]!, rows: lk)
        let v = proj(ctx, dict["to_v.weight"]!, rows: lk)
        var o = Array(repeating: Array(repeating: Float(0), count: heads * d), count: lq)
        for h in 0..<heads {
            for i in 0..<lq {
                let s = (0..<lk).map { j in (0..<d).reduce(Float(0)) { $0 + q[i][h * d + $1] * k[j][h * d + $1] } / Float(d).squareRoot() }
                let m = s.max()!, e = s.map { exp($0 - m) }, z = e.reduce(0, +)
                for c in 0..<d { o[i][h * d + c] = (0..<lk).reduce(Float(0)) { $0 + e[$1] / z * v[$1][h * d + c] } }
            }
        }
        let wo = dict["to_out.0.weight"]!, bo = dict["to_out.0.bias"]!
        let expected = Tensor(shape: [n, lq, qdim]) { out in
            for i in 0..<lq { for c in 0..<qdim {
                out[i * qdim + c] = bo[flat: c] + (0..<heads * d).reduce(Float(0)) { $0 + o[i][$1] * wo[flat: c * heads * d + $1] }
            } }
        }
        assertClose(y, expected)
    }

    func testNormsLoadAndNormalise() throws {
        let gn = GroupNorm(groups: 2, channels: 4)
        XCTAssertEqual(gn.namedParameters().map(\.0), ["weight", "bias"])
        let y = try gn(Variable(random([1, 3, 3, 4], seed: 40))).value
        var mean: Float = 0
        for p in 0..<9 { mean += y[flat: p * 4] + y[flat: p * 4 + 1] }
        XCTAssertEqual(mean / 18, 0, accuracy: 1e-5)
        let ln = LayerNorm(dim: 4, elementwiseAffine: false)
        XCTAssertTrue(ln.namedParameters().isEmpty)
        XCTAssertEqual(try ln(Variable(random([2, 4], seed: 41))).shape, [2, 4])
    }

    func testDropoutIsIdentityInEvalAndScalesInTraining() throws {
        let dropout = Dropout(p: 0.5)
        var rng = PhiloxRandom(seed: 1)
        let x = Variable(Tensor(shape: [1000], repeating: 1))
        dropout.eval()
        XCTAssertTrue(try dropout(x, random: &rng) === x)
        dropout.train()
        let y = try dropout(x, random: &rng).value.scalars
        XCTAssertTrue(y.allSatisfy { $0 == 0 || $0 == 2 })
        let kept = y.filter { $0 == 2 }.count
        XCTAssertTrue((400...600).contains(kept), "kept \(kept) of 1000")
        var again = PhiloxRandom(seed: 1)
        dropout.eval(); _ = try dropout(x, random: &again); dropout.train()
        XCTAssertEqual(try dropout(x, random: &again).value.scalars, y, "same seed, same mask")
    }

    func testEmbeddingLooksUpRows() throws {
        let e = Embedding(count: 3, dim: 2)
        try e.load(stateDict: ["weight": try Tensor(shape: [3, 2], scalars: [0, 1, 2, 3, 4, 5])])
        XCTAssertEqual(try e([2, 0], shape: [1, 2]).value.shape, [1, 2, 2])
        XCTAssertEqual(try e([2, 0]).value.scalars, [4, 5, 0, 1])
        XCTAssertThrowsError(try e([3]))
    }
}

final class InitializationTests: XCTestCase {
    func testInitializationIsSeededAndBounded() {
        func make(seed: UInt64) -> Module {
            final class Net: Module {
                let fc = Linear(inFeatures: 16, outFeatures: 8)
                let conv = Conv2d(inChannels: 4, outChannels: 2, kernelSize: 3)
                let norm = GroupNorm(groups: 2, channels: 4)
            }
            let net = Net()
            var rng = PhiloxRandom(seed: seed)
            net.initializeParameters(random: &rng)
            return net
        }
        let a = make(seed: 3).stateDict(), b = make(seed: 3).stateDict(), c = make(seed: 4).stateDict()
        XCTAssertEqual(a["fc.weight"]?.scalars, b["fc.weight"]?.scalars)
        XCTAssertNotEqual(a["fc.weight"]?.scalars, c["fc.weight"]?.scalars)
        XCTAssertTrue(a["fc.weight"]!.scalars.allSatisfy { abs($0) <= 0.25 })
        XCTAssertTrue(a["conv.weight"]!.scalars.allSatisfy { abs($0) <= 1 / 6 })
        XCTAssertTrue(a["conv.weight"]!.scalars.contains { $0 != 0 })
        XCTAssertEqual(a["norm.weight"]?.scalars, [1, 1, 1, 1])
    }
}

import XCTest
@testable import TensorCore

final class ElementwiseTests: XCTestCase {
    /// Double reference of a broadcasting binary op by explicit index arithmetic.
    func referenceBroadcast(_ a: [Double], _ aShape: [Int], _ b: [Double], _ bShape: [Int],
                            _ f: (Double, Double) -> Double) -> ([Int], [Double]) {
        let r = max(aShape.count, bShape.count)
        let sa = Array(repeating: 1, count: r - aShape.count) + aShape, sb = Array(repeating: 1, count: r - bShape.count) + bShape
        let out = (0..<r).map { max(sa[$0], sb[$0]) }
        let n = out.reduce(1, *)
        var result = [Double](repeating: 0, count: n)
        for flat in 0..<n {
            var rem = flat, ia = 0, ib = 0, ma = 1, mb = 1
            for i in stride(from: r - 1, through: 0, by: -1) {
                let idx = rem % out[i]; rem /= out[i]
                ia += (sa[i] == 1 ? 0 : idx) * ma; ib += (sb[i] == 1 ? 0 : idx) * mb
                ma *= sa[i]; mb *= sb[i]
            }
            result[flat] = f(a[ia], b[ib])
        }
        return (out, result)
    }

    func testBroadcastForwardAndBackward() throws {
        let cases: [([Int], [Int])] = [([2, 3, 5, 7], [2, 3, 5, 7]), ([2, 3, 1, 17], [17]), ([2, 2, 3, 33], [2, 1, 1, 33]),
                                       ([7], [1]), ([1], [7, 1]), ([3, 1, 17], [1, 7, 1]), ([1, 4, 4, 33], [33])]
        for (i, (sa, sb)) in cases.enumerated() {
            let a = randomTensor(sa, seed: UInt64(10 + i)), b = randomTensor(sb, seed: UInt64(50 + i))
            for (op, f) in [(BinaryOp.add, { (x: Double, y: Double) in x + y }), (.sub, { $0 - $1 }), (.mul, { $0 * $1 })] {
                let (shape, expected) = referenceBroadcast(doubles(a), sa, doubles(b), sb, f)
                let y = try Elementwise.binary(op, a, b)
                XCTAssertEqual(y.shape, shape)
                assertClose(y, expected, atol: 1e-6, rtol: 1e-6, "\(op) \(sa) \(sb)")
                // The gradient of a broadcast is `reduceBroadcast` (Autograd's add/sub/mul build on it): for
                // loss = Σ w·(a + b), da and db are w summed back to each shape; check against finite differences.
                guard op == .add else { continue }
                let w = randomTensor(shape, seed: 99)
                let da = try Elementwise.reduceBroadcast(w, to: sa), db = try Elementwise.reduceBroadcast(w, to: sb)
                let wd = doubles(w)
                let na = numericalGradient(doubles(a)) { x in
                    dot(wd, self.referenceBroadcast(x, sa, doubles(b), sb, f).1)
                }
                let nb = numericalGradient(doubles(b)) { x in
                    dot(wd, self.referenceBroadcast(doubles(a), sa, x, sb, f).1)
                }
                assertClose(da, na, atol: 1e-5, rtol: 1e-5, "d\(op)/da \(sa) \(sb)")
                assertClose(db, nb, atol: 1e-5, rtol: 1e-5, "d\(op)/db \(sa) \(sb)")
            }
        }
    }

    func testBroadcastMismatchNamesShapes() {
        XCTAssertThrowsError(try Elementwise.add(Tensor(zeros: [2, 3]), Tensor(zeros: [4]))) { e in
            XCTAssertTrue("\(e)".contains("[2, 3]") && "\(e)".contains("[4]"), "\(e)")
        }
    }

    func testLargeAddIsThreadIndependent() throws {
        let a = randomTensor([2, 64, 64, 40], seed: 1), b = randomTensor([2, 1, 1, 40], seed: 2)
        try assertThreadIndependent("add", tol: 0) { [try Elementwise.add(a, b), Elementwise.scale(a, by: 0.5)] }
    }

    func testActivationsMatchReferenceAndFiniteDifferences() throws {
        let erf = { (x: Double) in Foundation.erf(x) }
        let sig = { (x: Double) in 1 / (1 + Foundation.exp(-x)) }
        let fns: [(String, (Tensor) -> Tensor, (Tensor, Tensor) throws -> Tensor, (Double) -> Double)] = [
            ("silu", Activation.silu, Activation.siluBackward, { $0 * sig($0) }),
            ("gelu", { Activation.gelu($0) }, { try Activation.geluBackward($0, $1) }, { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }),
            ("geluTanh", { Activation.gelu($0, approximation: .tanh) }, { try Activation.geluBackward($0, $1, approximation: .tanh) },
             { 0.5 * $0 * (1 + Foundation.tanh(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0))) }),
            ("quickGELU", Activation.quickGELU, Activation.quickGELUBackward, { $0 * sig(1.702 * $0) }),
        ]
        for n in [1, 7, 17, 33, 513] {
            var x = randomTensor([n], seed: UInt64(n), scale: 3)
            if n == 513 { x.set(flat: 0, 40); x.set(flat: 1, -40); x.set(flat: 2, 0) }
            let w = randomTensor([n], seed: 7)
            for (name, f, df, ref) in fns {
                assertClose(f(x), doubles(x).map(ref), atol: 1e-6, rtol: 1e-5, "\(name) n=\(n)")
                let dx = try df(w, x)
                let num = zip(doubles(x), doubles(w)).map { xi, wi in wi * (ref(xi + 1e-6) - ref(xi - 1e-6)) / 2e-6 }
                assertClose(dx, num, atol: 1e-5, rtol: 1e-4, "\(name)' n=\(n)")
            }
        }
    }

    func testGEGLU() throws {
        let x = randomTensor([3, 34], seed: 3, scale: 2), w = randomTensor([3, 17], seed: 4)
        let gelu = { (x: Double) in 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot())) }
        func ref(_ x: [Double]) -> [Double] {
            (0..<3).flatMap { r in (0..<17).map { j in x[r * 34 + j] * gelu(x[r * 34 + 17 + j]) } }
        }
        assertClose(try Activation.geglu(x), ref(doubles(x)), atol: 1e-6, rtol: 1e-5, "geglu")
        let num = numericalGradient(doubles(x)) { dot(doubles(w), ref($0)) }
        assertClose(try Activation.gegluBackward(w, x), num, atol: 1e-5, rtol: 1e-4, "geglu'")
    }

    func testReductions() throws {
        let x = randomTensor([3, 7, 17], seed: 5)
        let xd = doubles(x)
        XCTAssertEqual(Double(Reduction.sum(x)), xd.reduce(0, +), accuracy: 1e-4)
        XCTAssertEqual(Double(Reduction.mean(x)), xd.reduce(0, +) / Double(x.count), accuracy: 1e-6)
        XCTAssertEqual(Double(Reduction.sumOfSquares(x)), xd.reduce(0) { $0 + $1 * $1 }, accuracy: 1e-3)
        for axis in 0..<3 {
            let s = try Reduction.sum(x, axis: axis)
            var expected = [Double](repeating: 0, count: x.count / x.shape[axis])
            for i in 0..<3 { for j in 0..<7 { for k in 0..<17 {
                let idx = [i, j, k]
                var o = 0
                for a in 0..<3 where a != axis { o = o * x.shape[a] + idx[a] }
                expected[o] += xd[(i * 7 + j) * 17 + k]
            } } }
            assertClose(s, expected, atol: 1e-5, "sum axis \(axis)")
            let m = try Reduction.mean(x, axis: axis, keepingDimension: true)
            var keep = x.shape; keep[axis] = 1
            XCTAssertEqual(m.shape, keep)
            assertClose(m, expected.map { $0 / Double(x.shape[axis]) }, atol: 1e-6, "mean axis \(axis)")
            let w = randomTensor(s.shape, seed: 8)
            let num = numericalGradient(xd) { xs in
                var e = [Double](repeating: 0, count: expected.count)
                for i in 0..<3 { for j in 0..<7 { for k in 0..<17 {
                    let idx = [i, j, k]
                    var o = 0
                    for a in 0..<3 where a != axis { o = o * x.shape[a] + idx[a] }
                    e[o] += xs[(i * 7 + j) * 17 + k]
                } } }
                return dot(doubles(w), e)
            }
            assertClose(try Reduction.sumBackward(w, inputShape: x.shape, axis: axis), num, atol: 1e-5, "sum' axis \(axis)")
        }
        XCTAssertThrowsError(try Reduction.sum(x, axis: 3))
        let big = randomTensor([100_003], seed: 6)
        assertThreadIndependent("sum", tol: 0) { [Tensor(scalar: Reduction.sum(big)), Tensor(scalar: Reduction.sumOfSquares(big))] }
    }
}

final class EmptyTensorTests: XCTestCase {
    func testOpsAcceptEmptyTensors() throws {
        let e = Tensor(zeros: [2, 0, 4])
        XCTAssertEqual(try Elementwise.add(e, Tensor(zeros: [4])).shape, [2, 0, 4])
        XCTAssertEqual(try Elementwise.reduceBroadcast(e, to: [4]).scalars, [0, 0, 0, 0])
        XCTAssertEqual(Activation.silu(e).shape, [2, 0, 4])
        XCTAssertEqual(Reduction.sum(e), 0)
        XCTAssertEqual(try Reduction.sum(e, axis: 1).scalars, Array(repeating: 0, count: 8))
        XCTAssertEqual(try Normalization.groupNorm(Tensor(zeros: [0, 3, 3, 4]), groups: 2, gamma: nil, beta: nil).output.shape, [0, 3, 3, 4])
        XCTAssertEqual(try Softmax.softmax(Tensor(zeros: [0, 5])).shape, [0, 5])
        var rng = PhiloxRandom(seed: 1)
        XCTAssertEqual(rng.normal(shape: [0]).count, 0)
        XCTAssertEqual(rng.offset, 0)
        let q = Tensor(zeros: [1, 2, 0, 8]), k = Tensor(zeros: [1, 2, 5, 8])
        XCTAssertEqual(try Attention.scaledDotProduct(q: q, k: k, v: k).output.shape, [1, 2, 0, 8])
    }
}

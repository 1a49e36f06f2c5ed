import XCTest
@testable import TensorCore

final class SoftmaxTests: XCTestCase {
    func referenceSoftmax(_ x: [Double], d: Int, log: Bool) -> [Double] {
        var y = x
        for r in 0..<x.count / d {
            let row = x[r * d..<(r + 1) * d], m = row.max()!
            let s = row.reduce(0) { $0 + Foundation.exp($1 - m) }
            for j in 0..<d { y[r * d + j] = log ? x[r * d + j] - m - Foundation.log(s) : Foundation.exp(x[r * d + j] - m) / s }
        }
        return y
    }

    func testSoftmaxAndLogSoftmax() throws {
        for (i, shape) in [[3, 7], [2, 17], [1, 33], [4, 1], [2, 77], [1, 513]].enumerated() {
            let d = shape.last!
            let x = randomTensor(shape, seed: UInt64(i), scale: 4), w = randomTensor(shape, seed: 50)
            let y = try Softmax.softmax(x), ly = try Softmax.logSoftmax(x)
            assertClose(y, referenceSoftmax(doubles(x), d: d, log: false), atol: 1e-7, rtol: 1e-5, "softmax \(shape)")
            assertClose(ly, referenceSoftmax(doubles(x), d: d, log: true), atol: 1e-5, rtol: 1e-6, "logSoftmax \(shape)")
            let wd = doubles(w)
            assertClose(try Softmax.softmaxBackward(w, output: y),
                        numericalGradient(doubles(x)) { dot(wd, self.referenceSoftmax($0, d: d, log: false)) },
                        atol: 1e-5, rtol: 1e-4, "softmax' \(shape)")
            assertClose(try Softmax.logSoftmaxBackward(w, output: ly),
                        numericalGradient(doubles(x)) { dot(wd, self.referenceSoftmax($0, d: d, log: true)) },
                        atol: 1e-5, rtol: 1e-4, "logSoftmax' \(shape)")
        }
    }

    func testMaskedEntriesGetNoWeight() throws {
        let x = try Tensor(shape: [1, 4], scalars: [1, -.infinity, 2, -.infinity])
        let y = try Softmax.softmax(x)
        XCTAssertLessThan(y[flat: 1], 1e-30)
        XCTAssertEqual(Double(y[flat: 2]), Foundation.exp(1) / (1 + Foundation.exp(1)), accuracy: 1e-6)
    }

    func testThreadIndependent() throws {
        let x = randomTensor([512, 77], seed: 60), w = randomTensor([512, 77], seed: 61)
        try assertThreadIndependent("softmax", tol: 0) {
            let y = try Softmax.softmax(x)
            return [y, try Softmax.softmaxBackward(w, output: y)]
        }
    }
}

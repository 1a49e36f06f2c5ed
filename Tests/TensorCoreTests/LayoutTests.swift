import XCTest
@testable import TensorCore

final class LayoutTests: XCTestCase {
    func testUpsampleAndBackward() throws {
        let x = randomTensor([2, 3, 5, 7], seed: 1)
        let y = try Layout.upsampleNearest2x(x)
        XCTAssertEqual(y.shape, [2, 6, 10, 7])
        for b in 0..<2 { for i in 0..<6 { for j in 0..<10 { for c in 0..<7 {
            XCTAssertEqual(y[flat: ((b * 6 + i) * 10 + j) * 7 + c], x[flat: ((b * 3 + i / 2) * 5 + j / 2) * 7 + c])
        } } } }
        let w = randomTensor(y.shape, seed: 2)
        let dx = try Layout.upsampleNearest2xBackward(w)
        var expected = [Double](repeating: 0, count: x.count)
        for b in 0..<2 { for i in 0..<6 { for j in 0..<10 { for c in 0..<7 {
            expected[((b * 3 + i / 2) * 5 + j / 2) * 7 + c] += Double(w[flat: ((b * 6 + i) * 10 + j) * 7 + c])
        } } } }
        assertClose(dx, expected, atol: 1e-6, "upsample'")
        XCTAssertThrowsError(try Layout.upsampleNearest2x(Tensor(zeros: [2, 3])))
    }

    func testConcatAndSplit() throws {
        let a = randomTensor([2, 3, 1], seed: 3), b = randomTensor([2, 3, 17], seed: 4), c = randomTensor([2, 3, 7], seed: 5)
        let y = try Layout.concatLastDim([a, b, c])
        XCTAssertEqual(y.shape, [2, 3, 25])
        for r in 0..<6 {
            XCTAssertEqual(y[flat: r * 25], a[flat: r])
            for j in 0..<17 { XCTAssertEqual(y[flat: r * 25 + 1 + j], b[flat: r * 17 + j]) }
            for j in 0..<7 { XCTAssertEqual(y[flat: r * 25 + 18 + j], c[flat: r * 7 + j]) }
        }
        let parts = try Layout.splitLastDim(y, sizes: [1, 17, 7])
        XCTAssertEqual(parts.map(\.scalars), [a.scalars, b.scalars, c.scalars])
        XCTAssertThrowsError(try Layout.concatLastDim([a, Tensor(zeros: [2, 4, 1])])) { e in
            XCTAssertTrue("\(e)".contains("[2, 4, 1]"), "\(e)")
        }
        XCTAssertThrowsError(try Layout.splitLastDim(y, sizes: [1, 2]))
    }

    func testPermutesAndHeads() throws {
        let x = randomTensor([2, 5, 3, 7], seed: 6)
        let y = try Layout.permute(x, [0, 2, 1, 3])
        XCTAssertEqual(y.shape, [2, 3, 5, 7])
        for b in 0..<2 { for l in 0..<5 { for h in 0..<3 { for d in 0..<7 {
            XCTAssertEqual(y[flat: ((b * 3 + h) * 5 + l) * 7 + d], x[flat: ((b * 5 + l) * 3 + h) * 7 + d])
        } } } }
        let nchw = try Layout.permute(x, [0, 3, 1, 2])
        XCTAssertEqual(try Layout.permute(nchw, Layout.inversePermutation([0, 3, 1, 2])).scalars, x.scalars)
        let seq = try x.reshaped([2, 5, 21])
        let heads = try Layout.splitHeads(seq, heads: 3)
        XCTAssertEqual(heads.scalars, y.scalars)
        XCTAssertEqual(try Layout.mergeHeads(heads).scalars, seq.scalars)
        XCTAssertThrowsError(try Layout.permute(x, [0, 1, 1, 2]))
        XCTAssertEqual(try Layout.permute(Tensor(scalar: 3), []).scalars, [3])
        XCTAssertEqual(try Layout.permute(Tensor(zeros: [2, 0, 3]), [2, 0, 1]).shape, [3, 2, 0])
        XCTAssertThrowsError(try Layout.splitHeads(seq, heads: 4))
    }
}

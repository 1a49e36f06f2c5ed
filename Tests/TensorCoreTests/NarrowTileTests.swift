// The narrow GEMM tiles: 24x16 for products with at most 16 columns (a rank-16 LoRA down projection or
// convolution) and 8x32 for products with at most 16 rows (a LoRA weight's gradient computed transposed).
// Each sums every element over k in the order the other tiles do, so a result must equal, bit for bit, the
// same rows or columns of a wider or taller product that runs on another tile.
import XCTest
@testable import TensorCore

final class NarrowTileTests: XCTestCase {
    private func product(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, ldb: Int) -> [Float] {
        var c = [Float](repeating: .nan, count: m * n)
        sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: ldb, beta: 0,
              c: &c, ldc: n)
        return c
    }

    func testFewColumnsEqualTheSameColumnsOfAWideProduct() {
        var rng = TestRandom(seed: 21)
        for (m, n, k) in [(301, 16, 70), (50, 9, 500), (24, 16, 33), (7, 3, 12)] {
            let wide = 64
            let a = rng.array(m * k), b = rng.array(k * wide)
            let all = product(a, b, m: m, n: wide, k: k, ldb: wide)
            let few = product(a, b, m: m, n: n, k: k, ldb: wide)
            for i in 0..<m {
                XCTAssertEqual(few[(i * n)..<(i * n + n)].map(\.bitPattern), all[(i * wide)..<(i * wide + n)].map(\.bitPattern),
                               "\(m)x\(n)x\(k) row \(i)")
            }
        }
    }

    func testFewRowsEqualTheSameRowsOfATallProduct() {
        var rng = TestRandom(seed: 22)
        for (m, n, k) in [(16, 100, 70), (5, 64, 500), (14, 80, 800)] {
            let tall = 120
            let a = rng.array(tall * k), b = rng.array(k * n)
            let all = product(a, b, m: tall, n: n, k: k, ldb: n)
            let few = product(a, b, m: m, n: n, k: k, ldb: n)
            XCTAssertEqual(few.map(\.bitPattern), all[0..<(m * n)].map(\.bitPattern), "\(m)x\(n)x\(k)")
        }
    }

    func testNarrowShapesMatchTheReferenceEveryTranspose() {
        var rng = TestRandom(seed: 23)
        for (m, n, k) in [(37, 16, 90), (16, 70, 130), (15, 16, 400), (8, 1, 17), (200, 13, 29)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let lda = ta ? m : k, ldb = tb ? k : n
                    let a = rng.array((ta ? k : m) * lda), b = rng.array((tb ? n : k) * ldb)
                    let c0 = rng.array(m * n)
                    var c = c0
                    sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                          beta: 1, c: &c, ldc: n)
                    let want = referenceGEMM(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda,
                                             b: b, ldb: ldb, beta: 1, c: c0, ldc: n)
                    let tol = 1e-5 * Double(k).squareRoot() + 1e-6
                    let bad = zip(c, want).filter { !(abs(Double($0) - $1) <= tol) }.count
                    XCTAssertEqual(bad, 0, "tA \(ta) tB \(tb) \(m)x\(n)x\(k)")
                }
            }
        }
    }

    /// A 16-channel convolution (24x16 tile) equals the first 16 channels of a 48-channel one (12x32 tile), both as
    /// implicit GEMM (Winograd, which the 48-channel one would take, sums in another order).
    func testSixteenChannelConvolutionEqualsTheSameChannelsOfAWiderOne() throws {
        try ConvolutionAlgorithm.$winogradAllowed.withValue(false) { try sixteenChannelConvolutionEqualsAWiderOne() }
    }

    private func sixteenChannelConvolutionEqualsAWiderOne() throws {
        var rng = TestRandom(seed: 24)
        for (shape, stride) in [([2, 13, 21, 32], 1), ([1, 40, 40, 24], 1), ([2, 17, 16, 40], 2)] {
            let x = rng.tensor(shape), wide = rng.tensor([3, 3, shape[3], 48]), bias = rng.tensor([48])
            let narrow = try Tensor(shape: [3, 3, shape[3], 16], scalars: (0..<(9 * shape[3])).flatMap { r in
                (0..<16).map { wide[flat: r * 48 + $0] }
            })
            let narrowBias = try Tensor(shape: [16], scalars: (0..<16).map { bias[flat: $0] })
            let all = try conv2d(x, weight: wide, bias: bias, stride: stride, padding: 1)
            let few = try conv2d(x, weight: narrow, bias: narrowBias, stride: stride, padding: 1)
            let pixels = few.count / 16
            var differing = 0
            for p in 0..<pixels {
                for c in 0..<16 where few[flat: p * 16 + c].bitPattern != all[flat: p * 48 + c].bitPattern { differing += 1 }
            }
            XCTAssertEqual(differing, 0, "\(shape) stride \(stride)")
            let g = try Conv2DShape(input: shape, weight: narrow.shape, stride: stride, padding: 1, op: "test")
            let want = referenceConv(x.scalars.map(Double.init), narrow.scalars.map(Double.init),
                                     narrowBias.scalars.map(Double.init), g)
            XCTAssertEqual(zip(few.scalars, want).filter { !(abs(Double($0) - $1) <= 1e-4 * max(1, abs($1))) }.count, 0)
        }
    }
}

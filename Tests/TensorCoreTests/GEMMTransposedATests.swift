// Aᵀ·B with few columns runs as (Bᵀ·A)ᵀ (a LoRA down weight's gradient): the same values as the Double
// reference, with beta too, and bit for bit the rows that the blocked driver computes for a few rows alone.
import XCTest
@testable import TensorCore

final class GEMMTransposedATests: XCTestCase {
    func testFewColumnsMatchTheReference() {
        var rng = TestRandom(seed: 5)
        for (m, n, k) in [(200, 16, 300), (1024, 4, 77), (64, 15, 1000), (130, 1, 5)] {
            for beta in [Float(0), 1, 0.5] {
                let lda = m + 3, ldb = n + 2, ldc = n + 5
                let a = rng.array(k * lda), b = rng.array(k * ldb), c0 = rng.array(m * ldc)
                let expected = referenceGEMM(transA: true, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: lda,
                                             b: b, ldb: ldb, beta: beta, c: c0, ldc: ldc)
                var c = c0
                sgemm(transA: true, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb,
                      beta: beta, c: &c, ldc: ldc)
                let tol = 1e-5 * Double(k).squareRoot() + 1e-6
                var worst = 0.0
                for i in 0..<m {
                    for j in 0..<n { worst = max(worst, abs(Double(c[i * ldc + j]) - expected[i * ldc + j])) }
                    for j in n..<ldc { XCTAssertEqual(c[i * ldc + j].bitPattern, c0[i * ldc + j].bitPattern, "wrote outside C") }
                }
                XCTAssertLessThanOrEqual(worst, tol, "\(m)x\(n)x\(k) beta \(beta)")
            }
        }
    }

    func testRowsEqualTheDriversRowsBitwise() {
        var rng = TestRandom(seed: 21)
        let m = 256, n = 16, k = 2050
        let a = rng.array(k * m), b = rng.array(k * n), seed = rng.array(m * n)
        for beta in [Float(0), 1] {
            var full = seed
            sgemm(transA: true, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: m, b: b, ldb: n,
                  beta: beta, c: &full, ldc: n)
            for i0 in stride(from: 0, to: m, by: 37) {           // 3 rows < 2·n: the blocked driver's path
                let rows = min(3, m - i0)
                var part = Array(seed[(i0 * n)..<((i0 + rows) * n)])
                a.withUnsafeBufferPointer { pa in
                    sgemm(transA: true, transB: false, m: rows, n: n, k: k, alpha: 1, a: pa.baseAddress! + i0, lda: m,
                          b: b, ldb: n, beta: beta, c: &part, ldc: n)
                }
                XCTAssertEqual(part.map(\.bitPattern), full[(i0 * n)..<((i0 + rows) * n)].map(\.bitPattern),
                               "rows \(i0)..<\(i0 + rows), beta \(beta)")
            }
        }
    }
}

// Aᵀ·B with few columns runs as (Bᵀ·A)ᵀ (a LoRA down weight's gradient): the same values as the Double
// reference, with beta too, and bit for bit the rows that the blocked driver computes for a few rows alone.
// Contiguous with a narrow side it runs as a 1×1 convolution's weight gradient (`narrowTransposedProduct`): the
// reference's values, each element summed alike whichever side is narrow and on any number of threads.
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
        let m = 256, n = 16, k = 2050, lda = m + 1            // A not contiguous: not the narrow product's
        let a = rng.array(k * lda), b = rng.array(k * n), seed = rng.array(m * n)
        for beta in [Float(0), 1] {
            var full = seed
            sgemm(transA: true, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: n,
                  beta: beta, c: &full, ldc: n)
            for i0 in stride(from: 0, to: m, by: 37) {           // 3 rows < 2·n: the blocked driver's path
                let rows = min(3, m - i0)
                var part = Array(seed[(i0 * n)..<((i0 + rows) * n)])
                a.withUnsafeBufferPointer { pa in
                    sgemm(transA: true, transB: false, m: rows, n: n, k: k, alpha: 1, a: pa.baseAddress! + i0, lda: lda,
                          b: b, ldb: n, beta: beta, c: &part, ldc: n)
                }
                XCTAssertEqual(part.map(\.bitPattern), full[(i0 * n)..<((i0 + rows) * n)].map(\.bitPattern),
                               "rows \(i0)..<\(i0 + rows), beta \(beta)")
            }
        }
    }

    private func product(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var c = [Float](repeating: .nan, count: m * n)
        sgemm(transA: true, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: m, b: b, ldb: n, beta: 0, c: &c, ldc: n)
        return c
    }

    func testNarrowSideMatchesTheReference() {
        var rng = TestRandom(seed: 8)
        // Ranks 1–64 either side, pixel counts with and without a factor of 8, a single pixel, and 10 MB of operands
        // (the kernel's rows then in cache-sized chunks).
        for (m, n, k) in [(8, 64, 2048), (64, 8, 2048), (4, 320, 77), (320, 4, 98), (33, 64, 1000), (64, 64, 7),
                          (1, 130, 5), (130, 1, 1), (17, 3, 4096), (32, 8, 65536)] {
            let a = rng.array(k * m), b = rng.array(k * n)
            let expected = referenceGEMM(transA: true, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: m,
                                         b: b, ldb: n, beta: 0, c: [Float](repeating: 0, count: m * n), ldc: n)
            let c = product(a, b, m: m, n: n, k: k)
            let worst = zip(c, expected).reduce(0.0) { max($0, abs(Double($1.0) - $1.1)) }
            XCTAssertLessThanOrEqual(worst, 1e-5 * Double(k).squareRoot() + 1e-6, "\(m)x\(n)x\(k)")
        }
    }

    func testNarrowSideSumsAlikeEitherWayAndOnAnyThreads() {
        var rng = TestRandom(seed: 9)
        let k = 1000
        let a = rng.array(k * 40), b = rng.array(k * 24)
        let c = product(a, b, m: 40, n: 24, k: k)                   // A in the lanes
        let swapped = product(b, a, m: 24, n: 40, k: k)             // B in the lanes: Cᵀ
        for i in 0..<40 {
            for j in 0..<24 { XCTAssertEqual(c[i * 24 + j].bitPattern, swapped[j * 40 + i].bitPattern, "(\(i), \(j))") }
        }
        let oneThread = Parallel.$maxThreads.withValue(1) { product(a, b, m: 40, n: 24, k: k) }
        XCTAssertEqual(oneThread.map(\.bitPattern), c.map(\.bitPattern))
    }
}

import XCTest
@testable import TensorCore

/// Deterministic pseudo-random floats in [-1, 1) for test inputs.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Float(state >> 40) / Float(1 << 23) - 1
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
    mutating func tensor(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        return try! Tensor(shape: shape, scalars: array(n))
    }
}

/// Naive Double-precision reference: alpha * op(A) op(B) + beta * C.
func referenceGEMM(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int,
                   b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int) -> [Double] {
    var out = c.map(Double.init)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                s += Double(av) * Double(bv)
            }
            out[i * ldc + j] = Double(alpha) * s + (beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j]))
        }
    }
    return out
}

final class GEMMTests: XCTestCase {
    /// Runs sgemm on random data (with padded leading dimensions) and compares with the Double reference.
    func check(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0,
               file: StaticString = #filePath, line: UInt = #line) {
        var rng = TestRandom(seed: UInt64(m * 1_000_003 + n * 1009 + k) ^ (transA ? 7 : 0) ^ (transB ? 11 : 0))
        let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 2, ldc = n + 5
        let a = rng.array((transA ? k : m) * lda), b = rng.array((transB ? n : k) * ldb)
        var c = rng.array(m * ldc)
        if beta == 0 { for i in stride(from: 0, to: c.count, by: 3) { c[i] = .nan } }
        let expected = referenceGEMM(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                     b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        let padding = c
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!,
                          lda: lda, b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
        let tol = 1e-5 * Double(max(k, 1)).squareRoot() + 1e-6
        var bad = 0
        for i in 0..<m {
            for j in 0..<n where !(abs(Double(c[i * ldc + j]) - expected[i * ldc + j]) <= tol) {
                if bad < 3 {
                    XCTFail("tA=\(transA) tB=\(transB) \(m)x\(n)x\(k) C[\(i),\(j)] = \(c[i * ldc + j]), expected \(expected[i * ldc + j])",
                            file: file, line: line)
                }
                bad += 1
            }
            for j in n..<ldc where c[i * ldc + j].bitPattern != padding[i * ldc + j].bitPattern {
                XCTFail("wrote outside C at [\(i),\(j)]", file: file, line: line)
                return
            }
        }
    }

    func testAllTransposesOddSizes() {
        let sizes = [1, 7, 17, 33]
        for tA in [false, true] {
            for tB in [false, true] {
                for m in sizes { for n in sizes { for k in sizes { check(transA: tA, transB: tB, m: m, n: n, k: k) } } }
            }
        }
    }

    func testLargeOddSizesEveryTranspose() {
        for tA in [false, true] {
            for tB in [false, true] {
                check(transA: tA, transB: tB, m: 513, n: 33, k: 17)
                check(transA: tA, transB: tB, m: 17, n: 513, k: 33)
                check(transA: tA, transB: tB, m: 33, n: 17, k: 513)
                check(transA: tA, transB: tB, m: 100, n: 40, k: 900)
            }
        }
    }

    func testTileShapesAndBlocking() {
        check(transA: false, transB: false, m: 200, n: 1100, k: 50)    // 6x64, several N blocks
        check(transA: false, transB: true, m: 37, n: 45, k: 800)       // 8x48, several K blocks
        check(transA: true, transB: false, m: 300, n: 70, k: 390)      // 12x32, two K blocks
    }

    func testAlphaBeta() {
        for (alpha, beta) in [(Float(2.5), Float(0)), (1, 1), (-0.5, 0.75), (0, 2), (1.5, -1)] {
            check(transA: false, transB: false, m: 29, n: 70, k: 19, alpha: alpha, beta: beta)
            check(transA: true, transB: true, m: 13, n: 33, k: 7, alpha: alpha, beta: beta)
            check(transA: false, transB: true, m: 5, n: 70, k: 60, alpha: alpha, beta: beta)   // computed as Cᵀ
        }
        check(transA: false, transB: false, m: 5, n: 9, k: 0, alpha: 1, beta: 0.5)
        // Computed as Cᵀ with C and Cᵀ transposed in 16 × 16 blocks over two threads, partial blocks on both edges.
        for beta: Float in [0, 1, 0.75] {
            check(transA: false, transB: true, m: 40, n: 2001, k: 700, alpha: 1, beta: beta)
        }
    }

    /// A row of C does not depend on how many rows share the call: rows 0..<2 of an m-row product (bias
    /// added with beta 1, two K blocks) equal the 2-row product bit for bit, across the few-row (B·Aᵀ)ᵀ path.
    func testRowsEqualTheSameRowsComputedAlone() {
        var rng = TestRandom(seed: 9)
        for (transB, n, k, beta) in [(true, 640, 640, Float(1)), (true, 320, 1280, 0.5), (false, 640, 500, 1), (true, 96, 4, 1)] {
            let a = rng.array(512 * k), b = rng.array(n * k), bias = rng.array(n)
            func run(rows m: Int, alpha: Float) -> [Float] {
                var c = (0..<m).flatMap { _ in bias }
                sgemm(transA: false, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: k, b: b,
                      ldb: transB ? k : n, beta: beta, c: &c, ldc: n)
                return Array(c[0..<(2 * n)])
            }
            for alpha in [Float(1), 0.7] {
                let alone = run(rows: 2, alpha: alpha).map(\.bitPattern)
                for m in [8, 64, 512] {
                    XCTAssertEqual(run(rows: m, alpha: alpha).map(\.bitPattern), alone, "transB \(transB) n \(n) k \(k) alpha \(alpha) m \(m)")
                }
            }
        }
    }

    func testThreadCountsAgreeAndRerunsAreBitwiseEqual() {
        var rng = TestRandom(seed: 42)
        let (m, n, k) = (301, 190, 257)
        let a = rng.array(m * k), b = rng.array(k * n)
        func run(threads: Int) -> [Float] {
            var c = [Float](repeating: 0, count: m * n)
            Parallel.$maxThreads.withValue(threads) {
                sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n,
                      beta: 0, c: &c, ldc: n)
            }
            return c
        }
        let one = run(threads: 1), two = run(threads: 2), twoAgain = run(threads: 2)
        for i in 0..<one.count { XCTAssertEqual(one[i], two[i], accuracy: 1e-6) }
        XCTAssertEqual(two.map(\.bitPattern), twoAgain.map(\.bitPattern))
    }

    func testSplitOverSliversAndTransposedPackingWithTwoThreads() {
        Parallel.$maxThreads.withValue(2) {
            check(transA: false, transB: false, m: 12, n: 1100, k: 400)    // one row tile: split over B slivers
            check(transA: true, transB: false, m: 10, n: 1000, k: 450)
            check(transA: true, transB: true, m: 130, n: 100, k: 400)       // packed A, two K blocks
            check(transA: false, transB: true, m: 40, n: 1100, k: 400)      // 6x64, two N and two K blocks
        }
    }

    func testChunksCoverEveryIndexOnce() {
        for (count, workers) in [(0, 2), (1, 2), (7, 2), (100, 2), (100, 3), (5, 1)] {
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
            hits.initialize(repeating: 0, count: max(count, 1))
            defer { hits.deallocate() }
            let lock = NSLock()
            Parallel.forChunks(count: count, workers: workers) { w, range in
                XCTAssertTrue(w >= 0 && w < max(1, workers))
                lock.lock()
                for i in range { hits[i] += 1 }
                lock.unlock()
            }
            for i in 0..<count { XCTAssertEqual(hits[i], 1, "count \(count) workers \(workers) index \(i)") }
        }
    }

    func testConcurrentCallsUseSeparateWorkspaces() {
        var rng = TestRandom(seed: 5)
        let (m, n, k) = (97, 130, 150)
        let inputs = (0..<6).map { _ in (rng.array(m * k), rng.array(k * n)) }
        let expected = inputs.map { a, b in
            referenceGEMM(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n,
                          beta: 0, c: [Float](repeating: 0, count: m * n), ldc: n)
        }
        let results = UnsafeMutablePointer<Float>.allocate(capacity: inputs.count * m * n)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
            sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: inputs[i].0, lda: k, b: inputs[i].1,
                  ldb: n, beta: 0, c: results + i * m * n, ldc: n)
        }
        for i in 0..<inputs.count {
            for j in 0..<(m * n) where abs(Double(results[i * m * n + j]) - expected[i][j]) > 1e-4 {
                XCTFail("call \(i) element \(j): \(results[i * m * n + j]) vs \(expected[i][j])")
                return
            }
        }
    }

    func testBatchedSmallProductsMatchPerItemProducts() throws {
        var rng = TestRandom(seed: 6)
        let a = rng.tensor([8, 40, 24]), b = rng.tensor([8, 40, 33])
        let c = try Parallel.$maxThreads.withValue(2) { try matmul(a, b, transposeA: true) }
        XCTAssertEqual(c.shape, [8, 24, 33])
        for i in [0, 5, 7] {
            let ref = referenceGEMM(transA: true, transB: false, m: 24, n: 33, k: 40, alpha: 1,
                                    a: Array(a.scalars[(i * 960)..<((i + 1) * 960)]), lda: 24,
                                    b: Array(b.scalars[(i * 1320)..<((i + 1) * 1320)]), ldb: 33, beta: 0,
                                    c: [Float](repeating: 0, count: 24 * 33), ldc: 33)
            for j in 0..<(24 * 33) { XCTAssertEqual(Double(c[flat: i * 792 + j]), ref[j], accuracy: 1e-5) }
        }
    }

    func testMatmulShapes() throws {
        var rng = TestRandom(seed: 3)
        let a = rng.tensor([2, 5, 7]), b = rng.tensor([2, 7, 3]), w = rng.tensor([3, 7])
        let batched = try matmul(a, b)
        XCTAssertEqual(batched.shape, [2, 5, 3])
        let shared = try matmul(a, w, transposeB: true)
        XCTAssertEqual(shared.shape, [2, 5, 3])
        let at = rng.tensor([7, 5])
        let plain = try matmul(at, w, transposeA: true, transposeB: true)
        XCTAssertEqual(plain.shape, [5, 3])
        let ref = referenceGEMM(transA: true, transB: true, m: 5, n: 3, k: 7, alpha: 1, a: at.scalars, lda: 5,
                                b: w.scalars, ldb: 7, beta: 0, c: [Float](repeating: 0, count: 15), ldc: 3)
        for i in 0..<15 { XCTAssertEqual(Double(plain[flat: i]), ref[i], accuracy: 1e-5) }
        let second = referenceGEMM(transA: false, transB: false, m: 5, n: 3, k: 7, alpha: 1,
                                   a: Array(a.scalars[35...]), lda: 7, b: Array(b.scalars[21...]), ldb: 3, beta: 0,
                                   c: [Float](repeating: 0, count: 15), ldc: 3)
        for i in 0..<15 { XCTAssertEqual(Double(batched[flat: 15 + i]), second[i], accuracy: 1e-5) }
    }

    func testMatmulBadShapesThrowWithBothShapes() {
        var rng = TestRandom(seed: 4)
        let a = rng.tensor([4, 5]), b = rng.tensor([6, 3])
        XCTAssertThrowsError(try matmul(a, b)) { error in
            XCTAssertTrue("\(error)".contains("[4, 5]") && "\(error)".contains("[6, 3]"), "\(error)")
        }
        XCTAssertThrowsError(try matmul(rng.tensor([2, 4, 5]), rng.tensor([3, 5, 2])))
        XCTAssertThrowsError(try matmul(rng.tensor([4]), b))
        XCTAssertThrowsError(try matmul(a, rng.tensor([2, 5, 3])))
    }
}

import XCTest
@testable import TensorCore

final class TensorTests: XCTestCase {
    func testCopyOnWriteKeepsOriginal() throws {
        let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        var b = a
        b.set(flat: 0, 42)
        XCTAssertEqual(a[flat: 0], 1)
        XCTAssertEqual(b[flat: 0], 42)
    }

    func testScalarCountMismatchThrows() {
        XCTAssertThrowsError(try Tensor(shape: [2, 2], scalars: [1, 2, 3])) { error in
            XCTAssertTrue("\(error)".contains("[2, 2]"), "\(error)")
        }
    }

    func testReshapeChecksCountAndOverflow() throws {
        let a = Tensor(zeros: [4, 6])
        XCTAssertEqual(try a.reshaped([2, 12]).shape, [2, 12])
        XCTAssertThrowsError(try a.reshaped([5, 5]))
        XCTAssertNil(Tensor.elementCount([Int.max, 2]))
        XCTAssertNil(Tensor.elementCount([-1, 2]))
    }
}

final class ParallelTests: XCTestCase {
    func testSlicesCoverEveryIndexOnce() {
        for workers in 1...3 {
            let count = 17
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
            hits.initialize(repeating: 0, count: count)
            defer { hits.deallocate() }
            Parallel.forEach(count: count, workers: workers) { hits[$0] += 1 }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: hits, count: count)), Array(repeating: 1, count: count))
        }
    }

    func testScopedThreadCount() {
        Parallel.$maxThreads.withValue(1) {
            XCTAssertEqual(Parallel.workers(for: 1_000_000, minWorkPerThread: 1), 1)
        }
        Parallel.$maxThreads.withValue(2) {
            XCTAssertEqual(Parallel.workers(for: 1_000_000, minWorkPerThread: 1000), 2)
            XCTAssertEqual(Parallel.workers(for: 1500, minWorkPerThread: 1000), 1)
        }
    }
}

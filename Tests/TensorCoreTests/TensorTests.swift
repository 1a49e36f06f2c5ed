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

    /// Thousands of calls in a row, of every small size: each index runs exactly once per call (the pool's
    /// generations and claims never hand an index out twice or lose one).
    func testPerformRunsEveryIterationOncePerCall() {
        let maxCount = 9
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: maxCount)
        defer { hits.deallocate() }
        for call in 0..<20000 {
            let count = 1 + call % maxCount
            hits.initialize(repeating: 0, count: maxCount)
            Parallel.perform(iterations: count) { i in hits[i] += 1 }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: hits, count: maxCount)),
                           (0..<maxCount).map { $0 < count ? 1 : 0 }, "call \(call)")
        }
    }

    /// A body that calls into a parallel kernel itself, and several threads calling at once: the pool runs one
    /// call at a time and the others run on their own thread, so every index still runs once and none waits forever.
    func testNestedAndConcurrentCallsComplete() {
        let outer = 4, inner = 5, threads = 4, calls = 300
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: threads * outer * inner)
        hits.initialize(repeating: 0, count: threads * outer * inner)
        defer { hits.deallocate() }
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for _ in 0..<calls {
                Parallel.perform(iterations: outer) { o in
                    Parallel.perform(iterations: inner) { i in hits[(t * outer + o) * inner + i] += 1 }
                }
            }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: hits, count: threads * outer * inner)),
                       Array(repeating: calls, count: threads * outer * inner))
    }

    /// With a pool thread, iteration 1 runs on another thread while iteration 0 is still running: iteration 0
    /// waits (up to 10 s) for it, which only a second thread can satisfy. Run once right away and once after the
    /// pool's threads have gone to sleep (their spin lasts well under 50 ms), so waking them is covered too.
    func testIterationsRunSideBySide() throws {
        guard Parallel.poolThreads > 0 else { throw XCTSkip("one processor: the pool has no threads") }
        for pause in [0.0, 0.05] {
            Thread.sleep(forTimeInterval: pause)
            let started = UnsafeMutablePointer<Int>.allocate(capacity: 2)
            started.initialize(repeating: 0, count: 2)
            defer { started.deallocate() }
            var sawOther = false
            Parallel.perform(iterations: 2) { i in
                started[i] = 1
                guard i == 0 else { return }
                let deadline = Date().addingTimeInterval(10)
                while Date() < deadline {
                    if started[1] != 0 { sawOther = true; break }
                }
            }
            XCTAssertTrue(sawOther, "after a pause of \(pause) s")
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

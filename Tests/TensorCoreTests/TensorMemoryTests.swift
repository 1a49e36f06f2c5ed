// TensorMemory: freed blocks are reused by size class, the cache is bounded and trimmed on request, memory
// handed out is never assumed zero (Tensor(zeros:) writes its zeros), and concurrent use keeps the counts.
import Dispatch
import TensorCore
import XCTest

final class TensorMemoryTests: XCTestCase {
    func testSizeClassesRoundUpByAtMostAQuarter() {
        var previous = 0
        for bytes in [0, 1, 64, 65, 80, 81, 100, 128, 129, 4096, 5000, 1 << 20, (1 << 20) + 1, 123_456_789] {
            let (index, block) = TensorMemory.sizeClass(byteCount: bytes)
            XCTAssertGreaterThanOrEqual(block, max(bytes, 64), "\(bytes) bytes")
            XCTAssertLessThanOrEqual(Double(block), max(64, Double(bytes) * 1.25), "\(bytes) bytes")
            XCTAssertGreaterThanOrEqual(index, previous, "classes grow with the size")
            XCTAssertEqual(TensorMemory.sizeClass(byteCount: block).blockBytes, block, "a block size is its own class")
            previous = index
        }
        XCTAssertEqual(TensorMemory.sizeClass(byteCount: 81).blockBytes, 96)
        XCTAssertEqual(TensorMemory.sizeClass(byteCount: 4097).blockBytes, 5120)
    }

    func testFreedBlockIsReusedForTheSameClass() {
        let memory = TensorMemory()
        let a = memory.allocate(byteCount: 1000)
        XCTAssertEqual(Int(bitPattern: a) % 64, 0, "64-byte aligned")
        memory.deallocate(a, byteCount: 1000)
        let b = memory.allocate(byteCount: 990)            // same class (1024)
        XCTAssertEqual(a, b, "the cached block comes back")
        let c = memory.allocate(byteCount: 3000)           // another class: new memory
        let s = memory.statistics
        XCTAssertEqual(s.requests, 3)
        XCTAssertEqual(s.systemAllocations, 2)
        XCTAssertEqual(s.liveBytes, 1024 + 3072)
        XCTAssertEqual(s.cachedBytes, 0)
        memory.deallocate(b, byteCount: 990)
        memory.deallocate(c, byteCount: 3000)
        XCTAssertEqual(memory.statistics.cachedBytes, 1024 + 3072)
        XCTAssertEqual(memory.statistics.peakLiveBytes, 1024 + 3072)
    }

    func testSteadyLoopAllocatesNothingNewAfterTheFirstRound() {
        let memory = TensorMemory()
        let sizes = [4096, 123_456, 64, 1 << 20, 777, 123_456]
        func round() {
            let blocks = sizes.map { memory.allocate(byteCount: $0) }
            for (p, n) in zip(blocks, sizes).reversed() { memory.deallocate(p, byteCount: n) }
        }
        round()
        memory.resetCounters()
        for _ in 0..<5 { round() }
        XCTAssertEqual(memory.statistics.requests, 5 * sizes.count)
        XCTAssertEqual(memory.statistics.systemAllocations, 0)
        XCTAssertEqual(memory.statistics.systemReleases, 0)
    }

    func testLargeRequestBorrowsACachedBlockOfAtMostTwiceItsSize() {
        let memory = TensorMemory()
        let mib = 1 << 20
        let big = memory.allocate(byteCount: 3 * mib)               // class 3 MiB: four classes above 1.5 MiB
        let bigger = memory.allocate(byteCount: 7 * mib / 2)        // 3.5 MiB: five classes above
        memory.deallocate(bigger, byteCount: 7 * mib / 2)
        memory.deallocate(big, byteCount: 3 * mib)
        memory.resetCounters()
        let p = memory.allocate(byteCount: 3 * mib / 2)             // no 1.5 MiB block: borrows the 3 MiB one
        XCTAssertEqual(p, big)
        XCTAssertEqual(memory.statistics.borrowedAllocations, 1)
        XCTAssertEqual(memory.statistics.systemAllocations, 0)
        XCTAssertEqual(memory.statistics.liveBytes, 3 * mib, "a borrowed block counts its own size")
        XCTAssertEqual(memory.statistics.cachedBytes, 7 * mib / 2)
        let q = memory.allocate(byteCount: 3 * mib / 2)             // only the 3.5 MiB block is left: too large
        XCTAssertNotEqual(q, bigger)
        XCTAssertEqual(memory.statistics.systemAllocations, 1)
        memory.deallocate(p, byteCount: 3 * mib / 2)                // back to its own class
        memory.deallocate(q, byteCount: 3 * mib / 2)
        XCTAssertEqual(memory.statistics.liveBytes, 0)
        XCTAssertEqual(memory.statistics.cachedBytes, 3 * mib + 7 * mib / 2 + 3 * mib / 2)
        XCTAssertEqual(memory.allocate(byteCount: 3 * mib), big, "the 3 MiB class has its block again")
        XCTAssertEqual(memory.allocate(byteCount: 3 * mib / 2), q)
        XCTAssertEqual(memory.statistics.borrowedAllocations, 1)

        let small = memory.allocate(byteCount: 8192)                // below 1 MiB nothing is borrowed
        memory.deallocate(small, byteCount: 8192)
        XCTAssertNotEqual(memory.allocate(byteCount: 6000), small)
        XCTAssertEqual(memory.statistics.borrowedAllocations, 1)
    }

    func testShrinkingPassHoldsItsLargestBlocksNotEveryClassesPeak() {
        // A decoder-like pass whose activations shrink, two live at a time: 130, 130, 100, 66, 66, 40, 33, 33 MB.
        let memory = TensorMemory()
        let sizes = [130, 130, 100, 66, 66, 40, 33, 33].map { $0 * 1_000_000 }
        func pass() {
            var previous: (UnsafeMutableRawPointer, Int)?
            for n in sizes {
                let p = memory.allocate(byteCount: n)
                if let (q, m) = previous { memory.deallocate(q, byteCount: m) }
                previous = (p, n)
            }
            if let (q, m) = previous { memory.deallocate(q, byteCount: m) }
        }
        pass()
        // Each class its own blocks: 2 × 134.2 + 100.7 + 2 × 67.1 + 41.9 + 2 × 33.6 MB = 611 MB. Borrowed: the 100
        // and both 66 MB requests take the freed 134 MB blocks, the second 33 MB one the 40 MB block: 343 MB.
        let footprint = memory.statistics.cachedBytes
        XCTAssertEqual(memory.statistics.borrowedAllocations, 4)
        XCTAssertEqual(memory.statistics.systemAllocations, 4)
        XCTAssertEqual(footprint, 2 * 134_217_728 + 41_943_040 + 33_554_432)
        memory.resetCounters()
        for _ in 0..<3 { pass() }
        XCTAssertEqual(memory.statistics.systemAllocations, 0, "a repeated pass takes no new memory")
        XCTAssertEqual(memory.statistics.cachedBytes, footprint)
        XCTAssertEqual(memory.statistics.liveBytes, 0)
    }

    func testGrowingPassHandsBackSmallerClassesOnANewLargeBlock() {
        let memory = TensorMemory()
        let mib = 1 << 20
        func cycle(_ sizes: [Int]) {
            let blocks = sizes.map { memory.allocate(byteCount: $0) }
            for (p, n) in zip(blocks, sizes) { memory.deallocate(p, byteCount: n) }
        }
        cycle([2 * mib, 8 * mib, 4096])                            // cached: 2 MiB, 8 MiB, 4 KiB
        cycle([40 * mib])                                          // outside a growing pass: kept
        XCTAssertEqual(memory.statistics.cachedBytes, 2 * mib + 8 * mib + 4096 + 40 * mib)
        XCTAssertEqual(memory.statistics.systemReleases, 0)
        memory.growingPass {
            cycle([40 * mib])                                      // its own class: nothing handed back
            XCTAssertEqual(memory.statistics.systemReleases, 0)
            let p = memory.allocate(byteCount: 96 * mib)           // new memory: 2, 8 and 40 MiB go back
            XCTAssertEqual(memory.statistics.systemReleases, 3)
            XCTAssertEqual(memory.statistics.cachedBytes, 4096, "blocks under 1 MiB stay")
            memory.deallocate(p, byteCount: 96 * mib)
        }
        XCTAssertEqual(memory.statistics.cachedBytes, 4096 + 96 * mib)
        cycle([3 * mib, 200 * mib])                                // the pass is over: nothing handed back
        XCTAssertEqual(memory.statistics.systemReleases, 3)
    }

    func testConcurrentLargeRequestsBorrowAndKeepCountsConsistent() {
        // Sizes 1–8 MiB in every order on 8 workers, half of them inside a growing pass: blocks are borrowed, handed
        // back and taken anew concurrently; every block still returns to a class and the counts add up.
        let memory = TensorMemory()
        let mib = 1 << 20
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            func work() {
                for i in 0..<200 {
                    let n = mib + ((i * 7 + worker * 3) % 29) * (mib / 4)
                    let p = memory.allocate(byteCount: n)
                    p.storeBytes(of: UInt64(i), as: UInt64.self)
                    (p + n - 8).storeBytes(of: UInt64(worker), as: UInt64.self)   // the request's last bytes are its own
                    XCTAssertEqual(p.load(as: UInt64.self), UInt64(i))
                    XCTAssertEqual((p + n - 8).load(as: UInt64.self), UInt64(worker))
                    memory.deallocate(p, byteCount: n)
                }
            }
            if worker % 2 == 0 { memory.growingPass(work) } else { work() }
        }
        let s = memory.statistics
        XCTAssertEqual(s.requests, 1600)
        XCTAssertEqual(s.liveBytes, 0)
        XCTAssertGreaterThan(s.borrowedAllocations, 0)
        memory.trim()
        XCTAssertEqual(memory.statistics.cachedBytes, 0, "every block came back to a class the trim could find")
        XCTAssertEqual(memory.statistics.systemReleases, s.systemAllocations)
    }

    func testCacheIsBoundedByItsLimitAndTrimmed() {
        let memory = TensorMemory(cacheLimitBytes: 5000)
        let a = memory.allocate(byteCount: 4096), b = memory.allocate(byteCount: 4096)
        memory.deallocate(a, byteCount: 4096)
        memory.deallocate(b, byteCount: 4096)              // over the limit: handed back
        XCTAssertEqual(memory.statistics.cachedBytes, 4096)
        XCTAssertEqual(memory.statistics.systemReleases, 1)
        memory.trim()
        XCTAssertEqual(memory.statistics.cachedBytes, 0)
        XCTAssertEqual(memory.statistics.systemReleases, 2)
        XCTAssertEqual(memory.statistics.liveBytes, 0)
    }

    func testEachClassHoldsAtMostItsOwnHighWaterMark() {
        let memory = TensorMemory()
        let a = (0..<3).map { _ in memory.allocate(byteCount: 4096) }
        for p in a { memory.deallocate(p, byteCount: 4096) }
        for _ in 0..<10 {                                  // one at a time: the cached blocks serve
            let p = memory.allocate(byteCount: 4096)
            memory.deallocate(p, byteCount: 4096)
        }
        XCTAssertEqual(memory.statistics.systemAllocations, 3)
        XCTAssertEqual(memory.statistics.cachedBytes, 3 * 4096)
        memory.cacheLimitBytes = 4096                      // lowering the limit trims at once
        XCTAssertEqual(memory.statistics.cachedBytes, 4096)
        memory.cacheLimitBytes = nil
    }

    func testZeroedTensorsAreZeroOnReusedMemory() {
        // Dirty a block of the class a [257] tensor takes, free it, and take the class again.
        let bytes = 257 * MemoryLayout<Float>.stride
        let dirty = TensorMemory.shared.allocate(byteCount: bytes)
        dirty.initializeMemory(as: Float.self, repeating: .nan, count: 257)
        TensorMemory.shared.deallocate(dirty, byteCount: bytes)
        let zeros = Tensor(zeros: [257])
        XCTAssertTrue(zeros.scalars.allSatisfy { $0 == 0 })
        let filled = Tensor(shape: [3, 5], repeating: 2)
        XCTAssertEqual(filled.scalars, Array(repeating: 2, count: 15))
    }

    func testConcurrentUseKeepsCountsConsistent() {
        let memory = TensorMemory()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in 0..<2000 {
                let n = 64 << ((i + worker) % 12)
                let p = memory.allocate(byteCount: n)
                p.storeBytes(of: UInt64(i), as: UInt64.self)   // touch it
                XCTAssertEqual(p.load(as: UInt64.self), UInt64(i))
                memory.deallocate(p, byteCount: n)
            }
        }
        let s = memory.statistics
        XCTAssertEqual(s.requests, 16_000)
        XCTAssertEqual(s.liveBytes, 0)
        XCTAssertLessThanOrEqual(s.systemAllocations, 8 * 12, "at most one block per class and worker")
    }
}

// TensorMemory: a caching allocator for tensor storage and kernel scratch.
//
// A training step or a denoising step frees and allocates the same sizes over and over. Handed to the C
// library, large blocks go back to the kernel on free (munmap, or a heap trim) and the next allocation
// faults fresh, zero-filled pages in again: the main training job took ~10 M minor page faults that way.
// Here a freed block goes to a free list of its size class and the next request of that class takes it,
// so a steady loop allocates nothing new after its first iterations.
//
// * Size classes: four per power of two (a block is at most 25 % larger than asked; pages past the end of
//   a request are never touched, so they cost address space, not memory), 64 bytes at least, 64-byte aligned.
// * One lock guards the free lists; it is held for a few pointer moves, never while memory is touched.
// * Bounded by each class's high-water mark: new memory is taken only when a class has no free block, so a
//   class never holds more blocks (live + cached) than were ever live in it at once, and a loop that
//   repeats its sizes reaches a fixed footprint after its first iteration. `cacheLimitBytes` caps the
//   cache further (a freed block that does not fit is handed back at once); `trim()` hands every cached
//   block back (after a phase whose sizes will not come again).
// * Large requests borrow: a request of 1 MiB or more whose class has no free block takes a cached block of
//   the next classes up, at most twice its size, before it takes new memory; the block returns to its own
//   class when freed. A pass whose sizes shrink and grow (a VAE decoder: 8, 33, 134, 268 MB activations
//   one after the other) then holds about its peak of live memory rather than the sum of every class's
//   own peak (SD-1.5's VAE decode at 512²: 1.91 GB cached, 2.2 GB resident, without it).
// * Inside `growingPass` (a VAE decoder: its activations grow from 8 to 268 MB), a large request that still
//   takes new memory first hands the cached blocks of the smaller large classes back to the C library: the
//   earlier, smaller stages' blocks would sit idle while the larger ones are live.
// * Memory comes uninitialised, also when reused: callers that need zeros write them (`Tensor(zeros:)`).
import Foundation

public final class TensorMemory: @unchecked Sendable {
    /// Counters since start-up (or the last `resetCounters`); bytes are the rounded block sizes.
    public struct Statistics: Sendable, Equatable {
        /// `allocate` calls.
        public var requests = 0
        /// Requests that took new memory from the C library (cache misses).
        public var systemAllocations = 0
        /// Blocks handed back to the C library (cache full, or `trim`).
        public var systemReleases = 0
        /// Bytes handed out and not yet freed.
        public var liveBytes = 0
        /// Bytes held in the free lists.
        public var cachedBytes = 0
        /// The largest `liveBytes` seen.
        public var peakLiveBytes = 0
        /// Requests served by a cached block of a larger class (large requests only).
        public var borrowedAllocations = 0
    }

    /// The allocator that `Tensor` and the kernels' scratch memory use.
    public static let shared = TensorMemory()

    private let lock = NSLock()
    private var free: [[UnsafeMutableRawPointer]]
    private var stats = Statistics()
    private var limit: Int?
    /// Blocks handed out from a larger class than their request's, by address: the class they return to.
    private var borrowed: [UnsafeMutableRawPointer: Int] = [:]
    /// `growingPass` calls under way (any thread).
    private var growingPasses = 0

    public init(cacheLimitBytes: Int? = nil) {
        free = Array(repeating: [], count: TensorMemory.classCount)
        limit = cacheLimitBytes
    }

    deinit {
        for list in free { for p in list { p.deallocate() } }
    }

    /// Bytes the cache may hold; nil (the default): no cap beyond the per-class high-water marks.
    public var cacheLimitBytes: Int? {
        get { lock.lock(); defer { lock.unlock() }; return limit }
        set { lock.lock(); limit = newValue; lock.unlock(); if let newValue { shrink(to: newValue) } }
    }

    public var statistics: Statistics {
        lock.lock(); defer { lock.unlock() }
        return stats
    }

    /// Sets the request and system counters to zero (live, cached and peak bytes stay).
    public func resetCounters() {
        lock.lock()
        stats.requests = 0
        stats.systemAllocations = 0
        stats.systemReleases = 0
        stats.borrowedAllocations = 0
        lock.unlock()
    }

    // MARK: Size classes

    static let minimumBlock = 64
    static let classCount = 4 * 64
    /// Requests from this size on may borrow a larger class's cached block.
    public static let borrowingMinimumBytes = 1 << 20
    /// How many classes up a request may borrow from: four classes double the size.
    static let borrowingClasses = 4
    /// The size class of `borrowingMinimumBytes`: the smallest that borrows (or that a growing pass hands back).
    static let borrowingMinimumClass = sizeClass(byteCount: borrowingMinimumBytes).index

    /// The size class of a request and the block size it rounds to (at most 25 % above, 64 bytes at least).
    @inline(__always) public static func sizeClass(byteCount: Int) -> (index: Int, blockBytes: Int) {
        let b = max(byteCount, minimumBlock)
        let e = Int.bitWidth - (b - 1).leadingZeroBitCount - 1   // 2^e < b <= 2^(e+1)
        let step = 1 << (e - 2)
        let q = (b + step - 1) >> (e - 2)                          // 5...8
        return (4 * e + q - 5, q * step)
    }

    // MARK: Allocation

    /// 64-byte aligned, uninitialised memory for `byteCount` bytes; give it back with `deallocate(_:byteCount:)`
    /// and the same count.
    public func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        precondition(byteCount >= 0, "negative byte count")
        let (index, blockBytes) = TensorMemory.sizeClass(byteCount: byteCount)
        lock.lock()
        stats.requests += 1
        stats.liveBytes += blockBytes
        stats.peakLiveBytes = max(stats.peakLiveBytes, stats.liveBytes)
        if let p = free[index].popLast() {
            stats.cachedBytes -= blockBytes
            lock.unlock()
            return p
        }
        if blockBytes >= TensorMemory.borrowingMinimumBytes {
            for larger in index + 1..<min(index + 1 + TensorMemory.borrowingClasses, TensorMemory.classCount) {
                guard let p = free[larger].popLast() else { continue }
                let largerBytes = TensorMemory.blockBytes(ofClass: larger)
                stats.cachedBytes -= largerBytes
                stats.liveBytes += largerBytes - blockBytes
                stats.peakLiveBytes = max(stats.peakLiveBytes, stats.liveBytes)
                stats.borrowedAllocations += 1
                borrowed[p] = larger
                lock.unlock()
                return p
            }
        }
        var released: [UnsafeMutableRawPointer] = []
        if growingPasses > 0 && blockBytes >= TensorMemory.borrowingMinimumBytes {
            for smaller in TensorMemory.borrowingMinimumClass..<index {
                let bytes = TensorMemory.blockBytes(ofClass: smaller)
                while let p = free[smaller].popLast() {
                    released.append(p)
                    stats.cachedBytes -= bytes
                    stats.systemReleases += 1
                }
            }
        }
        stats.systemAllocations += 1
        lock.unlock()
        for p in released { p.deallocate() }
        return UnsafeMutableRawPointer.allocate(byteCount: blockBytes, alignment: 64)
    }

    /// Returns a block from `allocate(byteCount:)` to the cache (or to the C library when the cache is full).
    public func deallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        var (index, blockBytes) = TensorMemory.sizeClass(byteCount: byteCount)
        lock.lock()
        if blockBytes >= TensorMemory.borrowingMinimumBytes, !borrowed.isEmpty,
           let larger = borrowed.removeValue(forKey: pointer) {
            index = larger
            blockBytes = TensorMemory.blockBytes(ofClass: larger)
        }
        stats.liveBytes -= blockBytes
        if stats.cachedBytes + blockBytes <= (limit ?? Int.max) {
            free[index].append(pointer)
            stats.cachedBytes += blockBytes
            lock.unlock()
            return
        }
        stats.systemReleases += 1
        lock.unlock()
        pointer.deallocate()
    }

    /// Float storage for `count` scalars (uninitialised).
    @inlinable public func allocateFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        allocate(byteCount: count * MemoryLayout<Float>.stride).bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Gives back storage from `allocateFloats` with the same count.
    @inlinable public func deallocateFloats(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        deallocate(UnsafeMutableRawPointer(pointer), byteCount: count * MemoryLayout<Float>.stride)
    }

    /// Runs `body`, a pass whose activations grow (a VAE decoder): while it runs, a request of 1 MiB or more that
    /// takes new memory first hands back the cached blocks of every smaller class from 1 MiB on, so the pass holds
    /// about its largest stage's memory rather than every stage's. Blocks freed later are cached as usual.
    public func growingPass<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); growingPasses += 1; lock.unlock()
        defer { lock.lock(); growingPasses -= 1; lock.unlock() }
        return try body()
    }

    /// Hands every cached block back to the C library (after a phase whose sizes will not come again, e.g.
    /// loading a model). Live blocks are untouched.
    public func trim() { shrink(to: 0) }

    private func shrink(to bytes: Int) {
        var released: [UnsafeMutableRawPointer] = []
        lock.lock()
        var index = free.count - 1
        while stats.cachedBytes > bytes && index >= 0 {
            let blockBytes = TensorMemory.blockBytes(ofClass: index)
            while stats.cachedBytes > bytes, let p = free[index].popLast() {
                released.append(p)
                stats.cachedBytes -= blockBytes
                stats.systemReleases += 1
            }
            index -= 1
        }
        lock.unlock()
        for p in released { p.deallocate() }
    }

    static func blockBytes(ofClass index: Int) -> Int {
        let e = index / 4, q = index % 4 + 5
        return q << (e - 2)
    }
}

/// Uninitialised scratch memory of one kernel call, from `TensorMemory.shared`:
/// `let rows = ScratchBuffer<Float>(count: n); defer { rows.release() }`.
public struct ScratchBuffer<Element> {
    public let pointer: UnsafeMutablePointer<Element>
    public let count: Int

    @inlinable public init(count: Int) {
        self.count = count
        pointer = TensorMemory.shared.allocate(byteCount: count * MemoryLayout<Element>.stride)
            .bindMemory(to: Element.self, capacity: max(count, 1))
    }

    /// Gives the memory back; the buffer must not be used afterwards.
    @inlinable public func release() {
        TensorMemory.shared.deallocate(UnsafeMutableRawPointer(pointer), byteCount: count * MemoryLayout<Element>.stride)
    }
}

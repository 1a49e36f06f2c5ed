// ParallelChunks: dynamic load balancing for the GEMM and conv drivers.
//
// The vCPUs of this kind of machine are shared with other tenants, so one of two equal static halves often
// finishes much later than the other. Here `workers` threads pull small contiguous chunks from a shared
// counter until none are left: a thread that runs slowly simply takes fewer chunks. Each chunk's result
// depends only on the chunk, never on which thread ran it, so results stay bitwise reproducible.
import CWorkerPool

extension Parallel {
    /// Calls `body(worker, range)` for consecutive chunks of `0..<count` (about `chunksPerWorker` per worker),
    /// handed out on demand to `workers` threads. `worker` is in `0..<workers` and selects a scratch buffer.
    /// Inlinable, so that the kernel modules specialise `body` into their loops (a closure passed through an
    /// opaque call from another module left GroupNorm's backward 1.9x slower).
    @inlinable public static func forChunks(count: Int, workers: Int, chunksPerWorker: Int = 6,
                                 _ body: (Int, Range<Int>) -> Void) {
        let w = max(1, min(workers, count))
        if w == 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        let chunks = min(count, w * chunksPerWorker)
        var next = 0        // the next unclaimed chunk, shared by the workers through an atomic add
        withUnsafeMutablePointer(to: &next) { counter in
            perform(iterations: w) { worker in
                while case let c = sdWorkerPoolClaim(counter, chunks), c >= 0 {
                    body(worker, (count * c / chunks)..<(count * (c + 1) / chunks))
                }
            }
        }
    }
}

extension Parallel {
    /// Calls `body(i)` for every `i` in `0..<count`, in contiguous chunks handed out on demand to `workers`
    /// threads (`forChunks`), so a descheduled vCPU does not hold up the call. Results must depend only on i.
    @inlinable public static func forEachChunked(count: Int, workers: Int, _ body: (Int) -> Void) {
        forChunks(count: count, workers: workers) { _, range in
            for i in range { body(i) }
        }
    }
}

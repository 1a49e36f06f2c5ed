// Parallel: splitting a kernel's work over the machine's cores without creating threads per call.
//
// Work runs on the process's worker pool (CWorkerPool: threads that spin briefly between kernels, so a hand-off
// costs well under a microsecond where waking a Dispatch thread per call cost tens — on the embedded model's
// training step, most of what a second core could give). The calling thread takes part and iterations are
// claimed one at a time, so a core that the host takes away slows a kernel down instead of stalling it. The
// thread count is a scoped value (a task-local), not global mutable state:
//
//     Parallel.$maxThreads.withValue(1) { … }   // everything inside runs single-threaded
import CWorkerPool
import Foundation

public enum Parallel {
    /// Threads a kernel may use in the current scope. Defaults to the active processor count.
    @TaskLocal public static var maxThreads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Number of workers worth using for `work` units of cost when a worker should get at least `minWork`.
    @inlinable public static func workers(for work: Int, minWorkPerThread minWork: Int) -> Int {
        let t = maxThreads
        guard t > 1, work >= 2 * max(minWork, 1) else { return 1 }
        return min(t, work / max(minWork, 1))
    }

    /// Calls `body(worker, range)` for `workers` contiguous, nearly equal slices of `0..<count`.
    /// Each worker index is in `0..<workers` and can select a per-worker scratch buffer.
    @inlinable public static func forSlices(count: Int, workers: Int, _ body: (Int, Range<Int>) -> Void) {
        let w = max(1, min(workers, count))
        if w == 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        perform(iterations: w) { i in
            let lo = count * i / w, hi = count * (i + 1) / w
            if lo < hi { body(i, lo..<hi) }
        }
    }

    /// The worker pool's threads (processor count - 1; started on first use). Calls run on them and the caller.
    public static var poolThreads: Int { Int(sdWorkerPoolThreads()) }

    /// Calls `body(i)` once for every `i` in `0..<iterations`, on the calling thread and the worker pool's threads
    /// together; returns when all have returned. Where the pool is running another call (`body` itself calling
    /// into a parallel kernel, or another thread's kernel) the calling thread runs every iteration itself.
    @inlinable public static func perform(iterations: Int, _ body: (Int) -> Void) {
        guard iterations > 1 else {
            if iterations == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = body
            let status = withUnsafeMutablePointer(to: &job) { pointer in
                sdWorkerPoolRun(iterations, { context, i in
                    context.unsafelyUnwrapped.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i)
                }, pointer)
            }
            if status != 0 {
                for i in 0..<iterations { body(i) }
            }
        }
    }

    /// Calls `body(i)` for every `i` in `0..<count`, spread over `workers` threads in contiguous slices.
    @inlinable public static func forEach(count: Int, workers: Int, _ body: (Int) -> Void) {
        forSlices(count: count, workers: workers) { _, range in
            for i in range { body(i) }
        }
    }
}

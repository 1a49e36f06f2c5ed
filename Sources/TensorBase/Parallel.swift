// Parallel: splitting a kernel's work over the machine's cores without creating threads per call.
//
// Work runs on Dispatch's shared pool through `concurrentPerform`; the calling thread takes part, so a
// core that the host takes away slows a kernel down instead of stalling it. The thread count is a scoped
// value (a task-local), not global mutable state:
//
//     Parallel.$maxThreads.withValue(1) { … }   // everything inside runs single-threaded
import Dispatch
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
        DispatchQueue.concurrentPerform(iterations: w) { i in
            let lo = count * i / w, hi = count * (i + 1) / w
            if lo < hi { body(i, lo..<hi) }
        }
    }

    /// Calls `body(i)` for every `i` in `0..<count`, spread over `workers` threads in contiguous slices.
    @inlinable public static func forEach(count: Int, workers: Int, _ body: (Int) -> Void) {
        forSlices(count: count, workers: workers) { _, range in
            for i in range { body(i) }
        }
    }
}

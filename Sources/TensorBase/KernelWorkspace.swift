// KernelWorkspace: reusable, 64-byte aligned scratch memory for GEMM and conv drivers.
//
// Every running kernel call takes its own workspace from a pool and gives it back when done, so two
// GEMMs running at the same time (e.g. attention heads in parallel) never share scratch memory.
// Buffers only grow; a pool holds as many workspaces as calls ever ran concurrently.
import Foundation

/// Scratch memory of one kernel call: a shared buffer (packed operand) and one buffer per worker.
package final class KernelWorkspace {
    package private(set) var shared: UnsafeMutablePointer<Float>
    private var sharedCapacity = 0
    private var perWorker: UnsafeMutablePointer<Float>
    private var perWorkerCapacity = 0
    package private(set) var workerStride = 0

    package init() {
        shared = KernelWorkspace.allocate(0)
        perWorker = KernelWorkspace.allocate(0)
    }

    deinit {
        KernelWorkspace.deallocate(shared, sharedCapacity)
        KernelWorkspace.deallocate(perWorker, perWorkerCapacity)
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        TensorMemory.shared.allocateFloats(max(count, 16))
    }

    private static func deallocate(_ pointer: UnsafeMutablePointer<Float>, _ count: Int) {
        TensorMemory.shared.deallocateFloats(pointer, count: max(count, 16))
    }

    /// Makes room for `sharedCount` shared floats and `workers` private buffers of `perWorkerCount` floats.
    package func reserve(sharedCount: Int, workers: Int, perWorkerCount: Int) {
        if sharedCount > sharedCapacity {
            KernelWorkspace.deallocate(shared, sharedCapacity)
            shared = KernelWorkspace.allocate(sharedCount)
            sharedCapacity = sharedCount
        }
        let stride = (perWorkerCount + 15) / 16 * 16
        if stride * workers > perWorkerCapacity {
            KernelWorkspace.deallocate(perWorker, perWorkerCapacity)
            perWorker = KernelWorkspace.allocate(stride * workers)
            perWorkerCapacity = stride * workers
        }
        workerStride = stride
    }

    /// The private buffer of worker `w` (valid after `reserve`).
    package func worker(_ w: Int) -> UnsafeMutablePointer<Float> { perWorker + w * workerStride }
}

/// A thread-safe pool of workspaces.
package final class KernelWorkspacePool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [KernelWorkspace] = []

    package static let shared = KernelWorkspacePool()

    /// Runs `body` with a workspace no other running call uses.
    package func with<R>(_ body: (KernelWorkspace) throws -> R) rethrows -> R {
        lock.lock()
        let ws = free.popLast() ?? KernelWorkspace()
        lock.unlock()
        defer {
            lock.lock()
            free.append(ws)
            lock.unlock()
        }
        return try body(ws)
    }
}

// KernelProfile: time per kernel entry point (`bench train --profile`). The benchmark runs its step with
// `Kernels.active.instrumented(by: profile)` as the task's kernel set, so every TensorCore operation is
// timed under its KernelSet field name; GEMM-like entries also count their floating-point operations.
// Time outside kernel calls (autograd bookkeeping, element-wise work done outside the kernels, the
// optimiser's own loops) is the "outside kernels" row. Calls made from worker threads are not covered.
import Foundation
import TensorCore

final class KernelProfile: KernelProbe, @unchecked Sendable {
    private struct Row { var calls = 0; var seconds = 0.0; var flops = 0.0 }
    private let lock = NSLock()
    private var rows: [String: Row] = [:]

    func measure<R>(_ field: String, flops: Double, _ body: () throws -> R) rethrows -> R {
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        defer {
            clock_gettime(CLOCK_MONOTONIC, &t1)
            let dt = Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) * 1e-9
            lock.lock()
            rows[field, default: Row()].calls += 1
            rows[field, default: Row()].seconds += dt
            rows[field, default: Row()].flops += flops
            lock.unlock()
        }
        return try body()
    }

    func printTable(steps: Int, stepSeconds: Double) {
        lock.lock(); defer { lock.unlock() }
        let total = rows.values.reduce(0) { $0 + $1.seconds }
        print("  per-op profile over \(steps) steps (time per step, share of step wall time, GFLOP/s where counted):")
        print("  op                                  calls/step   ms/step   share   GFLOP/s   µs/call")
        for (name, r) in rows.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            let gflops = r.flops > 0 ? String(format: "%9.1f", r.flops / r.seconds / 1e9) : "        –"
            print(String(format: "  %@ %10.1f %9.2f %6.1f%% %@ %9.1f", name.padding(toLength: 34, withPad: " ", startingAt: 0),
                         Double(r.calls) / Double(steps), r.seconds / Double(steps) * 1e3,
                         100 * r.seconds / stepSeconds, gflops, r.seconds / Double(r.calls) * 1e6))
        }
        let outside = stepSeconds - total
        print(String(format: "  %@ %10@ %9.2f %6.1f%%", "outside kernels".padding(toLength: 34, withPad: " ", startingAt: 0),
                     "", outside / Double(steps) * 1e3, 100 * outside / stepSeconds))
    }
}

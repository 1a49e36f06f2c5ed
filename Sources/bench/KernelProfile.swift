// KernelProfile: time per kernel entry point (`bench train --profile`). The benchmark runs its step with
// `Kernels.active.instrumented(by: profile)` as the task's kernel set, so every TensorCore operation is
// timed under its KernelSet field name, in wall time and in process CPU time (all threads: on a shared
// machine the wall time of a call includes the time its threads waited for a core, the CPU time does
// not); GEMM-like entries also count their floating-point operations. Time outside kernel calls (autograd
// bookkeeping, element-wise work done outside the kernels, the optimiser's own loops) is the "outside
// kernels" row. Kernel calls started from worker threads are not covered. `byShape` (`--profile-shapes`) also
// keeps each entry point's calls apart by their operands' shapes and prints the costliest.
import Foundation
import TensorCore

final class KernelProfile: KernelProbe, @unchecked Sendable {
    private struct Row {
        var calls = 0, seconds = 0.0, cpuSeconds = 0.0, flops = 0.0
        mutating func add(seconds: Double, cpuSeconds: Double, flops: Double) {
            calls += 1
            self.seconds += seconds
            self.cpuSeconds += cpuSeconds
            self.flops += flops
        }
    }
    private let lock = NSLock()
    private var rows: [String: Row] = [:]
    private var shapes: [String: Row] = [:]
    private let byShape: Bool

    init(byShape: Bool = false) { self.byShape = byShape }

    private static func now(_ clock: clockid_t) -> Double {
        var t = timespec()
        clock_gettime(clock, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    func measure<R>(_ field: String, flops: Double, shape: () -> String, _ body: () throws -> R) rethrows -> R {
        let key = byShape ? field + "  " + shape() : nil
        let c0 = KernelProfile.now(CLOCK_PROCESS_CPUTIME_ID), t0 = KernelProfile.now(CLOCK_MONOTONIC)
        defer {
            let t1 = KernelProfile.now(CLOCK_MONOTONIC), c1 = KernelProfile.now(CLOCK_PROCESS_CPUTIME_ID)
            lock.lock()
            rows[field, default: Row()].add(seconds: t1 - t0, cpuSeconds: c1 - c0, flops: flops)
            if let key { shapes[key, default: Row()].add(seconds: t1 - t0, cpuSeconds: c1 - c0, flops: flops) }
            lock.unlock()
        }
        return try body()
    }

    /// Forgets what was measured so far (the benchmark's first, cold step).
    func reset() {
        lock.lock()
        rows = [:]
        shapes = [:]
        lock.unlock()
    }

    func printTable(steps: Int, stepSeconds: Double, stepCPUSeconds: Double) {
        lock.lock(); defer { lock.unlock() }
        let total = rows.values.reduce(0) { $0 + $1.seconds }, totalCPU = rows.values.reduce(0) { $0 + $1.cpuSeconds }
        let n = Double(steps)
        print("  per-op profile over \(steps) steps (per step; share of the step's wall time; GFLOP/s per wall and per CPU second):")
        print("  op                                 calls   wall ms    cpu ms   share  GFLOP/s  per cpu-s   µs/call")
        func line(_ name: String, _ calls: String, _ wall: Double, _ cpu: Double, _ rates: String, _ perCall: String) {
            print(String(format: "  %@ %5@ %9.2f %9.2f %6.1f%% %@ %@", name.padding(toLength: 32, withPad: " ", startingAt: 0),
                         calls, wall * 1e3 / n, cpu * 1e3 / n, 100 * wall / stepSeconds, rates, perCall))
        }
        for (name, r) in rows.sorted(by: { $0.value.cpuSeconds > $1.value.cpuSeconds }) {
            let rates = r.flops > 0 ? String(format: "%8.1f %10.1f", r.flops / r.seconds / 1e9, r.flops / r.cpuSeconds / 1e9)
                                    : "       –          –"
            line(name, String(format: "%5.0f", Double(r.calls) / n), r.seconds, r.cpuSeconds, rates,
                 String(format: "%9.1f", r.seconds / Double(r.calls) * 1e6))
        }
        line("outside kernels", "", stepSeconds - total, stepCPUSeconds - totalCPU, "                   ", "")
        guard byShape else { return }
        let top = shapes.sorted { $0.value.seconds > $1.value.seconds }.prefix(40)
        print("  the \(top.count) costliest calls by operand shapes (per step; share of the step's wall time):")
        print("     wall ms   calls   share  GFLOP/s  op  operands")
        for (key, r) in top {
            let rate = r.flops > 0 ? String(format: "%8.1f", r.flops / r.seconds / 1e9) : "       –"
            print(String(format: "  %9.2f %7.1f %6.1f%% %@  %@", r.seconds * 1e3 / n, Double(r.calls) / n,
                         100 * r.seconds / stepSeconds, rate, key))
        }
    }
}

// StepCost: what one repeated step of a benchmark costs — wall and CPU time, minor page faults (fresh pages
// the kernel had to zero) and tensor allocations (requests to `TensorMemory`, and the misses among them
// that went to the C library). In a steady loop the faults and misses per step should be about 0.
import Foundation
import CLI
import TensorCore

struct StepCost {
    var wall: Double
    var cpu: Double
    var faults: Int
    var requests: Int
    var systemAllocations: Int

    static func measure(_ body: () -> Void) -> StepCost {
        let u0 = ProcessUsage.now(), m0 = TensorMemory.shared.statistics
        let wall = timeOnce(body)
        let u1 = ProcessUsage.now(), m1 = TensorMemory.shared.statistics
        return StepCost(wall: wall, cpu: u1.cpuSeconds - u0.cpuSeconds, faults: u1.minorFaults - u0.minorFaults,
                        requests: m1.requests - m0.requests,
                        systemAllocations: m1.systemAllocations - m0.systemAllocations)
    }

    static func printTable(_ steps: [StepCost]) {
        print("  step    wall s   cpu s   minor faults   tensor allocs (new from libc)")
        for (i, s) in steps.enumerated() {
            print(String(format: "  %4d  %7.3f %7.3f   %12d   %8d (%d)", i + 1, s.wall, s.cpu, s.faults, s.requests,
                         s.systemAllocations))
        }
        let steady = steps.count > 2 ? Array(steps.dropFirst(2)) : steps
        print(String(format: "  steady (steps 3+): median wall %.3f s, cpu %.3f s, %.0f faults, %.0f new allocations per step",
                     median(steady.map(\.wall)), median(steady.map(\.cpu)),
                     median(steady.map { Double($0.faults) }), median(steady.map { Double($0.systemAllocations) })))
        printTensorMemory()
    }
}

/// The tensor cache's state: live, cached and peak live bytes; requests, those that took new memory, those that
/// borrowed a larger class's block (since start-up or the last counter reset).
func printTensorMemory() {
    let m = TensorMemory.shared.statistics
    print(String(format: "  tensor memory: %.1f MB live, %.1f MB cached, peak live %.1f MB; %d requests, %d from libc, %d borrowed",
                 Double(m.liveBytes) / 1e6, Double(m.cachedBytes) / 1e6, Double(m.peakLiveBytes) / 1e6,
                 m.requests, m.systemAllocations, m.borrowedAllocations))
}

/// Peak resident set size of this process in bytes.
func peakRSSBytes() -> Double { Double(ProcessUsage.now().peakResidentBytes) }

// ProcessUsage: this process's CPU time, minor page faults and peak resident memory, for the commands that report
// what a run cost (bench, world train-judge).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// This process's CPU time and minor page faults so far (getrusage).
public struct ProcessUsage: Sendable {
    public var cpuSeconds: Double
    public var minorFaults: Int
    /// Peak resident set size so far, in bytes (`ru_maxrss`: kilobytes on Linux, bytes on Darwin).
    public var peakResidentBytes: Int

    public static func now() -> ProcessUsage {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let peak = usage.ru_maxrss * 1024
        #else
        getrusage(RUSAGE_SELF, &usage)
        let peak = usage.ru_maxrss
        #endif
        let cpu = [usage.ru_utime, usage.ru_stime].reduce(0.0) { $0 + Double($1.tv_sec) + Double($1.tv_usec) * 1e-6 }
        return ProcessUsage(cpuSeconds: cpu, minorFaults: Int(usage.ru_minflt), peakResidentBytes: peak)
    }
}

// Kernels: which instruction-set level's kernels run, chosen once at start-up.
//
// The numeric code in Sources/Kernels is compiled once per level, each module with its own CPU flags
// (Package.swift): KernelsAVX512 and KernelsAVX2 on x86-64, KernelsPortable everywhere (SSE2 on x86-64,
// NEON on arm64). Everything else, TensorCore included, is compiled for the baseline, so the binary runs
// on any CPU of its architecture. The level is the best one the CPU reports (cpuid and the OS's enabled
// register state), or the one named by `STYLEDIFFUSION_ISA` (avx512, avx2, sse2, neon) for tests and
// benchmarks; a level the CPU lacks is never run.
import CPUFeatures
import Foundation
#if arch(x86_64)
import KernelsAVX2
import KernelsAVX512
#endif
import KernelsPortable

public enum Kernels {
    /// Every level compiled into this binary that this CPU can run, best first.
    public static let available: [KernelSet] = {
        var sets: [KernelSet] = []
#if arch(x86_64)
        let level = styleDiffusionCPULevel()
        if level >= 2 { sets.append(KernelsAVX512.kernelSet) }
        if level >= 1 { sets.append(KernelsAVX2.kernelSet) }
#endif
        sets.append(KernelsPortable.kernelSet)
        return sets
    }()

    /// Names of every level compiled into this binary, whether or not this CPU can run it.
    public static var compiled: [String] {
#if arch(x86_64)
        return [KernelsAVX512.kernelSet.name, KernelsAVX2.kernelSet.name, KernelsPortable.kernelSet.name]
#else
        return [KernelsPortable.kernelSet.name]
#endif
    }

    /// The level chosen at start-up, and why (for `bench` and `generate --verbose`).
    public static let chosen: (set: KernelSet, reason: String) = choose(
        requested: ProcessInfo.processInfo.environment["STYLEDIFFUSION_ISA"])

    /// A level that runs instead of `chosen` in the current task scope (tests compare levels with it):
    /// `Kernels.$override.withValue(set) { … }`. Work that other threads start is not covered.
    @TaskLocal public static var override: KernelSet?

    /// The kernels every TensorCore operation runs.
    @inlinable public static var active: KernelSet { override ?? chosen.set }

    /// The level called `name` if this CPU can run it.
    public static func set(named name: String) -> KernelSet? {
        available.first { $0.name == name.lowercased() }
    }

    /// The CPU's own name, as cpuid reports it ("" where it does not).
    public static var cpuName: String {
        var buffer = [CChar](repeating: 0, count: 49)
        styleDiffusionCPUName(&buffer)
        return String(cString: buffer).trimmingCharacters(in: .whitespaces)
    }

    /// One line for logs: "kernels avx512 (best this CPU runs; compiled: avx512, avx2, sse2)".
    public static var summary: String {
        "kernels \(chosen.set.name) (\(chosen.reason); compiled: \(compiled.joined(separator: ", ")))"
    }

    static func choose(requested: String?) -> (set: KernelSet, reason: String) {
        let best = available[0]
        guard let requested, !requested.isEmpty else { return (best, "best this CPU runs") }
        if let set = set(named: requested) { return (set, "STYLEDIFFUSION_ISA=\(requested)") }
        let reason = compiled.contains(requested.lowercased())
            ? "STYLEDIFFUSION_ISA=\(requested) is not supported by this CPU"
            : "STYLEDIFFUSION_ISA=\(requested) is unknown (levels: \(compiled.joined(separator: ", ")))"
        FileHandle.standardError.write(Data("warning: \(reason); using \(best.name)\n".utf8))
        return (best, reason + "; best this CPU runs")
    }
}
